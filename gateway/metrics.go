package gateway

import (
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sony/gobreaker/v2"
)

// Gateway metrics (SPEC 8). Label values are bounded: the service name
// (only registered services get series, and they are unregistered when the
// service disappears), a status class, an error kind, a breaker state —
// never a path or a client address.
//
// Per-service metric objects are created on the service's first request
// and then reached through an atomic pointer, so a request updates counters
// through pointers it already holds: no name building and no map lookup on
// the request path. The nodes_active gauge exists from registration on.

// proxyMetrics are the proxy-wide metrics.
type proxyMetrics struct {
	set      *metrics.Set
	unrouted *metrics.Counter
	rejected *metrics.Counter

	// The old server's health-check families (SPEC section 3), unlabeled:
	// probes run, probes failed, nodes evicted for failing them. Admin
	// creates the same names (GetOrCreate shares one counter) so that they
	// exist when the gateway is off, and exports maxine_unhealthy_upstreams
	// from UnhealthyUpstreams.
	healthChecks    *metrics.Counter
	healthFailures  *metrics.Counter
	healthEvictions *metrics.Counter
}

func newProxyMetrics(set *metrics.Set, p *Proxy) *proxyMetrics {
	set.GetOrCreateGauge("maxine_gateway_in_flight", func() float64 { return float64(p.inFlight.Load()) })
	return &proxyMetrics{
		set:             set,
		unrouted:        set.GetOrCreateCounter("maxine_gateway_unrouted_requests_total"),
		rejected:        set.GetOrCreateCounter("maxine_gateway_rejected_requests_total"),
		healthChecks:    set.GetOrCreateCounter("maxine_health_checks_total"),
		healthFailures:  set.GetOrCreateCounter("maxine_health_check_failures_total"),
		healthEvictions: set.GetOrCreateCounter("maxine_health_evictions_total"),
	}
}

// healthCheck counts one probe; pm may be nil (metrics off).
func (pm *proxyMetrics) healthCheck(failed bool) {
	if pm == nil {
		return
	}
	pm.healthChecks.Inc()
	if failed {
		pm.healthFailures.Inc()
	}
}

// evicted counts one node deregistered for failing its health checks; pm
// may be nil (metrics off).
func (pm *proxyMetrics) evicted() {
	if pm == nil {
		return
	}
	pm.healthEvictions.Inc()
}

// UnhealthyUpstreams is the number of nodes whose last health check
// failed (the old maxine_unhealthy_upstreams: nodes with recorded probe
// failures, forgotten at the next pass or at eviction). It reads every
// node's health state, so it is for scrapes, not for requests.
func (p *Proxy) UnhealthyUpstreams() int {
	n := 0
	for u := range p.upstreams {
		u.hmu.Lock()
		if u.checkFails > 0 {
			n++
		}
		u.hmu.Unlock()
	}
	return n
}

// serviceMetrics are one service's metrics.
type serviceMetrics struct {
	set       *metrics.Set
	requests  [4]*metrics.Counter // by status class 2xx..5xx (1xx counts as 2xx)
	duration  *metrics.PrometheusHistogram
	connect   *metrics.Counter
	timeout   *metrics.Counter
	status5xx *metrics.Counter
	retries   *metrics.Counter
	toOpen    *metrics.Counter
	toHalf    *metrics.Counter
	toClosed  *metrics.Counter

	mu    sync.Mutex
	names []string // for unregister
}

func (pm *proxyMetrics) forService(svc *service) *serviceMetrics {
	m := &serviceMetrics{set: pm.set}
	label := `service="` + escapeLabel(svc.name) + `"`
	counter := func(name, extra string) *metrics.Counter {
		full := name + "{" + label + extra + "}"
		m.names = append(m.names, full)
		return pm.set.GetOrCreateCounter(full)
	}
	for i, code := range [...]string{"2xx", "3xx", "4xx", "5xx"} {
		m.requests[i] = counter("maxine_gateway_requests_total", `,code="`+code+`"`)
	}
	m.connect = counter("maxine_gateway_upstream_errors_total", `,kind="connect"`)
	m.timeout = counter("maxine_gateway_upstream_errors_total", `,kind="timeout"`)
	m.status5xx = counter("maxine_gateway_upstream_errors_total", `,kind="5xx"`)
	m.retries = counter("maxine_gateway_retries_total", "")
	m.toOpen = counter("maxine_gateway_breaker_transitions_total", `,to="open"`)
	m.toHalf = counter("maxine_gateway_breaker_transitions_total", `,to="half-open"`)
	m.toClosed = counter("maxine_gateway_breaker_transitions_total", `,to="closed"`)
	hist := "maxine_gateway_request_duration_seconds{" + label + "}"
	m.names = append(m.names, hist)
	m.duration = pm.set.GetOrCreatePrometheusHistogram(hist)
	return m
}

// nodesGauge registers svc's maxine_gateway_nodes_active gauge and returns
// its name.
func (pm *proxyMetrics) nodesGauge(svc *service) string {
	name := `maxine_gateway_nodes_active{service="` + escapeLabel(svc.name) + `"}`
	pm.set.GetOrCreateGauge(name, func() float64 {
		if t := svc.table.Load(); t != nil {
			return float64(t.usableNodes())
		}
		return 0
	})
	return name
}

// remove unregisters svc's series once the service is gone, so that the
// series count follows the registry, not its history.
func (pm *proxyMetrics) remove(svc *service) {
	svc.mmu.Lock()
	defer svc.mmu.Unlock()
	svc.removed = true
	pm.set.UnregisterMetric(svc.gauge)
	if m := svc.metrics.Load(); m != nil {
		m.unregister()
	}
}

// serviceMetrics returns svc's metrics, creating them on first use; nil
// when metrics are off or the service is gone.
func (p *Proxy) serviceMetrics(svc *service) *serviceMetrics {
	if m := svc.metrics.Load(); m != nil || p.metrics == nil {
		return m
	}
	svc.mmu.Lock()
	defer svc.mmu.Unlock()
	if m := svc.metrics.Load(); m != nil || svc.removed {
		return m
	}
	m := p.metrics.forService(svc)
	svc.metrics.Store(m)
	return m
}

// observe counts one finished request.
func (m *serviceMetrics) observe(status int, d time.Duration) {
	class := status/100 - 2
	if class < 0 {
		class = 0
	} else if class > 3 {
		class = 3
	}
	m.requests[class].Inc()
	m.duration.Update(d.Seconds())
}

// upstreamError counts one failed attempt by kind: "connect" for
// connection-level failures (refused, reset, closed mid-exchange),
// "timeout" for an expired try, "5xx" for a 502/503/504 from the node.
func (m *serviceMetrics) upstreamError(o outcome) {
	switch o {
	case outConnect, outBroken:
		m.connect.Inc()
	case outTimeout:
		m.timeout.Inc()
	case out5xx:
		m.status5xx.Inc()
	}
}

func (m *serviceMetrics) breakerTransition(to gobreaker.State) {
	switch to {
	case gobreaker.StateOpen:
		m.toOpen.Inc()
	case gobreaker.StateHalfOpen:
		m.toHalf.Inc()
	default:
		m.toClosed.Inc()
	}
}

// unregister removes the service's series once it is gone, so that the
// series count follows the registry, not its history.
func (m *serviceMetrics) unregister() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.names {
		m.set.UnregisterMetric(n)
	}
	m.names = nil
}

// escapeLabel escapes a Prometheus label value (text format: backslash,
// double quote and newline).
func escapeLabel(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return r.Replace(s)
}
