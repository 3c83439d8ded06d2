package main

import (
	"strings"
)

// Bar is one pass/fail condition of SPEC section 9: a measured figure
// (rps, p99, VmRSS), absolute or as a ratio to another target, compared
// with a limit. The bar column's text and the verdict are both derived
// from the same Bar, so a row can never print one condition and judge
// another.
type Bar struct {
	Figure string               // what is measured: "rps", "messages/s" (WebSocket echoes), "p99", "VmRSS"
	AtMost bool                 // the figure must be ≤ Limit; otherwise ≥ Limit
	Limit  float64              // in the unit Format renders
	Versus string               // for a ratio, what it is a ratio to ("HAProxy"); "" for an absolute figure
	Format func(float64) string // renders Limit and the measured value
}

// The bars the bench judges, with SPEC section 9's "bar now" values
// (barProxyVsHAProxy is stricter than the spec's 0.7×).
var (
	barRegistrations  = Bar{Figure: "rps", Limit: 20000, Format: fmtRPS}
	barRedirectNginx  = Bar{Figure: "rps", Limit: 0.8, Versus: "nginx return 302", Format: fmtRatio}
	barFlatRPS        = Bar{Figure: "rps", Limit: 0.83, Versus: "10 nodes", Format: fmtRatio}
	barFlatP99        = Bar{Figure: "p99", AtMost: true, Limit: 1.2, Versus: "10 nodes", Format: fmtRatio}
	barRSS            = Bar{Figure: "VmRSS", AtMost: true, Limit: 500e6, Format: func(v float64) string { return fmtMB(uint64(v)) }}
	barProxyVsHAProxy = Bar{Figure: "rps", Limit: 0.8, Versus: "HAProxy", Format: fmtRatio}
	barProxyVsBare    = Bar{Figure: "rps", Limit: 0.95, Versus: "bare fasthttp proxy", Format: fmtRatio}
	barFixedVsHAProxy = Bar{Figure: "p99", AtMost: true, Limit: 1.5, Versus: "HAProxy", Format: fmtRatio}

	barRegistrationsRedis = Bar{Figure: "rps", Limit: 5000, Format: fmtRPS}
	barRedisVsLocal       = Bar{Figure: "rps", Limit: 0.95, Versus: "local mode", Format: fmtRatio}

	barWebSocket = Bar{Figure: "messages/s", Limit: 0.5, Versus: "direct to the node", Format: fmtRatio}
)

// allBars lists every bar, for the tests.
var allBars = []Bar{barRegistrations, barRedirectNginx, barFlatRPS, barFlatP99, barRSS, barProxyVsHAProxy, barProxyVsBare, barFixedVsHAProxy, barRegistrationsRedis, barRedisVsLocal, barWebSocket}

// Holds reports whether the measured value v meets the bar.
func (b Bar) Holds(v float64) bool {
	if b.AtMost {
		return v <= b.Limit
	}
	return v >= b.Limit
}

// Text is the bar column: "p99 ≤ 1.50× HAProxy".
func (b Bar) Text() string {
	op := "≥"
	if b.AtMost {
		op = "≤"
	}
	return b.describe(op + " " + b.Format(b.Limit))
}

// Measured is the figure column for the value v: "p99 1.23× HAProxy".
func (b Bar) Measured(v float64) string { return b.describe(b.Format(v)) }

func (b Bar) describe(value string) string {
	s := b.Figure + " " + value
	if b.Versus != "" {
		s += " " + b.Versus
	}
	return s
}

// judge sets the ratio, figure, bar and verdict columns of r from bars
// and their measured values (same length, in the same order): it passes
// when every bar holds. Ratio keeps the first value.
func (r *Row) judge(bars []Bar, values []float64) {
	figures := make([]string, len(bars))
	texts := make([]string, len(bars))
	ok := true
	for i, b := range bars {
		figures[i] = b.Measured(values[i])
		texts[i] = b.Text()
		ok = ok && b.Holds(values[i])
	}
	r.Ratio = values[0]
	r.Figure = strings.Join(figures, ", ")
	r.Bar = strings.Join(texts, " and ")
	r.Verdict = verdict(ok)
}

// judgeVersus judges r by ratios of num to den, one per bar, when both
// measurements are healthy and r has no verdict yet.
func judgeVersus(r *Row, num, den *Stats, bars ...Bar) {
	if r.Verdict != "" || num == nil || den == nil {
		return
	}
	values := make([]float64, len(bars))
	for i, b := range bars {
		values[i] = b.ratio(num, den)
	}
	r.judge(bars, values)
}

// ratio is the bar's figure of num over den: rps (or messages/s, the
// WebSocket rows' rps) or p99.
func (b Bar) ratio(num, den *Stats) float64 {
	switch b.Figure {
	case "rps", "messages/s":
		return num.RPS() / den.RPS()
	case "p99":
		return float64(p99(num)) / float64(p99(den))
	}
	panic("bench: no ratio for figure " + b.Figure)
}

// versus pairs a bar with the measurement its ratio is taken against.
type versus struct {
	bar Bar
	den *Stats
}

// judgeAgainst judges r by every bar whose reference was measured (den
// non-nil), when num is healthy and r has no verdict yet; a row with no
// measured reference stays unjudged.
func judgeAgainst(r *Row, num *Stats, vs ...versus) {
	if r.Verdict != "" || num == nil {
		return
	}
	var bars []Bar
	var values []float64
	for _, v := range vs {
		if v.den != nil {
			bars = append(bars, v.bar)
			values = append(values, v.bar.ratio(num, v.den))
		}
	}
	if len(bars) > 0 {
		r.judge(bars, values)
	}
}
