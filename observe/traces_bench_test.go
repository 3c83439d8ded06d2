package observe

import (
	"testing"
	"time"
)

// BenchmarkRecordTrace measures the gateway's per-request cost of keeping
// a trace; it must report 0 allocs/op.
func BenchmarkRecordTrace(b *testing.B) {
	tr := NewTraces(500)
	tp, m, p := []byte(testTraceparent), []byte("GET"), []byte("/api/orders/12345?expand=items")
	for range 500 { // warm up: every slot written once
		tr.RecordTrace("gateway", "orders", tp, m, p, 200, time.Now(), time.Millisecond)
	}
	b.ReportAllocs()
	for b.Loop() {
		tr.RecordTrace("gateway", "orders", tp, m, p, 200, time.Now(), time.Millisecond)
	}
}

// BenchmarkRecordTraceParallel is RecordTrace under contention from every
// core, as on a busy gateway.
func BenchmarkRecordTraceParallel(b *testing.B) {
	tr := NewTraces(500)
	tp, m, p := []byte(testTraceparent), []byte("GET"), []byte("/api/orders/12345?expand=items")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tr.RecordTrace("gateway", "orders", tp, m, p, 200, time.Now(), time.Millisecond)
		}
	})
}
