package lb

import "math/rand/v2"

// sampleTries bounds the random draws spent looking for a usable node before
// falling back to a scan, so a mostly-down service costs O(Len()) at worst.
// Random draws are cheap and unbiased; the scan costs Len() checks, so the
// draws go on until a scan is the cheaper way: 16 misses in a row happen on
// 0.002 % of picks with half the nodes down, and on 19 % with 90 % down.
const sampleTries = 16

// pickLeastRequest is least outstanding requests by power of two choices:
// sample two distinct random usable virtual nodes and take the one whose
// parent has fewer requests in flight per unit of weight (the first sample
// on a tie). Sampling virtual nodes makes the samples weight-proportional;
// dividing by the weight keeps the picks weight-proportional under load.
// (Comparing raw counts makes a weight-9 node, which rightly carries nine
// times the requests, lose nearly every comparison with a weight-1 node: the
// weight-1 node got twice its share.) Two choices avoid the herd that
// "always the global minimum" causes when many gateways or goroutines see
// the same counts, at O(1) per pick. With a nil NodeState every tie goes to
// the first, uniform sample: weighted random.
//
// Randomness is math/rand/v2's top-level source: no allocation, no lock.
func (t *Table) pickLeastRequest(st NodeState) int {
	n := len(t.names)
	a := t.sampleUsable(st, -1)
	if a < 0 || n == 1 || st == nil {
		return a
	}
	b := t.sampleUsable(st, a)
	if b < 0 || t.parents[a] == t.parents[b] {
		return a
	}
	// fa/wa < fb/wb without division. In-flight counts and weights are
	// far too small for the products to overflow.
	if st.InFlight(b)*int64(t.weights[a]) < st.InFlight(a)*int64(t.weights[b]) {
		return b
	}
	return a
}

// sampleUsable returns a uniformly random usable virtual node other than
// not; -1 when there is none. After sampleTries misses it scans the table
// and chooses among the usable nodes uniformly (reservoir sampling): taking
// the first usable node after a random start instead would give a node the
// share of every down node before it, and most of the picks to the node
// after a long run of down ones.
func (t *Table) sampleUsable(st NodeState, not int) int {
	n := len(t.names)
	if not >= 0 && n == 1 {
		return -1
	}
	for range sampleTries {
		i := rand.IntN(n)
		if i != not && (st == nil || st.Usable(i)) {
			return i
		}
	}
	chosen, seen := -1, 0
	for i := range n {
		if i != not && (st == nil || st.Usable(i)) {
			if seen++; rand.IntN(seen) == 0 {
				chosen = i
			}
		}
	}
	return chosen
}
