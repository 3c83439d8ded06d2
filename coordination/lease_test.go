package coordination

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maxine-io/maxine/internal/redistest"
)

func TestOptionsValidate(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	ok := Options{Client: client, InstanceID: "a"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	cases := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no client", func(o *Options) { o.Client = nil }, "Options.Client is required"},
		{"no instance", func(o *Options) { o.InstanceID = " " }, "Options.InstanceID is required"},
		{"spaced prefix", func(o *Options) { o.Prefix = " p" }, "Options.Prefix"},
		{"tiny lease", func(o *Options) { o.LeaseTTL = time.Millisecond }, "lease TTL must be at least"},
		{"negative lease", func(o *Options) { o.LeaseTTL = -time.Second }, "lease TTL must be at least"},
		{"negative renew", func(o *Options) { o.RenewInterval = -time.Second }, "renew interval must be positive"},
		{"renew half lease", func(o *Options) { o.LeaseTTL, o.RenewInterval = 2*time.Second, time.Second }, "renew interval (1s) must be less than half the lease TTL (2s)"},
		{"renew over default lease", func(o *Options) { o.RenewInterval = 6 * time.Second }, "half the lease TTL (10s)"},
	}
	for _, c := range cases {
		o := ok
		c.edit(&o)
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate() = %v, want an error containing %q", c.name, err, c.want)
		}
		if _, nerr := New(o); nerr == nil {
			t.Errorf("%s: New accepted options that Validate rejects", c.name)
		}
	}
}

func TestNilLeaseStatusIsDisabled(t *testing.T) {
	var l *Lease
	if s := l.Status(); s != (Status{}) {
		t.Fatalf("nil Lease Status() = %+v, want the zero Status", s)
	}
}

// TestOneLeaderAmongThree: after settling, never more than one instance
// believes it leads, the one that does is the one in Redis, and the others
// know who it is.
func TestOneLeaderAmongThree(t *testing.T) {
	srv := redistest.Start(t)
	o := instOpts{ttl: 2 * time.Second, renew: 300 * time.Millisecond}
	ins := []*instance{start(t, srv, "a", o), start(t, srv, "b", o), start(t, srv, "c", o)}
	lead := waitOneLeader(t, 15*time.Second, ins...)
	_, token := lead.l.IsLeader()
	waitFor(t, 15*time.Second, "every follower to name the leader", func() bool {
		for _, in := range ins {
			s := in.l.Status()
			if !s.HasLeader || s.LeaderInstanceID != lead.id || s.FencingToken != token {
				return false
			}
		}
		return true
	})
	// Sample across several renewals: at most one believer each time.
	for i := 0; i < 300; i++ {
		if ls := leaders(ins...); len(ls) > 1 {
			t.Fatalf("sample %d: %d instances believe they lead", i, len(ls))
		}
		time.Sleep(3 * time.Millisecond)
	}
	v, err := srv.Do("GET", testPrefix+":leader")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(v, `"instanceId":"`+lead.id+`"`) || !strings.HasSuffix(v, `"token":`+strconv.FormatInt(token, 10)+`}`) {
		t.Fatalf("lease value %q does not name %s with token %d", v, lead.id, token)
	}
	if f, _ := srv.Do("GET", testPrefix+":fence"); f != strconv.FormatInt(token, 10) {
		t.Fatalf("fence counter %q, want the leader's token %d", f, token)
	}
	if c := lead.l.Counters(); c.Acquisitions != 1 || c.Losses != 0 {
		t.Fatalf("leader counters %+v, want 1 acquisition and no loss", c)
	}
	if s, ok := lead.lastEvent(); !ok || !s.IsLeader || !strings.Contains(s.Reason, "acquired lease") {
		t.Fatalf("leader's last OnChange = %+v, want the acquisition", s)
	}
}

// TestTokensIncreaseAcrossHandovers hands the lease over four times by
// stopping the leader and starting a fresh instance (with no memory of past
// tokens); every acquisition's token is above the previous one.
func TestTokensIncreaseAcrossHandovers(t *testing.T) {
	srv := redistest.Start(t)
	o := instOpts{ttl: 2 * time.Second, renew: 200 * time.Millisecond}
	live := []*instance{start(t, srv, "n0", o), start(t, srv, "n1", o)}
	var tokens []int64
	for round := 0; round < 4; round++ {
		lead := waitOneLeader(t, 15*time.Second, live...)
		_, tok := lead.l.IsLeader()
		tokens = append(tokens, tok)
		lead.stop()
		var rest []*instance
		for _, in := range live {
			if in != lead {
				rest = append(rest, in)
			}
		}
		live = append(rest, start(t, srv, "n"+strconv.Itoa(round+2), o))
	}
	lead := waitOneLeader(t, 15*time.Second, live...)
	_, tok := lead.l.IsLeader()
	tokens = append(tokens, tok)
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Fatalf("acquisition tokens not strictly increasing: %v", tokens)
		}
	}
	t.Logf("tokens across 5 acquisitions: %v", tokens)
}

// TestReleaseOnCancelHandsOver: a cancelled leader deletes its lease, so a
// follower takes over long before the 30 s lease could have expired.
func TestReleaseOnCancelHandsOver(t *testing.T) {
	srv := redistest.Start(t)
	o := instOpts{ttl: 30 * time.Second, renew: 250 * time.Millisecond}
	a, b := leaderAndFollower(t, srv, o)
	_, tokA := a.l.IsLeader()

	stopped := time.Now()
	a.stop()
	if ok, _ := a.l.IsLeader(); ok {
		t.Fatal("a still believes it leads after Run returned")
	}
	// 20 s < the 30 s lease: only a release can explain a takeover in time.
	waitFor(t, 20*time.Second, "b to take over", func() bool { ok, _ := b.l.IsLeader(); return ok })
	t.Logf("takeover after release: %s (lease 30s, renew 250ms)", time.Since(stopped).Round(time.Millisecond))
	if _, tokB := b.l.IsLeader(); tokB <= tokA {
		t.Fatalf("b's token %d is not above a's %d", tokB, tokA)
	}
	s, _ := a.lastEvent()
	if s.IsLeader || !strings.Contains(s.Reason, "released") {
		t.Fatalf("a's last OnChange = %+v, want a release", s)
	}
	if c := a.l.Counters(); c.Losses != 0 {
		t.Fatalf("a release counted as a loss: %+v", c)
	}
	if v, _ := srv.Do("HEXISTS", testPrefix+":members", "a"); v != "0" {
		t.Fatalf("a's membership record survived its release (HEXISTS = %s)", v)
	}
}

// TestLeaderDeathFailover: a leader that dies without releasing (its
// connection gone) keeps the key until the lease expires; then a follower
// takes over with a higher token.
func TestLeaderDeathFailover(t *testing.T) {
	srv := redistest.Start(t)
	o := instOpts{ttl: 2 * time.Second, renew: 500 * time.Millisecond}
	a, b := leaderAndFollower(t, srv, o)
	_, tokA := a.l.IsLeader()

	_ = a.client.Close() // the process is gone: no more renewals, no release
	died := time.Now()
	a.stop()
	if v, _ := srv.Do("GET", testPrefix+":leader"); !strings.Contains(v, `"instanceId":"a"`) {
		t.Fatalf("lease %q: a dead leader cannot have released it", v)
	}
	waitFor(t, 20*time.Second, "b to take over", func() bool { ok, _ := b.l.IsLeader(); return ok })
	t.Logf("failover from leader death to new leader: %s (lease 2s, renew 500ms)", time.Since(died).Round(time.Millisecond))
	if _, tokB := b.l.IsLeader(); tokB <= tokA {
		t.Fatalf("b's token %d is not above a's %d", tokB, tokA)
	}
}

// TestStalledLeaderIsFenced: a leader stalls (as if SIGSTOPped between its
// leadership check and its write: its loop and its clock stop) past its
// lease; another instance takes over; the stale leader's write is rejected
// by Redis, the data is unchanged, and the stale leader steps down.
func TestStalledLeaderIsFenced(t *testing.T) {
	srv := redistest.Start(t)
	o := instOpts{ttl: 2 * time.Second, renew: 500 * time.Millisecond}
	a, b := leaderAndFollower(t, srv, o)

	set := FencedScript(`
redis.call('SET', KEYS[3], ARGV[3])
return tonumber(ARGV[2])
`)
	ctx := context.Background()
	_, tokA := a.l.IsLeader()
	res, err := a.l.Fenced(ctx, set, []string{"data"}, "v1")
	if err != nil {
		t.Fatalf("leader's fenced write: %v", err)
	}
	if res != tokA {
		t.Fatalf("script saw token %v, want %d", res, tokA)
	}

	a.clock.freeze()
	a.stall.stallAndWait(t)
	waitFor(t, 20*time.Second, "b to take over from the stalled a", func() bool { ok, _ := b.l.IsLeader(); return ok })
	_, tokB := b.l.IsLeader()
	if tokB <= tokA {
		t.Fatalf("b's token %d is not above a's %d", tokB, tokA)
	}
	if ok, tok := a.l.IsLeader(); !ok || tok != tokA {
		t.Fatalf("the stalled a should still believe it leads with %d (its clock stopped), got %v %d", tokA, ok, tok)
	}

	_, err = a.l.Fenced(ctx, set, []string{"data"}, "v2")
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("stale leader's write: err = %v, want ErrFenced", err)
	}
	if v, _ := srv.Do("GET", "data"); v != "v1" {
		t.Fatalf("data = %q after a fenced write, want v1", v)
	}
	if ok, _ := a.l.IsLeader(); ok {
		t.Fatal("a still believes it leads after its write was fenced")
	}
	if s := a.l.Status(); s.IsLeader || !strings.Contains(s.Reason, "fenced") {
		t.Fatalf("a's status after the fenced write = %+v", s)
	}

	a.clock.unfreeze()
	a.stall.resume()
	waitFor(t, 15*time.Second, "a's OnChange to report the fenced step-down", func() bool {
		for _, e := range a.eventsCopy() {
			if !e.IsLeader && strings.Contains(e.Reason, "fenced") {
				return true
			}
		}
		return false
	})
	waitFor(t, 15*time.Second, "a to follow b", func() bool { s := a.l.Status(); return s.LeaderInstanceID == "b" && s.FencingToken == tokB })
	if c := a.l.Counters(); c.Losses != 1 {
		t.Fatalf("a's counters %+v, want one loss", c)
	}
	if res, err := b.l.Fenced(ctx, set, []string{"data"}, "v3"); err != nil || res != tokB {
		t.Fatalf("new leader's fenced write = %v, %v", res, err)
	}
	if v, _ := srv.Do("GET", "data"); v != "v3" {
		t.Fatalf("data = %q, want v3", v)
	}
}

// TestStalledLeaderStepsDownByItsClock: a stalled leader whose clock runs
// stops believing it leads once its local deadline passes, before Redis
// expires its key, and its writes are refused without reaching Redis.
func TestStalledLeaderStepsDownByItsClock(t *testing.T) {
	srv := redistest.Start(t)
	o := instOpts{ttl: 1 * time.Second, renew: 200 * time.Millisecond}
	a := start(t, srv, "a", o)
	waitOneLeader(t, 15*time.Second, a)
	set := FencedScript(`redis.call('SET', KEYS[3], ARGV[3])`)
	a.stall.stallAndWait(t)
	waitFor(t, 15*time.Second, "a to stop believing it leads", func() bool { ok, _ := a.l.IsLeader(); return !ok })
	s := a.l.Status()
	if s.IsLeader || !strings.Contains(s.Reason, "local deadline") {
		t.Fatalf("status = %+v, want a local-deadline step-down", s)
	}
	if _, err := a.l.Fenced(context.Background(), set, []string{"data"}, "x"); !errors.Is(err, ErrFenced) {
		t.Fatalf("write after the local deadline: %v, want ErrFenced", err)
	}
	if v, _ := srv.Do("EXISTS", "data"); v != "0" {
		t.Fatal("a write was made after the local deadline")
	}
	a.stall.resume()
	waitFor(t, 15*time.Second, "OnChange to report the step-down", func() bool {
		for _, e := range a.eventsCopy() {
			if !e.IsLeader && strings.Contains(e.Reason, "deadline") {
				return true
			}
		}
		return false
	})
}

// TestRedisRestartKeepsTokensIncreasing: Redis dies; the leader steps down
// by its own clock once its lease could have expired; Redis comes back
// empty (fence counter gone); a leader is elected again with a token above
// every earlier one, and no instance ever saw a token go backwards.
func TestRedisRestartKeepsTokensIncreasing(t *testing.T) {
	srv := redistest.Start(t)
	o := instOpts{ttl: 2 * time.Second, renew: 500 * time.Millisecond}
	a, b := start(t, srv, "a", o), start(t, srv, "b", o)
	lead := waitOneLeader(t, 15*time.Second, a, b)
	_, tok1 := lead.l.IsLeader()
	waitFor(t, 15*time.Second, "both to agree on the leader", func() bool {
		return a.l.Status().FencingToken == tok1 && b.l.Status().FencingToken == tok1
	})

	if _, err := srv.Do("SET", "marker", "1"); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	killed := time.Now()
	waitFor(t, 15*time.Second, "the leader's OnChange to report the step-down", func() bool {
		s, ok := lead.lastEvent()
		return ok && !s.IsLeader
	})
	t.Logf("leader stepped down %s after Redis was killed (lease 2s, renew 500ms)", time.Since(killed).Round(time.Millisecond))
	if s, _ := lead.lastEvent(); !strings.Contains(s.Reason, "deadline") {
		t.Fatalf("step-down reason %q, want the local deadline", s.Reason)
	}
	if len(leaders(a, b)) != 0 {
		t.Fatal("an instance believes it leads while Redis is down")
	}
	if c := lead.l.Counters(); c.RenewErrors == 0 || c.Losses != 1 {
		t.Fatalf("leader counters %+v, want renew errors and one loss", c)
	}

	srv.Restart()
	if v, _ := srv.Do("EXISTS", "marker"); v != "0" {
		t.Fatal("Redis did not restart empty")
	}
	lead2 := waitOneLeader(t, 20*time.Second, a, b)
	_, tok2 := lead2.l.IsLeader()
	if tok2 <= tok1 {
		t.Fatalf("token after the empty restart %d is not above %d", tok2, tok1)
	}
	waitFor(t, 15*time.Second, "both to see the new token", func() bool {
		return a.l.Status().FencingToken == tok2 && b.l.Status().FencingToken == tok2
	})
	assertNonDecreasing(t, "a", tokensSeen(a))
	assertNonDecreasing(t, "b", tokensSeen(b))
	t.Logf("tokens: before %d, after the empty restart %d (leader %s then %s)", tok1, tok2, lead.id, lead2.id)
}

// TestAcquireRaisesFenceToFloor: an acquirer that has seen a token above
// the fence counter (and above Redis's clock) gets a token above it.
func TestAcquireRaisesFenceToFloor(t *testing.T) {
	srv := redistest.Start(t)
	floor := time.Now().UnixMilli() + 1_000_000_000
	a := start(t, srv, "a", instOpts{ttl: 2 * time.Second, renew: 500 * time.Millisecond, highest: floor})
	waitOneLeader(t, 15*time.Second, a)
	if _, tok := a.l.IsLeader(); tok != floor+1 {
		t.Fatalf("token %d, want the floor %d + 1", tok, floor)
	}
	if f, _ := srv.Do("GET", testPrefix+":fence"); f != strconv.FormatInt(floor+1, 10) {
		t.Fatalf("fence counter %q, want %d", f, floor+1)
	}
}

// TestFencedRefusals: a script without the prelude and a write by a
// follower are refused; neither touches the data.
func TestFencedRefusals(t *testing.T) {
	srv := redistest.Start(t)
	o := instOpts{ttl: 2 * time.Second, renew: 300 * time.Millisecond}
	a, b := leaderAndFollower(t, srv, o)
	ctx := context.Background()

	plain := redis.NewScript(`redis.call('SET', KEYS[1], 'x')`)
	if _, err := a.l.Fenced(ctx, plain, []string{"data"}); err == nil || !strings.Contains(err.Error(), "FencedScript") {
		t.Fatalf("plain script: err = %v, want a refusal naming FencedScript", err)
	}
	set := FencedScript(`redis.call('SET', KEYS[3], ARGV[3]) return 'ok'`)
	if _, err := b.l.Fenced(ctx, set, []string{"data"}, "b"); !errors.Is(err, ErrFenced) {
		t.Fatalf("follower's write: err = %v, want ErrFenced", err)
	}
	if v, _ := srv.Do("EXISTS", "data"); v != "0" {
		t.Fatal("a refused write reached Redis")
	}
	if res, err := a.l.Fenced(ctx, set, []string{"data"}, "a"); err != nil || res != "ok" {
		t.Fatalf("leader's write = %v, %v", res, err)
	}
	// A body that returns nothing gives redis.Nil, as go-redis does.
	empty := FencedScript(`return false`)
	if _, err := a.l.Fenced(ctx, empty, nil); !errors.Is(err, redis.Nil) {
		t.Fatalf("nil reply: err = %v, want redis.Nil", err)
	}
	if ok, _ := a.l.IsLeader(); !ok {
		t.Fatal("a non-fenced error made the leader step down")
	}
}

func TestRunTwiceReturns(t *testing.T) {
	srv := redistest.Start(t)
	a := start(t, srv, "a", instOpts{ttl: 2 * time.Second, renew: 500 * time.Millisecond})
	waitOneLeader(t, 15*time.Second, a) // the first Run is running
	done := make(chan struct{})
	go func() { a.l.Run(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a second Run did not return")
	}
}

// TestIsLeaderAllocatesNothing: IsLeader may sit on a request path.
func TestIsLeaderAllocatesNothing(t *testing.T) {
	srv := redistest.Start(t)
	a := start(t, srv, "a", instOpts{ttl: 2 * time.Second, renew: 500 * time.Millisecond})
	waitOneLeader(t, 15*time.Second, a)
	if n := testing.AllocsPerRun(1000, func() { _, _ = a.l.IsLeader() }); n != 0 {
		t.Fatalf("IsLeader allocates %v times per call", n)
	}
}

// TestLeaderPastLocalDeadlineStepsDown: a leader whose own clock says its
// lease could have expired steps down (and OnChange says so) even if its
// key is still alive in Redis; it then acquires again with a new token
// rather than silently going on with the old one.
func TestLeaderPastLocalDeadlineStepsDown(t *testing.T) {
	srv := redistest.Start(t)
	a := start(t, srv, "a", instOpts{ttl: 30 * time.Second, renew: 200 * time.Millisecond})
	waitOneLeader(t, 15*time.Second, a)
	_, tok1 := a.l.IsLeader()
	a.clock.advance(29 * time.Second) // past the local deadline (30 s - 1 s margin), key still alive
	waitFor(t, 15*time.Second, "OnChange to report the step-down", func() bool {
		for _, e := range a.eventsCopy() {
			if !e.IsLeader && strings.Contains(e.Reason, "deadline") {
				return true
			}
		}
		return false
	})
	waitFor(t, 15*time.Second, "a to lead again with a new token", func() bool {
		ok, tok := a.l.IsLeader()
		return ok && tok > tok1
	})
	if c := a.l.Counters(); c.Losses != 1 || c.Acquisitions != 2 {
		t.Fatalf("counters %+v, want one loss and two acquisitions", c)
	}
}

// TestFencedByMovedCounterReacquires: if the fence counter moves under a
// leader whose key is still in place (an operator, a failover that lost
// writes), its next write is fenced; it steps down, frees its key and
// acquires again with a new token, and writes with that succeed.
func TestFencedByMovedCounterReacquires(t *testing.T) {
	srv := redistest.Start(t)
	a := start(t, srv, "a", instOpts{ttl: 30 * time.Second, renew: 200 * time.Millisecond})
	waitOneLeader(t, 15*time.Second, a)
	_, tok1 := a.l.IsLeader()
	if _, err := srv.Do("INCR", testPrefix+":fence"); err != nil {
		t.Fatal(err)
	}
	set := FencedScript(`redis.call('SET', KEYS[3], ARGV[3]) return 1`)
	if _, err := a.l.Fenced(context.Background(), set, []string{"data"}, "x"); !errors.Is(err, ErrFenced) {
		t.Fatalf("write after the counter moved: %v, want ErrFenced", err)
	}
	waitFor(t, 15*time.Second, "a to lead again with a new token", func() bool {
		ok, tok := a.l.IsLeader()
		return ok && tok > tok1+1
	})
	if _, err := a.l.Fenced(context.Background(), set, []string{"data"}, "y"); err != nil {
		t.Fatalf("write with the new token: %v", err)
	}
	if v, _ := srv.Do("GET", "data"); v != "y" {
		t.Fatalf("data = %q, want y", v)
	}
	var sawFenced bool
	for _, e := range a.eventsCopy() {
		sawFenced = sawFenced || (!e.IsLeader && strings.Contains(e.Reason, "fenced"))
	}
	if !sawFenced {
		t.Fatalf("no OnChange reported the fenced step-down: %+v", a.eventsCopy())
	}
}
