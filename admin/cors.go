package admin

import (
	"strings"

	"github.com/valyala/fasthttp"
)

// CORS: the old server ran Express's cors middleware with its defaults, so
// a browser dashboard served from another origin could call the admin API:
// every response allowed origin *, and every OPTIONS request was answered
// 204 as a preflight. Options.CORSOrigins keeps that default ("*") or
// narrows it to exact origins, which are echoed with Vary: Origin. The API
// authenticates with a bearer token, never with cookies, so allowing an
// origin gives its pages nothing the browser would send on its own:
// credentials are not allowed (no Access-Control-Allow-Credentials).

const (
	corsMethods = "GET,HEAD,PUT,PATCH,POST,DELETE"
	corsHeaders = "Authorization,Content-Type,traceparent,"
	corsMaxAge  = "600"
)

type cors struct {
	any     bool
	origins map[string]bool
	headers string // allowed request headers when a preflight names none
	expose  string
}

// newCORS returns nil when origins is empty: CORS off.
func newCORS(origins []string, traceHeader string) *cors {
	if len(origins) == 0 {
		return nil
	}
	c := &cors{origins: make(map[string]bool, len(origins)),
		headers: corsHeaders + traceHeader, expose: traceHeader + ",traceparent,Retry-After"}
	for _, o := range origins {
		if o == "*" {
			c.any = true
		}
		c.origins[strings.TrimRight(o, "/")] = true
	}
	return c
}

// allowOrigin sets Access-Control-Allow-Origin for the request's origin
// and reports whether the origin is allowed.
func (c *cors) allowOrigin(ctx *fasthttp.RequestCtx) bool {
	h := &ctx.Response.Header
	if c.any {
		h.Set("Access-Control-Allow-Origin", "*")
		return true
	}
	h.Add("Vary", "Origin")
	origin := ctx.Request.Header.Peek("Origin")
	if len(origin) == 0 || !c.origins[string(origin)] {
		return false
	}
	h.SetBytesV("Access-Control-Allow-Origin", origin)
	return true
}

// handler answers preflights and adds the CORS headers to every other
// response after next has written it (a handler may reset the response,
// as the proxy endpoints do).
func (c *cors) handler(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if !ctx.IsOptions() {
			next(ctx)
			c.simple(ctx)
			return
		}
		// Every OPTIONS is a preflight, as the old middleware had it; a
		// disallowed origin gets no Allow-* headers and the browser stops.
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		if !c.allowOrigin(ctx) {
			return
		}
		h := &ctx.Response.Header
		h.Set("Access-Control-Allow-Methods", corsMethods)
		if req := ctx.Request.Header.Peek("Access-Control-Request-Headers"); len(req) > 0 {
			// Reflected, as the old middleware did: the browser only
			// sends what the page asked to send.
			h.SetBytesV("Access-Control-Allow-Headers", req)
			h.Add("Vary", "Access-Control-Request-Headers")
		} else {
			h.Set("Access-Control-Allow-Headers", c.headers)
		}
		h.Set("Access-Control-Max-Age", corsMaxAge)
	}
}

// simple adds the headers of a non-preflight response.
func (c *cors) simple(ctx *fasthttp.RequestCtx) {
	if c.allowOrigin(ctx) {
		ctx.Response.Header.Set("Access-Control-Expose-Headers", c.expose)
	}
}
