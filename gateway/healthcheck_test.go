package gateway

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maxine-io/maxine/registry"
)

// healthBackend answers its health path with the status in health and
// counts the other requests in work.
func healthBackend(t *testing.T, name, path string) (b *backend, health *atomic.Int32, work *atomic.Int64) {
	health, work = new(atomic.Int32), new(atomic.Int64)
	health.Store(200)
	b = startBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == path {
			w.WriteHeader(int(health.Load()))
			return
		}
		work.Add(1)
		w.Header().Set("X-Node", name)
	})
	b.keep = false
	return b, health, work
}

func fastHealth(o *Options) {
	o.Health = HealthOptions{Enabled: true, Interval: 20 * time.Millisecond, Timeout: time.Second, FailThreshold: 2, PassThreshold: 2}
}

func TestActiveHealthCheck(t *testing.T) {
	f := newFixture(t, fastHealth)
	a, aHealth, aWork := healthBackend(t, "a", "/base/health")
	b, _, bWork := healthBackend(t, "b", "/health")
	f.register("svc", "a", a, 1, func(r *registry.Registration) { r.Path = "/base"; r.HealthCheckPath = "health" })
	f.register("svc", "b", b, 1, func(r *registry.Registration) { r.HealthCheckPath = "/health" })
	f.waitNodes("svc", 2)

	aHealth.Store(500)
	waitFor(t, "a marked down", func() bool {
		_, healthy, _ := f.p.NodeStatus("svc", "a-0")
		return !healthy
	})
	rep := f.p.Upstreams()
	if len(rep.UnhealthyNodes) != 1 || rep.UnhealthyNodes[0] != "svc/a" || rep.FailureCounts["svc/a"] < 2 {
		t.Fatalf("report %+v", rep)
	}
	for _, n := range rep.Nodes {
		if n.Node == "a" && (n.Healthy || n.LastError != "status 500" || n.LastCheck == 0) {
			t.Fatalf("node a detail %+v", n)
		}
	}
	before := aWork.Load()
	for range 10 {
		if status, hdr, _ := f.do("GET", "/svc/x", nil, nil); status != 200 || hdr.Get("X-Node") != "b" {
			t.Fatalf("got %d from %q with a down", status, hdr.Get("X-Node"))
		}
	}
	if aWork.Load() != before || bWork.Load() < 10 {
		t.Fatal("a down node got traffic")
	}

	aHealth.Store(200)
	waitFor(t, "a marked up", func() bool {
		_, healthy, _ := f.p.NodeStatus("svc", "a-0")
		return healthy
	})
	waitFor(t, "health events", func() bool {
		return f.events.has(&f.events.health, "svc/a down") && f.events.has(&f.events.health, "svc/a up")
	})
	if len(f.p.Upstreams().UnhealthyNodes) != 0 {
		t.Fatal("still reported unhealthy")
	}
}

// The global Health.Path probes nodes without a healthCheckPath; Evict
// deregisters a failing node.
func TestHealthCheckEvict(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		fastHealth(o)
		o.Health.Path = "/status"
		o.Health.Evict = true
	})
	a, aHealth, _ := healthBackend(t, "a", "/status")
	b, _, _ := healthBackend(t, "b", "/status")
	f.register("svc", "a", a, 1, nil)
	f.register("svc", "b", b, 1, nil)
	f.waitNodes("svc", 2)
	aHealth.Store(503)
	f.waitNodes("svc", 1)
	if snap := f.reg.Snapshot("svc"); snap == nil || len(snap.Nodes) != 1 || snap.Nodes[0].Parent != "b" {
		t.Fatalf("registry after eviction: %+v", snap)
	}
	waitFor(t, "eviction event", func() bool { return f.events.has(&f.events.evicted, "svc/a") })
}

// A follower (Leader false) does not probe.
func TestHealthCheckLeaderOnly(t *testing.T) {
	var probes, rounds atomic.Int64
	f := newFixture(t, func(o *Options) {
		fastHealth(o)
		o.Health.Leader = func() bool { rounds.Add(1); return false }
	})
	b := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) { probes.Add(1) })
	f.register("svc", "a", b, 1, func(r *registry.Registration) { r.HealthCheckPath = "/h" })
	f.waitNodes("svc", 1)
	start := rounds.Load()
	waitFor(t, "three probe rounds", func() bool { return rounds.Load() >= start+3 })
	if probes.Load() != 0 {
		t.Fatalf("a follower sent %d probes", probes.Load())
	}
}
