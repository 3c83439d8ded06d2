package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// wrkScript is loaded into every wrk run: its done() prints one line the
// bench parses, "bench-wrk <requests> <duration µs> <socket errors>
// <status errors> <p50 µs> <p99 µs> <p99.9 µs> <max µs>".
const wrkScript = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("bench-wrk %d %d %d %d %d %d %d %d\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
`

// Wrk drives a target with the external load generator wrk, the client
// whose figures count (SPEC section 9): a closed loop of Load.Conns
// connections over min(Conns, NumCPU) threads, one GET path. wrk has no
// warm-up and whole-second durations: a warm-up run of Warmup (rounded to
// seconds; none below 1 s) is discarded, then one run of Duration
// (rounded up to at least 1 s) is measured.
//
// wrk reports no histogram, so the Stats it returns carry a stand-in
// (histFromPercentiles) that is exact at p50, p99, p99.9 and the max only.
// It counts only responses ≥ 400 as status errors, and keeps failed
// requests out of its percentiles; any failure fails the row anyway
// (Stats.healthy), so those percentiles are never judged.
type Wrk struct {
	Bin    string
	Script string // path of wrkScript on disk
}

// NewWrk writes the script into dir.
func NewWrk(bin, dir string) (*Wrk, error) {
	script := filepath.Join(dir, "bench-wrk.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return nil, fmt.Errorf("cannot write %q: %w", script, err)
	}
	return &Wrk{Bin: bin, Script: script}, nil
}

// wrkSeconds rounds d to whole seconds for wrk's -d, up to at least min.
func wrkSeconds(d time.Duration, atLeast int) int {
	return max(int((d+time.Second/2)/time.Second), atLeast)
}

// Run measures GET http://l.Addr<path>. Errors of wrk itself (not
// starting, no result line) come back in FirstErr with OK 0, which makes
// the row FAIL.
func (w *Wrk) Run(ctx context.Context, l *Load, path string) Stats {
	if !strings.HasPrefix(l.Addr, "127.0.0.1:") {
		panic("bench: wrk target " + l.Addr + " is not on 127.0.0.1")
	}
	if secs := wrkSeconds(l.Warmup, 0); secs > 0 {
		if _, err := w.run(ctx, l, path, secs); err != nil {
			return w.failed(ctx, err)
		}
	}
	res, err := w.run(ctx, l, path, wrkSeconds(l.Duration, 1))
	if err != nil {
		return w.failed(ctx, err)
	}
	st := Stats{
		OK:      res.requests - res.statusErrs,
		Errors:  res.socketErrs + res.statusErrs,
		Elapsed: res.duration,
		Hist:    histFromPercentiles(res.p50, res.p99, res.p999, res.max),
	}
	if st.Errors > 0 {
		st.FirstErr = fmt.Sprintf("wrk: %d socket errors (connect, read, write, timeout), %d responses ≥ 400", res.socketErrs, res.statusErrs)
	}
	return st
}

func (w *Wrk) failed(ctx context.Context, err error) Stats {
	st := Stats{FirstErr: err.Error()}
	if ctx.Err() != nil {
		st.Stopped = stopReason(ctx)
	}
	return st
}

// wrkResult is the parsed bench-wrk line; latencies in wrk's µs.
type wrkResult struct {
	requests, socketErrs, statusErrs uint64
	duration, p50, p99, p999, max    time.Duration
}

func (w *Wrk) run(ctx context.Context, l *Load, path string, secs int) (wrkResult, error) {
	threads := max(min(l.Conns, runtime.NumCPU()), 1)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.Bin,
		"-t", strconv.Itoa(threads), "-c", strconv.Itoa(max(l.Conns, threads)),
		"-d", strconv.Itoa(secs)+"s", "--timeout", strconv.Itoa(wrkSeconds(l.timeout(), 1))+"s",
		"-s", w.Script, "http://"+l.Addr+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v: %s", err, firstLine(strings.TrimSpace(string(out))))
	}
	return parseWrk(string(out))
}

// parseWrk finds the bench-wrk line in wrk's output.
func parseWrk(out string) (wrkResult, error) {
	for line := range strings.SplitSeq(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "bench-wrk ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 8 {
			break
		}
		var v [8]uint64
		for i, s := range f {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return wrkResult{}, fmt.Errorf("wrk: bad result line %q", line)
			}
			v[i] = n
		}
		us := func(n uint64) time.Duration { return time.Duration(n) * time.Microsecond }
		return wrkResult{
			requests: v[0], duration: us(v[1]), socketErrs: v[2], statusErrs: v[3],
			p50: us(v[4]), p99: us(v[5]), p999: us(v[6]), max: us(v[7]),
		}, nil
	}
	return wrkResult{}, fmt.Errorf("wrk: no bench-wrk result line in its output: %q", firstLine(strings.TrimSpace(out)))
}

// histFromPercentiles returns a stand-in histogram of 1000 values whose
// nearest-rank quantiles 0.5, 0.99, 0.999 and 1 are p50, p99, p999 and
// max: 500 values at p50, 490 at p99, 9 at p999, 1 at max. Its count,
// mean, minimum and other quantiles mean nothing.
func histFromPercentiles(p50, p99, p999, maxv time.Duration) Histogram {
	var h Histogram
	h.RecordN(p50, 500)
	h.RecordN(p99, 490)
	h.RecordN(p999, 9)
	h.RecordN(maxv, 1)
	return h
}
