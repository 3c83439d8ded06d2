package observe

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var allAuditTypes = []string{
	AuditSigninSuccess, AuditSigninFailure, AuditPasswordChange, AuditRegister,
	AuditDeregister, AuditExpiry, AuditConfigChange, AuditAuthzDenied,
	AuditEviction, AuditBreakerOpen, AuditBreakerClose, AuditLeadershipChange,
	AuditAlertDeliveryFailed,
}

// fakeClock returns increasing times one second apart.
func fakeClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

// runAudit starts a.Run and returns a function that stops it and closes a.
func runAudit(t *testing.T, a *Audit) func() {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { a.Run(done) })
	return func() {
		close(done)
		wg.Wait()
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
}

func recordAll(a *Audit) {
	for i, typ := range allAuditTypes {
		a.Record(AuditEvent{
			Type:    typ,
			Actor:   "user" + string(rune('a'+i)),
			Role:    "admin",
			TraceID: strings.Repeat(string(rune('a'+i)), 32),
			Service: "svc",
			Details: map[string]any{"field": "heartBeatTimeout", "old": 5.0, "new": 10.0},
		})
	}
}

func checkAllTypes(t *testing.T, got []AuditEvent) {
	t.Helper()
	if len(got) != len(allAuditTypes) {
		t.Fatalf("got %d events, want %d", len(got), len(allAuditTypes))
	}
	for k, ev := range got {
		i := len(allAuditTypes) - 1 - k // newest first
		if ev.Type != allAuditTypes[i] {
			t.Errorf("event %d: type %q, want %q", k, ev.Type, allAuditTypes[i])
		}
		if want := "user" + string(rune('a'+i)); ev.Actor != want {
			t.Errorf("event %d: actor %q, want %q", k, ev.Actor, want)
		}
		if want := strings.Repeat(string(rune('a'+i)), 32); ev.TraceID != want {
			t.Errorf("event %d: trace id %q, want %q", k, ev.TraceID, want)
		}
		if ev.Time.IsZero() {
			t.Errorf("event %d: no time", k)
		}
		if k > 0 && !ev.Time.Before(got[k-1].Time) {
			t.Errorf("event %d: time %v not before newer %v", k, ev.Time, got[k-1].Time)
		}
		if ev.Details["field"] != "heartBeatTimeout" || ev.Details["new"] != 10.0 {
			t.Errorf("event %d: details %v", k, ev.Details)
		}
	}
}

func TestAuditRecordsEveryTypeNewestFirst(t *testing.T) {
	a, err := NewAudit(AuditOptions{Now: fakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	stop := runAudit(t, a)
	defer stop()
	recordAll(a)
	checkAllTypes(t, a.Recent(0))
	if got := a.Recent(3); len(got) != 3 || got[0].Type != AuditAlertDeliveryFailed {
		t.Errorf("Recent(3) = %+v", got)
	}
}

func TestAuditKeepsGivenTime(t *testing.T) {
	a, _ := NewAudit(AuditOptions{})
	at := time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)
	a.Record(AuditEvent{Type: AuditRegister, Actor: "system", Time: at})
	if got := a.Recent(1)[0].Time; !got.Equal(at) {
		t.Errorf("time %v, want %v", got, at)
	}
}

func TestAuditFileSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	a, err := NewAudit(AuditOptions{Dir: dir, Now: fakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	stop := runAudit(t, a)
	recordAll(a)
	stop()

	// Every event is a JSON line in the file, oldest first.
	f, err := os.Open(filepath.Join(dir, AuditFileName))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	var n int
	for sc.Scan() {
		var ev AuditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %d: %v: %s", n, err, sc.Bytes())
		}
		if ev.Type != allAuditTypes[n] {
			t.Errorf("line %d: type %q, want %q", n, ev.Type, allAuditTypes[n])
		}
		n++
	}
	f.Close()
	if n != len(allAuditTypes) {
		t.Fatalf("file has %d lines, want %d", n, len(allAuditTypes))
	}

	// A new Audit on the same directory shows the same events.
	b, err := NewAudit(AuditOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	checkAllTypes(t, b.Recent(0))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestAuditToleratesTruncatedLastLine(t *testing.T) {
	dir := t.TempDir()
	a, _ := NewAudit(AuditOptions{Dir: dir, Now: fakeClock()})
	stop := runAudit(t, a)
	a.Record(AuditEvent{Type: AuditRegister, Actor: "1.2.3.4", Service: "a"})
	a.Record(AuditEvent{Type: AuditDeregister, Actor: "1.2.3.4", Service: "a"})
	stop()

	// Simulate a crash in the middle of writing a third event.
	path := filepath.Join(dir, AuditFileName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"timestamp":"2025-01-02T03:04:05Z","type":"exp`)
	f.Close()

	b, err := NewAudit(AuditOptions{Dir: dir, Now: fakeClock()})
	if err != nil {
		t.Fatalf("NewAudit on truncated file: %v", err)
	}
	got := b.Recent(0)
	if len(got) != 2 || got[0].Type != AuditDeregister || got[1].Type != AuditRegister {
		t.Fatalf("after restart: %+v", got)
	}
	// The next event starts on its own line and survives another restart.
	stop = runAudit(t, b)
	b.Record(AuditEvent{Type: AuditExpiry, Actor: "system", Service: "a"})
	stop()
	c, err := NewAudit(AuditOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got = c.Recent(0)
	if len(got) != 3 || got[0].Type != AuditExpiry {
		t.Fatalf("after second restart: %+v", got)
	}
}

func TestAuditRestartLoadsOnlyLastRingSize(t *testing.T) {
	dir := t.TempDir()
	// Big events so the tail reader has to widen its window several times.
	pad := strings.Repeat("x", 2000)
	a, _ := NewAudit(AuditOptions{Dir: dir, Now: fakeClock()})
	stop := runAudit(t, a)
	for i := range 300 {
		a.Record(AuditEvent{Type: AuditRegister, Actor: "system", Details: map[string]any{"i": i, "pad": pad}})
	}
	stop()
	b, err := NewAudit(AuditOptions{Dir: dir, RingSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := b.Recent(0)
	if len(got) != 100 {
		t.Fatalf("loaded %d events, want 100", len(got))
	}
	for k, ev := range got {
		if want := float64(299 - k); ev.Details["i"] != want {
			t.Fatalf("event %d: i = %v, want %v", k, ev.Details["i"], want)
		}
	}
}

func TestAuditRingBounded(t *testing.T) {
	a, _ := NewAudit(AuditOptions{RingSize: 5})
	for i := range 12 {
		a.Record(AuditEvent{Type: AuditRegister, Actor: "system", Details: map[string]any{"i": i}})
	}
	got := a.Recent(0)
	if len(got) != 5 {
		t.Fatalf("ring holds %d, want 5", len(got))
	}
	for k, ev := range got {
		if ev.Details["i"] != 11-k {
			t.Errorf("event %d: i = %v, want %d", k, ev.Details["i"], 11-k)
		}
	}
	if got := a.Recent(100); len(got) != 5 {
		t.Errorf("Recent(100) = %d events", len(got))
	}
}

// With nothing draining the queue (Run not started, as with a stuck disk)
// Record still returns, drops from the file, and counts the drops.
func TestAuditFullQueueNeverBlocksRecord(t *testing.T) {
	dir := t.TempDir()
	var drops int
	a, err := NewAudit(AuditOptions{Dir: dir, QueueSize: 4, RingSize: 10, OnDrop: func() { drops++ }})
	if err != nil {
		t.Fatal(err)
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for range 1000 {
			a.Record(AuditEvent{Type: AuditSigninFailure, Actor: "anonymous"})
		}
	}()
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		t.Fatal("Record blocked with a full queue")
	}
	if drops != 996 || a.Dropped() != 996 {
		t.Errorf("drops = %d, Dropped() = %d, want 996", drops, a.Dropped())
	}
	if got := len(a.Recent(0)); got != 10 {
		t.Errorf("ring holds %d, want 10", got)
	}
	// Close writes what was queued.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, AuditFileName))
	if n := strings.Count(string(data), "\n"); n != 4 {
		t.Errorf("file has %d lines, want the 4 queued", n)
	}
}

func TestAuditConcurrentRecord(t *testing.T) {
	dir := t.TempDir()
	a, _ := NewAudit(AuditOptions{Dir: dir, QueueSize: 10000})
	stop := runAudit(t, a)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for range 200 {
				a.Record(AuditEvent{Type: AuditRegister, Actor: "system", Node: string(rune('a' + g))})
				a.Recent(5)
			}
		})
	}
	wg.Wait()
	stop()
	data, _ := os.ReadFile(filepath.Join(dir, AuditFileName))
	if n := strings.Count(string(data), "\n"); n != 800 {
		t.Errorf("file has %d lines, want 800", n)
	}
}

func TestAuditUnencodableEventDoesNotCorruptFile(t *testing.T) {
	dir := t.TempDir()
	a, _ := NewAudit(AuditOptions{Dir: dir})
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { a.Run(done) })
	a.Record(AuditEvent{Type: AuditRegister, Actor: "system", Details: map[string]any{"bad": make(chan int)}})
	a.Record(AuditEvent{Type: AuditDeregister, Actor: "system"})
	close(done)
	wg.Wait()
	if err := a.Close(); err == nil {
		t.Error("Close did not report the unencodable event")
	}
	b, err := NewAudit(AuditOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := b.Recent(0); len(got) != 1 || got[0].Type != AuditDeregister {
		t.Errorf("after restart: %+v", got)
	}
}

// audit.jsonl rotates by size, keeps Keep rotated files, and every file
// holds whole events only.
func TestAuditFileRotates(t *testing.T) {
	dir := t.TempDir()
	a, err := NewAudit(AuditOptions{Dir: dir, Now: fakeClock(), MaxBytes: 4096, Keep: 2, QueueSize: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		a.Record(AuditEvent{Type: AuditRegister, Actor: "10.0.0.1", Service: "svc", Node: "node-" + strconv.Itoa(i)})
	}
	stop := runAudit(t, a)
	stop()
	path := filepath.Join(dir, AuditFileName)
	last := -1
	for _, name := range []string{path + ".2", path + ".1", path} {
		b, err := os.ReadFile(name)
		if err != nil || len(b) == 0 || len(b) > 4096 {
			t.Fatalf("%s: %d bytes, %v", name, len(b), err)
		}
		for line := range strings.SplitSeq(strings.TrimSuffix(string(b), "\n"), "\n") {
			var ev AuditEvent
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("%s: a torn event %q", name, line)
			}
			n, _ := strconv.Atoi(strings.TrimPrefix(ev.Node, "node-"))
			if n <= last {
				t.Fatalf("%s: events out of order", name)
			}
			last = n
		}
	}
	if last != 199 {
		t.Fatalf("the newest event in the files is node-%d", last)
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Fatal("more than 2 rotated audit files kept")
	}
}
