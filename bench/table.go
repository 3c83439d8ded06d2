package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Verdicts of a row against its bar.
const (
	verdictPass = "pass"
	verdictFail = "FAIL"
	verdictSkip = "skip"
)

// Row is one line of the results table (and one object of the -json
// file). Durations are nanoseconds in JSON.
type Row struct {
	Scenario string        `json:"scenario"`
	Target   string        `json:"target"`
	RPS      float64       `json:"rps,omitempty"`
	P50      time.Duration `json:"p50_ns,omitempty"`
	P99      time.Duration `json:"p99_ns,omitempty"`
	P999     time.Duration `json:"p999_ns,omitempty"`
	OK       uint64        `json:"ok,omitempty"`
	Errors   uint64        `json:"errors,omitempty"` // failed and missed requests, summed over every round
	Ratio    float64       `json:"ratio,omitempty"`  // the compared figure (a ratio, or bytes for RSS)
	Figure   string        `json:"figure,omitempty"`
	Bar      string        `json:"bar,omitempty"`
	Verdict  string        `json:"verdict,omitempty"`
	Note     string        `json:"note,omitempty"`
}

// rowFromStats fills the measured columns of a row.
func rowFromStats(scenario, target string, st *Stats) Row {
	r := Row{
		Scenario: scenario,
		Target:   target,
		RPS:      st.RPS(),
		P50:      st.Hist.Quantile(0.50),
		P99:      st.Hist.Quantile(0.99),
		P999:     st.Hist.Quantile(0.999),
		OK:       st.OK,
		Errors:   st.Errors + st.Missed,
	}
	if r.Errors > 0 {
		r.Note = fmt.Sprintf("%d errors (%.2f %%), first: %s", r.Errors, 100*st.ErrorRate(), st.FirstErr)
	}
	if st.Stopped != "" {
		appendNote(&r, "measurement cut short: "+st.Stopped)
	}
	return r
}

// healthy reports whether a measurement can be judged: it completed
// requests, none failed and none was left unsent, and it ran to its end.
// There is no tolerated failure rate: a proxy that drops 1 % of its
// requests has failed, however fast the other 99 % were.
func (st *Stats) healthy() bool {
	return st.OK > 0 && st.Errors == 0 && st.Missed == 0 && st.Stopped == ""
}

// unhealthyVerdict is the verdict of a measurement that cannot be judged:
// skip when it was cut short, FAIL when the target answered with errors.
func unhealthyVerdict(st *Stats) string {
	if st.Stopped != "" {
		return verdictSkip
	}
	return verdictFail
}

func verdict(ok bool) string {
	if ok {
		return verdictPass
	}
	return verdictFail
}

// fmtRPS renders a rate with thousands separators: 123,456.
func fmtRPS(v float64) string {
	if v <= 0 {
		return "—"
	}
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// fmtLatency renders a latency in milliseconds with 2 significant
// decimals below 10 ms.
func fmtLatency(d time.Duration) string {
	if d <= 0 {
		return "—"
	}
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.0f ms", ms)
	}
}

// fmtRatio renders a ratio as "0.93×".
func fmtRatio(v float64) string { return fmt.Sprintf("%.2f×", v) }

// fmtMB renders bytes as "123.4 MB" (MB = 10^6 bytes, as in the spec's bar).
func fmtMB(b uint64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

// fmtFailed renders the failed-request count; "—" when nothing was measured.
func fmtFailed(r *Row) string {
	if r.OK == 0 && r.Errors == 0 {
		return "—"
	}
	return strconv.FormatUint(r.Errors, 10)
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// mdEscape keeps a cell from breaking the Markdown table.
func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// Report is the whole output of a run.
type Report struct {
	Machine string   `json:"machine"`
	Flags   string   `json:"flags"`
	Rows    []Row    `json:"rows"`
	Notes   []string `json:"notes,omitempty"`
}

// WriteMarkdown prints the table, then the notes, then the machine line.
func (rep *Report) WriteMarkdown(w io.Writer) {
	fmt.Fprintln(w, "| scenario | target | rps | p50 | p99 | p99.9 | failed | ratio | bar | pass/fail |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|---|---|")
	for _, r := range rep.Rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			mdEscape(r.Scenario), mdEscape(r.Target), fmtRPS(r.RPS),
			fmtLatency(r.P50), fmtLatency(r.P99), fmtLatency(r.P999), fmtFailed(&r),
			mdEscape(dash(r.Figure)), mdEscape(dash(r.Bar)), dash(r.Verdict))
	}
	fmt.Fprintln(w)
	for _, r := range rep.Rows {
		if r.Note != "" {
			fmt.Fprintf(w, "- %s / %s: %s\n", r.Scenario, r.Target, r.Note)
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, rep.Machine)
	fmt.Fprintln(w, rep.Flags)
}

// WriteJSON writes the report to path.
func (rep *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("cannot write %q: %w", path, err)
	}
	return nil
}

// machineLine describes where the figures were taken; versions are those
// of the other servers in the run ("" when not run).
func machineLine(versions ...string) string {
	parts := []string{
		fmt.Sprintf("nproc %d", runtime.NumCPU()),
	}
	if m := cpuModel(); m != "" {
		parts = append(parts, m)
	}
	parts = append(parts, runtime.GOOS+"/"+runtime.GOARCH, runtime.Version())
	for _, v := range versions {
		if v != "" {
			parts = append(parts, v)
		}
	}
	parts = append(parts, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	return "Machine: " + strings.Join(parts, " · ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}
