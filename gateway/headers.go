package gateway

import (
	"bytes"
	"net"
	"net/netip"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/maxine-io/maxine/trace"
)

// hopHeaders are the hop-by-hop fields of RFC 9110 §7.6.1: they describe
// one connection, not the message, so a proxy must not forward them.
// Proxy-Connection is not standard but is still sent by old clients and
// stripped by every proxy (as net/http/httputil does). Transfer-Encoding
// matters most: the framing of the outgoing message is the gateway's own,
// and forwarding the client's would let a request smuggle a second one
// past the gateway (RFC 9112 §6.3, §11.2).
var hopHeaders = [...]string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// header is what stripHopHeaders needs of fasthttp's request and response
// headers.
type header interface {
	PeekAll(key string) [][]byte
	Del(key string)
	DelBytes(key []byte)
}

// stripRequestHopHeaders and stripResponseHopHeaders strip the hop-by-hop
// fields of a request or response header. Most messages carry none: one
// pass over the fields (on the concrete type, so the iterator does not
// allocate) avoids nine deletions, each of which normalizes its key and
// scans every field. Fields named in Connection only matter when
// Connection is present, and Connection is itself hop-by-hop.
func stripRequestHopHeaders(h *fasthttp.RequestHeader, scratch []byte) []byte {
	for k := range h.All() {
		if isHopHeader(k) {
			return stripHopHeaders(h, scratch)
		}
	}
	return scratch[:0]
}

func stripResponseHopHeaders(h *fasthttp.ResponseHeader, scratch []byte) []byte {
	for k := range h.All() {
		if isHopHeader(k) {
			return stripHopHeaders(h, scratch)
		}
	}
	return scratch[:0]
}

// isHopHeader reports whether name (any case) is one of hopHeaders.
func isHopHeader(name []byte) bool {
	for _, k := range hopHeaders {
		if len(k) == len(name) && bytes.EqualFold(name, s2b(k)) {
			return true
		}
	}
	return false
}

// stripHopHeaders removes the hop-by-hop fields and every field named in
// Connection (RFC 9110 §7.6.1: "a proxy MUST remove any such fields"). The
// Connection values are copied first because deleting fields reuses the
// header's buffers.
func stripHopHeaders(h header, scratch []byte) []byte {
	scratch = scratch[:0]
	for _, v := range h.PeekAll("Connection") {
		scratch = append(append(scratch, v...), ',')
	}
	for rest := scratch; len(rest) > 0; {
		var tok []byte
		if i := bytes.IndexByte(rest, ','); i >= 0 {
			tok, rest = rest[:i], rest[i+1:]
		} else {
			tok, rest = rest, nil
		}
		if tok = bytes.TrimSpace(tok); len(tok) > 0 && !bytes.EqualFold(tok, strClose) && !bytes.EqualFold(tok, strKeepAlive) {
			h.DelBytes(tok)
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
	return scratch
}

var (
	strClose     = []byte("close")
	strKeepAlive = []byte("keep-alive")
	strHTTP11    = []byte("HTTP/1.1")
	strHTTP      = []byte("http")
	strHTTPS     = []byte("https")
	strComma     = []byte(", ")

	strXForwardedFor   = []byte("X-Forwarded-For")
	strXForwardedProto = []byte("X-Forwarded-Proto")
	strXForwardedHost  = []byte("X-Forwarded-Host")
)

// clientAddr returns the client's IP address without allocating.
func clientAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	ip, _ := netip.AddrFromSlice(ctx.RemoteIP())
	return ip.Unmap()
}

// setForwarded sets the X-Forwarded-* fields of the outgoing request.
//
// X-Forwarded-For keeps what the client sent and appends the client's
// address, as net/http/httputil does: the list is the path the request
// took, and the last entry is the only one this gateway vouches for.
// X-Forwarded-Proto and X-Forwarded-Host describe the request as the
// gateway received it and replace anything the client sent (the host is
// the absolute-form target's authority when there is one, as routing
// used it).
func setForwarded(ctx *fasthttp.RequestCtx, ip netip.Addr, h *fasthttp.RequestHeader, buf []byte) []byte {
	buf = buf[:0]
	for _, v := range ctx.Request.Header.PeekAll("X-Forwarded-For") {
		if len(buf) > 0 {
			buf = append(buf, strComma...)
		}
		buf = append(buf, v...)
	}
	if ip.IsValid() {
		if len(buf) > 0 {
			buf = append(buf, strComma...)
		}
		buf = ip.AppendTo(buf)
	}
	h.SetCanonical(strXForwardedFor, buf)
	if ctx.IsTLS() {
		h.SetCanonical(strXForwardedProto, strHTTPS)
	} else {
		h.SetCanonical(strXForwardedProto, strHTTP)
	}
	if host := requestHost(ctx); len(host) > 0 {
		h.SetCanonical(strXForwardedHost, host)
	} else {
		h.Del("X-Forwarded-Host")
	}
	return buf
}

// startSpan returns the gateway's span for this request: a child of the
// client's traceparent when it parses (W3C Trace Context: same trace, new
// parent-id for the next hop), else a new trace. A new trace keeps a valid
// incoming trace-id header, so a caller that only sends x-trace-id still
// finds its id in the node's logs.
func (p *Proxy) startSpan(ctx *fasthttp.RequestCtx) trace.Context {
	if parent, ok := trace.Parse(ctx.Request.Header.Peek("traceparent")); ok {
		return parent.Child()
	}
	c := trace.New()
	if id, ok := trace.ParseTraceID(ctx.Request.Header.Peek(p.o.TraceHeader)); ok {
		c.TraceID = id
	}
	return c
}

// traceText is a span's traceparent, hex-encoded once per request and
// used for the outgoing request, the response and the trace record; the
// trace id is part of it.
type traceText [trace.TraceparentLen]byte

func newTraceText(span trace.Context) (t traceText) {
	span.AppendTraceparent(t[:0])
	return t
}

// id is the 32-hex trace id.
func (t *traceText) id() []byte { return t[3:35] }

// setRequestTrace writes the span's traceparent and trace id into the
// outgoing request. The keys are in fasthttp's canonical form, so setting
// them skips the normalization of each key on every request.
func (p *Proxy) setRequestTrace(h *fasthttp.RequestHeader, t *traceText) {
	h.SetCanonical(strTraceparent, t[:])
	h.SetCanonical(p.traceKey, t.id())
}

// setResponseTrace writes them into the response to the client, replacing
// any the node sent: the client correlates by the gateway's span.
func (p *Proxy) setResponseTrace(h *fasthttp.ResponseHeader, t *traceText) {
	h.SetCanonical(strTraceparent, t[:])
	h.SetCanonical(p.traceKey, t.id())
}

var strTraceparent = []byte(trace.Header)

// s2b returns the bytes of a constant string without copying; the result
// must not be modified.
func s2b(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
