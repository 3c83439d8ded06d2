package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// WebSocket echo (SPEC section 9: "WebSocket echo messages/s, gateway vs
// direct"). The node is a gorilla/websocket echo server; the bench's
// clients hold -conns WebSocket connections to it, each sending a message
// and waiting for its echo in a closed loop, once straight to the node and
// once through a maxine gateway that has the node registered as service
// "bench" (ws://<gateway>/bench/echo, the prefix stripped as for HTTP).
//
// The echo server runs as a process of its own, this executable started
// again (like the calibration proxy), not as goroutines of the bench: a
// node is a process of its own in production, and in-process the echo
// server's goroutines would share the load generator's scheduler, so a
// direct round trip could be handed from client goroutine to server
// goroutine inside one runtime while the gateway's round trip crosses two
// more process boundaries. As a process it also gets the same CPU budget
// (GOMAXPROCS) as every other target, and its garbage collector does not
// pause the generator.

// wsEchoEnv, set to "<listen addr>" in the environment of this program (or
// of its test binary), makes the process serve as the WebSocket echo node
// instead of doing anything else.
const wsEchoEnv = "MAXINE_BENCH_WS_ECHO"

// wsBufSize is the read and write buffer of both ends, as in
// gateway/upgrade_bench_test.go: a 16 KiB message is one frame.
const wsBufSize = 32 << 10

// wsSizes are the message sizes measured, one scenario each.
var wsSizes = []int{64, 16 << 10}

// wsScenario names the rows of one message size.
func wsScenario(size int) string {
	s := strconv.Itoa(size) + " B"
	if size >= 1<<10 && size%(1<<10) == 0 {
		s = strconv.Itoa(size>>10) + " KiB"
	}
	return "WebSocket echo " + s + " (messages/s, closed loop)"
}

// wsEchoHandler upgrades WebSocket requests and echoes every message back
// with its type, streaming; any other request gets 200 and upstreamBody,
// so the gateway's HTTP check and the start-up probe work as for the HTTP
// upstream.
func wsEchoHandler() http.Handler {
	up := websocket.Upgrader{ReadBufferSize: wsBufSize, WriteBufferSize: wsBufSize}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write(upstreamBody)
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, rd, err := c.NextReader()
			if err != nil {
				return
			}
			wr, err := c.NextWriter(mt)
			if err != nil {
				return
			}
			if _, err := io.Copy(wr, rd); err != nil {
				return
			}
			if err := wr.Close(); err != nil {
				return
			}
		}
	})
}

// serveWebSocketEcho serves the echo node on listen (a loopback address)
// until the process is killed.
func serveWebSocketEcho(listen string) error {
	if !strings.HasPrefix(listen, "127.0.0.1:") {
		return fmt.Errorf("bad %s=%q: want \"127.0.0.1:<port>\"", wsEchoEnv, listen)
	}
	ln, err := net.Listen("tcp4", listen)
	if err != nil {
		return fmt.Errorf("websocket echo: %w", err)
	}
	srv := &http.Server{Handler: wsEchoHandler(), ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(ln)
}

// runWebSocketEchoIfAsked serves the echo node and exits when wsEchoEnv is
// set; otherwise it returns at once.
func runWebSocketEchoIfAsked() { runHelperIfAsked(wsEchoEnv, serveWebSocketEcho) }

// StartWebSocketEcho starts this executable again as the echo node, with
// GOMAXPROCS cpus, and waits until it answers HTTP.
func StartWebSocketEcho(ctx context.Context, runDir string, cpus int) (*Helper, error) {
	return startHelper(ctx, runDir, "websocket echo node", wsEchoEnv, "", cpus, 200)
}

// wsMessage returns a message of size bytes in a pattern that a corrupted,
// truncated or shifted echo does not match.
func wsMessage(size int) []byte {
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[i%36]
	}
	return msg
}

// wsDialer returns the client's dialer: handshake and connect bounded by
// timeout, buffers as the echo node's.
func wsDialer(timeout time.Duration) *websocket.Dialer {
	return &websocket.Dialer{
		NetDialContext:   (&net.Dialer{Timeout: timeout}).DialContext,
		HandshakeTimeout: timeout,
		ReadBufferSize:   wsBufSize,
		WriteBufferSize:  wsBufSize,
	}
}

// wsRoundTrip sends msg as one binary message and reads its echo into buf
// (len(msg)+1 bytes, so a longer echo shows), all before deadline. Any
// echo other than msg itself is an error.
func wsRoundTrip(c *websocket.Conn, msg, buf []byte, deadline time.Time) error {
	if err := c.SetWriteDeadline(deadline); err != nil {
		return err
	}
	if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
		return err
	}
	if err := c.SetReadDeadline(deadline); err != nil {
		return err
	}
	mt, r, err := c.NextReader()
	if err != nil {
		return err
	}
	// The echo of a len(msg)-byte message fills all but the last byte of
	// buf: io.ReadFull then reports io.ErrUnexpectedEOF after n = len(msg).
	n, err := io.ReadFull(r, buf)
	switch {
	case err == nil:
		return fmt.Errorf("echo longer than the %d-byte message", len(msg))
	case !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF):
		return err
	case mt != websocket.BinaryMessage:
		return fmt.Errorf("echo is a message of type %d, not binary", mt)
	case n != len(msg) || !bytes.Equal(buf[:n], msg):
		return fmt.Errorf("echo of %d bytes differs from the %d-byte message", n, len(msg))
	}
	return nil
}

// wsCheck dials url and echoes one message, to tell a target that does
// not tunnel WebSocket from one that is slow.
func wsCheck(ctx context.Context, url string, size int) error {
	const timeout = 5 * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, resp, err := wsDialer(timeout).DialContext(ctx, url, nil)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("websocket handshake with %s answered %d, not 101 (%v)", url, resp.StatusCode, err)
		}
		return fmt.Errorf("websocket handshake with %s failed: %v", url, err)
	}
	defer c.Close()
	msg := wsMessage(size)
	if err := wsRoundTrip(c, msg, make([]byte, len(msg)+1), time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("websocket echo through %s: %v", url, err)
	}
	return nil
}

// RunWebSocket drives a closed loop of WebSocket echoes: Conns
// connections to ws://Addr+path, dialled before the clock starts, each
// sending msg and waiting for its echo, then the next. A round trip is one
// "request": MaxRequests caps them (warm-up included), the window and the
// per-message timeout bound them in time, latencies are round-trip times.
// A failed round trip leaves its connection unusable, so its worker
// stops; failures count whenever they happen, warm-up included, so a
// connection lost early cannot quietly lower the concurrency. A handshake
// that fails is a failure too.
func (l *Load) RunWebSocket(ctx context.Context, path string, msg []byte) Stats {
	if !strings.HasPrefix(l.Addr, "127.0.0.1:") {
		panic("bench: load target " + l.Addr + " is not on 127.0.0.1")
	}
	url := "ws://" + l.Addr + path
	timeout := l.timeout()
	d := wsDialer(timeout)
	results := make([]workerResult, l.Conns)
	conns := make([]*websocket.Conn, l.Conns)
	var wg sync.WaitGroup
	for w := range l.Conns {
		results[w].failAt = timeout
		wg.Go(func() {
			c, resp, err := d.DialContext(ctx, url, nil)
			if err != nil {
				if ctx.Err() != nil {
					return // cancelled: the run is cut short, not failed
				}
				if resp != nil {
					err = fmt.Errorf("handshake answered %d: %w", resp.StatusCode, err)
				}
				results[w].record(err, 0)
				return
			}
			conns[w] = c
		})
	}
	wg.Wait()
	closeAll := func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}
	defer closeAll()
	// Cancellation unblocks every worker at once: Close may be called
	// concurrently with reads and writes.
	stopClosing := context.AfterFunc(ctx, closeAll)
	defer stopClosing()

	start := time.Now()
	windowStart := start.Add(l.Warmup)
	windowEnd := windowStart.Add(l.Duration)
	var sent atomic.Uint64
	for w, c := range conns {
		if c == nil {
			continue
		}
		r := &results[w]
		wg.Go(func() {
			buf := make([]byte, len(msg)+1)
			for ctx.Err() == nil {
				if l.MaxRequests > 0 && sent.Add(1) > l.MaxRequests {
					return
				}
				t0 := time.Now()
				if !t0.Before(windowEnd) {
					return
				}
				err := wsRoundTrip(c, msg, buf, t0.Add(timeout))
				t1 := time.Now()
				if err != nil {
					if ctx.Err() == nil { // not the cancellation closing it
						r.lastDone = t1
						r.record(err, t1.Sub(t0))
					}
					return
				}
				if t0.Before(windowStart) || t1.After(windowEnd) {
					continue // warm-up, or finished after the window closed
				}
				r.lastDone = t1
				r.record(nil, t1.Sub(t0))
			}
		})
	}
	wg.Wait()
	return closeWindow(ctx, results, windowStart, windowEnd)
}

// WebSocket measures WebSocket echo round trips per second for each
// message size, direct to the echo node and through a maxine gateway, in
// interleaved rounds, and judges the gateway by its ratio to direct.
func (b *Bench) WebSocket(ctx context.Context) {
	direct := &target{name: fmt.Sprintf("direct to the node (gorilla echo, GOMAXPROCS %d)", b.cfg.cpus())}
	gw := &target{name: "maxine gateway"}
	ts := []*target{direct, gw}
	defer stopAll(ts)

	if e, err := StartWebSocketEcho(ctx, b.runDir, b.cfg.cpus()); err != nil {
		direct.why, gw.why = err.Error(), err.Error()
	} else {
		defer e.Stop()
		direct.addr, direct.path = e.Addr, "/echo"
		if err := wsCheck(ctx, "ws://"+direct.addr+direct.path, wsSizes[0]); err != nil {
			direct.why, direct.addr = err.Error(), ""
		}
		// The echo node answers plain HTTP like the HTTP upstream, so the
		// gateway's own check applies; then one echo through the tunnel.
		gw = b.gatewayTarget(ctx, gw.name, "websocket", &Upstream{Addr: e.Addr}, nil)
		ts[1] = gw
		if gw.addr != "" {
			gw.path = "/" + benchService + "/echo"
			if err := wsCheck(ctx, "ws://"+gw.addr+gw.path, wsSizes[0]); err != nil {
				gw.why, gw.addr = err.Error(), ""
			}
		}
	}

	if gw.addr != "" || direct.addr != "" {
		b.note("WebSocket echo: %d connections, each one message out and its echo back in a closed loop; client gorilla/websocket in this process, the node a gorilla echo server in a process of its own (GOMAXPROCS %d)", b.cfg.Conns, b.cfg.cpus())
	}
	for _, size := range wsSizes {
		msg := wsMessage(size)
		runs, why := b.measureRounds(ctx, ts, func(t *target, l *Load) Stats { return l.RunWebSocket(ctx, t.path, msg) })
		stats, rows := b.rowsFor(wsScenario(size), ts, runs, why, (*Stats).RPS, func(s *Stats) string { return fmtRPS(s.RPS()) + " msg/s" })
		judgeWebSocket(rows, stats)
	}
}

// judgeWebSocket judges the gateway row against the direct one, in target
// order: direct to the node, through the gateway.
func judgeWebSocket(rows []*Row, stats []*Stats) {
	judgeVersus(rows[1], stats[1], stats[0], barWebSocket)
}
