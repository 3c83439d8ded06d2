package lb

import (
	"slices"
	"testing"

	"github.com/maxine-io/maxine/config"
)

func TestConsistentHashStability(t *testing.T) { checkStability(t, config.ConsistentHashing) }

func TestConsistentHashSameKey(t *testing.T) {
	names, parents := expand(1, 2, 3, 4)
	tab := NewTable(names, parents, nil)
	// The ring depends on names only: another table, even with the nodes in
	// another order (another process, another snapshot), agrees.
	rev := slices.Clone(names)
	slices.Reverse(rev)
	other := NewTable(rev, nil, nil)
	for _, k := range testKeys(1000) {
		first := tab.Pick(config.ConsistentHashing, k, nil)
		for range 5 {
			if got := tab.Pick(config.ConsistentHashing, k, nil); got != first {
				t.Fatalf("key %x: picked %d then %d", k, first, got)
			}
		}
		if got := rev[other.Pick(config.ConsistentHashing, k, nil)]; got != names[first] {
			t.Fatalf("key %x: %s in one table, %s in the reordered one", k, names[first], got)
		}
	}
	// nil and empty keys are keys like any other.
	if a, b := tab.Pick(config.ConsistentHashing, nil, nil), tab.Pick(config.ConsistentHashing, []byte{}, nil); a != b || a < 0 {
		t.Errorf("nil key -> %d, empty key -> %d", a, b)
	}
}

func TestRingSearchWraps(t *testing.T) {
	r := &ring{points: []uint64{10, 20, 30}, owners: []int32{0, 1, 2}}
	for _, c := range []struct {
		h    uint64
		want int
	}{{0, 0}, {10, 0}, {11, 1}, {20, 1}, {30, 2}, {31, 0}, {^uint64(0), 0}} {
		if got := r.search(c.h); got != c.want {
			t.Errorf("search(%d) = %d, want %d", c.h, got, c.want)
		}
	}
}
