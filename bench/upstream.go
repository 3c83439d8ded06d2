package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// upstreamBody is what the upstream answers to every request: small, so
// the proxies are measured, not the copying of bodies.
var upstreamBody = []byte("hello from the bench upstream\n")

// Upstream is the fast local HTTP server every proxy in the run forwards
// to. It runs inside the bench process on 127.0.0.1 and answers every
// request with 200 and upstreamBody. Close it when done.
type Upstream struct {
	Addr string // 127.0.0.1:port
	srv  *fasthttp.Server
	done chan error
}

// StartUpstream listens on a free loopback port and serves until Close.
func StartUpstream() (*Upstream, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("cannot listen for the upstream: %w", err)
	}
	u := &Upstream{
		Addr: ln.Addr().String(),
		done: make(chan error, 1),
		srv: &fasthttp.Server{
			Handler: func(ctx *fasthttp.RequestCtx) {
				ctx.SetContentType("text/plain")
				ctx.SetBody(upstreamBody)
			},
			Name:                          "bench-upstream",
			NoDefaultDate:                 true,
			DisableHeaderNamesNormalizing: true,
			ReadTimeout:                   time.Minute,
			IdleTimeout:                   time.Minute,
			Concurrency:                   64 * 1024,
		},
	}
	go func() { u.done <- u.srv.Serve(ln) }()
	return u, nil
}

// Close stops accepting, closes idle keep-alive connections and waits at
// most 3 s for requests in flight.
func (u *Upstream) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := u.srv.ShutdownWithContext(ctx)
	if serr := <-u.done; err == nil {
		err = serr
	}
	return err
}
