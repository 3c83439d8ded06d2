package observe

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// logMaxLine bounds one line kept in a LogRing, so that a single huge log
// line cannot make the ring's memory unbounded.
const logMaxLine = 16 << 10

// LogRing is a bounded ring of recent log lines for /api/logs/recent. It is
// an io.Writer on which each Write is one line, as zerolog writes them; the
// trailing newline is not kept and lines longer than 16 KiB are truncated.
// It is safe for concurrent use.
type LogRing struct {
	mu   sync.Mutex
	ring ring[string]
}

// NewLogRing returns a ring keeping the last size lines (default 1000).
func NewLogRing(size int) *LogRing {
	if size <= 0 {
		size = 1000
	}
	return &LogRing{ring: newRing[string](size)}
}

// Write stores p as one line. It never fails.
func (r *LogRing) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	if len(p) > logMaxLine {
		p = p[:logMaxLine]
	}
	line := string(p)
	r.mu.Lock()
	r.ring.add(line)
	r.mu.Unlock()
	return n, nil
}

// Recent returns up to limit lines, newest first; limit <= 0 returns all
// lines in the ring.
func (r *LogRing) Recent(limit int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ring.recent(limit)
}

// Clear empties the ring.
func (r *LogRing) Clear() {
	r.mu.Lock()
	r.ring.clear()
	r.mu.Unlock()
}

// LogOutput is the io.Writer under Maxine's zerolog logger. It writes each
// line to Out and to the ring, either as the JSON zerolog produced or, in
// plain mode, through zerolog.ConsoleWriter without colours; SetPlain
// switches between the two while the logger is in use (the config API's
// logFormat). Writes to Out are serialised, so Out need not be safe for
// concurrent use.
type LogOutput struct {
	plain   atomic.Bool
	ring    *LogRing
	console zerolog.ConsoleWriter

	mu  sync.Mutex // serialises writes to out and tee
	out io.Writer
	tee io.Writer // a second destination, set by Tee (the log file)
}

// NewLogOutput returns a LogOutput writing to out and ring (either may be
// nil), starting in plain mode if plain is true.
func NewLogOutput(out io.Writer, ring *LogRing, plain bool) *LogOutput {
	o := &LogOutput{out: out, ring: ring}
	o.console = zerolog.ConsoleWriter{
		Out:        lineSink{o},
		NoColor:    true,
		TimeFormat: time.RFC3339,
	}
	o.plain.Store(plain)
	return o
}

// SetPlain switches to plain (true) or JSON (false) output for the lines
// written from now on.
func (o *LogOutput) SetPlain(plain bool) { o.plain.Store(plain) }

// Tee sends every line written from now on to w as well, one Write per
// line (so a RotatingFile rotates between lines). A failed write to w does
// not fail the logger. nil stops it.
func (o *LogOutput) Tee(w io.Writer) {
	o.mu.Lock()
	o.tee = w
	o.mu.Unlock()
}

// Plain reports whether output is currently plain.
func (o *LogOutput) Plain() bool { return o.plain.Load() }

// Write writes one log line, formatted as the current mode says. A line
// that is not a JSON object (not written by zerolog) is passed on as is.
func (o *LogOutput) Write(p []byte) (int, error) {
	if o.plain.Load() {
		if _, err := o.console.Write(p); err == nil {
			return len(p), nil
		}
	}
	if err := o.emit(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// emit writes one formatted line to out and the ring.
func (o *LogOutput) emit(p []byte) error {
	if o.ring != nil {
		o.ring.Write(p)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.tee != nil {
		o.tee.Write(p)
	}
	if o.out == nil {
		return nil
	}
	_, err := o.out.Write(p)
	return err
}

// lineSink is where ConsoleWriter, which writes each formatted line with a
// single Write, sends its output: on to emit.
type lineSink struct{ o *LogOutput }

func (s lineSink) Write(p []byte) (int, error) {
	if err := s.o.emit(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// NewLogger returns a zerolog logger writing to o at the given level:
// debug, info, warn or error. Each event carries a timestamp.
func NewLogger(o *LogOutput, level string) (zerolog.Logger, error) {
	var l zerolog.Level
	switch strings.ToLower(strings.TrimSpace(level)) {
	case "debug":
		l = zerolog.DebugLevel
	case "info":
		l = zerolog.InfoLevel
	case "warn":
		l = zerolog.WarnLevel
	case "error":
		l = zerolog.ErrorLevel
	default:
		return zerolog.Nop(), fmt.Errorf("invalid log level %q: want debug, info, warn or error", level)
	}
	return zerolog.New(o).Level(l).With().Timestamp().Logger(), nil
}
