package gateway

import (
	"bytes"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/maxine-io/maxine/registry"
)

// BenchmarkWebSocketEcho measures WebSocket echo round trips (one message
// out, its echo back, on one connection) direct to a gorilla echo server
// and through the gateway's tunnel: messages/s = 1e9 / (ns/op). The SPEC
// bar is gateway ≥ 0.5× direct.
//
//	go test -run x -bench WebSocketEcho ./gateway/
func BenchmarkWebSocketEcho(b *testing.B) {
	up := websocket.Upgrader{ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10}
	echoSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil || c.WriteMessage(mt, msg) != nil {
				return
			}
		}
	})}
	eln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go echoSrv.Serve(eln)
	defer echoSrv.Close()

	reg := registry.New(registry.Options{})
	port := eln.Addr().(*net.TCPAddr).Port
	if _, err := reg.Register(registry.Registration{ServiceName: "ws", NodeName: "n1", HostName: "127.0.0.1", Port: port, TimeOut: 600, Weight: 1}); err != nil {
		b.Fatal(err)
	}
	p, err := New(Options{Registry: reg})
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer(p, ServerOptions{})
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(Listener(gln))
	defer srv.Shutdown()

	for _, size := range []int{64, 16 << 10} {
		for _, target := range []struct{ name, url string }{
			{"direct", "ws://" + eln.Addr().String() + "/echo"},
			{"gateway", "ws://" + gln.Addr().String() + "/ws/echo"},
		} {
			b.Run(target.name+"/"+strconv.Itoa(size)+"B", func(b *testing.B) {
				d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10}
				c, _, err := d.Dial(target.url, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				msg := bytes.Repeat([]byte{'x'}, size)
				b.SetBytes(int64(size))
				b.ResetTimer()
				for b.Loop() {
					if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
						b.Fatal(err)
					}
					if _, _, err := c.ReadMessage(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
