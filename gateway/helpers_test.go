package gateway

import (
	"context"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/registry"
)

// seenRequest is what a test backend recorded of one request.
type seenRequest struct {
	Method string
	URI    string
	Host   string
	Header http.Header
	Body   [32]byte // sha256
	Len    int64
}

// backend is a real HTTP server on loopback that counts and records what
// it receives. Its behaviour can be swapped while it runs, and it can be
// killed (listener and connections closed) and restarted on the same port.
type backend struct {
	t    *testing.T
	name string
	addr string
	port int

	hits    atomic.Int64
	handler atomic.Pointer[http.HandlerFunc]

	mu   sync.Mutex
	srv  *http.Server
	seen []seenRequest
	keep bool // record requests (off for load tests)
}

func okHandler(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Node", name)
		io.WriteString(w, name)
	}
}

func startBackend(t *testing.T, name string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{t: t, name: name, keep: true}
	if h == nil {
		h = okHandler(name)
	}
	b.setHandler(h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	b.port = ln.Addr().(*net.TCPAddr).Port
	b.serve(ln)
	t.Cleanup(b.kill)
	return b
}

func (b *backend) setHandler(h http.HandlerFunc) { b.handler.Store(&h) }

func (b *backend) serve(ln net.Listener) {
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	go srv.Serve(ln)
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.hits.Add(1)
	if b.keep {
		sr := seenRequest{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header.Clone()}
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		copy(sr.Body[:], h.Sum(nil))
		sr.Len = n
		r.Body = io.NopCloser(strings.NewReader(""))
		b.mu.Lock()
		b.seen = append(b.seen, sr)
		b.mu.Unlock()
	}
	(*b.handler.Load())(w, r)
}

func (b *backend) last() seenRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.seen) == 0 {
		b.t.Fatalf("backend %s saw no request", b.name)
	}
	return b.seen[len(b.seen)-1]
}

// kill closes the listener and every connection, like a crashed process.
func (b *backend) kill() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// restart listens on the same port again.
func (b *backend) restart() {
	b.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", b.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		b.t.Fatalf("restart %s: %v", b.name, err)
	}
	b.serve(ln)
}

// eventRecorder is an EventSink that keeps everything.
type eventRecorder struct {
	mu      sync.Mutex
	breaker []string // "service/node from->to"
	health  []string // "service/node up|down"
	evicted []string
}

func (e *eventRecorder) BreakerChanged(service, node, from, to string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.breaker = append(e.breaker, service+"/"+node+" "+from+"->"+to)
}

func (e *eventRecorder) HealthChanged(service, node string, healthy bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := " down"
	if healthy {
		s = " up"
	}
	e.health = append(e.health, service+"/"+node+s)
}

func (e *eventRecorder) Evicted(service, node, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evicted = append(e.evicted, service+"/"+node)
}

func (e *eventRecorder) has(list *[]string, s string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, x := range *list {
		if x == s {
			return true
		}
	}
	return false
}

// traceRecorder is a TraceSink.
type traceRecorder struct {
	mu  sync.Mutex
	tps []string
}

func (r *traceRecorder) RecordTrace(kind, service string, traceparent, method, path []byte, status int, _ time.Time, d time.Duration) {
	r.mu.Lock()
	r.tps = append(r.tps, kind+" "+service+" "+string(method)+" "+string(path)+" "+strconv.Itoa(status)+" "+string(traceparent))
	r.mu.Unlock()
}

// fixture is a registry, a Proxy following it, and the gateway server on a
// loopback port.
type fixture struct {
	t        *testing.T
	reg      *registry.Registry
	settings *config.Store
	p        *Proxy
	srv      *fasthttp.Server
	addr     string
	url      string
	client   *http.Client
	events   *eventRecorder
	traces   *traceRecorder
	set      *metrics.Set
}

func newFixture(t *testing.T, mod func(*Options)) *fixture {
	t.Helper()
	return newFixtureWith(t, mod, nil)
}

// newFixtureWith is newFixture with prep run on the Proxy before Run
// starts (to set test seams).
func newFixtureWith(t *testing.T, mod func(*Options), prep func(*Proxy)) *fixture {
	t.Helper()
	f := &fixture{
		t:        t,
		reg:      registry.New(registry.Options{}),
		settings: config.New(config.Defaults()),
		events:   &eventRecorder{},
		traces:   &traceRecorder{},
		set:      metrics.NewSet(),
	}
	o := Options{
		Registry:   f.reg,
		Settings:   f.settings,
		Events:     f.events,
		Traces:     f.traces,
		Metrics:    f.set,
		TryTimeout: 5 * time.Second,
		Deadline:   10 * time.Second,
	}
	if mod != nil {
		mod(&o)
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	f.p = p
	if prep != nil {
		prep(p)
	}
	done := make(chan struct{})
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		p.Run(done)
	}()
	f.srv = NewServer(p, ServerOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	f.url = "http://" + f.addr
	served := make(chan struct{})
	go func() {
		defer close(served)
		f.srv.Serve(ln)
	}()
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	f.client = &http.Client{
		Transport:     tr,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f.srv.ShutdownWithContext(ctx)
		<-served
		close(done)
		<-ran
	})
	// Run must be following the registry before the test registers nodes
	// (the route-miss path would cover new services, not new nodes).
	waitFor(t, "Run to start", func() bool { return p.Upstreams().Started })
	return f
}

// register registers node name of service at backend b.
func (f *fixture) register(service, node string, b *backend, weight int, mod func(*registry.Registration)) {
	f.t.Helper()
	reg := registry.Registration{
		ServiceName: service,
		NodeName:    node,
		HostName:    "127.0.0.1",
		Port:        b.port,
		TimeOut:     600,
		Weight:      weight,
	}
	if mod != nil {
		mod(&reg)
	}
	if _, err := f.reg.Register(reg); err != nil {
		f.t.Fatal(err)
	}
}

// waitNodes waits until the gateway's table of service has n nodes.
func (f *fixture) waitNodes(service string, n int) {
	f.t.Helper()
	waitFor(f.t, service+" to have "+strconv.Itoa(n)+" nodes", func() bool {
		svc := f.p.routes.Load().exact[service]
		if svc == nil {
			return n == 0
		}
		t := svc.table.Load()
		return t != nil && len(t.nodeList()) == n
	})
}

// do sends a request through the gateway and returns status, headers and
// body.
func (f *fixture) do(method, path string, body io.Reader, hdr map[string]string) (int, http.Header, []byte) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.url+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	for k, v := range hdr {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, b
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawRequest writes raw bytes to the gateway and returns the status line.
func (f *fixture) rawRequest(raw string) string {
	f.t.Helper()
	conn, err := net.DialTimeout("tcp", f.addr, 2*time.Second)
	if err != nil {
		f.t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		f.t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, _ := io.ReadAtLeast(conn, buf, len("HTTP/1.1 400"))
	line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
	return line
}

// nodeList returns the table's upstreams in node-name order.
func (t *serviceTable) nodeList() []*upstream {
	var out []*upstream
	for u := range t.nodes {
		out = append(out, u)
	}
	return out
}

// raceEnabled reports whether the test binary was built with -race. The
// race runtime allocates on its own and makes sync.Pool drop objects at
// random, so allocation counts mean nothing under it.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// leastAllocs is testing.AllocsPerRun taken up to five times, the lowest
// count kept. AllocsPerRun counts every goroutine's allocations, and the
// servers of earlier tests in this package may still be winding down
// while it runs; an allocation of f itself shows in every run.
func leastAllocs(runs int, f func()) float64 {
	least := testing.AllocsPerRun(runs, f)
	for i := 1; i < 5 && least > 0; i++ {
		least = min(least, testing.AllocsPerRun(runs, f))
	}
	return least
}
