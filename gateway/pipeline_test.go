package gateway

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// connCountingNode is a real HTTP/1.1 node on loopback (net/http, which
// answers pipelined requests in order) that counts the connections it
// accepted and echoes each request's method, path and body.
type connCountingNode struct {
	addr  string
	port  int
	conns atomic.Int64
	srv   *http.Server
}

func startConnCountingNode(t *testing.T) *connCountingNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &connCountingNode{addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port}
	n.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), body)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				n.conns.Add(1)
			}
		},
	}
	go n.srv.Serve(ln)
	t.Cleanup(func() { n.srv.Close() })
	return n
}

// TestPipelineMultiplexes: a node registered with maxine.pipeline: 2 gets
// 32 clients' concurrent GETs over at most 3 connections (the first
// request goes through the pool, which fails fast on a dead node; the
// rest share the 2 pipelined connections), and every client gets the
// answer to its own request. Without pipelining each concurrent request
// needs a connection of its own. A POST still goes through the pool,
// body intact.
func TestPipelineMultiplexes(t *testing.T) {
	f := newFixture(t, nil)
	node := startConnCountingNode(t)
	f.register("pipe", "n1", &backend{port: node.port}, 1, withMeta(map[string]string{"maxine.pipeline": "2"}))
	f.waitNodes("pipe", 1)

	if status, _, body := f.do("GET", "/pipe/first", nil, nil); status != 200 || string(body) != "GET /first " {
		t.Fatalf("first request: %d %q", status, body)
	}
	const clients, each = 32, 20
	var wg sync.WaitGroup
	errs := make(chan string, clients*each)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				path := fmt.Sprintf("/c%d/r%d?q=%d", c, i, i)
				status, _, body := f.do("GET", "/pipe"+path, nil, nil)
				if want := "GET " + path + " "; status != 200 || string(body) != want {
					errs <- fmt.Sprintf("%s: %d %q, want %q", path, status, body, want)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := node.conns.Load(); n > 3 {
		t.Errorf("the node accepted %d connections for %d concurrent clients, want at most 3 (1 pooled + 2 pipelined)", n, clients)
	}

	// Not pipelinable: a body.
	if status, _, body := f.do("POST", "/pipe/post", strings.NewReader("payload"), nil); status != 200 || string(body) != "POST /post payload" {
		t.Fatalf("POST: %d %q", status, body)
	}
}

// TestPipelineDeadNodeFailsFast: a pipelined node that refuses
// connections is answered 502 (the connect error, through the pool), not
// left to the try timeout; after it answered once and then died, the
// requests queued on its pipelined connection fail, the node goes back to
// the pool, and the next request is a 502 again.
func TestPipelineDeadNodeFailsFast(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxRetries = 0 })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now
	f.register("dead", "n1", &backend{port: port}, 1, withMeta(map[string]string{"maxine.pipeline": "1"}))
	f.waitNodes("dead", 1)
	if status, _, body := f.do("GET", "/dead/x", nil, nil); status != http.StatusBadGateway {
		t.Fatalf("dead pipelined node: %d %s, want 502", status, body)
	}

	node := startConnCountingNode(t)
	f.register("dies", "n1", &backend{port: node.port}, 1, withMeta(map[string]string{"maxine.pipeline": "1"}))
	f.waitNodes("dies", 1)
	for i := range 3 { // the pool, then the pipeline
		if status, _, body := f.do("GET", fmt.Sprintf("/dies/%d", i), nil, nil); status != 200 {
			t.Fatalf("request %d: %d %s", i, status, body)
		}
	}
	node.srv.Close()
	statuses := []int{}
	for i := range 3 {
		status, _, _ := f.do("GET", fmt.Sprintf("/dies/after/%d", i), nil, nil)
		statuses = append(statuses, status)
	}
	if statuses[len(statuses)-1] != http.StatusBadGateway {
		t.Fatalf("statuses after the node died: %v, want the last to be 502 (through the pool)", statuses)
	}
}

// TestPipelinedAllocs: a pipelined request allocates no more than a
// pooled one (clientStreamAllocs), once the pipelined connection is up.
func TestPipelinedAllocs(t *testing.T) {
	if raceEnabled() {
		t.Skip("allocation counts are meaningless under -race")
	}
	port := benchUpstream(t)
	p, _ := benchProxyMeta(t, port, map[string]string{"maxine.pipeline": "1"}, func(o *Options) { o.Metrics = nil })
	ctx := benchCtx("GET /svc/items/42 HTTP/1.1\r\nHost: gw\r\n\r\n")
	serve := func() {
		ctx.Response.Reset()
		p.ServeHTTP(ctx)
		if ctx.Response.StatusCode() != 200 {
			t.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	for range 10 { // the pool answers first, then the pipeline takes over
		serve()
	}
	for _, u := range p.routes.Load().exact["svc"].table.Load().nodeList() {
		if u.pipe.Load() == nil {
			t.Fatalf("node %s was never pipelined", u.name)
		}
	}
	if n := leastAllocs(200, serve); n > clientStreamAllocs {
		t.Errorf("%.0f allocs per pipelined request, want at most %d", n, clientStreamAllocs)
	}
}
