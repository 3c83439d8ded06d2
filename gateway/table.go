package gateway

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/maxine-io/maxine/registry"
)

// service is one routable service. It lives as long as the service has
// nodes in the registry; its table is replaced on every membership change.
// The request path reads only atomics here.
type service struct {
	name   string
	table  atomic.Pointer[serviceTable]
	budget retryBudget

	// metrics are created on the service's first request (serviceMetrics):
	// 10,000 registered services that see no gateway traffic cost no
	// series. nil when metrics are off or before the first request.
	metrics atomic.Pointer[serviceMetrics]
	mmu     sync.Mutex // serializes creating and unregistering metrics
	removed bool       // guarded by mmu: the service left the registry
	gauge   string     // name of the nodes_active gauge, "" when metrics are off

	// upstreams indexes the service's upstreams by parent node name for
	// the writer (attach, dropIfGone); guarded by Proxy.mu, never read by
	// requests.
	upstreams map[string]*upstream

	// ejectMu makes outlier ejection's count-then-eject one step for the
	// service (see observe); never taken on the request path otherwise.
	ejectMu sync.Mutex
}

// spendRetry takes one retry from the service's budget, counting it;
// false when the budget is exhausted.
func (svc *service) spendRetry() bool {
	if !svc.budget.withdraw() {
		return false
	}
	if m := svc.metrics.Load(); m != nil {
		m.retries.Inc()
	}
	return true
}

// serviceTable is the immutable routing state of one service at one
// registry snapshot. Each node's upstream is attached to its registry
// record (registry.Node.Attach) before the table is published, so the table
// is the snapshot itself: publishing a change costs a pointer check per
// node, with no per-table slices or maps to build. The selection table is
// the snapshot's own (lb.ForSnapshot), built on the first pick. A request
// loads the table once and uses it throughout, so a concurrent change never
// shows it half-done. Tables are published only by the Proxy's writer (Run,
// under Proxy.mu) and must not be modified. One Proxy per Registry: the
// attachments are the Proxy's.
type serviceTable struct {
	svc  *service
	snap *registry.Snapshot
	pol  *policy // nil: the gateway's defaults (policy.go)
}

// upstreamOf returns the upstream svc attached to registration n, or nil.
func upstreamOf(svc *service, n *registry.Node) *upstream {
	if u, _ := n.Attachment().(*upstream); u != nil && u.svc == svc {
		return u
	}
	return nil
}

// vnode returns the upstream behind virtual node i (nil only if the table
// was published without it, which the writer never does).
func (t *serviceTable) vnode(i int) *upstream { return upstreamOf(t.svc, t.snap.Nodes[i]) }

// Usable implements lb.NodeState: a virtual node may be chosen when its
// parent is not marked down by health checks, its breaker is not open and
// it is not ejected. It reads atomics only.
func (t *serviceTable) Usable(i int) bool {
	u := t.vnode(i)
	return u != nil && u.usable()
}

// InFlight implements lb.NodeState with the parent's outstanding requests.
func (t *serviceTable) InFlight(i int) int64 {
	if u := t.vnode(i); u != nil {
		return u.inFlight.Load()
	}
	return 0
}

// nodes yields the upstream of every registration in the table
// (for u := range t.nodes).
func (t *serviceTable) nodes(yield func(*upstream) bool) {
	for _, n := range t.snap.Parents {
		if u := upstreamOf(t.svc, n); u != nil && !yield(u) {
			return
		}
	}
}

// upstreams yields the upstream of every registration of every service
// in the current routes (for u := range p.upstreams): for reports, health
// rounds and scrapes, never for requests.
func (p *Proxy) upstreams(yield func(*upstream) bool) {
	for _, svc := range p.routes.Load().exact {
		t := svc.table.Load()
		if t == nil {
			continue
		}
		for u := range t.nodes {
			if !yield(u) {
				return
			}
		}
	}
}

// usableNodes counts the parents that are usable now (nodes_active metric,
// outlier ejection limit).
func (t *serviceTable) usableNodes() int {
	n := 0
	for u := range t.nodes {
		if u.usable() {
			n++
		}
	}
	return n
}

// parent returns the upstream of the named parent node, or nil.
func (t *serviceTable) parent(name string) *upstream {
	if n := t.snap.Parent(name); n != nil {
		return upstreamOf(t.svc, n)
	}
	return nil
}

// excluding is the lb.NodeState of a retry: the table's view minus the
// parents already tried, so a retry goes to a different node.
type excluding struct {
	t     *serviceTable
	tried []*upstream
}

func (e *excluding) Usable(i int) bool {
	u := e.t.vnode(i)
	if u == nil {
		return false
	}
	for _, x := range e.tried {
		if x == u {
			return false
		}
	}
	return u.usable()
}

func (e *excluding) InFlight(i int) int64 { return e.t.InFlight(i) }

// upstream is one registered (parent) node as the data plane sees it: its
// connection pool, breaker and health. It is shared by all of the node's
// virtual nodes and kept across table rebuilds while the node's address
// stays the same, so pools, breaker counts and health verdicts survive
// unrelated membership changes. Hot fields are atomics; health-check
// bookkeeping is under hmu. An upstream must not be copied.
type upstream struct {
	service string
	name    string // parent node name
	address string // http(s)://host[:port][/base]

	// uriPrefix is "scheme://host:port/base": a request URI is this plus
	// the forwarded path and query.
	uriPrefix []byte
	hostport  string
	isTLS     bool
	svc       *service
	p         *Proxy

	// conn is the node's connection pool and breaker, created on first
	// use: a registry of 100,000 nodes costs a pool (about 1.3 KiB) only
	// for the nodes that see traffic.
	conn atomic.Pointer[nodeConn]

	// Pipelining (pipeline.go): the connections the registration's
	// maxine.pipeline asks for (0: off), the pipelined client, created on
	// first use, and whether the node answered lately (until it does,
	// requests take the pool, which fails fast on a dead node).
	pipeConns atomic.Int32
	pipe      atomic.Pointer[fasthttp.PipelineClient]
	pipeOK    atomic.Bool

	inFlight     atomic.Int64
	down         atomic.Bool  // marked down by active health checks
	openUntil    atomic.Int64 // unix nanos until which the open breaker refuses; 0 = not open
	ejectedUntil atomic.Int64 // unix nanos until which the node is ejected; 0 = not ejected
	consecFail   atomic.Int64 // consecutive failed attempts (passive outlier detection)
	retired      atomic.Bool  // no longer in any table

	// policy is the registration's parsed policy keys (policy.go), nil
	// when it sets none; written and read only by the writer (Proxy.mu).
	policy *registry.Policy

	hmu         sync.Mutex // guards the health-check fields below
	healthPath  string
	checkFails  int
	checkPasses int
	lastCheck   time.Time
	lastError   string
}

// nodeConn is what an upstream needs to send requests.
type nodeConn struct {
	client  *fasthttp.HostClient
	breaker *breaker // nil when breakers are disabled
}

// connection returns the node's pool and breaker, creating them on first
// use. Concurrent first uses may each build one; one wins, the others are
// dropped before they open a connection.
func (u *upstream) connection() *nodeConn {
	if c := u.conn.Load(); c != nil {
		return c
	}
	c := &nodeConn{client: u.p.newHostClient(u.hostport, u.isTLS)}
	if !u.p.o.Breaker.Disabled {
		c.breaker = u.p.newBreaker(u.svc, u)
	}
	if u.conn.CompareAndSwap(nil, c) {
		return c
	}
	return u.conn.Load()
}

// breakerState is the breaker's state for reports: "closed" before the
// node was first used, "disabled" without breakers.
func (u *upstream) breakerState() (state string, consecutiveFailures int) {
	if u.p.o.Breaker.Disabled {
		return "disabled", 0
	}
	c := u.conn.Load()
	if c == nil {
		return "closed", 0
	}
	return c.breaker.state(), c.breaker.consecutiveFailures()
}

// usable reports whether selection may choose the node. time.Now is read
// only when the node is (or was) open or ejected, so the common case is
// three atomic loads.
func (u *upstream) usable() bool {
	if u.down.Load() {
		return false
	}
	open, ej := u.openUntil.Load(), u.ejectedUntil.Load()
	if open == 0 && ej == 0 {
		return true
	}
	now := time.Now().UnixNano()
	return now >= open && now >= ej
}

// newUpstream builds the upstream of node n; its pool comes with first use.
func (p *Proxy) newUpstream(svc *service, n *registry.Node) *upstream {
	scheme, hostport, base := splitAddress(n.Address)
	u := &upstream{
		service:    svc.name,
		name:       n.Parent,
		address:    n.Address,
		healthPath: n.HealthCheckPath,
		hostport:   hostport,
		isTLS:      scheme == "https",
		svc:        svc,
		p:          p,
	}
	u.uriPrefix = append(append(append(u.uriPrefix, scheme...), "://"...), hostport...)
	u.uriPrefix = append(u.uriPrefix, base...)
	return u
}

// splitAddress splits a registry address "http(s)://host[:port][/base]"
// into scheme, host:port (the port made explicit, as the dialer needs it)
// and base path.
func splitAddress(addr string) (scheme, hostport, base string) {
	scheme = "http"
	rest := addr
	if i := strings.Index(addr, "://"); i >= 0 {
		scheme = strings.ToLower(addr[:i])
		rest = addr[i+3:]
	}
	hostport = rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		hostport, base = rest[:i], rest[i:]
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		port := "80"
		if scheme == "https" {
			port = "443"
		}
		hostport = net.JoinHostPort(strings.Trim(hostport, "[]"), port)
	}
	return scheme, hostport, strings.TrimRight(base, "/")
}

// attach makes sure registration n carries svc's upstream. An unchanged
// node already does; a node whose registration changed but kept its
// address gets its previous upstream back, so pools, breaker counts and
// health verdicts survive weight or metadata changes; a new node or a new
// address gets a new upstream (the old one is retired). Callers hold p.mu.
func (p *Proxy) attach(svc *service, n *registry.Node) {
	if upstreamOf(svc, n) != nil {
		return
	}
	u := svc.upstreams[n.Parent]
	if u != nil && u.address == n.Address {
		u.hmu.Lock()
		u.healthPath = n.HealthCheckPath
		u.hmu.Unlock()
	} else {
		if u != nil {
			retire(u)
		}
		u = p.newUpstream(svc, n)
		if svc.upstreams == nil {
			svc.upstreams = make(map[string]*upstream)
		}
		svc.upstreams[n.Parent] = u
	}
	// Validated at registration; a record restored from elsewhere that
	// does not parse sets no policy.
	u.policy = nil
	if pol, err := registry.ParsePolicy(n.Metadata); err == nil && pol.Set != 0 {
		u.policy = &pol
	}
	pipeline := 0
	if u.policy != nil {
		pipeline = u.policy.Pipeline
	}
	u.pipeConns.Store(int32(pipeline))
	n.Attach(u)
}

// dropIfGone retires svc's upstream of node name unless snap still has the
// node. Callers hold p.mu.
func (p *Proxy) dropIfGone(svc *service, snap *registry.Snapshot, name string) {
	if snap != nil && snap.Parent(name) != nil {
		return
	}
	if u := svc.upstreams[name]; u != nil {
		retire(u)
		delete(svc.upstreams, name)
	}
}

// retire drops an upstream that left the service: its idle pooled
// connections are closed (in-flight requests finish on theirs) and the
// health checker skips it.
func retire(u *upstream) {
	u.retired.Store(true)
	if c := u.conn.Load(); c != nil {
		c.client.CloseIdleConnections()
	}
	// A pipelined client has no close: its connections end after
	// MaxIdleConnDuration without requests.
}
