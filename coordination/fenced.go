package coordination

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ErrFenced is wrapped by every error of a leader-only write that was not
// made because this instance does not hold the lease with the token it
// wrote with: either it knew it was not the leader, or Redis rejected its
// token as stale (the script replied FENCED and changed nothing).
var ErrFenced = errors.New("coordination: fenced: this instance does not hold the lease")

// fencedScripts holds the hashes of the scripts built by FencedScript, so
// that Fenced refuses a script without the fence prelude instead of running
// it with shifted keys and no check.
var fencedScripts sync.Map // hash string -> struct{}

// FencedScript builds a leader-only script for Lease.Fenced from a Lua body.
// The body runs after a prelude, in the same script, that replies with the
// error FENCED unless the fence counter still equals the caller's token and
// the lease key still holds the caller's lease value.
//
// Convention: Fenced prepends two keys and two arguments, so the body's own
// keys and arguments start at index 3:
//
//	KEYS[1] the lease key     ARGV[1] the caller's lease value
//	KEYS[2] the fence key     ARGV[2] the caller's token
//	KEYS[3]… the caller's     ARGV[3]… the caller's
//
// The body may read ARGV[2] (the token) to stamp what it writes. Build each
// script once (a package variable) and reuse it: Redis caches it by hash.
func FencedScript(body string) *redis.Script {
	s := redis.NewScript(fencePrelude + body)
	fencedScripts.Store(s.Hash(), struct{}{})
	return s
}

// Fenced runs script, built by FencedScript, only while this instance holds
// the lease: it fails with ErrFenced without calling Redis when this
// instance knows it is not the leader, and with ErrFenced when Redis finds
// its token stale, in which case the Lease steps down at once (Status and
// IsLeader say so before Fenced returns; OnChange follows from Run). Other
// errors (Redis unreachable, a script error) are returned as go-redis
// returned them, redis.Nil included; the result is the script's reply.
func (l *Lease) Fenced(ctx context.Context, script *redis.Script, keys []string, args ...any) (any, error) {
	if _, ok := fencedScripts.Load(script.Hash()); !ok {
		return nil, errors.New("coordination: Fenced needs a script built by FencedScript")
	}
	s := l.state.Load()
	if !s.IsLeader || !l.now().Before(s.deadline) {
		return nil, fmt.Errorf("%w: %s is not the leader", ErrFenced, l.o.InstanceID)
	}
	k := make([]string, 0, 2+len(keys))
	k = append(k, l.leader, l.fence)
	k = append(k, keys...)
	a := make([]any, 0, 2+len(args))
	a = append(a, s.value, strconv.FormatInt(s.FencingToken, 10))
	a = append(a, args...)
	res, err := script.Run(ctx, l.o.Client, k, a...).Result()
	if err != nil && redis.HasErrorPrefix(err, "FENCED") {
		l.stepDownFenced(s)
		return nil, fmt.Errorf("%w: token %d is stale (the lease expired or another instance took it)", ErrFenced, s.FencingToken)
	}
	return res, err
}

// stepDownFenced publishes "not the leader" for snapshot s's token (unless
// that lease is already gone) and wakes Run to finish the step-down.
func (l *Lease) stepDownFenced(s *snapshot) {
	l.mu.Lock()
	cur := l.state.Load()
	if cur.IsLeader && cur.FencingToken == s.FencingToken {
		l.fencedToken = s.FencingToken
		l.state.Store(&snapshot{Status: Status{
			Enabled: true, InstanceID: l.o.InstanceID,
			Reason: "stepped down: a leader-only write was fenced: token " + strconv.FormatInt(s.FencingToken, 10) +
				" is stale (the lease expired or another instance took it)",
		}})
	}
	l.mu.Unlock()
	select {
	case l.fenced <- struct{}{}:
	default:
	}
}
