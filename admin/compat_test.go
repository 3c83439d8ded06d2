package admin

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/valyala/fasthttp"

	"github.com/maxine-io/maxine/observe"
)

// Compatibility details old clients rely on (SPEC section 3, found by
// running the old server's SDKs and test suite against this one).

// raw sends a request and returns the status, headers and body bytes as
// they came over the wire.
func (ts *testServer) raw(method, path, token, body string, hdr ...string) (int, http.Header, string) {
	ts.t.Helper()
	resp, b := ts.send(method, path, token, body, hdr...)
	return resp.StatusCode, resp.Header, string(b)
}

// TestJSONWithoutHTMLEscaping: the old server's bodies are JSON.stringify
// output, which leaves <, > and & alone. encoding/json's default escapes
// them (the "->" of the contract's messages became "-\u003e").
func TestJSONWithoutHTMLEscaping(t *testing.T) {
	ts := newTestServer(t, nil)
	status, _, body := ts.raw("POST", "/api/maxine/signin", "", `{"userName":"admin"}`)
	if want := `{"message":"Please provide both of these -> userName and password."}`; status != 400 || body != want {
		t.Fatalf("signin without password: %d %s, want 400 %s", status, body, want)
	}
	status, _, body = ts.raw("POST", "/api/maxine/serviceops/register", "", `{"serviceName":"s","nodeName":"n","hostName":"h","weight":11}`)
	if status != 400 || !strings.HasPrefix(body, `{"message":"Invalid or missing -> hostName, nodeName, serviceName or weight (Maximum`) {
		t.Fatalf("bad registration: %d %s", status, body)
	}
	ts.raw("POST", "/api/maxine/serviceops/register", "", `{"serviceName":"s","nodeName":"n","hostName":"h","metadata":{"team":"a&b <c>"}}`)
	_, _, body = ts.raw("GET", "/api/maxine/serviceops/servers", ts.token("viewer", "viewer-pass"), "")
	if !strings.Contains(body, `"team":"a&b <c>"`) {
		t.Fatalf("servers listing escapes metadata: %s", body)
	}
	for _, esc := range []string{`\u003c`, `\u003e`, `\u0026`} {
		if strings.Contains(body, esc) {
			t.Fatalf("servers listing contains %s: %s", esc, body)
		}
	}
}

// TestLogsDownloadOldShape: /api/logs/download answers a map of file name
// to download URL, and the file is served at that URL to viewers, with no
// way out of the log directory.
func TestLogsDownloadOldShape(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Maxine-info.log"), []byte("line one\nline two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret.json")
	if err := os.WriteFile(secret, []byte(`{"hash":"$2a$secret"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "link.log")); err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(o *Options) { o.LogDir = dir })
	viewer := ts.token("viewer", "viewer-pass")

	status, hdr, body := ts.raw("GET", "/api/logs/download", viewer, "")
	if want := `{"Maxine-info.log":"/logs/Maxine-info.log"}`; status != 200 || body != want {
		t.Fatalf("listing: %d %s, want %s", status, body, want)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("listing content type %q", ct)
	}
	status, hdr, body = ts.raw("GET", "/logs/Maxine-info.log", viewer, "")
	if status != 200 || body != "line one\nline two\n" || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /logs/Maxine-info.log: %d %q %q", status, hdr.Get("Content-Type"), body)
	}
	if status, _, _ := ts.raw("GET", "/logs/Maxine-info.log", "", ""); status != 401 {
		t.Fatalf("log file without a token: %d, want 401", status)
	}
	// ?file= stays as an alias.
	if status, _, body := ts.raw("GET", "/api/logs/download?file=Maxine-info.log", viewer, ""); status != 200 || body != "line one\nline two\n" {
		t.Fatalf("?file= alias: %d %q", status, body)
	}
	for _, bad := range []string{"/logs/link.log", "/logs/sub", "/logs/..%2fsecret.json", "/logs/%2e%2e", "/logs/nope.log", "/logs/", "/logs/a%00b"} {
		status, _, body := ts.raw("GET", bad, viewer, "")
		if status != 400 && status != 404 {
			t.Errorf("GET %s: %d, want 400 or 404", bad, status)
		}
		if strings.Contains(body, "$2a$secret") {
			t.Errorf("GET %s leaked a file outside the log dir", bad)
		}
	}
	// A raw path fasthttp does not normalise away still cannot leave dir.
	if status := rawPathStatus(t, ts.base, "/logs/../../"+filepath.Base(secret), viewer); status != 400 && status != 404 {
		t.Errorf("raw ../ path: %d", status)
	}

	// No log dir configured: an empty map.
	empty := newTestServer(t, nil)
	if status, _, body := empty.raw("GET", "/api/logs/download", empty.token("viewer", "viewer-pass"), ""); status != 200 || body != `{}` {
		t.Fatalf("listing without a log dir: %d %s", status, body)
	}
}

// rawPathStatus sends path unnormalised on a raw connection.
func rawPathStatus(t *testing.T, base, path, token string) int {
	t.Helper()
	c := &fasthttp.HostClient{Addr: strings.TrimPrefix(base, "http://"), DisablePathNormalizing: true}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.URI().DisablePathNormalizing = true
	req.SetRequestURI(base + path)
	req.Header.Set("Authorization", "Bearer "+token)
	if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode()
}

// TestLogsRecentOldShape: /api/logs/recent answers {"logs": "<one string>"},
// the recent lines oldest first joined by newlines; ?format=lines gives the
// array of lines, newest first.
func TestLogsRecentOldShape(t *testing.T) {
	ring := observe.NewLogRing(10)
	ts := newTestServer(t, func(o *Options) { o.LogRing = ring })
	viewer := ts.token("viewer", "viewer-pass")
	ring.Clear() // the sign-in above may have logged
	for _, l := range []string{"first <a>\n", "second\n", "third\n"} {
		ring.Write([]byte(l))
	}
	status, _, body := ts.raw("GET", "/api/logs/recent", viewer, "")
	if want := `{"logs":"first <a>\nsecond\nthird"}`; status != 200 || body != want {
		t.Fatalf("recent: %d %s, want %s", status, body, want)
	}
	if _, _, body := ts.raw("GET", "/api/logs/recent?limit=2", viewer, ""); body != `{"logs":"second\nthird"}` {
		t.Fatalf("recent?limit=2: %s", body)
	}
	if _, _, body := ts.raw("GET", "/api/logs/recent?format=lines", viewer, ""); body != `{"logs":["third","second","first <a>"]}` {
		t.Fatalf("recent?format=lines: %s", body)
	}
	ring.Clear()
	if _, _, body := ts.raw("GET", "/api/logs/recent", viewer, ""); body != `{"logs":""}` {
		t.Fatalf("recent after clear: %s", body)
	}
	if status, _, body := ts.raw("GET", "/api/logs/recent?format=xml", viewer, ""); status != 400 || !strings.Contains(body, "format") {
		t.Fatalf("unknown format: %d %s", status, body)
	}
}

// proxyStub stands in for the gateway where a unit test only needs the
// proxy endpoints to answer; the real gateway is exercised in e2e.
type proxyStub struct{ unhealthy int }

func (p *proxyStub) ServeService(ctx *fasthttp.RequestCtx, service string, path []byte) {
	ctx.SetStatusCode(200)
	ctx.SetBodyString("proxied " + service + string(path))
}
func (p *proxyStub) NodeStatus(string, string) (string, bool, bool) { return "", false, false }
func (p *proxyStub) UnhealthyUpstreams() int                        { return p.unhealthy }

func (ts *testServer) scrape(token string) map[string]*dto.MetricFamily {
	ts.t.Helper()
	status, _, body := ts.raw("GET", "/api/actuator/prometheus", token, "")
	if status != 200 {
		ts.t.Fatalf("prometheus: %d", status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		ts.t.Fatalf("exposition does not parse: %v\n%s", err, body)
	}
	return fams
}

// oldFamilies are the old server's Prometheus families: one unlabeled
// sample each, which dashboards and alert rules read as is.
var oldFamilies = []string{
	"maxine_requests_total", "maxine_auth_failures_total", "maxine_auth_success_total",
	"maxine_registrations_total", "maxine_discoveries_total", "maxine_proxied_requests_total",
	"maxine_health_checks_total", "maxine_health_check_failures_total", "maxine_health_evictions_total",
	"maxine_alerts_total", "maxine_registered_services", "maxine_registered_parent_nodes",
	"maxine_registered_virtual_nodes", "maxine_cluster_is_leader", "maxine_cluster_has_leader",
	"maxine_unhealthy_upstreams",
}

// oldValues returns each old family's single unlabeled sample; a family
// that is missing, labeled or has more than one sample fails the test.
func oldValues(t *testing.T, fams map[string]*dto.MetricFamily) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, name := range oldFamilies {
		f, ok := fams[name]
		if !ok {
			t.Errorf("family %s is not exported", name)
			continue
		}
		if len(f.Metric) != 1 || len(f.Metric[0].Label) != 0 {
			t.Errorf("family %s has %d samples (labels %v), want one unlabeled sample", name, len(f.Metric), f.Metric[0].Label)
			continue
		}
		m := f.Metric[0]
		switch {
		case m.Counter != nil:
			out[name] = m.Counter.GetValue()
		case m.Gauge != nil:
			out[name] = m.Gauge.GetValue()
		case m.Untyped != nil:
			out[name] = m.Untyped.GetValue()
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// TestOldPrometheusFamilies drives each old family with known events and
// reads the scrape with the real exposition parser.
func TestOldPrometheusFamilies(t *testing.T) {
	alerts := observe.NewAlerts(observe.AlertOptions{})
	ts := newTestServer(t, func(o *Options) {
		o.Alerts = alerts
		o.Proxy = &proxyStub{unhealthy: 2}
	})
	requests := 0
	call := func(method, path, token, body string) int {
		requests++
		status, _, _ := ts.raw(method, path, token, body)
		return status
	}
	viewer := ts.token("viewer", "viewer-pass") // auth success 1
	requests++
	call("POST", "/api/maxine/signin", "", `{"userName":"admin","password":"wrong"}`)                                         // auth failure 1
	call("POST", "/api/maxine/signin", "", `{"userName":"admin"}`)                                                            // auth failure 2
	call("GET", "/api/maxine/serviceops/servers", "", "")                                                                     // auth failure 3 (401)
	call("PUT", "/api/maxine/control/config", viewer, `{"logAsync":true}`)                                                    // auth failure 4 (403)
	call("POST", "/api/maxine/serviceops/register", "", `{"serviceName":"orders","nodeName":"n1","hostName":"h","weight":2}`) // registration 1
	call("POST", "/api/maxine/serviceops/register", "", `{"serviceName":"orders","nodeName":"n1","hostName":"h","weight":2}`) // registration 2 (heartbeat)
	call("POST", "/api/maxine/serviceops/register", "", `{"serviceName":"pay","nodeName":"p1","hostName":"h","weight":3}`)    // registration 3
	call("POST", "/api/maxine/serviceops/register", "", `{"serviceName":"pay","nodeName":"p1","hostName":"h","weight":30}`)   // refused: not counted
	call("GET", "/api/maxine/serviceops/discover?serviceName=orders", "", "")                                                 // discovery 1
	call("GET", "/api/maxine/serviceops/discover?serviceName=nope", "", "")                                                   // miss: not counted
	call("GET", "/api/maxine/serviceops/discover?serviceName=pay&mode=proxy", "", "")                                         // discovery 2, proxied 1
	call("GET", "/api/maxine/serviceops/proxy/orders/x", "", "")                                                              // discovery 3, proxied 2
	call("GET", "/api/maxine/serviceops/proxy/nope/x", "", "")                                                                // miss: not counted
	call("GET", "/no/such/path", "", "")
	alerts.Raise(observe.Alert{Type: "test"})
	alerts.Raise(observe.Alert{Type: "test"})

	got := oldValues(t, ts.scrape(viewer))
	want := map[string]float64{
		"maxine_requests_total":      float64(requests),
		"maxine_auth_failures_total": 4, "maxine_auth_success_total": 1,
		"maxine_registrations_total": 3, "maxine_discoveries_total": 3, "maxine_proxied_requests_total": 2,
		"maxine_health_checks_total": 0, "maxine_health_check_failures_total": 0, "maxine_health_evictions_total": 0,
		"maxine_alerts_total":        2,
		"maxine_registered_services": 2, "maxine_registered_parent_nodes": 2, "maxine_registered_virtual_nodes": 5,
		// Local mode: the one instance is the only writer of its state,
		// as the old server reported it without leader election.
		"maxine_cluster_is_leader": 1, "maxine_cluster_has_leader": 1,
		"maxine_unhealthy_upstreams": 2,
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %v, want %v", name, got[name], w)
		}
	}
	// The new breakdowns stay beside the old families, under their own
	// names, so that sum() over an old family is still the old total.
	fams := ts.scrape(viewer)
	for _, name := range []string{"maxine_registrations_by_kind_total", "maxine_discoveries_by_mode_total", "maxine_auth_total", "maxine_admin_requests_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("new family %s missing", name)
		}
	}

	// In a cluster the gauges follow the coordination state.
	follower := newTestServer(t, func(o *Options) {
		o.Cluster = func() ClusterStatus {
			return ClusterStatus{Enabled: true, Elected: true, IsLeader: false, HasLeader: true}
		}
	})
	got = oldValues(t, follower.scrape(follower.token("viewer", "viewer-pass")))
	if got["maxine_cluster_is_leader"] != 0 || got["maxine_cluster_has_leader"] != 1 || got["maxine_unhealthy_upstreams"] != 0 {
		t.Fatalf("follower: is_leader %v has_leader %v unhealthy %v", got["maxine_cluster_is_leader"], got["maxine_cluster_has_leader"], got["maxine_unhealthy_upstreams"])
	}
}

// TestCORS: the old server ran the cors middleware with its defaults, so
// browser dashboards on another origin could call the admin API.
func TestCORS(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.CORSOrigins = []string{"*"} })
	status, hdr, _ := ts.raw("GET", "/api/actuator/health", "", "", "Origin", "https://dash.example")
	if status != 200 || hdr.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("simple request: %d, Allow-Origin %q", status, hdr.Get("Access-Control-Allow-Origin"))
	}
	// Errors carry it too, or the browser hides them from the page.
	if _, hdr, _ := ts.raw("GET", "/api/maxine/serviceops/servers", "", "", "Origin", "https://dash.example"); hdr.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("401 lacks Allow-Origin: %v", hdr)
	}
	status, hdr, body := ts.raw("OPTIONS", "/api/maxine/serviceops/servers", "", "",
		"Origin", "https://dash.example", "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "authorization,content-type")
	if status != 204 || body != "" {
		t.Fatalf("preflight: %d %q, want 204 and no body", status, body)
	}
	if hdr.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("preflight Allow-Origin %q", hdr.Get("Access-Control-Allow-Origin"))
	}
	methods := hdr.Get("Access-Control-Allow-Methods")
	for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
		if !strings.Contains(methods, m) {
			t.Fatalf("Allow-Methods %q lacks %s", methods, m)
		}
	}
	if h := strings.ToLower(hdr.Get("Access-Control-Allow-Headers")); !strings.Contains(h, "authorization") || !strings.Contains(h, "content-type") {
		t.Fatalf("Allow-Headers %q", hdr.Get("Access-Control-Allow-Headers"))
	}

	// A configured list: only listed origins are echoed (with Vary), others
	// get no CORS headers at all.
	listed := newTestServer(t, func(o *Options) { o.CORSOrigins = []string{"https://dash.example", "http://localhost:3000"} })
	_, hdr, _ = listed.raw("GET", "/api/actuator/health", "", "", "Origin", "http://localhost:3000")
	if hdr.Get("Access-Control-Allow-Origin") != "http://localhost:3000" || !strings.Contains(hdr.Get("Vary"), "Origin") {
		t.Fatalf("listed origin: %v", hdr)
	}
	_, hdr, _ = listed.raw("GET", "/api/actuator/health", "", "", "Origin", "https://evil.example")
	if hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("unlisted origin got Allow-Origin %q", hdr.Get("Access-Control-Allow-Origin"))
	}
	status, hdr, _ = listed.raw("OPTIONS", "/api/maxine/signin", "", "", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
	if status != 204 || hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("unlisted preflight: %d %v", status, hdr)
	}
	// CORS off (no origins): no headers, and OPTIONS is an unknown method
	// again.
	off := newTestServer(t, nil)
	status, hdr, _ = off.raw("OPTIONS", "/api/maxine/signin", "", "", "Origin", "https://dash.example", "Access-Control-Request-Method", "POST")
	if status != 405 || hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS off preflight: %d %v", status, hdr)
	}
}

// TestActuatorInfoName: the old actuator's build name was the npm package
// name; our own fields stay beside it.
func TestActuatorInfoName(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.Build = BuildInfo{Name: "maxine", Description: "d", Version: "1.2.3"} })
	resp, m := ts.do("GET", "/api/actuator/info", "", "")
	b, _ := m["build"].(map[string]any)
	if resp.StatusCode != 200 || b["name"] != "maxine-discovery" || b["version"] != "1.2.3" || b["goVersion"] == "" {
		t.Fatalf("info: %d %v", resp.StatusCode, m)
	}
}

// TestPerformanceNotConfigured: the old actuator's performance endpoint
// answered 404 with this message when no report URL was configured (there
// is none here).
func TestPerformanceNotConfigured(t *testing.T) {
	ts := newTestServer(t, nil)
	if status, _, body := ts.raw("GET", "/api/actuator/performance", "", ""); status != 404 || body != `{"message":"Performance report URL is not configured."}` {
		t.Fatalf("performance: %d %s", status, body)
	}
}

// TestDiscoverRedirectBody: the old server redirected with Express's
// res.redirect, whose body is "Found. Redirecting to <url>" as text/plain.
func TestDiscoverRedirectBody(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.raw("POST", "/api/maxine/serviceops/register", "", `{"serviceName":"orders","nodeName":"n1","hostName":"127.0.0.1","port":9001}`)
	status, hdr, body := ts.raw("GET", "/api/maxine/serviceops/discover?serviceName=orders&endPoint=/list", "", "")
	if status != 302 || hdr.Get("Location") != "http://127.0.0.1:9001/list" {
		t.Fatalf("discover: %d %q", status, hdr.Get("Location"))
	}
	if want := "Found. Redirecting to http://127.0.0.1:9001/list"; body != want || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("discover body %q (%q), want %q as text/plain", body, hdr.Get("Content-Type"), want)
	}
}

// TestRegisteredAtString: the old register response set registeredAt from
// new Date().toLocaleString(), a string such as "3/30/2026, 1:08:26 PM" in
// the server's time zone; the servers listing keeps ms since the epoch.
func TestRegisteredAtString(t *testing.T) {
	ts := newTestServer(t, nil)
	before := time.Now().Truncate(time.Second)
	resp, m := ts.do("POST", "/api/maxine/serviceops/register", "", `{"serviceName":"orders","nodeName":"n2","hostName":"h"}`)
	after := time.Now()
	s, ok := m["registeredAt"].(string)
	if resp.StatusCode != 200 || !ok {
		t.Fatalf("registeredAt = %#v (%T), want a string", m["registeredAt"], m["registeredAt"])
	}
	at, err := time.ParseInLocation("1/2/2006, 3:04:05 PM", s, time.Local)
	if err != nil || at.Before(before) || at.After(after) {
		t.Fatalf("registeredAt %q: %v (want between %v and %v)", s, err, before, after)
	}
	_, m = ts.do("GET", "/api/maxine/serviceops/servers", ts.token("viewer", "viewer-pass"), "")
	if _, ok := m["orders"].(map[string]any)["nodes"].(map[string]any)["n2-0"].(map[string]any)["registeredAt"].(float64); !ok {
		t.Fatalf("servers registeredAt is not a number: %v", m)
	}
}
