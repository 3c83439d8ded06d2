package gateway

import (
	"bytes"
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
//  2. the Host header without its port, equal to a service name or to
//     "<service>.<HostSuffix>";
//  3. the first path segment, "/<service>/rest", which is stripped.
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
	if svc := p.routeHost(rm, ctx.Request.Header.Host()); svc != nil {
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
