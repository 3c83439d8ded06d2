package lb

import (
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

	// An unusable node's turn goes to the next usable one.
	st := newFakeState(len(names))
	st.usable[1] = false
	rr.Store(0)
	for i, want := range []int{0, 2, 2, 0, 2, 2} {
		if got := tab.Pick(config.RoundRobin, nil, st); got != want {
			t.Fatalf("pick %d with node 1 unusable = %d, want %d", i, got, want)
		}
	}
}
