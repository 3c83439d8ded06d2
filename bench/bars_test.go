package main

import (
	"strings"
	"testing"
	"time"
)

// measured returns a healthy run of rps requests in one second, every one
// taking p99.
func measured(rps uint64, p99 time.Duration) *Stats {
	st := &Stats{OK: rps, Elapsed: time.Second}
	st.Hist.RecordN(p99, rps)
	return st
}

func judgedRows(n int) []*Row {
	rows := make([]*Row, n)
	for i := range rows {
		rows[i] = &Row{}
	}
	return rows
}

// TestBarsJudgeWhatTheySay: every bar judges exactly the condition its
// text states, at the limit SPEC section 9 sets.
func TestBarsJudgeWhatTheySay(t *testing.T) {
	small := measured(10000, time.Millisecond)
	cases := []struct {
		name    string
		judge   func(rows []*Row, stats []*Stats)
		stats   []*Stats
		row     int
		verdict string
	}{
		// discovery: 10 nodes, nginx return 302, 100,000 nodes
		{"100k nodes: same rps, p99 2× the 10-node p99 (bar: latency ≤ 1.2×)", judgeDiscovery,
			[]*Stats{small, measured(10000, time.Millisecond), measured(10000, 2*time.Millisecond)}, 2, verdictFail},
		{"100k nodes: rps 0.9×, p99 1.1×", judgeDiscovery,
			[]*Stats{small, measured(10000, time.Millisecond), measured(9000, 1100*time.Microsecond)}, 2, verdictPass},
		{"100k nodes: rps 0.8×, p99 1×", judgeDiscovery,
			[]*Stats{small, measured(10000, time.Millisecond), measured(8000, time.Millisecond)}, 2, verdictFail},
		{"redirect 0.75× nginx (SPEC: ≥ 0.8×)", judgeDiscovery,
			[]*Stats{measured(7500, time.Millisecond), measured(10000, time.Millisecond), nil}, 0, verdictFail},
		{"redirect 0.85× nginx", judgeDiscovery,
			[]*Stats{measured(8500, time.Millisecond), measured(10000, time.Millisecond), nil}, 0, verdictPass},
		// gateway: maxine, maxine without metrics, HAProxy, nginx, bare fasthttp proxy, maxine with a pipelined node
		{"fixed rate: p99 1.8× HAProxy (SPEC: ≤ 1.5×)", judgeFixedRate,
			[]*Stats{measured(5000, 1800*time.Microsecond), nil, measured(5000, time.Millisecond), nil, nil, nil}, 0, verdictFail},
		{"fixed rate: p99 1.4× HAProxy", judgeFixedRate,
			[]*Stats{measured(5000, 1400*time.Microsecond), nil, measured(5000, time.Millisecond), nil, nil, nil}, 0, verdictPass},
		{"proxy: 0.75× HAProxy rps", judgeProxy,
			[]*Stats{measured(7500, time.Millisecond), nil, measured(10000, time.Millisecond), nil, nil, nil}, 0, verdictFail},
		{"proxy: 0.85× HAProxy rps", judgeProxy,
			[]*Stats{measured(8500, time.Millisecond), nil, measured(10000, time.Millisecond), nil, nil, nil}, 0, verdictPass},
		{"proxy: 1.2× HAProxy but 0.9× the bare fasthttp proxy (SPEC: ≥ 0.95×)", judgeProxy,
			[]*Stats{measured(9000, time.Millisecond), nil, measured(7500, time.Millisecond), nil, measured(10000, time.Millisecond), nil}, 0, verdictFail},
		{"proxy: 1.2× HAProxy and 0.96× the bare fasthttp proxy", judgeProxy,
			[]*Stats{measured(9600, time.Millisecond), nil, measured(8000, time.Millisecond), nil, measured(10000, time.Millisecond), nil}, 0, verdictPass},
		{"proxy, pipelined node: 1.1× HAProxy and 1.05× the bare fasthttp proxy", judgeProxy,
			[]*Stats{nil, nil, measured(10000, time.Millisecond), nil, measured(10500, time.Millisecond), measured(11000, time.Millisecond)}, 5, verdictPass},
		{"proxy, pipelined node: 0.9× the bare fasthttp proxy", judgeProxy,
			[]*Stats{nil, nil, measured(8000, time.Millisecond), nil, measured(10000, time.Millisecond), measured(9000, time.Millisecond)}, 5, verdictFail},
		{"fixed rate, pipelined node: p99 1.6× HAProxy", judgeFixedRate,
			[]*Stats{nil, nil, measured(5000, time.Millisecond), nil, nil, measured(5000, 1600*time.Microsecond)}, 5, verdictFail},
		// discovery in redis mode: local mode, redis mode
		{"redis-mode discovery 0.9× local mode (SPEC: ≥ 0.95×)", judgeRedisDiscovery,
			[]*Stats{measured(10000, time.Millisecond), measured(9000, time.Millisecond)}, 1, verdictFail},
		{"redis-mode discovery 0.96× local mode", judgeRedisDiscovery,
			[]*Stats{measured(10000, time.Millisecond), measured(9600, time.Millisecond)}, 1, verdictPass},
	}
	for _, c := range cases {
		rows := judgedRows(len(c.stats))
		c.judge(rows, c.stats)
		r := rows[c.row]
		if r.Verdict != c.verdict {
			t.Errorf("%s: verdict %q, want %q (figure %q, bar %q)", c.name, r.Verdict, c.verdict, r.Figure, r.Bar)
		}
	}
	// Registrations in redis mode have their own absolute bar, ≥ 5,000/s.
	for _, c := range []struct {
		rps     float64
		verdict string
	}{{4999, verdictFail}, {5000, verdictPass}} {
		var r Row
		r.judge([]Bar{barRegistrationsRedis}, []float64{c.rps})
		if r.Verdict != c.verdict || !strings.Contains(r.Bar, "5,000") {
			t.Errorf("redis registrations at %.0f/s: verdict %q (bar %q), want %q", c.rps, r.Verdict, r.Bar, c.verdict)
		}
	}
	// The at-scale discovery bar promises flat latency: its text names p99
	// and the verdict above depends on it.
	rows := judgedRows(3)
	judgeDiscovery(rows, []*Stats{small, nil, measured(10000, time.Millisecond)})
	if !strings.Contains(rows[2].Bar, "p99") || !strings.Contains(rows[2].Figure, "p99") {
		t.Errorf("at-scale discovery: bar %q / figure %q do not show the latency they judge", rows[2].Bar, rows[2].Figure)
	}
}

// TestCalibrationRowShowsTheCeilingKept: the discovery calibration row
// shows maxine's rps over the bare fasthttp 302 server's, unjudged.
func TestCalibrationRowShowsTheCeilingKept(t *testing.T) {
	stats := []*Stats{measured(8000, time.Millisecond), measured(10000, time.Millisecond), nil, measured(10000, time.Millisecond)}
	rows := judgedRows(4)
	judgeDiscovery(rows, stats)
	if r := rows[3]; r.Figure != "maxine/bare 0.80×" || r.Verdict != "" {
		t.Errorf("calibration row: figure %q, verdict %q", r.Figure, r.Verdict)
	}
}
