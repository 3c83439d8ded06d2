package main

import (
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	out := "Running 1s test @ http://127.0.0.1:1/\n  2 threads and 4 connections\nbench-wrk 12345 1002000 3 2 250 1200 4000 9000\n"
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{requests: 12345, duration: 1002 * time.Millisecond, socketErrs: 3, statusErrs: 2,
		p50: 250 * time.Microsecond, p99: 1200 * time.Microsecond, p999: 4 * time.Millisecond, max: 9 * time.Millisecond}
	if r != want {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Fatal("output without a result line accepted")
	}
}

func TestHistFromPercentiles(t *testing.T) {
	h := histFromPercentiles(100*time.Microsecond, time.Millisecond, 5*time.Millisecond, 20*time.Millisecond)
	for q, want := range map[float64]time.Duration{0.5: 100 * time.Microsecond, 0.99: time.Millisecond, 0.999: 5 * time.Millisecond, 1: 20 * time.Millisecond} {
		if got := h.Quantile(q); got < want*99/100 || got > want*101/100 {
			t.Errorf("q%.3f = %s, want %s", q, got, want)
		}
	}
}

// TestWrkAgainstStub runs the real wrk for one second against a stub
// upstream that fails every tenth request: the counts must add up and
// the failures must make the run unhealthy.
func TestWrkAgainstStub(t *testing.T) {
	w, err := NewWrk(requireBinary(t, "wrk"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, 30*time.Second)
	ok := stubUpstream(t, func(int64, time.Time) (time.Duration, int) { return 0, 200 })
	st := w.Run(ctx, &Load{Addr: ok, Conns: 4, Duration: time.Second}, "/x")
	if st.OK == 0 || st.Errors != 0 || !st.healthy() || st.Elapsed < time.Second || st.Hist.Quantile(0.99) <= 0 {
		t.Fatalf("clean run: ok %d errors %d (%s) elapsed %s p99 %s", st.OK, st.Errors, st.FirstErr, st.Elapsed, st.Hist.Quantile(0.99))
	}
	bad := stubUpstream(t, everyTenthFails)
	st = w.Run(ctx, &Load{Addr: bad, Conns: 4, Duration: time.Second}, "/x")
	if st.OK == 0 || st.Errors == 0 || st.healthy() {
		t.Fatalf("failing upstream: ok %d errors %d (%s), want failures counted", st.OK, st.Errors, st.FirstErr)
	}
}
