// Package trace parses and generates W3C Trace Context identifiers
// (traceparent, https://www.w3.org/TR/trace-context/) and the x-trace-id
// header Maxine has always returned. It allocates nothing when parsing.
package trace

import (
	"encoding/hex"
	"math/rand/v2"
)

// TraceparentLen is the length of a version-00 traceparent: "00-", 32
// hex, "-", 16 hex, "-", 2 hex.
const TraceparentLen = 55

// Header is the traceparent field's name in canonical form (as fasthttp
// and net/textproto normalize it).
const Header = "Traceparent"

// Context is one span's identity.
type Context struct {
	TraceID [16]byte
	SpanID  [8]byte
	Flags   byte
}

// Parse parses a traceparent header value "00-<32 hex>-<16 hex>-<2 hex>".
// It refuses malformed values, all-zero ids and version ff, as the W3C
// recommendation says a receiver must, so that the caller starts a new trace.
// Future versions (01–fe) are accepted when the first four fields parse.
func Parse(v []byte) (Context, bool) {
	var c Context
	if len(v) < TraceparentLen || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return c, false
	}
	var ver [1]byte
	if !decodeHex(ver[:], v[0:2]) || ver[0] == 0xff || (ver[0] == 0 && len(v) != TraceparentLen) {
		return c, false
	}
	if len(v) > TraceparentLen && v[TraceparentLen] != '-' {
		return c, false
	}
	var fl [1]byte
	if !decodeHex(c.TraceID[:], v[3:35]) || !decodeHex(c.SpanID[:], v[36:52]) || !decodeHex(fl[:], v[53:55]) {
		return c, false
	}
	if c.TraceID == ([16]byte{}) || c.SpanID == ([8]byte{}) {
		return c, false
	}
	c.Flags = fl[0]
	return c, true
}

// ParseTraceID parses a 32-character lower-case hex trace id (as sent in
// x-trace-id); the all-zero id is refused.
func ParseTraceID(v []byte) ([16]byte, bool) {
	var id [16]byte
	if !decodeHex(id[:], v) || id == ([16]byte{}) {
		return id, false
	}
	return id, true
}

// decodeHex decodes lower-case hex only, as the recommendation requires.
func decodeHex(dst []byte, src []byte) bool {
	if len(src) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := nibble(src[2*i])
		lo, ok2 := nibble(src[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func nibble(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// New starts a new sampled trace with random ids.
func New() Context {
	var c Context
	fill(c.TraceID[:])
	fill(c.SpanID[:])
	c.Flags = 1
	return c
}

// Child returns a context in the same trace with a new span id, for a hop
// to the next service.
func (c Context) Child() Context {
	fill(c.SpanID[:])
	return c
}

func fill(b []byte) {
	for {
		for i := 0; i < len(b); i += 8 {
			x := rand.Uint64()
			for j := 0; j < 8 && i+j < len(b); j++ {
				b[i+j] = byte(x >> (8 * j))
			}
		}
		for _, x := range b {
			if x != 0 {
				return
			}
		}
	}
}

// AppendTraceparent appends the header form "00-<trace>-<span>-<flags>".
func (c Context) AppendTraceparent(dst []byte) []byte {
	dst = append(dst, '0', '0', '-')
	dst = hex.AppendEncode(dst, c.TraceID[:])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, c.SpanID[:])
	dst = append(dst, '-')
	fl := [1]byte{c.Flags}
	return hex.AppendEncode(dst, fl[:])
}

// AppendTraceID appends the 32-hex trace id.
func (c Context) AppendTraceID(dst []byte) []byte { return hex.AppendEncode(dst, c.TraceID[:]) }

// TraceIDString returns the 32-hex trace id.
func (c Context) TraceIDString() string { return string(c.AppendTraceID(make([]byte, 0, 32))) }

// String returns the traceparent form.
func (c Context) String() string { return string(c.AppendTraceparent(make([]byte, 0, TraceparentLen))) }
