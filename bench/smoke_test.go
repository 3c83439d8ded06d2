package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// requireBinary returns the path of name (nginx, haproxy, wrk,
// redis-server) or fails: the
// comparisons are what the bench is for, so a machine without them fails
// loudly instead of passing with a log line.
func requireBinary(t *testing.T, name string) string {
	t.Helper()
	bin := findBinary(name)
	if bin == "" {
		t.Fatalf("%s is not installed (not on PATH nor in /usr/sbin): run `make bench-deps` (apt-get install nginx haproxy wrk redis-server)", name)
	}
	return bin
}

// TestBenchSmoke runs the whole harness once, every scenario, against a
// freshly built maxine, nginx, HAProxy, wrk, redis-server and the WebSocket
// echo node, with windows of a fifth of a second and a few hundred nodes:
// every row must be measured, without a failed request, and the table
// must render. It checks that the
// benchmark-only code runs, not how fast anything is: verdicts are not
// asserted.
func TestBenchSmoke(t *testing.T) {
	cfg := Config{
		Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond,
		Conns: 4, Rate: 200, Nodes: 200, Services: 20, MaxReqs: 20000, Repeat: 1,
		Scenarios:  map[string]bool{},
		NginxBin:   requireBinary(t, "nginx"),
		HAProxyBin: requireBinary(t, "haproxy"),
		WrkBin:     requireBinary(t, "wrk"),
		RedisBin:   requireBinary(t, "redis-server"),
	}
	for _, s := range scenarioNames {
		cfg.Scenarios[s] = true
	}
	b := &Bench{cfg: cfg, runDir: t.TempDir()}
	ctx := testContext(t, 3*time.Minute)
	b.prepareMaxine(ctx, maxineBinary(t))
	b.run(ctx)

	want := map[string]int{
		regScenario: 2, discScenario: 4, discWrkScenario: 3, rssScenario: 1, proxyScenario: 6, wrkScenario: 6,
		redisRegScenario: 2, redisDiscScenario: 2, redisDiscWrkScenario: 2,
	}
	for _, size := range wsSizes { // direct to the echo node, through the gateway
		want[wsScenario(size)] = 2
	}
	fixed := 0
	for _, r := range b.rows {
		if strings.HasPrefix(r.Scenario, fixedScenario) {
			fixed++
		} else {
			want[r.Scenario]--
		}
		if r.Verdict == verdictSkip {
			t.Errorf("%s / %s not measured: %s", r.Scenario, r.Target, r.Note)
			continue
		}
		if r.Scenario != rssScenario && (r.OK == 0 || r.Errors != 0) {
			t.Errorf("%s / %s: %d ok, %d failed: %s", r.Scenario, r.Target, r.OK, r.Errors, r.Note)
		}
		// A redis-mode registration row is judged only when its maxine
		// left keys in Redis; otherwise it fails with no figure.
		if r.Scenario == redisRegScenario && !strings.HasPrefix(r.Figure, "rps ") {
			t.Errorf("%s / %s not judged: %s", r.Scenario, r.Target, r.Note)
		}
		// The WebSocket gateway row is judged against the direct one.
		if strings.HasPrefix(r.Scenario, "WebSocket echo ") && r.Target == "maxine gateway" && !strings.HasPrefix(r.Figure, "messages/s ") {
			t.Errorf("%s / %s not judged: %s", r.Scenario, r.Target, r.Note)
		}
	}
	for s, n := range want {
		if n != 0 {
			t.Errorf("scenario %q: %d rows missing (or extra, if negative)", s, n)
		}
	}
	if fixed != 6 {
		t.Errorf("fixed-rate scenario: %d rows, want 6", fixed)
	}
	var buf bytes.Buffer
	(&Report{Rows: b.rows, Notes: b.notes}).WriteMarkdown(&buf)
	if got := strings.Count("\n"+buf.String(), "\n| "); got != 1+len(b.rows) { // header + rows
		t.Errorf("table has %d lines for %d rows:\n%s", got, len(b.rows), buf.String())
	}
	for _, n := range b.notes {
		if strings.Contains(n, "timeout") || strings.Contains(n, "skipped") {
			t.Errorf("note: %s", n)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("smoke run:\n%s", buf.String())
	}
}
