package observe

import (
	"sync"
	"sync/atomic"
	"time"
)

// Limits on what one trace slot keeps. Longer values are truncated: the
// ring is for a glance at recent traffic, not for replaying requests.
const (
	traceMaxPath        = 256
	traceMaxMethod      = 16
	traceMaxTraceparent = 64 // version 00 is 55 bytes; later versions may append fields
)

// TraceRecord is one finished request as returned by Traces.Recent.
type TraceRecord struct {
	TraceID     string    `json:"traceId"`
	Traceparent string    `json:"traceparent"`
	Kind        string    `json:"kind"` // admin | gateway
	Service     string    `json:"service,omitempty"`
	Method      string    `json:"method"`
	Path        string    `json:"path"`
	Status      int       `json:"status"`
	DurationMs  float64   `json:"durationMs"`
	Timestamp   time.Time `json:"timestamp"` // when the request started
}

// traceSlot holds one record in fixed buffers so that recording copies
// bytes and allocates nothing.
type traceSlot struct {
	mu  sync.Mutex
	seq uint64 // 1 + index of the record held; 0 = never written

	kind, service string
	status        int
	dur           time.Duration
	start         time.Time

	tpLen, methodLen, pathLen uint16
	tp                        [traceMaxTraceparent]byte
	method                    [traceMaxMethod]byte
	path                      [traceMaxPath]byte
}

// Traces is a ring of recent request traces, written on the gateway's hot
// path. Each writer claims a slot with an atomic counter and locks only
// that slot, so concurrent requests rarely contend.
type Traces struct {
	next  atomic.Uint64 // number of records ever claimed
	slots []traceSlot
}

// NewTraces returns a ring keeping the last size traces (default 500).
func NewTraces(size int) *Traces {
	if size <= 0 {
		size = 500
	}
	return &Traces{slots: make([]traceSlot, size)}
}

// RecordTrace records one finished request of kind "admin" or "gateway",
// which started at start and took d.
// The byte slices are copied (path truncated at 256 bytes), so the caller
// may reuse them at once; nothing is allocated. kind and service should be
// strings the caller already holds, not conversions made for this call.
func (t *Traces) RecordTrace(kind, service string, traceparent, method, path []byte, status int, start time.Time, d time.Duration) {
	idx := t.next.Add(1) - 1
	s := &t.slots[idx%uint64(len(t.slots))]
	s.mu.Lock()
	if s.seq > idx+1 {
		// A writer that lapped the ring already put a newer record here.
		s.mu.Unlock()
		return
	}
	s.seq = idx + 1
	s.kind, s.service, s.status, s.dur, s.start = kind, service, status, d, start
	s.tpLen = uint16(copy(s.tp[:], traceparent))
	s.methodLen = uint16(copy(s.method[:], method))
	s.pathLen = uint16(copy(s.path[:], path))
	s.mu.Unlock()
}

// Recent returns up to limit traces, newest first; limit <= 0 returns all
// traces in the ring. A record being overwritten while Recent runs is left
// out rather than shown half old, half new.
func (t *Traces) Recent(limit int) []TraceRecord {
	n := t.next.Load()
	size := uint64(len(t.slots))
	count := min(n, size)
	if limit > 0 && uint64(limit) < count {
		count = uint64(limit)
	}
	out := make([]TraceRecord, 0, count)
	for i := n; i > n-count; i-- {
		idx := i - 1
		s := &t.slots[idx%size]
		s.mu.Lock()
		if s.seq == idx+1 {
			out = append(out, s.record())
		}
		s.mu.Unlock()
	}
	return out
}

// record builds the strings for a slot; s.mu must be held.
func (s *traceSlot) record() TraceRecord {
	tp := string(s.tp[:s.tpLen])
	r := TraceRecord{
		Traceparent: tp,
		Kind:        s.kind,
		Service:     s.service,
		Method:      string(s.method[:s.methodLen]),
		Path:        string(s.path[:s.pathLen]),
		Status:      s.status,
		DurationMs:  float64(s.dur) / float64(time.Millisecond),
		Timestamp:   s.start,
	}
	if len(tp) >= 35 {
		r.TraceID = tp[3:35]
	}
	return r
}
