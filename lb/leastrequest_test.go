package lb

import (
	"testing"

	"github.com/maxine-io/maxine/config"
)

func TestLeastRequestPrefersIdle(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		// maxLoaded is the largest share the loaded parent may get: power of
		// two choices loses only when both samples are loaded nodes.
		maxLoaded float64
	}{
		{"two equal nodes", []int{1, 1}, 0.30},
		{"loaded node weight 3 of 4", []int{3, 1}, 0.60}, // sampled 3/4, twice: ≤ 9/16 + slack
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			names, parents := expand(tc.weights...)
			tab := NewTable(names, parents, nil)
			st := newFakeState(len(names))
			for i := range names {
				if parents[i] == 0 {
					st.inFlight[i] = 100
				}
			}
			const picks = 10_000
			loaded := 0
			for range picks {
				v := tab.Pick(config.LeastRequest, nil, st)
				if v < 0 {
					t.Fatalf("Pick = %d", v)
				}
				if parents[v] == 0 {
					loaded++
				}
			}
			if share := float64(loaded) / picks; share > tc.maxLoaded {
				t.Errorf("loaded parent got %.1f%% of picks, want ≤ %.0f%%", 100*share, 100*tc.maxLoaded)
			}
		})
	}
}

// parentLoad is a NodeState whose in-flight counts are per parent, as the
// gateway's are (every virtual node of a parent reports the parent's count).
type parentLoad struct {
	parents  []int
	inFlight []int64 // by parent
}

func (s *parentLoad) Usable(int) bool      { return true }
func (s *parentLoad) InFlight(i int) int64 { return s.inFlight[s.parents[i]] }

// TestLeastRequestHonoursWeightsUnderLoad simulates a loaded service in a
// fixed sequence: each pick starts a request on the chosen parent, and a
// request is released after a fixed number of later picks (steady: every
// request is in flight for the same "time"), or all at once when a batch
// fills (bursts). Every node is equally fast, so a parent's share must stay
// its weight's share: least request compares in-flight per unit of weight.
// Comparing raw counts gave a weight-1 node of 9:1 about twice its 10 %.
func TestLeastRequestHonoursWeightsUnderLoad(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		hold    int  // requests in flight at once
		burst   bool // release all held requests together
	}{
		{"9:1 steady", []int{9, 1}, 50, false},
		{"9:1 steady, deep", []int{9, 1}, 500, false},
		{"9:1 bursts", []int{9, 1}, 100, true},
		{"1:2:3:4 steady", []int{1, 2, 3, 4}, 100, false},
		{"10:1:1 bursts", []int{10, 1, 1}, 200, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			names, parents := expand(tc.weights...)
			tab := NewTable(names, parents, nil)
			st := &parentLoad{parents: parents, inFlight: make([]int64, len(tc.weights))}
			held := make([]int, 0, tc.hold) // parents of the requests in flight, oldest first
			const warmup, picks = 10_000, 100_000
			counts := make([]int, len(tc.weights))
			for n := range warmup + picks {
				v := tab.Pick(config.LeastRequest, nil, st)
				if v < 0 {
					t.Fatalf("Pick = %d", v)
				}
				p := parents[v]
				if n >= warmup {
					counts[p]++
				}
				st.inFlight[p]++
				held = append(held, p)
				if len(held) < tc.hold {
					continue
				}
				release := 1
				if tc.burst {
					release = len(held)
				}
				for _, q := range held[:release] {
					st.inFlight[q]--
				}
				held = append(held[:0], held[release:]...)
			}
			total := 0
			for _, w := range tc.weights {
				total += w
			}
			for p, w := range tc.weights {
				got := float64(counts[p]) / picks
				want := float64(w) / float64(total)
				t.Logf("parent %d (weight %d): share %.4f, ideal %.4f", p, w, got, want)
				if got < want-0.02 || got > want+0.02 {
					t.Errorf("parent %d (weight %d): share %.4f, want %.4f ± 0.02", p, w, got, want)
				}
			}
		})
	}
}
