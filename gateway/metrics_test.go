package gateway

import (
	"bytes"
	"strings"
	"testing"
)

func TestMetrics(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Breaker.Disabled = true })
	ok := startBackend(t, "ok", nil)
	f.register("svc", "ok", ok, 1, nil)
	dead := startBackend(t, "dead", nil)
	f.register(`we"ird`, "dead", dead, 1, nil)
	dead.kill()
	f.waitNodes("svc", 1)
	for range 3 {
		f.do("GET", "/svc/x", nil, nil)
	}
	f.do("GET", "/nothing/here", nil, nil)
	f.do("GET", "/x", nil, map[string]string{ServiceHeader: `we"ird`})

	var buf bytes.Buffer
	f.set.WritePrometheus(&buf)
	out := buf.String()
	for _, want := range []string{
		`maxine_gateway_requests_total{service="svc",code="2xx"} 3`,
		`maxine_gateway_request_duration_seconds_count{service="svc"} 3`,
		`maxine_gateway_request_duration_seconds_bucket{service="svc",le="+Inf"} 3`,
		`maxine_gateway_requests_total{service="we\"ird",code="5xx"} 1`,
		`maxine_gateway_upstream_errors_total{service="we\"ird",kind="connect"} 1`,
		`maxine_gateway_retries_total{service="we\"ird"} 0`,
		`maxine_gateway_nodes_active{service="svc"} 1`,
		`maxine_gateway_unrouted_requests_total 1`,
		`maxine_gateway_in_flight 0`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %s", want)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "/x") || strings.Contains(line, "127.0.0.1") || strings.Contains(line, "nothing") {
			t.Errorf("unbounded label: %s", line)
		}
	}
	// A removed service takes its series with it.
	f.reg.Deregister("svc", "ok")
	f.waitNodes("svc", 0)
	buf.Reset()
	f.set.WritePrometheus(&buf)
	if strings.Contains(buf.String(), `service="svc"`) {
		t.Error("series of a removed service remain")
	}
}

// TestOldHealthMetrics: the old server's health-check families count
// probes, failed probes and evictions, and maxine_unhealthy_upstreams is
// the number of nodes whose last probe failed. The counters are read back
// by name from the set, where admin exports them.
func TestOldHealthMetrics(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		fastHealth(o)
		o.Health.Path = "/status"
	})
	a, aHealth, _ := healthBackend(t, "a", "/status")
	b, _, _ := healthBackend(t, "b", "/status")
	f.register("svc", "a", a, 1, nil)
	f.register("svc", "b", b, 1, nil)
	f.waitNodes("svc", 2)
	checks := f.set.GetOrCreateCounter("maxine_health_checks_total")
	failures := f.set.GetOrCreateCounter("maxine_health_check_failures_total")
	evictions := f.set.GetOrCreateCounter("maxine_health_evictions_total")
	waitFor(t, "probes counted", func() bool { return checks.Get() >= 2 })
	if failures.Get() != 0 || f.p.UnhealthyUpstreams() != 0 {
		t.Fatalf("all healthy: %d failures, %d unhealthy", failures.Get(), f.p.UnhealthyUpstreams())
	}

	aHealth.Store(500)
	waitFor(t, "a unhealthy", func() bool { return f.p.UnhealthyUpstreams() == 1 })
	waitFor(t, "failed probes counted", func() bool { return failures.Get() >= 2 })
	if c, fl := checks.Get(), failures.Get(); c <= fl {
		t.Fatalf("checks %d <= failures %d while b passes", c, fl)
	}
	aHealth.Store(200)
	waitFor(t, "a healthy again", func() bool { return f.p.UnhealthyUpstreams() == 0 })
	if evictions.Get() != 0 {
		t.Fatalf("evictions %d without Evict", evictions.Get())
	}
}

// TestOldHealthEvictionMetric: with Evict, one failing node is one
// eviction.
func TestOldHealthEvictionMetric(t *testing.T) {
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
	evictions := f.set.GetOrCreateCounter("maxine_health_evictions_total")
	waitFor(t, "eviction counted", func() bool { return evictions.Get() == 1 })
	if n := f.set.GetOrCreateCounter("maxine_health_check_failures_total").Get(); n < 2 {
		t.Fatalf("failures %d before an eviction at threshold 2", n)
	}
	if evictions.Get() != 1 {
		t.Fatalf("evictions %d, want 1", evictions.Get())
	}
}
