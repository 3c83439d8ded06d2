// Package registry holds Maxine's services and nodes: registration and
// validation, weights expanded into virtual nodes, heartbeat TTL expiry from
// one heap for the whole registry, and an immutable per-service Snapshot
// published with atomic.Pointer so that readers (discovery, the gateway)
// never take a lock that writers hold. Every structural change is also
// published as an ordered Event to subscribers (persistence, gateway, sync).
package registry

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ExpiryGrace is added to a node's timeOut before it expires, so a heartbeat
// sent exactly every timeOut seconds never races its own expiry.
const ExpiryGrace = 500 * time.Millisecond

// ErrFull is returned when a registration would exceed Options.MaxNodes.
var ErrFull = errors.New("registry is full: the maximum number of nodes is reached")

// ErrTooManyServices is returned when a registration of a new service
// would exceed Options.MaxServices.
var ErrTooManyServices = errors.New("registry is full: the maximum number of services is reached")

// Default limits. With at most MaxMetadataBytes of metadata and the field
// limits of Registration, one node pins at most about 15 KB (names, host,
// paths, metadata, 10 virtual nodes), so a registry full at the defaults
// holds a few GB at the very worst and about 100 MB with typical
// registrations. Raise them deliberately (MAXINE_MAX_NODES,
// MAXINE_MAX_SERVICES), with registration closed to strangers.
const (
	DefaultMaxNodes    = 200_000
	DefaultMaxServices = 20_000
)

// Options configure a Registry. The zero value is usable.
type Options struct {
	// MaxNodes bounds the number of registered (parent) nodes; 0 means
	// DefaultMaxNodes.
	MaxNodes int
	// MaxServices bounds the number of services; 0 means
	// DefaultMaxServices.
	MaxServices int
	// Now replaces time.Now in tests.
	Now func() time.Time
}

// Registry is the set of services. It is safe for concurrent use: writers
// serialize on one mutex, readers (Snapshot, Lookup) are lock-free.
// A Registry must not be copied.
type Registry struct {
	opts Options
	now  func() time.Time

	mu       sync.Mutex   // serializes writers; never taken by Snapshot readers
	services sync.Map     // string -> *service; Load is lock-free
	expiry   expiryHeap   // guarded by mu
	nodes    atomic.Int64 // parent nodes; written under mu, read lock-free by Len
	nsvc     atomic.Int64 // services; written under mu, read lock-free by Services
	seq      uint64       // event sequence and snapshot version, guarded by mu
	subs     []*Subscription

	generation atomic.Uint64 // bumps on every mutation, heartbeats included
}

// service is the mutable record behind one service's snapshots; guarded by
// Registry.mu except for snap and rr, which are atomics.
type service struct {
	name    string
	parents map[string]*parent
	order   []*parent // parents sorted by node name, kept in step with parents
	snap    atomic.Pointer[Snapshot]
	rr      atomic.Uint64 // round-robin counter, kept across snapshots
}

// parent is one registered node (weight w → w virtual nodes).
type parent struct {
	reg          Registration
	address      string
	deadline     int64 // unix nanos; guarded by Registry.mu
	heapIdx      int   // index in Registry.expiry; guarded by Registry.mu
	registeredAt atomic.Int64
	expiresAt    atomic.Int64 // ms; deadline's copy for lock-free Export
	vnodes       []*Node
	attachment   atomic.Value
}

// Node is one virtual node. Nodes are immutable once published, except for
// the registration time, which heartbeats refresh (RegisteredAt).
type Node struct {
	Name            string // "<parent>-<i>"
	Parent          string
	Service         string
	Address         string
	TimeOut         int
	Weight          int
	HealthCheckPath string
	Metadata        map[string]string // shared, must not be modified
	p               *parent
}

// RegisteredAt is the node's last registration (heartbeat) time in ms since
// the Unix epoch.
func (n *Node) RegisteredAt() int64 { return n.p.registeredAt.Load() }

// Attachment returns the value stored with Attach on this registration
// (shared by its virtual nodes), or nil. A registration that changes (a new
// address, weight or path) is a new record with no attachment, so a
// consumer finds its per-node state in O(1) while the node is unchanged and
// rebuilds it when it changes.
func (n *Node) Attachment() any { return n.p.attachment.Load() }

// Attach stores v on this registration. It is for the gateway's per-node
// state; only one consumer may use it, and v must always have the same
// concrete type.
func (n *Node) Attach(v any) { n.p.attachment.Store(v) }

// Snapshot is the immutable state of one service at one Version. Readers
// may keep and use it freely; it must not be modified.
type Snapshot struct {
	Service string
	// Version identifies the snapshot for the life of the process: it is
	// the Seq of the Event that produced it, so it increases with every
	// change and is never reused, not even by a service that was emptied
	// (its record deleted) and registered again. Consumers may take an
	// equal Version to mean the same snapshot.
	Version uint64
	// Nodes are the virtual nodes, interleaved by index (a-0, b-0, a-1, …)
	// so round robin spreads a heavy node's turns.
	Nodes []*Node
	// Parents holds each registered node's first virtual node (<node>-0),
	// sorted by node name: one entry per registration.
	Parents []*Node
	// RR is the service's round-robin counter, shared by all its snapshots.
	RR *atomic.Uint64

	derived   atomic.Pointer[derivedValue]
	derivedMu sync.Mutex // serializes the one build of derived
}

type derivedValue struct{ v any }

// Derived returns a value computed once per snapshot by build (for example
// lb's selection tables) and cached on it. build should be a plain function
// (not a closure) so that the call does not allocate. It runs once per
// snapshot: concurrent first callers wait for that one build rather than
// each building their own, so a change to a large service costs one build,
// not one per request in flight. Once built, Derived is one atomic load.
func (s *Snapshot) Derived(build func(*Snapshot) any) any {
	if d := s.derived.Load(); d != nil {
		return d.v
	}
	s.derivedMu.Lock()
	defer s.derivedMu.Unlock()
	if d := s.derived.Load(); d != nil {
		return d.v
	}
	d := &derivedValue{v: build(s)}
	s.derived.Store(d)
	return d.v
}

// Parent returns the first virtual node of the registration named
// nodeName, or nil.
func (s *Snapshot) Parent(nodeName string) *Node {
	i, ok := slices.BinarySearchFunc(s.Parents, nodeName, func(n *Node, name string) int {
		return strings.Compare(n.Parent, name)
	})
	if !ok {
		return nil
	}
	return s.Parents[i]
}

// New returns an empty registry. Call Run to start expiry.
func New(opts Options) *Registry {
	if opts.MaxNodes <= 0 {
		opts.MaxNodes = DefaultMaxNodes
	}
	if opts.MaxServices <= 0 {
		opts.MaxServices = DefaultMaxServices
	}
	r := &Registry{opts: opts, now: opts.Now}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// Snapshot returns the current snapshot of service name, or nil if the service
// has no nodes. It takes no lock.
func (r *Registry) Snapshot(name string) *Snapshot {
	v, ok := r.services.Load(name)
	if !ok {
		return nil
	}
	return v.(*service).snap.Load()
}

// Range calls fn for every service's current snapshot, in no particular
// order, until fn returns false.
func (r *Registry) Range(fn func(*Snapshot) bool) {
	r.services.Range(func(_, v any) bool {
		if s := v.(*service).snap.Load(); s != nil {
			return fn(s)
		}
		return true
	})
}

// Generation changes whenever anything in the registry changes, heartbeats
// included. Persistence compares it to skip writes of unchanged state.
func (r *Registry) Generation() uint64 { return r.generation.Load() }

// Len returns the number of registered (parent) nodes. It takes no lock.
func (r *Registry) Len() int { return int(r.nodes.Load()) }

// Services returns the number of services. It takes no lock.
func (r *Registry) Services() int { return int(r.nsvc.Load()) }

// Result describes a registration once applied.
type Result struct {
	Registration
	Address      string
	RegisteredAt int64 // ms since epoch
	Kind         EventKind
}

// Changed is false for a plain heartbeat that left the service's snapshot
// as it was.
func (r Result) Changed() bool { return r.Kind != NodeHeartbeat }

// Register applies a validated registration: a new node, a changed node
// (its virtual nodes replaced atomically) or a heartbeat that only pushes
// its expiry back.
func (r *Registry) Register(reg Registration) (Result, error) {
	if err := reg.Validate(); err != nil {
		return Result{}, err
	}
	reg.normalize()
	r.mu.Lock()
	defer r.mu.Unlock()
	// The clock is read under the lock: read before it, a registration
	// that waited for the lock behind a later heartbeat of the same node
	// would move that node's deadline backwards.
	now := r.now()
	return r.applyLocked(reg, now, now.Add(time.Duration(reg.TimeOut)*time.Second+ExpiryGrace))
}

// Upsert applies a node state replicated from a shared store (another
// instance's registration or heartbeat): the registration with its own
// registration time and deadline, not this instance's clock. A state equal
// to the current one except for its times is a heartbeat.
func (r *Registry) Upsert(st NodeState) (Result, error) {
	reg := st.Registration
	if err := reg.Validate(); err != nil {
		return Result{}, err
	}
	reg.normalize()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applyLocked(reg, time.UnixMilli(st.RegisteredAt), time.UnixMilli(st.ExpiresAt))
}

func (r *Registry) applyLocked(reg Registration, at, deadline time.Time) (Result, error) {
	if _, ok := r.services.Load(reg.ServiceName); !ok && r.nsvc.Load() >= int64(r.opts.MaxServices) {
		return Result{}, ErrTooManyServices
	}
	svc := r.serviceLocked(reg.ServiceName)
	p, exists := svc.parents[reg.NodeName]
	res := Result{Registration: reg, RegisteredAt: at.UnixMilli()}
	if exists && p.reg.sameAs(&reg) {
		// A heartbeat never moves a deadline backwards (a replicated
		// state may arrive after a later local heartbeat).
		if dl := deadline.UnixNano(); dl > p.deadline {
			p.registeredAt.Store(res.RegisteredAt)
			p.expiresAt.Store(deadline.UnixMilli())
			r.expiry.update(p, dl)
		}
		r.generation.Add(1)
		res.Address = p.address
		res.Kind = NodeHeartbeat
		return res, nil
	}
	if !exists && r.nodes.Load() >= int64(r.opts.MaxNodes) {
		if len(svc.parents) == 0 {
			r.services.Delete(svc.name)
			r.nsvc.Add(-1)
		}
		return Result{}, ErrFull
	}
	np := &parent{reg: reg, address: reg.Address(), heapIdx: -1}
	np.registeredAt.Store(res.RegisteredAt)
	np.expiresAt.Store(deadline.UnixMilli())
	np.vnodes = make([]*Node, reg.Weight)
	for i := range np.vnodes {
		np.vnodes[i] = &Node{
			Name:            reg.NodeName + "-" + strconv.Itoa(i),
			Parent:          reg.NodeName,
			Service:         reg.ServiceName,
			Address:         np.address,
			TimeOut:         reg.TimeOut,
			Weight:          reg.Weight,
			HealthCheckPath: reg.HealthCheckPath,
			Metadata:        reg.Metadata,
			p:               np,
		}
	}
	res.Kind = NodeRegistered
	if exists {
		r.expiry.remove(p)
		res.Kind = NodeUpdated
		svc.order[svc.index(reg.NodeName)] = np
	} else {
		r.nodes.Add(1)
		i := svc.index(reg.NodeName)
		svc.order = slices.Insert(svc.order, i, np)
	}
	svc.parents[reg.NodeName] = np
	r.expiry.push(np, deadline.UnixNano())
	r.publishLocked(svc, res.Kind, reg.NodeName, at)
	res.Address = np.address
	return res, nil
}

// Deregister removes a node at once. It reports whether the node existed.
func (r *Registry) Deregister(serviceName, nodeName string) bool {
	return r.Remove(serviceName, nodeName, "", NodeDeregistered)
}

// DeregisterAddress removes a node only while it is registered at address:
// a health check that found the node at address dead must not remove the
// registration the node made meanwhile at a new address. It reports
// whether the node was removed.
func (r *Registry) DeregisterAddress(serviceName, nodeName, address string) bool {
	if address == "" {
		return false
	}
	return r.Remove(serviceName, nodeName, address, NodeDeregistered)
}

// Remove removes a node, publishing an event of kind (NodeDeregistered or
// NodeExpired: a removal replicated from a shared store keeps the reason it
// had there). With a non-empty address the node is removed only while it
// is registered at that address. It reports whether the node was removed.
func (r *Registry) Remove(serviceName, nodeName, address string, kind EventKind) bool {
	if kind != NodeExpired {
		kind = NodeDeregistered
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.services.Load(serviceName)
	if !ok {
		return false
	}
	svc := v.(*service)
	p, ok := svc.parents[nodeName]
	if !ok || address != "" && p.address != address {
		return false
	}
	r.expiry.remove(p)
	r.removeLocked(svc, nodeName, kind, r.now())
	return true
}

// ExpireDue removes every node whose deadline has passed at now and returns
// how many were removed. Run calls it periodically; in clustered modes only
// the leader does.
func (r *Registry) ExpireDue(now time.Time) int {
	n := 0
	nowNano := now.UnixNano()
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		p := r.expiry.peek()
		if p == nil || p.deadline > nowNano {
			return n
		}
		r.expiry.remove(p)
		v, _ := r.services.Load(p.reg.ServiceName)
		r.removeLocked(v.(*service), p.reg.NodeName, NodeExpired, now)
		n++
	}
}

// Run expires nodes every interval (100 ms when interval ≤ 0) until done is
// closed.
func (r *Registry) Run(done <-chan struct{}, interval time.Duration) {
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			r.ExpireDue(r.now())
		}
	}
}

func (r *Registry) serviceLocked(name string) *service {
	if v, ok := r.services.Load(name); ok {
		return v.(*service)
	}
	svc := &service{name: name, parents: make(map[string]*parent)}
	r.services.Store(name, svc)
	r.nsvc.Add(1)
	return svc
}

func (r *Registry) removeLocked(svc *service, nodeName string, kind EventKind, at time.Time) {
	delete(svc.parents, nodeName)
	i := svc.index(nodeName)
	svc.order = slices.Delete(svc.order, i, i+1)
	r.nodes.Add(-1)
	r.publishLocked(svc, kind, nodeName, at)
	if len(svc.parents) == 0 {
		r.services.Delete(svc.name)
		r.nsvc.Add(-1)
	}
}

// publishLocked rebuilds svc's snapshot, gives it the next event sequence
// number as its version and tells the subscribers. Only this service's
// snapshot is rebuilt.
func (r *Registry) publishLocked(svc *service, kind EventKind, node string, at time.Time) {
	r.seq++
	snap := &Snapshot{Service: svc.name, Version: r.seq, RR: &svc.rr}
	if len(svc.order) > 0 {
		snap.Nodes = buildNodes(svc.order)
		snap.Parents = make([]*Node, len(svc.order))
		for i, p := range svc.order {
			snap.Parents[i] = p.vnodes[0]
		}
		svc.snap.Store(snap)
	} else {
		svc.snap.Store(nil)
	}
	r.generation.Add(1)
	ev := Event{Seq: r.seq, Kind: kind, Service: svc.name, Node: node, Version: r.seq, At: at}
	for _, s := range r.subs {
		s.push(ev)
	}
}

// index returns the position of nodeName in svc.order, or where it would
// be inserted.
func (svc *service) index(nodeName string) int {
	i, _ := slices.BinarySearchFunc(svc.order, nodeName, func(p *parent, name string) int {
		return strings.Compare(p.reg.NodeName, name)
	})
	return i
}

// buildNodes interleaves virtual nodes by index: every parent's -0 first
// (parents in name order), then every -1, and so on.
func buildNodes(ps []*parent) []*Node {
	total, maxW := 0, 0
	for _, p := range ps {
		total += len(p.vnodes)
		maxW = max(maxW, len(p.vnodes))
	}
	nodes := make([]*Node, 0, total)
	for i := 0; i < maxW; i++ {
		for _, p := range ps {
			if i < len(p.vnodes) {
				nodes = append(nodes, p.vnodes[i])
			}
		}
	}
	return nodes
}
