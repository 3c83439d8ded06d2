package lb

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/maxine-io/maxine/config"
)

func TestRoundRobinOrder(t *testing.T) {
	names, parents := expand(2, 1) // n0-0, n1-0, n0-1
	var rr atomic.Uint64
	tab := NewTable(names, parents, &rr)
	for i, want := range []int{0, 1, 2, 0, 1} {
		if got := tab.Pick(config.RoundRobin, nil, nil); got != want {
			t.Fatalf("pick %d = %d, want %d", i, got, want)
		}
	}

	// A new table for the same service continues the rotation.
	next := NewTable(names[:2], parents[:2], &rr)
	if got := next.Pick(config.RoundRobin, nil, nil); got != 1 { // counter 5 % 2
		t.Errorf("after a membership change: %d, want 1", got)
	}

	// An unusable node's turn is skipped, not handed to its neighbour: the
	// rotation continues over the usable nodes alone.
	st := newFakeState(len(names))
	st.usable[1] = false
	rr.Store(0)
	for i, want := range []int{0, 2, 0, 2, 0, 2} {
		if got := tab.Pick(config.RoundRobin, nil, st); got != want {
			t.Fatalf("pick %d with node 1 unusable = %d, want %d", i, got, want)
		}
	}
}

// TestRoundRobinSkipIsExact checks that, with nodes down, every usable
// virtual node gets exactly one turn per cycle of the usable ones: a down
// node's share is spread over all the others in proportion to their
// weights, never handed whole to the node after it. It covers a single
// down node (the a,b,c,d case that once gave c double load), a down parent
// of weight 2 in a weighted table, and a run of down nodes longer than the
// number of fresh counter values a pick tries before walking.
func TestRoundRobinSkipIsExact(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		down    func(parent int) bool
	}{
		{"b of a,b,c,d", []int{1, 1, 1, 1}, func(p int) bool { return p == 1 }},
		{"parent of weight 2 of 1,2,3,4", []int{1, 2, 3, 4}, func(p int) bool { return p == 1 }},
		{"two parents of 3,1,4,1,5,9", []int{3, 1, 4, 1, 5, 9}, func(p int) bool { return p == 2 || p == 4 }},
		{"8 consecutive of 10", []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, func(p int) bool { return p < 8 }},
		{"run of 7 in the middle of 12", []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, func(p int) bool { return p >= 3 && p < 10 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			names, parents := expand(tc.weights...)
			st := newFakeState(len(names))
			usable := 0
			for i := range names {
				st.usable[i] = !tc.down(parents[i])
				if st.usable[i] {
					usable++
				}
			}
			tab := NewTable(names, parents, nil)
			const cycles = 1000
			counts := make([]int, len(names))
			for range cycles * usable {
				v := tab.Pick(config.RoundRobin, nil, st)
				if v < 0 || !st.usable[v] {
					t.Fatalf("Pick = %d, not a usable node", v)
				}
				counts[v]++
			}
			for i, c := range counts {
				want := 0
				if st.usable[i] {
					want = cycles
				}
				if c != want {
					t.Fatalf("%s: %d picks, want %d (all: %v)", names[i], c, want, counts)
				}
			}
		})
	}
}

// TestRoundRobinSkipConcurrent checks the same under concurrent picks: each
// counter value is taken by one pick only, so however the goroutines
// interleave, no usable node is more than a cycle ahead of another.
func TestRoundRobinSkipConcurrent(t *testing.T) {
	names, parents := expand(1, 1, 1, 1)
	st := newFakeState(len(names))
	st.usable[1] = false
	tab := NewTable(names, parents, nil)
	const goroutines, picks = 4, 3000
	var counts [4]atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range picks {
				v := tab.Pick(config.RoundRobin, nil, st)
				if v < 0 || !st.usable[v] {
					t.Errorf("Pick = %d, not a usable node", v)
					return
				}
				counts[v].Add(1)
			}
		})
	}
	wg.Wait()
	want := int64(goroutines * picks / 3)
	for i := range counts {
		c := counts[i].Load()
		if i == 1 {
			if c != 0 {
				t.Errorf("down node picked %d times", c)
			}
			continue
		}
		if c < want-1 || c > want+1 {
			t.Errorf("node %d: %d picks, want %d ± 1", i, c, want)
		}
	}
}
