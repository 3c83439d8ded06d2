package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFormatting(t *testing.T) {
	for v, want := range map[float64]string{0: "—", 7: "7", 999: "999", 1000: "1,000", 123456.6: "123,457", 1234567: "1,234,567"} {
		if got := fmtRPS(v); got != want {
			t.Errorf("fmtRPS(%v) = %q, want %q", v, got, want)
		}
	}
	for d, want := range map[time.Duration]string{0: "—", 212 * time.Microsecond: "0.21 ms", 12345 * time.Microsecond: "12.3 ms", 1500 * time.Millisecond: "1500 ms"} {
		if got := fmtLatency(d); got != want {
			t.Errorf("fmtLatency(%s) = %q, want %q", d, got, want)
		}
	}
	if got := fmtMB(412_345_678); got != "412.3 MB" {
		t.Errorf("fmtMB = %q", got)
	}
}

// TestEveryBarFlipsAtItsLimit: each bar passes at its printed limit and
// fails just past it, and its text shows that limit and direction.
func TestEveryBarFlipsAtItsLimit(t *testing.T) {
	for _, b := range allBars {
		past := b.Limit * 0.99
		op := "≥ "
		if b.AtMost {
			past, op = b.Limit*1.01, "≤ "
		}
		if !b.Holds(b.Limit) || b.Holds(past) {
			t.Errorf("%s: holds at limit %v, just past it %v", b.Text(), b.Holds(b.Limit), b.Holds(past))
		}
		if !strings.Contains(b.Text(), op+b.Format(b.Limit)) || !strings.HasPrefix(b.Text(), b.Figure+" ") {
			t.Errorf("bar text %q does not state %s%s for %s", b.Text(), op, b.Format(b.Limit), b.Figure)
		}
	}
	var r Row
	r.judge([]Bar{barFlatRPS, barFlatP99}, []float64{0.9, 1.1})
	if r.Verdict != verdictPass || r.Bar != "rps ≥ 0.83× 10 nodes and p99 ≤ 1.20× 10 nodes" || r.Figure != "rps 0.90× 10 nodes, p99 1.10× 10 nodes" {
		t.Fatalf("both hold: %q / %q / %q", r.Verdict, r.Figure, r.Bar)
	}
	r.judge([]Bar{barFlatRPS, barFlatP99}, []float64{0.9, 1.3})
	if r.Verdict != verdictFail {
		t.Fatal("one bar failing must fail the row")
	}
	r.judge([]Bar{barRSS}, []float64{600e6})
	if r.Verdict != verdictFail || r.Figure != "VmRSS 600.0 MB" || r.Bar != "VmRSS ≤ 500.0 MB" {
		t.Fatalf("RSS: %q / %q / %q", r.Verdict, r.Figure, r.Bar)
	}
}

func TestMarkdownAndJSON(t *testing.T) {
	st := Stats{OK: 1000, Errors: 20, Elapsed: time.Second, FirstErr: "status 502, want 200"}
	for i := range 1000 {
		st.Hist.Record(time.Duration(100+i) * time.Microsecond)
	}
	r := rowFromStats("gateway proxy", "maxine | gw", &st)
	r.judge([]Bar{barProxyVsHAProxy}, []float64{0.9})
	rep := &Report{Machine: "Machine: test", Flags: "Flags: test", Rows: []Row{r, {Scenario: "x", Target: "y", Verdict: verdictSkip, Note: "no binary"}}, Notes: []string{"a note"}}
	var buf bytes.Buffer
	rep.WriteMarkdown(&buf)
	out := buf.String()
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "| scenario | target | rps | p50 | p99 | p99.9 | failed | ratio | bar | pass/fail |") {
		t.Fatalf("header: %q", lines[0])
	}
	for _, want := range []string{`maxine \| gw`, "| 1,000 |", "| 20 |", "0.90× HAProxy", "| pass |", "| skip |", "20 errors (1.96 %)", "- a note", "Machine: test"} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
	// every table line has the same number of cells
	for _, l := range lines[:4] {
		if n := strings.Count(strings.ReplaceAll(l, `\|`, ""), "|"); n != 11 {
			t.Errorf("line %q has %d separators", l, n)
		}
	}
	path := filepath.Join(t.TempDir(), "r.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || len(back.Rows) != 2 || back.Rows[0].RPS != 1000 || back.Rows[0].P99 == 0 {
		t.Fatalf("json round trip: %v %+v", err, back.Rows)
	}
}

func TestParseScenarios(t *testing.T) {
	sel, err := parseScenarios("all")
	if err != nil || len(sel) != len(scenarioNames) {
		t.Fatalf("all: %v %v", sel, err)
	}
	sel, err = parseScenarios("proxy, fixed")
	if err != nil || !sel["proxy"] || !sel["fixed"] || len(sel) != 2 {
		t.Fatalf("proxy,fixed: %v %v", sel, err)
	}
	if _, err := parseScenarios("proxy,bogus"); err == nil {
		t.Fatal("unknown scenario accepted")
	}
	if _, err := parseScenarios(""); err == nil {
		t.Fatal("empty selection accepted")
	}
}
