package lb

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/registry"
)

var strategies = []config.Strategy{
	config.RoundRobin,
	config.ConsistentHashing,
	config.RendezvousHashing,
	config.LeastRequest,
}

// expand turns parent weights into virtual nodes the way the registry does:
// parent p is "n<p>", its virtual nodes "n<p>-0".."n<p>-(w-1)", interleaved
// by index (every -0 first, then every -1, …).
func expand(weights ...int) (names []string, parents []int) {
	maxW := 0
	for _, w := range weights {
		maxW = max(maxW, w)
	}
	for k := range maxW {
		for p, w := range weights {
			if k < w {
				names = append(names, "n"+strconv.Itoa(p)+"-"+strconv.Itoa(k))
				parents = append(parents, p)
			}
		}
	}
	return names, parents
}

// testKeys returns n deterministic pseudo-random keys (16 bytes each).
func testKeys(n int) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	keys := make([][]byte, n)
	for i := range keys {
		k := make([]byte, 16)
		for j := range k {
			k[j] = byte(r.Uint32())
		}
		keys[i] = k
	}
	return keys
}

// fakeState is a NodeState over plain slices; tests never write it while
// picks run.
type fakeState struct {
	usable   []bool
	inFlight []int64
}

func newFakeState(n int) *fakeState {
	s := &fakeState{usable: make([]bool, n), inFlight: make([]int64, n)}
	for i := range s.usable {
		s.usable[i] = true
	}
	return s
}

func (s *fakeState) Usable(i int) bool    { return s.usable[i] }
func (s *fakeState) InFlight(i int) int64 { return s.inFlight[i] }

func TestDistribution(t *testing.T) {
	weights := []int{1, 2, 3, 4}
	names, parents := expand(weights...)
	total := 0
	for _, w := range weights {
		total += w
	}
	const picks = 100_000
	keys := testKeys(picks)
	for _, s := range strategies {
		t.Run(s.String(), func(t *testing.T) {
			tab := NewTable(names, parents, nil)
			counts := make([]int, len(weights))
			for i := range picks {
				v := tab.Pick(s, keys[i], nil)
				if v < 0 {
					t.Fatalf("Pick = %d", v)
				}
				counts[tab.Parent(v)]++
			}
			for p, w := range weights {
				want := float64(w) / float64(total)
				got := float64(counts[p]) / picks
				t.Logf("parent %d (weight %d): share %.4f, ideal %.2f", p, w, got, want)
				if s == config.RoundRobin {
					// A whole number of cycles: round robin is exact.
					if counts[p] != picks*w/total {
						t.Errorf("parent %d (weight %d): %d picks, want exactly %d", p, w, counts[p], picks*w/total)
					}
					continue
				}
				if got < want-0.03 || got > want+0.03 {
					t.Errorf("parent %d (weight %d): share %.4f, want %.2f ± 0.03", p, w, got, want)
				}
			}
		})
	}
}

func TestUsableFiltering(t *testing.T) {
	names, parents := expand(1, 2, 3, 4)
	st := newFakeState(len(names))
	for i := range names {
		if parents[i] == 1 || i == 0 {
			st.usable[i] = false
		}
	}
	none := newFakeState(len(names))
	for i := range none.usable {
		none.usable[i] = false
	}
	one := newFakeState(len(names))
	for i := range one.usable {
		one.usable[i] = i == 7
	}
	keys := testKeys(10_000)
	for _, s := range strategies {
		t.Run(s.String(), func(t *testing.T) {
			tab := NewTable(names, parents, nil)
			for _, k := range keys {
				if v := tab.Pick(s, k, st); v < 0 || !st.usable[v] {
					t.Fatalf("Pick = %d, an unusable node", v)
				}
				if v := tab.Pick(s, k, one); v != 7 {
					t.Fatalf("Pick with one usable node = %d, want 7", v)
				}
			}
			if v := tab.Pick(s, keys[0], none); v != -1 {
				t.Errorf("Pick with no usable node = %d, want -1", v)
			}
			if v := NewTable(nil, nil, nil).Pick(s, keys[0], nil); v != -1 {
				t.Errorf("Pick on an empty table = %d, want -1", v)
			}
			var nilTable *Table
			if v := nilTable.Pick(s, keys[0], nil); v != -1 {
				t.Errorf("Pick on a nil table = %d, want -1", v)
			}
		})
	}
}

func TestPickAllocatesNothing(t *testing.T) {
	names, parents := expand(1, 2, 3, 4)
	st := newFakeState(len(names))
	st.usable[0] = false
	key := []byte("203.0.113.7")
	for _, s := range strategies {
		tab := NewTable(names, parents, nil)
		tab.Pick(s, key, nil) // builds the CH ring outside the measurement
		for _, ns := range []NodeState{nil, st} {
			if a := testing.AllocsPerRun(100, func() { tab.Pick(s, key, ns) }); a != 0 {
				t.Errorf("%v (state %v): %v allocs per Pick, want 0", s, ns != nil, a)
			}
		}
	}
}

// TestConcurrentPicks is for the race detector: many goroutines pick from
// one fresh table, so the lazy ring build races with ring reads.
func TestConcurrentPicks(t *testing.T) {
	names, parents := expand(3, 1, 4, 1, 5, 9, 2, 6)
	tab := NewTable(names, parents, nil)
	st := newFakeState(len(names))
	st.usable[2] = false
	keys := testKeys(1000)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i, k := range keys {
				s := strategies[(g+i)%len(strategies)]
				var ns NodeState
				if i%2 == 0 {
					ns = st
				}
				if v := tab.Pick(s, k, ns); v < 0 || v >= tab.Len() {
					t.Errorf("Pick = %d", v)
					return
				}
			}
		})
	}
	wg.Wait()
}

func register(t *testing.T, r *registry.Registry, node string, weight int) {
	t.Helper()
	_, err := r.Register(registry.Registration{
		ServiceName: "svc", NodeName: node, HostName: node + ".example", Port: 8080,
		TimeOut: 5, Weight: weight,
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestForSnapshot(t *testing.T) {
	if ForSnapshot(nil) != nil {
		t.Fatal("ForSnapshot(nil) != nil")
	}
	r := registry.New(registry.Options{})
	register(t, r, "a", 2)
	register(t, r, "b", 1)
	register(t, r, "c", 3)
	snap := r.Snapshot("svc")

	var wg sync.WaitGroup
	got := make([]*Table, 4)
	for i := range got {
		wg.Go(func() { got[i] = ForSnapshot(snap) })
	}
	wg.Wait()
	tab := ForSnapshot(snap)
	for _, g := range got {
		if g != tab {
			t.Fatal("ForSnapshot returned different tables for one snapshot")
		}
	}
	if a := testing.AllocsPerRun(100, func() { ForSnapshot(snap) }); a != 0 {
		t.Errorf("cached ForSnapshot: %v allocs, want 0", a)
	}

	if tab.Len() != len(snap.Nodes) || tab.Len() != 6 {
		t.Fatalf("Len = %d, snapshot has %d virtual nodes, want 6", tab.Len(), len(snap.Nodes))
	}
	parentOf := map[string]int{}
	for i, n := range snap.Nodes {
		if tab.Name(i) != n.Name {
			t.Errorf("Name(%d) = %q, want %q", i, tab.Name(i), n.Name)
		}
		p := tab.Parent(i)
		if p < 0 || p > 2 {
			t.Errorf("Parent(%d) = %d, want 0..2", i, p)
		}
		if q, ok := parentOf[n.Parent]; ok && q != p {
			t.Errorf("virtual nodes of %s have parents %d and %d", n.Parent, q, p)
		}
		parentOf[n.Parent] = p
	}
	if len(parentOf) != 3 {
		t.Errorf("%d distinct parents, want 3", len(parentOf))
	}

	// The round-robin counter is the service's, shared by its snapshots.
	before := snap.RR.Load()
	tab.Pick(config.RoundRobin, nil, nil)
	register(t, r, "d", 1)
	next := ForSnapshot(r.Snapshot("svc"))
	if next == tab {
		t.Fatal("a new snapshot reused the old table")
	}
	next.Pick(config.RoundRobin, nil, nil)
	if got := snap.RR.Load(); got != before+2 {
		t.Errorf("shared counter = %d, want %d", got, before+2)
	}
}

// checkStability removes one of 10 equal nodes, then adds an 11th, and
// checks that at most 15 % of keys move and only off the removed node or
// onto the added one. It also marks a node unusable and checks that only
// that node's keys move.
func checkStability(t *testing.T, s config.Strategy) {
	const n = 10
	base := make([]string, n)
	for i := range base {
		base[i] = "n" + strconv.Itoa(i) + "-0"
	}
	removed := base[3]
	fewer := append(append([]string(nil), base[:3]...), base[4:]...)
	added := "n10-0"
	more := append(append([]string(nil), base...), added)

	tBase, tFewer, tMore := NewTable(base, nil, nil), NewTable(fewer, nil, nil), NewTable(more, nil, nil)
	st := newFakeState(n)
	st.usable[5] = false

	keys := testKeys(100_000)
	var movedRemove, movedAdd int
	for _, k := range keys {
		was := base[tBase.Pick(s, k, nil)]
		if now := fewer[tFewer.Pick(s, k, nil)]; now != was {
			movedRemove++
			if was != removed {
				t.Fatalf("removing %s moved a key from %s to %s", removed, was, now)
			}
		} else if was == removed {
			t.Fatalf("a key stayed on removed node %s", removed)
		}
		if now := more[tMore.Pick(s, k, nil)]; now != was {
			movedAdd++
			if now != added {
				t.Fatalf("adding %s moved a key from %s to %s", added, was, now)
			}
		}
		if now := base[tBase.Pick(s, k, st)]; now != was && was != base[5] {
			t.Fatalf("marking %s unusable moved a key from %s to %s", base[5], was, now)
		}
	}
	for _, c := range []struct {
		what  string
		moved int
	}{{"removing one of 10 nodes", movedRemove}, {"adding an 11th node", movedAdd}} {
		frac := float64(c.moved) / float64(len(keys))
		t.Logf("%s moved %.2f%% of keys", c.what, 100*frac)
		if frac > 0.15 || c.moved == 0 {
			t.Errorf("%s moved %.2f%% of keys, want (0, 15%%]", c.what, 100*frac)
		}
	}
}

// TestUnusableShareSpreads marks parents unusable and checks, for every
// strategy, that each usable parent's share stays within 3 points of its
// weight's share of the usable weight (for CH and RH: of its share when the
// down nodes are removed): a down node's traffic is spread over
// the others, not handed whole to a neighbour (one node taking double load
// is how cascades start). The cases are the a,b,c,d example, a weighted
// table, and long runs of down nodes (8 of 10, 36 of 40), where a scan from
// a random start would hand the first node after the run most of the picks.
func TestUnusableShareSpreads(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		down    [2]int // parents down[0] to down[1]-1 are unusable
	}{
		{"b of a,b,c,d", []int{1, 1, 1, 1}, [2]int{1, 2}},
		{"weight 2 of 1,2,3,4", []int{1, 2, 3, 4}, [2]int{1, 2}},
		{"8 consecutive of 10", slices.Repeat([]int{1}, 10), [2]int{0, 8}},
		{"36 consecutive of 40", slices.Repeat([]int{1}, 40), [2]int{0, 36}},
	}
	const picks = 100_000
	keys := testKeys(picks)
	for _, tc := range tests {
		names, parents := expand(tc.weights...)
		st := newFakeState(len(names))
		isDown := make([]bool, len(tc.weights))
		for p := tc.down[0]; p < tc.down[1]; p++ {
			isDown[p] = true
		}
		usableWeight := 0
		for p, w := range tc.weights {
			if !isDown[p] {
				usableWeight += w
			}
		}
		for i := range names {
			st.usable[i] = !isDown[parents[i]]
		}
		for _, s := range strategies {
			t.Run(tc.name+"/"+s.String(), func(t *testing.T) {
				tab := NewTable(names, parents, nil)
				counts := make([]int, len(tc.weights))
				for i := range picks {
					v := tab.Pick(s, keys[i], st)
					if v < 0 || !st.usable[v] {
						t.Fatalf("Pick = %d, not a usable node", v)
					}
					counts[parents[v]]++
				}
				// The hashing strategies are held to their own balance
				// without the down nodes: a table of the usable virtual nodes
				// alone. With two nodes left, a ring node's share varies by
				// about 1/sqrt(PointsPerNode) of itself, more than 3 points.
				var ref []int
				if s == config.ConsistentHashing || s == config.RendezvousHashing {
					var upNames []string
					var upParents []int
					for i := range names {
						if st.usable[i] {
							upNames, upParents = append(upNames, names[i]), append(upParents, parents[i])
						}
					}
					up := NewTable(upNames, nil, nil)
					ref = make([]int, len(tc.weights))
					for i := range picks {
						ref[upParents[up.Pick(s, keys[i], nil)]]++
					}
				}
				for p, w := range tc.weights {
					got := float64(counts[p]) / picks
					want := 0.0
					if ref != nil {
						want = float64(ref[p]) / picks
					} else if !isDown[p] {
						want = float64(w) / float64(usableWeight)
					}
					t.Logf("parent %d (weight %d): share %.4f, ideal %.4f", p, w, got, want)
					if got < want-0.03 || got > want+0.03 {
						t.Errorf("parent %d (weight %d): share %.4f, want %.4f ± 0.03", p, w, got, want)
					}
				}
			})
		}
	}
}
