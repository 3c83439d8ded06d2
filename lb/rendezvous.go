package lb

import "github.com/cespare/xxhash/v2"

// pickRendezvous is rendezvous (highest random weight) hashing: every usable
// virtual node scores mix(hash(key), hash(name)) and the highest score wins.
// Removing a node moves only the keys it won; adding one moves only the keys
// it now wins. A parent of weight w has w virtual nodes and so w chances to
// win, which is how weights are honoured. It costs O(Len()) per pick and no
// memory beyond one hash per node.
func (t *Table) pickRendezvous(key []byte, st NodeState) int {
	kh := xxhash.Sum64(key)
	best, bestScore := -1, uint64(0)
	for i, nh := range t.hashes {
		s := mix64(kh ^ nh)
		if (best < 0 || s > bestScore) && (st == nil || st.Usable(i)) {
			best, bestScore = i, s
		}
	}
	return best
}

// mix64 is the MurmurHash3 64-bit finalizer: a bijection whose every output
// bit depends on every input bit, so scores for one key and different nodes
// are independent-looking even though they share kh.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
