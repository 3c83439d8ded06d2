package observe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Audit event types. AuditEvent.Type is a plain string so that callers may
// add types, but these are the ones Maxine records.
const (
	AuditSigninSuccess       = "signin_success"
	AuditSigninFailure       = "signin_failure"
	AuditPasswordChange      = "password_change"
	AuditRegister            = "register"
	AuditDeregister          = "deregister"
	AuditExpiry              = "expiry"
	AuditConfigChange        = "config_change"
	AuditAuthzDenied         = "authz_denied"
	AuditEviction            = "eviction"
	AuditBreakerOpen         = "breaker_open"
	AuditBreakerClose        = "breaker_close"
	AuditLeadershipChange    = "leadership_change"
	AuditAlertDeliveryFailed = "alert_delivery_failed"
)

// AuditFileName is the name of the append-only audit file inside
// AuditOptions.Dir.
const AuditFileName = "audit.jsonl"

// AuditEvent is one security- or operations-relevant fact: who did what, to
// which service or node, as part of which trace. Details must not be
// modified after the event has been recorded: the ring and the file writer
// share it.
type AuditEvent struct {
	Time    time.Time      `json:"timestamp"`
	Type    string         `json:"type"`  // one of the Audit* constants
	Actor   string         `json:"actor"` // user name, "anonymous", "system", or client IP
	Role    string         `json:"role,omitempty"`
	TraceID string         `json:"traceId,omitempty"`
	Service string         `json:"service,omitempty"`
	Node    string         `json:"node,omitempty"`
	Details map[string]any `json:"details,omitempty"` // e.g. config change {"field":..,"old":..,"new":..}
}

// AuditOptions configures NewAudit. Zero values take the defaults noted.
type AuditOptions struct {
	// Dir holds audit.jsonl, which is only ever appended to. "" keeps
	// events in memory only.
	Dir string
	// RingSize is how many events Recent can return. Default 1000.
	RingSize int
	// QueueSize bounds the events waiting for the file writer. Default 4096.
	QueueSize int
	// Now stamps events recorded without a time. Default time.Now.
	Now func() time.Time
	// OnDrop, if set, is called (from Record, so it must be quick) each
	// time an event cannot be queued for the file.
	OnDrop func()
	// MaxBytes rotates audit.jsonl when it would grow past it (to
	// audit.jsonl.1, …); Keep is how many rotated files are kept.
	// Defaults 64 MiB and 5.
	MaxBytes int64
	Keep     int
}

// Audit records audit events into a bounded in-memory ring, for the
// actuator API, and into an append-only JSONL file, for the record.
//
// Record never waits for the disk: the file is written by Run, and when
// its queue is full the event is kept in the ring but left out of the file
// (counted by Dropped). Run must be running for events to reach the file;
// Close must be called once, after Run has returned.
type Audit struct {
	now    func() time.Time
	onDrop func()

	mu   sync.Mutex // guards ring
	ring ring[AuditEvent]

	queue   chan AuditEvent // nil when there is no file
	dropped atomic.Uint64

	wmu      sync.Mutex // guards the writer fields below (Run vs. Close)
	file     *RotatingFile
	batch    bytes.Buffer  // whole encoded lines not yet written
	enc      *json.Encoder // encodes into batch
	writeErr error         // first write error, returned by Close
	closed   bool
}

// NewAudit returns an Audit. With a Dir it creates the directory if needed,
// loads the last RingSize events of an existing audit.jsonl into the ring,
// so the API still shows them after a restart, and opens the file for
// appending. A truncated or corrupt line (a crash mid-write) is skipped.
func NewAudit(o AuditOptions) (*Audit, error) {
	if o.RingSize <= 0 {
		o.RingSize = 1000
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 4096
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 64 << 20
	}
	if o.Keep <= 0 {
		o.Keep = 5
	}
	a := &Audit{now: o.Now, onDrop: o.OnDrop, ring: newRing[AuditEvent](o.RingSize)}
	if o.Dir == "" {
		return a, nil
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("cannot create audit directory %q: %w", o.Dir, err)
	}
	path := filepath.Join(o.Dir, AuditFileName)
	rf, err := OpenRotatingFile(path, o.MaxBytes, o.Keep)
	if err != nil {
		return nil, fmt.Errorf("cannot open audit file %q: %w", path, err)
	}
	f := rf.f
	tail, err := readTail(f, o.RingSize)
	if err != nil {
		rf.Close()
		return nil, fmt.Errorf("cannot read audit file %q: %w", path, err)
	}
	for _, line := range tail.lines {
		var ev AuditEvent
		if json.Unmarshal(line, &ev) == nil {
			a.ring.add(ev)
		}
	}
	if tail.unterminated {
		// End the torn line so that the next event starts on a line of its
		// own instead of being glued to it and lost on the next load.
		if _, err := rf.Write([]byte{'\n'}); err != nil {
			f.Close()
			return nil, fmt.Errorf("cannot repair audit file %q: %w", path, err)
		}
	}
	a.file = rf
	a.enc = json.NewEncoder(&a.batch)
	a.enc.SetEscapeHTML(false)
	a.queue = make(chan AuditEvent, o.QueueSize)
	return a, nil
}

type fileTail struct {
	lines        [][]byte // at most n non-empty lines, oldest first
	unterminated bool     // the file does not end with '\n'
}

// readTail returns the last n lines of f without reading the whole file:
// the audit file only grows, so reading it from the start would make every
// restart slower than the last.
func readTail(f *os.File, n int) (fileTail, error) {
	var t fileTail
	st, err := f.Stat()
	if err != nil {
		return t, err
	}
	size := st.Size()
	if size == 0 {
		return t, nil
	}
	var buf []byte
	for chunk := int64(64 << 10); ; chunk *= 2 {
		off := max(size-chunk, 0)
		buf = make([]byte, size-off)
		if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return t, err
		}
		if off > 0 {
			// The first line may be cut; it only counts when there are
			// more than n complete lines after it.
			i := bytes.IndexByte(buf, '\n')
			if i < 0 || bytes.Count(buf[i+1:], []byte{'\n'}) < n+1 {
				continue
			}
			buf = buf[i+1:]
		}
		break
	}
	t.unterminated = buf[len(buf)-1] != '\n'
	for line := range bytes.SplitSeq(buf, []byte{'\n'}) {
		if len(bytes.TrimSpace(line)) > 0 {
			t.lines = append(t.lines, line)
		}
	}
	if len(t.lines) > n {
		t.lines = t.lines[len(t.lines)-n:]
	}
	return t, nil
}

// Record records ev, stamping it with the current time if ev.Time is zero.
// It never blocks on the file: if the writer's queue is full the event is
// kept in the ring, left out of the file, and counted by Dropped.
func (a *Audit) Record(ev AuditEvent) {
	if ev.Time.IsZero() {
		ev.Time = a.now()
	}
	a.mu.Lock()
	a.ring.add(ev)
	a.mu.Unlock()
	if a.queue == nil {
		return
	}
	select {
	case a.queue <- ev:
	default:
		a.dropped.Add(1)
		if a.onDrop != nil {
			a.onDrop()
		}
	}
}

// Recent returns up to limit events, newest first; limit <= 0 returns all
// events in the ring.
func (a *Audit) Recent(limit int) []AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ring.recent(limit)
}

// Dropped returns how many events were left out of the file because the
// writer's queue was full.
func (a *Audit) Dropped() uint64 { return a.dropped.Load() }

// Run writes queued events to the file until done is closed, flushing the
// buffer whenever the queue runs empty. Without a Dir it just waits for
// done. Events still queued when done closes are written by Close.
func (a *Audit) Run(done <-chan struct{}) {
	if a.queue == nil {
		<-done
		return
	}
	for {
		select {
		case <-done:
			return
		case ev := <-a.queue:
			a.wmu.Lock()
			a.write(ev)
			a.drainLocked()
			a.wmu.Unlock()
		}
	}
}

// drainLocked writes every queued event and flushes. a.wmu must be held.
func (a *Audit) drainLocked() {
	for {
		select {
		case ev := <-a.queue:
			a.write(ev)
		default:
			a.flushLocked()
			return
		}
	}
}

func (a *Audit) write(ev AuditEvent) {
	if a.closed {
		return
	}
	// Encode writes nothing when marshalling fails (an unencodable value
	// in Details), so one bad event cannot corrupt the file.
	if err := a.enc.Encode(ev); err != nil && a.writeErr == nil {
		a.writeErr = fmt.Errorf("cannot write audit event %q: %w", ev.Type, err)
	}
	if a.batch.Len() >= 64<<10 {
		a.flushLocked()
	}
}

// flushLocked writes the batched lines: whole lines only, so the file
// rotates between events, never inside one. a.wmu must be held.
func (a *Audit) flushLocked() {
	if a.batch.Len() == 0 {
		return
	}
	if _, err := a.file.Write(a.batch.Bytes()); err != nil && a.writeErr == nil {
		a.writeErr = fmt.Errorf("cannot write audit file: %w", err)
	}
	a.batch.Reset()
}

// Close writes the events still queued, fsyncs and closes the file. Call it
// once Run has returned; events recorded afterwards stay in the ring only.
// It returns the first error met while writing, if any.
func (a *Audit) Close() error {
	if a.queue == nil {
		return nil
	}
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if a.closed {
		return nil
	}
	a.drainLocked()
	a.closed = true
	errs := []error{a.writeErr}
	if err := a.file.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("cannot sync audit file: %w", err))
	}
	if err := a.file.Close(); err != nil {
		errs = append(errs, fmt.Errorf("cannot close audit file: %w", err))
	}
	return errors.Join(errs...)
}
