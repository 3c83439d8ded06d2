package gateway

import (
	"sync/atomic"
	"time"
)

// idempotent reports whether method is idempotent (RFC 9110 §9.2.2): GET,
// HEAD, OPTIONS, TRACE, PUT and DELETE. Only these are retried after the
// request may have reached a node, because repeating them has the same
// effect as sending them once. Other methods are retried only when the
// attempt provably never reached the node (the connect failed).
func idempotent(method []byte) bool {
	switch string(method) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// Retry budget parameters. Tokens are counted in thousandths so the
// per-request deposit (RetryBudget, e.g. 0.2) stays an integer.
const (
	budgetUnit = 1000
	// budgetCapacity bounds the retries a burst of failures can spend at
	// once, however long the service was healthy before.
	budgetCapacity = 10 * budgetUnit
	// budgetMinPerSecond is the reserve refilled by time alone, so that a
	// service with little traffic can still retry now and then.
	budgetMinPerSecond = 1
)

// retryBudget limits retries to a fraction of requests, per service, so
// that when every node fails the gateway does not multiply the load by
// 1+MaxRetries (a retry storm). It is a token bucket in the manner of
// Finagle's RetryBudget: every request deposits RetryBudget tokens, every
// retry withdraws one, the bucket holds at most budgetCapacity, and it is
// topped up by budgetMinPerSecond tokens per second regardless of traffic.
// Hence over any period, retries ≤ RetryBudget × requests + capacity +
// elapsed seconds × budgetMinPerSecond.
//
// A ratio of requests rather than a cap on concurrent retries: a cap on
// concurrency would let a client that sends one request at a time still
// triple its load on a failing service.
//
// All operations are lock-free; a retryBudget must not be copied.
type retryBudget struct {
	deposit    int64        // tokens (thousandths) earned per request
	tokens     atomic.Int64 // thousandths
	lastRefill atomic.Int64 // unix nanos of the last time-based refill
}

func (b *retryBudget) init(ratio float64, now time.Time) {
	b.deposit = int64(ratio * budgetUnit)
	b.tokens.Store(budgetCapacity)
	b.lastRefill.Store(now.UnixNano())
}

// onRequest credits the budget for one request.
func (b *retryBudget) onRequest() {
	if b.tokens.Load() >= budgetCapacity {
		return
	}
	if t := b.tokens.Add(b.deposit); t > budgetCapacity {
		b.tokens.CompareAndSwap(t, budgetCapacity)
	}
}

// withdraw spends one retry; false when the budget is exhausted.
func (b *retryBudget) withdraw() bool { return b.withdrawAt(unixNanos) }

// withdrawAt is withdraw with the clock as a parameter (read only when the
// bucket is empty), so that tests can move time.
func (b *retryBudget) withdrawAt(now func() int64) bool {
	for {
		t := b.tokens.Load()
		if t >= budgetUnit {
			if b.tokens.CompareAndSwap(t, t-budgetUnit) {
				return true
			}
			continue
		}
		if !b.refill(now()) {
			return false
		}
	}
}

func unixNanos() int64 { return time.Now().UnixNano() }

// budgetFullAfter is the time after which the time-based reserve alone
// fills the bucket: a longer wait adds nothing more.
const budgetFullAfter = int64(budgetCapacity / (budgetMinPerSecond * budgetUnit) * time.Second)

// refill adds the time-based reserve accrued between the last refill and
// now (unix nanos); it reports whether it added anything.
func (b *retryBudget) refill(now int64) bool {
	last := b.lastRefill.Load()
	elapsed := now - last
	if elapsed < 0 {
		// The wall clock was stepped back: restart the interval from now
		// rather than refill nothing until the clock catches up.
		b.lastRefill.CompareAndSwap(last, now)
		return false
	}
	// Clamp before multiplying: elapsed nanoseconds × budgetUnit overflow
	// int64 after about 107 days without a refill, which would turn the
	// reserve negative and lose the retry floor until about day 213.
	elapsed = min(elapsed, budgetFullAfter)
	add := elapsed * budgetMinPerSecond * budgetUnit / int64(time.Second)
	if add < budgetUnit || !b.lastRefill.CompareAndSwap(last, now) {
		return false
	}
	if t := b.tokens.Add(add); t > budgetCapacity {
		b.tokens.CompareAndSwap(t, budgetCapacity)
	}
	return true
}
