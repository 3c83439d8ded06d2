package gateway

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkStripHopHeaders measures the hop-by-hop strip on a typical
// request head without hop-by-hop fields and on one that has them.
func BenchmarkStripHopHeaders(b *testing.B) {
	cases := []struct{ name, raw string }{
		{"clean", "GET /svc/items/42 HTTP/1.1\r\nHost: gw\r\nUser-Agent: bench\r\nAccept: */*\r\nX-Request-Id: 1\r\n\r\n"},
		{"hop", "GET /svc/items/42 HTTP/1.1\r\nHost: gw\r\nConnection: keep-alive, X-Foo\r\nKeep-Alive: timeout=5\r\nX-Foo: 1\r\nTE: trailers\r\n\r\n"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var orig fasthttp.RequestHeader
			if err := orig.Read(bufioReader(c.raw)); err != nil {
				b.Fatal(err)
			}
			var h fasthttp.RequestHeader
			var scratch []byte
			b.ReportAllocs()
			for b.Loop() {
				orig.CopyTo(&h)
				scratch = stripRequestHopHeaders(&h, scratch)
			}
		})
	}
}
