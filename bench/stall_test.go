package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// stubUpstream is a real HTTP server on 127.0.0.1 whose answer to the n-th
// request it receives (n from 0) is chosen by plan: how long to stall and
// which status to send. It is closed when the test ends.
func stubUpstream(t *testing.T, plan func(n int64, received time.Time) (stall time.Duration, status int)) string {
	t.Helper()
	var seq atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stall, status := plan(seq.Add(1)-1, time.Now())
		if stall > 0 {
			time.Sleep(stall)
		}
		w.WriteHeader(status)
		_, _ = w.Write(upstreamBody)
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("stub upstream on %s, want 127.0.0.1", addr)
	}
	return addr
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestOpenLoopChargesQueueingDelay: the first 3 requests stall 200 ms each
// behind one connection, so the requests due during those 600 ms queue.
// Measured from their intended send time, every request due in the first
// 400 ms waited at least 200 ms: 41 of the 60, so the median is at least
// the stall. Measured from the actual send time, only the 3 stalled ones
// would be slow and the median would be a loopback round trip.
func TestOpenLoopChargesQueueingDelay(t *testing.T) {
	const stall = 200 * time.Millisecond
	addr := stubUpstream(t, func(n int64, _ time.Time) (time.Duration, int) {
		if n < 3 {
			return stall, 200
		}
		return 0, 200
	})
	l := &Load{Addr: addr, Conns: 1, Duration: 600 * time.Millisecond, Expect: 200, Request: getRequests(addr, "/x")}
	st := l.RunOpen(testContext(t, 20*time.Second), 100)
	if st.OK != 60 || st.Errors != 0 || st.Missed != 0 {
		t.Fatalf("ok %d errors %d missed %d (%s), want 60 requests answered", st.OK, st.Errors, st.Missed, st.FirstErr)
	}
	if p50 := st.Hist.Quantile(0.5); p50 < stall/2 {
		t.Fatalf("open-loop p50 %s, want ≥ %s: queueing behind the stall is not charged (latency measured from the actual send time?)", p50, stall/2)
	}
	if st.SendLagP99 < stall/2 {
		t.Fatalf("send lag p99 %s, want ≥ %s: requests queued behind the stall were sent late", st.SendLagP99, stall/2)
	}
}

// warmupOnly answers 503 after a 200 ms stall to every request received
// before warmEnd, 200 at once afterwards. A request received before warmEnd
// was certainly sent before the load's window opened (the load takes its
// start time after warmEnd-warmup was taken), so a correct load never
// records one of those failures.
func warmupOnly(warmEnd time.Time) func(int64, time.Time) (time.Duration, int) {
	return func(_ int64, received time.Time) (time.Duration, int) {
		if received.Before(warmEnd) {
			return 200 * time.Millisecond, http.StatusServiceUnavailable
		}
		return 0, 200
	}
}

// TestClosedLoopDropsWarmup: the warm-up's stalled, failing requests (the
// second of which ends inside the window) must not be recorded.
func TestClosedLoopDropsWarmup(t *testing.T) {
	const warmup = 300 * time.Millisecond
	addr := stubUpstream(t, warmupOnly(time.Now().Add(warmup)))
	l := &Load{Addr: addr, Conns: 2, Warmup: warmup, Duration: 500 * time.Millisecond, Expect: 200, Request: getRequests(addr, "/x")}
	st := l.RunClosed(testContext(t, 20*time.Second))
	if st.Errors != 0 || st.OK == 0 {
		t.Fatalf("closed loop recorded %d warm-up failures (%s), ok %d", st.Errors, st.FirstErr, st.OK)
	}
	if st.Hist.Count() != st.OK {
		t.Fatalf("histogram holds %d values for %d requests in the window", st.Hist.Count(), st.OK)
	}
}

// TestOpenLoopDropsWarmup is the same check for the open loop.
func TestOpenLoopDropsWarmup(t *testing.T) {
	const warmup = 300 * time.Millisecond
	addr := stubUpstream(t, warmupOnly(time.Now().Add(warmup)))
	l := &Load{Addr: addr, Conns: 4, Warmup: warmup, Duration: 300 * time.Millisecond, Expect: 200, Request: getRequests(addr, "/x")}
	st := l.RunOpen(testContext(t, 20*time.Second), 100)
	if st.Errors != 0 || st.OK+st.Missed != 30 {
		t.Fatalf("open loop: errors %d (%s) ok %d missed %d, want 30 requests in the window and no warm-up failure", st.Errors, st.FirstErr, st.OK, st.Missed)
	}
	if st.Hist.Count() != st.OK {
		t.Fatalf("histogram holds %d values for %d requests in the window", st.Hist.Count(), st.OK)
	}
}

// everyTenthFails answers the 10th, 20th, … request with an immediate 503.
func everyTenthFails(n int64, _ time.Time) (time.Duration, int) {
	if n%10 == 9 {
		return 0, http.StatusServiceUnavailable
	}
	return 0, 200
}

// TestFailuresCountAtTimeout: a failed request is a request that did not
// get its answer; it must weigh in the percentiles as if it had waited its
// whole timeout, not vanish from them. 10 % fail here, so p95 is the
// timeout whatever the successful requests took.
func TestFailuresCountAtTimeout(t *testing.T) {
	const timeout = time.Second
	addr := stubUpstream(t, everyTenthFails)
	ctx := testContext(t, 20*time.Second)

	l := &Load{Addr: addr, Conns: 2, Duration: 10 * time.Second, MaxRequests: 100, Expect: 200, Timeout: timeout, Request: getRequests(addr, "/x")}
	st := l.RunClosed(ctx)
	checkFailuresCounted(t, "closed loop", &st, 90, 10, timeout)

	l = &Load{Addr: addr, Conns: 2, Duration: 200 * time.Millisecond, Expect: 200, Timeout: timeout, Request: getRequests(addr, "/x")}
	st = l.RunOpen(ctx, 200)
	checkFailuresCounted(t, "open loop", &st, 36, 4, timeout)
}

func checkFailuresCounted(t *testing.T, name string, st *Stats, ok, failed uint64, timeout time.Duration) {
	t.Helper()
	if st.OK != ok || st.Errors+st.Missed != failed {
		t.Fatalf("%s: ok %d errors %d missed %d, want %d ok and %d failed", name, st.OK, st.Errors, st.Missed, ok, failed)
	}
	if st.Hist.Count() != ok+failed {
		t.Fatalf("%s: histogram holds %d values for %d requests: failures left out of the percentiles", name, st.Hist.Count(), ok+failed)
	}
	if p95 := st.Hist.Quantile(0.95); p95 < timeout*99/100 {
		t.Fatalf("%s: p95 %s with 10 %% failures, want the timeout %s", name, p95, timeout)
	}
	if st.healthy() {
		t.Fatalf("%s: a run with failures counts as healthy", name)
	}
}

// TestAnyFailureFailsRow: one failed request in 100,000, in any round, fails
// the row, and the table shows the count in its own column.
func TestAnyFailureFailsRow(t *testing.T) {
	clean := Stats{OK: 100000, Elapsed: time.Second}
	clean.Hist.Record(time.Millisecond)
	one := clean
	one.OK, one.Errors, one.FirstErr = 99999, 1, "status 502, want 200"
	fasterOne := one
	fasterOne.OK = 199999 // the better round, so the median is the clean one

	for name, runs := range map[string][]Stats{
		"single round":               {one},
		"failure in the other round": {clean, fasterOne},
	} {
		b := &Bench{}
		ts := []*target{{name: "maxine"}}
		stats, rows := b.rowsFor("s", ts, [][]Stats{runs}, []string{""}, (*Stats).RPS, func(s *Stats) string { return fmtRPS(s.RPS()) })
		if stats[0] != nil || rows[0].Verdict != verdictFail || rows[0].Errors != 1 {
			t.Errorf("%s: verdict %q errors %d healthy %v, want FAIL with 1 failure", name, rows[0].Verdict, rows[0].Errors, stats[0] != nil)
		}
		var buf bytes.Buffer
		(&Report{Rows: b.rows}).WriteMarkdown(&buf)
		if !strings.Contains(buf.String(), "| 1 | — | — | FAIL |") {
			t.Errorf("%s: failures not in their own column:\n%s", name, buf.String())
		}
	}
}

// TestOpenLoopRPSIsThroughput: 60 requests offered at 200/s to a target
// that needs 25 ms for each and has one connection. It cannot finish
// them in less than 1.5 s, so the rps column must say at most 40/s, not
// the 200/s that were offered.
func TestOpenLoopRPSIsThroughput(t *testing.T) {
	const service = 25 * time.Millisecond
	addr := stubUpstream(t, func(int64, time.Time) (time.Duration, int) { return service, 200 })
	l := &Load{Addr: addr, Conns: 1, Duration: 300 * time.Millisecond, Expect: 200, Request: getRequests(addr, "/x")}
	st := l.RunOpen(testContext(t, 20*time.Second), 200)
	if st.OK == 0 || st.Errors != 0 {
		t.Fatalf("ok %d errors %d (%s)", st.OK, st.Errors, st.FirstErr)
	}
	if limit := float64(time.Second / service); st.RPS() > limit {
		t.Fatalf("open-loop rps %.0f over %s for %d answers, but one connection at %s a request sustains at most %.0f/s: the offered rate, not the throughput", st.RPS(), st.Elapsed, st.OK, service, limit)
	}
}
