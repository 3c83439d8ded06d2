package main

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/valyala/fasthttp"
)

// calibrationEnv, set to "<listen addr> <upstream addr>" in the
// environment of this program (or of its test binary), makes the process
// serve as the calibration proxy instead of doing anything else; set to
// "<listen addr> redirect", as the calibration of redirect discovery. The bench
// starts it by re-executing itself, so the proxy is a process of its own
// with the same CPU budget as every other target, not goroutines sharing
// the load generator's.
const calibrationEnv = "MAXINE_BENCH_CALIBRATION_PROXY"

// serveCalibrationProxy is the calibration target SPEC section 9 asks
// for: the simplest fasthttp reverse proxy, one HostClient.Do in the
// handler, no routing, no header rewriting. Maxine's gateway is built on
// the same engine, so its rps over this one's is how much of the
// engine's ceiling it keeps. It serves until killed.
func serveCalibrationProxy(spec string) error {
	listen, upstream, ok := strings.Cut(spec, " ")
	if !ok || !strings.HasPrefix(listen, "127.0.0.1:") || !strings.HasPrefix(upstream, "127.0.0.1:") && upstream != "redirect" {
		return fmt.Errorf("bad %s=%q: want \"127.0.0.1:<port> 127.0.0.1:<port>\" or \"127.0.0.1:<port> redirect\"", calibrationEnv, spec)
	}
	srv := &fasthttp.Server{Handler: redirectHandler, Concurrency: 64 * 1024}
	if upstream != "redirect" {
		hc := &fasthttp.HostClient{Addr: upstream, MaxConns: 1 << 16, MaxIdemponentCallAttempts: 1}
		srv.Handler = func(ctx *fasthttp.RequestCtx) {
			if err := hc.Do(&ctx.Request, &ctx.Response); err != nil {
				ctx.Error(err.Error(), fasthttp.StatusBadGateway)
			}
		}
	}
	ln, err := net.Listen("tcp4", listen)
	if err != nil {
		return fmt.Errorf("calibration proxy: %w", err)
	}
	return srv.Serve(ln)
}

// redirectHandler is the calibration of redirect discovery: the simplest
// fasthttp server answering what maxine's discover answers (302, the
// node's URL in Location, the short text body), with no routing, registry
// lookup, metrics or trace headers. Maxine's admin API runs on the same
// engine, so its rps over this one's is how much of the engine's ceiling
// discovery keeps, beside the ratio to nginx.
func redirectHandler(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.SetCanonical(strLocation, redirectTo)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetStatusCode(fasthttp.StatusFound)
	ctx.SetBodyString("Found. Redirecting to " + string(redirectTo))
}

var (
	strLocation = []byte("Location")
	redirectTo  = []byte("http://127.0.0.1:2000/x")
)

// runCalibrationProxyIfAsked serves the calibration proxy (or redirect
// server) and exits when calibrationEnv is set; otherwise it returns at
// once.
func runCalibrationProxyIfAsked() { runHelperIfAsked(calibrationEnv, serveCalibrationProxy) }

// StartCalibrationProxy starts this executable again as the calibration
// proxy to upstream, with GOMAXPROCS cpus, and waits until it proxies.
func StartCalibrationProxy(ctx context.Context, runDir, upstream string, cpus int) (*Helper, error) {
	return startHelper(ctx, runDir, "calibration proxy", calibrationEnv, upstream, cpus, 200)
}

// StartCalibrationRedirect starts this executable again as the
// calibration of redirect discovery (redirectHandler), with GOMAXPROCS
// cpus, and waits until it answers.
func StartCalibrationRedirect(ctx context.Context, runDir string, cpus int) (*Helper, error) {
	return startHelper(ctx, runDir, "calibration redirect", calibrationEnv, "redirect", cpus, 302)
}
