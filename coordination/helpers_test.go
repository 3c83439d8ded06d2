package coordination

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/maxine-io/maxine/internal/redistest"
)

const testPrefix = "maxine:test"

// instance is one Lease under test with its own client, clock, stall switch
// and the OnChange events it received.
type instance struct {
	id     string
	l      *Lease
	client *redis.Client
	clock  *testClock
	stall  *staller
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	events []Status
}

type instOpts struct {
	ttl, renew time.Duration
	admin      string
	highest    int64 // initial highest seen token
}

func newClient(t *testing.T, srv *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                  srv.Addr(),
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// start creates and runs a Lease named id on srv; t.Cleanup stops it.
func start(t *testing.T, srv *redistest.Server, id string, o instOpts) *instance {
	t.Helper()
	in := &instance{id: id, client: newClient(t, srv), clock: &testClock{}, stall: &staller{}, done: make(chan struct{})}
	l, err := New(Options{
		Client:        in.client,
		Prefix:        testPrefix,
		InstanceID:    id,
		AdminAddr:     o.admin,
		GatewayAddr:   "gw-" + id,
		LeaseTTL:      o.ttl,
		RenewInterval: o.renew,
		Logger:        zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel),
		OnChange: func(s Status) {
			in.mu.Lock()
			in.events = append(in.events, s)
			in.mu.Unlock()
		},
		Now: in.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	l.beforeSelect = in.stall.hook
	l.highest = o.highest
	in.l = l
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	go func() {
		defer close(in.done)
		l.Run(ctx)
	}()
	t.Cleanup(in.stop)
	return in
}

// stop cancels Run and waits (at most 10 s) for it to return.
func (in *instance) stop() {
	in.stall.resume()
	in.cancel()
	select {
	case <-in.done:
	case <-time.After(10 * time.Second):
		panic("coordination test: Run did not return 10 s after cancel")
	}
}

func (in *instance) eventsCopy() []Status {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]Status(nil), in.events...)
}

func (in *instance) lastEvent() (Status, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.events) == 0 {
		return Status{}, false
	}
	return in.events[len(in.events)-1], true
}

// testClock is the real clock, shifted by advance, until frozen.
type testClock struct {
	frozen atomic.Pointer[time.Time]
	offset atomic.Int64 // ns
}

func (c *testClock) Now() time.Time {
	if f := c.frozen.Load(); f != nil {
		return *f
	}
	return time.Now().Add(time.Duration(c.offset.Load()))
}

func (c *testClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

func (c *testClock) freeze()   { now := time.Now(); c.frozen.Store(&now) }
func (c *testClock) unfreeze() { c.frozen.Store(nil) }

// staller stops a Run loop between ticks, as SIGSTOP would: while stalled
// it neither renews, nor acquires, nor steps down.
type staller struct {
	mu      sync.Mutex
	gate    chan struct{} // nil when running
	entered chan struct{} // closed when the loop is parked in the gate
}

func (s *staller) hook(ctx context.Context) {
	s.mu.Lock()
	gate, entered := s.gate, s.entered
	s.mu.Unlock()
	if gate == nil {
		return
	}
	select {
	case <-entered:
	default:
		close(entered)
	}
	select {
	case <-gate:
	case <-ctx.Done():
	}
}

// stallAndWait stalls the loop and waits (at most 10 s) until it is parked.
func (s *staller) stallAndWait(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	s.gate, s.entered = make(chan struct{}), make(chan struct{})
	entered := s.entered
	s.mu.Unlock()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the Run loop did not reach its stall point in 10 s")
	}
}

func (s *staller) resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
}

// waitFor polls cond every 10 ms for at most limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leaders returns the instances that believe they lead.
func leaders(ins ...*instance) []*instance {
	var out []*instance
	for _, in := range ins {
		if ok, _ := in.l.IsLeader(); ok {
			out = append(out, in)
		}
	}
	return out
}

// waitOneLeader waits until exactly one of ins leads and returns it.
func waitOneLeader(t *testing.T, limit time.Duration, ins ...*instance) *instance {
	t.Helper()
	var got *instance
	waitFor(t, limit, "exactly one leader", func() bool {
		ls := leaders(ins...)
		if len(ls) == 1 {
			got = ls[0]
			return true
		}
		return false
	})
	return got
}

// tokensSeen returns the non-zero tokens in in's events, in order.
func tokensSeen(in *instance) []int64 {
	var out []int64
	for _, e := range in.eventsCopy() {
		if e.FencingToken != 0 {
			out = append(out, e.FencingToken)
		}
	}
	return out
}

func assertNonDecreasing(t *testing.T, who string, toks []int64) {
	t.Helper()
	for i := 1; i < len(toks); i++ {
		if toks[i] < toks[i-1] {
			t.Fatalf("%s saw token %d after %d: tokens went backwards: %v", who, toks[i], toks[i-1], toks)
		}
	}
}

// leaderAndFollower starts instance "a", waits until it leads, then starts
// "b" and waits until b sees a as the leader.
func leaderAndFollower(t *testing.T, srv *redistest.Server, o instOpts) (a, b *instance) {
	t.Helper()
	a = start(t, srv, "a", o)
	waitOneLeader(t, 15*time.Second, a)
	b = start(t, srv, "b", o)
	waitFor(t, 15*time.Second, "b to see a as leader", func() bool { return b.l.Status().LeaderInstanceID == "a" })
	return a, b
}
