// Package lb chooses the node that serves a request. A Table is built once
// per registry.Snapshot (and cached on it) and offers four strategies over
// the snapshot's virtual nodes: weighted round robin, a consistent-hash
// ring, rendezvous hashing and least-request by power of two choices.
//
// Weights are not passed in: the registry has already expanded a node of
// weight w into w virtual nodes, so every strategy honours weights by
// treating virtual nodes as equals. The one exception is least request,
// whose in-flight counts are per parent: it divides them by the parent's
// weight, which the table counts from the parents it is given.
//
// Pick is the data-plane hot path: it allocates nothing and takes no lock
// (except once per table, when the first consistent-hash pick builds the
// ring under a lock that belongs to that table alone).
package lb

import (
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"

	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/registry"
)

// Table is the selection table for one registry.Snapshot: the virtual-node
// names and parents, the per-node hashes rendezvous hashing needs, the
// service's shared round-robin counter and, built on first use, the
// consistent-hash ring.
//
// A Table is immutable once built and safe for concurrent use. It must not
// be copied (it holds atomics and a mutex), and the slices it was built from
// must not be modified afterwards; build a new Table for a new membership.
type Table struct {
	names   []string
	parents []int
	hashes  []uint64 // xxhash of names[i], the node's rendezvous identity
	weights []int32  // virtual nodes of parents[i]: its parent's weight
	rr      *atomic.Uint64

	ring   atomic.Pointer[ring] // nil until the first consistent-hash pick
	ringMu sync.Mutex           // serializes the one ring build
}

// ForSnapshot returns snap's table, built on first use and cached on the
// snapshot, so every request against one snapshot shares one Table and
// a table is built at most (about) once per membership change. It returns
// nil for a nil snapshot; a nil *Table picks -1.
//
// The result belongs to snap: it must not be used with another snapshot's
// Nodes, whose indices differ.
func ForSnapshot(snap *registry.Snapshot) *Table {
	if snap == nil {
		return nil
	}
	// build is a plain function, not a closure, so this call does not
	// allocate once the table is cached.
	return snap.Derived(buildForSnapshot).(*Table)
}

func buildForSnapshot(snap *registry.Snapshot) any {
	names := make([]string, len(snap.Nodes))
	parents := make([]int, len(snap.Nodes))
	index := make(map[string]int)
	for i, n := range snap.Nodes {
		names[i] = n.Name
		p, ok := index[n.Parent]
		if !ok {
			p = len(index)
			index[n.Parent] = p
		}
		parents[i] = p
	}
	return NewTable(names, parents, snap.RR)
}

// NewTable builds a table directly (tests, the gateway). names are the
// virtual node names (registry.Node.Name) in snapshot order; parents[i] is
// the index of the parent node of virtual node i (virtual nodes of one parent
// share an index, parents are numbered 0..P-1); a nil parents makes every
// virtual node its own parent. rr is the service's round-robin counter,
// shared across its snapshots so a membership change does not restart the
// rotation; nil gives the table a counter of its own.
//
// The table keeps names and parents: the caller must not modify them
// afterwards. NewTable panics if parents is non-nil and of another length
// than names.
func NewTable(names []string, parents []int, rr *atomic.Uint64) *Table {
	if parents == nil {
		parents = make([]int, len(names))
		for i := range parents {
			parents[i] = i
		}
	}
	if len(parents) != len(names) {
		panic("lb.NewTable: len(parents) != len(names)")
	}
	if rr == nil {
		rr = new(atomic.Uint64)
	}
	hashes := make([]uint64, len(names))
	for i, n := range names {
		hashes[i] = xxhash.Sum64String(n)
	}
	perParent := make(map[int]int32)
	for _, p := range parents {
		perParent[p]++
	}
	weights := make([]int32, len(names))
	for i, p := range parents {
		weights[i] = perParent[p]
	}
	return &Table{names: names, parents: parents, hashes: hashes, weights: weights, rr: rr}
}

// NodeState is optional per-call information from the caller (the gateway):
// which virtual nodes may be chosen (breaker closed, healthy) and the
// in-flight requests of each node's parent. Indices are virtual-node indices
// into the snapshot's Nodes (the Table's indices). A nil NodeState means all
// nodes are usable and idle.
//
// Implementations are called on the hot path, possibly from many goroutines
// at once: they must be safe for concurrent use, must not allocate or block,
// and must not call back into the Table.
type NodeState interface {
	// Usable reports whether virtual node i may be chosen.
	Usable(i int) bool
	// InFlight is the number of requests outstanding on the parent of
	// virtual node i.
	InFlight(i int) int64
}

// Pick returns the index of the chosen virtual node, or -1 when the table is
// empty (or nil) or no node is usable. key is the hashing key for
// ConsistentHashing and RendezvousHashing (the client IP or the configured
// header or cookie value); it may be nil or empty, which hashes like any
// other key. Other strategies ignore it. An unknown strategy is treated as
// RoundRobin.
//
// Pick allocates nothing and takes no lock; key is only read, and not kept.
func (t *Table) Pick(s config.Strategy, key []byte, st NodeState) int {
	if t == nil || len(t.names) == 0 {
		return -1
	}
	switch s {
	case config.ConsistentHashing:
		return t.pickConsistent(key, st)
	case config.RendezvousHashing:
		return t.pickRendezvous(key, st)
	case config.LeastRequest:
		return t.pickLeastRequest(st)
	default:
		return t.pickRoundRobin(st)
	}
}

// Len returns the number of virtual nodes (0 for a nil table).
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.names)
}

// Parent returns the parent index of virtual node i, so callers can keep
// per-parent state (in-flight counts, breakers) for all of a node's virtual
// nodes. It panics if i is out of range, like a slice index.
func (t *Table) Parent(i int) int { return t.parents[i] }

// Name returns the name of virtual node i (registry.Node.Name). It panics if
// i is out of range, like a slice index.
func (t *Table) Name(i int) string { return t.names[i] }

// anyUsable reports whether some node is usable; the slow path that lets
// strategies return -1 without walking every possibility.
func (t *Table) anyUsable(st NodeState) bool {
	for i := range t.names {
		if st.Usable(i) {
			return true
		}
	}
	return false
}
