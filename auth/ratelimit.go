package auth

import (
	"container/list"
	"sync"
	"time"
)

// DefaultRateLimitKeys is the number of keys a RateLimiter tracks when
// NewRateLimiter is given maxKeys <= 0.
const DefaultRateLimitKeys = 10000

// RateLimiter limits sign-in attempts per key (the client IP): each key has
// a token bucket holding up to burst attempts that refills at perMinute
// attempts per minute. Buckets refill lazily from the clock when a key is
// next seen, so there is no background goroutine to stop.
//
// Memory is bounded: at most maxKeys buckets are tracked. When a new key
// arrives and the table is full, the least recently seen key is forgotten
// (its next attempt starts with a full bucket), and keys idle long enough to
// have refilled completely are dropped as they are passed over. An attacker
// spraying source addresses can therefore reset other keys' buckets, but
// cannot grow the table; the per-attempt bcrypt cost still bounds what each
// of those attempts buys.
//
// A RateLimiter is safe for concurrent use. A nil *RateLimiter allows
// everything. It must not be copied after first use.
type RateLimiter struct {
	mu       sync.Mutex
	perSec   float64 // refill rate; <= 0 means unlimited
	burst    float64
	fullIn   time.Duration // how long an empty bucket takes to refill
	maxKeys  int
	now      func() time.Time
	byKey    map[string]*list.Element // of *bucket
	lru      list.List                // front = most recently seen
	disabled bool
}

type bucket struct {
	key    string
	tokens float64
	last   time.Time
}

// NewRateLimiter returns a limiter allowing burst attempts at once per key,
// refilled at perMinute per minute, tracking at most maxKeys keys.
// perMinute <= 0 disables limiting; burst < 1 is treated as 1; maxKeys <= 0
// means DefaultRateLimitKeys; a nil now means time.Now.
func NewRateLimiter(perMinute int, burst int, maxKeys int, now func() time.Time) *RateLimiter {
	if burst < 1 {
		burst = 1
	}
	if maxKeys <= 0 {
		maxKeys = DefaultRateLimitKeys
	}
	if now == nil {
		now = time.Now
	}
	l := &RateLimiter{
		perSec:   float64(perMinute) / 60,
		burst:    float64(burst),
		maxKeys:  maxKeys,
		now:      now,
		byKey:    make(map[string]*list.Element),
		disabled: perMinute <= 0,
	}
	if !l.disabled {
		l.fullIn = time.Duration(float64(burst) / l.perSec * float64(time.Second))
	}
	return l
}

// Allow reports whether key may make one more attempt now, and if so uses
// up one token of its bucket.
func (l *RateLimiter) Allow(key string) bool {
	if l == nil || l.disabled {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()

	// Drop a couple of idle keys from the old end each call: a bucket that
	// has refilled completely is indistinguishable from a forgotten one.
	// Bounded work per call keeps Allow O(1).
	for range 2 {
		e := l.lru.Back()
		if e == nil {
			break
		}
		b := e.Value.(*bucket)
		if b.key == key || now.Sub(b.last) < l.fullIn {
			break
		}
		l.remove(e)
	}

	var b *bucket
	if e, ok := l.byKey[key]; ok {
		b = e.Value.(*bucket)
		l.lru.MoveToFront(e)
		if elapsed := now.Sub(b.last); elapsed > 0 { // ignore a clock stepping back
			b.tokens = min(l.burst, b.tokens+elapsed.Seconds()*l.perSec)
			b.last = now
		}
	} else {
		for len(l.byKey) >= l.maxKeys {
			l.remove(l.lru.Back())
		}
		b = &bucket{key: key, tokens: l.burst, last: now}
		l.byKey[key] = l.lru.PushFront(b)
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *RateLimiter) remove(e *list.Element) {
	delete(l.byKey, e.Value.(*bucket).key)
	l.lru.Remove(e)
}

// Len returns the number of keys currently tracked.
func (l *RateLimiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byKey)
}
