package gateway

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Under steady load, one of three nodes dies (listener and connections
// closed). GETs see no error once its breaker has opened (and at most the
// requests in flight at the kill before), no POST that reached the dead
// node is sent anywhere else, and the node gets traffic again once it is
// back on the same port.
func TestKillNodeUnderLoad(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Breaker.ConsecutiveFailures = 3
		o.Breaker.OpenTimeout = 300 * time.Millisecond
	})
	var postsMu sync.Mutex
	posts := map[string]int{} // request id -> times a node received it
	handler := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "POST" {
				postsMu.Lock()
				posts[r.Header.Get("X-Req-Id")]++
				postsMu.Unlock()
			}
			w.Header().Set("X-Node", name)
		}
	}
	nodes := map[string]*backend{}
	for _, name := range []string{"a", "b", "c"} {
		b := startBackend(t, name, handler(name))
		b.keep = false
		nodes[name] = b
		f.register("svc", name, b, 1, nil)
	}
	f.waitNodes("svc", 3)

	const workers = 4
	var (
		sent, getErrs, postErrs atomic.Int64
		stop                    = make(chan struct{})
		wg                      sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				method := "GET"
				if i%2 == 1 {
					method = "POST"
				}
				req, _ := http.NewRequest(method, f.url+"/svc/work", nil)
				req.Header.Set("X-Req-Id", strconv.Itoa(w)+"-"+strconv.Itoa(i))
				resp, err := f.client.Do(req)
				ok := err == nil && resp.StatusCode == 200
				if err == nil {
					resp.Body.Close()
				}
				sent.Add(1)
				if !ok && method == "GET" {
					getErrs.Add(1)
				} else if !ok {
					postErrs.Add(1)
				}
			}
		}()
	}
	stopLoad := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopLoad()
	waitFor(t, "warm-up traffic on every node", func() bool {
		return nodes["a"].hits.Load() > 20 && nodes["b"].hits.Load() > 20 && nodes["c"].hits.Load() > 20
	})

	nodes["c"].kill()
	waitFor(t, "c's breaker to open", func() bool {
		st, _, _ := f.p.NodeStatus("svc", "c-0")
		return st == "open"
	})
	if n := getErrs.Load(); n > workers {
		t.Errorf("%d GET errors before the breaker opened, more than the %d requests in flight", n, workers)
	}
	errsAtOpen := getErrs.Load()
	from := sent.Load()
	waitFor(t, "300 requests with c's breaker open", func() bool { return sent.Load() > from+300 })
	if n := getErrs.Load() - errsAtOpen; n != 0 {
		t.Errorf("%d GET errors after the breaker opened", n)
	}

	nodes["c"].restart()
	before := nodes["c"].hits.Load()
	waitFor(t, "c to get traffic again", func() bool { return nodes["c"].hits.Load() > before+20 })
	waitFor(t, "c's breaker to close", func() bool {
		st, _, _ := f.p.NodeStatus("svc", "c-0")
		return st == "closed"
	})
	stopLoad()

	postsMu.Lock()
	for id, n := range posts {
		if n > 1 {
			t.Errorf("POST %s reached nodes %d times", id, n)
		}
	}
	postsMu.Unlock()
	if !f.events.has(&f.events.breaker, "svc/c closed->open") || !f.events.has(&f.events.breaker, "svc/c half-open->closed") {
		t.Errorf("breaker events %v", f.events.breaker)
	}
	t.Logf("%d requests, %d GET errors, %d POST errors", sent.Load(), getErrs.Load(), postErrs.Load())
}

// A node that accepts but never answers costs one TryTimeout per request
// (504) until its breaker opens, and no traffic after.
func TestHangingNode(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.TryTimeout = 200 * time.Millisecond
		o.Breaker.ConsecutiveFailures = 3
		o.Breaker.OpenTimeout = time.Minute
	})
	release := make(chan struct{})
	hang := startBackend(t, "hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	hang.keep = false
	ok := startBackend(t, "ok", nil)
	ok.keep = false
	f.register("svc", "hang", hang, 1, nil)
	f.register("svc", "ok", ok, 1, nil)
	f.waitNodes("svc", 2)

	timeouts := 0
	for i := 0; i < 20; i++ {
		// POST: not idempotent, so a timeout is answered, not retried.
		status, _, body := f.do("POST", "/svc/x", nil, nil)
		switch status {
		case http.StatusGatewayTimeout:
			timeouts++
			if string(body) != `{"message":"Gateway Timeout"}` {
				t.Fatalf("504 body %q", body)
			}
		case http.StatusOK:
		default:
			t.Fatalf("status %d %s", status, body)
		}
	}
	if timeouts != 3 || hang.hits.Load() != 3 {
		t.Fatalf("%d timeouts, %d requests to the hanging node; want 3 and 3", timeouts, hang.hits.Load())
	}
	if st, _, _ := f.p.NodeStatus("svc", "hang-0"); st != "open" {
		t.Fatalf("breaker %s", st)
	}
	for i := 0; i < 20; i++ {
		if status, _, _ := f.do("GET", "/svc/x", nil, nil); status != 200 {
			t.Fatalf("status %d with the breaker open", status)
		}
	}
	if hang.hits.Load() != 3 {
		t.Fatalf("hanging node got %d requests after its breaker opened", hang.hits.Load()-3)
	}
}

// All nodes unreachable: 502 (after retries) while the breakers count, then
// 503 Service Unavailable once every breaker is open.
func TestAllNodesDown(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Breaker.ConsecutiveFailures = 3
		o.Breaker.OpenTimeout = time.Minute
	})
	for _, name := range []string{"a", "b"} {
		b := startBackend(t, name, nil)
		f.register("svc", name, b, 1, nil)
		b.kill()
	}
	f.waitNodes("svc", 2)
	status, _, body := f.do("GET", "/svc/x", nil, nil)
	if status != http.StatusBadGateway || string(body) != `{"message":"Bad Gateway"}` {
		t.Fatalf("first request: %d %s", status, body)
	}
	seen503 := false
	for i := 0; i < 10; i++ {
		status, _, body = f.do("GET", "/svc/x", nil, nil)
		switch {
		case status == http.StatusServiceUnavailable && string(body) == `{"message":"Service Unavailable","reason":"all breakers open","service":"svc"}`:
			seen503 = true
		case status == http.StatusBadGateway && !seen503:
		default:
			t.Fatalf("request %d: %d %s (after 503: %v)", i, status, body, seen503)
		}
	}
	if !seen503 {
		t.Fatal("never 503 with every breaker open")
	}
	rep := f.p.Upstreams()
	for _, n := range rep.Nodes {
		if n.Breaker != "open" {
			t.Errorf("%s breaker %s", n.Node, n.Breaker)
		}
	}
}

// The breaker also trips on a failure ratio without consecutive failures.
func TestBreakerFailureRatio(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Breaker.ConsecutiveFailures = 1000
		o.Breaker.MinRequests = 10
		o.Breaker.FailureRatio = 0.5
		o.Breaker.OpenTimeout = time.Minute
		o.MaxRetries = -1
	})
	var n atomic.Int64
	b := startBackend(t, "flaky", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%3 != 0 { // two failures in three, never three in a row
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	b.keep = false
	f.register("svc", "flaky", b, 1, nil)
	for i := 0; i < 12; i++ {
		f.do("GET", "/svc/x", nil, nil)
	}
	if st, _, _ := f.p.NodeStatus("svc", "flaky-0"); st != "open" {
		t.Fatalf("breaker %s after a 2/3 failure ratio", st)
	}
}
