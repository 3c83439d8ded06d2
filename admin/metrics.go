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
type adminMetrics struct {
	set *metrics.Set

	registrations   [4]*metrics.Counter // by registry.EventKind: registered, updated, heartbeat
	deregistrations *metrics.Counter
	discoveries     [2]*metrics.Counter // redirect, proxy
	authSuccess     *metrics.Counter
	authFailure     *metrics.Counter

	mu     sync.Mutex
	routes map[string]*routeMetrics
}

type routeMetrics struct {
	set   *metrics.Set
	route string
	codes sync.Map // int -> *metrics.Counter
}

func newAdminMetrics(set *metrics.Set, reg *registry.Registry) *adminMetrics {
	m := &adminMetrics{set: set, routes: make(map[string]*routeMetrics)}
	m.registrations[0] = set.GetOrCreateCounter(`maxine_registrations_total{kind="new"}`)
	m.registrations[1] = set.GetOrCreateCounter(`maxine_registrations_total{kind="update"}`)
	m.registrations[2] = set.GetOrCreateCounter(`maxine_registrations_total{kind="heartbeat"}`)
	m.registrations[3] = set.GetOrCreateCounter(`maxine_registrations_rejected_total`)
	m.deregistrations = set.GetOrCreateCounter(`maxine_deregistrations_total`)
	m.discoveries[0] = set.GetOrCreateCounter(`maxine_discoveries_total{mode="redirect"}`)
	m.discoveries[1] = set.GetOrCreateCounter(`maxine_discoveries_total{mode="proxy"}`)
	m.authSuccess = set.GetOrCreateCounter(`maxine_auth_total{result="success"}`)
	m.authFailure = set.GetOrCreateCounter(`maxine_auth_total{result="failure"}`)
	set.GetOrCreateGauge(`maxine_registry_nodes`, func() float64 { return float64(reg.Len()) })
	return m
}

func (m *adminMetrics) registration(kind registry.EventKind) {
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
