package main

import (
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	mk := func(ok uint64) Stats { return Stats{OK: ok, Elapsed: time.Second} }
	show := func(s *Stats) string { return fmtRPS(s.RPS()) }
	if st, note := median(nil, (*Stats).RPS, show); st != nil || note != "" {
		t.Fatal("empty: want nil")
	}
	runs := []Stats{mk(300), mk(100), mk(200)}
	st, note := median(runs, (*Stats).RPS, show)
	if st.OK != 200 || !strings.Contains(note, "median of 3 rounds (300, 100, 200)") {
		t.Fatalf("odd: got %d, %q", st.OK, note)
	}
	// Even count: the worse of the two middle runs, never the better one.
	st, _ = median([]Stats{mk(100), mk(400), mk(200), mk(300)}, (*Stats).RPS, show)
	if st.OK != 200 {
		t.Fatalf("even: got %d, want the worse middle 200", st.OK)
	}
	st, _ = median([]Stats{mk(300), mk(100)}, (*Stats).RPS, show)
	if st.OK != 100 {
		t.Fatalf("two rounds: got %d, want the worse 100", st.OK)
	}
	// Where smaller is better (latency, negated key) the worse run is the slower one.
	lat := func(ms int64) Stats {
		var s Stats
		s.Hist.Record(time.Duration(ms) * time.Millisecond)
		return s
	}
	negP99 := func(s *Stats) float64 { return -float64(p99(s)) }
	showP99 := func(s *Stats) string { return fmtLatency(p99(s)) }
	st, _ = median([]Stats{lat(1), lat(4), lat(2), lat(3)}, negP99, showP99)
	if got := p99(st); got != 3*time.Millisecond {
		t.Fatalf("even, latency: got p99 %s, want the worse middle 3ms", got)
	}
	st, note = median([]Stats{mk(5)}, (*Stats).RPS, show)
	if st.OK != 5 || note != "" {
		t.Fatalf("single: %d %q", st.OK, note)
	}
}
