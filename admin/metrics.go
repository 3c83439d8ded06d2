package admin

import (
	"strconv"
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/maxine-io/maxine/registry"
)

// adminMetrics are the control plane's Prometheus series. Label values are
// bounded: route names are fixed, status codes are the few HTTP codes the
// API answers, kinds and results are enums.
//
// Beside them are the old server's families (SPEC section 3), which
// dashboards and alert rules built on it read: one unlabeled sample each,
// with the old meaning. They keep their old names, so the labeled
// breakdowns of registrations and discoveries have names of their own
// (…_by_kind_total, …_by_mode_total): a family holding both the old total
// and its breakdown would double every sum().
type adminMetrics struct {
	set *metrics.Set

	registrations   [4]*metrics.Counter // by registry.EventKind: registered, updated, heartbeat; rejected
	deregistrations *metrics.Counter
	discoveries     [2]*metrics.Counter // redirect, proxy
	authSuccess     *metrics.Counter
	authFailure     *metrics.Counter

	old oldMetrics

	mu     sync.Mutex
	routes map[string]*routeMetrics
}

// oldMetrics are the old server's counters that admin itself counts.
type oldMetrics struct {
	requests     *metrics.Counter // maxine_requests_total: every request the admin listener answered (preflights aside)
	authFailures *metrics.Counter // maxine_auth_failures_total: refused sign-ins, tokens and registration tokens, 401 and 403
	authSuccess  *metrics.Counter // maxine_auth_success_total: successful sign-ins
	registered   *metrics.Counter // maxine_registrations_total: accepted registrations, heartbeats included
	discovered   *metrics.Counter // maxine_discoveries_total: discover and proxy requests that found a node
	proxied      *metrics.Counter // maxine_proxied_requests_total: those of them that were proxied
	alerts       *metrics.Counter // maxine_alerts_total: alerts raised, set from Options.Alerts at each scrape
}

type routeMetrics struct {
	set   *metrics.Set
	route string
	codes sync.Map // int -> *metrics.Counter
}

func newAdminMetrics(set *metrics.Set, o *Options) *adminMetrics {
	reg := o.Registry
	m := &adminMetrics{set: set, routes: make(map[string]*routeMetrics)}
	m.registrations[0] = set.GetOrCreateCounter(`maxine_registrations_by_kind_total{kind="new"}`)
	m.registrations[1] = set.GetOrCreateCounter(`maxine_registrations_by_kind_total{kind="update"}`)
	m.registrations[2] = set.GetOrCreateCounter(`maxine_registrations_by_kind_total{kind="heartbeat"}`)
	m.registrations[3] = set.GetOrCreateCounter(`maxine_registrations_rejected_total`)
	m.deregistrations = set.GetOrCreateCounter(`maxine_deregistrations_total`)
	m.discoveries[0] = set.GetOrCreateCounter(`maxine_discoveries_by_mode_total{mode="redirect"}`)
	m.discoveries[1] = set.GetOrCreateCounter(`maxine_discoveries_by_mode_total{mode="proxy"}`)
	m.authSuccess = set.GetOrCreateCounter(`maxine_auth_total{result="success"}`)
	m.authFailure = set.GetOrCreateCounter(`maxine_auth_total{result="failure"}`)
	set.GetOrCreateGauge(`maxine_registry_nodes`, func() float64 { return float64(reg.Len()) })

	m.old = oldMetrics{
		requests:     set.GetOrCreateCounter(`maxine_requests_total`),
		authFailures: set.GetOrCreateCounter(`maxine_auth_failures_total`),
		authSuccess:  set.GetOrCreateCounter(`maxine_auth_success_total`),
		registered:   set.GetOrCreateCounter(`maxine_registrations_total`),
		discovered:   set.GetOrCreateCounter(`maxine_discoveries_total`),
		proxied:      set.GetOrCreateCounter(`maxine_proxied_requests_total`),
		alerts:       set.GetOrCreateCounter(`maxine_alerts_total`),
	}
	// The gateway counts health checks into the same counters (by the
	// same names; GetOrCreate hands both the one counter); created here
	// too so that they exist when the gateway is off.
	set.GetOrCreateCounter(`maxine_health_checks_total`)
	set.GetOrCreateCounter(`maxine_health_check_failures_total`)
	set.GetOrCreateCounter(`maxine_health_evictions_total`)

	set.GetOrCreateGauge(`maxine_registered_services`, func() float64 {
		n := 0
		reg.Range(func(s *registry.Snapshot) bool {
			if len(s.Nodes) > 0 {
				n++
			}
			return true
		})
		return float64(n)
	})
	set.GetOrCreateGauge(`maxine_registered_parent_nodes`, func() float64 {
		n := 0
		reg.Range(func(s *registry.Snapshot) bool { n += len(s.Parents); return true })
		return float64(n)
	})
	set.GetOrCreateGauge(`maxine_registered_virtual_nodes`, func() float64 {
		n := 0
		reg.Range(func(s *registry.Snapshot) bool { n += len(s.Nodes); return true })
		return float64(n)
	})
	// Leader state. In redis mode cmd/maxine registers these two from the
	// lease before admin exists; GetOrCreateGauge then keeps that gauge
	// (same meaning), so neither order registers a name twice. Without a
	// cluster the instance is the only writer of its own state and says
	// so, 1 and 1, as the old server did with leader election off: an
	// alert on has_leader == 0 must not fire on every local instance.
	cluster := o.Cluster
	set.GetOrCreateGauge(`maxine_cluster_is_leader`, func() float64 {
		return b2f(cluster == nil || cluster().IsLeader)
	})
	set.GetOrCreateGauge(`maxine_cluster_has_leader`, func() float64 {
		return b2f(cluster == nil || cluster().HasLeader)
	})
	// Nodes whose last health check failed. The gateway knows; without
	// it nothing is checked and the answer is 0.
	unhealthy, _ := o.Proxy.(interface{ UnhealthyUpstreams() int })
	set.GetOrCreateGauge(`maxine_unhealthy_upstreams`, func() float64 {
		if unhealthy == nil {
			return 0
		}
		return float64(unhealthy.UnhealthyUpstreams())
	})
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (m *adminMetrics) registration(kind registry.EventKind) {
	m.old.registered.Inc()
	switch kind {
	case registry.NodeRegistered:
		m.registrations[0].Inc()
	case registry.NodeUpdated:
		m.registrations[1].Inc()
	default:
		m.registrations[2].Inc()
	}
}

func (m *adminMetrics) route(name string) *routeMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.routes[name]; ok {
		return r
	}
	r := &routeMetrics{set: m.set, route: name}
	m.routes[name] = r
	return r
}

func (r *routeMetrics) observe(status int) {
	if c, ok := r.codes.Load(status); ok {
		c.(*metrics.Counter).Inc()
		return
	}
	c := r.set.GetOrCreateCounter(`maxine_admin_requests_total{route="` + r.route + `",code="` + strconv.Itoa(status) + `"}`)
	r.codes.Store(status, c)
	c.Inc()
}
