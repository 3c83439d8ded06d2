package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches /api/actuator/prometheus and parses it with the real
// exposition-format parser.
func (in *instance) scrape(token string) map[string]*dto.MetricFamily {
	in.t.Helper()
	req, _ := http.NewRequest("GET", in.admin+"/api/actuator/prometheus", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		in.t.Fatalf("prometheus: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		in.t.Fatalf("exposition does not parse: %v", err)
	}
	return fams
}

// value returns the sample of family name whose labels include want
// (counter, gauge or untyped), or -1 when absent.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
next:
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

func TestPrometheusMetrics(t *testing.T) {
	up := newUpstream(t, "m")
	in := start(t, "", nil)
	in.register(up.registration("web", "w1"))
	in.waitRoutable("web")
	viewer := in.signIn("viewer", "viewer-pass")
	if r := call(t, "GET", in.admin+"/api/actuator/prometheus", "", ""); r.status != 401 {
		t.Fatalf("prometheus without token: %d", r.status)
	}
	before := in.scrape(viewer)
	const n = 37
	for i := 0; i < n; i++ {
		if r := call(t, "GET", in.gateway+"/web/x", "", ""); r.status != 200 {
			t.Fatal(r.status)
		}
	}
	call(t, "GET", in.gateway+"/web/missing-node-test", "", "", "X-Maxine-Service", "nosuch")
	in.call("GET", "/api/maxine/serviceops/discover?serviceName=web", "", "")
	after := in.scrape(viewer)
	svc := map[string]string{"service": "web", "code": "2xx"}
	if got := value(after, "maxine_gateway_requests_total", svc) - value(before, "maxine_gateway_requests_total", svc); got != n {
		t.Fatalf("gateway 2xx requests counted %v, want %d", got, n)
	}
	hist := after["maxine_gateway_request_duration_seconds"]
	if hist == nil || hist.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("no Prometheus histogram maxine_gateway_request_duration_seconds: %v", hist)
	}
	if c := value(after, "maxine_gateway_request_duration_seconds", map[string]string{"service": "web"}); c < n {
		t.Fatalf("histogram count %v < %d", c, n)
	}
	checks := []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"maxine_gateway_nodes_active", map[string]string{"service": "web"}, 1},
		{"maxine_registrations_by_kind_total", map[string]string{"kind": "new"}, 1},
		{"maxine_discoveries_by_mode_total", map[string]string{"mode": "redirect"}, 1},
		{"maxine_registrations_total", nil, 1},
		{"maxine_discoveries_total", nil, 1},
		{"maxine_auth_total", map[string]string{"result": "success"}, 1},
		{"maxine_admin_requests_total", map[string]string{"route": "register", "code": "200"}, 1},
		{"maxine_registry_nodes", nil, 1},
		{"go_goroutines", nil, 1},
		{"process_resident_memory_bytes", nil, 1},
	}
	for _, c := range checks {
		if v := value(after, c.name, c.labels); v < c.min {
			t.Errorf("%s%v = %v, want ≥ %v", c.name, c.labels, v, c.min)
		}
	}
	eventually(t, 5*time.Second, "a state file write is counted", func() bool {
		return value(in.scrape(viewer), "maxine_persistence_writes_total", nil) >= 1
	})
	for _, name := range []string{"maxine_gateway_upstream_errors_total", "maxine_gateway_retries_total", "maxine_registry_expiries_total", "maxine_deregistrations_total"} {
		if _, ok := after[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	// No unbounded labels: nothing carries a path or a client address.
	for name, f := range after {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "path" || l.GetName() == "ip" || strings.Contains(l.GetValue(), "/x") {
					t.Errorf("%s has an unbounded label %s=%s", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

func TestAuditEventsSurviveRestart(t *testing.T) {
	in := start(t, "", nil)
	in.call("POST", "/api/maxine/signin", "", `{"userName":"admin","password":"bad"}`)
	admin := in.signIn("admin", "admin")
	viewer := in.signIn("viewer", "viewer-pass")
	op := in.signIn("op", "op-pass")
	in.register(`{"serviceName":"a","nodeName":"n","hostName":"127.0.0.1","timeOut":60}`)
	in.register(`{"serviceName":"a","nodeName":"short","hostName":"127.0.0.1","timeOut":1}`)
	in.call("DELETE", "/api/maxine/serviceops/register?serviceName=a&nodeName=n", "", "")
	in.call("PUT", "/api/maxine/control/config", op, `{"serverSelectionStrategy":"RH"}`)
	in.call("PUT", "/api/maxine/control/config", viewer, `{"serverSelectionStrategy":"CH"}`)
	in.call("PUT", "/api/maxine/change-password", admin, `{"password":"admin","newPassword":"admin2"}`)
	admin = in.signIn("admin", "admin2")
	want := map[string]string{ // type -> actor
		"signin_failure": "admin", "signin_success": "admin", "register": "127.0.0.1", "deregister": "127.0.0.1",
		"config_change": "op", "authz_denied": "viewer", "password_change": "admin", "expiry": "system",
	}
	check := func(events []any) {
		t.Helper()
		seen := map[string]bool{}
		for _, e := range events {
			ev := e.(map[string]any)
			typ, _ := ev["type"].(string)
			if actor, ok := want[typ]; ok && ev["actor"] == actor {
				if typ != "expiry" && ev["traceId"] == "" {
					t.Errorf("%s event without trace id: %v", typ, ev)
				}
				if typ == "config_change" {
					d := ev["details"].(map[string]any)
					if d["field"] != "serverSelectionStrategy" || d["new"] == nil || d["old"] == nil {
						t.Errorf("config_change details %v", d)
					}
				}
				seen[typ] = true
			}
		}
		for typ := range want {
			if !seen[typ] {
				t.Errorf("audit lacks %s by %s", typ, want[typ])
			}
		}
	}
	eventually(t, 3*time.Second, "expiry audited", func() bool {
		return strings.Contains(string(in.call("GET", "/api/actuator/audit", admin, "").body), `"expiry"`)
	})
	check(in.call("GET", "/api/actuator/audit", admin, "").json["events"].([]any))
	in.stop()
	// The JSONL file holds the same events.
	f, err := os.Open(filepath.Join(in.dataDir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var fromFile []any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("audit.jsonl line does not parse: %q", sc.Text())
		}
		fromFile = append(fromFile, ev)
	}
	f.Close()
	check(fromFile)
	in.restart()
	admin = in.signIn("admin", "admin2")
	check(in.call("GET", "/api/actuator/audit", admin, "").json["events"].([]any))
}

func TestAlertWebhook(t *testing.T) {
	var mu sync.Mutex
	var alerts []map[string]any
	hook := newHookServer(t, func(w http.ResponseWriter, r *http.Request) {
		var a map[string]any
		json.NewDecoder(r.Body).Decode(&a)
		mu.Lock()
		alerts = append(alerts, a)
		mu.Unlock()
	})
	dead := deadAddr(t)
	in := start(t, "", nil, "--alert-webhook", hook, "--breaker-failures", "3", "--max-retries", "0", "--health-checks=false",
		"--breaker-open", "200ms", "--breaker-half-open", "1")
	in.register(`{"serviceName":"down","nodeName":"d1","hostName":"127.0.0.1","port":` + dead + `,"timeOut":60}`)
	eventually(t, 10*time.Second, "breaker_opened alert delivered", func() bool {
		call(t, "GET", in.gateway+"/down/x", "", "")
		mu.Lock()
		defer mu.Unlock()
		for _, a := range alerts {
			if a["type"] == "breaker_opened" && a["service"] == "down" && a["node"] != "" && a["message"] != "" {
				return true
			}
		}
		return false
	})
	viewer := in.signIn("viewer", "viewer-pass")
	if r := in.call("GET", "/api/actuator/alerts", viewer, ""); !strings.Contains(string(r.body), "breaker_opened") {
		t.Fatalf("alerts ring: %s", r.body)
	}
	if r := in.call("GET", "/api/actuator/audit", viewer, ""); !strings.Contains(string(r.body), `"breaker_open"`) {
		t.Fatalf("breaker_open not audited: %s", r.body)
	}
	// The node comes back: a half-open probe succeeds and the breaker closes.
	newUpstreamOn(t, "back", "127.0.0.1:"+dead)
	eventually(t, 10*time.Second, "breaker_close audited after the node recovers", func() bool {
		call(t, "GET", in.gateway+"/down/x", "", "")
		return strings.Contains(string(in.call("GET", "/api/actuator/audit", viewer, "").body), `"breaker_close"`)
	})
}

func TestHealthEviction(t *testing.T) {
	up := newUpstream(t, "sick")
	in := start(t, "", nil, "--health-evict", "--health-interval", "100ms", "--health-fail", "2", "--health-timeout", "1s")
	in.register(strings.Replace(up.registration("sick", "s1"), `"timeOut":60`, `"timeOut":60,"healthCheckPath":"/health"`, 1))
	in.waitRoutable("sick")
	viewer := in.signIn("viewer", "viewer-pass")
	up.healthStatus.Store(500)
	eventually(t, 5*time.Second, "failing node evicted", func() bool {
		_, ok := in.servers(viewer)["sick"]
		return !ok
	})
	// The audit event and the alert are delivered by the gateway's Run
	// goroutine, just after the registry change.
	eventually(t, 5*time.Second, "eviction audited", func() bool {
		return strings.Contains(string(in.call("GET", "/api/actuator/audit", viewer, "").body), `"eviction"`)
	})
	eventually(t, 5*time.Second, "node_evicted alert", func() bool {
		return strings.Contains(string(in.call("GET", "/api/actuator/alerts", viewer, "").body), "node_evicted")
	})
}

func TestHangingWebhookBlocksNothing(t *testing.T) {
	release := make(chan struct{})
	hook := newHookServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-time.After(20 * time.Second):
		}
	})
	defer close(release)
	up := newUpstream(t, "ok")
	dead := deadAddr(t)
	in := start(t, "", nil, "--alert-webhook", hook, "--alert-timeout", "200ms", "--breaker-failures", "2", "--max-retries", "0", "--health-checks=false")
	in.register(`{"serviceName":"down","nodeName":"d1","hostName":"127.0.0.1","port":` + dead + `,"timeOut":60}`)
	in.register(up.registration("fine", "f1"))
	in.waitRoutable("fine")
	for i := 0; i < 10; i++ {
		call(t, "GET", in.gateway+"/down/x", "", "") // opens the breaker: alerts queue up behind the hanging hook
	}
	for i := 0; i < 20; i++ {
		t0 := time.Now()
		r := in.register(up.registration("fine", "f1"))
		g := call(t, "GET", in.gateway+"/fine/x", "", "")
		if d := time.Since(t0); r.status != 200 || g.status != 200 || d > 2*time.Second {
			t.Fatalf("with a hanging webhook: register %d, proxy %d, took %s", r.status, g.status, d)
		}
	}
	admin := in.signIn("admin", "admin")
	eventually(t, 15*time.Second, "failed delivery audited", func() bool {
		return strings.Contains(string(in.call("GET", "/api/actuator/audit", admin, "").body), "alert_delivery_failed")
	})
}

func newHookServer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/hook"
}

// deadAddr is a loopback port nobody listens on.
func deadAddr(t *testing.T) string {
	a := freePort(t)
	return a[strings.LastIndexByte(a, ':')+1:]
}

func TestTracePropagation(t *testing.T) {
	up := newUpstream(t, "tr")
	in := start(t, "", nil)
	in.register(up.registration("tr", "t1"))
	in.waitRoutable("tr")
	valid := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	r := call(t, "GET", in.gateway+"/tr/valid", "", "", "traceparent", valid)
	h, _ := up.seen()
	got := h.Get("Traceparent")
	if r.status != 200 || len(got) != 55 || got[3:35] != valid[3:35] || got[36:52] == valid[36:52] {
		t.Fatalf("upstream traceparent %q for incoming %q", got, valid)
	}
	call(t, "GET", in.gateway+"/tr/malformed", "", "", "traceparent", "00-nothex-xx-01")
	h, _ = up.seen()
	got2 := h.Get("Traceparent")
	if len(got2) != 55 || strings.Contains(got2, "nothex") {
		t.Fatalf("malformed traceparent not replaced: %q", got2)
	}
	viewer := in.signIn("viewer", "viewer-pass")
	eventually(t, 2*time.Second, "traces endpoint lists both", func() bool {
		body := string(in.call("GET", "/api/actuator/traces", viewer, "").body)
		return strings.Contains(body, valid[3:35]) && strings.Contains(body, got2[3:35]) && strings.Contains(body, `"gateway"`)
	})
}

func TestLogsEndpoints(t *testing.T) {
	in := start(t, "", nil, "--log-ring", "5", "--log-file", "maxine.log")
	for i := 0; i < 20; i++ {
		in.call("GET", "/api/actuator/health", "", "")
	}
	viewer := in.signIn("viewer", "viewer-pass")
	r := in.call("GET", "/api/logs/recent?format=lines", viewer, "")
	if lines := r.json["logs"].([]any); len(lines) == 0 || len(lines) > 5 {
		t.Fatalf("recent logs: %d lines", len(lines))
	}
	// The default is the old shape: one string, the lines oldest first.
	r = in.call("GET", "/api/logs/recent", viewer, "")
	if text, ok := r.json["logs"].(string); !ok || len(strings.Split(text, "\n")) > 5 || !strings.Contains(text, "admin request") {
		t.Fatalf("recent logs as one string: %s", r.body)
	}
	if r := in.call("GET", "/api/logs/recent/clear", viewer, ""); r.status != 403 {
		t.Fatalf("viewer clear: %d", r.status)
	}
	op := in.signIn("op", "op-pass")
	if r := in.call("GET", "/api/logs/recent/clear", op, ""); r.status != 200 {
		t.Fatalf("operator clear: %d", r.status)
	}
	r = in.call("GET", "/api/logs/download", viewer, "")
	if r.json["maxine.log"] != "/logs/maxine.log" {
		t.Fatalf("download listing: %s", r.body)
	}
	if r := in.call("GET", "/logs/maxine.log", viewer, ""); r.status != 200 || !strings.Contains(string(r.body), "admin request") {
		t.Fatalf("GET /logs/maxine.log: %d", r.status)
	}
	if r := in.call("GET", "/api/logs/download?file=maxine.log", viewer, ""); r.status != 200 || !strings.Contains(string(r.body), "admin request") {
		t.Fatalf("download maxine.log: %d", r.status)
	}
	for _, bad := range []string{"../registry-state.json", "..", "/etc/passwd", "%2e%2e%2fadmin-credentials.json", "logs/../../x"} {
		r := in.call("GET", "/api/logs/download?file="+bad, viewer, "")
		if r.status != 400 && r.status != 404 {
			t.Errorf("download %q: %d", bad, r.status)
		}
		if strings.Contains(string(r.body), "bcrypt") || strings.Contains(string(r.body), "$2") {
			t.Errorf("download %q leaked a file outside the log dir", bad)
		}
	}
	// The log format switches at run time.
	in.call("PUT", "/api/maxine/control/config", op, `{"logFormat":"PLAIN"}`)
	in.call("GET", "/api/actuator/health", "", "")
	lines := in.call("GET", "/api/logs/recent?format=lines", viewer, "").json["logs"].([]any)
	if len(lines) == 0 || strings.HasPrefix(lines[0].(string), "{") {
		t.Fatalf("after logFormat PLAIN the newest line is %v", lines)
	}
}

func TestGracefulDrain(t *testing.T) {
	up := newUpstream(t, "slow")
	in := start(t, "", nil, "--drain-delay", "1500ms", "--drain-timeout", "10s")
	in.register(up.registration("slow", "s1"))
	in.waitRoutable("slow")
	up.delay.Store(int64(2500 * time.Millisecond))
	const n = 6
	results := make(chan int, n)
	for i := 0; i < n; i++ {
		go func() {
			resp, err := http.Get(in.gateway + "/slow/work")
			if err != nil {
				results <- -1
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results <- resp.StatusCode
		}()
	}
	eventually(t, 5*time.Second, "requests in flight", func() bool { return up.hits.Load() >= n+1 })
	in.cmd.Process.Signal(syscall.SIGTERM)
	// Readiness goes DOWN as draining starts.
	eventually(t, 1200*time.Millisecond, "health DOWN while draining", func() bool {
		r, err := http.Get(in.admin + "/api/actuator/health")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 503
	})
	for i := 0; i < n; i++ {
		if code := <-results; code != 200 {
			t.Fatalf("in-flight request %d ended with %d", i, code)
		}
	}
	<-in.exited
	if in.exitCode != 0 {
		t.Fatalf("exit code %d", in.exitCode)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(in.gateway, "http://"), time.Second); err == nil {
		t.Fatal("gateway still accepts connections after shutdown")
	}
}

// TestShutdownFlushesState runs with a persist interval of an hour, so the
// periodic writer never writes: only the final write on SIGTERM can have
// saved what the restarted process finds. The first change is undone
// later, in case an implementation writes its first change at once.
func TestShutdownFlushesState(t *testing.T) {
	in := start(t, "", nil, "--persist-interval", "1h")
	op := in.signIn("op", "op-pass")
	in.register(`{"serviceName":"early","nodeName":"x","hostName":"127.0.0.1","timeOut":300}`)
	in.register(`{"serviceName":"keep","nodeName":"a","hostName":"127.0.0.1","port":9001,"weight":2,"timeOut":300}`)
	in.register(`{"serviceName":"keep","nodeName":"b","hostName":"127.0.0.1","port":9002,"timeOut":300}`)
	if r := in.call("DELETE", "/api/maxine/serviceops/register?serviceName=early&nodeName=x", "", ""); r.status != 200 {
		t.Fatalf("deregister: %d", r.status)
	}
	if r := in.call("PUT", "/api/maxine/control/config", op, `{"serverSelectionStrategy":"CH"}`); r.status != 200 {
		t.Fatalf("config: %d %s", r.status, r.body)
	}
	in.stop()
	in.restart()
	viewer := in.signIn("viewer", "viewer-pass")
	got := in.servers(viewer)
	sort.Strings(got["keep"])
	if strings.Join(got["keep"], ",") != "a-0,a-1,b-0" {
		t.Fatalf("after SIGTERM and restart keep = %v (the final state write is missing?)", got["keep"])
	}
	if _, ok := got["early"]; ok {
		t.Fatal("a deregistered node came back")
	}
	r := in.call("GET", "/api/maxine/control/config", viewer, "")
	if r.json["serverSelectionStrategy"].(map[string]any)["name"] != "CH" {
		t.Fatalf("strategy not restored: %s", r.body)
	}
}

// TestDrainTimeoutBoundsShutdown holds a proxied request upstream for 60 s
// and sends SIGTERM with a 2 s drain timeout: the process must give up on
// the request and exit by itself well before the upstream answers (the
// 15 s margin is for a loaded machine), still writing its final state
// (the persist interval is an hour, so nothing else writes it).
func TestDrainTimeoutBoundsShutdown(t *testing.T) {
	const drainTimeout, margin, hold = 2 * time.Second, 15 * time.Second, 60 * time.Second
	up := newUpstream(t, "hang")
	in := start(t, "", nil, "--drain-timeout", drainTimeout.String(), "--try-timeout", "120s", "--request-deadline", "120s",
		"--max-retries", "0", "--persist-interval", "1h")
	in.register(up.registration("hang", "h1"))
	in.register(`{"serviceName":"keep","nodeName":"k","hostName":"127.0.0.1","timeOut":300}`)
	in.waitRoutable("hang")
	up.delay.Store(int64(hold))
	stuck := &http.Client{Timeout: hold + 30*time.Second}
	go func() {
		if resp, err := stuck.Get(in.gateway + "/hang/forever"); err == nil {
			resp.Body.Close()
		}
	}()
	eventually(t, 5*time.Second, "request held upstream", func() bool { return up.hits.Load() >= 2 })
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.exited:
	case <-time.After(drainTimeout + margin):
		in.kill()
		t.Fatalf("still running %s after SIGTERM with a request in flight and drain timeout %s:\n%s", drainTimeout+margin, drainTimeout, in.out.String())
	}
	if in.exitCode != 0 {
		t.Fatalf("exit code %d after the drain timeout:\n%s", in.exitCode, in.out.String())
	}
	raw, err := os.ReadFile(filepath.Join(in.dataDir, "registry-state.json"))
	if err != nil {
		t.Fatalf("no state file after a shutdown past the drain timeout: %v", err)
	}
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("state file invalid after drain timeout: %v", err)
	}
	up.delay.Store(0)
	in.restart()
	viewer := in.signIn("viewer", "viewer-pass")
	got := in.servers(viewer)
	if _, ok := got["keep"]; !ok {
		t.Fatalf("state not restored after the drain timeout: %v", got)
	}
	if _, ok := got["hang"]; !ok {
		t.Fatalf("state not restored after the drain timeout: %v", got)
	}
}
