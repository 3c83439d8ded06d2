// Package gateway is Maxine's data plane: a fasthttp reverse proxy that
// routes each request to a registered service (SPEC 4), picks a node with
// the configured lb strategy, and forwards the request with connection
// pools, timeouts, retries, per-node circuit breakers, passive outlier
// ejection and active health checks.
//
// Following one request: ServeHTTP (this file) validates it and finds the
// service (routing.go); serve loads the service's immutable table
// (table.go) with its policy (policy.go: rate limit, answered 429, try
// timeout, retries, retried statuses, body size) and asks lb for a node,
// skipping nodes whose breaker is open or that are down (all atomics, no
// lock, no allocation); attempt (forward.go) sends it through the node's
// pool under its breaker (breaker.go); a failure may be retried on another
// node within the retry budget (retry.go); the response goes back with
// hop-by-hop headers removed (headers.go), streamed when large
// (streaming.go). An Upgrade request (WebSocket) takes the
// branch in serve to upgrade.go instead of attempt: its own connection to
// the node, spliced to the client's after the node's 101.
//
// Tables, and the policies on them, are rebuilt by Run from registry
// events, never by requests, and swapped with atomic.Pointer.
package gateway

import (
	"io"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/lb"
	"github.com/maxine-io/maxine/registry"
)

// Proxy is the gateway. Create it with New, run Run in a goroutine for as
// long as it serves, and serve requests with ServeHTTP (the gateway
// listener, see NewServer) or ServeService (admin's proxy endpoints). All
// methods are safe for concurrent use. A Proxy must not be copied.
type Proxy struct {
	o        Options
	traceKey []byte // o.TraceHeader in fasthttp's canonical form
	via      []byte // o.Via, this instance's pseudonym (via.go)
	reg      *registry.Registry
	log      zerolog.Logger

	routes     atomic.Pointer[routeMap] // read by requests, replaced by writers
	hostSuffix []byte                   // Options.HostSuffix without dots around it
	ownHosts   map[string]struct{}      // never routed by Host (hostRoutable); read-only

	mu       sync.Mutex          // serializes writers: Run and the route-miss refresh
	services map[string]*service // guarded by mu

	running  atomic.Bool
	started  atomic.Bool
	inFlight atomic.Int64
	// readTimeout is the gateway server's ReadTimeout (NewServer sets
	// it): the body deadlines never extend a request past it.
	readTimeout atomic.Int64
	clients     *clientLimiter // nil: no cap
	tunnels     tunnels        // open Upgrade tunnels (upgrade.go)
	defPol      policy         // the policy of a service that sets none (policy.go)
	notices     chan notice
	metrics     *proxyMetrics // nil when metrics are off

	exchanges sync.Pool // *exchange

	// afterSnapshotRead, when set (tests only, before Run starts), runs
	// in applyBatchLocked between its snapshot read and the table update:
	// the seam through which tests inject a registry change at exactly
	// that point.
	afterSnapshotRead func(service string)
	// afterEjectCount, when set (tests only), runs in observe while it
	// holds the service's ejection lock, before it counts usable nodes.
	afterEjectCount func()
}

// exchange is the per-request state, pooled so that forwarding a request
// allocates nothing of its own.
type exchange struct {
	req      fasthttp.Request
	table    *serviceTable
	path     []byte  // forwarded path (the client's, prefix-stripped), aliases the request
	query    []byte  // raw query, aliases the request or ServeService's path
	pol      *policy // the service's policy when the request started
	body     requestBody
	streamed bool // req's body is body: it cannot be replayed
	excl     excluding
	tried    [maxTried]*upstream
	ntried   int
	key      [16]byte
	client   netip.Addr // the client's address
	trace    traceText  // the request's span as a traceparent
	uri      []byte
	scratch  []byte
	bodyBuf  []byte
}

// maxTried bounds the nodes one request may be sent to or refused by.
const maxTried = maxRetriesLimit + 1 + 8

func (ex *exchange) reset() {
	ex.req.Reset()
	ex.table = nil
	ex.pol = nil
	ex.path, ex.query = nil, nil
	ex.body = requestBody{}
	ex.streamed = false
	ex.excl = excluding{}
	clear(ex.tried[:ex.ntried])
	ex.ntried = 0
	ex.client = netip.Addr{}
}

// Trace record kinds.
const (
	kindGateway = "gateway"
	kindProxy   = "proxy"
)

// New validates o and returns a Proxy serving the registry's current
// services. Call Run to follow registry changes.
func New(o Options) (*Proxy, error) {
	if err := o.normalize(); err != nil {
		return nil, err
	}
	p := &Proxy{
		o:        o,
		traceKey: fasthttp.AppendNormalizedHeaderKey(nil, o.TraceHeader),
		via:      []byte(o.Via),
		reg:      o.Registry,
		log:      o.Logger,
		services: make(map[string]*service),
		notices:  make(chan notice, 1024),
	}
	p.exchanges.New = func() any { return new(exchange) }
	p.hostSuffix = []byte(strings.Trim(o.HostSuffix, "."))
	p.ownHosts = ownHostSet(o.OwnHosts)
	p.defPol = p.defaultPolicy()
	if o.MaxRequestsPerClient > 0 {
		p.clients = newClientLimiter(o.MaxRequestsPerClient)
	}
	p.routes.Store(&routeMap{})
	if o.Metrics != nil {
		p.metrics = newProxyMetrics(o.Metrics, p)
	}
	p.initTunnels()
	p.mu.Lock()
	p.resyncLocked()
	p.mu.Unlock()
	return p, nil
}

// rebuildWindow is how long Run lets registry changes accumulate before it
// rebuilds the affected tables.
const rebuildWindow = 2 * time.Millisecond

// Run follows the registry until done is closed: it applies every change to
// the affected service's table (a full resync after a subscription
// overflow), runs the active health checks, and delivers events to the
// EventSink. It returns when done is closed and its health-check goroutine
// has stopped. Only one Run may be active at a time; a second call returns
// at once.
func (p *Proxy) Run(done <-chan struct{}) {
	if !p.running.CompareAndSwap(false, true) {
		return
	}
	defer p.running.Store(false)
	sub := p.reg.Subscribe(0)
	defer p.reg.Unsubscribe(sub)
	// Changes between New and Subscribe are only seen by a resync.
	p.mu.Lock()
	p.resyncLocked()
	p.mu.Unlock()
	p.started.Store(true)

	var wg sync.WaitGroup
	defer wg.Wait()
	if p.o.Health.Enabled {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.healthLoop(done)
		}()
	}
	var events []registry.Event
	batches := make(map[string]*eventBatch)
	for {
		select {
		case <-done:
			p.drainNotices()
			return
		case <-sub.Ready():
			// Let a burst of registrations land before rebuilding, so a
			// storm costs one table per service per window, not one per
			// registration. Requests that arrive first for a brand-new
			// service are served by lookupSlow.
			time.Sleep(rebuildWindow)
			var overflowed bool
			events, overflowed = sub.Take(events[:0])
			p.applyEvents(events, overflowed, batches)
		case n := <-p.notices:
			p.deliver(n)
		}
	}
}

// applyEvents applies what one Take returned: every affected service's
// table brought up to date, or a full resync after an overflow.
func (p *Proxy) applyEvents(events []registry.Event, overflowed bool, batches map[string]*eventBatch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if overflowed {
		p.resyncLocked()
		return
	}
	changed := false
	for name, b := range groupEvents(events, batches) {
		changed = p.applyBatchLocked(name, b) || changed
	}
	clear(batches)
	if changed {
		p.publishRoutesLocked()
	}
}

// eventBatch is what one Take said about one service: the nodes that were
// registered or changed, the nodes that left, and the snapshot version
// after its last event.
type eventBatch struct {
	changed, gone []string
	version       uint64
}

// groupEvents sorts events by service into batches (reused across calls).
func groupEvents(events []registry.Event, batches map[string]*eventBatch) map[string]*eventBatch {
	for _, ev := range events {
		b := batches[ev.Service]
		if b == nil {
			b = &eventBatch{}
			batches[ev.Service] = b
		}
		b.version = ev.Version
		switch ev.Kind {
		case registry.NodeDeregistered, registry.NodeExpired:
			b.gone = append(b.gone, ev.Node)
		default:
			b.changed = append(b.changed, ev.Node)
		}
	}
	return batches
}

// applyBatchLocked applies one service's events. When the registry's
// snapshot is the one its last event produced, only the named nodes are
// attached: a registration costs O(1) here, however large the service. A
// snapshot that moved on since (a registration raced this batch) or a new
// service gets the full walk of applyLocked.
//
// The identity test is the snapshot's Version, which the registry never
// reuses (it is the event sequence number, not a per-service counter that
// restarts when a service is emptied and registered again): an equal
// Version is the very snapshot the batch's last event produced, so every
// node it holds was named by this batch or attached by an earlier one.
func (p *Proxy) applyBatchLocked(name string, b *eventBatch) bool {
	snap := p.reg.Snapshot(name)
	if p.afterSnapshotRead != nil {
		p.afterSnapshotRead(name)
	}
	svc := p.services[name]
	if snap == nil || svc == nil || snap.Version != b.version || svc.table.Load() == nil {
		changed := p.applyLocked(name, "")
		if svc = p.services[name]; svc != nil {
			// Judge what left by the snapshot the table now holds, which
			// applyLocked read after snap: a node that left and came
			// back between the two reads is in the table, re-attached,
			// and must keep its upstream.
			cur := svc.table.Load().snap
			for _, n := range b.gone {
				p.dropIfGone(svc, cur, n)
			}
		}
		return changed
	}
	if prev := svc.table.Load(); prev.snap != snap {
		setsPolicy := false
		for _, node := range b.changed {
			if n := snap.Parent(node); n != nil {
				p.attach(svc, n)
				setsPolicy = setsPolicy || upstreamOf(svc, n).policy != nil
			}
		}
		// No node had a policy and none of the changed ones has: the
		// walk of buildPolicy would find none, so a registration stays
		// O(1) for a service without policy.
		pol := prev.pol
		if pol != nil || setsPolicy {
			pol = p.buildPolicy(svc, snap, pol)
		}
		svc.table.Store(&serviceTable{svc: svc, snap: snap, pol: pol})
	}
	for _, n := range b.gone {
		p.dropIfGone(svc, snap, n)
	}
	return false
}

// applyLocked brings service name's table up to date with the registry
// (retiring the upstream of node gone, when given, if it left) and reports
// whether the set of services changed.
func (p *Proxy) applyLocked(name, gone string) bool {
	snap := p.reg.Snapshot(name)
	svc := p.services[name]
	if snap == nil || len(snap.Nodes) == 0 {
		if svc == nil {
			return false
		}
		p.removeLocked(svc)
		return true
	}
	created := false
	if svc == nil {
		svc = &service{name: name}
		svc.budget.init(p.o.RetryBudget, time.Now())
		if p.metrics != nil {
			svc.gauge = p.metrics.nodesGauge(svc)
		}
		p.services[name] = svc
		created = true
	}
	if cur := svc.table.Load(); cur == nil || cur.snap != snap {
		for _, n := range snap.Parents {
			p.attach(svc, n)
		}
		var prev *policy
		if cur != nil {
			prev = cur.pol
		}
		svc.table.Store(&serviceTable{svc: svc, snap: snap, pol: p.buildPolicy(svc, snap, prev)})
	}
	if gone != "" {
		p.dropIfGone(svc, snap, gone)
	}
	return created
}

func (p *Proxy) removeLocked(svc *service) {
	delete(p.services, svc.name)
	for name, u := range svc.upstreams {
		retire(u)
		delete(svc.upstreams, name)
	}
	if p.metrics != nil {
		p.metrics.remove(svc)
	}
}

// resyncLocked rebuilds every table from the registry.
func (p *Proxy) resyncLocked() {
	seen := make(map[string]struct{}, len(p.services))
	p.reg.Range(func(s *registry.Snapshot) bool {
		seen[s.Service] = struct{}{}
		p.applyLocked(s.Service, "")
		if svc := p.services[s.Service]; svc != nil {
			snap := svc.table.Load().snap
			for name := range svc.upstreams {
				p.dropIfGone(svc, snap, name)
			}
		}
		return true
	})
	for name, svc := range p.services {
		if _, ok := seen[name]; !ok {
			p.removeLocked(svc)
		}
	}
	p.publishRoutesLocked()
}

// lookupSlow finds a service that the registry has but the routes do not
// yet (Run has not applied its registration): it applies it at once, so a
// request right after a registration is not answered 404. It is reached
// only on a route miss.
func (p *Proxy) lookupSlow(name string) *service {
	if p.reg.Snapshot(name) == nil {
		return nil
	}
	p.mu.Lock()
	if p.applyLocked(name, "") {
		p.publishRoutesLocked()
	}
	svc := p.services[name]
	p.mu.Unlock()
	return svc
}

// ServeHTTP is the gateway listener's handler: it validates the request,
// routes it (SPEC 4, routing.go) and proxies it.
func (p *Proxy) ServeHTTP(ctx *fasthttp.RequestCtx) {
	start := requestStart(ctx)
	if !validRequest(ctx) {
		p.reject(ctx)
		return
	}
	path := ctx.URI().PathOriginal()
	svc, fwd := p.route(ctx, path)
	if svc == nil {
		if p.metrics != nil {
			p.metrics.unrouted.Inc()
		}
		p.failService(ctx, fasthttp.StatusNotFound, unknownService, requestedService(ctx, path))
		tt := newTraceText(p.startSpan(ctx))
		p.setResponseTrace(&ctx.Response.Header, &tt)
		return
	}
	p.serve(ctx, svc, fwd, ctx.URI().QueryString(), kindGateway, start)
}

// ServeService proxies the request to service, to "<node address><path>":
// the admin API's compatibility proxy (/api/maxine/serviceops/proxy/{svc}/
// {path...}) and discover with mode=proxy. path gets a leading '/' if it
// lacks one; if it contains '?', the part after it is the query, otherwise
// the request's own query is forwarded. An unknown service, like one with
// no available node, is answered 503 Service Unavailable, as discover does.
func (p *Proxy) ServeService(ctx *fasthttp.RequestCtx, service string, path []byte) {
	start := requestStart(ctx)
	query := ctx.URI().QueryString()
	for i, c := range path {
		if c == '?' {
			path, query = path[:i], path[i+1:]
			break
		}
	}
	ok := validSegments(path)
	if len(path) > 0 && path[0] == '/' {
		ok = validPath(path)
	}
	// The path comes from a query parameter or a decoded route: a space
	// or CRLF in it would split the forwarded request line.
	ok = ok && visibleASCII(path) && visibleASCII(query)
	if !ok {
		p.reject(ctx)
		return
	}
	svc := p.routes.Load().exact[service]
	if svc == nil {
		svc = p.lookupSlow(service)
	}
	if svc == nil {
		// 503, not 404: discover's answer for an unknown service (the old
		// contract), which this serves in proxy mode.
		p.failService(ctx, fasthttp.StatusServiceUnavailable, unknownService, s2b(service))
		tt := newTraceText(p.startSpan(ctx))
		p.setResponseTrace(&ctx.Response.Header, &tt)
		return
	}
	p.serve(ctx, svc, path, query, kindProxy, start)
}

// serve proxies one request to svc and records it.
func (p *Proxy) serve(ctx *fasthttp.RequestCtx, svc *service, path, query []byte, kind string, start time.Time) {
	ex := p.exchanges.Get().(*exchange)
	ex.path, ex.query = path, query
	ex.trace = newTraceText(p.startSpan(ctx))
	ex.client = clientAddr(ctx)
	// The service's policy as the request starts (policy.go); its rate
	// limit covers Upgrade handshakes too.
	ex.pol = p.policyOf(svc.table.Load())
	var status int
	if p.looped(ctx) {
		status = p.fail(ctx, fasthttp.StatusLoopDetected)
	} else if wait := ex.pol.limiter.take(ex.client); wait > 0 {
		status = p.rateLimited(ctx, ex, wait)
	} else if slot, ok := p.clients.acquire(ex.client); ok {
		if isUpgrade(ctx) {
			// An open tunnel keeps the client's slot (upgrade takes it).
			status = p.upgrade(ctx, svc, ex, start, &slot)
		} else {
			status = p.proxy(ctx, svc, ex, start)
		}
		if slot != nil {
			slot.Add(-1)
		}
	} else {
		status = p.fail(ctx, fasthttp.StatusTooManyRequests)
	}
	p.setResponseTrace(&ctx.Response.Header, &ex.trace)
	d := time.Since(start)
	if m := p.serviceMetrics(svc); m != nil {
		m.observe(status, d)
	}
	if p.o.Traces != nil {
		p.o.Traces.RecordTrace(kind, svc.name, ex.trace[:], ctx.Method(), ctx.URI().PathOriginal(), status, start, d)
	}
	ex.reset()
	p.exchanges.Put(ex)
}

// requestStart is when the server started handling the request (fasthttp
// reads the clock once per request for ctx.Time), or now for a
// RequestCtx that no server filled in.
func requestStart(ctx *fasthttp.RequestCtx) time.Time {
	if t := ctx.Time(); !t.IsZero() {
		return t
	}
	return time.Now()
}

// strategy is the current selection strategy (a lock-free load).
func (p *Proxy) strategy() config.Strategy {
	if p.o.Settings == nil {
		return config.RoundRobin
	}
	return p.o.Settings.Load().Strategy
}

// hashKey is the consistent-hash / rendezvous key: the configured header,
// else the configured cookie, else the client IP.
func (p *Proxy) hashKey(ctx *fasthttp.RequestCtx, ex *exchange) []byte {
	if p.o.HashHeader != "" {
		if v := ctx.Request.Header.Peek(p.o.HashHeader); len(v) > 0 {
			return v
		}
	}
	if p.o.HashCookie != "" {
		if v := ctx.Request.Header.Cookie(p.o.HashCookie); len(v) > 0 {
			return v
		}
	}
	ex.key = ex.client.As16()
	return ex.key[:]
}

// pick chooses a usable node of t not yet tried by ex, or -1. The first
// pick passes the table itself as lb.NodeState; retries pass the
// exchange's excluding view. Neither allocates.
func (p *Proxy) pick(t *serviceTable, s config.Strategy, key []byte, ex *exchange) int {
	sel := lb.ForSnapshot(t.snap)
	if ex.ntried == 0 {
		return sel.Pick(s, key, t)
	}
	ex.excl = excluding{t: t, tried: ex.tried[:ex.ntried]}
	return sel.Pick(s, key, &ex.excl)
}

// proxy runs the attempts of one request and writes the response; it
// returns the status sent.
func (p *Proxy) proxy(ctx *fasthttp.RequestCtx, svc *service, ex *exchange, start time.Time) int {
	pol := ex.pol // set by serve
	p.inFlight.Add(1)
	defer p.inFlight.Add(-1)
	svc.budget.onRequest()
	if status := p.prepare(ctx, ex); status != 0 {
		return p.fail(ctx, status)
	}

	s := p.strategy()
	var key []byte
	if s == config.ConsistentHashing || s == config.RendezvousHashing {
		key = p.hashKey(ctx, ex)
	}
	idem := idempotent(ctx.Method())
	deadline := start.Add(p.o.Deadline)
	retries := 0
	var (
		pend      *fasthttp.Response // the last failed attempt's response, until retried
		pendU     *upstream
		last      outcome // the last failure
		failed    bool    // an attempt failed and has not been retried yet
		anyFailed bool    // some attempt failed
	)
	for {
		t := svc.table.Load()
		ex.table = t
		i := p.pick(t, s, key, ex)
		if i < 0 {
			break
		}
		u := t.vnode(i)
		if failed {
			// A retry: only within the budget, so that a failing service
			// does not see its load multiplied.
			if !svc.spendRetry() {
				break
			}
			finish(pendU, pend)
			pend, pendU, failed = nil, nil, false
			retries++
		}
		ex.tried[ex.ntried] = u
		ex.ntried++
		resp := fasthttp.AcquireResponse()
		resp.Header.SetNoDefaultContentType(true)
		out := p.attempt(ex, u, resp, deadline)
		if out == outOK || out == out5xx {
			// A response: passed on unless its status is one the
			// service's policy retries (502/503/504 by default).
			if !pol.retryOn.Has(resp.StatusCode()) {
				return p.respond(ctx, ex, u, resp)
			}
			out = out5xx
		}
		switch {
		case out == outRejected:
			finish(u, resp)
			if ex.ntried == len(ex.tried) {
				return p.noNode(ctx, pend, pendU, last, anyFailed, ex)
			}
			continue
		case out == outTooLarge || out == outClientBody:
			finish(u, resp)
			ctx.SetConnectionClose()
			return p.fail(ctx, ex.body.status())
		}
		if m := p.serviceMetrics(svc); m != nil {
			m.upstreamError(out)
		}
		pend, pendU, last, failed, anyFailed = resp, u, out, true, true
		// Send it again, to another node, only if that cannot do harm. A
		// request that may have reached its node may have taken effect
		// there, so only an idempotent one (RFC 9110 §9.2.2) may be
		// repeated, and only if its body can be sent again (buffered, not
		// streamed). A request that never reached its node (the connect
		// failed, the pool was full) may be repeated whatever its method,
		// a streamed one too, since not a byte of its body was read.
		retryable := !out.reached() && !ex.body.read || idem && !ex.streamed
		if !retryable || retries >= pol.retries || ex.ntried == len(ex.tried) || !time.Now().Before(deadline) {
			break
		}
	}
	return p.noNode(ctx, pend, pendU, last, anyFailed, ex)
}

// noNode answers when no further attempt is made: with the last failed
// attempt's 502/503/504 response if it is still held (the node's own answer
// is the most useful), else with the status of the last failure (502 for a
// connect failure, 504 for a timeout), else 503 Service Unavailable when no
// node was available at all.
func (p *Proxy) noNode(ctx *fasthttp.RequestCtx, pend *fasthttp.Response, u *upstream, last outcome, failed bool, ex *exchange) int {
	switch {
	case pend != nil && last == out5xx:
		return p.respond(ctx, ex, u, pend)
	case pend != nil:
		finish(u, pend)
	}
	if !failed {
		// ex.table is set: the loop above ran at least once.
		return p.failService(ctx, fasthttp.StatusServiceUnavailable, ex.table.whyUnavailable(), s2b(ex.table.svc.name))
	}
	return p.fail(ctx, last.status())
}

// prepare builds the outgoing request from the client's: headers without
// the hop-by-hop ones, X-Forwarded-*, trace context, and the body (buffered
// up to StreamThreshold, streamed beyond). It returns a non-zero status to
// refuse the request.
func (p *Proxy) prepare(ctx *fasthttp.RequestCtx, ex *exchange) int {
	req := &ex.req
	maxBody := p.o.MaxBodySize
	if ex.pol != nil {
		maxBody = ex.pol.maxBody
	}
	cl := ctx.Request.Header.ContentLength()
	if cl > maxBody {
		// RFC 9110 §15.5.14. The body is not read, so the connection
		// cannot be reused.
		ctx.SetConnectionClose()
		return fasthttp.StatusRequestEntityTooLarge
	}
	ctx.Request.Header.CopyTo(&req.Header)
	// Forward the headers the client sent and no others: without this,
	// fasthttp gives a body without Content-Type a default one
	// (application/octet-stream) that the node would take as the client's.
	req.Header.SetNoDefaultContentType(true)
	ex.scratch = stripRequestHopHeaders(&req.Header, ex.scratch)
	// The client's Expect: 100-continue was answered by the server
	// (expectContinue) before the handler ran; the node gets the body at
	// once.
	req.Header.Del("Expect")
	req.Header.SetProtocolBytes(strHTTP11)
	ex.scratch = setForwarded(ctx, ex.client, &req.Header, ex.scratch)
	ex.scratch = p.setVia(ctx, &req.Header, ex.scratch)
	p.setRequestTrace(&req.Header, &ex.trace)

	if !ctx.Request.IsBodyStream() {
		// The body was read by the server (or ServeService's caller).
		body := ctx.Request.Body()
		if len(body) > maxBody {
			ctx.SetConnectionClose()
			return fasthttp.StatusRequestEntityTooLarge
		}
		req.SetBodyRaw(body)
		return 0
	}
	if cl == 0 {
		return 0
	}
	// Buffer the body up to StreamThreshold before any node connection
	// is taken, so that a client trickling its upload holds only its own
	// connection, not one of the node's pooled ones (which 600 slow
	// clients once exhausted for everybody). Only the rest of a larger
	// body is streamed, and all of it must keep MinBodyRate.
	ex.body = requestBody{r: ctx.RequestBodyStream(), left: int64(maxBody), ctx: ctx,
		start: time.Now(), grace: p.o.BodyReadGrace, rate: int64(p.o.MinBodyRate)}
	if rt := p.readTimeout.Load(); rt > 0 {
		ex.body.limit = ctx.Time().Add(time.Duration(rt))
	}
	want := p.o.StreamThreshold
	if cl >= 0 && cl < want {
		want = cl
	}
	if cap(ex.bodyBuf) < want {
		ex.bodyBuf = make([]byte, want)
	}
	b := ex.bodyBuf[:want]
	n, err := io.ReadFull(&ex.body, b)
	switch {
	case err == nil && n == cl:
		req.SetBodyRaw(b)
		return 0
	case err == nil:
		// More to come: the rest is streamed after what was buffered.
		ex.body.prefix = b
		ex.body.read = false
		ex.streamed = true
		req.SetBodyStream(&ex.body, cl)
		return 0
	case cl < 0 && (err == io.EOF || err == io.ErrUnexpectedEOF) && ex.body.err == nil:
		// A chunked body shorter than the threshold: complete.
		req.SetBodyRaw(b[:n])
		return 0
	}
	ctx.SetConnectionClose()
	return ex.body.status()
}

var strRetryAfter = []byte("Retry-After")

// rateLimited answers a request over its service's rate limit: 429 with
// Retry-After in whole seconds (RFC 6585 §4). A body the client is still
// sending is not read, so its connection is closed.
func (p *Proxy) rateLimited(ctx *fasthttp.RequestCtx, ex *exchange, wait time.Duration) int {
	if ctx.Request.IsBodyStream() && ctx.Request.Header.ContentLength() != 0 {
		ctx.SetConnectionClose()
	}
	status := p.fail(ctx, fasthttp.StatusTooManyRequests)
	ex.scratch = fasthttp.AppendUint(ex.scratch[:0], retryAfter(wait))
	ctx.Response.Header.SetCanonical(strRetryAfter, ex.scratch)
	return status
}

// Error bodies, JSON as everywhere in Maxine.
var errorBodies = map[int][]byte{
	fasthttp.StatusBadRequest:            []byte(`{"message":"Bad Request"}`),
	fasthttp.StatusNotFound:              []byte(`{"message":"Not Found"}`),
	fasthttp.StatusRequestEntityTooLarge: []byte(`{"message":"Payload Too Large"}`),
	fasthttp.StatusBadGateway:            []byte(`{"message":"Bad Gateway"}`),
	fasthttp.StatusServiceUnavailable:    []byte(`{"message":"Service Unavailable"}`),
	fasthttp.StatusGatewayTimeout:        []byte(`{"message":"Gateway Timeout"}`),
	fasthttp.StatusRequestTimeout:        []byte(`{"message":"Request Timeout"}`),
	fasthttp.StatusTooManyRequests:       []byte(`{"message":"Too Many Requests"}`),
	fasthttp.StatusLoopDetected:          []byte(`{"message":"Loop Detected: the request has already passed through this gateway (X-Maxine-Via)"}`),
}

var strJSON = []byte("application/json")

// fail replaces the response with the gateway's own JSON error.
func (p *Proxy) fail(ctx *fasthttp.RequestCtx, status int) int {
	conn := ctx.Response.ConnectionClose()
	ctx.Response.Reset()
	if conn {
		ctx.Response.SetConnectionClose()
	}
	ctx.Response.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(strJSON)
	ctx.Response.SetBodyRaw(errorBodies[status])
	return status
}

// reject answers a malformed request 400 and closes the connection: after
// a framing error the rest of the byte stream cannot be trusted.
func (p *Proxy) reject(ctx *fasthttp.RequestCtx) {
	if p.metrics != nil {
		p.metrics.rejected.Inc()
	}
	ctx.SetConnectionClose()
	p.fail(ctx, fasthttp.StatusBadRequest)
}

// InFlight returns the number of requests being proxied.
func (p *Proxy) InFlight() int64 { return p.inFlight.Load() }

var _ lb.NodeState = (*serviceTable)(nil)
