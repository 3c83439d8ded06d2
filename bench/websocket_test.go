package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// serveWS serves h on a loopback port for the test and returns its address.
func serveWS(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// wsServer upgrades and hands the connection to serve.
func wsServer(t *testing.T, serve func(c *websocket.Conn)) string {
	up := websocket.Upgrader{}
	return serveWS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		serve(c)
	}))
}

// wsLoad is a load of conns connections capped at maxReqs round trips,
// with a window far longer than the cap needs: it stops by the count.
func wsLoad(addr string, conns int, maxReqs uint64) *Load {
	return &Load{Addr: addr, Conns: conns, Duration: time.Minute, MaxRequests: maxReqs}
}

// TestRunWebSocketCountsEchoes: with no warm-up and the count cap reached
// long before the window ends, every round trip is one successful
// "request", recorded once, and the run ends at the cap.
func TestRunWebSocketCountsEchoes(t *testing.T) {
	addr := serveWS(t, wsEchoHandler())
	for _, size := range wsSizes {
		st := wsLoad(addr, 4, 400).RunWebSocket(testContext(t, time.Minute), "/echo", wsMessage(size))
		if st.OK != 400 || st.Errors != 0 || st.Hist.Count() != 400 || !st.healthy() {
			t.Fatalf("%d B: %d ok, %d errors (first: %s), %d recorded, stopped %q; want 400 echoes", size, st.OK, st.Errors, st.FirstErr, st.Hist.Count(), st.Stopped)
		}
		if st.Elapsed <= 0 || st.RPS() <= 0 {
			t.Fatalf("%d B: elapsed %s, %v msg/s", size, st.Elapsed, st.RPS())
		}
	}
}

// TestRunWebSocketFailsBadEchoes: an echo that is not the message, a
// connection the node closes, a node that never answers (within the
// load's timeout) and a refused handshake each fail every connection once,
// and the run ends on its own.
func TestRunWebSocketFailsBadEchoes(t *testing.T) {
	cases := []struct {
		name    string
		addr    string
		timeout time.Duration
		want    string
	}{
		{"truncated echo", wsServer(t, func(c *websocket.Conn) {
			for {
				mt, msg, err := c.ReadMessage()
				if err != nil || c.WriteMessage(mt, msg[:len(msg)-1]) != nil {
					return
				}
			}
		}), 0, "differs"},
		{"text instead of binary", wsServer(t, func(c *websocket.Conn) {
			for {
				_, msg, err := c.ReadMessage()
				if err != nil || c.WriteMessage(websocket.TextMessage, msg) != nil {
					return
				}
			}
		}), 0, "not binary"},
		{"longer echo", wsServer(t, func(c *websocket.Conn) {
			for {
				mt, msg, err := c.ReadMessage()
				if err != nil || c.WriteMessage(mt, append(msg, 'x')) != nil {
					return
				}
			}
		}), 0, "longer"},
		{"node closes", wsServer(t, func(c *websocket.Conn) { _, _, _ = c.ReadMessage() }), 0, ""},
		{"node never answers", wsServer(t, func(c *websocket.Conn) {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}), 200 * time.Millisecond, ""}, // the per-message timeout (or, on a busy machine, the handshake's) ends it
		{"no upgrade", serveWS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(upstreamBody) })), 0, "handshake answered 200"},
	}
	for _, c := range cases {
		l := wsLoad(c.addr, 3, 1000)
		l.Timeout = c.timeout
		st := l.RunWebSocket(testContext(t, time.Minute), "/echo", wsMessage(64))
		if st.OK != 0 || st.Errors != 3 || st.healthy() || !strings.Contains(st.FirstErr, c.want) {
			t.Errorf("%s: %d ok, %d errors (first: %q), want 0 ok, one error per connection (3) mentioning %q", c.name, st.OK, st.Errors, st.FirstErr, c.want)
		}
	}
}

// TestRunWebSocketCancelled: a cancelled run is cut short, not failed.
func TestRunWebSocketCancelled(t *testing.T) {
	addr := serveWS(t, wsEchoHandler())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	st := wsLoad(addr, 2, 100).RunWebSocket(ctx, "/echo", wsMessage(64))
	if st.Stopped == "" || st.Errors != 0 || st.healthy() {
		t.Fatalf("cancelled run: stopped %q, %d errors (first: %s)", st.Stopped, st.Errors, st.FirstErr)
	}
}

// TestWebSocketEchoNode starts the echo node as its own process (this test
// binary, re-executed) with the run's CPU budget: it answers plain HTTP
// like the HTTP upstream, so the gateway's check applies, and echoes.
func TestWebSocketEchoNode(t *testing.T) {
	t.Setenv("GOMAXPROCS", "1")
	ctx := testContext(t, 30*time.Second)
	e, err := StartWebSocketEcho(ctx, t.TempDir(), defaultCPUs)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	if got := environOf(t, e.Pid())["GOMAXPROCS"]; got != "2" {
		t.Fatalf("echo node started with GOMAXPROCS=%q, want the budget 2", got)
	}
	code, body, err := probe("http://" + e.Addr + "/ping")
	if err != nil || code != 200 || string(body) != string(upstreamBody) {
		t.Fatalf("plain GET to the echo node: %d %q %v", code, body, err)
	}
	for _, size := range wsSizes {
		if err := wsCheck(ctx, "ws://"+e.Addr+"/any/path", size); err != nil {
			t.Fatalf("%d B: %v", size, err)
		}
	}
}

// TestWebSocketBar: the gateway row is judged by messages/s against the
// direct row, at SPEC section 9's ≥ 0.5×; the direct row is not judged.
func TestWebSocketBar(t *testing.T) {
	for _, c := range []struct {
		gateway uint64
		verdict string
	}{{4500, verdictFail}, {5000, verdictPass}, {8000, verdictPass}} {
		rows := judgedRows(2)
		judgeWebSocket(rows, []*Stats{measured(10000, time.Millisecond), measured(c.gateway, time.Millisecond)})
		if rows[1].Verdict != c.verdict || rows[1].Bar != "messages/s ≥ 0.50× direct to the node" || rows[0].Verdict != "" {
			t.Errorf("gateway %d vs direct 10000 msg/s: verdict %q (bar %q, figure %q), want %q; direct row verdict %q", c.gateway, rows[1].Verdict, rows[1].Bar, rows[1].Figure, c.verdict, rows[0].Verdict)
		}
	}
	if got := wsScenario(64); !strings.HasPrefix(got, "WebSocket echo 64 B ") {
		t.Errorf("wsScenario(64) = %q", got)
	}
	if got := wsScenario(16 << 10); !strings.HasPrefix(got, "WebSocket echo 16 KiB ") {
		t.Errorf("wsScenario(16 KiB) = %q", got)
	}
}
