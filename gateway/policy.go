package gateway

import (
	"encoding/binary"
	"math"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/maxine-io/maxine/registry"
)

// This file is per-service policy: try timeout, retries, which statuses
// are retried, max body size and a request rate limit, set by the
// registration metadata keys of registry/policy.go (README, "Per-service
// policy").
//
// Where nodes of one service disagree, each key takes its most
// restrictive value among the nodes that set it: the smallest try
// timeout, retry count, body size, rate and burst; the intersection of
// the retried statuses; a per-client rate limit only if every node that
// sets a rate says "client" (one bucket for the whole service is
// stricter). A key no node sets keeps the gateway's setting. So lowering
// a limit on one node takes effect at once, raising it takes effect when
// the last node carrying the old value re-registers or leaves, and every
// gateway instance of a cluster computes the same policy from the same
// registrations. The rate limit is per instance: N instances admit up to
// N × rateLimit requests/s in total.
//
// The policy is computed by the writer (Run) when it publishes a table
// and read by requests with the table: one pointer load, no parsing, no
// lock, no allocation. A change applies to the next request; requests in
// flight finish under the policy they started with.

// policy is the combined policy of one service at one table. It must not
// be modified once published.
type policy struct {
	tryTimeout time.Duration
	retries    int
	retryOn    registry.StatusSet
	maxBody    int
	limiter    *rateLimiter // nil: no rate limit
}

// defaultPolicy is the policy of a service none of whose nodes sets a key.
func (p *Proxy) defaultPolicy() policy {
	return policy{tryTimeout: p.o.TryTimeout, retries: p.o.MaxRetries,
		retryOn: registry.GatewayErrors, maxBody: p.o.MaxBodySize}
}

// policyOf returns the table's policy, the default when it has none.
func (p *Proxy) policyOf(t *serviceTable) *policy {
	if t.pol != nil {
		return t.pol
	}
	return &p.defPol
}

// buildPolicy combines the node policies of snap's registrations (their
// upstreams, attached by the caller, hold them parsed), reusing prev's
// rate limiter when the limit is unchanged so that a membership change
// does not refill the bucket. It returns nil when no node sets a key.
// Callers hold p.mu.
func (p *Proxy) buildPolicy(svc *service, snap *registry.Snapshot, prev *policy) *policy {
	var (
		c     registry.Policy
		found bool
		perCl = true
	)
	for _, n := range snap.Parents {
		u := upstreamOf(svc, n)
		if u == nil || u.policy == nil {
			continue
		}
		np := u.policy
		if !found {
			c.RetryOn = registry.StatusSet{^uint64(0), ^uint64(0)}
			found = true
		}
		if np.Set&registry.SetTryTimeout != 0 && (c.Set&registry.SetTryTimeout == 0 || np.TryTimeout < c.TryTimeout) {
			c.TryTimeout = np.TryTimeout
		}
		if np.Set&registry.SetRetries != 0 && (c.Set&registry.SetRetries == 0 || np.Retries < c.Retries) {
			c.Retries = np.Retries
		}
		if np.Set&registry.SetRetryOn != 0 {
			c.RetryOn[0] &= np.RetryOn[0]
			c.RetryOn[1] &= np.RetryOn[1]
		}
		if np.Set&registry.SetMaxBodySize != 0 && (c.Set&registry.SetMaxBodySize == 0 || np.MaxBodySize < c.MaxBodySize) {
			c.MaxBodySize = np.MaxBodySize
		}
		if np.Set&registry.SetRateLimit != 0 {
			if c.Set&registry.SetRateLimit == 0 || np.RateLimit < c.RateLimit {
				c.RateLimit = np.RateLimit
			}
			if c.Set&registry.SetRateLimit == 0 || np.RateBurst < c.RateBurst {
				c.RateBurst = np.RateBurst
			}
			perCl = perCl && np.PerClient
		}
		c.Set |= np.Set
	}
	if !found {
		return nil
	}
	pol := p.defaultPolicy()
	if c.Set&registry.SetTryTimeout != 0 {
		pol.tryTimeout = c.TryTimeout
	}
	if c.Set&registry.SetRetries != 0 {
		pol.retries = c.Retries
	}
	if c.Set&registry.SetRetryOn != 0 {
		pol.retryOn = c.RetryOn
	}
	if c.Set&registry.SetMaxBodySize != 0 && c.MaxBodySize < int64(pol.maxBody) {
		// The policy can lower the gateway's limit, not raise it: the
		// listener refuses larger bodies before routing.
		pol.maxBody = int(c.MaxBodySize)
	}
	if c.Set&registry.SetRateLimit != 0 {
		l := newRateLimiter(c.RateLimit, c.RateBurst, perCl)
		if prev != nil && prev.limiter.same(l) {
			l = prev.limiter
		}
		pol.limiter = l
	}
	return &pol
}

// rateLimiter is a token bucket kept as GCRA (generic cell rate
// algorithm): each bucket is one atomic "theoretical arrival time", so
// taking a token is a load and a compare-and-swap, with no lock, no
// timer and no allocation. A service-keyed limiter has one bucket; a
// client-keyed one a fixed table of rateClientSlots buckets indexed by a
// hash of the client address, so its memory is bounded whatever the
// number of clients. Two clients that hash to the same bucket share it:
// stricter for the two, never looser.
type rateLimiter struct {
	interval int64 // ns between tokens: 1s / rate
	tau      int64 // ns of credit the bucket holds: burst × interval
	perCl    bool
	base     time.Time // monotonic origin of the times below
	buckets  []atomic.Int64
}

const rateClientSlots = 1 << 12

func newRateLimiter(rate float64, burst int, perClient bool) *rateLimiter {
	iv := int64(math.Max(1, math.Round(float64(time.Second)/rate)))
	l := &rateLimiter{interval: iv, tau: int64(burst) * iv, perCl: perClient, base: time.Now()}
	if perClient {
		l.buckets = make([]atomic.Int64, rateClientSlots)
	} else {
		l.buckets = make([]atomic.Int64, 1)
	}
	return l
}

// same reports whether l and o limit alike (nil-safe on l).
func (l *rateLimiter) same(o *rateLimiter) bool {
	return l != nil && o != nil && l.interval == o.interval && l.tau == o.tau && l.perCl == o.perCl
}

// take takes a token for a request from ip and returns 0, or, when the
// bucket is empty, how long until a token is due. A nil limiter admits
// everything.
func (l *rateLimiter) take(ip netip.Addr) time.Duration {
	if l == nil {
		return 0
	}
	b := &l.buckets[0]
	if l.perCl {
		b = &l.buckets[addrHash(ip)%rateClientSlots]
	}
	now := int64(time.Since(l.base))
	for {
		// Lock-free: a failed swap means another request took a token,
		// so the loop ends for somebody on every round.
		old := b.Load()
		tat := max(old, now)
		next := tat + l.interval
		if wait := next - now - l.tau; wait > 0 {
			return time.Duration(wait)
		}
		if b.CompareAndSwap(old, next) {
			return 0
		}
	}
}

// addrHash spreads client addresses over fixed tables (clientLimiter,
// rateLimiter).
//
// Every bit of the address must reach the low bits that index the table:
// an IPv4 address is ::ffff:a.b.c.d, its last octet in the top byte of
// the second word, which a multiply alone leaves in the top bits (the
// earlier mix put 10.0.0.1 and 10.0.0.2 in one slot). The finalizer is
// MurmurHash3's fmix64.
func addrHash(ip netip.Addr) uint64 {
	b := ip.As16()
	h := binary.LittleEndian.Uint64(b[:8])*0x9E3779B97F4A7C15 ^ binary.LittleEndian.Uint64(b[8:])
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	return h ^ h>>33
}

// retryAfter is the Retry-After value for a wait: whole seconds, at least 1
// (RFC 9110 §10.2.3).
func retryAfter(wait time.Duration) int {
	return int(max(1, (wait+time.Second-1)/time.Second))
}
