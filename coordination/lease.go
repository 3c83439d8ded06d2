// Package coordination elects one leader among the Maxine instances that
// share a Redis (SPEC 6) and lets it make leader-only writes that a stale
// leader cannot make: a lease with fencing tokens, plus a membership list.
//
// Following one lease renewal: Run (this file) owns the only goroutine.
// Every RenewInterval it ticks. A follower runs acquireScript (scripts.go):
// if <prefix>:leader is free it takes a new token from the <prefix>:fence
// counter and sets the lease value (JSON ending in that token) with NX
// semantics and a PX of LeaseTTL; if not, the same call returns the
// leader's value and remaining TTL, which become this instance's Status. The
// leader instead runs renewScript, which PEXPIREs the lease only if it still
// holds this instance's exact value. The leader notes the time it sent each
// successful renewal; its local deadline is that time + LeaseTTL - a safety
// margin, strictly before Redis can expire the key. If renewals fail until
// the deadline (Redis unreachable, this process stalled), the leader steps
// down by its own clock; a leader that wakes up past its deadline (a stalled
// process) steps down and deletes its key if still there, rather than renew
// on as if nothing happened; if renewScript finds the key gone or someone
// else's, it steps down at once. Each tick then refreshes this instance's
// record in <prefix>:members (members.go). On context cancellation Run
// steps down locally first, then deletes the lease (owner-checked) and its
// membership record within a short timeout, and returns.
//
// A leader-only write (fenced.go) is the caller's Lua body appended to a
// prelude that checks, inside the same script, that the fence counter still
// equals this instance's token and the lease still holds its value; if not
// Redis replies FENCED, the write does not happen and the Lease steps down.
//
// Invariants:
//   - One goroutine (Run) owns the lease: only it acquires, renews and
//     releases, and only it calls OnChange, in order.
//   - Status and IsLeader read one immutable snapshot through an
//     atomic.Pointer, never a lock; a snapshot that says "leader" is only
//     believed until its local deadline, which precedes the key's expiry in
//     Redis, so two instances never both report IsLeader for a lease that
//     Redis gave to only one of them (up to clock-rate error below the margin).
//   - Snapshots are published under one mutex shared by Run and Fenced's
//     step-down, so a renewal never resurrects a lease that Fenced found
//     stale.
//   - Tokens strictly increase across acquisitions, and a token this
//     instance sees never goes below one it saw before, even after Redis
//     restarts empty: acquisition raises the counter to at least the
//     acquirer's highest seen token and Redis's clock in ms before INCR
//     (so a token is about its acquisition time in Unix ms). Only a Redis
//     that restarts empty with its clock set back, won by an instance that
//     never saw the old tokens, could issue a lower one; the fence check
//     compares tokens for equality, so even then no stale write lands.
package coordination

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Status is a snapshot of this instance's view of the lease. The zero value
// (Enabled false) describes an instance without coordination.
type Status struct {
	// Enabled is true for every Status of a Lease.
	Enabled bool
	// InstanceID is this instance.
	InstanceID string
	// IsLeader is true while this instance holds the lease.
	IsLeader bool
	// HasLeader is true when some instance (maybe this one) is known to
	// hold the lease.
	HasLeader bool
	// FencingToken is the leader's token (this instance's when IsLeader).
	FencingToken int64
	// LeaderInstanceID and LeaderAdminAddr describe the leader.
	LeaderInstanceID, LeaderAdminAddr string
	// LeaseExpiresAt is when the lease expires in Redis unless renewed, as
	// estimated by this instance.
	LeaseExpiresAt time.Time
	// ObservedAt is when this instance last heard from Redis about the lease.
	ObservedAt time.Time
	// Reason says in words why the Status last changed ("acquired lease
	// (token 17)", "stepped down: ...", "leader is b (token 18)").
	Reason string
}

// Counters count lease events since New. Losses count involuntary step-downs
// (renewals failing past the deadline, the key gone or taken, a fenced write
// rejected), not a release on shutdown.
type Counters struct {
	Acquisitions, Losses, RenewErrors, AcquireErrors uint64
}

// Lease is one instance's side of the leader election. Create it with New,
// run Run in one goroutine for as long as the instance lives, and read
// Status, IsLeader, Members and Counters from anywhere. All methods are safe
// for concurrent use. A Lease must not be copied.
type Lease struct {
	o      Options
	log    zerolog.Logger
	now    func() time.Time
	leader string // <prefix>:leader
	fence  string // <prefix>:fence
	member string // <prefix>:members
	margin time.Duration

	state atomic.Pointer[snapshot] // read lock-free; replaced under mu

	mu          sync.Mutex // serializes publishing snapshots (Run, Fenced's step-down)
	fencedToken int64      // guarded by mu: token stepped down by Fenced, 0 if none

	fenced  chan struct{} // Fenced → Run: fencedToken was set
	started atomic.Bool

	// owned by the Run goroutine
	held         *holding
	highest      int64  // highest token seen
	notified     Status // last Status passed to OnChange
	failing      bool   // a Redis error was logged and no success since
	startedAt    time.Time
	beforeSelect func(ctx context.Context) // tests: simulate a stalled process

	acquisitions, losses, renewErrors, acquireErrors atomic.Uint64
}

// snapshot is what Status and IsLeader read.
type snapshot struct {
	Status
	value    string    // lease value when IsLeader
	deadline time.Time // local step-down deadline when IsLeader
}

// holding is the lease as held by the Run goroutine.
type holding struct {
	value    string
	token    int64
	renewed  time.Time // send time of the last successful acquire or renew
	deadline time.Time // renewed + LeaseTTL - margin
	record   leaderRecord
}

// leaderRecord is the JSON lease value.
type leaderRecord struct {
	InstanceID string `json:"instanceId"`
	AdminAddr  string `json:"adminAddr"`
	AcquiredAt int64  `json:"acquiredAt"` // ms
	Token      int64  `json:"token"`
}

// New validates o and returns a Lease that does nothing until Run.
func New(o Options) (*Lease, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	l := &Lease{
		o:      o,
		log:    o.Logger.With().Str("component", "coordination").Str("instance", o.InstanceID).Logger(),
		now:    o.Now,
		leader: o.Prefix + ":leader",
		fence:  o.Prefix + ":fence",
		member: o.Prefix + ":members",
		margin: o.safetyMargin(),
		fenced: make(chan struct{}, 1),
	}
	l.notified = Status{Enabled: true, InstanceID: o.InstanceID}
	l.state.Store(&snapshot{Status: Status{Enabled: true, InstanceID: o.InstanceID, Reason: "not started"}})
	return l, nil
}

// Status returns this instance's current view of the lease. It is
// lock-free. A nil Lease returns the zero Status (coordination disabled).
func (l *Lease) Status() Status {
	if l == nil {
		return Status{}
	}
	s := l.state.Load()
	if s.IsLeader && !l.now().Before(s.deadline) {
		st := s.Status
		st.IsLeader, st.HasLeader, st.FencingToken = false, false, 0
		st.LeaderInstanceID, st.LeaderAdminAddr = "", ""
		st.Reason = "stepped down: lease not renewed before its local deadline " + s.deadline.Format(time.RFC3339Nano)
		return st
	}
	return s.Status
}

// IsLeader reports whether this instance holds the lease, and its fencing
// token if so. It is lock-free and allocation-free.
func (l *Lease) IsLeader() (bool, int64) {
	s := l.state.Load()
	if !s.IsLeader || !l.now().Before(s.deadline) {
		return false, 0
	}
	return true, s.FencingToken
}

// Counters returns the event counts so far.
func (l *Lease) Counters() Counters {
	return Counters{
		Acquisitions:  l.acquisitions.Load(),
		Losses:        l.losses.Load(),
		RenewErrors:   l.renewErrors.Load(),
		AcquireErrors: l.acquireErrors.Load(),
	}
}

// Run elects, renews and publishes membership until ctx is done, then
// releases the lease and the membership record and returns. Call it once;
// a second call returns at once.
func (l *Lease) Run(ctx context.Context) {
	if !l.started.CompareAndSwap(false, true) {
		l.log.Error().Msg("coordination: Lease.Run called twice; the second call returns")
		return
	}
	l.startedAt = l.now()
	tick := time.NewTicker(l.o.RenewInterval)
	defer tick.Stop()
	deadline := time.NewTimer(time.Hour)
	deadline.Stop()
	defer deadline.Stop()

	l.step(ctx, deadline)
	for {
		if l.beforeSelect != nil {
			l.beforeSelect(ctx)
		}
		// A token fenced by a write is handled before anything else, so the
		// step-down reports the fenced write as its reason.
		select {
		case <-l.fenced:
			l.onFenced(ctx, deadline)
			continue
		default:
		}
		select {
		case <-ctx.Done():
			l.release()
			return
		case <-l.fenced:
			l.onFenced(ctx, deadline)
		case <-tick.C:
			l.step(ctx, deadline)
		case <-deadline.C:
			if l.held != nil {
				if now := l.now(); !now.Before(l.held.deadline) {
					l.dropExpired(ctx)
				} else {
					deadline.Reset(l.held.deadline.Sub(now))
				}
			}
		}
	}
}

// step is one tick: renew or try to acquire, then refresh membership.
func (l *Lease) step(ctx context.Context, deadline *time.Timer) {
	if l.held != nil {
		l.renew(ctx, deadline)
	}
	if l.held == nil && ctx.Err() == nil {
		l.acquire(ctx, deadline)
	}
	if ctx.Err() == nil {
		l.refreshMember(ctx)
	}
}

// opContext bounds one Redis call of a tick: at most one RenewInterval, and
// for the leader no later than its local deadline.
func (l *Lease) opContext(ctx context.Context, now time.Time) (context.Context, context.CancelFunc) {
	d := l.o.RenewInterval
	if l.held != nil {
		d = min(d, max(l.held.deadline.Sub(now), 10*time.Millisecond))
	}
	return context.WithTimeout(ctx, d)
}

func (l *Lease) renew(ctx context.Context, deadline *time.Timer) {
	h := l.held
	sent := l.now()
	if !sent.Before(h.deadline) {
		// Stalled past the deadline: Status already says "not the leader",
		// so going on with this token would be a silent resurrection.
		l.dropExpired(ctx)
		return
	}
	cctx, cancel := l.opContext(ctx, sent)
	n, err := renewScript.Run(cctx, l.o.Client, []string{l.leader}, h.value, l.o.LeaseTTL.Milliseconds()).Int64()
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down: release decides
		}
		l.renewErrors.Add(1)
		l.redisError("renew", err)
		if !l.now().Before(h.deadline) {
			l.stepDown(fmt.Sprintf("stepped down: renewals failing since %s and the lease's local deadline has passed: %v",
				h.renewed.Format(time.RFC3339Nano), err))
		}
		return
	}
	l.redisOK()
	if n == 0 {
		l.stepDown("stepped down: the lease key is gone or held by another instance (expired in Redis, or Redis restarted)")
		return
	}
	h.renewed = sent
	h.deadline = sent.Add(l.o.LeaseTTL - l.margin)
	deadline.Reset(h.deadline.Sub(l.now()))
	l.publishLeader(h, "")
}

func (l *Lease) acquire(ctx context.Context, deadline *time.Timer) {
	sent := l.now()
	prefix, err := leaseValuePrefix(l.o.InstanceID, l.o.AdminAddr, sent)
	if err != nil {
		l.log.Error().Err(err).Msg("coordination: encode lease value")
		return
	}
	cctx, cancel := l.opContext(ctx, sent)
	res, err := acquireScript.Run(cctx, l.o.Client, []string{l.leader, l.fence},
		prefix, l.o.LeaseTTL.Milliseconds(), l.highest).Slice()
	cancel()
	if err == nil && len(res) != 3 {
		err = fmt.Errorf("unexpected acquire reply %v", res)
	}
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		l.acquireErrors.Add(1)
		l.redisError("acquire", err)
		l.observeUnreachable(err)
		return
	}
	l.redisOK()
	taken, _ := res[0].(int64)
	value, _ := res[1].(string)
	n, _ := res[2].(int64)
	var rec leaderRecord
	recErr := json.Unmarshal([]byte(value), &rec)
	now := l.now()
	if taken == 1 {
		rec.Token = n // the script's own number, whatever the JSON says
		l.highest = max(l.highest, n)
		h := &holding{value: value, token: n, renewed: sent, deadline: sent.Add(l.o.LeaseTTL - l.margin), record: rec}
		l.held = h
		l.acquisitions.Add(1)
		deadline.Reset(h.deadline.Sub(now))
		l.publishLeader(h, "acquired lease (token "+strconv.FormatInt(n, 10)+")")
		l.log.Info().Int64("token", n).Msg("coordination: leadership gained")
		l.notify()
		return
	}
	st := Status{Enabled: true, InstanceID: l.o.InstanceID, HasLeader: true, ObservedAt: now}
	if n >= 0 {
		st.LeaseExpiresAt = now.Add(time.Duration(n) * time.Millisecond)
	}
	if recErr != nil {
		st.Reason = "the lease key holds an unreadable value: " + recErr.Error()
	} else {
		l.highest = max(l.highest, rec.Token)
		st.LeaderInstanceID, st.LeaderAdminAddr, st.FencingToken = rec.InstanceID, rec.AdminAddr, rec.Token
		st.Reason = "leader is " + rec.InstanceID + " (token " + strconv.FormatInt(rec.Token, 10) + ")"
	}
	l.publishFollower(st)
	l.notify()
}

// observeUnreachable updates a follower's Status when Redis cannot be
// asked: the last observed leader is kept until its lease would expire.
func (l *Lease) observeUnreachable(err error) {
	cur := l.state.Load().Status
	if !cur.HasLeader || l.now().Before(cur.LeaseExpiresAt) {
		return
	}
	cur.HasLeader = false
	cur.LeaderInstanceID, cur.LeaderAdminAddr = "", ""
	cur.Reason = "leader unknown: redis unreachable: " + err.Error()
	l.publishFollower(cur)
	l.notify()
}

// publishLeader publishes the Status of holding h, unless Fenced already
// stepped h down (then Run's next select handles it).
func (l *Lease) publishLeader(h *holding, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fencedToken == h.token {
		return
	}
	if reason == "" {
		reason = l.state.Load().Reason
	}
	l.state.Store(&snapshot{
		Status: Status{
			Enabled: true, InstanceID: l.o.InstanceID,
			IsLeader: true, HasLeader: true, FencingToken: h.token,
			LeaderInstanceID: l.o.InstanceID, LeaderAdminAddr: l.o.AdminAddr,
			LeaseExpiresAt: h.renewed.Add(l.o.LeaseTTL), ObservedAt: l.now(),
			Reason: reason,
		},
		value:    h.value,
		deadline: h.deadline,
	})
}

func (l *Lease) publishFollower(st Status) {
	l.mu.Lock()
	l.state.Store(&snapshot{Status: st})
	l.mu.Unlock()
}

// stepDown drops the held lease locally with reason (kept as is if Fenced
// already stepped it down with its own) and tells OnChange.
func (l *Lease) stepDown(reason string) {
	h := l.held
	if h == nil {
		return
	}
	l.held = nil
	l.losses.Add(1)
	l.mu.Lock()
	if l.fencedToken != h.token {
		l.state.Store(&snapshot{Status: Status{
			Enabled: true, InstanceID: l.o.InstanceID, Reason: reason,
		}})
	}
	l.mu.Unlock()
	l.log.Warn().Int64("token", h.token).Str("reason", l.state.Load().Reason).Msg("coordination: leadership lost")
	l.notify()
}

// dropExpired steps down a lease whose local deadline has passed and, if
// its key is still ours in Redis, deletes it so that the next acquisition
// (maybe ours, with a new token) need not wait for it to expire.
func (l *Lease) dropExpired(ctx context.Context) {
	h := l.held
	l.stepDown(fmt.Sprintf("stepped down: lease not renewed since %s, its local deadline %s has passed",
		h.renewed.Format(time.RFC3339Nano), h.deadline.Format(time.RFC3339Nano)))
	l.deleteStale(ctx, h.value)
}

// deleteStale deletes the lease if it still holds value, within
// releaseTimeout; errors are ignored (the key then expires by its TTL).
func (l *Lease) deleteStale(ctx context.Context, value string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.releaseTimeout())
	_ = releaseScript.Run(rctx, l.o.Client, []string{l.leader, l.member}, value, "").Err()
	cancel()
}

// onFenced steps down if a fenced write found the held token stale.
func (l *Lease) onFenced(ctx context.Context, deadline *time.Timer) {
	l.mu.Lock()
	token := l.fencedToken
	l.mu.Unlock()
	h := l.held
	if h == nil || h.token != token {
		return
	}
	l.stepDown("") // Fenced published the reason
	l.deleteStale(ctx, h.value)
	if ctx.Err() == nil {
		l.acquire(ctx, deadline)
	}
}

// release steps down locally, then deletes the lease (if still ours) and
// the membership record, bounded by releaseTimeout.
func (l *Lease) release() {
	h := l.held
	l.held = nil
	value := ""
	if h != nil {
		value = h.value
	}
	l.publishFollower(Status{Enabled: true, InstanceID: l.o.InstanceID, Reason: "stopped: lease released on shutdown"})
	if h != nil {
		l.log.Info().Int64("token", h.token).Msg("coordination: leadership released on shutdown")
	}
	l.notify()
	ctx, cancel := context.WithTimeout(context.Background(), l.releaseTimeout())
	defer cancel()
	if err := releaseScript.Run(ctx, l.o.Client, []string{l.leader, l.member}, value, l.o.InstanceID).Err(); err != nil {
		l.log.Warn().Err(err).Msg("coordination: release failed; the lease and membership record expire by their TTL")
	}
}

func (l *Lease) releaseTimeout() time.Duration {
	return min(l.o.RenewInterval, time.Second)
}

// notify calls OnChange if leadership or the observed leader changed since
// the last call.
func (l *Lease) notify() {
	cur := l.Status()
	last := l.notified
	if cur.IsLeader == last.IsLeader && cur.HasLeader == last.HasLeader &&
		cur.LeaderInstanceID == last.LeaderInstanceID && cur.FencingToken == last.FencingToken {
		return
	}
	l.notified = cur
	if l.o.OnChange == nil {
		return
	}
	start := time.Now()
	l.o.OnChange(cur)
	if d := time.Since(start); d > l.o.RenewInterval/4 {
		l.log.Warn().Dur("took", d).Msg("coordination: OnChange is slow and delays lease renewal")
	}
}

// redisError logs the first failure of a streak at warn, the rest at debug.
func (l *Lease) redisError(op string, err error) {
	ev := l.log.Debug()
	if !l.failing {
		ev = l.log.Warn()
		l.failing = true
	}
	ev.Err(err).Str("op", op).Msg("coordination: redis call failed")
}

func (l *Lease) redisOK() {
	if l.failing {
		l.log.Info().Msg("coordination: redis reachable again")
		l.failing = false
	}
}

// leaseValuePrefix is the lease value up to its token; acquireScript
// appends the token and the closing brace.
func leaseValuePrefix(id, admin string, at time.Time) (string, error) {
	b, err := json.Marshal(struct {
		InstanceID string `json:"instanceId"`
		AdminAddr  string `json:"adminAddr"`
		AcquiredAt int64  `json:"acquiredAt"`
	}{id, admin, at.UnixMilli()})
	if err != nil {
		return "", err
	}
	return string(b[:len(b)-1]) + `,"token":`, nil
}
