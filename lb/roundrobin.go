package lb

// rrTries bounds the counter values a round-robin pick takes while they land
// on unusable nodes, before it walks to the next usable node instead.
const rrTries = 4

// pickRoundRobin is weighted round robin: the registry interleaves a node's
// virtual nodes (a-0, b-0, a-1, …), so stepping one shared counter through
// the table gives each parent weight-many turns per cycle, spread out rather
// than in bursts.
//
// A turn that lands on an unusable node is skipped, not handed to the next
// node: the pick takes a fresh counter value and tries again. Each counter
// value is taken by one pick only, so the down node's turns drop out of the
// rotation and every usable node keeps exactly one turn per cycle of the
// usable ones; the down node's share is spread over all of them by weight.
// (Giving the turn to the next usable node, as this once did, sends that
// neighbour double load, which is how cascades start.) After rrTries misses
// the pick walks to the next usable node and advances the counter past the
// walked positions, so a long run of down nodes costs two atomic adds and
// O(Len()) plain checks, and stays exact when picks do not overlap.
//
// The counter belongs to the service, not the snapshot: a membership change
// continues the rotation instead of sending the next request to index 0 of
// every new table.
func (t *Table) pickRoundRobin(st NodeState) int {
	n := uint64(len(t.names))
	i := (t.rr.Add(1) - 1) % n
	if st == nil {
		return int(i)
	}
	for range rrTries - 1 {
		if st.Usable(int(i)) {
			return int(i)
		}
		i = (t.rr.Add(1) - 1) % n
	}
	for d := range n {
		if st.Usable(int(i)) {
			if d > 0 {
				t.rr.Add(d)
			}
			return int(i)
		}
		if i++; i == n {
			i = 0
		}
	}
	return -1
}
