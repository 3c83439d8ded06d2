package gateway

import (
	"github.com/valyala/fasthttp"

	"github.com/maxine-io/maxine/lb"
	"github.com/maxine-io/maxine/registry"
)

// unavailable is why a request for a service cannot be served, named in
// the error body beside the service: an operator reading a 404 or a 503
// learns which service and why, without the logs.
type unavailable uint8

const (
	unknownService  unavailable = iota // no such service (404 on the gateway)
	noHealthyNode                      // every node marked down by health checks
	allBreakersOpen                    // every node not down has its breaker open (or is ejected)
	allNodesBusy                       // some node is usable, yet none took the request (pools full)
)

var unavailableReasons = [...]string{
	unknownService:  "unknown service",
	noHealthyNode:   "no healthy node",
	allBreakersOpen: "all breakers open",
	allNodesBusy:    "no node could take the request",
}

// unavailableHeads are the bodies up to the service name, precomputed per
// status and reason: {"message":"…","reason":"…","service":"
var unavailableHeads = func() map[int][len(unavailableReasons)][]byte {
	m := make(map[int][len(unavailableReasons)][]byte)
	for status, msg := range map[int]string{fasthttp.StatusNotFound: "Not Found", fasthttp.StatusServiceUnavailable: "Service Unavailable"} {
		var heads [len(unavailableReasons)][]byte
		for i, r := range unavailableReasons {
			heads[i] = []byte(`{"message":"` + msg + `","reason":"` + r + `","service":"`)
		}
		m[status] = heads
	}
	return m
}()

var strBodyTail = []byte(`"}`)

// failService answers status (404 or 503) with a JSON body naming service
// and why. The name is JSON-escaped into the response's own body buffer,
// which fasthttp pools: no allocation.
func (p *Proxy) failService(ctx *fasthttp.RequestCtx, status int, why unavailable, service []byte) int {
	p.fail(ctx, status)
	heads, ok := unavailableHeads[status]
	if !ok {
		return status
	}
	ctx.Response.ResetBody()
	ctx.Response.AppendBody(heads[why])
	var buf [64]byte
	esc := buf[:0]
	for _, c := range service {
		switch {
		case c == '"' || c == '\\':
			esc = append(esc, '\\', c)
		case c < 0x20 || c == 0x7f:
			const hex = "0123456789abcdef"
			esc = append(esc, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			esc = append(esc, c)
		}
		if len(esc) > len(buf)-6 {
			ctx.Response.AppendBody(esc)
			esc = esc[:0]
		}
	}
	ctx.Response.AppendBody(esc)
	ctx.Response.AppendBody(strBodyTail)
	return status
}

// whyUnavailable tells why no node of t was picked. It runs only on that
// failure path.
func (t *serviceTable) whyUnavailable() unavailable {
	total, down, usable := 0, 0, 0
	for u := range t.nodes {
		total++
		switch {
		case u.down.Load():
			down++
		case u.usable():
			usable++
		}
	}
	switch {
	case total == 0:
		return unknownService
	case usable > 0:
		return allNodesBusy
	case down == total:
		return noHealthyNode
	}
	return allBreakersOpen
}

// requestedService is the service a request that routed nowhere asked
// for, for the 404 body: the X-Maxine-Service header, else the first path
// segment.
func requestedService(ctx *fasthttp.RequestCtx, path []byte) []byte {
	if h := ctx.Request.Header.Peek(ServiceHeader); len(h) > 0 {
		return h
	}
	if len(path) > 0 && path[0] == '/' {
		path = path[1:]
	}
	for i, c := range path {
		if c == '/' {
			return path[:i]
		}
	}
	return path
}

// Selection returns what redirect discovery needs to choose a node of
// service as the gateway would: the snapshot the gateway routes it by and
// the node state selection must honour (health checks, open breakers,
// ejections). snap is nil when the gateway has no such service. Nothing
// is allocated once the service is in the routes.
func (p *Proxy) Selection(service []byte) (snap *registry.Snapshot, state lb.NodeState) {
	svc := p.routes.Load().exact[string(service)]
	if svc == nil {
		if svc = p.lookupSlow(string(service)); svc == nil {
			return nil, nil
		}
	}
	t := svc.table.Load()
	return t.snap, t
}

// Unavailable answers a request for service that has no node to send it
// to with the gateway's own 503 body (naming the service and the reason),
// so that discover and the gateway answer the same case the same way.
func (p *Proxy) Unavailable(ctx *fasthttp.RequestCtx, service []byte) {
	why := unknownService
	if svc := p.routes.Load().exact[string(service)]; svc != nil {
		why = svc.table.Load().whyUnavailable()
	}
	p.failService(ctx, fasthttp.StatusServiceUnavailable, why, service)
}
