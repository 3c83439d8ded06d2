package main

import (
	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/maxine-io/maxine/observe"
	"github.com/maxine-io/maxine/registry"
)

// eventSink turns gateway and registry events into audit events, alerts,
// metrics and log lines. It implements gateway.EventSink.
type eventSink struct {
	audit  *observe.Audit
	alerts *observe.Alerts
	log    zerolog.Logger
	// onHealth, when set, shares a health verdict with the cluster (the
	// leader's probes decide for every instance).
	onHealth func(service, node string, healthy bool)
}

func (e *eventSink) BreakerChanged(service, node, from, to string) {
	typ := "breaker_close"
	if to == "open" {
		typ = "breaker_open"
		e.alerts.Raise(observe.Alert{Type: "breaker_opened", Severity: "warning", Service: service, Node: node,
			Message: "circuit breaker opened for " + service + "/" + node, Details: map[string]any{"from": from}})
	}
	e.audit.Record(observe.AuditEvent{Type: typ, Actor: "system", Service: service, Node: node, Details: map[string]any{"from": from, "to": to}})
	e.log.Warn().Str("service", service).Str("node", node).Str("from", from).Str("to", to).Msg("breaker state changed")
}

func (e *eventSink) HealthChanged(service, node string, healthy bool) {
	e.log.Warn().Str("service", service).Str("node", node).Bool("healthy", healthy).Msg("node health changed")
	if e.onHealth != nil {
		e.onHealth(service, node, healthy)
	}
}

func (e *eventSink) Evicted(service, node, reason string) {
	e.audit.Record(observe.AuditEvent{Type: "eviction", Actor: "system", Service: service, Node: node, Details: map[string]any{"reason": reason}})
	e.alerts.Raise(observe.Alert{Type: "node_evicted", Severity: "warning", Service: service, Node: node,
		Message: "node " + service + "/" + node + " evicted: " + reason})
	// The gateway has logged it (at warn, with service, node and reason).
}

// pumpRegistry logs and audits expiries and keeps the expiry counter until
// done.
// Registrations and deregistrations are audited by admin, which knows the
// caller.
func (e *eventSink) pumpRegistry(reg *registry.Registry, sub *registry.Subscription, set *metrics.Set, done <-chan struct{}) {
	expiries := set.GetOrCreateCounter(`maxine_registry_expiries_total`)
	var buf []registry.Event
	for {
		select {
		case <-done:
			return
		case <-sub.Ready():
		}
		var over bool
		buf, over = sub.Take(buf[:0])
		if over {
			e.log.Warn().Msg("registry event queue overflowed; some expiries were not audited")
		}
		for _, ev := range buf {
			if ev.Kind != registry.NodeExpired {
				continue
			}
			expiries.Inc()
			// Logged before it is audited: whoever sees the audit event
			// finds the line.
			e.log.Info().Str("service", ev.Service).Str("node", ev.Node).Time("at", ev.At).Msg("node expired: no heartbeat within its timeOut")
			e.audit.Record(observe.AuditEvent{Time: ev.At, Type: "expiry", Actor: "system", Service: ev.Service, Node: ev.Node})
		}
	}
}
