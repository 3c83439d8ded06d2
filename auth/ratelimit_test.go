package auth

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestRateLimiterBurstAndRefill(t *testing.T) {
	clock := newFakeClock()
	l := NewRateLimiter(6, 3, 100, clock.Now) // one token every 10 s

	for _, step := range []struct {
		advance time.Duration
		key     string
		want    bool
	}{
		{0, "a", true}, {0, "a", true}, {0, "a", true}, // the burst
		{0, "a", false},                // empty
		{0, "b", true},                 // keys are independent
		{9 * time.Second, "a", false},  // 0.9 of a token
		{time.Second, "a", true},       // 1.0
		{0, "a", false},                // spent again
		{time.Hour, "a", true},         // refill caps at burst...
		{0, "a", true}, {0, "a", true}, //
		{0, "a", false},          // ...not at an hour's worth
		{-time.Hour, "a", false}, // a clock stepping back refills nothing
		{time.Hour + 10*time.Second, "a", true},
	} {
		clock.Advance(step.advance)
		if got := l.Allow(step.key); got != step.want {
			t.Fatalf("after %v: Allow(%q) = %v, want %v", step.advance, step.key, got, step.want)
		}
	}
}

func TestRateLimiterBoundedKeys(t *testing.T) {
	clock := newFakeClock()
	const maxKeys = 50
	l := NewRateLimiter(1, 1, maxKeys, clock.Now)

	if !l.Allow("victim") || l.Allow("victim") {
		t.Fatal("burst of 1: want allow then refuse")
	}
	for i := range 10 * maxKeys {
		l.Allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256))
		if n := l.Len(); n > maxKeys {
			t.Fatalf("tracking %d keys, cap is %d", n, maxKeys)
		}
	}
	// The victim was the least recently seen key, so it was evicted and
	// starts over with a full bucket.
	if !l.Allow("victim") {
		t.Fatal("evicted key should start with a full bucket")
	}

	// Recently seen keys are kept: "hot" is touched between every new key.
	l = NewRateLimiter(1, 1, maxKeys, clock.Now)
	l.Allow("hot")
	for i := range 3 * maxKeys {
		if l.Allow("hot") {
			t.Fatal("hot key refilled or was evicted while in use")
		}
		l.Allow(fmt.Sprintf("k%d", i))
	}
}

func TestRateLimiterDropsIdleKeys(t *testing.T) {
	clock := newFakeClock()
	l := NewRateLimiter(60, 2, 1000, clock.Now) // full refill in 2 s
	for i := range 10 {
		l.Allow(fmt.Sprint(i))
	}
	clock.Advance(time.Minute)
	for range 10 {
		l.Allow("fresh")
	}
	if n := l.Len(); n != 1 {
		t.Fatalf("tracking %d keys after the others idled to full, want 1", n)
	}
}

func TestRateLimiterDisabledAndNil(t *testing.T) {
	for name, l := range map[string]*RateLimiter{
		"perMinute 0": NewRateLimiter(0, 1, 1, nil),
		"nil":         nil,
	} {
		for range 100 {
			if !l.Allow("k") {
				t.Fatalf("%s: Allow = false, want no limit", name)
			}
		}
	}
	// Defaults: burst < 1 means 1, maxKeys <= 0 means the default.
	l := NewRateLimiter(1, 0, 0, nil)
	if !l.Allow("k") || l.Allow("k") {
		t.Fatal("burst 0 should behave as 1")
	}
	if l.maxKeys != DefaultRateLimitKeys {
		t.Fatalf("maxKeys = %d", l.maxKeys)
	}
}

// TestRateLimiterConcurrent: 8 goroutines share one key and spread the
// rest over 160 keys, all tracked (no eviction). The clock is frozen, so
// nothing refills and every key must be allowed exactly its burst, however
// the calls interleave: one more would be a lost update, one fewer a
// spurious refusal.
func TestRateLimiterConcurrent(t *testing.T) {
	clock := newFakeClock()
	const (
		burst      = 3
		goroutines = 8
		calls      = 200 // per goroutine: 100 on "shared", 5 on each of 20 own keys
	)
	l := NewRateLimiter(1, burst, 1000, clock.Now)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed = map[string]int{}
	)
	for g := range goroutines {
		wg.Go(func() {
			for i := range calls {
				key := "shared"
				if i%2 == 1 {
					key = fmt.Sprintf("g%d-%d", g, i%40)
				}
				if l.Allow(key) {
					mu.Lock()
					allowed[key]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if got := allowed["shared"]; got != burst {
		t.Errorf("shared key: %d calls allowed %d times, want exactly the burst, %d", goroutines*calls/2, got, burst)
	}
	own, wrong, example := 0, 0, ""
	for key, n := range allowed {
		if key == "shared" {
			continue
		}
		own++
		if n != burst {
			wrong++
			example = fmt.Sprintf("%s allowed %d times", key, n)
		}
	}
	if wrong > 0 {
		t.Errorf("%d keys with 5 calls each were not allowed exactly the burst, %d (e.g. %s)", wrong, burst, example)
	}
	if want := goroutines * 20; own != want {
		t.Errorf("%d per-goroutine keys were allowed anything, want %d", own, want)
	}
	if n, want := l.Len(), goroutines*20+1; n != want {
		t.Errorf("tracking %d keys, want %d", n, want)
	}
}

// TestRateLimiterConcurrentChurn: more keys than the cap, from 8
// goroutines at once, never grow the table past the cap, and the evicted
// "victim" starts over with a full bucket (frozen clock: nothing refills).
func TestRateLimiterConcurrentChurn(t *testing.T) {
	clock := newFakeClock()
	const maxKeys = 16
	l := NewRateLimiter(1, 1, maxKeys, clock.Now)
	if !l.Allow("victim") || l.Allow("victim") {
		t.Fatal("burst of 1: want allow then refuse")
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				l.Allow(fmt.Sprintf("g%d-%d", g, i%40))
				if n := l.Len(); n > maxKeys {
					t.Errorf("tracking %d keys, cap is %d", n, maxKeys)
					return
				}
			}
		})
	}
	wg.Wait()
	if !l.Allow("victim") {
		t.Fatal("victim was evicted by 320 newer keys, so it should start with a full bucket")
	}
}

// tickingClock advances by step every time it is read, so a test knows the
// total time that passed from the number of reads alone.
type tickingClock struct {
	mu    sync.Mutex
	t     time.Time
	step  time.Duration
	reads int
}

func (c *tickingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	c.reads++
	return c.t
}

// TestRateLimiterConcurrentRefill: 8 goroutines hammer one key while the
// clock moves 250 ms per read. A token bucket hands out at most its burst
// plus the whole tokens that refilled between the first and the last read;
// and since every call wants a token, the bucket never sits full, no refill
// is wasted, and it hands out exactly that many. Fewer would mean refills
// lost between racing calls, more a bucket larger or faster than configured.
// The rates are chosen so every figure is exact in binary floating point.
func TestRateLimiterConcurrentRefill(t *testing.T) {
	const (
		burst      = 3
		perMinute  = 60 // 1 token per second
		goroutines = 8
		calls      = 100
	)
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := &tickingClock{t: start, step: 250 * time.Millisecond}
	l := NewRateLimiter(perMinute, burst, 16, clock.Now)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed int
	)
	for range goroutines {
		wg.Go(func() {
			for range calls {
				if l.Allow("shared") {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()

	if clock.reads != goroutines*calls {
		t.Fatalf("clock read %d times for %d calls; the bound below assumes one read per call", clock.reads, goroutines*calls)
	}
	// The first call reads start+step, the last start+reads*step.
	refillWindow := clock.t.Sub(start) - clock.step
	refilled := int(refillWindow.Seconds() * perMinute / 60) // whole tokens
	if want := burst + refilled; allowed != want {
		t.Fatalf("allowed %d of %d calls over %v, want burst %d + %d refilled = %d",
			allowed, goroutines*calls, refillWindow, burst, refilled, want)
	}
}
