package gateway

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/valyala/fasthttp"
)

// Loop detection: X-Maxine-Via.
//
// Each forwarded request and Upgrade handshake gets "<protocol>
// <pseudonym>" (for example "1.1 maxine-web-1-3fa2c1d0") appended to its
// X-Maxine-Via field, in the syntax of Via (RFC 9110 §7.6.3). A request
// whose X-Maxine-Via already names this process has come back through it
// (a node registered at another instance's gateway that routes back here,
// or at this gateway under a name the registration check cannot see
// through) and is answered 508 Loop Detected at once, instead of circling,
// each lap holding one more connection, until every pool or timeout is
// used up. A loop through several instances stops when it reaches the
// first one again.
//
// Why not Via itself, which RFC 9110 asks a gateway to send: a node takes
// Via to mean "behind a proxy" and some change what they answer (nginx's
// default gzip_proxied off stops compressing every response to a request
// with Via), so adding it would change what nodes send back; HAProxy and
// nginx do not add Via by default either. The client's own Via passes
// through untouched.

// ViaPseudonym is the name a process writes into X-Maxine-Via:
// "maxine-", its instance id (or, when that is not a short HTTP token, a
// hash of it, so any id gives a valid field) and nonce in hex. The nonce,
// drawn once per process, keeps two separate deployments that happen to
// use the same instance ids (an edge cluster in front of an inner one,
// both with "--instance-id maxine-1") from taking each other's requests for
// loops; a loop always comes back to the same process.
func ViaPseudonym(instanceID string, nonce uint32) string {
	id := instanceID
	if id == "" || !isToken(id) || len(id) > 64 {
		h := fnv.New64a()
		h.Write([]byte(instanceID))
		id = strconv.FormatUint(h.Sum64(), 16)
	}
	return fmt.Sprintf("maxine-%s-%08x", id, nonce)
}

// isToken reports whether s is made of tchar only (RFC 9110 §5.6.2).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0:
		default:
			return false
		}
	}
	return len(s) > 0
}

// viaNames reports whether a Via-syntax field value names pseudonym as one
// of its received-by parts. The value is a comma-separated list of
// "protocol received-by [comment]" (RFC 9110 §7.6.3); a comment may hold
// commas, so parentheses are skipped as they nest. Malformed members are
// passed over, never an error: the field only decides whether this
// instance has seen the request before.
func viaNames(v, pseudonym []byte) bool {
	for len(v) > 0 {
		v = trimOWS(v)
		// received-protocol: up to whitespace or the member's end.
		i := 0
		for i < len(v) && v[i] != ' ' && v[i] != '\t' && v[i] != ',' {
			i++
		}
		v = v[i:]
		if len(v) > 0 && v[0] != ',' {
			v = trimOWS(v)
			j := 0
			for j < len(v) && v[j] != ' ' && v[j] != '\t' && v[j] != ',' && v[j] != '(' {
				j++
			}
			if j > 0 && bytes.Equal(v[:j], pseudonym) {
				return true
			}
			v = v[j:]
		}
		// The rest of the member: a comment, then the comma.
		depth := 0
		for len(v) > 0 {
			c := v[0]
			v = v[1:]
			switch {
			case c == '\\' && depth > 0 && len(v) > 0:
				v = v[1:]
			case c == '(':
				depth++
			case c == ')' && depth > 0:
				depth--
			case c == ',' && depth == 0:
				goto next
			}
		}
	next:
	}
	return false
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// strMaxineVia is the loop-detection field, in fasthttp's canonical form.
var strMaxineVia = []byte("X-Maxine-Via")

// looped reports whether the request has passed through this process
// before: one of its X-Maxine-Via fields names this process's pseudonym.
func (p *Proxy) looped(ctx *fasthttp.RequestCtx) bool {
	if len(p.via) == 0 {
		return false
	}
	for _, v := range ctx.Request.Header.PeekAll("X-Maxine-Via") {
		if viaNames(v, p.via) {
			return true
		}
	}
	return false
}

// setVia writes the outgoing request's X-Maxine-Via: the incoming one,
// joined into one field, then this hop's "<protocol> <pseudonym>". buf is
// scratch space, returned for reuse.
func (p *Proxy) setVia(ctx *fasthttp.RequestCtx, h *fasthttp.RequestHeader, buf []byte) []byte {
	if len(p.via) == 0 {
		return buf
	}
	buf = buf[:0]
	for _, v := range ctx.Request.Header.PeekAll("X-Maxine-Via") {
		if len(buf) > 0 {
			buf = append(buf, strComma...)
		}
		buf = append(buf, v...)
	}
	if len(buf) > 0 {
		buf = append(buf, strComma...)
	}
	if ctx.Request.Header.IsHTTP11() {
		buf = append(buf, "1.1 "...)
	} else {
		buf = append(buf, "1.0 "...)
	}
	buf = append(buf, p.via...)
	h.SetCanonical(strMaxineVia, buf)
	return buf
}
