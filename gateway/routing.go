package gateway

import (
	"bytes"
	"os"
	"strings"

	"github.com/valyala/fasthttp"
)

// ServiceHeader names the service explicitly; it is the first routing rule.
const ServiceHeader = "X-Maxine-Service"

// routeMap is the set of routable services, replaced as a whole (copy on
// write) when a service appears or disappears and read by requests without
// a lock. Lookups index it with m[string(b)], which the compiler performs
// without converting (allocating) the []byte.
type routeMap struct {
	exact map[string]*service
	// folded maps lower-cased names to services whose name has upper-case
	// letters, for Host routing: host names are case-insensitive (RFC 3986
	// §3.2.2) while service names are not. Names that fold together are
	// left out: such a Host is ambiguous.
	folded map[string]*service
}

func (p *Proxy) publishRoutesLocked() {
	rm := &routeMap{
		exact:  make(map[string]*service, len(p.services)),
		folded: make(map[string]*service),
	}
	ambiguous := make(map[string]bool)
	for name, svc := range p.services {
		rm.exact[name] = svc
	}
	for name, svc := range p.services {
		lower := strings.ToLower(name)
		if lower == name {
			continue
		}
		if _, clash := rm.exact[lower]; clash || ambiguous[lower] {
			continue
		}
		if _, dup := rm.folded[lower]; dup {
			delete(rm.folded, lower)
			ambiguous[lower] = true
			continue
		}
		rm.folded[lower] = svc
	}
	p.routes.Store(rm)
}

// route finds the service of a request (SPEC 4), first match wins:
//
//  1. the X-Maxine-Service header; when present it decides alone, an
//     unknown name is not found rather than routed some other way;
//  2. the request's host (requestHost: the authority of an absolute-form
//     target, else the Host header) without its port, equal to a service
//     name or to "<service>.<HostSuffix>" — unless it is a name the
//     gateway itself may be addressed by (see hostRoutable);
//  3. the first path segment, "/<service>/rest", which is stripped.
//
// Host routing comes before the path, so a Host that names a service
// decides even when the path names another. That is why rule 2 refuses
// hosts that could be the gateway's own address: a client that reaches
// the gateway at "127.0.0.1:8000" or "localhost:8000" and routes by path
// would otherwise be captured by whoever registered a service called
// "127.0.0.1" or "localhost".
//
// It returns the service and the path to forward, or nil. It neither
// locks nor allocates.
func (p *Proxy) route(ctx *fasthttp.RequestCtx, path []byte) (*service, []byte) {
	rm := p.routes.Load()
	if name := ctx.Request.Header.Peek(ServiceHeader); len(name) > 0 {
		if svc := rm.exact[string(name)]; svc != nil {
			return svc, path
		}
		return p.lookupSlowBytes(name), path
	}
	if svc := p.routeHost(rm, requestHost(ctx)); svc != nil {
		return svc, path
	}
	if len(path) > 1 && path[0] == '/' {
		seg, rest := path[1:], path[len(path):]
		if i := bytes.IndexByte(seg, '/'); i >= 0 {
			seg, rest = seg[:i], seg[i:]
		}
		svc := rm.exact[string(seg)]
		if svc == nil {
			svc = p.lookupSlowBytes(seg)
		}
		if svc != nil {
			if len(rest) == 0 {
				rest = strSlash
			}
			return svc, rest
		}
	}
	return nil, nil
}

var strSlash = []byte("/")

// routeHost matches the Host header (RFC 9110 §7.2) against the services.
func (p *Proxy) routeHost(rm *routeMap, host []byte) *service {
	if len(host) == 0 || host[0] == '[' {
		return nil // IP-literal: never a service name
	}
	if i := bytes.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	host = bytes.TrimSuffix(host, strDot) // absolute form "svc."
	if !p.hostRoutable(host) {
		return nil
	}
	if svc := lookupHost(rm, host); svc != nil {
		return svc
	}
	if sfx := p.hostSuffix; len(sfx) > 0 && len(host) > len(sfx)+1 {
		cut := len(host) - len(sfx)
		if host[cut-1] == '.' && bytes.EqualFold(host[cut:], sfx) {
			return lookupHost(rm, host[:cut-1])
		}
	}
	return nil
}

var strDot = []byte(".")

// lookupHost looks a host name up exactly, then case-folded.
func lookupHost(rm *routeMap, name []byte) *service {
	if svc := rm.exact[string(name)]; svc != nil {
		return svc
	}
	if len(name) > 255 {
		return nil
	}
	var buf [255]byte
	lower := buf[:len(name)]
	changed := false
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
			changed = true
		}
		lower[i] = c
	}
	if changed {
		if svc := rm.exact[string(lower)]; svc != nil {
			return svc
		}
	}
	return rm.folded[string(lower)]
}

// lookupSlowBytes is lookupSlow for a name taken from the request. It
// allocates, but only on a route miss.
func (p *Proxy) lookupSlowBytes(name []byte) *service {
	if len(name) == 0 || len(name) > 256 {
		return nil
	}
	return p.lookupSlow(string(name))
}

// hostRoutable reports whether a request host (without port and trailing
// dot) may select a service by name. It may not when it is, or may be, an
// address of the gateway itself:
//
//   - an IP literal: bracketed IPv6, or a name whose last label is a
//     number ("127.0.0.1", "2130706433", "0x7f000001", "127.1"), which
//     resolvers and the WHATWG URL parser read as an IPv4 address — and
//     no top-level domain is numeric;
//   - "localhost" and "*.localhost" (RFC 6761 §6.3);
//   - the machine's host name (full and first label) and Options.OwnHosts.
//
// Such names still route by path ("/127.0.0.1/x"). It does not allocate.
func (p *Proxy) hostRoutable(host []byte) bool {
	if len(host) == 0 || len(host) > 255 || host[0] == '[' || bytes.IndexByte(host, ':') >= 0 {
		return false
	}
	last := host
	if i := bytes.LastIndexByte(host, '.'); i >= 0 {
		last = host[i+1:]
	}
	if numericLabel(last) {
		return false
	}
	var buf [255]byte
	lower := buf[:len(host)]
	for i, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	if string(lower) == "localhost" || bytes.HasSuffix(lower, strDotLocalhost) {
		return false
	}
	_, own := p.ownHosts[string(lower)]
	return !own
}

var strDotLocalhost = []byte(".localhost")

// numericLabel reports whether a label is a decimal, octal or hexadecimal
// number ("ends in a number" of the WHATWG URL host parser).
func numericLabel(l []byte) bool {
	if len(l) == 0 {
		return false
	}
	if len(l) >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X') {
		for _, c := range l[2:] {
			if !isHex(c) {
				return false
			}
		}
		return true
	}
	for _, c := range l {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ownHostSet returns the lower-cased names that never route by Host
// besides IP literals and localhost: the machine's host name, its first
// label, and extra.
func ownHostSet(extra []string) map[string]struct{} {
	set := make(map[string]struct{})
	add := func(h string) {
		h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
		if h != "" {
			set[h] = struct{}{}
		}
	}
	if h, err := os.Hostname(); err == nil {
		add(h)
		if i := strings.IndexByte(h, '.'); i > 0 {
			add(h[:i])
		}
	}
	for _, h := range extra {
		add(h)
	}
	return set
}

// requestHost is the host a request is addressed to: the authority of an
// absolute-form target ("GET http://svc/x", RFC 9112 §3.2.2: a server
// MUST then ignore the Host header), else the Host header. validRequest
// has refused targets that are neither origin-form nor absolute http(s).
func requestHost(ctx *fasthttp.RequestCtx) []byte {
	if auth, abs := absoluteAuthority(ctx.Request.Header.RequestURI()); abs {
		return auth
	}
	return ctx.Request.Header.Host()
}

// absoluteAuthority returns the authority of an absolute-form request
// target and true, or nil and false for any other form. The scheme must be
// http or https (any case).
func absoluteAuthority(uri []byte) ([]byte, bool) {
	if len(uri) == 0 || uri[0] == '/' {
		return nil, false
	}
	var rest []byte
	switch {
	case len(uri) > 7 && bytes.EqualFold(uri[:7], strHTTPSchemeSep):
		rest = uri[7:]
	case len(uri) > 8 && bytes.EqualFold(uri[:8], strHTTPSSchemeSep):
		rest = uri[8:]
	default:
		return nil, false
	}
	end := len(rest)
	for i, c := range rest {
		if c == '/' || c == '?' || c == '#' {
			end = i
			break
		}
	}
	return rest[:end], true
}

var (
	strHTTPSchemeSep  = []byte("http://")
	strHTTPSSchemeSep = []byte("https://")
)
