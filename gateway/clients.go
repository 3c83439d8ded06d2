package gateway

import (
	"net/netip"
	"sync/atomic"
)

// clientLimiter caps the requests in progress per client address
// (Options.MaxRequestsPerClient), so that one client cannot take every
// request slot of a service — slow uploads, held-open requests.
//
// It is a fixed table of counters indexed by a hash of the address: no
// map, no lock, no allocation per request. Two addresses that hash to the
// same counter share its cap; with 4096 counters that is rare, and it only
// ever makes the cap stricter for the two, never looser.
type clientLimiter struct {
	max   int32
	slots [clientSlots]atomic.Int32
}

const clientSlots = 1 << 12

func newClientLimiter(max int) *clientLimiter { return &clientLimiter{max: int32(max)} }

// acquire takes a slot for a request from ip and returns the counter to
// decrement when it ends (nil for a nil limiter, which admits everything),
// or false when the client is at its cap.
func (l *clientLimiter) acquire(ip netip.Addr) (*atomic.Int32, bool) {
	if l == nil {
		return nil, true
	}
	c := &l.slots[addrHash(ip)%clientSlots]
	if c.Add(1) > l.max {
		c.Add(-1)
		return nil, false
	}
	return c, true
}
