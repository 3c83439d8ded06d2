package gateway

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/registry"
)

// TestGatewayStress drives the real Proxy (Run following a real registry,
// the gateway listener, active health checks, breakers) with random
// membership changes while one client per service keeps sending requests
// to real nodes on loopback, and checks the invariants after every answer,
// during the run:
//
//   - every answer is 200 from a node of the requested service, or 503/404
//     (a service without a reachable node); a request is never answered
//     by another service's node, by an address never registered, or by a
//     registration removed more than stressReach before it started;
//   - a registered node becomes reachable: within stressReach and
//     stressProbes requests, one of them is answered by it;
//   - a service that has a reachable node (answered a request before, or
//     registered for stressReach) that stays registered never answers
//     503/404 for longer than stressOutage continuously.
//
// Operations: register, deregister, re-register at a new address, change
// a weight, heartbeat, flap (deregister every node of a service, then
// register them again: the service is emptied and comes back), expiry
// (ExpireDue on nodes registered with a short timeOut) and strategy
// switches. One operator per service works concurrently with the others,
// alternating bursts of changes with calm periods long enough for the
// bounds to apply.
//
// The bounds are generous (the machine is shared and loaded); the bugs
// they catch leave a service unreachable or stale until its next change,
// not for a few milliseconds. The run is bounded in time and operations:
// stressDuration (a few seconds; -gateway.stress=30s or
// MAXINE_GATEWAY_STRESS=30s for longer), then a calm phase. The seed is
// printed on failure; -gateway.stress.seed (or MAXINE_GATEWAY_STRESS_SEED)
// replays each operator's random choices (not the interleaving of the
// operators and the requests).
func TestGatewayStress(t *testing.T) {
	dur, seed := stressDuration(t), stressSeed(t)
	start := time.Now()
	m := &stressModel{
		t:     t,
		start: start,
		gens:  make(map[int]*stressReg),
		stop:  make(chan struct{}),
	}
	t.Cleanup(func() {
		if t.Failed() {
			m.mu.Lock()
			defer m.mu.Unlock()
			t.Logf("last operations:\n%s", strings.Join(m.history, "\n"))
			t.Logf("seed %d: replay with go test ./gateway/ -run TestGatewayStress -gateway.stress=%s -gateway.stress.seed=%d", seed, dur, seed)
		}
	})
	m.f = newFixtureWith(t, func(o *Options) {
		o.HashHeader = stressKeyHeader
		o.Health = HealthOptions{Enabled: true, Interval: 100 * time.Millisecond, Path: "/health"}
	}, func(p *Proxy) {
		// Jitter in Run, between reading one service's snapshot and the
		// next: registrations that land after Run took its batch and
		// before it read a snapshot are what the fast path must survive
		// (issue 11 item 1), and without jitter that window is a few
		// microseconds wide.
		p.afterSnapshotRead = func(string) {
			if rand.IntN(2) == 0 {
				time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
			}
		}
	})
	for i := range stressServices {
		s := &stressSvc{
			idx:  i,
			name: "s" + strconv.Itoa(i),
			rng:  rand.New(rand.NewPCG(seed, uint64(i))),
			live: make(map[string]*stressReg),
		}
		for j := range stressBackends {
			name := s.name + "b" + strconv.Itoa(j)
			b := startBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Backend", name)
				io.WriteString(w, r.URL.Path)
			})
			b.keep = false
			s.backends = append(s.backends, b)
		}
		m.svcs = append(m.svcs, s)
	}
	t.Logf("seed %d, %s of operations", seed, dur)

	var wg sync.WaitGroup
	for _, s := range m.svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.client(s, seed+uint64(s.idx)+1)
		}()
	}
	ops := m.operate(dur)

	// Calm: no changes but the expiry of the short-lived nodes, so that
	// every bound applies to the final state, and every node must be
	// reached.
	m.expire()
	calm := time.Now()
	for time.Since(calm) < stressReach+stressOutage+500*time.Millisecond || !m.allReached() {
		if time.Since(calm) > 15*time.Second || m.stopped() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.halt()
	wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.svcs {
		for _, r := range s.live {
			if !r.expiring && r.seenAt.IsZero() && !r.reported {
				m.failLocked("%s: registration %s (g%d) never answered, registered %v before the end",
					s.name, r.node, r.gen, time.Since(r.since).Round(time.Millisecond))
			}
		}
		t.Logf("%s: %d requests, %d answered 200, %d 503/404 while a node was registered", s.name, s.requests, s.ok, s.outLive)
	}
	t.Logf("%d operations in %v", ops, time.Since(start).Round(time.Millisecond))
}

const (
	stressServices = 3
	stressBackends = 5 // nodes on loopback per service
	stressMaxNodes = 3 // registrations per service at once: s0 has at most 1, s1 2, s2 3
	// stressReach is how long a registered node may take to become
	// reachable, and how long after its removal it may still answer.
	stressReach = 2 * time.Second
	// stressProbes is how many requests a node must have had the chance
	// to answer before it is declared unreachable (with at most 3 nodes of
	// weight ≤ 2, a node's share is at least 1/5: missing 200 picks by
	// chance has probability below 1e-19).
	stressProbes = 200
	// stressOutage is the longest run of 503/404 allowed to a service that
	// has a reachable node, and stressOutageAnswers the fewest answers in
	// such a run (so that one slow request is not an outage).
	stressOutage        = time.Second
	stressOutageAnswers = 3
	stressMaxViolations = 20
	stressKeyHeader     = "X-Stress-Key"
)

var (
	stressFlag     = flag.Duration("gateway.stress", 0, "how long TestGatewayStress changes the registry (default 3s, 1s with -short); also MAXINE_GATEWAY_STRESS")
	stressSeedFlag = flag.Uint64("gateway.stress.seed", 0, "seed of TestGatewayStress's operations (default random); also MAXINE_GATEWAY_STRESS_SEED")
)

func stressDuration(t *testing.T) time.Duration {
	if *stressFlag > 0 {
		return *stressFlag
	}
	if v := os.Getenv("MAXINE_GATEWAY_STRESS"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("MAXINE_GATEWAY_STRESS=%q: want a positive duration", v)
		}
		return d
	}
	if testing.Short() {
		return time.Second
	}
	return 3 * time.Second
}

func stressSeed(t *testing.T) uint64 {
	if *stressSeedFlag != 0 {
		return *stressSeedFlag
	}
	if v := os.Getenv("MAXINE_GATEWAY_STRESS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("MAXINE_GATEWAY_STRESS_SEED=%q: %v", v, err)
		}
		return s
	}
	return rand.Uint64()
}

// stressReg is one registration as the test made it. Times are taken on
// the safe side of the registry call: since after Register returned,
// removing before Deregister was called, removed after it returned.
type stressReg struct {
	gen      int // registered with path /g<gen>: the node echoes it
	svc      int
	node     string
	backend  int // index in the service's backends
	weight   int
	timeOut  int
	expiring bool // registered with a short timeOut, removed by expire

	since    time.Time // zero while Register is running
	sinceReq int64     // the service's request count at since
	removing time.Time
	removed  time.Time
	seenAt   time.Time // start of the first request it answered after since
	reported bool      // reported unreachable (once)
}

// registeredThrough reports whether r was registered from at (or before)
// until now.
func (r *stressReg) registeredThrough(at time.Time) bool {
	return !r.since.IsZero() && !r.since.After(at) && r.removing.IsZero()
}

type stressSvc struct {
	idx      int
	name     string
	rng      *rand.Rand // the operator's; not guarded
	backends []*backend
	live     map[string]*stressReg // by node name; guarded by stressModel.mu
	requests int64
	ok       int64
	outLive  int64     // 503/404 answers while the model had a registration
	outStart time.Time // start of the current run of 503/404 answers
	outN     int
}

// stressModel is what the registry should hold, with the history the
// invariants need. Operations run on one operator goroutine per service; the
// clients read and update seenAt and the counters. All fields are guarded by mu, except
// that the registry is called without it.
type stressModel struct {
	t     *testing.T
	f     *fixture
	start time.Time

	opsMu sync.RWMutex // write-held by expire, read-held by other operations

	mu         sync.Mutex
	svcs       []*stressSvc
	gens       map[int]*stressReg // the latest registration made with each gen
	nextGen    int
	history    []string // the last operations, for the failure report
	violations int
	stop       chan struct{}
	halted     bool
}

func (m *stressModel) failLocked(format string, args ...any) {
	m.t.Helper()
	m.t.Errorf("%v: "+format, append([]any{time.Since(m.start).Round(time.Millisecond)}, args...)...)
	if m.violations++; m.violations == stressMaxViolations {
		m.t.Errorf("%d violations: stopping", m.violations)
		m.haltLocked()
	}
}

func (m *stressModel) halt() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.haltLocked()
}

func (m *stressModel) haltLocked() {
	if !m.halted {
		m.halted = true
		close(m.stop)
	}
}

func (m *stressModel) stopped() bool {
	select {
	case <-m.stop:
		return true
	default:
		return false
	}
}

func (m *stressModel) logLocked(format string, args ...any) {
	const keep = 60
	if len(m.history) == keep {
		m.history = append(m.history[:0], m.history[1:]...)
	}
	m.history = append(m.history, fmt.Sprintf("%8v "+format, append([]any{time.Since(m.start).Round(time.Millisecond)}, args...)...))
}

// operate runs one operator per service, concurrently (as registrations
// of different services arrive in a real registry): bursts of random
// operations, each followed by a calm period, for dur or 5,000 operations
// per second of dur, whichever comes first. Each operator has its own
// random source derived from the seed. It returns the count.
func (m *stressModel) operate(dur time.Duration) int {
	deadline := time.Now().Add(dur)
	maxOps := int64(5000 * dur.Seconds())
	var ops atomic.Int64
	var wg sync.WaitGroup
	for _, s := range m.svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range min(2, 1+s.idx%stressMaxNodes) {
				m.register(s, m.freeNode(s, m.liveOf(s)), m.freeBackend(s, m.liveOf(s), -1), -1, 1, false)
				ops.Add(1)
			}
			for ops.Load() < maxOps && time.Now().Before(deadline) && !m.stopped() {
				for range 1 + s.rng.IntN(6) {
					m.operation(s)
					ops.Add(1)
					if n := s.rng.IntN(4); n > 0 {
						time.Sleep(time.Duration(n) * time.Millisecond)
					}
				}
				// Mostly short calms (churn), some long enough for the
				// outage bound, a few for the reachability bound.
				var calm time.Duration
				switch k := s.rng.IntN(20); {
				case k < 12:
					calm = time.Duration(s.rng.IntN(100)) * time.Millisecond
				case k < 17:
					calm = stressOutage + time.Duration(s.rng.IntN(500))*time.Millisecond
				default:
					calm = stressReach + stressOutage/2 + time.Duration(s.rng.IntN(1000))*time.Millisecond
				}
				select {
				case <-time.After(min(calm, max(time.Until(deadline), 0))):
				case <-m.stop:
				}
			}
		}()
	}
	wg.Wait()
	return int(ops.Load())
}

// liveOf returns s's live registrations in node order (map order is
// random; sorted, the seed replays the choices).
func (m *stressModel) liveOf(s *stressSvc) []*stressReg {
	m.mu.Lock()
	defer m.mu.Unlock()
	live := make([]*stressReg, 0, len(s.live))
	for _, r := range s.live {
		live = append(live, r)
	}
	slices.SortFunc(live, func(a, b *stressReg) int { return strings.Compare(a.node, b.node) })
	return live
}

// operation applies one random change to s (or a strategy switch).
func (m *stressModel) operation(s *stressSvc) {
	// Expiry removes the short-lived registrations of every service: it
	// excludes the other operations.
	m.opsMu.RLock()
	defer m.opsMu.RUnlock()
	live := m.liveOf(s)
	var some *stressReg
	if len(live) > 0 {
		some = live[s.rng.IntN(len(live))]
	}
	switch k := s.rng.IntN(100); {
	case k < 30 && len(live) < 1+s.idx%stressMaxNodes:
		m.register(s, m.freeNode(s, live), m.freeBackend(s, live, -1), -1, 1+s.rng.IntN(2), k < 5)
	case k < 45 && some != nil:
		m.deregister(s, some)
	case k < 58 && some != nil:
		// Same node, new address: the old registration goes, a new one
		// comes, in one registry change.
		m.register(s, some.node, m.freeBackend(s, live, some.backend), -1, some.weight, false)
	case k < 66 && some != nil:
		m.register(s, some.node, some.backend, some.gen, 3-some.weight, some.expiring)
	case k < 72 && some != nil:
		m.register(s, some.node, some.backend, some.gen, some.weight, some.expiring)
	case k < 84 && len(live) > 0:
		m.flap(s, live)
	case k < 90:
		m.opsMu.RUnlock()
		m.expire()
		m.opsMu.RLock()
	case k < 100:
		st := []config.Strategy{config.RoundRobin, config.ConsistentHashing, config.RendezvousHashing, config.LeastRequest}[s.rng.IntN(4)]
		m.f.settings.Update(func(c *config.Settings) { c.Strategy = st })
		m.mu.Lock()
		m.logLocked("strategy %s", st)
		m.mu.Unlock()
	}
}

func (m *stressModel) freeNode(s *stressSvc, live []*stressReg) string {
	for {
		name := "n" + strconv.Itoa(s.rng.IntN(3*stressMaxNodes))
		used := false
		for _, r := range live {
			used = used || r.node == name
		}
		if !used {
			return name
		}
	}
}

// freeBackend returns a backend of s that no live registration uses, nor
// not.
func (m *stressModel) freeBackend(s *stressSvc, live []*stressReg, not int) int {
	for {
		b := s.rng.IntN(len(s.backends))
		used := b == not
		for _, r := range live {
			used = used || r.backend == b
		}
		if !used {
			return b
		}
	}
}

// register registers node at backend b with path /g<gen> (a new gen when
// gen < 0). A registration of a live node at the same address (gen ≥ 0)
// changes it in place (weight, heartbeat): the record is kept.
func (m *stressModel) register(s *stressSvc, node string, b, gen, weight int, expiring bool) {
	m.mu.Lock()
	old := s.live[node]
	r := old
	inPlace := old != nil && old.gen == gen && old.backend == b
	if !inPlace {
		if gen < 0 {
			m.nextGen++
			gen = m.nextGen
		}
		r = &stressReg{gen: gen, svc: s.idx, node: node, backend: b}
		m.gens[gen] = r // before Register: the node may answer at once
	}
	r.weight, r.expiring = weight, expiring
	r.timeOut = 3600
	if expiring {
		r.timeOut = 1
	}
	if old != nil && !inPlace {
		// Replaced by this registration (a new address): it leaves.
		old.removing = time.Now()
	}
	m.logLocked("register %s/%s g%d at %s weight %d timeOut %d", s.name, node, gen, s.backends[b].name, weight, r.timeOut)
	m.mu.Unlock()
	_, err := m.f.reg.Register(registry.Registration{
		ServiceName: s.name,
		NodeName:    node,
		HostName:    "127.0.0.1",
		Port:        s.backends[b].port,
		Path:        "/g" + strconv.Itoa(gen),
		Weight:      weight,
		TimeOut:     r.timeOut,
	})
	if err != nil {
		m.t.Fatalf("register: %v", err)
	}
	if inPlace {
		return
	}
	m.mu.Lock()
	r.since, r.sinceReq = time.Now(), s.requests
	if old != nil {
		old.removed = r.since
	}
	s.live[node] = r
	m.mu.Unlock()
}

func (m *stressModel) deregister(s *stressSvc, r *stressReg) {
	m.mu.Lock()
	r.removing = time.Now()
	delete(s.live, r.node)
	m.logLocked("deregister %s/%s g%d", s.name, r.node, r.gen)
	m.mu.Unlock()
	if !m.f.reg.Deregister(s.name, r.node) {
		m.t.Errorf("deregister %s/%s: not registered", s.name, r.node)
	}
	m.mu.Lock()
	r.removed = time.Now()
	m.mu.Unlock()
}

// flap empties s and registers its nodes again (at the same address, at
// a new one, or under a new name at a new one), one to three times in a
// row: a service that empties and refills faster than the gateway reads
// the registry.
func (m *stressModel) flap(s *stressSvc, live []*stressReg) {
	for range 1 + s.rng.IntN(3) {
		m.mu.Lock()
		m.logLocked("flap %s (%d nodes)", s.name, len(live))
		m.mu.Unlock()
		for _, r := range live {
			m.deregister(s, r)
		}
		if s.rng.IntN(3) == 0 {
			time.Sleep(time.Duration(1+s.rng.IntN(2)) * time.Millisecond)
		}
		var back []*stressReg
		for _, r := range live {
			node := r.node
			switch s.rng.IntN(3) {
			case 0:
				m.register(s, node, r.backend, r.gen, r.weight, false)
			case 1:
				m.register(s, node, m.freeBackend(s, back, -1), -1, r.weight, false)
			default:
				node = m.freeNode(s, append(slices.Clip(back), live...))
				m.register(s, node, m.freeBackend(s, back, -1), -1, r.weight, false)
			}
			m.mu.Lock()
			back = append(back, s.live[node])
			m.mu.Unlock()
		}
		live = back
	}
}

// expire expires every registration made with a short timeOut, and only
// those: the others have an hour left.
func (m *stressModel) expire() {
	m.opsMu.Lock()
	defer m.opsMu.Unlock()
	m.mu.Lock()
	var due []*stressReg
	now := time.Now()
	for _, s := range m.svcs {
		for name, r := range s.live {
			if r.expiring {
				r.removing = now
				delete(s.live, name)
				due = append(due, r)
			}
		}
	}
	m.logLocked("expire %d", len(due))
	m.mu.Unlock()
	n := m.f.reg.ExpireDue(time.Now().Add(5 * time.Second))
	m.mu.Lock()
	defer m.mu.Unlock()
	if n != len(due) {
		m.failLocked("ExpireDue removed %d registrations, want the %d short-lived ones", n, len(due))
	}
	for _, r := range due {
		r.removed = time.Now()
	}
}

// allReached reports whether every live registration has answered.
func (m *stressModel) allReached() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.svcs {
		for _, r := range s.live {
			if !r.expiring && r.seenAt.IsZero() {
				return false
			}
		}
	}
	return true
}

// client sends requests for s, one at a time with a random hash key, and
// checks every answer, until the model halts (at most 1,000,000 requests).
func (m *stressModel) client(s *stressSvc, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed))
	url := m.f.url + "/" + s.name + "/x"
	for range 1_000_000 {
		if m.stopped() {
			return
		}
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			panic(err)
		}
		req.Header.Set(stressKeyHeader, strconv.FormatUint(rng.Uint64(), 36))
		m.mu.Lock()
		s.requests++
		m.mu.Unlock()
		began := time.Now()
		resp, err := m.f.client.Do(req)
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		m.check(s, began, resp, body, err)
	}
}

// check applies the invariants to one answer to a request for s that
// began at began.
func (m *stressModel) check(s *stressSvc, began time.Time, resp *http.Response, body []byte, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.halted {
		return // the gateway may be shutting down
	}
	switch {
	case err != nil:
		m.failLocked("%s: %v", s.name, err)
	case resp.StatusCode == http.StatusOK:
		s.ok++
		s.outN = 0
		m.answeredLocked(s, began, string(body), resp.Header.Get("X-Backend"))
	case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusNotFound:
		if len(s.live) > 0 {
			s.outLive++
		}
		var reachable *stressReg
		for _, r := range s.live {
			if !r.expiring && r.registeredThrough(began) &&
				(!r.seenAt.IsZero() && r.seenAt.Before(began) || r.since.Before(began.Add(-stressReach))) {
				reachable = r
				break
			}
		}
		if reachable == nil {
			s.outN = 0
			break
		}
		if s.outN == 0 {
			s.outStart = began
		}
		s.outN++
		if d := began.Sub(s.outStart); s.outN >= stressOutageAnswers && d > stressOutage {
			m.failLocked("%s answered %d for %v (%d answers) while %s (g%d, registered %v before, first answered %v before) stayed registered",
				s.name, resp.StatusCode, d.Round(time.Millisecond), s.outN, reachable.node, reachable.gen,
				began.Sub(reachable.since).Round(time.Millisecond), ago(began, reachable.seenAt))
			s.outN = 0
		}
	default:
		m.failLocked("%s: status %d from healthy nodes: %.200s", s.name, resp.StatusCode, body)
	}
	// Reachability: a node registered stressReach ago that had
	// stressProbes chances to answer and never did.
	for _, r := range s.live {
		if !r.expiring && !r.reported && !r.since.IsZero() && r.seenAt.IsZero() &&
			time.Since(r.since) > stressReach && s.requests-r.sinceReq >= stressProbes {
			r.reported = true
			m.failLocked("%s: %s (g%d at %s) registered %v ago, not reached in %d requests",
				s.name, r.node, r.gen, s.backends[r.backend].name, time.Since(r.since).Round(time.Millisecond), s.requests-r.sinceReq)
		}
	}
}

// answeredLocked checks who answered a 200: the node echoes the path
// /g<gen>/x of the registration the gateway chose.
func (m *stressModel) answeredLocked(s *stressSvc, began time.Time, path, backendName string) {
	g, ok := strings.CutPrefix(path, "/g")
	g, ok2 := strings.CutSuffix(g, "/x")
	gen, err := strconv.Atoi(g)
	if !ok || !ok2 || err != nil {
		m.failLocked("%s: node %s saw path %q, want /g<gen>/x", s.name, backendName, path)
		return
	}
	r := m.gens[gen]
	switch {
	case r == nil:
		m.failLocked("%s: answered by g%d, which was never registered", s.name, gen)
	case r.svc != s.idx:
		m.failLocked("%s: answered by %s/%s (g%d)", s.name, m.svcs[r.svc].name, r.node, gen)
	case m.svcs[r.svc].backends[r.backend].name != backendName:
		m.failLocked("%s: g%d registered at %s answered from %s", s.name, gen, s.backends[r.backend].name, backendName)
	case !r.removed.IsZero() && r.removed.Before(began.Add(-stressReach)):
		m.failLocked("%s: answered by %s (g%d), removed %v before the request", s.name, r.node, gen, began.Sub(r.removed).Round(time.Millisecond))
	case r.seenAt.IsZero() && !r.since.IsZero() && !r.since.After(began):
		r.seenAt = began
	}
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Round(time.Millisecond).String()
}
