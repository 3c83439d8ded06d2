package lb

import "math/rand/v2"

// sampleTries bounds the random draws spent looking for a usable node before
// falling back to a scan, so a mostly-down service costs O(Len()) at worst.
const sampleTries = 4

// pickLeastRequest is least outstanding requests by power of two choices:
// sample two distinct random usable virtual nodes and take the one whose
// parent has fewer requests in flight (the first sample on a tie). Sampling
// virtual nodes makes the samples weight-proportional. Two choices avoid the
// herd that "always the global minimum" causes when many gateways or
// goroutines see the same counts, at O(1) per pick. With a nil NodeState
// every tie goes to the first, uniform sample: weighted random.
//
// Randomness is math/rand/v2's top-level source: no allocation, no lock.
func (t *Table) pickLeastRequest(st NodeState) int {
	n := len(t.names)
	a := t.sampleUsable(st, -1)
	if a < 0 || n == 1 || st == nil {
		return a
	}
	b := t.sampleUsable(st, a)
	if b < 0 {
		return a
	}
	if st.InFlight(b) < st.InFlight(a) {
		return b
	}
	return a
}

// sampleUsable returns a uniformly random usable virtual node other than
// not, or, after sampleTries misses, the first usable one after a random
// start; -1 when there is none.
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
	i := rand.IntN(n)
	for range n {
		if i != not && (st == nil || st.Usable(i)) {
			return i
		}
		if i++; i == n {
			i = 0
		}
	}
	return -1
}
