package gateway

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// breaker is one node's circuit breaker: a gobreaker state machine that
// counts the outcomes of attempts, and a lock-free mirror of its open state
// (upstream.openUntil) that selection reads.
//
// Selection must not take gobreaker's mutex (SPEC 4: the hot path takes no
// lock shared with writers), so it looks only at the mirror: an open node is
// unusable until its open timeout has passed. The next attempt then goes
// through gobreaker, which moves to half-open and admits at most
// HalfOpenMaxRequests probes; attempts it refuses are re-routed to another
// node without counting as retries.
//
// Outcomes are counted when the attempt finishes, in the bucket of that
// moment. gobreaker's Execute would count it in the bucket where the
// attempt started, and drops it when that bucket has rolled out of the
// window meanwhile: with the defaults (try timeout 10s = window 10s) every
// timeout finished exactly one window after it started and was dropped, so
// timeouts never opened a breaker. So a closed breaker only records
// outcomes (a zero-length Execute at the end); an open or half-open one
// runs the attempt inside Execute, which admits at most
// HalfOpenMaxRequests probes and whose generation only changes with the
// state, so a probe's outcome is never dropped.
type breaker struct {
	cb     *gobreaker.CircuitBreaker[struct{}]
	closed atomic.Bool // mirror of "state is closed", set in OnStateChange
}

// do runs one attempt under the breaker; outRejected when it refused it.
func (b *breaker) do(try func() outcome) outcome {
	if b.closed.Load() {
		out := try()
		// If the breaker opened meanwhile the record is refused: the
		// outcome no longer matters to it.
		_, _ = b.cb.Execute(func() (struct{}, error) { return struct{}{}, out.breakerErr() })
		return out
	}
	var out outcome
	_, err := b.cb.Execute(func() (struct{}, error) {
		out = try()
		return struct{}{}, out.breakerErr()
	})
	if err == gobreaker.ErrOpenState || err == gobreaker.ErrTooManyRequests {
		return outRejected
	}
	return out
}

// Errors an attempt reports to the breaker. Only errFailure counts as a
// failure; errExcluded outcomes (the client's own fault, local pool
// exhaustion) count as neither success nor failure.
var (
	errFailure  = errors.New("gateway: upstream failure")
	errExcluded = errors.New("gateway: outcome not attributable to the node")
)

func (p *Proxy) newBreaker(svc *service, u *upstream) *breaker {
	bo := p.o.Breaker
	b := &breaker{}
	b.closed.Store(true)
	st := gobreaker.Settings{
		Name:         u.name,
		MaxRequests:  uint32(bo.HalfOpenMaxRequests),
		Interval:     bo.Window,
		BucketPeriod: bo.Window / 10,
		Timeout:      bo.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			if int(c.ConsecutiveFailures) >= bo.ConsecutiveFailures {
				return true
			}
			return int(c.Requests) >= bo.MinRequests &&
				float64(c.TotalFailures) >= bo.FailureRatio*float64(c.Requests)
		},
		IsSuccessful: func(err error) bool { return err == nil },
		IsExcluded:   func(err error) bool { return err == errExcluded },
		// OnStateChange runs under gobreaker's mutex: it only updates
		// atomics and counters and queues the event for Run.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			b.closed.Store(to == gobreaker.StateClosed)
			if to == gobreaker.StateOpen {
				u.openUntil.Store(time.Now().Add(bo.OpenTimeout).UnixNano())
			} else {
				u.openUntil.Store(0)
			}
			if m := p.serviceMetrics(svc); m != nil {
				m.breakerTransition(to)
			}
			p.notify(notice{kind: noticeBreaker, service: u.service, node: u.name, from: from.String(), to: to.String()})
		},
	}
	b.cb = gobreaker.NewCircuitBreaker[struct{}](st)
	return b
}

// state returns "closed", "half-open" or "open".
func (b *breaker) state() string { return b.cb.State().String() }

// consecutiveFailures returns the breaker's current run of failures.
func (b *breaker) consecutiveFailures() int { return int(b.cb.Counts().ConsecutiveFailures) }
