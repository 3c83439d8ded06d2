package observe

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

const testTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

func TestTracesRecentNewestFirst(t *testing.T) {
	tr := NewTraces(10)
	if got := tr.Recent(0); len(got) != 0 {
		t.Fatalf("empty ring returned %+v", got)
	}
	start1 := time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)
	start2 := start1.Add(time.Second)
	tp := []byte(testTraceparent)
	method, path := []byte("GET"), []byte("/orders/1?x=y")
	tr.RecordTrace("gateway", "orders", tp, method, path, 200, start1, 1500*time.Microsecond)
	// The caller may reuse its buffers at once.
	copy(path, "/XXXXXXXXXXXX")
	copy(method, "PUT")
	tr.RecordTrace("admin", "", []byte("00-11111111111111111111111111111111-2222222222222222-01"), []byte("POST"), []byte("/api/maxine/signin"), 401, start2, 2*time.Millisecond)

	got := tr.Recent(0)
	if len(got) != 2 {
		t.Fatalf("got %d records, want 2", len(got))
	}
	want := TraceRecord{
		TraceID: "11111111111111111111111111111111", Traceparent: "00-11111111111111111111111111111111-2222222222222222-01",
		Kind: "admin", Method: "POST", Path: "/api/maxine/signin", Status: 401, DurationMs: 2,
	}
	checkTrace(t, got[0], want, start2)
	want = TraceRecord{
		TraceID: "0af7651916cd43dd8448eb211c80319c", Traceparent: testTraceparent,
		Kind: "gateway", Service: "orders", Method: "GET", Path: "/orders/1?x=y", Status: 200, DurationMs: 1.5,
	}
	checkTrace(t, got[1], want, start1)
	if got := tr.Recent(1); len(got) != 1 || got[0].Kind != "admin" {
		t.Errorf("Recent(1) = %+v", got)
	}
}

func checkTrace(t *testing.T, got, want TraceRecord, start time.Time) {
	t.Helper()
	ts := got.Timestamp
	got.Timestamp = time.Time{}
	if got != want {
		t.Errorf("record = %+v\nwant     %+v", got, want)
	}
	// The timestamp is the request's start, as the caller gave it.
	if !ts.Equal(start) {
		t.Errorf("timestamp %v, want the start %v", ts, start)
	}
}

func TestTracesBoundedAndTruncated(t *testing.T) {
	tr := NewTraces(4)
	long := []byte("/" + strings.Repeat("p", 1000))
	for i := range 10 {
		tr.RecordTrace("gateway", "svc", []byte(testTraceparent), []byte("GET"), fmt.Appendf(nil, "/%d", i), 200+i, time.Now(), 0)
	}
	tr.RecordTrace("gateway", "svc", []byte("short"), []byte("GET"), long, 500, time.Now(), 0)
	got := tr.Recent(0)
	if len(got) != 4 {
		t.Fatalf("ring holds %d, want 4", len(got))
	}
	if len(got[0].Path) != 256 || got[0].Path != string(long[:256]) {
		t.Errorf("long path kept as %d bytes", len(got[0].Path))
	}
	if got[0].TraceID != "" || got[0].Traceparent != "short" {
		t.Errorf("malformed traceparent: %+v", got[0])
	}
	for k, r := range got[1:] {
		if want := fmt.Sprintf("/%d", 9-k); r.Path != want || r.Status != 209-k {
			t.Errorf("record %d = %+v, want path %s", k+1, r, want)
		}
	}
	if got := NewTraces(0); len(got.slots) != 500 {
		t.Errorf("default size %d", len(got.slots))
	}
}

func TestTracesConcurrent(t *testing.T) {
	tr := NewTraces(64)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			path := fmt.Appendf(nil, "/g%d", g)
			for i := range 2000 {
				tr.RecordTrace("gateway", "svc", []byte(testTraceparent), []byte("GET"), path, 200, time.Now(), time.Duration(i))
			}
		})
	}
	wg.Go(func() {
		for range 200 {
			for _, r := range tr.Recent(0) {
				// A record is never a mix of two writes.
				if len(r.Path) != 3 || r.Path[:2] != "/g" || r.TraceID != "0af7651916cd43dd8448eb211c80319c" {
					t.Errorf("torn record %+v", r)
					return
				}
			}
		}
	})
	wg.Wait()
	if got := tr.Recent(0); len(got) != 64 {
		t.Errorf("ring holds %d after concurrent writes, want 64", len(got))
	}
}

func TestRecordTraceDoesNotAllocate(t *testing.T) {
	tr := NewTraces(8)
	tp, m, p := []byte(testTraceparent), []byte("GET"), []byte("/orders/42")
	allocs := testing.AllocsPerRun(100, func() {
		tr.RecordTrace("gateway", "orders", tp, m, p, 200, time.Now(), time.Millisecond)
	})
	if allocs != 0 {
		t.Errorf("RecordTrace allocates %v times per call", allocs)
	}
}
