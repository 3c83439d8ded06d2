package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// This file sends one attempt to one node and classifies what happened;
// proxy.go decides which node and whether to try again.

// outcome is the result of one attempt.
type outcome uint8

const (
	outOK         outcome = iota // a response to pass on
	out5xx                       // 502/503/504 from the node: a response, but a failure
	outConnect                   // the connection could not be made: never reached the node
	outBusy                      // the node's pool is exhausted: never reached the node
	outTimeout                   // the try timed out after connecting
	outBroken                    // the connection failed mid-exchange
	outRejected                  // the breaker refused the attempt
	outTooLarge                  // the client's body went over the limit
	outClientBody                // the client's body could not be read
)

// failed reports whether the node is to blame (breaker, outlier, metrics).
func (o outcome) failed() bool {
	return o == out5xx || o == outConnect || o == outTimeout || o == outBroken
}

// reached reports whether the request may have reached the node, in which
// case only idempotent requests may be sent again (RFC 9110 §9.2.2).
func (o outcome) reached() bool { return o != outConnect && o != outBusy && o != outRejected }

// status is the gateway's answer when the attempt produced no response to
// pass on: 502 for a node that could not be reached or broke the
// connection, 504 for a timeout (RFC 9110 §15.6.3, §15.6.5).
func (o outcome) status() int {
	switch o {
	case outTimeout:
		return fasthttp.StatusGatewayTimeout
	case outBusy:
		return fasthttp.StatusServiceUnavailable
	case outTooLarge:
		return fasthttp.StatusRequestEntityTooLarge
	case outClientBody:
		return fasthttp.StatusBadRequest
	}
	return fasthttp.StatusBadGateway
}

// breakerErr is what the breaker is told.
func (o outcome) breakerErr() error {
	switch {
	case o.failed():
		return errFailure
	case o == outOK:
		return nil
	}
	return errExcluded
}

// dialError marks an error from establishing a connection (TCP connect or
// TLS handshake): the request was certainly not sent, so it may be retried
// on another node whatever its method.
type dialError struct{ err error }

func (e *dialError) Error() string { return "gateway: connect: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// newHostClient returns the connection pool of one node.
//
// The pool never follows redirects (HostClient.Do does not), sends paths
// exactly as given (DisablePathNormalizing: the gateway forwards the
// client's path, it does not rewrite it), streams response bodies for the
// health checks' Do (the proxy's attempts go through roundTrip, which
// buffers small bodies and streams the rest), and retries internally
// only the one case that is always safe: an idempotent request with a
// buffered body whose pooled keep-alive connection turned out to be
// closed by the node.
func (p *Proxy) newHostClient(hostport string, isTLS bool) *fasthttp.HostClient {
	connectTimeout := p.o.ConnectTimeout
	tlsConfig := p.nodeTLSConfig(hostport, isTLS)
	return &fasthttp.HostClient{
		Addr:                      hostport,
		IsTLS:                     isTLS,
		TLSConfig:                 tlsConfig,
		MaxConns:                  p.o.MaxConnsPerNode,
		MaxConnWaitTimeout:        connectTimeout,
		MaxIdleConnDuration:       p.o.MaxIdleConnDuration,
		MaxIdemponentCallAttempts: 2,
		NoDefaultUserAgentHeader:  true,
		DisablePathNormalizing:    true,
		StreamResponseBody:        true,
		DialTimeout: func(addr string, timeout time.Duration) (net.Conn, error) {
			// timeout is what is left of the try; 0 when fasthttp dials
			// for a queued request on its own.
			if timeout <= 0 || timeout > connectTimeout {
				timeout = connectTimeout
			}
			return p.dialNode(addr, tlsConfig, timeout)
		},
		RetryIfErr: func(req *fasthttp.Request, attempts int, err error) (bool, bool) {
			return false, staleConn(err) && idempotent(req.Header.Method()) && !req.IsBodyStream()
		},
	}
}

// nodeTLSConfig is the client TLS configuration for a node at hostport:
// the gateway's (its CA bundle) or the system roots, verifying the node's
// host name; nil for a cleartext node.
func (p *Proxy) nodeTLSConfig(hostport string, isTLS bool) *tls.Config {
	if !isTLS {
		return nil
	}
	host, _, _ := net.SplitHostPort(hostport)
	var c *tls.Config
	if p.o.TLSConfig != nil {
		c = p.o.TLSConfig.Clone()
	} else {
		c = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	c.ServerName = host
	return c
}

// dialNode connects to a node's addr, as the allow-list permits (every
// error is a *dialError): the pools' dialer and the upgrade handshake's.
func (p *Proxy) dialNode(addr string, tlsConfig *tls.Config, timeout time.Duration) (net.Conn, error) {
	if al := p.o.AllowList; al.Len() > 0 {
		checked, err := al.dialAllowed(addr)
		if err != nil {
			return nil, &dialError{err: err}
		}
		addr = checked
	}
	return dial(addr, tlsConfig, timeout)
}

// dial connects (and completes the TLS handshake) within timeout; every
// error is a *dialError.
func dial(addr string, tlsConfig *tls.Config, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 {
		return nil, &dialError{err: context.DeadlineExceeded}
	}
	d := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, &dialError{err: err}
	}
	if tlsConfig == nil {
		return conn, nil
	}
	tc := tls.Client(conn, tlsConfig)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, &dialError{err: err}
	}
	return tc, nil
}

// staleConn reports errors that a reused keep-alive connection gives when
// the node closed it while it sat in the pool.
func staleConn(err error) bool {
	return err == io.EOF || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// aim points the exchange's request at u ("<u's base path><path>?<query>")
// and returns the attempt's start and its deadline: the try timeout (the
// service's policy, else the gateway's), within the request's deadline.
func (p *Proxy) aim(ex *exchange, u *upstream, deadline time.Time) (now, try time.Time) {
	ex.uri = append(ex.uri[:0], u.uriPrefix...)
	if len(ex.path) == 0 || ex.path[0] != '/' {
		ex.uri = append(ex.uri, '/')
	}
	ex.uri = append(ex.uri, ex.path...)
	if len(ex.query) > 0 {
		ex.uri = append(append(ex.uri, '?'), ex.query...)
	}
	ex.req.SetRequestURIBytes(ex.uri)
	tt := p.o.TryTimeout
	if ex.pol != nil {
		tt = ex.pol.tryTimeout
	}
	now = time.Now()
	if try = now.Add(tt); try.After(deadline) {
		try = deadline
	}
	return now, try
}

// attempt sends the exchange's request to u and returns the outcome; resp
// holds the response for outOK and out5xx. The caller owns u's in-flight
// count from here on and ends it with finish (or respond).
//
// The breaker wraps the exchange up to the response header: connect
// errors, timeouts and 502/503/504 count as failures, the client's own
// faults are excluded.
func (p *Proxy) attempt(ex *exchange, u *upstream, resp *fasthttp.Response, deadline time.Time) outcome {
	now, try := p.aim(ex, u, deadline)
	u.inFlight.Add(1)
	c := u.connection()
	var out outcome
	if c.breaker == nil {
		out = p.exchangeWith(ex, u, c.client, resp, now, try)
	} else {
		out = c.breaker.do(func() outcome { return p.exchangeWith(ex, u, c.client, resp, now, try) })
	}
	// Passive outlier detection counts every 5xx, 500 included (a node
	// failing all its requests with 500 is an outlier even if the breaker
	// only counts the gateway-class errors).
	p.observe(ex.table, u, out.failed() || out == outOK && resp.StatusCode() >= 500, out == outOK)
	return out
}

func (p *Proxy) exchangeWith(ex *exchange, u *upstream, client *fasthttp.HostClient, resp *fasthttp.Response, now, deadline time.Time) outcome {
	var err error
	if u.pipelinable(ex) {
		if err = pipelineErr(u.pipeline().DoDeadline(&ex.req, resp, deadline)); err != nil {
			u.pipeOK.Store(false) // the pool again until the node answers there
		}
	} else {
		err = p.roundTrip(client, &ex.req, resp, now, deadline)
		if err == nil && u.pipeConns.Load() > 0 && !u.pipeOK.Load() {
			u.pipeOK.Store(true)
		}
	}
	if err == nil {
		switch resp.StatusCode() {
		case fasthttp.StatusBadGateway, fasthttp.StatusServiceUnavailable, fasthttp.StatusGatewayTimeout:
			return out5xx
		}
		return outOK
	}
	if ex.streamed {
		if ex.body.tooLarge {
			return outTooLarge
		}
		if ex.body.err != nil {
			return outClientBody
		}
	}
	var de *dialError
	switch {
	case errors.As(err, &de):
		return outConnect
	case err == fasthttp.ErrNoFreeConns:
		return outBusy
	case err == fasthttp.ErrTimeout || isTimeout(err):
		return outTimeout
	}
	return outBroken
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// finish ends an attempt whose response is not passed on: the body stream
// (if any) is closed, which returns or closes the connection, and the
// node's in-flight count drops.
func finish(u *upstream, resp *fasthttp.Response) {
	_ = resp.CloseBodyStream()
	fasthttp.ReleaseResponse(resp)
	u.inFlight.Add(-1)
}

// respond passes the node's response to the client and takes ownership of
// resp. Status and headers are kept, except the hop-by-hop ones (RFC 9110
// §7.6.1); 3xx responses pass untouched, redirects are never followed.
// Bodies up to StreamThreshold are copied so the connection goes back to
// the pool at once; larger ones, and those of unknown length, are streamed.
func (p *Proxy) respond(ctx *fasthttp.RequestCtx, ex *exchange, u *upstream, resp *fasthttp.Response) int {
	status := resp.StatusCode()
	resp.Header.CopyTo(&ctx.Response.Header)
	ex.scratch = stripResponseHopHeaders(&ctx.Response.Header, ex.scratch)
	ctx.Response.Header.SetNoDefaultContentType(true)
	body := resp.BodyStream()
	cl := resp.Header.ContentLength()
	if body == nil {
		// Buffered by roundTrip (or no body at all).
		if b := resp.Body(); len(b) > 0 {
			ctx.Response.SetBody(b)
		}
		finish(u, resp)
		return status
	}
	if resp.SkipBody || status < 200 || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified {
		finish(u, resp)
		return status
	}
	if cl >= 0 && cl <= p.o.StreamThreshold {
		err := resp.BodyWriteTo(ctx.Response.BodyWriter())
		finish(u, resp)
		if err != nil {
			// The node broke off mid-body; nothing has reached the client
			// yet, so it gets a clean 502 rather than a truncated body.
			return p.fail(ctx, fasthttp.StatusBadGateway)
		}
		return status
	}
	if cl < 0 {
		cl = -1 // chunked to the client, whether the node sent chunked or close-delimited
	}
	ctx.Response.SetBodyStream(&responseStream{resp: resp, body: body, u: u}, cl)
	return status
}
