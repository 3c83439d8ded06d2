package gateway

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/maxine-io/maxine/registry"
)

func TestViaNames(t *testing.T) {
	const me = "maxine-a"
	cases := []struct {
		v    string
		want bool
	}{
		{"1.1 maxine-a", true},
		{"HTTP/1.1 maxine-a", true},
		{"1.0 maxine-a (Maxine)", true},
		{"1.1 maxine-a(Maxine)", true},
		{"1.0 edge, 1.1 maxine-a", true},
		{"1.0 edge,1.1 maxine-a", true},
		{" , 1.1\tmaxine-a ,", true},
		{"1.1 edge (a, b), 1.1 maxine-a", true},
		{"1.1 edge (a (nested, x) b), 1.1 maxine-a", true},

		{"", false},
		{"1.1", false},
		{"maxine-a", false},                         // the protocol, no received-by
		{"1.1 maxine-ab", false},                    // another instance
		{"1.1 xmaxine-a", false},                    // another instance
		{"1.1 maxine-a.example:8000", false},        // a host, not the pseudonym
		{"1.1 edge (maxine-a)", false},              // only in a comment
		{"1.1 edge (x, 1.1 maxine-a)", false},       // only in a comment
		{"1.1 edge (x\\), 1.1 maxine-a)", false},    // escaped parenthesis
		{"1.1 edge (unclosed, 1.1 maxine-a", false}, // the comment runs to the end
	}
	for _, c := range cases {
		if got := viaNames([]byte(c.v), []byte(me)); got != c.want {
			t.Errorf("viaNames(%q) = %v, want %v", c.v, got, c.want)
		}
	}
}

func TestViaPseudonym(t *testing.T) {
	if got := ViaPseudonym("web-1", 0x2a); got != "maxine-web-1-0000002a" {
		t.Errorf("ViaPseudonym(web-1) = %q", got)
	}
	if ViaPseudonym("web-1", 1) == ViaPseudonym("web-1", 2) {
		t.Error("two processes with the same instance id share a pseudonym")
	}
	seen := map[string]string{}
	for _, id := range []string{"", "pod/7", "a b", "host:8000", "é", strings.Repeat("x", 65)} {
		got := ViaPseudonym(id, 7)
		if !isToken(got) || !strings.HasPrefix(got, "maxine-") {
			t.Errorf("ViaPseudonym(%q) = %q: not a token", id, got)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("ViaPseudonym(%q) = ViaPseudonym(%q) = %q", id, other, got)
		}
		seen[got] = id
		if ViaPseudonym(id, 7) != got {
			t.Errorf("ViaPseudonym(%q) is not stable", id)
		}
	}
	if _, err := New(Options{Registry: registry.New(registry.Options{}), Via: "bad name"}); err == nil {
		t.Error("New accepted a Via pseudonym that is not a token")
	}
}

// TestViaForwarded: the node sees the incoming X-Maxine-Via with this hop
// appended, naming the protocol the client spoke; the client's Via passes
// through untouched, and no Via is added (a node would take it for a
// proxied request: nginx's default gzip_proxied off stops compressing).
func TestViaForwarded(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Via = "maxine-test" })
	b := startBackend(t, "n1", okHandler("n1"))
	f.register("svc", "n1", b, 1, nil)
	f.waitNodes("svc", 1)

	if st, _, _ := f.do("GET", "/svc/a", nil, nil); st != 200 {
		t.Fatalf("status %d", st)
	}
	if got := b.last().Header.Values("X-Maxine-Via"); len(got) != 1 || got[0] != "1.1 maxine-test" {
		t.Errorf("X-Maxine-Via of a first hop: %q", got)
	}
	if got := b.last().Header.Values("Via"); len(got) != 0 {
		t.Errorf("a Via the client did not send: %q", got)
	}
	if st, _, _ := f.do("GET", "/svc/a", nil, map[string]string{"Via": "1.0 edge (Edge/2)", "X-Maxine-Via": "1.1 maxine-edge"}); st != 200 {
		t.Fatalf("status %d", st)
	}
	if got := b.last().Header.Get("X-Maxine-Via"); got != "1.1 maxine-edge, 1.1 maxine-test" {
		t.Errorf("X-Maxine-Via after another instance's: %q", got)
	}
	if got := b.last().Header.Values("Via"); len(got) != 1 || got[0] != "1.0 edge (Edge/2)" {
		t.Errorf("the client's Via changed: %q", got)
	}

	// Two lines from an HTTP/1.0 client: joined, and this hop says 1.0.
	resp := f.rawRequest("GET /svc/b HTTP/1.0\r\nHost: x\r\nX-Maxine-Via: 1.1 a\r\nX-Maxine-Via: 1.1 b\r\n\r\n")
	if !strings.HasPrefix(resp, "HTTP/1.1 200") && !strings.HasPrefix(resp, "HTTP/1.0 200") {
		t.Fatalf("HTTP/1.0 request: %q", resp)
	}
	if got := b.last().Header.Get("X-Maxine-Via"); got != "1.1 a, 1.1 b, 1.0 maxine-test" {
		t.Errorf("X-Maxine-Via of an HTTP/1.0 request: %q", got)
	}
	// A Via naming this instance is somebody else's business: no 508.
	if st, _, _ := f.do("GET", "/svc/a", nil, map[string]string{"Via": "1.1 maxine-test"}); st != 200 {
		t.Errorf("a client's Via naming the pseudonym: %d", st)
	}
}

// TestRoutingLoopDetected: two gateways whose service points at each
// other (header routing keeps the service across hops). The request makes
// one lap and comes back to the first gateway, which answers 508 instead
// of forwarding again; the 508 travels back to the client. Without the
// check, the request circles until a pool or a deadline gives out.
func TestRoutingLoopDetected(t *testing.T) {
	a := newFixture(t, func(o *Options) { o.Via = "maxine-a" })
	b := newFixture(t, func(o *Options) { o.Via = "maxine-b" })
	point := func(f *fixture, at *fixture) {
		_, port, _ := net.SplitHostPort(at.addr)
		p, _ := strconv.Atoi(port)
		if _, err := f.reg.Register(registry.Registration{ServiceName: "loop", NodeName: "n", HostName: "127.0.0.1", Port: p, TimeOut: 600, Weight: 1}); err != nil {
			t.Fatal(err)
		}
		f.waitNodes("loop", 1)
	}
	point(a, b)
	point(b, a)

	start := time.Now()
	st, _, body := a.do("GET", "/x", nil, map[string]string{"X-Maxine-Service": "loop"})
	if st != 508 || !strings.Contains(string(body), "Loop Detected") {
		t.Fatalf("looping request: %d %s", st, body)
	}
	// a forwarded it once and refused it once; b forwarded it once.
	if n := a.traces.count("loop"); n != 2 {
		t.Errorf("gateway a handled the request %d times, want 2 (forward, then 508)", n)
	}
	if n := b.traces.count("loop"); n != 1 {
		t.Errorf("gateway b handled the request %d times, want 1", n)
	}
	t.Logf("loop refused after one lap in %v", time.Since(start))

	// A self-loop (a node at this gateway's own address under a name the
	// registration check cannot see through) stops after one hop.
	point(b, b)
	if st, _, _ := b.do("GET", "/x", nil, map[string]string{"X-Maxine-Service": "loop"}); st != 508 {
		t.Fatalf("self-loop: %d", st)
	}
}

// TestViaOnUpgrade: an Upgrade handshake carries X-Maxine-Via too, and a looping
// one is refused before any tunnel opens.
func TestViaOnUpgrade(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Via = "maxine-test" })
	b := startBackend(t, "n1", okHandler("n1"))
	f.register("svc", "n1", b, 1, nil)
	f.waitNodes("svc", 1)

	// The node refuses the upgrade (a plain 200): the handshake reached it.
	resp := f.rawRequest("GET /svc/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if !strings.HasPrefix(resp, "HTTP/1.1 200") {
		t.Fatalf("handshake: %q", resp)
	}
	if got := b.last().Header.Get("X-Maxine-Via"); got != "1.1 maxine-test" {
		t.Errorf("handshake's X-Maxine-Via: %q", got)
	}
	hits := b.hits.Load()
	resp = f.rawRequest("GET /svc/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nX-Maxine-Via: 1.1 maxine-test\r\n\r\n")
	if !strings.HasPrefix(resp, "HTTP/1.1 508") || b.hits.Load() != hits {
		t.Fatalf("looping handshake: %q (node hits %d → %d)", resp, hits, b.hits.Load())
	}
}

// count is how many requests to service the recorder saw.
func (r *traceRecorder) count(service string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, tp := range r.tps {
		if f := strings.Fields(tp); len(f) > 1 && f[1] == service {
			n++
		}
	}
	return n
}

// FuzzViaNames: any Via value is scanned without a panic; a value naming
// no pseudonym never matches; appending a member naming it to a value
// without comments always does.
func FuzzViaNames(f *testing.F) {
	for _, s := range []string{"1.1 maxine-a", "1.0 edge (x, y), 1.1 b", "((((", "\\", ",,, ,", "1.1 a (\\) b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		const me = "maxine-q"
		got := viaNames([]byte(v), []byte(me))
		if got && !strings.Contains(v, me) {
			t.Fatalf("viaNames(%q) matched a value without the pseudonym", v)
		}
		if !strings.Contains(v, "(") && !viaNames([]byte(v+", 1.1 "+me), []byte(me)) {
			t.Fatalf("viaNames(%q + member) missed the pseudonym", v)
		}
	})
}

// BenchmarkVia is what loop detection costs a request: the loop check and the field
// for the node (0 allocations; about 100 ns on the 2-core machine, against
// tens of µs of CPU per proxied request).
func BenchmarkVia(b *testing.B) {
	p := &Proxy{via: []byte("maxine-bench-1")}
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetRequestURI("/svc/x")
	ctx.Request.Header.Set("Host", "example")
	ctx.Request.Header.Set("User-Agent", "wrk")
	ctx.Request.Header.Set("Accept", "*/*")
	var h fasthttp.RequestHeader
	ctx.Request.Header.CopyTo(&h)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		if p.looped(&ctx) {
			b.Fatal("looped")
		}
		buf = p.setVia(&ctx, &h, buf)
	}
}
