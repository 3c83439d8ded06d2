package observe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestLogRingBoundedNewestFirst(t *testing.T) {
	r := NewLogRing(3)
	for i := range 5 {
		fmt.Fprintf(r, "line %d\n", i)
	}
	got := r.Recent(0)
	if want := []string{"line 4", "line 3", "line 2"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Recent(0) = %q, want %q", got, want)
	}
	if got := r.Recent(2); len(got) != 2 || got[0] != "line 4" {
		t.Errorf("Recent(2) = %q", got)
	}
	r.Clear()
	if got := r.Recent(0); len(got) != 0 {
		t.Errorf("after Clear: %q", got)
	}
	r.Write([]byte("after clear\n"))
	if got := r.Recent(0); len(got) != 1 || got[0] != "after clear" {
		t.Errorf("after Clear and Write: %q", got)
	}
	if n, err := r.Write([]byte(strings.Repeat("x", 100<<10))); n != 100<<10 || err != nil {
		t.Errorf("Write = %d, %v", n, err)
	}
	if got := r.Recent(1)[0]; len(got) != logMaxLine {
		t.Errorf("huge line kept as %d bytes", len(got))
	}
	if len(NewLogRing(0).ring.buf) != 1000 {
		t.Error("default size is not 1000")
	}
}

// lockedBuffer is a bytes.Buffer safe for the concurrent test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimRight(l.b.String(), "\n"), "\n")
}

func TestLogOutputSwitchesFormatAtRunTime(t *testing.T) {
	var out lockedBuffer
	ring := NewLogRing(10)
	o := NewLogOutput(&out, ring, false)
	log, err := NewLogger(o, "info")
	if err != nil {
		t.Fatal(err)
	}

	log.Info().Str("service", "orders").Msg("registered node")
	o.SetPlain(true)
	if !o.Plain() {
		t.Fatal("Plain() false after SetPlain(true)")
	}
	log.Warn().Str("service", "orders").Msg("evicted node")
	o.SetPlain(false)
	log.Error().Msg("back to json")
	log.Debug().Msg("below level")

	lines := out.lines()
	if len(lines) != 3 {
		t.Fatalf("stdout has %d lines: %q", len(lines), lines)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatalf("JSON line does not parse: %v: %s", err, lines[0])
	}
	if first["message"] != "registered node" || first["level"] != "info" || first["service"] != "orders" || first["time"] == nil {
		t.Errorf("JSON line = %v", first)
	}
	plain := lines[1]
	if !strings.Contains(plain, "evicted node") || strings.Contains(plain, "{") ||
		!strings.Contains(plain, "WRN") || !strings.Contains(plain, "service=orders") {
		t.Errorf("plain line = %q", plain)
	}
	if strings.Contains(plain, "\x1b[") {
		t.Errorf("plain line has colour codes: %q", plain)
	}
	var third map[string]any
	if err := json.Unmarshal([]byte(lines[2]), &third); err != nil || third["message"] != "back to json" {
		t.Errorf("after switching back: %v %s", err, lines[2])
	}

	// The ring has the same lines, in the same formats, newest first.
	got := ring.Recent(0)
	if len(got) != 3 || got[0] != lines[2] || got[1] != lines[1] || got[2] != lines[0] {
		t.Errorf("ring = %q\nstdout = %q", got, lines)
	}
}

func TestLogOutputPassesNonJSONThrough(t *testing.T) {
	var out bytes.Buffer
	ring := NewLogRing(2)
	o := NewLogOutput(&out, ring, true)
	n, err := o.Write([]byte("not json at all\n"))
	if n != 16 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if out.String() != "not json at all\n" || ring.Recent(0)[0] != "not json at all" {
		t.Errorf("out %q ring %q", out.String(), ring.Recent(0))
	}
	// Either end may be absent.
	NewLogOutput(nil, nil, false).Write([]byte(`{"level":"info"}` + "\n"))
	NewLogOutput(nil, nil, true).Write([]byte(`{"level":"info"}` + "\n"))
}

func TestLogOutputConcurrent(t *testing.T) {
	var out bytes.Buffer // not safe for concurrent use: LogOutput serialises
	ring := NewLogRing(50)
	o := NewLogOutput(&out, ring, false)
	log, _ := NewLogger(o, "debug")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				if g == 0 && i%10 == 0 {
					o.SetPlain(i%20 == 0)
				}
				log.Info().Int("g", g).Int("i", i).Msg("hello")
			}
		})
	}
	wg.Wait()
	if n := strings.Count(out.String(), "\n"); n != 400 {
		t.Errorf("stdout has %d lines, want 400", n)
	}
	if len(ring.Recent(0)) != 50 {
		t.Errorf("ring not full")
	}
}

func TestNewLoggerLevels(t *testing.T) {
	o := NewLogOutput(nil, nil, false)
	for _, lvl := range []string{"debug", "info", "warn", "error", "INFO"} {
		if _, err := NewLogger(o, lvl); err != nil {
			t.Errorf("level %q: %v", lvl, err)
		}
	}
	for _, lvl := range []string{"", "verbose", "trace", "fatal"} {
		_, err := NewLogger(o, lvl)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", lvl)) {
			t.Errorf("level %q: error %v does not name it", lvl, err)
		}
	}
	var out bytes.Buffer
	log, _ := NewLogger(NewLogOutput(&out, nil, false), "warn")
	log.Info().Msg("quiet")
	log.Warn().Msg("loud")
	if strings.Contains(out.String(), "quiet") || !strings.Contains(out.String(), "loud") {
		t.Errorf("level warn wrote %q", out.String())
	}
}
