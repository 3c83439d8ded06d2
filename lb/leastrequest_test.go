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
