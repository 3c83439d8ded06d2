package registry

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct{ ns atomic.Int64 }

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func reg(svc, node string, weight, timeout int) Registration {
	return Registration{ServiceName: svc, NodeName: node, HostName: "127.0.0.1", Port: 8000, Weight: weight, TimeOut: timeout}
}

func names(s *Snapshot) []string {
	if s == nil {
		return nil
	}
	out := make([]string, len(s.Nodes))
	for i, n := range s.Nodes {
		out[i] = n.Name
	}
	return out
}

func TestVirtualNodesAndReRegistration(t *testing.T) {
	r := New(Options{})
	if _, err := r.Register(reg("orders", "a", 3, 5)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register(reg("orders", "b", 1, 5)); err != nil {
		t.Fatal(err)
	}
	s := r.Snapshot("orders")
	want := []string{"a-0", "b-0", "a-1", "a-2"}
	if fmt.Sprint(names(s)) != fmt.Sprint(want) {
		t.Fatalf("nodes = %v, want %v", names(s), want)
	}
	for _, n := range s.Nodes {
		if n.Parent != n.Name[:1] || n.Address != "http://127.0.0.1:8000" || n.Service != "orders" {
			t.Fatalf("bad node %+v", n)
		}
	}
	v := s.Version
	// Weight change shrinks the set atomically: one new snapshot, a-1 and a-2 gone.
	res, err := r.Register(reg("orders", "a", 1, 5))
	if err != nil || !res.Changed() || res.Kind != NodeUpdated {
		t.Fatalf("re-registration: %+v %v", res, err)
	}
	s2 := r.Snapshot("orders")
	if fmt.Sprint(names(s2)) != "[a-0 b-0]" || s2.Version != v+1 {
		t.Fatalf("after shrink: %v v%d", names(s2), s2.Version)
	}
	// The old snapshot is untouched (immutable).
	if fmt.Sprint(names(s)) != fmt.Sprint(want) {
		t.Fatalf("old snapshot changed: %v", names(s))
	}
	if s.RR != s2.RR {
		t.Fatal("round-robin counter not shared across snapshots")
	}
	if r.Len() != 2 {
		t.Fatalf("Len = %d", r.Len())
	}
}

func TestHeartbeatKeepsSnapshot(t *testing.T) {
	c := newClock()
	r := New(Options{Now: c.Now})
	r.Register(reg("s", "n", 2, 5))
	s := r.Snapshot("s")
	g := r.Generation()
	c.Advance(time.Second)
	res, err := r.Register(reg("s", "n", 2, 5))
	if err != nil || res.Changed() || res.Kind != NodeHeartbeat {
		t.Fatalf("heartbeat: %+v %v", res, err)
	}
	if r.Snapshot("s") != s {
		t.Fatal("heartbeat replaced the snapshot")
	}
	if r.Generation() == g {
		t.Fatal("heartbeat did not bump the generation")
	}
	if got := s.Nodes[0].RegisteredAt(); got != c.Now().UnixMilli() {
		t.Fatalf("registeredAt = %d, want %d", got, c.Now().UnixMilli())
	}
}

func TestExpiry(t *testing.T) {
	c := newClock()
	r := New(Options{Now: c.Now})
	r.Register(reg("s", "short", 1, 1))
	r.Register(reg("s", "long", 1, 10))
	r.Register(reg("t", "x", 1, 3))
	tests := []struct {
		advance time.Duration
		expired int
		left    []string
	}{
		{1 * time.Second, 0, []string{"long-0", "short-0"}},
		{501 * time.Millisecond, 1, []string{"long-0"}},
		{2 * time.Second, 1, []string{"long-0"}}, // t/x gone at 3.5 s
		{7 * time.Second, 1, nil},
	}
	for i, tc := range tests {
		c.Advance(tc.advance)
		if n := r.ExpireDue(c.Now()); n != tc.expired {
			t.Fatalf("step %d: expired %d, want %d", i, n, tc.expired)
		}
		if fmt.Sprint(names(r.Snapshot("s"))) != fmt.Sprint(tc.left) {
			t.Fatalf("step %d: nodes %v, want %v", i, names(r.Snapshot("s")), tc.left)
		}
	}
	if r.Snapshot("t") != nil || r.Len() != 0 {
		t.Fatal("registry not empty after every node expired")
	}
}

func TestHeartbeatPostponesExpiry(t *testing.T) {
	c := newClock()
	r := New(Options{Now: c.Now})
	r.Register(reg("s", "n", 1, 2))
	for i := 0; i < 10; i++ {
		c.Advance(2 * time.Second)
		r.Register(reg("s", "n", 1, 2))
		if r.ExpireDue(c.Now()) != 0 {
			t.Fatalf("expired despite heartbeat at step %d", i)
		}
	}
	c.Advance(2501 * time.Millisecond)
	if r.ExpireDue(c.Now()) != 1 {
		t.Fatal("did not expire after heartbeats stopped")
	}
}

func TestDeregister(t *testing.T) {
	r := New(Options{})
	r.Register(reg("s", "a", 2, 5))
	r.Register(reg("s", "b", 1, 5))
	if r.Deregister("s", "zzz") || r.Deregister("nope", "a") {
		t.Fatal("deregistered an unknown node")
	}
	if !r.Deregister("s", "a") {
		t.Fatal("Deregister(a) = false")
	}
	if fmt.Sprint(names(r.Snapshot("s"))) != "[b-0]" {
		t.Fatalf("nodes %v", names(r.Snapshot("s")))
	}
	if r.ExpireDue(time.Now().Add(time.Hour)) != 1 {
		t.Fatal("a deregistered node stayed in the expiry heap")
	}
}

func TestEventsOrderedAndOverflow(t *testing.T) {
	c := newClock()
	r := New(Options{Now: c.Now})
	sub := r.Subscribe(3)
	r.Register(reg("s", "a", 1, 1))
	r.Register(reg("s", "a", 1, 1)) // heartbeat: no event
	r.Register(reg("s", "a", 2, 1))
	r.Deregister("s", "a")
	evs, over := sub.Take(nil)
	if over {
		t.Fatal("unexpected overflow")
	}
	kinds := []EventKind{NodeRegistered, NodeUpdated, NodeDeregistered}
	if len(evs) != len(kinds) {
		t.Fatalf("events %+v", evs)
	}
	for i, ev := range evs {
		if ev.Kind != kinds[i] || ev.Seq != evs[0].Seq+uint64(i) || ev.Version != uint64(i+1) || ev.Service != "s" || ev.Node != "a" {
			t.Fatalf("event %d = %+v", i, ev)
		}
	}
	select {
	case <-sub.Ready():
	default:
		t.Fatal("Ready not signalled")
	}
	for i := 0; i < 5; i++ {
		r.Register(reg("s", fmt.Sprint("n", i), 1, 1))
	}
	if _, over := sub.Take(nil); !over {
		t.Fatal("overflow not reported")
	}
	r.Unsubscribe(sub)
	r.Register(reg("s", "late", 1, 1))
	if evs, _ := sub.Take(nil); len(evs) != 0 {
		t.Fatal("events after Unsubscribe")
	}
	c.Advance(10 * time.Second)
	sub2 := r.Subscribe(0)
	r.ExpireDue(c.Now())
	evs, _ = sub2.Take(nil)
	if len(evs) != 6 || evs[0].Kind != NodeExpired {
		t.Fatalf("expiry events %+v", evs)
	}
}

func TestMaxNodes(t *testing.T) {
	r := New(Options{MaxNodes: 2})
	r.Register(reg("s", "a", 1, 5))
	r.Register(reg("s", "b", 1, 5))
	if _, err := r.Register(reg("t", "c", 1, 5)); err != ErrFull {
		t.Fatalf("err = %v, want ErrFull", err)
	}
	if r.Snapshot("t") != nil {
		t.Fatal("refused registration left a service behind")
	}
	if _, err := r.Register(reg("s", "a", 3, 5)); err != nil {
		t.Fatalf("re-registration of an existing node refused when full: %v", err)
	}
}

func TestExportRestore(t *testing.T) {
	c := newClock()
	r := New(Options{Now: c.Now})
	r.Register(Registration{ServiceName: "s", NodeName: "a", HostName: "h", Port: 1, Weight: 3, TimeOut: 10, Metadata: map[string]string{"zone": "a"}})
	r.Register(reg("s", "b", 1, 1))
	state := r.Export()
	if len(state) != 2 {
		t.Fatalf("export %d nodes", len(state))
	}
	c.Advance(2 * time.Second) // b has expired by now
	r2 := New(Options{Now: c.Now})
	restored, skipped := r2.Restore(state, c.Now())
	if restored != 1 || skipped != 1 {
		t.Fatalf("restored %d skipped %d", restored, skipped)
	}
	s := r2.Snapshot("s")
	if fmt.Sprint(names(s)) != "[a-0 a-1 a-2]" || s.Nodes[0].Metadata["zone"] != "a" {
		t.Fatalf("restored snapshot %v", names(s))
	}
	if s.Nodes[0].RegisteredAt() != state[0].RegisteredAt && s.Nodes[0].RegisteredAt() != state[1].RegisteredAt {
		t.Fatal("registeredAt not restored")
	}
	// The restored deadline is kept: a expires 10.5 s after its registration.
	c.Advance(8*time.Second + 400*time.Millisecond)
	if r2.ExpireDue(c.Now()) != 0 {
		t.Fatal("expired early")
	}
	c.Advance(200 * time.Millisecond)
	if r2.ExpireDue(c.Now()) != 1 {
		t.Fatal("restored deadline not kept")
	}
	bad := []NodeState{{Registration: Registration{ServiceName: "", NodeName: "x", HostName: "h", Weight: 1, TimeOut: 1}, ExpiresAt: c.Now().Add(time.Hour).UnixMilli()}}
	if restored, skipped := r2.Restore(bad, c.Now()); restored != 0 || skipped != 1 {
		t.Fatal("invalid restored state accepted")
	}
}

func TestDerivedCachedPerSnapshot(t *testing.T) {
	r := New(Options{})
	r.Register(reg("s", "a", 2, 5))
	s := r.Snapshot("s")
	calls := 0
	build := func(s *Snapshot) any { calls++; return len(s.Nodes) }
	first := s.Derived(build).(int)
	second := s.Derived(build).(int)
	if first != 2 || second != 2 || calls != 1 {
		t.Fatalf("Derived built %d times", calls)
	}
}

// TestConcurrentReadersAndWriters runs under -race: readers walk snapshots
// while writers register, heartbeat, deregister and expire.
func TestConcurrentReadersAndWriters(t *testing.T) {
	r := New(Options{})
	sub := r.Subscribe(0)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				node := fmt.Sprint("n", i%50)
				r.Register(reg(fmt.Sprint("svc", w%2), node, 1+i%10, 1))
				if i%7 == 0 {
					r.Deregister(fmt.Sprint("svc", w%2), node)
				}
				if i%100 == 0 {
					r.ExpireDue(time.Now().Add(time.Duration(i) * time.Millisecond))
				}
			}
		}(w)
	}
	var readers sync.WaitGroup
	for g := 0; g < 2; g++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if s := r.Snapshot("svc0"); s != nil {
					for _, n := range s.Nodes {
						_ = n.Address
						_ = n.RegisteredAt()
					}
				}
				r.Range(func(*Snapshot) bool { return true })
				sub.Take(nil)
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	total := 0
	r.Range(func(s *Snapshot) bool {
		for _, n := range s.Nodes {
			if n.Name == n.Parent+"-0" {
				total++
			}
		}
		return true
	})
	if total != r.Len() {
		t.Fatalf("snapshots hold %d parents, Len says %d", total, r.Len())
	}
}

func TestAttachmentFollowsTheRegistration(t *testing.T) {
	r := New(Options{})
	r.Register(reg("s", "a", 2, 5))
	s := r.Snapshot("s")
	s.Nodes[0].Attach("state")
	if s.Nodes[1].Attachment() != "state" {
		t.Fatal("virtual nodes of one registration do not share the attachment")
	}
	r.Register(reg("s", "a", 2, 5)) // heartbeat
	r.Register(reg("s", "b", 1, 5)) // another node
	if r.Snapshot("s").Nodes[0].Attachment() != "state" {
		t.Fatal("attachment lost across unrelated changes")
	}
	r.Register(reg("s", "a", 3, 5)) // changed registration: a new record
	if r.Snapshot("s").Nodes[0].Attachment() != nil {
		t.Fatal("a changed registration kept the old attachment")
	}
}

func TestSnapshotParents(t *testing.T) {
	r := New(Options{})
	for _, n := range []string{"c", "a", "b"} {
		r.Register(reg("s", n, 2, 5))
	}
	s := r.Snapshot("s")
	if len(s.Parents) != 3 || s.Parents[0].Name != "a-0" || s.Parents[2].Name != "c-0" {
		t.Fatalf("parents %v", s.Parents)
	}
	if s.Parent("b") != s.Parents[1] || s.Parent("zz") != nil || s.Parent("") != nil {
		t.Fatal("Parent lookup")
	}
}
