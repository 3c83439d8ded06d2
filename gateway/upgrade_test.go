package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/valyala/fasthttp"
)

// wsEcho is a real WebSocket echo server (gorilla/websocket) behind a
// backend. It keeps its server-side connections so a test can kill them
// without a close frame (the node dying mid-tunnel) or close them politely.
type wsEcho struct {
	*backend
	mu    sync.Mutex
	conns []*websocket.Conn
}

func startWSEcho(t *testing.T, name string) *wsEcho {
	t.Helper()
	e := &wsEcho{}
	up := websocket.Upgrader{ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10}
	e.backend = startBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("refuse") != "" {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, "refused by "+name)
			return
		}
		c, err := up.Upgrade(w, r, http.Header{"X-Node": {name}})
		if err != nil {
			return
		}
		c.SetReadLimit(8 << 20)
		e.mu.Lock()
		e.conns = append(e.conns, c)
		e.mu.Unlock()
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	})
	t.Cleanup(func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, c := range e.conns {
			c.Close()
		}
	})
	return e
}

func (e *wsEcho) conn(t *testing.T) *websocket.Conn {
	t.Helper()
	var c *websocket.Conn
	waitFor(t, "the node's side of the tunnel", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		if len(e.conns) > 0 {
			c = e.conns[len(e.conns)-1]
		}
		return c != nil
	})
	return c
}

// listenerServer serves f's Proxy through Listener on another loopback
// port, as the binary does (the bare-LF wrapper must let tunnels through).
func listenerServer(t *testing.T, f *fixture) string {
	t.Helper()
	srv := NewServer(f.p, ServerOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(Listener(ln))
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.ShutdownWithContext(ctx)
		<-served
		f.p.CloseTunnels(ctx)
	})
	return ln.Addr().String()
}

func wsDial(t *testing.T, url string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10}
	c, resp, err := d.Dial(url, nil)
	if c != nil {
		c.SetReadLimit(8 << 20)
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

// wsSetup is a fixture (with mod applied to its options) serving service
// "ws" with the WebSocket echo node "n1", behind the gateway listener at
// addr.
func wsSetup(t *testing.T, mod func(*Options)) (f *fixture, e *wsEcho, addr string) {
	t.Helper()
	f = newFixture(t, mod)
	e = startWSEcho(t, "n1")
	f.register("ws", "n1", e.backend, 1, nil)
	f.waitNodes("ws", 1)
	return f, e, listenerServer(t, f)
}

// mustDial opens a WebSocket to url or fails the test.
func mustDial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, resp, err := wsDial(t, url)
	if err != nil {
		t.Fatalf("dial %s: %v (response %v)", url, err, resp)
	}
	return c
}

// expectClosed fails unless reading c ends with the connection closed,
// not with the read deadline set within from now; what names the case.
func expectClosed(t *testing.T, c *websocket.Conn, within time.Duration, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	_, _, err := c.ReadMessage()
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: %v, want the connection closed", what, err)
	}
}

func echo(t *testing.T, c *websocket.Conn, mt int, msg []byte) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMessage(mt, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	gotType, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if gotType != mt || !bytes.Equal(got, msg) {
		t.Fatalf("echo: got type %d, %d bytes; want type %d, %d bytes", gotType, len(got), mt, len(msg))
	}
}

func (f *fixture) tunnelGauge(t *testing.T, name string) float64 {
	t.Helper()
	var b bytes.Buffer
	f.set.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var x float64
			for _, c := range v {
				if c >= '0' && c <= '9' {
					x = x*10 + float64(c-'0')
				}
			}
			return x
		}
	}
	return -1
}

// TestWebSocketThroughGateway: text and binary frames and a 1 MB message
// echo through the gateway listener (through Listener, as the binary
// serves it), counted in metrics and traces.
func TestWebSocketThroughGateway(t *testing.T) {
	f, _, addr := wsSetup(t, nil)
	c, resp, err := wsDial(t, "ws://"+addr+"/ws/echo")
	if err != nil {
		t.Fatalf("dial: %v (response %v)", err, resp)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("X-Node") != "n1" {
		t.Fatalf("handshake: %d %v", resp.StatusCode, resp.Header)
	}
	if resp.Header.Get("traceparent") == "" {
		t.Fatal("101 without the gateway's traceparent")
	}
	echo(t, c, websocket.TextMessage, []byte("hello"))
	echo(t, c, websocket.BinaryMessage, []byte{0, 1, 2, '\n', '\r', 0xff})
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	echo(t, c, websocket.BinaryMessage, big)
	echo(t, c, websocket.TextMessage, []byte("a\nb\n\nGET / HTTP/1.1\n\n")) // bare LFs inside a tunnel pass

	if got := f.tunnelGauge(t, "maxine_gateway_tunnels_active"); got != 1 {
		t.Fatalf("tunnels_active = %v, want 1", got)
	}
	if got := f.tunnelGauge(t, "maxine_gateway_tunnels_opened_total"); got != 1 {
		t.Fatalf("tunnels_opened_total = %v, want 1", got)
	}
	f.traces.mu.Lock()
	traced := strings.Join(f.traces.tps, "\n")
	f.traces.mu.Unlock()
	if !strings.Contains(traced, "gateway ws GET /ws/echo 101 ") {
		t.Fatalf("no trace of the handshake in:\n%s", traced)
	}

	// Close from the client: the node echoes the close frame, the tunnel
	// ends.
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(5*time.Second))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("after the client's close: %v", err)
	}
	waitFor(t, "the tunnel to close", func() bool {
		return f.tunnelGauge(t, "maxine_gateway_tunnels_active") == 0 &&
			f.tunnelGauge(t, "maxine_gateway_tunnels_closed_total") == 1
	})
}

// TestWebSocketCloseFromNode: the node closes with a code; the client
// gets it, and the tunnel ends.
func TestWebSocketCloseFromNode(t *testing.T) {
	f, e, addr := wsSetup(t, nil)
	c := mustDial(t, "ws://"+addr+"/ws/echo")
	echo(t, c, websocket.TextMessage, []byte("x"))
	sc := e.conn(t)
	sc.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "node says bye"), time.Now().Add(5*time.Second))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := c.ReadMessage()
	if !websocket.IsCloseError(err, 4001) {
		t.Fatalf("client got %v, want close 4001", err)
	}
	sc.Close()
	waitFor(t, "the tunnel to close", func() bool { return f.tunnelGauge(t, "maxine_gateway_tunnels_active") == 0 })
}

// TestWebSocketNodeDies: the node's connection drops without a close
// frame mid-tunnel; the client's connection is closed, not left hanging.
func TestWebSocketNodeDies(t *testing.T) {
	f, e, addr := wsSetup(t, nil)
	c := mustDial(t, "ws://"+addr+"/ws/echo")
	echo(t, c, websocket.TextMessage, []byte("x"))
	e.conn(t).NetConn().Close()
	expectClosed(t, c, 10*time.Second, "client read after the node died")
	waitFor(t, "the tunnel to close", func() bool { return f.tunnelGauge(t, "maxine_gateway_tunnels_active") == 0 })
}

// TestWebSocketRefused: a node that answers the upgrade with anything but
// 101 has its response relayed as it is; a node that cannot be reached
// gives 502.
func TestWebSocketRefused(t *testing.T) {
	f, _, addr := wsSetup(t, nil)
	_, resp, err := wsDial(t, "ws://"+addr+"/ws/echo?refuse=1")
	if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("refused upgrade: %v %v", err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "refused by n1" {
		t.Fatalf("refusal body %q", body)
	}
	if got := f.tunnelGauge(t, "maxine_gateway_tunnels_opened_total"); got != 0 {
		t.Fatalf("tunnels_opened_total = %v after a refusal", got)
	}
	// The same connection-less path for a dead node.
	dead := startBackend(t, "dead", nil)
	dead.kill()
	f.register("gone", "d1", dead, 1, nil)
	f.waitNodes("gone", 1)
	_, resp, err = wsDial(t, "ws://"+addr+"/gone/echo")
	if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("dead node: %v %v", err, resp)
	}
}

// TestWebSocketIdleTimeout: a tunnel with no traffic either way is closed
// after TunnelIdleTimeout.
func TestWebSocketIdleTimeout(t *testing.T) {
	f, _, addr := wsSetup(t, func(o *Options) { o.TunnelIdleTimeout = 200 * time.Millisecond })
	c := mustDial(t, "ws://"+addr+"/ws/echo")
	// No echo first: on a loaded machine the idle time could pass before
	// it, and nothing here depends on how soon the gateway acts.
	expectClosed(t, c, 20*time.Second, "idle tunnel")
	waitFor(t, "the tunnel to close", func() bool { return f.tunnelGauge(t, "maxine_gateway_tunnels_active") == 0 })
}

// TestCloseTunnels: CloseTunnels (the drain) waits for tunnels until its
// context ends, then closes them; later upgrades are refused 503.
func TestCloseTunnels(t *testing.T) {
	f, _, addr := wsSetup(t, nil)
	c := mustDial(t, "ws://"+addr+"/ws/echo")
	echo(t, c, websocket.TextMessage, []byte("x"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n := f.p.CloseTunnels(ctx); n != 1 {
		t.Fatalf("CloseTunnels closed %d tunnels, want 1", n)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := c.ReadMessage(); err == nil {
		t.Fatal("tunnel still open after CloseTunnels")
	}
	_, resp, err := wsDial(t, "ws://"+addr+"/ws/echo")
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upgrade after CloseTunnels: %v %v", err, resp)
	}
}

// TestWebSocketServeService: the admin API's proxy endpoints tunnel too.
func TestWebSocketServeService(t *testing.T) {
	f := newFixture(t, nil)
	e := startWSEcho(t, "n1")
	f.register("ws", "n1", e.backend, 1, nil)
	f.waitNodes("ws", 1)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		f.p.ServeService(ctx, "ws", []byte("/echo"))
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(Listener(ln))
	t.Cleanup(func() { srv.Shutdown(); f.p.CloseTunnels(context.Background()) })
	c, resp, err := wsDial(t, "ws://"+ln.Addr().String()+"/api/maxine/serviceops/proxy/ws/echo")
	if err != nil {
		t.Fatalf("dial: %v (response %v)", err, resp)
	}
	echo(t, c, websocket.BinaryMessage, bytes.Repeat([]byte{7}, 100_000))
	if got := e.last().URI; got != "/echo" {
		t.Fatalf("node saw %q", got)
	}
}

// TestTunnelCaps: an open tunnel is a request in progress for its
// client's cap (MaxRequestsPerClient), and MaxTunnels bounds the tunnels
// of the gateway; beyond either, upgrades are refused before a node is
// dialled.
func TestTunnelCaps(t *testing.T) {
	t.Run("per client", func(t *testing.T) {
		f, e, addr := wsSetup(t, func(o *Options) { o.MaxRequestsPerClient = 1 })
		c := mustDial(t, "ws://"+addr+"/ws/echo")
		echo(t, c, websocket.TextMessage, []byte("x"))
		if _, resp, err := wsDial(t, "ws://"+addr+"/ws/echo"); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("second tunnel of the same client: %v %v", err, resp)
		}
		hits := e.hits.Load()
		if status, _, _ := f.do("GET", "/ws/plain", nil, nil); status != http.StatusTooManyRequests {
			t.Fatalf("request beside a tunnel at the cap: %d", status)
		}
		if e.hits.Load() != hits {
			t.Fatal("a refused upgrade reached the node")
		}
		c.Close()
		waitFor(t, "the tunnel to end", func() bool { return f.p.Tunnels() == 0 })
		if _, resp, err := wsDial(t, "ws://"+addr+"/ws/echo"); err != nil {
			t.Fatalf("tunnel after the first ended: %v %v", err, resp)
		}
	})
	t.Run("gateway", func(t *testing.T) {
		_, _, addr := wsSetup(t, func(o *Options) { o.MaxTunnels = 1 })
		c := mustDial(t, "ws://"+addr+"/ws/echo")
		echo(t, c, websocket.TextMessage, []byte("x"))
		if _, resp, err := wsDial(t, "ws://"+addr+"/ws/echo"); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("tunnel over MaxTunnels: %v %v", err, resp)
		}
	})
}

// TestUpgradeHandshakeCountsForBreaker: handshakes the node answers 503
// are failures for its breaker, which opens; the next upgrade is then
// answered by the gateway without reaching the node.
func TestUpgradeHandshakeCountsForBreaker(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Breaker.ConsecutiveFailures = 2
		o.Breaker.OpenTimeout = time.Hour
		o.MaxRetries = -1
	})
	b := startBackend(t, "n1", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	f.register("ws", "n1", b, 1, nil)
	f.waitNodes("ws", 1)
	addr := listenerServer(t, f)
	for i := 0; i < 2; i++ {
		if _, resp, err := wsDial(t, "ws://"+addr+"/ws/echo"); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("handshake %d: %v %v", i, err, resp)
		}
	}
	if state, _, _ := f.p.NodeStatus("ws", "n1"); state != "open" {
		t.Fatalf("breaker %q after two failed handshakes, want open", state)
	}
	hits := b.hits.Load()
	if _, resp, err := wsDial(t, "ws://"+addr+"/ws/echo"); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upgrade with the breaker open: %v %v", err, resp)
	}
	if b.hits.Load() != hits {
		t.Fatal("the node was reached with its breaker open")
	}
}

// rawUpgradeNode is a node speaking a made-up upgraded protocol ("echo")
// by hand: it sends interim heads first (100 Continue, 103 Early Hints),
// then 101, then echoes bytes.
func rawUpgradeNode(t *testing.T) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil || req.Header.Get("Upgrade") != "echo" {
					io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
					return
				}
				io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"+
					"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
				io.Copy(c, br)
			}()
		}
	}()
	return &backend{port: ln.Addr().(*net.TCPAddr).Port}
}

// TestUpgradeOtherProtocol: any Upgrade protocol is tunnelled, and
// interim 1xx heads before the node's 101 are skipped.
func TestUpgradeOtherProtocol(t *testing.T) {
	f := newFixture(t, nil)
	f.register("raw", "n1", rawUpgradeNode(t), 1, nil)
	f.waitNodes("raw", 1)
	addr := listenerServer(t, f)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "GET /raw/x HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "echo" {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	io.WriteString(c, "ping\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("echo %q %v", line, err)
	}
}
