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
	st, _ = median([]Stats{mk(100), mk(400), mk(200), mk(300)}, (*Stats).RPS, show)
	if st.OK != 300 {
		t.Fatalf("even: got %d, want the better middle 300", st.OK)
	}
	st, note = median([]Stats{mk(5)}, (*Stats).RPS, show)
	if st.OK != 5 || note != "" {
		t.Fatalf("single: %d %q", st.OK, note)
	}
}
