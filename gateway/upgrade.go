package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/maxine-io/maxine/config"
)

// Upgrade tunnelling (WebSocket and any other protocol switched to with
// "Connection: Upgrade", RFC 9110 §7.8).
//
// fasthttp's HostClient cannot hand over a connection, so an upgrade does
// not go through the node's pool: handshake dials the picked node itself
// (allow-list, connect timeout and TLS as the pool would), writes the
// request head with Connection and Upgrade kept, and reads the response
// head. A 101 Switching Protocols hijacks the client's connection
// (RequestCtx.Hijack) and a tunnel splices the two both ways until either
// side closes, nothing passes for TunnelIdleTimeout, or CloseTunnels (the
// drain) ends it. Anything but 101 is relayed as an ordinary response.
//
// The handshake is an attempt like any other for the breaker, the passive
// outlier detection, metrics and traces (status 101); what happens inside
// the tunnel is not the node's verdict on HTTP and is not counted. The
// node's in-flight count includes its open tunnels, so least-connections
// spreads long-lived connections too.
//
// Invariants: every tunnel is in Proxy.tunnels from its handshake until
// its end; once CloseTunnels has started no new tunnel is registered; a
// tunnel's upstream connection is owned by it and closed by end, the
// client's by fasthttp once the hijack handler returns (closing it here
// would end a perIPConn twice).

// tunnels tracks the open tunnels of a Proxy.
type tunnels struct {
	mu      sync.Mutex
	open    map[*tunnel]struct{}
	closing bool // CloseTunnels started: refuse new ones
	active  atomic.Int64

	opened, closed *metrics.Counter // nil when metrics are off
}

func (p *Proxy) initTunnels() {
	p.tunnels.open = make(map[*tunnel]struct{})
	if p.metrics != nil {
		set := p.metrics.set
		p.tunnels.opened = set.GetOrCreateCounter("maxine_gateway_tunnels_opened_total")
		p.tunnels.closed = set.GetOrCreateCounter("maxine_gateway_tunnels_closed_total")
		set.GetOrCreateGauge("maxine_gateway_tunnels_active", func() float64 { return float64(p.tunnels.active.Load()) })
	}
}

// isUpgrade reports whether the request asks to switch protocols and can
// be tunnelled: HTTP/1.1, "upgrade" among the Connection tokens, an
// Upgrade field, and no body (a request with a body goes the ordinary way,
// with Upgrade stripped as hop-by-hop). Only the Connection check runs for
// ordinary requests.
func isUpgrade(ctx *fasthttp.RequestCtx) bool {
	h := &ctx.Request.Header
	if !h.ConnectionUpgrade() || !h.IsHTTP11() || len(h.Peek("Upgrade")) == 0 {
		return false
	}
	// 0 or -2: no Content-Length and not chunked, which for a request
	// means no body (RFC 9112 §6.3).
	cl := h.ContentLength()
	return cl == 0 || cl == -2
}

// tunnel is one upgraded connection pair.
type tunnel struct {
	p    *Proxy
	u    *upstream
	up   net.Conn      // the node's connection, owned by the tunnel
	upr  *bufio.Reader // reads up; holds what the node sent after its 101
	head []byte        // the 101 head for the client

	mu     sync.Mutex
	client net.Conn // the hijacked connection, once run has it
	ended  bool     // close was called

	slot *atomic.Int32 // the client's request slot, given back by end; may be nil

	last atomic.Int64 // unix nanos of the last byte either way
	done chan struct{}
}

// upgrade runs the handshake of an upgrade request to svc and answers it:
// 101 and a hijack, the node's own refusal, or the gateway's error. It
// returns the status sent. slot is the client's request slot
// (MaxRequestsPerClient): an open tunnel takes it over (setting *slot to
// nil) and gives it back when it ends, so a client's tunnels count
// against its cap for as long as they are open.
func (p *Proxy) upgrade(ctx *fasthttp.RequestCtx, svc *service, ex *exchange, start time.Time, slot **atomic.Int32) int {
	p.inFlight.Add(1)
	defer p.inFlight.Add(-1)
	p.tunnels.mu.Lock()
	closing := p.tunnels.closing
	p.tunnels.mu.Unlock()
	if closing {
		ctx.SetConnectionClose()
		return p.fail(ctx, fasthttp.StatusServiceUnavailable)
	}
	if p.o.MaxTunnels > 0 && p.tunnels.active.Load() >= int64(p.o.MaxTunnels) {
		return p.fail(ctx, fasthttp.StatusServiceUnavailable)
	}
	svc.budget.onRequest()

	req := &ex.req
	ctx.Request.Header.CopyTo(&req.Header)
	req.Header.SetNoDefaultContentType(true)
	ex.scratch = stripRequestHopHeaders(&req.Header, ex.scratch)
	req.Header.Del("Expect")
	req.Header.SetProtocolBytes(strHTTP11)
	ex.scratch = setForwarded(ctx, ex.client, &req.Header, ex.scratch)
	ex.scratch = p.setVia(ctx, &req.Header, ex.scratch)
	p.setRequestTrace(&req.Header, &ex.trace)
	// Connection and Upgrade are hop-by-hop, and this hop wants the same
	// protocol switch as the client's.
	req.Header.SetBytesV("Connection", strUpgrade)
	req.Header.SetBytesV("Upgrade", ctx.Request.Header.Peek("Upgrade"))

	s := p.strategy()
	var key []byte
	if s == config.ConsistentHashing || s == config.RendezvousHashing {
		key = p.hashKey(ctx, ex)
	}
	deadline := start.Add(p.o.Deadline)
	maxRetries := p.o.MaxRetries
	if ex.pol != nil {
		maxRetries = ex.pol.retries
	}
	retries := 0
	last := outcome(0)
	tried := false
	for {
		t := svc.table.Load()
		ex.table = t
		i := p.pick(t, s, key, ex)
		if i < 0 {
			break
		}
		u := t.vnode(i)
		if tried && last != outRejected {
			if !svc.spendRetry() {
				break
			}
			retries++
		}
		ex.tried[ex.ntried] = u
		ex.ntried++
		resp := fasthttp.AcquireResponse()
		resp.Header.SetNoDefaultContentType(true)
		if ctx.IsHead() {
			resp.SkipBody = true
		}
		tun, out := p.handshake(ex, u, resp, deadline)
		switch {
		case out == outOK && tun != nil:
			tun.slot, *slot = *slot, nil
			status := p.hijack(ctx, ex, tun, resp)
			fasthttp.ReleaseResponse(resp)
			return status
		case out == outOK || out == out5xx:
			// The node's own answer, relayed; its connection is done.
			status := resp.StatusCode()
			resp.Header.CopyTo(&ctx.Response.Header)
			ex.scratch = stripResponseHopHeaders(&ctx.Response.Header, ex.scratch)
			ctx.Response.Header.SetNoDefaultContentType(true)
			ctx.Response.SetBody(resp.Body())
			fasthttp.ReleaseResponse(resp)
			u.inFlight.Add(-1)
			if out == out5xx {
				if m := p.serviceMetrics(svc); m != nil {
					m.upstreamError(out)
				}
			}
			return status
		}
		fasthttp.ReleaseResponse(resp)
		u.inFlight.Add(-1)
		if out != outRejected {
			if m := p.serviceMetrics(svc); m != nil {
				m.upstreamError(out)
			}
		}
		tried, last = true, out
		// Only an attempt that never reached its node may go to another:
		// an upgrade that reached one may have started something there.
		if out.reached() || retries >= maxRetries || ex.ntried == len(ex.tried) || !time.Now().Before(deadline) {
			break
		}
	}
	if !tried || last == outRejected {
		return p.failService(ctx, fasthttp.StatusServiceUnavailable, ex.table.whyUnavailable(), s2b(ex.table.svc.name))
	}
	return p.fail(ctx, last.status())
}

var strUpgrade = []byte("Upgrade")

// handshake sends the upgrade request to u and reads the answer's head.
// On 101 it returns the tunnel (registered, u's in-flight count held
// until it ends); otherwise resp holds the node's whole response, or the
// outcome says why there is none. The caller ends u's in-flight count
// when no tunnel is returned.
func (p *Proxy) handshake(ex *exchange, u *upstream, resp *fasthttp.Response, deadline time.Time) (*tunnel, outcome) {
	_, try := p.aim(ex, u, deadline)
	// Parsed, so that Write sends the origin form and the node's Host,
	// as the pool does.
	ex.req.URI()
	u.inFlight.Add(1)
	c := u.connection()
	var tun *tunnel
	do := func() outcome {
		var out outcome
		tun, out = p.exchangeUpgrade(ex, u, c, resp, try)
		return out
	}
	var out outcome
	if c.breaker == nil {
		out = do()
	} else {
		out = c.breaker.do(do)
	}
	p.observe(ex.table, u, out.failed() || out == outOK && resp.StatusCode() >= 500, out == outOK)
	return tun, out
}

func (p *Proxy) exchangeUpgrade(ex *exchange, u *upstream, c *nodeConn, resp *fasthttp.Response, try time.Time) (*tunnel, outcome) {
	timeout := time.Until(try)
	if timeout > p.o.ConnectTimeout {
		timeout = p.o.ConnectTimeout
	}
	conn, err := p.dialNode(u.hostport, c.client.TLSConfig, timeout)
	if err != nil {
		return nil, outConnect
	}
	conn.SetDeadline(try)
	bw := bufio.NewWriterSize(conn, 4096)
	if err := ex.req.Write(bw); err != nil {
		conn.Close()
		return nil, transportOutcome(err)
	}
	if err := bw.Flush(); err != nil {
		conn.Close()
		return nil, transportOutcome(err)
	}
	br := bufio.NewReaderSize(conn, 16<<10)
	// Interim heads (100 Continue, 103 Early Hints) may precede the
	// answer: skipped, a few at most (RFC 9110 §15.2), as for any attempt.
	if err := readHead(resp, br); err != nil {
		conn.Close()
		return nil, transportOutcome(err)
	}
	if resp.StatusCode() == fasthttp.StatusSwitchingProtocols {
		t := &tunnel{p: p, u: u, up: conn, upr: br, done: make(chan struct{})}
		if !p.register(t) {
			conn.Close()
			return nil, outBusy
		}
		return t, outOK
	}
	err = resp.ReadBody(br, p.o.MaxBodySize)
	conn.Close()
	if err != nil {
		return nil, transportOutcome(err)
	}
	switch resp.StatusCode() {
	case fasthttp.StatusBadGateway, fasthttp.StatusServiceUnavailable, fasthttp.StatusGatewayTimeout:
		return nil, out5xx
	}
	return nil, outOK
}

func transportOutcome(err error) outcome {
	if err == fasthttp.ErrTimeout || isTimeout(err) {
		return outTimeout
	}
	return outBroken
}

// register adds t to the open tunnels unless CloseTunnels has started.
func (p *Proxy) register(t *tunnel) bool {
	p.tunnels.mu.Lock()
	defer p.tunnels.mu.Unlock()
	if p.tunnels.closing {
		return false
	}
	p.tunnels.open[t] = struct{}{}
	p.tunnels.active.Add(1)
	if p.tunnels.opened != nil {
		p.tunnels.opened.Inc()
	}
	return true
}

// hijack answers 101 with the node's response head (hop-by-hop fields
// stripped, Connection and Upgrade set anew, the gateway's trace context)
// and hands the client's connection to the tunnel. The head is written by
// the tunnel itself, in one write: Listener's connection sees it and stops
// treating what follows as HTTP.
func (p *Proxy) hijack(ctx *fasthttp.RequestCtx, ex *exchange, t *tunnel, resp *fasthttp.Response) int {
	h := &ctx.Response.Header
	resp.Header.CopyTo(h)
	h.SetNoDefaultContentType(true)
	proto := append([]byte(nil), resp.Header.Peek("Upgrade")...)
	ex.scratch = stripResponseHopHeaders(h, ex.scratch)
	h.SetBytesV("Connection", strUpgrade)
	if len(proto) > 0 {
		h.SetBytesV("Upgrade", proto)
	}
	p.setResponseTrace(h, &ex.trace)
	t.head = h.AppendBytes(nil)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(t.run)
	return fasthttp.StatusSwitchingProtocols
}

// run is the hijack handler: it writes the 101 head to the client and
// splices the connections until either side closes, the tunnel idles out
// or close is called.
func (t *tunnel) run(c net.Conn) {
	defer t.end()
	t.mu.Lock()
	t.client = c
	ended := t.ended
	t.mu.Unlock()
	if ended {
		return
	}
	idle := t.p.o.TunnelIdleTimeout
	t.last.Store(time.Now().UnixNano())
	c.SetWriteDeadline(time.Now().Add(idle))
	if _, err := c.Write(t.head); err != nil {
		return
	}
	t.head = nil
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t.copy(c, t.upr, t.up)
		t.close()
	}()
	t.copy(t.up, c, c)
	t.close()
	wg.Wait()
}

// copy moves bytes from src (read through r) to dst until either fails or
// the tunnel has been idle both ways for TunnelIdleTimeout.
//
// Deadlines are not moved per read or write (each move is a runtime timer
// update, measurable on a ping-pong tunnel): the read deadline is set once
// and, when it passes, moved to idle after the last byte either way if
// the tunnel was active meanwhile; the write deadline is moved only once
// half of it is used up.
func (t *tunnel) copy(dst net.Conn, r io.Reader, src net.Conn) {
	idle := t.p.o.TunnelIdleTimeout
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	if !t.setDeadline(src.SetReadDeadline, time.Unix(0, t.last.Load()).Add(idle)) {
		return
	}
	var wdl time.Time
	for {
		n, err := r.Read(buf)
		if n > 0 {
			now := time.Now()
			t.last.Store(now.UnixNano())
			if wdl.Sub(now) < idle/2 {
				wdl = now.Add(idle)
				if !t.setDeadline(dst.SetWriteDeadline, wdl) {
					return
				}
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			// The read deadline passed while the other direction was
			// busy: the tunnel is not idle, wait again.
			next := time.Unix(0, t.last.Load()).Add(idle)
			if isTimeout(err) && time.Now().Before(next) && t.setDeadline(src.SetReadDeadline, next) {
				continue
			}
			return
		}
	}
}

// setDeadline moves a deadline unless the tunnel has ended, under mu so
// that close's past deadline is never overwritten.
func (t *tunnel) setDeadline(set func(time.Time) error, d time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return false
	}
	set(d)
	return true
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// close stops both directions: their blocked reads and writes fail at
// once. The connections themselves are closed by end and fasthttp.
func (t *tunnel) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ended = true
	past := time.Unix(1, 0)
	t.up.SetDeadline(past)
	if t.client != nil {
		t.client.SetDeadline(past)
	}
}

// end releases the tunnel once run is done.
func (t *tunnel) end() {
	t.close()
	t.up.Close()
	t.u.inFlight.Add(-1)
	if t.slot != nil {
		t.slot.Add(-1)
	}
	p := t.p
	p.tunnels.mu.Lock()
	delete(p.tunnels.open, t)
	p.tunnels.mu.Unlock()
	p.tunnels.active.Add(-1)
	if p.tunnels.closed != nil {
		p.tunnels.closed.Inc()
	}
	close(t.done)
}

// CloseTunnels is the drain of tunnels, for after the listeners stopped
// accepting: it refuses new upgrades (503), lets open tunnels run until
// they end or ctx is done, then closes those left and waits (a few
// seconds at most) for them to finish. It returns how many it closed.
func (p *Proxy) CloseTunnels(ctx context.Context) int {
	p.tunnels.mu.Lock()
	p.tunnels.closing = true
	p.tunnels.mu.Unlock()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for p.tunnels.active.Load() > 0 {
		select {
		case <-ctx.Done():
		case <-tick.C:
			continue
		}
		break
	}
	p.tunnels.mu.Lock()
	left := make([]*tunnel, 0, len(p.tunnels.open))
	for t := range p.tunnels.open {
		left = append(left, t)
	}
	p.tunnels.mu.Unlock()
	for _, t := range left {
		t.close()
	}
	wait := time.NewTimer(5 * time.Second)
	defer wait.Stop()
	for _, t := range left {
		select {
		case <-t.done:
		case <-wait.C:
			return len(left)
		}
	}
	return len(left)
}

// Tunnels returns the number of open tunnels.
func (p *Proxy) Tunnels() int64 { return p.tunnels.active.Load() }
