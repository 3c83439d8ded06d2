package gateway

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// ServerOptions configure the gateway listener's server. Zero values take
// the defaults.
type ServerOptions struct {
	// ReadTimeout bounds reading one request, body included (a streamed
	// body is read while it is forwarded). Default 60s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one response. Default 60s.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long. Default 90s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers; larger requests
	// are refused with 400. Default 8 KiB.
	MaxHeaderBytes int
	// Concurrency bounds the connections served at once; 0 is fasthttp's
	// default (256 Ki).
	Concurrency int
	// MaxConnsPerIP bounds connections per client address; 0 = unlimited.
	MaxConnsPerIP int
	// Logger receives the server's own error lines.
	Logger zerolog.Logger
}

// NewServer returns the hardened server of the gateway listener: it serves
// p.ServeHTTP with request bodies streamed (so a large upload is forwarded
// as it arrives, not buffered), bounded header and body sizes, timeouts,
// no multipart pre-parsing, no default Server or Content-Type header (the
// node's pass through), and malformed requests answered 400 with the
// connection closed. The Date header is the gateway's own, as RFC 9110
// §6.6.1 asks of a recipient with a clock.
func NewServer(p *Proxy, o ServerOptions) *fasthttp.Server {
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 60 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 60 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 90 * time.Second
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 8 << 10
	}
	p.readTimeout.Store(int64(o.ReadTimeout))
	return &fasthttp.Server{
		Handler:                      p.ServeHTTP,
		ErrorHandler:                 p.serveParseError,
		ExpectHandler:                p.expectContinue,
		Concurrency:                  o.Concurrency,
		MaxConnsPerIP:                o.MaxConnsPerIP,
		ReadBufferSize:               o.MaxHeaderBytes,
		ReadTimeout:                  o.ReadTimeout,
		WriteTimeout:                 o.WriteTimeout,
		IdleTimeout:                  o.IdleTimeout,
		MaxRequestBodySize:           p.o.MaxBodySize,
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		SecureErrorLogMessage:        true,
		Logger:                       fasthttpLogger{o.Logger},
	}
}

// fasthttpLogger adapts zerolog to fasthttp.Logger.
type fasthttpLogger struct{ l zerolog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug().Msgf(format, args...)
}

// serveParseError answers requests fasthttp could not parse: a bad request
// line, malformed or oversized headers, conflicting or duplicate framing
// headers (Content-Length twice, an unknown Transfer-Encoding), a body
// over the limit. They never reach a node. Oversized headers get 400, as
// nginx and HAProxy answer, rather than 431.
func (p *Proxy) serveParseError(ctx *fasthttp.RequestCtx, err error) {
	status := fasthttp.StatusBadRequest
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status = fasthttp.StatusRequestEntityTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		status = fasthttp.StatusRequestTimeout
	}
	if p.metrics != nil {
		p.metrics.rejected.Inc()
	}
	p.fail(ctx, status)
	ctx.SetConnectionClose()
}

// expectContinue answers "Expect: 100-continue" (RFC 9110 §10.1.1): a
// body announced over MaxBodySize is refused with 413 at once, before the
// client is invited to send it (the connection is then closed, as the
// client may have started sending anyway); any other gets 100 Continue.
func (p *Proxy) expectContinue(ctx *fasthttp.RequestCtx) int {
	if ctx.Request.Header.ContentLength() > p.o.MaxBodySize {
		if p.metrics != nil {
			p.metrics.rejected.Inc()
		}
		p.fail(ctx, fasthttp.StatusRequestEntityTooLarge)
		return fasthttp.StatusRequestEntityTooLarge
	}
	return fasthttp.StatusContinue
}

// validRequest checks what fasthttp's parser lets through but a proxy must
// not forward, because the node might read the message differently than
// the gateway did (request smuggling, RFC 9112 §11.2):
//
//   - Content-Length together with Transfer-Encoding. fasthttp follows
//     Transfer-Encoding, as RFC 9112 §6.3 allows, but a message with both
//     is the classic smuggling probe, and §6.1 lets a server reject it; a
//     gateway has no legitimate client sending it.
//   - Whitespace between a field name and the colon: RFC 9112 §5.1 says a
//     server MUST reject it with 400, because a lenient node could read
//     "Content-Length :" as the framing header the gateway ignored. The
//     fasthttp version in use refuses it itself; the check stays so that
//     the guarantee does not hang on a parser detail.
//   - A missing (HTTP/1.1) or invalid Host: RFC 9112 §3.2 requires 400.
//   - A request target that is neither origin-form ("/x") nor the
//     absolute form of an http or https URI with a valid authority and no
//     userinfo ("http://svc/x", RFC 9112 §3.2.2, routed by that
//     authority: see requestHost); authority-form and asterisk-form have
//     no meaning for a reverse proxy.
//   - A path with dot-segments (see validPath).
func validRequest(ctx *fasthttp.RequestCtx) bool {
	h := &ctx.Request.Header
	host := h.Host()
	if len(host) == 0 {
		if h.IsHTTP11() {
			return false
		}
	} else if !validHost(host) {
		return false
	}
	if rt := h.RequestURI(); len(rt) > 0 && rt[0] != '/' {
		auth, abs := absoluteAuthority(rt)
		if !abs || len(auth) == 0 || !validHost(auth) {
			return false
		}
	}
	if !checkRawHeaders(h.RawHeaders(), h.ContentLength() == -1) {
		return false
	}
	return validPath(ctx.URI().PathOriginal())
}

// checkRawHeaders scans the header block as received. chunked says the
// parser settled on Transfer-Encoding: chunked, in which case a
// Content-Length field means both were sent.
func checkRawHeaders(raw []byte, chunked bool) bool {
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if len(line) == 0 || line[0] == ' ' || line[0] == '\t' || line[0] == '\r' {
			continue // continuation or end of block
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		name := line[:colon]
		if c := name[len(name)-1]; c == ' ' || c == '\t' {
			return false
		}
		if chunked && len(name) == len("Content-Length") && bytes.EqualFold(name, strContentLength) {
			return false
		}
	}
	return true
}

var strContentLength = []byte("Content-Length")

// validHost checks a Host value: uri-host [":" port] (RFC 9112 §3.2, RFC
// 3986 §3.2.2), where uri-host is a bracketed IP literal or a reg-name of
// unreserved characters, percent-encodings and sub-delims.
func validHost(h []byte) bool {
	rest := h
	if h[0] == '[' {
		end := bytes.IndexByte(h, ']')
		if end < 0 {
			return false
		}
		for _, c := range h[1:end] {
			if !(isHex(c) || c == ':' || c == '.' || c == '%' || c == '_' || c == '-' || isAlnum(c)) {
				return false
			}
		}
		rest = h[end+1:]
	} else {
		end := bytes.IndexByte(h, ':')
		if end < 0 {
			end = len(h)
		}
		for _, c := range h[:end] {
			if !regNameChar(c) {
				return false
			}
		}
		rest = h[end:]
	}
	if len(rest) == 0 {
		return true
	}
	if rest[0] != ':' || len(rest) > 6 {
		return false
	}
	for _, c := range rest[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// regNameChar: unreserved / pct-encoded / sub-delims (RFC 3986 §3.2.2).
func regNameChar(c byte) bool {
	if isAlnum(c) {
		return true
	}
	switch c {
	case '-', '.', '_', '~', '%', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=':
		return true
	}
	return false
}

// visibleASCII reports whether b has only visible ASCII characters and no
// '#': what an origin-form target may hold (RFC 9112 §3.2.1).
func visibleASCII(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// validPath accepts an origin-form path (RFC 9112 §3.2.1) without
// dot-segments, plain or percent-encoded. The gateway forwards the path as
// received, appended to the node's base path; a "/../" would let a client
// climb out of that base path on the node, and a path the gateway routed
// one way could be resolved another way by the node. Paths without them
// mean the same to both.
func validPath(path []byte) bool {
	if len(path) == 0 || path[0] != '/' {
		return false
	}
	return validSegments(path[1:])
}

// validSegments checks the segments of a path given without its leading
// slash.
func validSegments(seg []byte) bool {
	for {
		i := bytes.IndexByte(seg, '/')
		s := seg
		if i >= 0 {
			s = seg[:i]
		}
		if dotSegment(s) {
			return false
		}
		if i < 0 {
			return true
		}
		seg = seg[i+1:]
	}
}

// dotSegment reports whether s is "." or ".." with any dot written as %2e.
func dotSegment(s []byte) bool {
	dots := 0
	for len(s) > 0 {
		switch {
		case s[0] == '.':
			s = s[1:]
		case len(s) >= 3 && s[0] == '%' && s[1] == '2' && (s[2] == 'e' || s[2] == 'E'):
			s = s[3:]
		default:
			return false
		}
		dots++
	}
	return dots == 1 || dots == 2
}

// Listener wraps a listener so that a request head with a bare LF or a
// bare CR (a line not ended by CRLF, RFC 9112 §2.2) is refused with 400
// at once, wherever the LF is. fasthttp's parser accepts a bare LF ending
// the request line or a field, but waits for a CRLFCRLF to end the head:
// a head ending in "\n\n" was left waiting until the read timeout. One
// rule everywhere — refuse — is also what a front proxy can rely on.
//
// The connection scans what is read while a head is expected: from the
// start of the connection, and again after each response (a write that
// is not a 1xx interim response: once a response is written the request
// has been read, and after 100 Continue comes the body, after 101 another
// protocol). A head ends at its CRLFCRLF; the body that follows is not
// scanned. Requests pipelined behind a body in the same read are not
// scanned; fasthttp's own parsing applies to them. Serve the gateway (and
// the admin API) with NewServer(...).Serve(Listener(ln)).
func Listener(ln net.Listener) net.Listener { return headListener{ln} }

type headListener struct{ net.Listener }

func (l headListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	hc := &headConn{Conn: c}
	hc.inHead.Store(true)
	if tc, ok := c.(*tls.Conn); ok {
		return &tlsHeadConn{headConn: hc, tc: tc}, nil
	}
	return hc, nil
}

// errBareLF is the read error of a connection whose request head has a
// bare LF or CR; the server answers it 400 (serveParseError).
var errBareLF = errors.New("gateway: bare LF or CR in a request head")

// headConn is a connection of Listener. Reads and writes may come from
// different goroutines (a streamed body is read by the upstream client's
// goroutine), never two reads at once.
type headConn struct {
	net.Conn
	inHead atomic.Bool
	tunnel atomic.Bool // a 101 was written: the connection is a tunnel now
	// cr is the progress through "\r\n\r\n": 0 none, 1 after CR, 2 after
	// CRLF, 3 after CRLF CR. Only the reading goroutine uses it.
	cr uint8
}

func (c *headConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.inHead.Load() && !c.tunnel.Load() {
		// Only the bytes before the offending one are passed on, with the
		// error: fasthttp must not parse a head that includes it.
		if bad := c.scan(p[:n]); bad >= 0 {
			return bad, errBareLF
		}
	}
	return n, err
}

// scan follows the head through b and returns the index of a bare LF or
// CR, or -1. Between line ends it skips to the next CR with IndexByte
// (vectorized) instead of looking at every byte: a request line of a
// hundred bytes costs two short searches, not a hundred state changes.
func (c *headConn) scan(b []byte) int {
	for i := 0; i < len(b); {
		if c.cr == 0 || c.cr == 2 && b[i] != '\r' && b[i] != '\n' {
			// Within a line: the next CR ends it; an LF before it is bare.
			rest := b[i:]
			r := bytes.IndexByte(rest, '\r')
			line := rest
			if r >= 0 {
				line = rest[:r]
			}
			c.cr = 0
			if l := bytes.IndexByte(line, '\n'); l >= 0 {
				return i + l
			}
			if r < 0 {
				return -1
			}
			i += r
		}
		if bad := c.scanByte(b[i]); bad {
			return i
		}
		if !c.inHead.Load() {
			return -1
		}
		i++
	}
	return -1
}

// scanByte moves the head's line-end state by one byte; true for a bare
// LF or CR.
func (c *headConn) scanByte(ch byte) bool {
	switch ch {
	case '\n':
		switch c.cr {
		case 1:
			c.cr = 2
		case 3:
			c.cr = 0
			c.inHead.Store(false) // end of the head
		default:
			return true
		}
	case '\r':
		if c.cr == 1 || c.cr == 3 {
			return true
		}
		c.cr++
	default:
		if c.cr == 1 || c.cr == 3 {
			return true
		}
		c.cr = 0
	}
	return false
}

func (c *headConn) Write(p []byte) (int, error) {
	if c.tunnel.Load() {
		return c.Conn.Write(p)
	}
	if bytes.HasPrefix(p, strSwitching) {
		// 101: what follows both ways is another protocol (upgrade.go
		// writes the head in one write). Nothing is scanned any more.
		c.tunnel.Store(true)
		return c.Conn.Write(p)
	}
	if !c.inHead.Load() && !bytes.HasPrefix(p, strInterim) {
		c.cr = 0
		c.inHead.Store(true)
	}
	return c.Conn.Write(p)
}

var (
	strInterim   = []byte("HTTP/1.1 1")
	strSwitching = []byte("HTTP/1.1 101 ")
)
