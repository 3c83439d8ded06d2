package gateway

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

type errorBody struct {
	Message, Reason, Service string
}

func decodeErrorBody(t *testing.T, b []byte) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body %q: %v", b, err)
	}
	return e
}

// The gateway's 404 and 503 bodies name the service and why it cannot be
// served: unknown, no healthy node, every breaker open.
func TestUnavailableBodiesNameServiceAndReason(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Breaker.ConsecutiveFailures = 1
		o.Breaker.OpenTimeout = time.Minute
		o.MaxRetries = 0
	})
	status, _, body := f.do("GET", "/ghost/x", nil, nil)
	if e := decodeErrorBody(t, body); status != http.StatusNotFound || e.Message != "Not Found" || e.Reason != "unknown service" || e.Service != "ghost" {
		t.Fatalf("unknown: %d %s", status, body)
	}
	status, _, body = f.do("GET", "/x", nil, map[string]string{"X-Maxine-Service": `odd"name`})
	if e := decodeErrorBody(t, body); status != http.StatusNotFound || e.Service != `odd"name` {
		t.Fatalf("unknown by header: %d %s", status, body)
	}

	healthy := startBackend(t, "a", nil)
	f.register("down", "a", healthy, 1, nil)
	f.waitNodes("down", 1)
	f.p.routes.Load().exact["down"].table.Load().nodeList()[0].down.Store(true)
	status, _, body = f.do("GET", "/down/x", nil, nil)
	if e := decodeErrorBody(t, body); status != http.StatusServiceUnavailable || e.Message != "Service Unavailable" || e.Reason != "no healthy node" || e.Service != "down" {
		t.Fatalf("health down: %d %s", status, body)
	}

	dead := startBackend(t, "b", nil)
	f.register("broken", "b", dead, 1, nil)
	dead.kill()
	f.waitNodes("broken", 1)
	f.do("GET", "/broken/x", nil, nil) // 502, and the breaker opens
	status, _, body = f.do("GET", "/broken/x", nil, nil)
	if e := decodeErrorBody(t, body); status != http.StatusServiceUnavailable || e.Reason != "all breakers open" || e.Service != "broken" {
		t.Fatalf("breakers open: %d %s", status, body)
	}
}

// Naming the service costs no allocation: the bodies are precomputed per
// reason and the name is appended to the response's pooled body buffer.
func TestUnavailableBodyAllocs(t *testing.T) {
	if raceEnabled() {
		t.Skip("allocation counts are meaningless under -race")
	}
	// No fixture: its servers' goroutines would allocate meanwhile, and
	// AllocsPerRun counts every goroutine's allocations.
	var p Proxy
	var ctx fasthttp.RequestCtx
	// As in the server's RequestCtx (fasthttp keeps a served response's
	// body buffer unless ReduceMemoryUsage): without it every Reset hands
	// the buffer to fasthttp's process-wide pool, which drops buffers
	// larger than its calibrated size, so the count would depend on
	// what earlier tests of the package sent.
	ctx.Response.KeepBodyBuffer = true
	name := []byte(`orders"x`)
	allocs := leastAllocs(200, func() {
		ctx.Response.Reset()
		p.failService(&ctx, fasthttp.StatusServiceUnavailable, noHealthyNode, name)
	})
	if string(ctx.Response.Body()) != `{"message":"Service Unavailable","reason":"no healthy node","service":"orders\"x"}` {
		t.Fatalf("body %s", ctx.Response.Body())
	}
	if allocs != 0 {
		t.Fatalf("%v allocs per failService", allocs)
	}
}
