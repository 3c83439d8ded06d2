package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Config is what the flags select; see main.go for their meaning.
type Config struct {
	Duration   time.Duration
	Warmup     time.Duration
	Conns      int
	Rate       uint64
	Scenarios  map[string]bool
	MaxineBin  string
	NginxBin   string
	HAProxyBin string
	WrkBin     string // "" when wrk is not installed (or -wrk off)
	RedisBin   string // redis-server for the redis state-mode rows; "" when not installed (or -redis off)
	CPUProfile string
	Nodes      int // nodes registered for the discovery-at-scale and RSS figures
	Services   int // services those nodes are spread over
	MaxReqs    uint64
	Repeat     int    // rounds of each comparison, targets interleaved; the median is reported
	CPUs       int    // CPU budget of every target: maxine's GOMAXPROCS, nginx workers, HAProxy threads (0: defaultCPUs)
	RegNodeCap uint64 // --max-nodes of the distinct-registration maxine, shared out over its rounds (0: defaultRegNodeCap)
}

// defaultRegNodeCap is the registry size the distinct-registration
// maxine is allowed (its --max-nodes): every round adds new nodes to it,
// so it must hold all rounds' nodes, and each round may send at most its
// share (regNodeCap / Repeat) so that none runs into the cap, where the
// registry answers 503.
const defaultRegNodeCap = 1_000_000

// regNodeCap returns the distinct-registration maxine's node cap.
func (c *Config) regNodeCap() uint64 {
	if c.RegNodeCap == 0 {
		return defaultRegNodeCap
	}
	return c.RegNodeCap
}

// defaultCPUs is the CPU budget every target gets unless -cpus says
// otherwise: SPEC section 9 compares with HAProxy at 2 threads, so nginx
// runs 2 workers and maxine GOMAXPROCS 2. Without one shared budget a Go
// process would take every core while the others are held to two.
const defaultCPUs = 2

// cpus returns the CPU budget of every target.
func (c *Config) cpus() int {
	if c.CPUs <= 0 {
		return defaultCPUs
	}
	return c.CPUs
}

// Bench runs the scenarios and collects their rows. Scenarios run one at
// a time; each starts the processes it needs and stops them before it
// returns, and measurements never overlap, so each has the machine (and
// its neighbours) to itself.
type Bench struct {
	cfg       Config
	runDir    string
	maxineBin string   // "" when no binary could be built
	help      string   // `maxine --help`, to detect optional flags
	profiles  []string // CPU profiles maxine was asked to write
	rows      []Row
	notes     []string
}

func (b *Bench) note(format string, args ...any) {
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
}

func (b *Bench) add(r Row) { b.rows = append(b.rows, r) }

// skipRow records that a measurement could not be taken, and why.
func (b *Bench) skipRow(scenario, target, why string) {
	b.add(Row{Scenario: scenario, Target: target, Verdict: verdictSkip, Note: why})
}

// load returns a Load on addr with the run's connection count and window.
func (b *Bench) load(addr string, expect int, f RequestFactory) *Load {
	return &Load{
		Addr:        addr,
		Conns:       b.cfg.Conns,
		Warmup:      b.cfg.Warmup,
		Duration:    b.cfg.Duration,
		MaxRequests: b.cfg.MaxReqs,
		Expect:      expect,
		Request:     f,
	}
}

// measureBudget is the hard limit for one measurement.
func (b *Bench) measureBudget() time.Duration {
	return b.cfg.Warmup + b.cfg.Duration + 15*time.Second
}

// startMaxine starts a fresh maxine for one scenario, with the CPU profile
// flag when asked for and supported.
func (b *Bench) startMaxine(ctx context.Context, label string, extra ...string) (*Maxine, error) {
	if b.maxineBin == "" {
		return nil, errSkip
	}
	if b.cfg.CPUProfile != "" && supportsFlag(b.help, "cpuprofile") {
		path := b.cfg.CPUProfile + "." + label
		extra = append(extra, "--cpuprofile", path)
		b.profiles = append(b.profiles, path)
	}
	return StartMaxine(ctx, b.maxineBin, b.runDir, MaxineOptions{Label: label, ExtraArgs: extra, CPUs: b.cfg.cpus()})
}

// bulkRegister registers the numbers [first, first+count) as fast as the
// connections allow, bounded by limit.
func (b *Bench) bulkRegister(ctx context.Context, m *Maxine, shape regShape, first, count uint64, limit time.Duration) (Stats, error) {
	l := b.load(m.AdminAddr, 200, registerRequests(m.AdminAddr, shape, first))
	l.Warmup, l.Duration, l.MaxRequests = 0, limit, count
	st := l.RunClosed(ctx)
	if got := st.OK; got != count {
		return st, fmt.Errorf("registered %d of %d nodes in %s (%d errors, first: %s)", got, count, limit, st.Errors, st.FirstErr)
	}
	return st, nil
}

func maxineSkipReason(err error) string {
	if err == errSkip {
		return "no maxine binary (see the note below)"
	}
	return err.Error()
}

// stopReason explains why a scenario's context ended.
func stopReason(ctx context.Context) string {
	if ctx.Err() == context.DeadlineExceeded {
		return "scenario hard timeout reached"
	}
	return "interrupted"
}

// ---- targets and rounds ----------------------------------------------------

// target is one server under load in a comparison: a maxine listener,
// nginx or HAProxy. addr is "" when it could not be started; why says why.
type target struct {
	name   string
	addr   string
	path   string // the GET path wrk sends, when it is one fixed path
	why    string
	expect int
	req    RequestFactory
	stop   func()
	// maxReqs, when > 0, caps each of its rounds below cfg.MaxReqs.
	maxReqs uint64
}

func stopAll(ts []*target) {
	for _, t := range ts {
		if t.stop != nil {
			t.stop()
			t.stop = nil
		}
	}
}

// measureRounds measures every available target cfg.Repeat times,
// interleaved (all targets in round 1, then all in round 2, …) so that a
// noisy neighbour hurts them alike. For a target with no runs, why[i]
// says why.
func (b *Bench) measureRounds(ctx context.Context, ts []*target, run func(*target, *Load) Stats) (runs [][]Stats, why []string) {
	runs = make([][]Stats, len(ts))
	why = make([]string, len(ts))
	for i, t := range ts {
		why[i] = t.why
	}
	for range max(b.cfg.Repeat, 1) {
		for i, t := range ts {
			if t.addr == "" {
				continue
			}
			if ctx.Err() != nil {
				why[i] = stopReason(ctx)
				continue
			}
			l := b.load(t.addr, t.expect, t.req)
			if t.maxReqs > 0 {
				l.MaxRequests = min(l.MaxRequests, t.maxReqs)
			}
			runs[i] = append(runs[i], run(t, l))
		}
	}
	return runs, why
}

// median returns the median run by key, where a larger key is better;
// with an even count it takes the worse of the two middle runs, so a
// lucky round never decides a bar. The note lists every round's key so
// the spread is visible. nil when empty.
func median(runs []Stats, key func(*Stats) float64, show func(*Stats) string) (*Stats, string) {
	if len(runs) == 0 {
		return nil, ""
	}
	if len(runs) == 1 {
		return &runs[0], ""
	}
	idx := make([]int, len(runs))
	shown := make([]string, len(runs))
	for i := range runs {
		idx[i] = i
		shown[i] = show(&runs[i])
	}
	sort.SliceStable(idx, func(a, b int) bool { return key(&runs[idx[a]]) < key(&runs[idx[b]]) })
	return &runs[idx[(len(idx)-1)/2]], fmt.Sprintf("median of %d rounds (%s)", len(runs), strings.Join(shown, ", "))
}

// closedRounds runs closed-loop rounds and returns each target's median
// run by throughput (nil when not measured) and the rows, unjudged.
func (b *Bench) closedRounds(ctx context.Context, scenario string, ts []*target) ([]*Stats, []*Row) {
	runs, why := b.measureRounds(ctx, ts, func(_ *target, l *Load) Stats { return l.RunClosed(ctx) })
	return b.rowsFor(scenario, ts, runs, why, (*Stats).RPS, func(s *Stats) string { return fmtRPS(s.RPS()) + " rps" })
}

// openRounds runs open-loop rounds at cfg.Rate and returns each target's
// median run by p99 and the rows, unjudged.
func (b *Bench) openRounds(ctx context.Context, scenario string, ts []*target) ([]*Stats, []*Row) {
	runs, why := b.measureRounds(ctx, ts, func(_ *target, l *Load) Stats { return l.RunOpen(ctx, b.cfg.Rate) })
	stats, rows := b.rowsFor(scenario, ts, runs, why,
		func(s *Stats) float64 { return -float64(p99(s)) },
		func(s *Stats) string { return "p99 " + fmtLatency(p99(s)) })
	for i, r := range rows {
		if stats[i] != nil {
			appendNote(r, "generator send lag p99 "+fmtLatency(stats[i].SendLagP99))
		}
	}
	return stats, rows
}

// wrkRounds is closedRounds with wrk as the client, on each target's
// fixed path.
func (b *Bench) wrkRounds(ctx context.Context, scenario string, w *Wrk, ts []*target) ([]*Stats, []*Row) {
	runs, why := b.measureRounds(ctx, ts, func(t *target, l *Load) Stats { return w.Run(ctx, l, t.path) })
	return b.rowsFor(scenario, ts, runs, why, (*Stats).RPS, func(s *Stats) string { return fmtRPS(s.RPS()) + " rps" })
}

func p99(s *Stats) time.Duration { return s.Hist.Quantile(0.99) }

// rowsFor picks each target's median run and adds one row per target,
// in target order: a skip row when it was not measured, FAIL (or skip
// when cut short) when any of its rounds is unhealthy; a failure in a
// round the median did not pick still fails the row, and the failed
// column sums every round. It returns the healthy
// medians (nil otherwise) and pointers to the rows, valid until the next
// add, for the caller to judge against its bars.
func (b *Bench) rowsFor(scenario string, ts []*target, runs [][]Stats, why []string, key func(*Stats) float64, show func(*Stats) string) ([]*Stats, []*Row) {
	stats := make([]*Stats, len(ts))
	first := len(b.rows)
	for i, t := range ts {
		st, note := median(runs[i], key, show)
		if st == nil {
			b.skipRow(scenario, t.name, why[i])
			continue
		}
		r := rowFromStats(scenario, t.name, st)
		appendNote(&r, note)
		r.Errors = 0
		worst := st
		for k := range runs[i] {
			run := &runs[i][k]
			r.Errors += run.Errors + run.Missed
			if worst.healthy() && !run.healthy() {
				worst = run
			}
		}
		switch {
		case worst == st:
		case worst.Errors+worst.Missed > 0:
			appendNote(&r, fmt.Sprintf("another round failed: %d errors, first: %s", worst.Errors+worst.Missed, worst.FirstErr))
		default:
			appendNote(&r, "another round was cut short: "+worst.Stopped)
		}
		if worst.healthy() {
			stats[i] = st
		} else {
			r.Verdict = unhealthyVerdict(worst)
		}
		b.add(r)
	}
	rows := make([]*Row, len(ts))
	for i := range ts {
		rows[i] = &b.rows[first+i]
	}
	return stats, rows
}

func appendNote(r *Row, note string) {
	switch {
	case note == "":
	case r.Note == "":
		r.Note = note
	default:
		r.Note += "; " + note
	}
}

// ---- scenario 1: registrations -----------------------------------------

const regScenario = "registrations/s"

// Registrations measures (a) registrations of distinct new nodes spread
// over 1,000 services and (b) re-heartbeats of a fixed set of 1,000 nodes,
// each on a fresh maxine, closed loop, against the spec's absolute bar.
func (b *Bench) Registrations(ctx context.Context) {
	b.registrationRows(ctx, regScenario, "maxine", barRegistrations, func(ctx context.Context, label string, extra ...string) (*Maxine, error) {
		return b.startMaxine(ctx, label, extra...)
	}, nil)
}

// registrationRows measures the two registration cases, (a) distinct new
// nodes and (b) re-heartbeats, each on a fresh maxine from start, and
// judges them by bar. check, when set, runs after a case's rounds on its
// maxine and fails the row when it returns an error.
func (b *Bench) registrationRows(ctx context.Context, scenario, who string, bar Bar, start func(ctx context.Context, label string, extra ...string) (*Maxine, error), check func() error) {
	distinct := regShape{servicePrefix: "reg-", services: 1000, nodePrefix: "node-", port: portFor, timeOut: 600}
	heartbeat := regShape{servicePrefix: "hb-", services: 100, nodePrefix: "node-", nodes: 1000, port: portFor, timeOut: 600}
	cases := []struct {
		target  string
		label   string
		shape   regShape
		prefill uint64
	}{
		{who + ": distinct new nodes, 1,000 services", "register-distinct", distinct, 0},
		{who + ": re-heartbeats of 1,000 nodes", "register-heartbeat", heartbeat, 1000},
	}
	for _, c := range cases {
		if ctx.Err() != nil {
			b.skipRow(scenario, c.target, stopReason(ctx))
			continue
		}
		var extra []string
		if c.shape.nodes == 0 && supportsFlag(b.help, "max-nodes") { // distinct new nodes: see defaultRegNodeCap
			extra = []string{"--max-nodes", strconv.FormatUint(b.cfg.regNodeCap(), 10)}
		}
		m, err := start(ctx, c.label, extra...)
		if err != nil {
			b.skipRow(scenario, c.target, maxineSkipReason(err))
			continue
		}
		if c.prefill > 0 {
			if _, err := b.bulkRegister(ctx, m, c.shape, 0, c.prefill, 30*time.Second); err != nil {
				m.Stop()
				b.skipRow(scenario, c.target, err.Error())
				continue
			}
		}
		t := &target{name: c.target, addr: m.AdminAddr, expect: 200, req: registerRequests(m.AdminAddr, c.shape, c.prefill), stop: m.Stop}
		if len(extra) > 0 {
			t.maxReqs = max(b.cfg.regNodeCap()/uint64(max(b.cfg.Repeat, 1)), 1)
		}
		stats, rows := b.closedRounds(ctx, scenario, []*target{t})
		var checkErr error
		if check != nil && stats[0] != nil {
			checkErr = check()
		}
		stopAll([]*target{t})
		switch {
		case checkErr != nil:
			rows[0].Verdict = verdictFail
			appendNote(rows[0], checkErr.Error())
		case stats[0] != nil:
			rows[0].judge([]Bar{bar}, []float64{stats[0].RPS()})
		}
	}
}

// ---- scenarios 2–4: discovery, RSS, nginx return 302 ---------------------

const (
	discScenario    = "redirect discovery"
	discWrkScenario = "redirect discovery (wrk)"
	rssScenario     = "RSS"
)

// Discovery compares redirect discoveries on a maxine holding 10 nodes
// (one service), nginx `return 302`, and a second maxine holding cfg.Nodes
// nodes in cfg.Services services (discoveries spread uniformly over them),
// measured in interleaved rounds. The second maxine's RSS is read right
// after it is filled. withDiscovery/withRSS select the parts.
func (b *Bench) Discovery(ctx context.Context, withDiscovery, withRSS bool) {
	nodes, services := uint64(b.cfg.Nodes), uint64(b.cfg.Services)
	scale := fmtRPS(float64(nodes)) + " nodes / " + fmtRPS(float64(services)) + " services"
	small := &target{name: "maxine, 10 nodes", expect: 302}
	nginx := &target{name: fmt.Sprintf("nginx return 302 (%d workers)", b.cfg.cpus()), expect: 302}
	big := &target{name: "maxine, " + scale, expect: 302}
	bare := &target{name: fmt.Sprintf("bare fasthttp 302 (calibration, GOMAXPROCS %d)", b.cfg.cpus()), expect: 302}
	ts := []*target{small, nginx, big, bare}
	defer stopAll(ts)

	if withDiscovery {
		b.tenNodeTarget(ctx, small, "discovery-10", nil)
		switch n, err := b.startNginx(ctx, "redirect", ""); {
		case err != nil:
			nginx.why = err.Error()
		default:
			nginx.addr, nginx.path, nginx.stop, nginx.req = n.Addr, "/x", n.Stop, getRequests(n.Addr, "/x")
		}
		if c, err := StartCalibrationRedirect(ctx, b.runDir, b.cfg.cpus()); err != nil {
			bare.why = err.Error()
		} else {
			bare.addr, bare.path, bare.stop, bare.req = c.Addr, "/x", c.Stop, getRequests(c.Addr, "/x")
		}
	} else {
		bare.why = "discovery not selected"
	}

	var rssRow *Row
	var capacity []string // the registry must hold the fill, whatever its default limits
	if supportsFlag(b.help, "max-nodes") && supportsFlag(b.help, "max-services") {
		capacity = []string{"--max-nodes", strconv.FormatUint(nodes, 10), "--max-services", strconv.FormatUint(services, 10)}
	}
	if m, err := b.startMaxine(ctx, "discovery-large", capacity...); err != nil {
		big.why = maxineSkipReason(err)
	} else {
		big.stop = m.Stop
		shape := regShape{servicePrefix: "disc-", services: services, perService: max(nodes/services, 1), nodePrefix: "n-", port: portFor, timeOut: 3600}
		if fill, err := b.bulkRegister(ctx, m, shape, 0, nodes, 120*time.Second); err != nil {
			big.why = err.Error()
		} else {
			b.note("registry fill: %s registered at %s registrations/s (%d connections, closed loop)", scale, fmtRPS(fill.RPS()), b.cfg.Conns)
			big.addr, big.req = m.AdminAddr, discoverRequests(m.AdminAddr, "disc-", int(services))
			if withRSS {
				time.Sleep(time.Second) // let the fill's garbage be collected
				rssRow = &Row{Scenario: rssScenario, Target: big.name}
				if rss, peak, err := m.RSS(); err != nil {
					rssRow.Verdict, rssRow.Note = verdictSkip, err.Error()
				} else {
					rssRow.Note = "peak (VmHWM) " + fmtMB(peak)
					rssRow.judge([]Bar{barRSS}, []float64{float64(rss)})
				}
			}
		}
	}
	if withRSS && rssRow == nil {
		rssRow = &Row{Scenario: rssScenario, Target: big.name, Verdict: verdictSkip, Note: big.why}
	}

	if withDiscovery {
		stats, rows := b.closedRounds(ctx, discScenario, ts)
		judgeDiscovery(rows, stats)
		// The external client's view, the one that counts: maxine's
		// 10-node service against nginx (the 100,000-node rows spread
		// their requests over many services, which wrk's one path cannot).
		if b.cfg.WrkBin == "" {
			b.note("%s: wrk not installed (or -wrk off): the external client's figures, the ones that count, are missing", discWrkScenario)
		} else if w, err := NewWrk(b.cfg.WrkBin, b.runDir); err != nil {
			b.note("%s: %v", discWrkScenario, err)
		} else {
			stats, rows := b.wrkRounds(ctx, discWrkScenario, w, []*target{small, nginx, bare})
			judgeVersus(rows[0], stats[0], stats[1], barRedirectNginx)
			calibrated(rows[2], stats[0], stats[2])
		}
	}
	if rssRow != nil {
		b.add(*rssRow)
	}
}

// soloDiscoverPath is the redirect discovery of the 10-node registry's
// one service, solo-0.
const soloDiscoverPath = "/api/maxine/serviceops/discover?endPoint=/x&serviceName=solo-0"

// tenNodeTarget makes t a maxine holding 10 nodes in one service, solo-0,
// under discovery: it starts the maxine (label, extra flags), registers
// the nodes, runs check (when set), and waits until the discovery
// redirects. On failure t.why says why.
func (b *Bench) tenNodeTarget(ctx context.Context, t *target, label string, check func() error, extra ...string) {
	m, err := b.startMaxine(ctx, label, extra...)
	if err != nil {
		t.why = maxineSkipReason(err)
		return
	}
	t.stop = m.Stop
	solo := regShape{servicePrefix: "solo-", services: 1, nodePrefix: "solo-n-", port: portFor, timeOut: 3600}
	if _, err := b.bulkRegister(ctx, m, solo, 0, 10, 10*time.Second); err != nil {
		t.why = err.Error()
		return
	}
	if check != nil {
		if err := check(); err != nil {
			t.why = err.Error()
			return
		}
	}
	url := "http://" + m.AdminAddr + soloDiscoverPath
	var code int
	for range 50 { // a registration reaches the discovery tables at once in local mode, within 1 s in redis mode
		if code, _, err = probe(url); err == nil && code == 302 {
			t.addr, t.path, t.req = m.AdminAddr, soloDiscoverPath, discoverRequests(m.AdminAddr, "solo-", 1)
			return
		}
		if ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.why = fmt.Sprintf("discovery of solo-0 answered %d (%v), not 302, 5 s after its nodes were registered", code, err)
}

// judgeDiscovery judges the discovery rows, in target order: maxine with
// 10 nodes, nginx return 302, maxine at scale.
func judgeDiscovery(rows []*Row, stats []*Stats) {
	judgeVersus(rows[0], stats[0], stats[1], barRedirectNginx)
	judgeVersus(rows[2], stats[2], stats[0], barFlatRPS, barFlatP99)
	if len(rows) > 3 {
		calibrated(rows[3], stats[0], stats[3])
	}
}

// calibrated shows on the calibration target's row how much of the
// engine's ceiling maxine kept (informational, not a bar).
func calibrated(r *Row, maxine, bare *Stats) {
	if maxine != nil && bare != nil && bare.RPS() > 0 {
		r.Ratio = maxine.RPS() / bare.RPS()
		r.Figure = "maxine/bare " + fmtRatio(r.Ratio)
	}
}

// startNginx starts nginx when it is installed.
func (b *Bench) startNginx(ctx context.Context, label, upstream string) (*Nginx, error) {
	if b.cfg.NginxBin == "" {
		return nil, fmt.Errorf("nginx not found on PATH or in /usr/sbin (or -nginx off)")
	}
	return StartNginx(ctx, b.cfg.NginxBin, b.runDir, label, upstream, b.cfg.cpus())
}

// startHAProxy starts HAProxy when it is installed.
func (b *Bench) startHAProxy(ctx context.Context, upstream string) (*HAProxy, error) {
	if b.cfg.HAProxyBin == "" {
		return nil, fmt.Errorf("haproxy not found on PATH or in /usr/sbin (or -haproxy off)")
	}
	return StartHAProxy(ctx, b.cfg.HAProxyBin, b.runDir, upstream, b.cfg.cpus())
}

// ---- scenarios 5–6: the gateway against HAProxy and nginx ----------------

const (
	proxyScenario = "gateway proxy (closed loop)"
	wrkScenario   = "gateway proxy (wrk, closed loop)"
	fixedScenario = "gateway fixed rate"
	benchService  = "bench"
)

// gatewayTarget starts a maxine, registers the upstream as service
// "bench" (with metadata md, which may be nil) and checks that the
// gateway proxies to it.
func (b *Bench) gatewayTarget(ctx context.Context, name, label string, up *Upstream, md map[string]string, extra ...string) *target {
	t := &target{name: name, expect: 200}
	m, err := b.startMaxine(ctx, label, extra...)
	if err != nil {
		t.why = maxineSkipReason(err)
		return t
	}
	t.stop = m.Stop
	port, _ := strconv.Atoi(up.Addr[strings.LastIndexByte(up.Addr, ':')+1:])
	if err := m.Register(Registration{Service: benchService, Node: "upstream-1", Host: "127.0.0.1", Port: port, TimeOut: 3600, Weight: 1, Metadata: md}); err != nil {
		t.why = err.Error()
		return t
	}
	path := "/" + benchService + "/ping"
	code, body, err := probe("http://" + m.GatewayAddr + path)
	switch {
	case err != nil:
		t.why = fmt.Sprintf("gateway %s not answering (%v): gateway rows skipped", m.GatewayAddr, err)
	case code == 404 || code == 501:
		t.why = fmt.Sprintf("gateway answered %d for the registered service %q: gateway not available in this build, rows skipped", code, benchService)
	case code != 200:
		t.why = fmt.Sprintf("gateway answered %d (%q) for the registered service %q, rows skipped", code, body, benchService)
	case string(body) != string(upstreamBody):
		t.why = fmt.Sprintf("gateway answered 200 with body %q, not the upstream's, rows skipped", body)
	default:
		t.addr, t.path, t.req = m.GatewayAddr, path, getRequests(m.GatewayAddr, path)
	}
	return t
}

// Gateway compares maxine's gateway (metrics on and off) with HAProxy,
// nginx and the bare fasthttp proxy proxying to the same upstream, all
// started once: a closed loop for
// throughput (the bench's generator, then wrk when installed), then an
// open loop at cfg.Rate for latency.
func (b *Bench) Gateway(ctx context.Context, closed, open bool) {
	up, err := StartUpstream()
	if err != nil {
		b.note("gateway scenarios skipped: %v", err)
		return
	}
	defer up.Close()

	gw := b.gatewayTarget(ctx, "maxine gateway", "gateway", up, nil)
	off := &target{name: "maxine gateway (metrics off)", expect: 200}
	switch {
	case b.maxineBin == "":
		off.why = maxineSkipReason(errSkip)
	case !supportsFlag(b.help, "metrics"):
		off.why = "this maxine build has no --metrics flag"
	default:
		off = b.gatewayTarget(ctx, off.name, "gateway-nometrics", up, nil, "--metrics=false")
	}
	hp := &target{name: fmt.Sprintf("HAProxy (nbthread %d)", b.cfg.cpus()), expect: 200}
	if h, err := b.startHAProxy(ctx, up.Addr); err != nil {
		hp.why = err.Error()
	} else {
		hp.addr, hp.path, hp.stop, hp.req = h.Addr, "/ping", h.Stop, getRequests(h.Addr, "/ping")
	}
	ng := &target{name: fmt.Sprintf("nginx (%d workers)", b.cfg.cpus()), expect: 200}
	if n, err := b.startNginx(ctx, "proxy", up.Addr); err != nil {
		ng.why = err.Error()
	} else {
		ng.addr, ng.path, ng.stop, ng.req = n.Addr, "/ping", n.Stop, getRequests(n.Addr, "/ping")
	}
	bare := &target{name: fmt.Sprintf("bare fasthttp proxy (calibration, GOMAXPROCS %d)", b.cfg.cpus()), expect: 200}
	if c, err := StartCalibrationProxy(ctx, b.runDir, up.Addr, b.cfg.cpus()); err != nil {
		bare.why = err.Error()
	} else {
		bare.addr, bare.path, bare.stop, bare.req = c.Addr, "/ping", c.Stop, getRequests(c.Addr, "/ping")
	}
	// Pipelining is a node's opt-in (metadata maxine.pipeline), so it
	// has a row of its own beside the default.
	pipe := &target{name: fmt.Sprintf("maxine gateway (pipelined node, maxine.pipeline %d)", pipelineConns), expect: 200}
	if b.maxineBin == "" {
		pipe.why = maxineSkipReason(errSkip)
	} else {
		pipe = b.gatewayTarget(ctx, pipe.name, "gateway-pipelined", up,
			map[string]string{"maxine.pipeline": strconv.Itoa(pipelineConns)})
	}
	ts := []*target{gw, off, hp, ng, bare, pipe}
	defer stopAll(ts)

	if closed {
		stats, rows := b.closedRounds(ctx, proxyScenario, ts)
		judgeProxy(rows, stats)
		// SPEC section 9: the figures that count are an external
		// client's; the bench's own generator above is the second view.
		if b.cfg.WrkBin == "" {
			b.note("%s: wrk not installed (or -wrk off): the external client's figures, the ones that count, are missing", wrkScenario)
		} else if w, err := NewWrk(b.cfg.WrkBin, b.runDir); err != nil {
			b.note("%s: %v", wrkScenario, err)
		} else {
			stats, rows := b.wrkRounds(ctx, wrkScenario, w, ts)
			judgeProxy(rows, stats)
		}
	}
	if open {
		scenario := fmt.Sprintf("%s (%s rps, open loop)", fixedScenario, fmtRPS(float64(b.cfg.Rate)))
		stats, rows := b.openRounds(ctx, scenario, ts)
		judgeFixedRate(rows, stats)
	}
}

// pipelineConns is the maxine.pipeline of the pipelined gateway row.
const pipelineConns = 2

// maxineRows are the indexes of the maxine targets in Gateway's target
// order: maxine, maxine without metrics, HAProxy, nginx, the bare
// fasthttp proxy, maxine with a pipelined node.
var maxineRows = []int{0, 1, 5}

// judgeProxy judges the closed-loop gateway rows. Each maxine row must
// meet both its bars, against HAProxy and against the bare fasthttp
// proxy.
func judgeProxy(rows []*Row, stats []*Stats) {
	for _, i := range maxineRows {
		judgeAgainst(rows[i], stats[i], versus{barProxyVsHAProxy, stats[2]}, versus{barProxyVsBare, stats[4]})
	}
	if stats[0] != nil && stats[3] != nil { // informational
		rows[3].Ratio = stats[0].RPS() / stats[3].RPS()
		rows[3].Figure = "maxine/nginx " + fmtRatio(rows[3].Ratio)
	}
}

// judgeFixedRate judges the open-loop gateway rows, in the same order
// (the bare fasthttp proxy's latency is shown, not judged).
func judgeFixedRate(rows []*Row, stats []*Stats) {
	for _, i := range maxineRows {
		judgeVersus(rows[i], stats[i], stats[2], barFixedVsHAProxy)
	}
}

// ---- scenario 7: redis state mode ------------------------------------------

const (
	redisRegScenario     = "registrations/s, redis mode (one instance)"
	redisDiscScenario    = "redirect discovery: redis vs local mode"
	redisDiscWrkScenario = "redirect discovery: redis vs local mode (wrk)"
)

// Redis measures maxine in redis state mode against a redis-server the
// bench starts on a free loopback port: (a) registrations/s through one
// instance, distinct new nodes and re-heartbeats as in local mode, each
// maxine on an emptied Redis, against the absolute bar; (b) redirect
// discoveries of a 10-node service from a redis-mode maxine against a
// local-mode one, in interleaved rounds, from the bench's generator and,
// when installed, from wrk (the figures that count): the data plane never
// waits on Redis, so the ratio must stay ≥ 0.95×. Each redis-mode maxine
// must leave keys in Redis, or its rows fail: a silent fallback to local
// mode would otherwise pass.
func (b *Bench) Redis(ctx context.Context) {
	local := &target{name: "maxine, local mode, 10 nodes", expect: 302}
	red := &target{name: "maxine, redis mode, 10 nodes", expect: 302}
	ts := []*target{local, red}
	defer stopAll(ts)
	const who = "maxine, redis mode"

	var r *RedisServer
	why := ""
	if b.cfg.RedisBin == "" {
		why = "redis-server not found on PATH or in /usr/sbin (or -redis off): `make redis-deps` installs it"
	} else if srv, err := StartRedis(ctx, b.cfg.RedisBin, b.runDir); err != nil {
		why = err.Error()
	} else {
		r = srv
		defer r.Stop()
	}
	if r == nil {
		for _, tn := range []string{who + ": distinct new nodes, 1,000 services", who + ": re-heartbeats of 1,000 nodes"} {
			b.skipRow(redisRegScenario, tn, why)
		}
		for _, sc := range []string{redisDiscScenario, redisDiscWrkScenario} {
			for _, t := range ts {
				b.skipRow(sc, t.name, why)
			}
		}
		return
	}
	redisMode := []string{"--state-mode", "redis", "--redis-url", r.URL()}
	inRedis := func() error {
		n, err := r.Keys()
		switch {
		case err != nil:
			return fmt.Errorf("cannot count the keys in Redis: %v", err)
		case n == 0:
			return fmt.Errorf("redis-server holds no keys: this maxine did not keep its registry in Redis")
		}
		return nil
	}

	b.registrationRows(ctx, redisRegScenario, who, barRegistrationsRedis, func(ctx context.Context, label string, extra ...string) (*Maxine, error) {
		if err := r.Flush(); err != nil {
			return nil, fmt.Errorf("cannot empty Redis: %w", err)
		}
		return b.startMaxine(ctx, "redis-"+label, append(extra, redisMode...)...)
	}, inRedis)

	if err := r.Flush(); err != nil {
		red.why = fmt.Sprintf("cannot empty Redis: %v", err)
	} else {
		b.tenNodeTarget(ctx, red, "redis-discovery", inRedis, redisMode...)
	}
	b.tenNodeTarget(ctx, local, "local-discovery", nil)

	stats, rows := b.closedRounds(ctx, redisDiscScenario, ts)
	judgeRedisDiscovery(rows, stats)
	if b.cfg.WrkBin == "" {
		b.note("%s: wrk not installed (or -wrk off): the external client's figures, the ones that count, are missing", redisDiscWrkScenario)
	} else if w, err := NewWrk(b.cfg.WrkBin, b.runDir); err != nil {
		b.note("%s: %v", redisDiscWrkScenario, err)
	} else {
		stats, rows := b.wrkRounds(ctx, redisDiscWrkScenario, w, ts)
		judgeRedisDiscovery(rows, stats)
	}
}

// judgeRedisDiscovery judges the redis-mode discovery row against the
// local-mode one, in target order: local mode, redis mode.
func judgeRedisDiscovery(rows []*Row, stats []*Stats) {
	judgeVersus(rows[1], stats[1], stats[0], barRedisVsLocal)
}
