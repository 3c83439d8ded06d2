package gateway

import (
	"errors"
	"net"

	"github.com/valyala/fasthttp"
)

// Pipelining, an opt-in of each node (registration metadata
// maxine.pipeline: N): the node's GET and HEAD requests without a body
// are sent over N connections per gateway instance, many requests in
// flight on each one (HTTP/1.1 pipelining, RFC 9112 §9.3.2), through
// fasthttp's PipelineClient. Under load the requests queued for one
// connection go out in one write and their responses come back in one
// read, on the gateway's side and on the node's: fewer syscalls per
// request for both, which is what a loopback or LAN proxy spends most of
// its time on.
//
// What a node gives up for it, which is why it is opt-in:
//   - Head-of-line blocking: a slow response delays the ones queued
//     behind it on its connection.
//   - The node must answer pipelined requests in order (every HTTP/1.1
//     server must; some proxies in front of nodes do not).
//   - Responses are read whole, up to the gateway's --max-body-size; a
//     larger one fails the attempt (502). Only small, fast GET/HEAD
//     traffic should be pipelined.
//
// Other requests (other methods, any body, Upgrade) take the node's pool
// as always. So do all requests until the node has answered once, and
// again after a pipelined attempt fails, until the pool gets an answer:
// a node that refuses connections fails fast (502, breaker, retry on
// another node) instead of making queued requests wait for their try
// timeout, which is all a PipelineClient could do.

// pipelinable reports whether the exchange may be pipelined to u.
func (u *upstream) pipelinable(ex *exchange) bool {
	if u.pipeConns.Load() <= 0 || !u.pipeOK.Load() || ex.streamed || len(ex.req.Body()) > 0 {
		return false
	}
	m := ex.req.Header.Method()
	return string(m) == fasthttp.MethodGet || string(m) == fasthttp.MethodHead
}

// pipeline returns u's pipelined client for its current connection
// count, creating it on first use (and again when the count changes;
// the old client's connections then end once idle).
func (u *upstream) pipeline() *fasthttp.PipelineClient {
	n := int(u.pipeConns.Load())
	if pc := u.pipe.Load(); pc != nil && pc.MaxConns == n {
		return pc
	}
	pc := u.p.newPipelineClient(u.hostport, u.isTLS, n)
	u.pipe.Store(pc)
	return pc
}

// maxPipelined bounds the requests queued on one pipelined connection;
// beyond it an attempt fails at once as busy (ErrPipelineOverflow).
const maxPipelined = 1024

func (p *Proxy) newPipelineClient(hostport string, isTLS bool, conns int) *fasthttp.PipelineClient {
	tlsConfig := p.nodeTLSConfig(hostport, isTLS)
	return &fasthttp.PipelineClient{
		Addr:                     hostport,
		MaxConns:                 conns,
		MaxPendingRequests:       maxPipelined,
		MaxIdleConnDuration:      p.o.MaxIdleConnDuration,
		MaxResponseBodySize:      p.o.MaxBodySize,
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true,
		// The TLS handshake is done by dialNode, so that its failure is a
		// *dialError like the pool's.
		Dial: func(addr string) (net.Conn, error) {
			return p.dialNode(addr, tlsConfig, p.o.ConnectTimeout)
		},
		Logger: fasthttpLogger{p.log},
	}
}

// pipelineErr maps a PipelineClient's errors to the pool's: a full queue
// is a busy pool.
func pipelineErr(err error) error {
	if errors.Is(err, fasthttp.ErrPipelineOverflow) {
		return fasthttp.ErrNoFreeConns
	}
	return err
}
