package lb

import (
	"strconv"
	"testing"
)

// BenchmarkPick measures one Pick per strategy on 10 and 1,000 virtual
// nodes, without and with a NodeState (one node unusable). Every case must
// report 0 allocs/op.
func BenchmarkPick(b *testing.B) {
	keys := testKeys(256)
	for _, n := range []int{10, 1000} {
		names := make([]string, n)
		for i := range names {
			names[i] = "node" + strconv.Itoa(i) + "-0"
		}
		st := newFakeState(n)
		st.usable[n/2] = false
		for i := range st.inFlight {
			st.inFlight[i] = int64(i % 7)
		}
		for _, s := range strategies {
			for _, ns := range []struct {
				name string
				st   NodeState
			}{{"nil", nil}, {"state", st}} {
				b.Run(s.String()+"/n="+strconv.Itoa(n)+"/"+ns.name, func(b *testing.B) {
					tab := NewTable(names, nil, nil)
					tab.Pick(s, keys[0], nil) // build the CH ring before timing
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						tab.Pick(s, keys[i&255], ns.st)
						i++
					}
				})
			}
		}
	}
}
