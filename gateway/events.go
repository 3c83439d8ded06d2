package gateway

// Node state changes happen on the request path (breaker transitions,
// ejections) or in probes; they are queued as notices and delivered to the
// EventSink and the log by Run, so that a slow sink never delays a request.
// The queue is bounded: when it is full (Run not running, or a sink far too
// slow), notices are dropped rather than blocking.

type noticeKind uint8

const (
	noticeBreaker noticeKind = iota + 1
	noticeHealth
	noticeEvicted
	noticeEjected
)

type notice struct {
	kind          noticeKind
	service, node string
	from, to      string // breaker states
	healthy       bool
	reason        string
}

func (p *Proxy) notify(n notice) {
	select {
	case p.notices <- n:
	default:
	}
}

func (p *Proxy) deliver(n notice) {
	sink := p.o.Events
	switch n.kind {
	case noticeBreaker:
		ev := p.log.Info()
		if n.to == "open" {
			ev = p.log.Warn()
		}
		ev.Str("service", n.service).Str("node", n.node).Str("from", n.from).Str("to", n.to).Msg("gateway: circuit breaker changed state")
		if sink != nil {
			sink.BreakerChanged(n.service, n.node, n.from, n.to)
		}
	case noticeHealth:
		ev := p.log.Info()
		if !n.healthy {
			ev = p.log.Warn().Str("error", n.reason)
		}
		ev.Str("service", n.service).Str("node", n.node).Bool("healthy", n.healthy).Msg("gateway: health check verdict changed")
		if sink != nil {
			sink.HealthChanged(n.service, n.node, n.healthy)
		}
	case noticeEvicted:
		p.log.Warn().Str("service", n.service).Str("node", n.node).Str("reason", n.reason).Msg("gateway: node evicted")
		if sink != nil {
			sink.Evicted(n.service, n.node, n.reason)
		}
	case noticeEjected:
		p.log.Warn().Str("service", n.service).Str("node", n.node).Msg("gateway: node ejected as an outlier")
	}
}

// drainNotices delivers what is queued when Run stops.
func (p *Proxy) drainNotices() {
	for {
		select {
		case n := <-p.notices:
			p.deliver(n)
		default:
			return
		}
	}
}
