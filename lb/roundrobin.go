package lb

// pickRoundRobin is weighted round robin: the registry interleaves a node's
// virtual nodes (a-0, b-0, a-1, …), so stepping one shared counter through
// the table gives each parent weight-many turns per cycle, spread out rather
// than in bursts. Unusable nodes are skipped, trying at most Len() positions,
// so a down node's turn goes to the next usable one.
//
// The counter belongs to the service, not the snapshot: a membership change
// continues the rotation instead of sending the next request to index 0 of
// every new table.
func (t *Table) pickRoundRobin(st NodeState) int {
	n := uint64(len(t.names))
	c := t.rr.Add(1) - 1
	if st == nil {
		return int(c % n)
	}
	i := c % n
	for range n {
		if st.Usable(int(i)) {
			return int(i)
		}
		if i++; i == n {
			i = 0
		}
	}
	return -1
}
