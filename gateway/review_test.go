package gateway

import (
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/registry"
)

// Tests for the logic races found in the review of issue 11. Each drives
// the real batch-apply code with the interleaving injected at the point
// the review named, and failed against the code before its fix.

// drivenProxy is a Proxy whose Run is not started: the test takes the
// registry's events itself and applies them with applyEvents, the code Run
// uses, so it chooses exactly where a concurrent change lands.
type drivenProxy struct {
	t       *testing.T
	reg     *registry.Registry
	p       *Proxy
	sub     *registry.Subscription
	batches map[string]*eventBatch
	url     string
}

func newDrivenProxy(t *testing.T, mod func(*Options)) *drivenProxy {
	t.Helper()
	d := &drivenProxy{t: t, reg: registry.New(registry.Options{}), batches: map[string]*eventBatch{}}
	o := Options{Registry: d.reg, Settings: config.New(config.Defaults()), TryTimeout: 5 * time.Second, Deadline: 10 * time.Second}
	if mod != nil {
		mod(&o)
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	d.p = p
	d.sub = d.reg.Subscribe(0)
	srv := NewServer(p, ServerOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.url = "http://" + ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { _ = srv.Shutdown() })
	return d
}

// take returns the events queued since the last take.
func (d *drivenProxy) take() []registry.Event {
	evs, overflowed := d.sub.Take(nil)
	if overflowed {
		d.t.Fatal("subscription overflowed")
	}
	return evs
}

func (d *drivenProxy) apply(evs []registry.Event) { d.p.applyEvents(evs, false, d.batches) }

func (d *drivenProxy) register(service, node string, b *backend) {
	d.t.Helper()
	r := registry.Registration{ServiceName: service, NodeName: node, HostName: "127.0.0.1", Port: b.port, TimeOut: 600, Weight: 1}
	if _, err := d.reg.Register(r); err != nil {
		d.t.Fatal(err)
	}
}

// get sends one request to service through the gateway listener.
func (d *drivenProxy) get(service string) (int, string) {
	d.t.Helper()
	req, _ := http.NewRequest("GET", d.url+"/x", nil)
	req.Header.Set("X-Maxine-Service", service)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// Issue 11 item 1: the gateway took [x left, a registered]; before it read
// the snapshot, a left (the service emptied, its record deleted) and b
// registered. With per-service versions b's snapshot had the version the
// batch ended at, the fast path attached only a, and b was published with
// no upstream: 503 until the membership changed again.
func TestBatchSurvivesServiceRefilledBeforeSnapshotRead(t *testing.T) {
	x, a, b := startBackend(t, "x", nil), startBackend(t, "a", nil), startBackend(t, "b", nil)
	d := newDrivenProxy(t, nil)
	d.register("orders", "x", x)
	d.apply(d.take())
	if st, body := d.get("orders"); st != 200 || body != "x" {
		t.Fatalf("before: %d %q", st, body)
	}

	d.reg.Deregister("orders", "x")
	d.register("orders", "a", a)
	batch := d.take()
	// The interleaving: both land after the gateway's Take and before its
	// snapshot read.
	d.reg.Deregister("orders", "a")
	d.register("orders", "b", b)
	d.apply(batch)
	d.apply(d.take())
	d.apply(d.take()) // and any later batch finds nothing to repair

	for i := range 3 {
		if st, body := d.get("orders"); st != 200 || body != "b" {
			t.Fatalf("request %d: %d %q, want 200 from b", i, st, body)
		}
	}
}

// Issue 11 item 2: on the slow path dropIfGone judged the batch's "gone"
// nodes by the snapshot read before applyLocked, which reads a newer one.
// A node deregistered and registered again at the same address between the
// two reads was re-attached, then retired: routed through an upstream the
// health checker skips and the service's index lacks.
func TestSlowPathKeepsNodeThatCameBack(t *testing.T) {
	a, c, e := startBackend(t, "a", nil), startBackend(t, "c", nil), startBackend(t, "e", nil)
	d := newDrivenProxy(t, nil)
	d.register("orders", "a", a)
	d.register("orders", "c", c)
	d.apply(d.take())

	d.reg.Deregister("orders", "a")
	batch := d.take()            // [a deregistered]
	d.register("orders", "e", e) // the snapshot moves on: the slow path
	var once atomic.Bool
	d.p.afterSnapshotRead = func(string) {
		if once.CompareAndSwap(false, true) {
			d.register("orders", "a", a) // back, same address, between the reads
		}
	}
	d.apply(batch)
	d.p.afterSnapshotRead = nil
	d.apply(d.take())

	d.p.mu.Lock()
	svc := d.p.services["orders"]
	tab := svc.table.Load()
	u := tab.parent("a")
	indexed := svc.upstreams["a"]
	d.p.mu.Unlock()
	if u == nil {
		t.Fatal("a has no upstream in the table")
	}
	if u.retired.Load() {
		t.Fatal("a is routed through a retired upstream")
	}
	if indexed != u {
		t.Fatalf("service index has %p for a, table routes through %p", indexed, u)
	}
}

// Issue 11 item 3: eviction deregistered by name, so a probe of the old
// address that failed while the node re-registered at a new address
// removed the new, healthy registration.
func TestEvictionSparesReRegistrationAtNewAddress(t *testing.T) {
	old, moved := startBackend(t, "old", nil), startBackend(t, "new", nil)
	d := newDrivenProxy(t, func(o *Options) {
		o.Health = HealthOptions{Enabled: true, Evict: true, FailThreshold: 1, PassThreshold: 1, Interval: time.Hour, Timeout: time.Second}
	})
	d.register("orders", "a", old)
	d.apply(d.take())
	d.p.mu.Lock()
	probed := d.p.services["orders"].table.Load().parent("a")
	d.p.mu.Unlock()

	d.register("orders", "a", moved) // re-registers while the probe is in flight
	d.p.recordProbe(probed, "connection refused")

	s := d.reg.Snapshot("orders")
	if s == nil || s.Parent("a") == nil {
		t.Fatal("the new registration of a was evicted by a probe of its old address")
	}
	if got := s.Parent("a").Address; got != "http://"+moved.addr {
		t.Fatalf("a is at %s", got)
	}
	// The registration that was probed is evicted.
	d.apply(d.take())
	d.p.mu.Lock()
	cur := d.p.services["orders"].table.Load().parent("a")
	d.p.mu.Unlock()
	d.p.recordProbe(cur, "")
	for range 2 {
		d.p.recordProbe(cur, "connection refused")
	}
	if d.reg.Snapshot("orders") != nil {
		t.Fatal("the probed registration was not evicted")
	}
}

// Issue 11 item 4: outlier ejection counted usable nodes and stored the
// ejection as two steps, so two nodes of a two-node service failing at
// once could both be ejected. The seam runs the second node's whole
// failure inside the first one's step; before the fix it completed there
// and both nodes ended ejected.
func TestOutlierEjectionNeverExceedsHalf(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	d := newDrivenProxy(t, func(o *Options) {
		o.OutlierConsecutive5xx = 1
		o.OutlierEjectionTime = time.Hour
	})
	d.register("orders", "a", a)
	d.register("orders", "b", b)
	d.apply(d.take())
	d.p.mu.Lock()
	tab := d.p.services["orders"].table.Load()
	d.p.mu.Unlock()
	ua, ub := tab.parent("a"), tab.parent("b")

	var wg sync.WaitGroup
	var once atomic.Bool
	d.p.afterEjectCount = func() {
		if !once.CompareAndSwap(false, true) {
			return
		}
		wg.Add(1)
		fin := make(chan struct{})
		go func() {
			defer wg.Done()
			defer close(fin)
			d.p.observe(tab, ub, true, false)
		}()
		select {
		case <-fin: // only possible when the two steps are not one
		case <-time.After(200 * time.Millisecond):
		}
	}
	d.p.observe(tab, ua, true, false)
	wg.Wait()
	if !ua.usable() && !ub.usable() {
		t.Fatal("both nodes of a two-node service were ejected")
	}
	if ua.usable() && ub.usable() {
		t.Fatal("neither node was ejected")
	}
	if n := tab.usableNodes(); n != 1 {
		t.Fatalf("usable nodes = %d, want 1", n)
	}
}
