package gateway

import (
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/registry"
)

// withMeta returns a registration modifier setting metadata md.
func withMeta(md map[string]string) func(*registry.Registration) {
	return func(r *registry.Registration) { r.Metadata = md }
}

// blockingHandler answers only once release is closed (or the gateway
// gives up on the request): a node that cannot answer within any try
// timeout, without a clock in the test.
func blockingHandler(release <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
			io.WriteString(w, "released")
		case <-r.Context().Done():
		}
	}
}

// TestPolicyTwoServicesDiffer sends the same concurrent load to two
// services whose registrations carry different policies, through the real
// Proxy with Run and real nodes on loopback. "strict" (a 50ms try timeout,
// no retries, a rate limit of 3 requests and then one per 1000 s) answers
// 3 requests 504 (its nodes never answer) and the rest 429 with
// Retry-After; "lenient" (a 9s try timeout, no limit) answers
// all of them 200 once its node is released. Nothing here depends on the
// clock beyond the try timeout firing before the node is released.
func TestPolicyTwoServicesDiffer(t *testing.T) {
	f := newFixture(t, nil)
	release := make(chan struct{})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	// strict's nodes answer only when the test ends: its try timeout
	// fires first whatever the machine's load.
	never := make(chan struct{})
	defer close(never)
	strictA := startBackend(t, "sa", blockingHandler(never))
	strictB := startBackend(t, "sb", blockingHandler(never))
	lenient := startBackend(t, "l", blockingHandler(release))
	strictMeta := map[string]string{
		"maxine.tryTimeout": "50ms", "maxine.retries": "0",
		"maxine.rateLimit": "0.001", "maxine.rateBurst": "3",
	}
	f.register("strict", "a", strictA, 1, withMeta(strictMeta))
	f.register("strict", "b", strictB, 1, withMeta(strictMeta))
	f.register("lenient", "l", lenient, 1, withMeta(map[string]string{"maxine.tryTimeout": "9s"}))
	f.waitNodes("strict", 2)
	f.waitNodes("lenient", 1)

	const n = 20
	type result struct {
		service    string
		status     int
		retryAfter string
	}
	results := make(chan result, 2*n)
	var wg sync.WaitGroup
	for i := range 2 * n {
		service := "strict"
		if i%2 == 1 {
			service = "lenient"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, hdr, _ := f.do("GET", "/"+service+"/x", nil, nil)
			results <- result{service, status, hdr.Get("Retry-After")}
		}()
	}
	waitFor(t, "lenient's node to hold every request", func() bool { return lenient.hits.Load() == n })
	close(release)
	wg.Wait()
	close(results)

	count := map[string]map[int]int{"strict": {}, "lenient": {}}
	for r := range results {
		count[r.service][r.status]++
		if r.status == http.StatusTooManyRequests {
			secs, err := strconv.Atoi(r.retryAfter)
			if err != nil || secs < 1 {
				t.Errorf("429 with Retry-After %q, want whole seconds ≥ 1", r.retryAfter)
			}
		} else if r.retryAfter != "" {
			t.Errorf("%s %d carries Retry-After %q", r.service, r.status, r.retryAfter)
		}
	}
	if got := count["lenient"]; got[http.StatusOK] != n {
		t.Errorf("lenient: statuses %v, want %d × 200", got, n)
	}
	// The 3 admitted requests time out: 504, or 502 when a loaded
	// machine spends the 50ms before the connection is even made.
	if got := count["strict"]; got[http.StatusGatewayTimeout]+got[http.StatusBadGateway] != 3 || got[http.StatusTooManyRequests] != n-3 {
		t.Errorf("strict: statuses %v, want 3 × 504 (or 502) and %d × 429", got, n-3)
	}
	// retries=0: no admitted request was sent to a second node.
	if hits := strictA.hits.Load() + strictB.hits.Load(); hits > 3 {
		t.Errorf("strict's nodes saw %d requests, want at most 3 (no retries)", hits)
	}
}

// TestPolicyChangeUnderTraffic re-registers a service's node with a rate
// limit and then without, while clients keep sending: the limit applies
// to requests after the change and is lifted again, and no request fails
// with anything but the expected 429.
func TestPolicyChangeUnderTraffic(t *testing.T) {
	f := newFixture(t, nil)
	b := startBackend(t, "n", nil)
	b.keep = false
	f.register("svc", "n", b, 1, nil)
	f.waitNodes("svc", 1)

	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		errs     []error
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	seen := func(status int) int {
		mu.Lock()
		defer mu.Unlock()
		return statuses[status]
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5000 {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := f.client.Get(f.url + "/svc/x")
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					statuses[resp.StatusCode]++
				}
				mu.Unlock()
			}
		}()
	}
	waitFor(t, "traffic before the change", func() bool { return seen(200) > 20 })
	f.register("svc", "n", b, 1, withMeta(map[string]string{"maxine.rateLimit": "0.001", "maxine.rateBurst": "1"}))
	waitFor(t, "the limit to apply", func() bool { return seen(429) > 20 })
	ok := seen(200)
	f.register("svc", "n", b, 1, nil)
	waitFor(t, "the limit to be lifted", func() bool { return seen(200) > ok+20 })
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Errorf("%d requests failed during the change, first: %v", len(errs), errs[0])
	}
	for status, c := range statuses {
		if status != 200 && status != 429 {
			t.Errorf("%d × status %d during the change, want only 200 and 429", c, status)
		}
	}
}

// TestPolicyRetryOnAndBodySize: retryOn and maxBodySize are per service.
// Node "bad" of each service answers 500, node "good" 200. The gateway
// passes a 500 on by default; a service with retryOn=500 sends the
// request to the other node instead. A body over one service's
// maxBodySize is refused 413 there and accepted by the other.
func TestPolicyRetryOnAndBodySize(t *testing.T) {
	f := newFixture(t, nil)
	fail := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }
	for _, svc := range []string{"plain", "retrying"} {
		var md map[string]string
		if svc == "retrying" {
			md = map[string]string{"maxine.retryOn": "500,gateway-error", "maxine.maxBodySize": "10"}
		}
		f.register(svc, "bad", startBackend(t, svc+"-bad", fail), 1, withMeta(md))
		f.register(svc, "good", startBackend(t, svc+"-good", nil), 1, withMeta(md))
		f.waitNodes(svc, 2)
	}
	plain, retrying := map[int]int{}, map[int]int{}
	for range 10 {
		s, _, _ := f.do("GET", "/plain/x", nil, nil)
		plain[s]++
		s, _, _ = f.do("GET", "/retrying/x", nil, nil)
		retrying[s]++
	}
	if plain[500] == 0 {
		t.Errorf("plain: %v, want some 500s passed on", plain)
	}
	if retrying[200] != 10 {
		t.Errorf("retrying: %v, want every 500 retried on the good node", retrying)
	}
	body := strings.Repeat("x", 11)
	if s, _, _ := f.do("POST", "/retrying/x", strings.NewReader(body), nil); s != 413 {
		t.Errorf("11 bytes to a service with maxBodySize=10: %d, want 413", s)
	}
	if s, _, _ := f.do("POST", "/retrying/x", strings.NewReader(body[:10]), nil); s != 200 && s != 500 {
		t.Errorf("10 bytes to a service with maxBodySize=10: %d", s)
	}
	if s, _, _ := f.do("POST", "/plain/x", strings.NewReader(body), nil); s == 413 {
		t.Errorf("11 bytes to a service without maxBodySize: 413")
	}
}

// TestPolicyMostRestrictive: nodes that disagree combine key by key into
// the most restrictive value; keys nobody sets keep the gateway's
// defaults; removing the stricter node relaxes the policy; a membership
// change that keeps the limit keeps the limiter (and its bucket).
func TestPolicyMostRestrictive(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxRetries = 2 })
	b := startBackend(t, "n", nil)
	f.register("svc", "a", b, 1, withMeta(map[string]string{
		"maxine.tryTimeout": "2s", "maxine.retries": "3", "maxine.retryOn": "502,503,500",
		"maxine.rateLimit": "10", "maxine.rateLimitKey": "client",
	}))
	f.register("svc", "b", b, 1, withMeta(map[string]string{
		"maxine.tryTimeout": "1s", "maxine.retryOn": "503,504,500",
		"maxine.rateLimit": "20", "maxine.rateBurst": "5", "maxine.rateLimitKey": "client",
		"maxine.maxBodySize": "100",
	}))
	f.register("svc", "c", b, 1, nil)
	f.waitNodes("svc", 3)
	pol := func() *policy { return f.p.policyOf(f.p.routes.Load().exact["svc"].table.Load()) }
	waitFor(t, "the combined policy", func() bool { return pol().maxBody == 100 })
	p := pol()
	if p.tryTimeout != time.Second || p.retries != 3 || p.maxBody != 100 {
		t.Errorf("combined %+v, want tryTimeout 1s, retries 3, maxBody 100", *p)
	}
	for code, want := range map[int]bool{500: true, 502: false, 503: true, 504: false} {
		if p.retryOn.Has(code) != want {
			t.Errorf("retryOn.Has(%d) = %v, want %v", code, !want, want)
		}
	}
	l := p.limiter
	if l == nil || l.interval != int64(100*time.Millisecond) || l.tau != 5*l.interval || !l.perCl {
		t.Fatalf("limiter %+v, want 10/s, burst 5, per client", l)
	}

	f.reg.Deregister("svc", "c")
	f.waitNodes("svc", 2)
	if pol().limiter != l {
		t.Error("a membership change that keeps the limit replaced the limiter")
	}
	f.reg.Deregister("svc", "b")
	f.waitNodes("svc", 1)
	p = pol()
	if p.tryTimeout != 2*time.Second || p.maxBody != f.p.o.MaxBodySize || p.limiter.tau != 10*p.limiter.interval {
		t.Errorf("after b left: %+v, want a's policy", *p)
	}
	f.register("svc", "a", b, 1, nil)
	waitFor(t, "the policy to go", func() bool { return f.p.routes.Load().exact["svc"].table.Load().pol == nil })
	if p := pol(); p.tryTimeout != f.p.o.TryTimeout || p.retries != 2 || p.limiter != nil {
		t.Errorf("without policy keys: %+v, want the gateway's defaults", *p)
	}
}

// TestRateLimiterBuckets: the GCRA bucket admits its burst, then refuses
// with the wait until the next token; a per-client limiter keeps clients
// apart, a service-wide one does not. The rate is so low (one per 1000 s)
// that no token comes due during the test.
func TestRateLimiterBuckets(t *testing.T) {
	c1, c2 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	for _, perClient := range []bool{false, true} {
		l := newRateLimiter(0.001, 2, perClient)
		for i := range 2 {
			if w := l.take(c1); w != 0 {
				t.Fatalf("perClient %v: request %d refused (wait %v) within the burst", perClient, i, w)
			}
		}
		w := l.take(c1)
		if w <= 0 || retryAfter(w) < 900 || retryAfter(w) > 1000 {
			t.Fatalf("perClient %v: over the burst: wait %v (Retry-After %d), want about 1000s", perClient, w, retryAfter(w))
		}
		if got := l.take(c2) == 0; got != perClient {
			t.Errorf("perClient %v: another client admitted = %v", perClient, got)
		}
	}
	if retryAfter(time.Millisecond) != 1 || retryAfter(1500*time.Millisecond) != 2 {
		t.Error("retryAfter does not round up to whole seconds ≥ 1")
	}
}

// TestHotPathAllocsWithPolicy: a service with every policy key set, rate
// limit included, still forwards with no allocation of the gateway's own,
// and a request refused 429 allocates nothing.
func TestHotPathAllocsWithPolicy(t *testing.T) {
	if raceEnabled() {
		t.Skip("allocation counts are meaningless under -race")
	}
	port := benchUpstream(t)
	for _, c := range []struct {
		name, rate, burst string
		status            int
	}{{"admitted", "1000000", "1000000", 200}, {"limited", "0.001", "1", 429}} {
		for _, key := range []string{"service", "client"} {
			reg := registry.New(registry.Options{})
			_, err := reg.Register(registry.Registration{ServiceName: "svc", NodeName: "n", HostName: "127.0.0.1",
				Port: port, Weight: 1, TimeOut: 3600, Metadata: map[string]string{
					"maxine.tryTimeout": "3s", "maxine.retries": "1", "maxine.retryOn": "5xx", "maxine.maxBodySize": "4096",
					"maxine.rateLimit": c.rate, "maxine.rateBurst": c.burst, "maxine.rateLimitKey": key,
				}})
			if err != nil {
				t.Fatal(err)
			}
			p, err := New(Options{Registry: reg, Settings: config.New(config.Defaults())})
			if err != nil {
				t.Fatal(err)
			}
			ctx := benchCtx("GET /svc/items/42 HTTP/1.1\r\nHost: gw\r\n\r\n")
			p.ServeHTTP(ctx) // takes the "limited" burst
			serve := func() {
				ctx.Response.Reset()
				p.ServeHTTP(ctx)
				if ctx.Response.StatusCode() != c.status {
					t.Fatalf("status %d, want %d", ctx.Response.StatusCode(), c.status)
				}
			}
			for range 10 {
				serve()
			}
			want := float64(clientStreamAllocs)
			if c.status != 200 {
				want = 0
			}
			if n := leastAllocs(200, serve); n > want {
				t.Errorf("%s/%s: %.0f allocs per request, want at most %.0f", c.name, key, n, want)
			}
			if c.status == 429 && len(ctx.Response.Header.Peek("Retry-After")) == 0 {
				t.Error("429 without Retry-After")
			}
		}
	}
}

// TestPolicyRateLimitsUpgrades: an Upgrade (WebSocket) handshake counts
// against its service's rate limit like any request, so a tunnel cannot
// be used to get around it.
func TestPolicyRateLimitsUpgrades(t *testing.T) {
	f := newFixture(t, nil)
	b := startBackend(t, "n", nil)
	f.register("svc", "n", b, 1, withMeta(map[string]string{"maxine.rateLimit": "0.001", "maxine.rateBurst": "1"}))
	f.waitNodes("svc", 1)
	if s, _, _ := f.do("GET", "/svc/x", nil, nil); s != 200 {
		t.Fatalf("first request: %d", s)
	}
	line := f.rawRequest("GET /svc/ws HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	if !strings.HasPrefix(line, "HTTP/1.1 429") {
		t.Errorf("upgrade over the limit: %q, want 429", line)
	}
	if n := b.hits.Load(); n != 1 {
		t.Errorf("node saw %d requests, want only the first", n)
	}
}
