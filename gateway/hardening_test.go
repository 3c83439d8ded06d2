package gateway

import (
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/maxine-io/maxine/registry"
)

// Tests for the routing and proxy defects of issue 8, section 2. Each one
// failed against the code before its fix.

// A registration named like an address the gateway itself is reached by
// (an IP literal, localhost, the machine's host name, a configured own
// name) must not take traffic that a client addressed to the gateway and
// routed by path to another service.
func TestHostRoutingCannotCaptureTraffic(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.OwnHosts = []string{"Gateway.Example.com"} })
	orders := startBackend(t, "orders", nil)
	thief := startBackend(t, "thief", nil)
	f.register("orders", "o1", orders, 1, nil)
	f.waitNodes("orders", 1)
	hostile := []string{"127.0.0.1", "localhost", "LocalHost", "gw.localhost", "2130706433", "0x7f000001",
		"127.1", "::1", "[::1]", "gateway.example.com", "10.0.0.1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hostile = append(hostile, h)
	}
	for i, name := range hostile {
		f.register(name, "t"+strconv.Itoa(i), thief, 1, nil)
		f.waitNodes(name, 1)
	}
	hosts := []string{"127.0.0.1", "127.0.0.1:8000", "localhost:8000", "LOCALHOST", "gw.localhost", "gw.LocalHost.",
		"2130706433", "0x7f000001:80", "127.1", "[::1]:8000", "gateway.example.com:8000", "GATEWAY.example.com", "10.0.0.1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h, h+":8000")
	}
	for _, host := range hosts {
		status, hdr, body := f.do("GET", "/orders/x", nil, map[string]string{"Host": host})
		if status != http.StatusOK || hdr.Get("X-Node") != "orders" {
			t.Errorf("Host %q: status %d from %q (%s), want 200 from orders", host, status, hdr.Get("X-Node"), body)
		}
	}
	if n := thief.hits.Load(); n != 0 {
		t.Fatalf("%d requests captured by a registration named like the gateway's own address", n)
	}
	// Plain names still route by Host, and the hostile names by path.
	f.register("users", "u1", thief, 1, nil)
	f.waitNodes("users", 1)
	if status, hdr, _ := f.do("GET", "/x", nil, map[string]string{"Host": "users:8000"}); status != 200 || hdr.Get("X-Node") != "thief" {
		t.Fatalf("Host users: %d %q", status, hdr.Get("X-Node"))
	}
	if status, hdr, _ := f.do("GET", "/127.0.0.1/x", nil, nil); status != 200 || hdr.Get("X-Node") != "thief" {
		t.Fatalf("path /127.0.0.1/x: %d %q", status, hdr.Get("X-Node"))
	}
}

// An absolute-form request target is routed by its authority, as RFC 9112
// §3.2.2 says (the Host header is ignored); other schemes, userinfo and an
// empty authority are refused.
func TestAbsoluteFormTarget(t *testing.T) {
	f := newFixture(t, nil)
	svc := startBackend(t, "svc", nil)
	other := startBackend(t, "other", nil)
	f.register("svc", "s", svc, 1, nil)
	f.register("other", "o", other, 1, nil)
	f.waitNodes("svc", 1)
	f.waitNodes("other", 1)

	if line := f.rawRequest("GET http://svc/x?q=1 HTTP/1.1\r\nHost: other\r\n\r\n"); line != "HTTP/1.1 200 OK" {
		t.Fatalf("absolute-form: %q", line)
	}
	if svc.hits.Load() != 1 || other.hits.Load() != 0 {
		t.Fatalf("routed by Host, not by the target's authority: svc %d, other %d", svc.hits.Load(), other.hits.Load())
	}
	if s := svc.last(); s.URI != "/x?q=1" || s.Header.Get("X-Forwarded-Host") != "svc" {
		t.Fatalf("node saw %s, X-Forwarded-Host %q", s.URI, s.Header.Get("X-Forwarded-Host"))
	}
	// An authority that is no service: routed by path, still not by Host.
	if line := f.rawRequest("GET HTTP://gw:8000/other/y HTTP/1.1\r\nHost: svc\r\n\r\n"); line != "HTTP/1.1 200 OK" {
		t.Fatalf("absolute-form, path routing: %q", line)
	}
	if other.hits.Load() != 1 || other.last().URI != "/y" {
		t.Fatalf("path routing under absolute-form: other %d", other.hits.Load())
	}
	for _, raw := range []string{
		"GET ftp://svc/x HTTP/1.1\r\nHost: svc\r\n\r\n",
		"GET http://user@svc/x HTTP/1.1\r\nHost: svc\r\n\r\n",
		"GET http:///svc/x HTTP/1.1\r\nHost: svc\r\n\r\n",
		"GET http://s vc/x HTTP/1.1\r\nHost: svc\r\n\r\n",
		"GET http://svc:8x/x HTTP/1.1\r\nHost: svc\r\n\r\n",
		"GET svc:80 HTTP/1.1\r\nHost: svc\r\n\r\n",
	} {
		if line := f.rawRequest(raw); !strings.HasPrefix(line, "HTTP/1.1 400") {
			t.Errorf("%q: %q, want 400", raw, line)
		}
	}
	if svc.hits.Load() != 1 || other.hits.Load() != 1 {
		t.Fatalf("refused targets reached a node")
	}
}

// The node gets the headers the client sent, and no Content-Type the
// client did not send.
func TestNoContentTypeAdded(t *testing.T) {
	f := newFixture(t, nil)
	b := startBackend(t, "a", nil)
	f.register("svc", "a", b, 1, nil)
	f.waitNodes("svc", 1)
	if line := f.rawRequest("POST /svc/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\n\r\nabc"); line != "HTTP/1.1 200 OK" {
		t.Fatal(line)
	}
	if ct, ok := b.last().Header["Content-Type"]; ok {
		t.Fatalf("node got Content-Type %q the client did not send", ct)
	}
	if line := f.rawRequest("POST /svc/x HTTP/1.1\r\nHost: gw\r\nContent-Type: text/x-mine\r\nContent-Length: 3\r\n\r\nabc"); line != "HTTP/1.1 200 OK" {
		t.Fatal(line)
	}
	if ct := b.last().Header.Get("Content-Type"); ct != "text/x-mine" {
		t.Fatalf("Content-Type %q", ct)
	}
}

// Expect: 100-continue with a Content-Length over the limit is answered
// 413 at once, without inviting the body.
func TestExpectContinueOverLimit(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxBodySize = 1024 })
	b := startBackend(t, "a", nil)
	f.register("svc", "a", b, 1, nil)
	f.waitNodes("svc", 1)
	if line := f.rawRequest("POST /svc/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 4096\r\nExpect: 100-continue\r\n\r\n"); line != "HTTP/1.1 413 Request Entity Too Large" {
		t.Fatalf("got %q, want 413 at once", line)
	}
	// Within the limit the body is invited and forwarded.
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "POST /svc/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
	buf := make([]byte, 25)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "HTTP/1.1 100 Continue\r\n\r\n" {
		t.Fatalf("interim response %q %v", buf, err)
	}
	io.WriteString(conn, "abc")
	rest, _ := io.ReadAll(conn)
	if !strings.HasPrefix(string(rest), "HTTP/1.1 200 OK") || b.last().Len != 3 {
		t.Fatalf("after 100: %q", rest)
	}
	if b.hits.Load() != 1 {
		t.Fatalf("node hits %d", b.hits.Load())
	}
}

// A bare LF (or bare CR) anywhere in a request head is refused with 400
// at once: the request line, a field line, or the blank line that ends
// the head (which used to leave the connection waiting for a CRLFCRLF).
func TestBareLFInHead(t *testing.T) {
	f := newFixture(t, nil)
	b := startBackend(t, "a", nil)
	f.register("svc", "a", b, 1, nil)
	f.waitNodes("svc", 1)
	// The gateway listener as cmd/maxine serves it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(f.p, ServerOptions{})
	go srv.Serve(Listener(ln))
	t.Cleanup(func() { srv.Shutdown() })
	g := &fixture{t: t, addr: ln.Addr().String()}
	for _, raw := range []string{
		"GET /svc/x HTTP/1.1\nHost: gw\n\n",
		"GET /svc/x HTTP/1.1\r\nHost: gw\r\n\n",
		"GET /svc/x HTTP/1.1\r\nHost: gw\n\r\n",
		"GET /svc/x HTTP/1.1\nHost: gw\r\n\r\n",
		"GET /svc/x HTTP/1.1\r\nHost: gw\nX-A: b\r\n\r\n",
		"GET /svc/x HTTP/1.1\r\nHost: gw\rX-A: b\r\n\r\n",
	} {
		if line := g.rawRequest(raw); !strings.HasPrefix(line, "HTTP/1.1 400") {
			t.Errorf("%q: %q, want 400 at once", raw, line)
		}
	}
	if n := b.hits.Load(); n != 0 {
		t.Fatalf("%d requests with a bare LF reached the node", n)
	}
	// Keep-alive requests, pipelined or not, bodies with bare LFs, and a
	// 100-continue body are untouched.
	conn, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	body := "a\n\nb\n"
	req := "POST /svc/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\n" + body
	io.WriteString(conn, req)
	readResponse(t, conn)
	io.WriteString(conn, req+req)
	readResponse(t, conn)
	readResponse(t, conn)
	io.WriteString(conn, "POST /svc/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	buf := make([]byte, 25)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "HTTP/1.1 100 Continue\r\n\r\n" {
		t.Fatalf("interim response %q %v", buf, err)
	}
	io.WriteString(conn, body)
	readResponse(t, conn)
	io.WriteString(conn, "GET /svc/x HTTP/1.1\r\nHost: gw\r\n\r\n")
	readResponse(t, conn)
	if n := b.hits.Load(); n != 5 {
		t.Fatalf("node hits %d, want 5", n)
	}
}

// readResponse reads one response with a Content-Length body and fails the
// test unless it is 200.
func readResponse(t *testing.T, conn net.Conn) {
	t.Helper()
	var head []byte
	one := make([]byte, 1)
	for !strings.HasSuffix(string(head), "\r\n\r\n") {
		if _, err := conn.Read(one); err != nil {
			t.Fatalf("reading response head %q: %v", head, err)
		}
		head = append(head, one[0])
	}
	if !strings.HasPrefix(string(head), "HTTP/1.1 200") {
		t.Fatalf("response %q", head)
	}
	n := 0
	for _, l := range strings.Split(string(head), "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "Content-Length") {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if _, err := io.ReadFull(conn, make([]byte, n)); err != nil {
		t.Fatal(err)
	}
}

// With the default breaker settings the try timeout equals the breaker
// window, so a request that times out finishes one window after it
// started. Its failure must still count: eight concurrent requests to a
// hanging node open its breaker. Both durations are scaled down by the
// same factor, which keeps their relation (the one that mattered).
func TestBreakerOpensOnTimeoutsWithDefaults(t *testing.T) {
	def := Options{Registry: registry.New(registry.Options{})}
	if err := def.normalize(); err != nil {
		t.Fatal(err)
	}
	const scale = 40
	f := newFixture(t, func(o *Options) {
		o.TryTimeout = def.TryTimeout / scale
		o.Breaker.Window = def.Breaker.Window / scale
		o.Deadline = def.Deadline
	})
	release := make(chan struct{})
	hang := startBackend(t, "hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	f.register("svc", "hang", hang, 1, nil)
	f.waitNodes("svc", 1)
	var wg sync.WaitGroup
	statuses := make([]int, 8)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _, _ = f.do("GET", "/svc/x", nil, nil)
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusGatewayTimeout && s != http.StatusServiceUnavailable {
			t.Fatalf("request %d: status %d", i, s)
		}
	}
	if st, _, _ := f.p.NodeStatus("svc", "hang-0"); st != "open" {
		t.Fatalf("breaker %s after 8 timeouts, want open", st)
	}
}

// slowUpload opens a connection that sends a request head announcing a
// body of cl bytes, then first bytes of it, and then nothing: a client
// trickling its upload. It is closed when the test ends.
func slowUpload(t *testing.T, addr string, cl, first int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	head := "POST /svc/upload HTTP/1.1\r\nHost: gw\r\nContent-Length: " + strconv.Itoa(cl) + "\r\n\r\n"
	if _, err := io.WriteString(conn, head+strings.Repeat("x", first)); err != nil {
		t.Fatal(err)
	}
	return conn
}

// Clients trickling bodies larger than the stream threshold must not hold
// the node's pooled connections: the gateway buffers up to the threshold
// before it takes one. Here as many slow uploads as the node has pooled
// connections are in progress, and normal requests still get through.
func TestSlowUploadsDoNotStarveService(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.MaxConnsPerNode = 2
		o.StreamThreshold = 16 << 10
		o.MaxBodySize = 1 << 20
	})
	b := startBackend(t, "a", nil)
	b.keep = false
	f.register("svc", "a", b, 1, nil)
	f.waitNodes("svc", 1)
	// fasthttp reads the first 8 KiB of a body before it calls the
	// handler; the trickle starts after them.
	for range 2 {
		slowUpload(t, f.addr, 64<<10, 8<<10+100)
	}
	waitFor(t, "the slow uploads to be in progress", func() bool { return f.p.InFlight() == 2 })
	for i := range 5 {
		if status, _, body := f.do("GET", "/svc/x", nil, nil); status != http.StatusOK {
			t.Fatalf("normal request %d beside slow uploads: %d %s", i, status, body)
		}
	}
}

// A body that stops arriving is cut off once it falls below the minimum
// rate (after the grace period): 408, and the node's connection, held
// while the streamed part was forwarded, is free again.
func TestStalledBodyIsCutOff(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.MaxConnsPerNode = 1
		o.StreamThreshold = 16 << 10
		o.MaxBodySize = 1 << 20
		o.MinBodyRate = 1 << 20
		o.BodyReadGrace = 100 * time.Millisecond
	})
	b := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })
	b.keep = false
	f.register("svc", "a", b, 1, nil)
	f.waitNodes("svc", 1)
	conn := slowUpload(t, f.addr, 256<<10, 32<<10)
	line := make([]byte, 12)
	if _, err := io.ReadFull(conn, line); err != nil || string(line) != "HTTP/1.1 408" {
		t.Fatalf("stalled upload: %q %v, want 408", line, err)
	}
	if status, _, body := f.do("GET", "/svc/x", nil, nil); status != http.StatusOK {
		t.Fatalf("after the stalled upload: %d %s", status, body)
	}
}

// One client address may have at most MaxRequestsPerClient requests in
// progress; more are refused 429 at once, and others are not affected.
func TestRequestsPerClientCapped(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxRequestsPerClient = 2 })
	b := startBackend(t, "a", nil)
	b.keep = false
	f.register("svc", "a", b, 1, nil)
	f.waitNodes("svc", 1)
	c1 := slowUpload(t, f.addr, 16<<10, 8<<10+1)
	c2 := slowUpload(t, f.addr, 16<<10, 8<<10+1)
	waitFor(t, "two requests in progress", func() bool { return f.p.InFlight() == 2 })
	if status, _, body := f.do("GET", "/svc/x", nil, nil); status != http.StatusTooManyRequests {
		t.Fatalf("third request of one client: %d %s, want 429", status, body)
	}
	c1.Close()
	c2.Close()
	waitFor(t, "the slow requests to end", func() bool { return f.p.InFlight() == 0 })
	if status, _, body := f.do("GET", "/svc/x", nil, nil); status != http.StatusOK {
		t.Fatalf("after the slow requests: %d %s", status, body)
	}
}

// ServeService (discover in proxy mode, admin's proxy route) takes its
// path from a query parameter or a decoded route: spaces and control
// characters in it are refused, never forwarded.
func TestServeServiceRefusesSpaces(t *testing.T) {
	f := newFixture(t, nil)
	b := startBackend(t, "a", nil)
	f.register("svc", "a", b, 1, nil)
	f.waitNodes("svc", 1)
	for _, path := range []string{"/a b", "/a\r\nX-Evil: 1", "/a?q=1 HTTP/1.1", "/a\x00", "/a#f"} {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI("/discover")
		f.p.ServeService(&ctx, "svc", []byte(path))
		if ctx.Response.StatusCode() != http.StatusBadRequest {
			t.Errorf("path %q: %d, want 400", path, ctx.Response.StatusCode())
		}
	}
	if n := b.hits.Load(); n != 0 {
		t.Fatalf("%d requests reached the node", n)
	}
}
