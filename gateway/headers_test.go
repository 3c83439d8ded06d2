package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/maxine-io/maxine/trace"
)

// hop-by-hop headers are dropped in both directions, end-to-end ones kept.
func TestHopByHopHeaders(t *testing.T) {
	f := newFixture(t, nil)
	// A fasthttp upstream, because net/http's server manages Connection
	// and Keep-Alive itself and would hide what the gateway forwards.
	var got fasthttp.RequestHeader
	gotCh := make(chan struct{}, 1)
	up := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.Request.Header.CopyTo(&got)
			gotCh <- struct{}{}
			h := &ctx.Response.Header
			h.Set("X-End", "kept")
			h.Set("X-Resp-Hop", "secret")
			h.Set("Connection", "X-Resp-Hop")
			h.Set("Keep-Alive", "timeout=5")
			h.Set("Proxy-Authenticate", "Basic")
			h.Set("Upgrade", "h2c")
			ctx.SetBodyString("ok")
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go up.Serve(ln)
	t.Cleanup(func() { up.Shutdown() })
	b := &backend{port: ln.Addr().(*net.TCPAddr).Port}
	f.register("svc", "a", b, 1, nil)

	// Raw request, so that the client's hop-by-hop fields are exactly these.
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "GET /svc/h HTTP/1.1\r\nHost: gw\r\n"+
		"Connection: keep-alive, X-Hop-One\r\n"+
		"X-Hop-One: 1\r\n"+
		"Keep-Alive: timeout=9\r\n"+
		"TE: trailers\r\n"+
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"+
		"Proxy-Connection: keep-alive\r\n"+
		"Upgrade: websocket\r\n"+
		"X-End-To-End: yes\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	<-gotCh
	for _, h := range []string{"Connection", "X-Hop-One", "Keep-Alive", "Te", "Proxy-Authorization", "Proxy-Connection", "Upgrade", "Transfer-Encoding"} {
		if v := got.Peek(h); len(v) > 0 {
			t.Errorf("upstream received %s: %s", h, v)
		}
	}
	if string(got.Peek("X-End-To-End")) != "yes" {
		t.Errorf("end-to-end header lost upstream")
	}
	for _, h := range []string{"X-Resp-Hop", "Keep-Alive", "Proxy-Authenticate", "Upgrade"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("client received %s: %s", h, v)
		}
	}
	if c := resp.Header.Get("Connection"); c != "" && !strings.EqualFold(c, "keep-alive") {
		t.Errorf("client received Connection: %s", c)
	}
	if resp.Header.Get("X-End") != "kept" {
		t.Errorf("end-to-end response header lost")
	}
}

func TestForwardedHeaders(t *testing.T) {
	f := newFixture(t, nil)
	b := startBackend(t, "a", nil)
	f.register("svc", "a", b, 1, nil)
	f.do("GET", "/svc/x", nil, map[string]string{
		"X-Forwarded-For":   "10.0.0.1, 10.0.0.2",
		"X-Forwarded-Proto": "https",
		"Host":              "gw.example.com:8000",
	})
	h := b.last().Header
	if got := h.Get("X-Forwarded-For"); got != "10.0.0.1, 10.0.0.2, 127.0.0.1" {
		t.Errorf("X-Forwarded-For %q", got)
	}
	if got := h.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto %q", got)
	}
	if got := h.Get("X-Forwarded-Host"); got != "gw.example.com:8000" {
		t.Errorf("X-Forwarded-Host %q", got)
	}
	f.do("GET", "/svc/x", nil, nil)
	if got := b.last().Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For without incoming: %q", got)
	}
}

func TestTracePropagation(t *testing.T) {
	f := newFixture(t, nil)
	b := startBackend(t, "a", nil)
	f.register("svc", "a", b, 1, nil)

	in := trace.New()
	_, hdr, _ := f.do("GET", "/svc/t", nil, map[string]string{"traceparent": in.String()})
	up, ok := trace.Parse([]byte(b.last().Header.Get("traceparent")))
	if !ok {
		t.Fatalf("upstream traceparent %q", b.last().Header.Get("traceparent"))
	}
	if up.TraceID != in.TraceID || up.SpanID == in.SpanID {
		t.Fatalf("upstream span %s for client span %s: want same trace, new span", up, in)
	}
	if got := b.last().Header.Get("x-trace-id"); got != in.TraceIDString() {
		t.Errorf("upstream x-trace-id %q, want %q", got, in.TraceIDString())
	}
	if hdr.Get("x-trace-id") != in.TraceIDString() {
		t.Errorf("response x-trace-id %q", hdr.Get("x-trace-id"))
	}
	if back, ok := trace.Parse([]byte(hdr.Get("traceparent"))); !ok || back.TraceID != in.TraceID {
		t.Errorf("response traceparent %q", hdr.Get("traceparent"))
	}

	// Invalid traceparent: a new trace, still valid upstream and back.
	_, hdr, _ = f.do("GET", "/svc/t", nil, map[string]string{"traceparent": "00-zz-bad"})
	up, ok = trace.Parse([]byte(b.last().Header.Get("traceparent")))
	if !ok || hdr.Get("x-trace-id") != up.TraceIDString() {
		t.Fatalf("new trace: upstream %q, response id %q", b.last().Header.Get("traceparent"), hdr.Get("x-trace-id"))
	}

	// A bare x-trace-id is kept as the trace id.
	id := "0af7651916cd43dd8448eb211c80319c"
	_, hdr, _ = f.do("GET", "/svc/t", nil, map[string]string{"x-trace-id": id})
	if hdr.Get("x-trace-id") != id || b.last().Header.Get("x-trace-id") != id {
		t.Fatalf("x-trace-id not kept: %q / %q", hdr.Get("x-trace-id"), b.last().Header.Get("x-trace-id"))
	}

	f.traces.mu.Lock()
	n := len(f.traces.tps)
	last := ""
	if n > 0 {
		last = f.traces.tps[n-1]
	}
	f.traces.mu.Unlock()
	if n != 3 || !strings.HasPrefix(last, "gateway svc GET /svc/t 200 00-"+id) {
		t.Fatalf("trace sink got %d records, last %q", n, last)
	}
}

func TestStripHopHeadersConnectionTokens(t *testing.T) {
	var h fasthttp.RequestHeader
	raw := "GET / HTTP/1.1\r\nHost: x\r\nConnection: close, X-A , x-b\r\nConnection: X-C\r\n" +
		"X-A: 1\r\nX-B: 1\r\nX-C: 1\r\nX-D: 1\r\nTe: trailers\r\n\r\n"
	if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	stripHopHeaders(&h, nil)
	for _, k := range []string{"X-A", "X-B", "X-C", "Te", "Connection"} {
		if len(h.Peek(k)) != 0 {
			t.Errorf("%s kept", k)
		}
	}
	if len(h.Peek("X-D")) == 0 {
		t.Error("X-D removed")
	}
}

// TestStripHopHeadersFastPath checks the one-pass check in front of the
// deletions: a message with any hop-by-hop field is stripped fully, one
// without keeps every field.
func TestStripHopHeadersFastPath(t *testing.T) {
	tests := []struct {
		raw        string
		gone, kept []string
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n", nil, []string{"X-A", "Host"}},
		{"GET / HTTP/1.1\r\nHost: a\r\nKeep-Alive: 5\r\nX-A: 1\r\n\r\n", []string{"Keep-Alive"}, []string{"X-A"}},
		{"GET / HTTP/1.1\r\nHost: a\r\nte: trailers\r\nproxy-authorization: x\r\n\r\n", []string{"Te", "Proxy-Authorization"}, []string{"Host"}},
		{"GET / HTTP/1.1\r\nHost: a\r\nConnection: X-B\r\nX-B: 1\r\nX-A: 1\r\n\r\n", []string{"Connection", "X-B"}, []string{"X-A"}},
	}
	for _, tc := range tests {
		var h fasthttp.RequestHeader
		if err := h.Read(bufioReader(tc.raw)); err != nil {
			t.Fatal(err)
		}
		stripRequestHopHeaders(&h, nil)
		for _, k := range tc.gone {
			if len(h.Peek(k)) != 0 {
				t.Errorf("%q: %s kept", tc.raw, k)
			}
		}
		for _, k := range tc.kept {
			if len(h.Peek(k)) == 0 {
				t.Errorf("%q: %s removed", tc.raw, k)
			}
		}
	}
	var r fasthttp.ResponseHeader
	r.Read(bufioReader("HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n"))
	stripResponseHopHeaders(&r, nil)
	if len(r.Peek("Keep-Alive")) != 0 || len(r.Peek("X-A")) == 0 {
		t.Errorf("response strip: %s", r.Header())
	}
}

// Trailer announces the fields of a chunked message's trailer section; the
// gateway re-frames both messages itself, so the client's announcement is
// not the forwarded message's (RFC 9110 §6.6.2, §7.6.1). It is stripped
// in both directions, alone or among other hop-by-hop fields.
func TestStripHopHeadersTrailer(t *testing.T) {
	for _, raw := range []string{
		"POST / HTTP/1.1\r\nHost: a\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTrailer: X-Sum\r\nContent-Length: 0\r\nX-A: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\ntrailer: X-Sum, X-Other\r\nContent-Length: 0\r\nKeep-Alive: 5\r\n\r\n",
	} {
		var h fasthttp.RequestHeader
		if err := h.Read(bufioReader(raw)); err != nil {
			t.Fatal(err)
		}
		stripRequestHopHeaders(&h, nil)
		if v := h.Peek("Trailer"); len(v) != 0 {
			t.Errorf("%q: request Trailer kept: %s", raw, v)
		}
		if s := h.String(); strings.Contains(strings.ToLower(s), "trailer") {
			t.Errorf("%q: request still announces a trailer:\n%s", raw, s)
		}
	}
	for _, raw := range []string{
		"HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nContent-Length: 0\r\nX-A: 1\r\n\r\n",
	} {
		var h fasthttp.ResponseHeader
		if err := h.Read(bufioReader(raw)); err != nil {
			t.Fatal(err)
		}
		stripResponseHopHeaders(&h, nil)
		if v := h.Peek("Trailer"); len(v) != 0 {
			t.Errorf("%q: response Trailer kept: %s", raw, v)
		}
		if s := h.String(); strings.Contains(strings.ToLower(s), "trailer") {
			t.Errorf("%q: response still announces a trailer:\n%s", raw, s)
		}
	}
}

// The same through the proxy: a chunked upload that announces a trailer
// reaches the node without the announcement, and the node's announcement
// of its own trailer does not reach the client.
func TestTrailerNotForwarded(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.StreamThreshold = 1 << 10 })
	var got fasthttp.RequestHeader
	gotCh := make(chan struct{}, 1)
	up := &fasthttp.Server{
		StreamRequestBody: true,
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.Request.Header.CopyTo(&got)
			gotCh <- struct{}{}
			if err := ctx.Response.Header.SetTrailer("X-Resp-Sum"); err != nil {
				t.Error(err)
			}
			ctx.Response.Header.Set("X-Resp-Sum", "abc")
			ctx.SetBodyStreamWriter(func(w *bufio.Writer) { w.WriteString(strings.Repeat("r", 4<<10)) })
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go up.Serve(ln)
	t.Cleanup(func() { up.Shutdown() })
	f.register("svc", "a", &backend{port: ln.Addr().(*net.TCPAddr).Port}, 1, nil)

	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	chunk := strings.Repeat("q", 2<<10)
	io.WriteString(conn, "POST /svc/up HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"+
		"800\r\n"+chunk+"\r\n0\r\nX-Sum: 123\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body) != 4<<10 {
		t.Fatalf("got %d, %d bytes", resp.StatusCode, len(body))
	}
	<-gotCh
	if v := got.Peek("Trailer"); len(v) > 0 {
		t.Errorf("node received Trailer: %s", v)
	}
	if v := resp.Header.Values("Trailer"); len(v) > 0 {
		t.Errorf("client received Trailer: %s", v)
	}
	if len(resp.Trailer) > 0 {
		t.Errorf("client received an announced trailer: %v", resp.Trailer)
	}
}
