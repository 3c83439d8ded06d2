// Command bench is Maxine's load-test harness (SPEC section 9).
//
// It builds and starts its own maxine processes on loopback ports, starts
// a fast local upstream, and — when they are installed — nginx and HAProxy
// on the same upstream, drives them all with the same fasthttp load
// generator in the same run, and prints a Markdown table of throughput,
// latency percentiles and the ratios the spec sets bars for:
//
//   - registrations/s: distinct new nodes, and re-heartbeats of 1,000 nodes;
//   - redirect discoveries/s with 10 nodes and with 100,000 nodes in 10,000
//     services, and against nginx `return 302`;
//   - maxine's RSS holding 100,000 nodes;
//   - gateway proxy throughput (closed loop) against HAProxy, nginx and
//     the bare fasthttp proxy (calibration.go),
//     from the bench's generator and, when installed, from wrk (the
//     external client whose figures SPEC section 9 counts);
//   - gateway latency at a fixed request rate (open loop, measured from the
//     intended send time, so stalls are not hidden by coordinated omission);
//   - redis state mode, against a redis-server started on a free loopback
//     port: registrations/s through one instance, and redirect discoveries
//     against a local-mode maxine in interleaved rounds (bench generator
//     and wrk);
//   - WebSocket echo messages/s through the gateway against direct to the
//     node (websocket.go), 64 B and 16 KiB messages.
//
// Figures are only meaningful as ratios within one run on one machine.
// All traffic goes to 127.0.0.1; every load loop is bounded by count and by
// time, and every scenario has a hard timeout.
//
// Run it from the module root:
//
//	go run ./bench                       # everything, one round of each measurement
//	go run ./bench -scenarios proxy,fixed -duration 10s -rate 10000
//	go run ./bench -maxine-bin ./maxine -json results.json
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// scenarioNames are the values -scenarios accepts, in run order.
var scenarioNames = []string{"register", "discover", "rss", "redis", "proxy", "fixed", "websocket"}

func main() {
	runCalibrationProxyIfAsked()
	runWebSocketEchoIfAsked()
	var (
		scenarios  = flag.String("scenarios", "all", "comma-separated scenarios to run: "+strings.Join(scenarioNames, ", ")+" (discover includes nginx return 302), or all")
		duration   = flag.Duration("duration", 5*time.Second, "measurement window of each measurement")
		warmup     = flag.Duration("warmup", 500*time.Millisecond, "warm-up before each measurement, not recorded")
		conns      = flag.Int("conns", 64, "connections of the closed-loop load generator; also the most requests in flight in the open loop")
		rate       = flag.Uint64("rate", 5000, "requests per second of the fixed-rate (open-loop) gateway scenario")
		nodes      = flag.Int("nodes", 100000, "nodes registered for the discovery-at-scale and RSS figures")
		services   = flag.Int("services", 10000, "services those nodes are spread over")
		maxReqs    = flag.Uint64("max-requests", 20_000_000, "hard cap on requests of any one measurement, warm-up included")
		maxineBin  = flag.String("maxine-bin", "", "maxine binary to test (default: go build ./cmd/maxine into the run directory)")
		nginxBin   = flag.String("nginx", "auto", `nginx binary, "auto" to look on PATH and in /usr/sbin, "off" to skip nginx`)
		haproxyBin = flag.String("haproxy", "auto", `haproxy binary, "auto" to look on PATH and in /usr/sbin, "off" to skip HAProxy`)
		wrkBin     = flag.String("wrk", "auto", `wrk binary for the external-client rows, "auto" to look on PATH, "off" to skip them`)
		redisBin   = flag.String("redis", "auto", `redis-server binary for the redis state-mode rows, "auto" to look on PATH and in /usr/sbin, "off" to skip them`)
		jsonPath   = flag.String("json", "", "also write the results as JSON to this file")
		cpuProfile = flag.String("cpuprofile-maxine", "", "pass --cpuprofile <file>.<scenario> to every maxine started (only when the binary lists --cpuprofile in its --help)")
		cpus       = flag.Int("cpus", defaultCPUs, "CPU budget of every target alike: maxine's GOMAXPROCS, nginx worker_processes, HAProxy nbthread")
		repeat     = flag.Int("repeat", 1, "rounds of every measurement, the targets of a comparison interleaved; the median round is reported")
		keep       = flag.Bool("keep", false, "keep the run directory (configs, logs, maxine data) instead of removing it")
		timeout    = flag.Duration("timeout", 0, "hard limit for the whole run (default: derived from -duration and the scenarios)")
	)
	flag.Parse()

	selected, err := parseScenarios(*scenarios)
	if err != nil {
		fatalf("bad -scenarios: %v", err)
	}
	switch {
	case *duration <= 0:
		fatalf("bad -duration %s: must be > 0", *duration)
	case *warmup < 0:
		fatalf("bad -warmup %s: must be ≥ 0", *warmup)
	case *conns < 1 || *conns > 4096:
		fatalf("bad -conns %d: must be 1..4096", *conns)
	case *rate < 1 || *rate > 1_000_000:
		fatalf("bad -rate %d: must be 1..1,000,000", *rate)
	case *services < 1 || *nodes < 10 || *nodes < *services:
		fatalf("bad -nodes %d / -services %d: need nodes ≥ 10 and nodes ≥ services ≥ 1", *nodes, *services)
	case *cpus < 1 || *cpus > 256:
		fatalf("bad -cpus %d: must be 1..256", *cpus)
	case *repeat < 1 || *repeat > 10:
		fatalf("bad -repeat %d: must be 1..10", *repeat)
	case *maxReqs < 1:
		fatalf("bad -max-requests %d: must be ≥ 1", *maxReqs)
	}

	cfg := Config{
		Duration: *duration, Warmup: *warmup, Conns: *conns, Rate: *rate,
		Scenarios: selected, CPUProfile: *cpuProfile,
		Nodes: *nodes, Services: *services, MaxReqs: *maxReqs, Repeat: *repeat, CPUs: *cpus,
		NginxBin:   resolveBinary(*nginxBin, "nginx"),
		HAProxyBin: resolveBinary(*haproxyBin, "haproxy"),
		WrkBin:     resolveBinary(*wrkBin, "wrk"),
		RedisBin:   resolveBinary(*redisBin, "redis-server"),
	}

	total := *timeout
	if total <= 0 {
		total = runBudget(cfg)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, total)
	defer cancel()
	// Last resort: if a child ignores SIGTERM and SIGKILL or the harness
	// itself hangs, kill every child we started and exit.
	watchdog := time.AfterFunc(total+30*time.Second, func() {
		fmt.Fprintln(os.Stderr, "bench: hard timeout exceeded, killing children")
		killChildren()
		os.Exit(3)
	})
	defer watchdog.Stop()

	runDir, err := os.MkdirTemp("", "maxine-bench-")
	if err != nil {
		fatalf("cannot create run directory: %v", err)
	}
	if *keep {
		fmt.Fprintf(os.Stderr, "bench: run directory %s (kept)\n", runDir)
	} else {
		defer os.RemoveAll(runDir)
	}

	b := &Bench{cfg: cfg, runDir: runDir}
	b.prepareMaxine(ctx, *maxineBin)
	if cfg.CPUProfile != "" && b.maxineBin != "" && !supportsFlag(b.help, "cpuprofile") {
		b.note("-cpuprofile-maxine ignored: this maxine build has no --cpuprofile flag")
	}
	b.run(ctx)
	for _, p := range b.profiles {
		if st, err := os.Stat(p); err == nil && st.Size() > 0 {
			b.note("maxine CPU profile: %s (go tool pprof -top %s)", p, p)
		} else {
			b.note("maxine CPU profile %s was not written", p)
		}
	}

	rep := &Report{
		Machine: machineLine(versionOf(cfg.NginxBin, "-v"), versionOf(cfg.HAProxyBin, "-v"), redisVersion(versionLine(cfg.RedisBin, "--version"))),
		Flags: fmt.Sprintf("Flags: -scenarios %s -duration %s -warmup %s -conns %d -rate %d -nodes %d -services %d -repeat %d -cpus %d (every target: maxine GOMAXPROCS, nginx workers, HAProxy threads); load generator: fasthttp in this process, GOMAXPROCS %d",
			*scenarios, cfg.Duration, cfg.Warmup, cfg.Conns, cfg.Rate, cfg.Nodes, cfg.Services, cfg.Repeat, cfg.cpus(), runtime.GOMAXPROCS(0)),
		Rows:  b.rows,
		Notes: b.notes,
	}
	rep.WriteMarkdown(os.Stdout)
	if *jsonPath != "" {
		if err := rep.WriteJSON(*jsonPath); err != nil {
			fatalf("%v", err)
		}
	}
}

// run executes the selected scenarios in order, each under its own hard
// timeout.
func (b *Bench) run(ctx context.Context) {
	sel := b.cfg.Scenarios
	per := b.measureBudget()
	step := func(name string, budget time.Duration, f func(context.Context)) {
		if ctx.Err() != nil {
			b.note("%s: not run, the run's hard timeout was reached", name)
			return
		}
		sctx, cancel := context.WithTimeout(ctx, budget)
		defer cancel()
		start := time.Now()
		f(sctx)
		if sctx.Err() == context.DeadlineExceeded {
			b.note("%s: hit its hard timeout of %s; later measurements were skipped", name, budget)
		}
		fmt.Fprintf(os.Stderr, "bench: %s done in %s\n", name, time.Since(start).Round(time.Millisecond))
	}
	if sel["register"] {
		step("register", time.Duration(2*b.cfg.Repeat)*per+60*time.Second, b.Registrations)
	}
	if sel["discover"] || sel["rss"] {
		step("discover/rss", time.Duration(7*b.cfg.Repeat)*per+180*time.Second, func(c context.Context) {
			b.Discovery(c, sel["discover"], sel["rss"])
		})
	}
	if sel["redis"] {
		step("redis", time.Duration(6*b.cfg.Repeat)*per+120*time.Second, b.Redis)
	}
	if sel["proxy"] || sel["fixed"] {
		step("proxy/fixed", time.Duration(18*b.cfg.Repeat)*per+60*time.Second, func(c context.Context) {
			b.Gateway(c, sel["proxy"], sel["fixed"])
		})
	}
	if sel["websocket"] {
		step("websocket", time.Duration(2*len(wsSizes)*b.cfg.Repeat)*per+60*time.Second, b.WebSocket)
	}
}

// runBudget is the default hard limit of the whole run.
func runBudget(cfg Config) time.Duration {
	per := cfg.Warmup + cfg.Duration + 15*time.Second
	return time.Duration((36+2*len(wsSizes))*cfg.Repeat)*per + 480*time.Second + 3*time.Minute // + building maxine
}

// prepareMaxine finds or builds the maxine binary; on failure the maxine
// rows are skipped and the rest of the run goes on.
func (b *Bench) prepareMaxine(ctx context.Context, bin string) {
	if bin == "" {
		fmt.Fprintln(os.Stderr, "bench: building ./cmd/maxine")
		built, err := BuildMaxine(ctx, b.runDir)
		if err != nil {
			b.note("maxine rows skipped: %s", firstLine(err.Error()))
			fmt.Fprintln(os.Stderr, "bench:", err)
			return
		}
		bin = built
	} else if _, err := os.Stat(bin); err != nil {
		b.note("maxine rows skipped: %v", err)
		return
	}
	b.maxineBin = bin
	b.help = maxineHelp(bin)
}

func parseScenarios(s string) (map[string]bool, error) {
	sel := map[string]bool{}
	for name := range strings.SplitSeq(s, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "":
		case name == "all":
			for _, n := range scenarioNames {
				sel[n] = true
			}
		case slices.Contains(scenarioNames, name):
			sel[name] = true
		default:
			return nil, fmt.Errorf("unknown scenario %q (known: %s, all)", name, strings.Join(scenarioNames, ", "))
		}
	}
	if len(sel) == 0 {
		return nil, fmt.Errorf("no scenario selected")
	}
	return sel, nil
}

// resolveBinary maps the -nginx/-haproxy flag values to a path or "".
func resolveBinary(flagValue, name string) string {
	switch flagValue {
	case "off", "":
		return ""
	case "auto":
		return findBinary(name)
	default:
		return flagValue
	}
}

func versionOf(bin, arg string) string {
	if bin == "" {
		return ""
	}
	v := versionLine(bin, arg)
	v = strings.TrimPrefix(v, "nginx version: ")
	if i := strings.Index(v, " - "); i > 0 { // HAProxy: "HAProxy version 2.6.12 2023/... - https://..."
		v = v[:i]
	}
	if f := strings.Fields(v); len(f) >= 3 && f[0] == "HAProxy" {
		v = "HAProxy " + f[2]
	}
	return v
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(2)
}
