package gateway

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/maxine-io/maxine/registry"
)

// ServeService behind an admin-style server (no body streaming): the
// compatibility proxy endpoint and discover's proxy mode.
func TestServeService(t *testing.T) {
	f := newFixture(t, nil)
	b := startBackend(t, "a", nil)
	f.register("svc", "a", b, 1, func(r *registry.Registration) { r.Path = "/base" })
	admin := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		const prefix = "/api/maxine/serviceops/proxy/"
		path := string(ctx.Path())
		if rest, ok := strings.CutPrefix(path, prefix); ok {
			svc, sub, _ := strings.Cut(rest, "/")
			f.p.ServeService(ctx, svc, []byte(sub))
			return
		}
		// discover?serviceName=&endPoint=
		f.p.ServeService(ctx, string(ctx.QueryArgs().Peek("serviceName")), ctx.QueryArgs().Peek("endPoint"))
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go admin.Serve(ln)
	t.Cleanup(func() { admin.Shutdown() })
	base := "http://" + ln.Addr().String()

	get := func(method, url string, body []byte) (int, string) {
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, _ := get("GET", base+"/api/maxine/serviceops/proxy/svc/items/7?x=1", nil); status != 200 || b.last().URI != "/base/items/7?x=1" {
		t.Fatalf("proxy endpoint: %d %s", status, b.last().URI)
	}
	body := bytes.Repeat([]byte("z"), 100_000)
	if status, _ := get("POST", base+"/api/maxine/serviceops/proxy/svc/up", body); status != 200 || b.last().Body != sha256.Sum256(body) {
		t.Fatalf("proxy endpoint POST: %d, body differs: %v", status, b.last().Body != sha256.Sum256(body))
	}
	if status, _ := get("GET", base+"/discover?serviceName=svc&endPoint=/e/p%3Fq%3D2", nil); status != 200 || b.last().URI != "/base/e/p?q=2" {
		t.Fatalf("discover: %d %s", status, b.last().URI)
	}
	if status, body := get("GET", base+"/api/maxine/serviceops/proxy/nope/x", nil); status != 503 || body != `{"message":"Service Unavailable","reason":"unknown service","service":"nope"}` {
		t.Fatalf("unknown service: %d %s", status, body)
	}
	if status, _ := get("GET", base+"/discover?serviceName=svc&endPoint=../../etc", nil); status != 400 {
		t.Fatalf("dot-dot endPoint: %d", status)
	}
	f.traces.mu.Lock()
	defer f.traces.mu.Unlock()
	if len(f.traces.tps) == 0 || !strings.HasPrefix(f.traces.tps[0], "proxy svc GET /api/maxine/serviceops/proxy/svc/items/7 200 ") {
		t.Fatalf("trace records %v", f.traces.tps)
	}
}

func TestOptionsValidation(t *testing.T) {
	reg := registry.New(registry.Options{})
	for name, o := range map[string]Options{
		"no registry":      {},
		"negative timeout": {Registry: reg, TryTimeout: -1},
		"budget > 1":       {Registry: reg, RetryBudget: 1.5},
		"too many retries": {Registry: reg, MaxRetries: 50},
		"negative ratio":   {Registry: reg, Breaker: BreakerOptions{FailureRatio: -0.1}},
		"negative size":    {Registry: reg, MaxBodySize: -1},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	p, err := New(Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if p.o.MaxRetries != 2 || p.o.RetryBudget != 0.2 || p.o.TryTimeout.Seconds() != 10 || p.o.Breaker.ConsecutiveFailures != 5 {
		t.Fatalf("defaults %+v", p.o)
	}
	if up := p.Upstreams(); up.Started || len(up.Nodes) != 0 {
		t.Fatalf("report before Run: %+v", up)
	}
	if _, _, ok := p.NodeStatus("svc", "a-0"); ok {
		t.Fatal("unknown node known")
	}
}

func TestSplitAddress(t *testing.T) {
	for addr, want := range map[string][3]string{
		"http://127.0.0.1:8080":       {"http", "127.0.0.1:8080", ""},
		"https://api.example.com/v1/": {"https", "api.example.com:443", "/v1"},
		"http://[::1]:9000/base/path": {"http", "[::1]:9000", "/base/path"},
		"HTTP://host":                 {"http", "host:80", ""},
		"http://[fe80::1]/x":          {"http", "[fe80::1]:80", "/x"},
	} {
		s, h, b := splitAddress(addr)
		if [3]string{s, h, b} != want {
			t.Errorf("splitAddress(%q) = %q %q %q, want %q", addr, s, h, b, want)
		}
	}
}

func TestParentName(t *testing.T) {
	for v, want := range map[string]string{"node-1-0": "node-1", "a-12": "a", "plain": "plain", "x-y": "x-y"} {
		if got := parentName(v); got != want {
			t.Errorf("parentName(%q) = %q", v, got)
		}
	}
}

// An https node: the gateway connects with TLS, verifying the node's
// certificate against Options.TLSConfig's roots.
func TestTLSNode(t *testing.T) {
	node := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secure "+r.URL.RequestURI())
	}))
	node.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	node.StartTLS()
	t.Cleanup(node.Close)
	roots := x509.NewCertPool()
	roots.AddCert(node.Certificate())
	f := newFixture(t, func(o *Options) { o.TLSConfig = &tls.Config{RootCAs: roots} })
	port := node.Listener.Addr().(*net.TCPAddr).Port
	f.register("svc", "a", &backend{port: port}, 1, func(r *registry.Registration) { r.SSL = true })
	status, _, body := f.do("GET", "/svc/x?y=1", nil, nil)
	if status != 200 || string(body) != "secure /x?y=1" {
		t.Fatalf("got %d %q", status, body)
	}
	// Without the roots the certificate is refused: a connect failure.
	g := newFixture(t, nil)
	g.register("svc", "a", &backend{port: port}, 1, func(r *registry.Registration) { r.SSL = true })
	if status, _, _ := g.do("GET", "/svc/x", nil, nil); status != http.StatusBadGateway {
		t.Fatalf("untrusted node: %d", status)
	}
}
