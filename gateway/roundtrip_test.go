package gateway

import (
	"bufio"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawNode is a node on loopback that answers by path with hand-written
// responses (chunked with a trailer, Content-Length beyond the stream
// threshold, small) and counts the connections it accepted.
func rawNode(t *testing.T) (port int, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = new(atomic.Int64)
	big := strings.Repeat("b", 100)
	answers := map[string]string{
		"/chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
		"/big":     "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + big,
		"/small":   "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nsmall",
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					_ = c.SetDeadline(time.Now().Add(10 * time.Second))
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					f := strings.Fields(line)
					if len(f) < 2 {
						return
					}
					for {
						h, err := br.ReadString('\n')
						if err != nil {
							return
						}
						if h == "\r\n" {
							break
						}
					}
					a, ok := answers[f[1]]
					if !ok {
						a = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
					}
					// The trailer of a chunked body comes in a write of
					// its own, a moment later: a proxy that pooled the
					// connection right after the last chunk would read it
					// as the head of the next response.
					rest := ""
					if i := strings.Index(a, "X-Trailer"); i >= 0 {
						a, rest = a[:i], a[i:]
					}
					if _, err := c.Write([]byte(a)); err != nil {
						return
					}
					if rest != "" {
						time.Sleep(20 * time.Millisecond)
						if _, err := c.Write([]byte(rest)); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, accepted
}

// TestRoundTripBodiesKeepConnections: a small body (buffered), a body over
// the stream threshold and a chunked body with a trailer (both streamed)
// arrive whole, and each node connection is reused afterwards: a streamed
// body read to its end, trailer included, hands its connection back to the
// pool in a clean state.
func TestRoundTripBodiesKeepConnections(t *testing.T) {
	port, accepted := rawNode(t)
	p, _ := benchProxy(t, port, func(o *Options) {
		o.Metrics = nil
		o.StreamThreshold = 16
	})
	want := map[string]string{
		"/chunked": "hello world",
		"/big":     strings.Repeat("b", 100),
		"/small":   "small",
	}
	for i := range 30 {
		path := []string{"/chunked", "/big", "/small"}[i%3]
		ctx := benchCtx("GET /svc" + path + " HTTP/1.1\r\nHost: gw\r\n\r\n")
		p.ServeHTTP(ctx)
		if got := ctx.Response.StatusCode(); got != 200 {
			t.Fatalf("%s: status %d: %s", path, got, ctx.Response.Body())
		}
		if got := string(ctx.Response.Body()); got != want[path] {
			t.Fatalf("%s: body %q, want %q", path, got, want[path])
		}
		ctx.Response.Reset() // closes a streamed body
	}
	// Three nodes (benchProxy registers three on the port), one pool each.
	if n := accepted.Load(); n > 3 {
		t.Errorf("the node accepted %d connections for 30 sequential requests, want at most 3 (one per pool)", n)
	}
}
