package gateway

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/maxine-io/maxine/config"
)

// load sends n requests through the gateway from workers goroutines with a
// fasthttp client; prepare sets up request i. It returns the number of
// non-200 answers.
func (f *fixture) load(n, workers int, prepare func(i int, req *fasthttp.Request)) int64 {
	f.t.Helper()
	c := &fasthttp.HostClient{Addr: f.addr, MaxConns: workers}
	defer c.CloseIdleConnections()
	var next, bad atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				req.Reset()
				req.SetRequestURI("http://" + f.addr + "/svc/x")
				if prepare != nil {
					prepare(i, req)
				}
				if err := c.DoTimeout(req, resp, 10*time.Second); err != nil || resp.StatusCode() != 200 {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return bad.Load()
}

// Weighted round robin: weights 3:1 give 75 % / 25 % of the requests.
func TestWeightsRoundRobin(t *testing.T) {
	f := newFixture(t, nil)
	heavy := startBackend(t, "heavy", nil)
	light := startBackend(t, "light", nil)
	heavy.keep, light.keep = false, false
	f.register("svc", "heavy", heavy, 3, nil)
	f.register("svc", "light", light, 1, nil)
	f.waitNodes("svc", 2)
	const n = 20000
	if bad := f.load(n, 8, nil); bad != 0 {
		t.Fatalf("%d failed requests", bad)
	}
	share := float64(heavy.hits.Load()) / n
	t.Logf("heavy %d, light %d", heavy.hits.Load(), light.hits.Load())
	if math.Abs(share-0.75) > 0.03 || heavy.hits.Load()+light.hits.Load() != n {
		t.Fatalf("heavy share %.3f, want 0.75 ± 0.03", share)
	}
}

// Consistent hashing: one key always lands on one node; keys spread.
func TestConsistentHashSticky(t *testing.T) {
	for _, s := range []config.Strategy{config.ConsistentHashing, config.RendezvousHashing} {
		t.Run(s.String(), func(t *testing.T) {
			f := newFixture(t, func(o *Options) { o.HashHeader = "X-User" })
			f.settings.Update(func(st *config.Settings) { st.Strategy = s })
			for _, name := range []string{"a", "b", "c"} {
				b := startBackend(t, name, nil)
				b.keep = false
				f.register("svc", name, b, 1, nil)
			}
			f.waitNodes("svc", 3)
			nodes := map[string]bool{}
			for k := 0; k < 30; k++ {
				key := "user-" + strconv.Itoa(k)
				first := ""
				for range 4 {
					_, hdr, _ := f.do("GET", "/svc/x", nil, map[string]string{"X-User": key})
					if first == "" {
						first = hdr.Get("X-Node")
					} else if got := hdr.Get("X-Node"); got != first {
						t.Fatalf("key %s went to %s then %s", key, first, got)
					}
				}
				nodes[first] = true
			}
			if len(nodes) < 2 {
				t.Fatalf("30 keys all on %v", nodes)
			}
			// Without the header the key is the client IP: one node.
			first := ""
			for range 10 {
				_, hdr, _ := f.do("GET", "/svc/x", nil, nil)
				if first == "" {
					first = hdr.Get("X-Node")
				} else if hdr.Get("X-Node") != first {
					t.Fatal("client-IP key not sticky")
				}
			}
		})
	}
}

// Least request steers traffic away from the node that is slow to answer.
func TestLeastRequestPrefersIdle(t *testing.T) {
	f := newFixture(t, nil)
	f.settings.Update(func(st *config.Settings) { st.Strategy = config.LeastRequest })
	slow := startBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) { time.Sleep(20 * time.Millisecond) })
	fast := startBackend(t, "fast", nil)
	slow.keep, fast.keep = false, false
	f.register("svc", "slow", slow, 1, nil)
	f.register("svc", "fast", fast, 1, nil)
	f.waitNodes("svc", 2)
	if bad := f.load(600, 6, nil); bad != 0 {
		t.Fatalf("%d failed", bad)
	}
	t.Logf("slow %d, fast %d", slow.hits.Load(), fast.hits.Load())
	if fast.hits.Load() < 3*slow.hits.Load() {
		t.Fatalf("fast node got %d, slow %d: least request did not prefer the idle node", fast.hits.Load(), slow.hits.Load())
	}
}

// Connection pools (and breaker state) survive unrelated membership changes.
func TestPoolsKeptAcrossRebuilds(t *testing.T) {
	f := newFixture(t, nil)
	a := startBackend(t, "a", nil)
	f.register("svc", "a", a, 1, nil)
	f.waitNodes("svc", 1)
	f.do("GET", "/svc/x", nil, nil) // creates a's pool
	before := f.p.routes.Load().exact["svc"].table.Load().parent("a")
	b := startBackend(t, "b", nil)
	f.register("svc", "b", b, 2, nil)
	f.waitNodes("svc", 2)
	after := f.p.routes.Load().exact["svc"].table.Load().parent("a")
	if before != after || before.conn.Load() == nil || before.conn.Load() != after.conn.Load() {
		t.Fatal("node a's upstream was rebuilt by b's registration")
	}
	// A changed address does get a new pool, and the old one is retired.
	a2 := startBackend(t, "a2", nil)
	f.register("svc", "a", a2, 1, nil)
	waitFor(t, "a's new address", func() bool {
		return f.p.routes.Load().exact["svc"].table.Load().parent("a").address != before.address
	})
	if !before.retired.Load() {
		t.Fatal("old upstream not retired")
	}
	f.reg.Deregister("svc", "a")
	f.reg.Deregister("svc", "b")
	f.waitNodes("svc", 0)
	if status, _, _ := f.do("GET", "/svc/x", nil, nil); status != http.StatusNotFound {
		t.Fatalf("removed service: %d", status)
	}
}
