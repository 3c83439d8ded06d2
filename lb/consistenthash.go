package lb

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// PointsPerNode is the number of points each virtual node has on the
// consistent-hash ring (ketama uses 160). More points spread keys more
// evenly (the share of a node varies by about 1/sqrt(points)) at 12 bytes
// of ring per point.
const PointsPerNode = 160

// ring is a consistent-hash ring: sorted point hashes and, at the same
// index, the virtual node that owns the point. The two are kept apart so the
// binary search touches only the hashes.
type ring struct {
	points []uint64
	owners []int32
}

// ringFor returns t's ring, building it on first use. The ring is lazy
// because it is by far the largest part of a table (about 2 KB per virtual
// node) and only consistent hashing needs it: a registry of 100,000 nodes
// pays for it only in services that are actually picked by CH.
func (t *Table) ringFor() *ring {
	if r := t.ring.Load(); r != nil {
		return r
	}
	// The first CH pick on a large table would otherwise have every
	// concurrent request build its own copy of a multi-megabyte ring.
	t.ringMu.Lock()
	defer t.ringMu.Unlock()
	if r := t.ring.Load(); r != nil {
		return r
	}
	r := buildRing(t.names)
	t.ring.Store(r)
	return r
}

// buildRing places PointsPerNode points per virtual node at
// hash("<name>#<k>"). A point depends only on its node's name, never on the
// node's index, so adding or removing a node leaves every other point where
// it was: only the keys that land on the changed node's arcs move.
func buildRing(names []string) *ring {
	type point struct {
		h     uint64
		owner int32
	}
	pts := make([]point, 0, len(names)*PointsPerNode)
	var buf []byte
	for i, name := range names {
		for k := range PointsPerNode {
			buf = append(buf[:0], name...)
			buf = append(buf, '#')
			buf = strconv.AppendInt(buf, int64(k), 10)
			pts = append(pts, point{xxhash.Sum64(buf), int32(i)})
		}
	}
	// Ties between 64-bit hashes are practically impossible; ordering them
	// by name still keeps the ring independent of node order.
	slices.SortFunc(pts, func(a, b point) int {
		if c := cmp.Compare(a.h, b.h); c != 0 {
			return c
		}
		return cmp.Compare(names[a.owner], names[b.owner])
	})
	r := &ring{points: make([]uint64, len(pts)), owners: make([]int32, len(pts))}
	for i, p := range pts {
		r.points[i] = p.h
		r.owners[i] = p.owner
	}
	return r
}

// search returns the index of the first point at or after h, wrapping to 0
// past the last point.
func (r *ring) search(h uint64) int {
	lo, hi := 0, len(r.points)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.points[m] < h {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(r.points) {
		return 0
	}
	return lo
}

// pickConsistent hashes key onto the ring and takes the owner of the next
// point clockwise; when that node is unusable it keeps walking clockwise, so
// a down node's keys spread over its ring neighbours and come back to it
// when it recovers, while other keys never move.
func (t *Table) pickConsistent(key []byte, st NodeState) int {
	r := t.ringFor()
	i := r.search(xxhash.Sum64(key))
	if st == nil {
		return int(r.owners[i])
	}
	n := len(r.points)
	last := int32(-1)
	checked := 0
	for range n {
		o := r.owners[i]
		if o != last { // consecutive points of one owner need one check
			if st.Usable(int(o)) {
				return int(o)
			}
			last = o
			// Walking a ring whose nodes are all down would visit every
			// point; once the walk is longer than the table, look once.
			if checked++; checked == len(t.names) && !t.anyUsable(st) {
				return -1
			}
		}
		if i++; i == n {
			i = 0
		}
	}
	return -1
}
