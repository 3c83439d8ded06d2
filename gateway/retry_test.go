package gateway

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A POST whose connect was refused never reached the node and is retried
// elsewhere; every POST reaches exactly one node.
func TestRetryNeverReached(t *testing.T) {
	f := newFixture(t, nil)
	dead := startBackend(t, "dead", nil)
	live := startBackend(t, "live", nil)
	f.register("svc", "dead", dead, 1, nil)
	f.register("svc", "live", live, 1, nil)
	dead.kill()
	f.waitNodes("svc", 2)
	for i := 0; i < 20; i++ {
		if status, _, body := f.do("POST", "/svc/x", nil, nil); status != 200 {
			t.Fatalf("POST %d: %d %s", i, status, body)
		}
	}
	if live.hits.Load() != 20 {
		t.Fatalf("live node got %d POSTs, want 20", live.hits.Load())
	}
}

// A POST answered 503 may have had effects: it is not retried. A GET is,
// on a different node.
func TestRetryIdempotentOnly(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Breaker.Disabled = true })
	busy := startBackend(t, "busy", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("busy"))
	})
	ok := startBackend(t, "ok", nil)
	f.register("svc", "busy", busy, 1, nil)
	f.register("svc", "ok", ok, 1, nil)
	f.waitNodes("svc", 2)
	posts503 := 0
	for i := 0; i < 10; i++ {
		status, _, body := f.do("POST", "/svc/x", nil, nil)
		if status == http.StatusServiceUnavailable {
			posts503++
			if string(body) != "busy" {
				t.Fatalf("the node's 503 was not passed through: %q", body)
			}
		}
	}
	if posts503 != 5 || busy.hits.Load() != 5 || ok.hits.Load() != 5 {
		t.Fatalf("POSTs: %d 503s, busy %d, ok %d; want 5/5/5", posts503, busy.hits.Load(), ok.hits.Load())
	}
	for i := 0; i < 10; i++ {
		if status, _, _ := f.do("GET", "/svc/x", nil, nil); status != 200 {
			t.Fatalf("GET %d: %d", i, status)
		}
	}
	if ok.hits.Load() != 15 {
		t.Fatalf("ok got %d", ok.hits.Load())
	}
}

// When every node fails, the retry budget keeps the load on the nodes
// close to the request rate instead of (1+MaxRetries) times it.
func TestRetryBudgetStopsStorm(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Breaker.Disabled = true // only the budget stands between us and the storm
		o.MaxRetries = 2
	})
	var hits atomic.Int64
	for i := range 3 {
		b := startBackend(t, "n"+strconv.Itoa(i), func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		b.keep = false
		f.register("svc", b.name, b, 1, nil)
	}
	f.waitNodes("svc", 3)
	const requests, workers = 400, 8
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= requests {
				resp, err := f.client.Get(f.url + "/svc/x")
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable {
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	// retries ≤ budget × requests + capacity + refill over the elapsed time
	// (+2: deposits racing the capacity clamp may overshoot it briefly).
	limit := int64(requests*1.2) + budgetCapacity/budgetUnit + int64(elapsed.Seconds()+1)*budgetMinPerSecond + 2
	got := hits.Load()
	t.Logf("%d requests, %d attempts (limit %d) in %s", requests, got, limit, elapsed)
	if got > limit {
		t.Fatalf("%d attempts for %d requests: the budget did not hold (limit %d)", got, requests, limit)
	}
	if got <= requests {
		t.Fatalf("no retry at all (%d attempts)", got)
	}
}

func TestRetryBudgetUnit(t *testing.T) {
	var b retryBudget
	b.init(0.2, time.Now())
	n := 0
	for b.withdraw() {
		n++
	}
	if n != budgetCapacity/budgetUnit {
		t.Fatalf("initial capacity %d", n)
	}
	for range 40 {
		b.onRequest()
	}
	n = 0
	for b.withdraw() {
		n++
	}
	if n != 8 {
		t.Fatalf("40 requests bought %d retries, want 8", n)
	}
	for range 1000 {
		b.onRequest()
	}
	n = 0
	for b.withdraw() {
		n++
	}
	if n != budgetCapacity/budgetUnit {
		t.Fatalf("the bucket holds %d retries, want its capacity", n)
	}
	// The time-based reserve: a second later there is one more.
	b.lastRefill.Add(-int64(time.Second))
	if !b.withdraw() || b.withdraw() {
		t.Fatal("time-based refill")
	}
}

func TestOutlierEjection(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Breaker.Disabled = true
		o.OutlierConsecutive5xx = 3
		o.OutlierEjectionTime = time.Minute
		o.MaxRetries = -1
	})
	bad := startBackend(t, "bad", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	bad.keep = false
	var goods []*backend
	for _, name := range []string{"g1", "g2"} {
		g := startBackend(t, name, nil)
		g.keep = false
		goods = append(goods, g)
		f.register("svc", name, g, 1, nil)
	}
	f.register("svc", "bad", bad, 1, nil)
	f.waitNodes("svc", 3)
	for i := 0; i < 30; i++ {
		f.do("GET", "/svc/x", nil, nil)
	}
	if bad.hits.Load() != 3 {
		t.Fatalf("bad node got %d requests, want 3 before its ejection", bad.hits.Load())
	}
	if _, healthy, _ := f.p.NodeStatus("svc", "bad-0"); healthy {
		t.Fatal("ejected node reported healthy")
	}
	if goods[0].hits.Load()+goods[1].hits.Load() != 27 {
		t.Fatal("requests lost")
	}
}

// The time-based reserve survives any time without a refill: after about
// 107 days (elapsed nanoseconds × 1000 overflow int64) an unclamped refill
// computes a negative amount and the 1-retry-per-second floor is lost
// until about day 213. The clock is injected: no waiting, no wall time.
func TestRetryBudgetRefillAfterLongIdle(t *testing.T) {
	const day = 24 * time.Hour
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, idle := range []time.Duration{11 * time.Second, 106 * day, 107 * day, 150 * day, 212 * day, 213 * day, 300 * day, 290 * 365 * day} {
		var b retryBudget
		b.init(0.2, start)
		at := start.UnixNano()
		now := func() int64 { return at }
		for b.withdrawAt(now) {
		}
		at += int64(idle)
		n := 0
		for b.withdrawAt(now) {
			n++
		}
		if n != budgetCapacity/budgetUnit {
			t.Errorf("after %v without a refill: %d retries, want the full bucket (%d)", idle, n, budgetCapacity/budgetUnit)
		}
		// And the floor goes on: one more retry a second later.
		at += int64(time.Second)
		if !b.withdrawAt(now) || b.withdrawAt(now) {
			t.Errorf("after %v without a refill: the next second did not buy exactly one retry", idle)
		}
	}
}

// A wall clock stepped back does not stall the reserve until it catches
// up: the interval restarts from the new time.
func TestRetryBudgetClockStepBack(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var b retryBudget
	b.init(0.2, start)
	at := start.UnixNano()
	now := func() int64 { return at }
	for b.withdrawAt(now) {
	}
	at -= int64(time.Hour)
	if b.withdrawAt(now) {
		t.Fatal("a retry from a clock stepped back")
	}
	at += int64(time.Second)
	if !b.withdrawAt(now) || b.withdrawAt(now) {
		t.Fatal("one second after the clock stepped back: want exactly one retry")
	}
}

// failingNode is how a node fails a request it received: it answers 502,
// or it reads the request and resets the connection.
type failingNode struct {
	name string
	h    http.HandlerFunc
}

var failingNodes = []failingNode{
	{"502", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusBadGateway)
	}},
	{"reset", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		conn.(*net.TCPConn).SetLinger(0) // close with RST
		conn.Close()
	}},
}

// retryPair returns a gateway over service "svc" with a failing node and a
// healthy one, breakers off so that round robin alternates between them.
func retryPair(t *testing.T, fail http.HandlerFunc) (f *fixture, bad, good *backend) {
	t.Helper()
	f = newFixture(t, func(o *Options) {
		o.Breaker.Disabled = true
		o.StreamThreshold = 4 << 10
	})
	bad = startBackend(t, "bad", fail)
	good = startBackend(t, "good", nil)
	bad.keep, good.keep = false, false
	f.register("svc", "bad", bad, 1, nil)
	f.register("svc", "good", good, 1, nil)
	f.waitNodes("svc", 2)
	return f, bad, good
}

// sendUntilBadNode sends requests (made fresh by newReq) one at a time
// until the bad node has received want of them, and reports whether
// any request that reached the bad node also reached the good one (was
// retried). Requests that round robin sent to the good node first are
// not counted.
func sendUntilBadNode(t *testing.T, f *fixture, bad, good *backend, want int, newReq func() *http.Request) (retried int) {
	t.Helper()
	for i, got := 0, 0; got < want; i++ {
		if i == 8*want {
			t.Fatalf("after %d requests the bad node got only %d", i, got)
		}
		b0, g0 := bad.hits.Load(), good.hits.Load()
		req := newReq()
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", req.Method, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if bad.hits.Load() == b0 {
			continue
		}
		got++
		if good.hits.Load() != g0 {
			retried++
		} else if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("%s that failed and was not retried: status %d, want 502", req.Method, resp.StatusCode)
		}
	}
	return retried
}

// A PATCH is not idempotent (RFC 5789 §2; RFC 9110 §9.2.2): one that
// reached a node which then failed is not sent to a second node, and it
// reaches the failing node once. A PUT in the same position is retried,
// which shows that the test can see a retry.
func TestRetryPatchNotRetried(t *testing.T) {
	for _, fn := range failingNodes {
		t.Run(fn.name, func(t *testing.T) {
			f, bad, good := retryPair(t, fn.h)
			newReq := func(method string) func() *http.Request {
				return func() *http.Request {
					req, err := http.NewRequest(method, f.url+"/svc/x", strings.NewReader(`{"op":"inc"}`))
					if err != nil {
						t.Fatal(err)
					}
					return req
				}
			}
			b0 := bad.hits.Load()
			if n := sendUntilBadNode(t, f, bad, good, 3, newReq("PATCH")); n != 0 {
				t.Fatalf("%d of 3 PATCHes that reached the failing node were retried on the other node", n)
			}
			if n := bad.hits.Load() - b0; n != 3 {
				t.Fatalf("3 PATCHes reached the failing node %d times", n)
			}
			if n := sendUntilBadNode(t, f, bad, good, 3, newReq("PUT")); n != 3 {
				t.Fatalf("control: %d of 3 buffered PUTs were retried, want 3", n)
			}
		})
	}
}

// A PUT is idempotent, but one whose body was streamed to a node (larger
// than StreamThreshold, or chunked) cannot be sent again: the body was
// read from the client and not kept. It is not retried.
func TestRetryStreamedBodyNotRetried(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 4<<10) // 64 KiB, over the 4 KiB threshold
	bodies := []struct {
		name string
		body func() io.Reader
	}{
		{"content-length", func() io.Reader { return bytes.NewReader(payload) }},
		{"chunked", func() io.Reader { return io.MultiReader(bytes.NewReader(payload)) }},
	}
	for _, fn := range failingNodes {
		for _, bd := range bodies {
			t.Run(fn.name+"/"+bd.name, func(t *testing.T) {
				f, bad, good := retryPair(t, fn.h)
				newReq := func() *http.Request {
					req, err := http.NewRequest("PUT", f.url+"/svc/x", bd.body())
					if err != nil {
						t.Fatal(err)
					}
					return req
				}
				if n := sendUntilBadNode(t, f, bad, good, 3, newReq); n != 0 {
					t.Fatalf("%d of 3 streamed PUTs that reached the failing node were retried on the other node", n)
				}
			})
		}
	}
}
