package admin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/maxine-io/maxine/auth"
	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/observe"
	"github.com/maxine-io/maxine/registry"
)

// testServer is a real admin server on a loopback port.
type testServer struct {
	t        *testing.T
	srv      *Server
	base     string
	reg      *registry.Registry
	settings *config.Store
	audit    *observe.Audit
	client   *http.Client
}

func newTestServer(t *testing.T, mutate func(*Options)) *testServer {
	t.Helper()
	authority, err := auth.New(auth.Options{
		DataDir: t.TempDir(), BcryptCost: 4, Secret: []byte("test-secret"),
		OperatorUser: "op", OperatorPassword: "op-pass", ViewerUser: "viewer", ViewerPassword: "viewer-pass",
	})
	if err != nil {
		t.Fatal(err)
	}
	audit, err := observe.NewAudit(observe.AuditOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Registry: registry.New(registry.Options{}), Settings: config.New(config.Defaults()), Auth: authority,
		Audit: audit, Traces: observe.NewTraces(100), LogRing: observe.NewLogRing(10),
	}
	if mutate != nil {
		mutate(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := s.NewHTTPServer(HTTPServerOptions{MaxBodySize: 64 << 10})
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return &testServer{t: t, srv: s, base: "http://" + ln.Addr().String(), reg: o.Registry, settings: o.Settings, audit: audit,
		client: &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request and returns the response (its body read) and the
// body decoded as a JSON object.
func (ts *testServer) do(method, path, token, body string, hdr ...string) (*http.Response, map[string]any) {
	ts.t.Helper()
	resp, b := ts.send(method, path, token, body, hdr...)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp, m
}

// send sends a request (JSON body, bearer token, header pairs) and
// returns the response and its body bytes.
func (ts *testServer) send(method, path, token, body string, hdr ...string) (*http.Response, []byte) {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.base+path, strings.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	return resp, b
}

func (ts *testServer) token(user, pass string) string {
	ts.t.Helper()
	resp, m := ts.do("POST", "/api/maxine/signin", "", `{"userName":"`+user+`","password":"`+pass+`"}`)
	if resp.StatusCode != 200 {
		ts.t.Fatalf("signin %s: %d %v", user, resp.StatusCode, m)
	}
	return m["accessToken"].(string)
}

func TestSignIn(t *testing.T) {
	ts := newTestServer(t, nil)
	tests := []struct {
		body   string
		status int
		msg    string
	}{
		{`{"userName":"admin","password":"admin"}`, 200, ""},
		{`{"userName":"admin"}`, 400, "Please provide both of these -> userName and password."},
		{`{"password":"x"}`, 400, "Please provide both of these -> userName and password."},
		{`not json`, 400, "Please provide both of these -> userName and password."},
		{`{"userName":"admin","password":"wrong"}`, 401, "Unauthorized"},
		{`{"userName":"nobody","password":"admin"}`, 401, "Unauthorized"},
	}
	for _, tc := range tests {
		resp, m := ts.do("POST", "/api/maxine/signin", "", tc.body)
		if resp.StatusCode != tc.status {
			t.Fatalf("%s: status %d, want %d", tc.body, resp.StatusCode, tc.status)
		}
		if tc.msg != "" && m["message"] != tc.msg {
			t.Fatalf("%s: message %v", tc.body, m["message"])
		}
		if tc.status == 200 && (m["accessToken"] == "" || m["role"] != "admin") {
			t.Fatalf("signin body %v", m)
		}
	}
	ev := ts.audit.Recent(0)
	if len(ev) == 0 || ev[0].Type != "signin_failure" {
		t.Fatalf("audit %+v", ev)
	}
}

// TestSignInRateLimit: the limiter is asked once per sign-in attempt,
// before the password is checked, so with a frozen clock exactly the burst
// gets through, and exactly one more per refill interval. The clock is the
// test's, so the counts are exact.
func TestSignInRateLimit(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
	}
	const burst = 3
	ts := newTestServer(t, func(o *Options) {
		o.SignInLimiter = auth.NewRateLimiter(6, burst, 100, clock) // one attempt per 10 s
	})
	attempt := func() int {
		resp, _ := ts.do("POST", "/api/maxine/signin", "", `{"userName":"admin","password":"wrong"}`)
		return resp.StatusCode
	}
	counts := func(n int) map[int]int {
		c := map[int]int{}
		for range n {
			c[attempt()]++
		}
		return c
	}
	if got := counts(10); got[401] != burst || got[429] != 10-burst {
		t.Fatalf("10 attempts at once: %v, want %d x 401 then %d x 429", got, burst, 10-burst)
	}
	resp, m := ts.do("POST", "/api/maxine/signin", "", `{"userName":"admin","password":"admin"}`)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "60" || m["message"] != "Too many sign-in attempts, try again later" {
		t.Fatalf("right password while limited: %d %q %v", resp.StatusCode, resp.Header.Get("Retry-After"), m)
	}
	advance(9 * time.Second)
	if got := attempt(); got != 429 {
		t.Fatalf("after 9 s (0.9 of an attempt): %d, want 429", got)
	}
	advance(time.Second)
	if got := counts(5); got[401] != 1 || got[429] != 4 {
		t.Fatalf("after 10 s: %v, want one attempt through", got)
	}
	advance(time.Hour)
	if got := counts(10); got[401] != burst || got[429] != 10-burst {
		t.Fatalf("after an hour: %v, want the burst (%d) back, not an hour's worth", got, burst)
	}
}

func TestTraceHeaders(t *testing.T) {
	ts := newTestServer(t, nil)
	in := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	resp, _ := ts.do("GET", "/api/actuator/health", "", "", "traceparent", in, "x-trace-id", "abc123")
	if resp.Header.Get("traceparent") != in || resp.Header.Get("x-trace-id") != "abc123" {
		t.Fatalf("incoming trace headers not kept: %v", resp.Header)
	}
	// The trace record carries the response's traceparent.
	if recs := ts.srv.o.Traces.Recent(1); len(recs) != 1 || recs[0].Kind != "admin" || recs[0].Traceparent != in {
		t.Fatalf("trace record %+v, want the admin request with traceparent %s", recs, in)
	}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-b7ad6b7169203331-01", "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"} {
		resp, _ = ts.do("GET", "/no/such/path", "", "", "traceparent", bad)
		tp := resp.Header.Get("traceparent")
		if resp.StatusCode != 404 || tp == bad || len(tp) != 55 || resp.Header.Get("x-trace-id") != tp[3:35] {
			t.Fatalf("traceparent %q -> %d %q / %q", bad, resp.StatusCode, tp, resp.Header.Get("x-trace-id"))
		}
	}
}

func TestRegisterDiscoverDeregister(t *testing.T) {
	ts := newTestServer(t, nil)
	resp, m := ts.do("POST", "/api/maxine/serviceops/register", "", `{"serviceName":"orders","nodeName":"n1","hostName":"127.0.0.1","port":9001,"path":"api","weight":2,"timeOut":30}`)
	if resp.StatusCode != 200 || m["address"] != "http://127.0.0.1:9001/api" || m["weight"] != 2.0 || m["timeOut"] != 30.0 {
		t.Fatalf("register: %d %v", resp.StatusCode, m)
	}
	resp, _ = ts.do("GET", "/api/maxine/serviceops/discover?serviceName=orders&endPoint=/list", "", "")
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "http://127.0.0.1:9001/api/list" {
		t.Fatalf("discover: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, m = ts.do("GET", "/api/maxine/serviceops/discover", "", "")
	if resp.StatusCode != 400 || m["message"] != "Please provide the serviceName." {
		t.Fatalf("discover without name: %d %v", resp.StatusCode, m)
	}
	resp, m = ts.do("GET", "/api/maxine/serviceops/discover?serviceName=nope", "", "")
	if resp.StatusCode != 503 || m["message"] != "Service Unavailable" {
		t.Fatalf("discover unknown: %d %v", resp.StatusCode, m)
	}
	resp, m = ts.do("GET", "/api/maxine/serviceops/discover?serviceName=orders&mode=proxy", "", "")
	if resp.StatusCode != 501 {
		t.Fatalf("proxy mode without gateway: %d %v", resp.StatusCode, m)
	}
	resp, _ = ts.do("DELETE", "/api/maxine/serviceops/register?serviceName=orders&nodeName=zzz", "", "")
	if resp.StatusCode != 404 {
		t.Fatalf("deregister unknown: %d", resp.StatusCode)
	}
	resp, _ = ts.do("DELETE", "/api/maxine/serviceops/register?serviceName=orders", "", "")
	if resp.StatusCode != 400 {
		t.Fatalf("deregister without node: %d", resp.StatusCode)
	}
	resp, _ = ts.do("DELETE", "/api/maxine/serviceops/register?serviceName=orders&nodeName=n1", "", "")
	if resp.StatusCode != 200 || ts.reg.Snapshot("orders") != nil {
		t.Fatalf("deregister: %d", resp.StatusCode)
	}
}

func TestRegisterRejects(t *testing.T) {
	ts := newTestServer(t, nil)
	tests := []struct {
		name, body, ctype string
		status            int
	}{
		{"malformed", `{"serviceName":`, "application/json", 400},
		{"wrong type", `{"serviceName":"s","nodeName":"n","hostName":"h","weight":"x"}`, "application/json", 400},
		{"weight 0", `{"serviceName":"s","nodeName":"n","hostName":"h","weight":0}`, "application/json", 400},
		{"weight 11", `{"serviceName":"s","nodeName":"n","hostName":"h","weight":11}`, "application/json", 400},
		{"port 70000", `{"serviceName":"s","nodeName":"n","hostName":"h","port":70000}`, "application/json", 400},
		{"form content type", `{"serviceName":"s","nodeName":"n","hostName":"h"}`, "application/x-www-form-urlencoded", 400},
		{"too large", `{"serviceName":"` + strings.Repeat("x", 100<<10) + `"}`, "application/json", 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			var err error
			if tc.status == 413 {
				// The server answers from the head and closes; a client
				// still writing the body may see a reset instead of the
				// answer, so send only the head and read the answer.
				resp, err = postHeadOnly(ts.base, "/api/maxine/serviceops/register", tc.ctype, len(tc.body))
			} else {
				req, _ := http.NewRequest("POST", ts.base+"/api/maxine/serviceops/register", strings.NewReader(tc.body))
				req.Header.Set("Content-Type", tc.ctype)
				resp, err = ts.client.Do(req)
			}
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			json.NewDecoder(resp.Body).Decode(&m)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%v)", resp.StatusCode, tc.status, m)
			}
			if tc.status == 400 && strings.HasPrefix(tc.name, "weight") && m["message"] != registry.InvalidRegistrationMessage {
				t.Fatalf("message %v", m["message"])
			}
		})
	}
	if ts.reg.Len() != 0 {
		t.Fatal("a refused registration changed the registry")
	}
}

// postHeadOnly sends a POST head announcing a body of n bytes, sends none
// of it, and reads the answer.
func postHeadOnly(base, path, ctype string, n int) (*http.Response, error) {
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	head := "POST " + path + " HTTP/1.1\r\nHost: maxine\r\nContent-Type: " + ctype + "\r\nContent-Length: " + strconv.Itoa(n) + "\r\n\r\n"
	if _, err := conn.Write([]byte(head)); err != nil {
		conn.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	conn.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

func TestRegistrationToken(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.RegistrationToken = "reg-secret" })
	body := `{"serviceName":"s","nodeName":"n","hostName":"h"}`
	if resp, _ := ts.do("POST", "/api/maxine/serviceops/register", "", body); resp.StatusCode != 401 {
		t.Fatalf("no token: %d", resp.StatusCode)
	}
	if resp, _ := ts.do("POST", "/api/maxine/serviceops/register", "wrong", body); resp.StatusCode != 401 {
		t.Fatalf("wrong token: %d", resp.StatusCode)
	}
	if resp, _ := ts.do("POST", "/api/maxine/serviceops/register", "reg-secret", body); resp.StatusCode != 200 {
		t.Fatalf("right token: %d", resp.StatusCode)
	}
	if resp, _ := ts.do("DELETE", "/api/maxine/serviceops/register?serviceName=s&nodeName=n", "", ""); resp.StatusCode != 401 {
		t.Fatalf("deregister without token: %d", resp.StatusCode)
	}
}

func TestConfig(t *testing.T) {
	ts := newTestServer(t, nil)
	op := ts.token("op", "op-pass")
	viewer := ts.token("viewer", "viewer-pass")
	resp, m := ts.do("GET", "/api/maxine/control/config", viewer, "")
	if resp.StatusCode != 200 || m["heartBeatTimeout"] != 5.0 || m["serverSelectionStrategy"].(map[string]any)["name"] != "RR" {
		t.Fatalf("get config %d %v", resp.StatusCode, m)
	}
	if resp, _ := ts.do("PUT", "/api/maxine/control/config", viewer, `{"serverSelectionStrategy":"CH"}`); resp.StatusCode != 403 {
		t.Fatalf("viewer put: %d", resp.StatusCode)
	}
	resp, m = ts.do("PUT", "/api/maxine/control/config", op,
		`{"serverSelectionStrategy":"CH","discoveryMode":"SIDEWAYS","heartBeatTimeout":"ten","logFormat":"PLAIN","port":1,"actuatorEnabled":true}`)
	want := map[string]any{"serverSelectionStrategy": "Success", "discoveryMode": "Wrong value Or Invalid value",
		"heartBeatTimeout": "Type Error", "logFormat": "Success", "port": "Wrong value Or Invalid value", "actuatorEnabled": "Success"}
	if resp.StatusCode != 200 || len(m) != len(want) {
		t.Fatalf("put config %d %v", resp.StatusCode, m)
	}
	for k, v := range want {
		if m[k] != v {
			t.Fatalf("field %s = %v, want %v", k, m[k], v)
		}
	}
	if st := ts.settings.Load(); st.Strategy != config.ConsistentHashing || st.LogFormat != config.PlainLogs || st.DiscoveryMode != config.Redirect {
		t.Fatalf("settings %+v", st)
	}
	if resp, _ := ts.do("PUT", "/api/maxine/control/config", op, `[1,2]`); resp.StatusCode != 400 {
		t.Fatalf("array body: %d", resp.StatusCode)
	}
	ev := ts.audit.Recent(0)
	found := 0
	for _, e := range ev {
		if e.Type == "config_change" && e.Actor == "op" && e.TraceID != "" {
			found++
		}
	}
	if found != 2 {
		t.Fatalf("config_change audit events %d, want 2: %+v", found, ev)
	}
}

func TestFollowerRefusesConfig(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		o.Cluster = func() ClusterStatus { return ClusterStatus{Enabled: true, Elected: true, IsLeader: false} }
	})
	resp, m := ts.do("PUT", "/api/maxine/control/config", ts.token("admin", "admin"), `{"serverSelectionStrategy":"CH"}`)
	if resp.StatusCode != 409 || m["message"] != "This control-plane mutation must be handled by the current leader instance." {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
}

// rbacRoutes is the RBAC matrix: every route the admin router serves, keyed
// by method and pattern as registered, with the least role that may call it
// (written out here, not taken from the code under test) and a request that
// reaches the route's handler. roleNone marks public routes.
var rbacRoutes = map[string]struct {
	need       rbacRole
	path, body string
}{
	"POST /api/maxine/signin":                               {roleNone, "/api/maxine/signin", `{}`},
	"PUT /api/maxine/change-password":                       {roleAdmin, "/api/maxine/change-password", `{}`},
	"POST /api/maxine/serviceops/register":                  {roleNone, "/api/maxine/serviceops/register", `{}`},
	"DELETE /api/maxine/serviceops/register":                {roleNone, "/api/maxine/serviceops/register?serviceName=s&nodeName=n", ""},
	"GET /api/maxine/serviceops/discover":                   {roleNone, "/api/maxine/serviceops/discover?serviceName=s", ""},
	"* /api/maxine/serviceops/proxy/{serviceName}/{path:*}": {roleNone, "/api/maxine/serviceops/proxy/s/x", ""},
	"GET /api/maxine/serviceops/servers":                    {roleViewer, "/api/maxine/serviceops/servers", ""},
	"GET /api/maxine/control/config":                        {roleViewer, "/api/maxine/control/config", ""},
	"PUT /api/maxine/control/config":                        {roleOperator, "/api/maxine/control/config", `{"logAsync":true}`},
	"GET /api/actuator/health":                              {roleNone, "/api/actuator/health", ""},
	"GET /api/actuator/info":                                {roleNone, "/api/actuator/info", ""},
	"GET /api/actuator/metrics":                             {roleNone, "/api/actuator/metrics", ""},
	"GET /api/actuator/performance":                         {roleNone, "/api/actuator/performance", ""},
	"GET /api/actuator/prometheus":                          {roleViewer, "/api/actuator/prometheus", ""},
	"GET /metrics":                                          {roleNone, "/metrics", ""},
	"GET /api/actuator/audit":                               {roleViewer, "/api/actuator/audit", ""},
	"GET /api/actuator/alerts":                              {roleViewer, "/api/actuator/alerts", ""},
	"GET /api/actuator/traces":                              {roleViewer, "/api/actuator/traces", ""},
	"GET /api/actuator/cluster":                             {roleViewer, "/api/actuator/cluster", ""},
	"GET /api/actuator/upstreams":                           {roleViewer, "/api/actuator/upstreams", ""},
	"GET /api/logs/recent":                                  {roleViewer, "/api/logs/recent", ""},
	"GET /api/logs/recent/clear":                            {roleOperator, "/api/logs/recent/clear", ""},
	"POST /api/logs/recent/clear":                           {roleOperator, "/api/logs/recent/clear", ""},
	"GET /api/logs/download":                                {roleViewer, "/api/logs/download", ""},
	"GET /logs/{name}":                                      {roleViewer, "/logs/Maxine-info.log", ""},
}

// rbacRole is the test's own ranking of callers, in the nesting order SPEC
// section 7 gives (viewer < operator < admin), so the expectations do not
// lean on auth.Role's ordering or Allows.
type rbacRole int

const (
	roleNone rbacRole = iota // no token at all
	roleViewer
	roleOperator
	roleAdmin
)

func (r rbacRole) String() string { return [...]string{"anonymous", "viewer", "operator", "admin"}[r] }

// TestRBAC calls every route the router serves as every kind of caller.
// The route list comes from the router itself, so a route added without an
// entry in rbacRoutes fails here instead of going unchecked.
func TestRBAC(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.PublicMetrics = true })

	served := map[string]bool{}
	for method, paths := range ts.srv.router.List() {
		for _, p := range paths {
			served[method+" "+p] = true
		}
	}
	for route := range served {
		if _, ok := rbacRoutes[route]; !ok {
			t.Errorf("route %q has no expected role in rbacRoutes: add one", route)
		}
	}
	for route := range rbacRoutes {
		if !served[route] {
			t.Errorf("rbacRoutes lists %q, which the router does not serve", route)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	tokens := map[rbacRole]string{
		roleViewer:   ts.token("viewer", "viewer-pass"),
		roleOperator: ts.token("op", "op-pass"),
		roleAdmin:    ts.token("admin", "admin"),
	}
	for route, r := range rbacRoutes {
		method, _, _ := strings.Cut(route, " ")
		if method == "*" {
			method = "GET"
		}
		for _, caller := range []rbacRole{roleNone, roleViewer, roleOperator, roleAdmin} {
			resp, m := ts.do(method, r.path, tokens[caller], r.body)
			switch {
			case caller >= r.need:
				if resp.StatusCode == 401 || resp.StatusCode == 403 {
					t.Errorf("%s as %s: %d %v, want it let through (route needs %s)", route, caller, resp.StatusCode, m, r.need)
				}
			case caller == roleNone:
				if resp.StatusCode != 401 || m["message"] != "Unauthorized" {
					t.Errorf("%s without a token: %d %v, want 401 Unauthorized (route needs %s)", route, resp.StatusCode, m, r.need)
				}
			default:
				if resp.StatusCode != 403 || m["message"] != "Forbidden" {
					t.Errorf("%s as %s: %d %v, want 403 Forbidden (route needs %s)", route, caller, resp.StatusCode, m, r.need)
				}
			}
		}
	}
}

func TestServersShape(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.do("POST", "/api/maxine/serviceops/register", "", `{"serviceName":"orders","nodeName":"n1","hostName":"h","weight":2,"healthCheckPath":"/health"}`)
	resp, m := ts.do("GET", "/api/maxine/serviceops/servers", ts.token("viewer", "viewer-pass"), "")
	if resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	svc := m["orders"].(map[string]any)
	nodes := svc["nodes"].(map[string]any)
	if _, ok := svc["offset"]; !ok || len(nodes) != 2 {
		t.Fatalf("servers %v", m)
	}
	n := nodes["n1-1"].(map[string]any)
	if n["nodeName"] != "n1-1" || n["parentNode"] != "n1" || n["address"] != "http://h" || n["healthCheckPath"] != "/health" || n["registeredAt"].(float64) < 1e12 {
		t.Fatalf("node %v", n)
	}
}

func TestPrometheusAndActuator(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.do("GET", "/api/maxine/serviceops/discover?serviceName=x", "", "")
	req, _ := http.NewRequest("GET", ts.base+"/api/actuator/prometheus", nil)
	req.Header.Set("Authorization", "Bearer "+ts.token("viewer", "viewer-pass"))
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	buf := make([]byte, 64<<10)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	body := sb.String()
	for _, want := range []string{`maxine_discoveries_by_mode_total{mode="redirect"} 1`, `maxine_admin_requests_total{route="discover",code="503"} 1`, "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(body, want) {
			t.Fatalf("prometheus output lacks %q", want)
		}
	}
	if resp, m := ts.do("GET", "/api/actuator/info", "", ""); resp.StatusCode != 200 || m["build"].(map[string]any)["goVersion"] == "" {
		t.Fatalf("info %v", m)
	}
	if resp, m := ts.do("GET", "/api/actuator/metrics", "", ""); resp.StatusCode != 200 || m["mem"].(map[string]any)["rss"].(float64) <= 0 {
		t.Fatalf("metrics %v", m)
	}
	ts.settings.Update(func(s *config.Settings) { s.ActuatorEnabled = false })
	if resp, _ := ts.do("GET", "/api/actuator/info", "", ""); resp.StatusCode != 404 {
		t.Fatalf("info with actuator disabled: %d", resp.StatusCode)
	}
	if resp, _ := ts.do("GET", "/api/actuator/health", "", ""); resp.StatusCode != 200 {
		t.Fatalf("health with actuator disabled: %d", resp.StatusCode)
	}
}

func TestReadiness(t *testing.T) {
	down := false
	ts := newTestServer(t, func(o *Options) {
		o.Ready = func() (bool, string) { return !down, "draining" }
	})
	if resp, m := ts.do("GET", "/api/actuator/health", "", ""); resp.StatusCode != 200 || m["status"] != "UP" {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	down = true
	if resp, m := ts.do("GET", "/api/actuator/health", "", ""); resp.StatusCode != 503 || m["status"] != "DOWN" {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
}

func TestUnknownPathAndMethod(t *testing.T) {
	ts := newTestServer(t, nil)
	if resp, m := ts.do("GET", "/nothing", "", ""); resp.StatusCode != 404 || m["message"] == nil {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	if resp, m := ts.do("PATCH", "/api/maxine/signin", "", ""); resp.StatusCode != 405 || m["message"] == nil {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
}

func BenchmarkDiscoverRedirect(b *testing.B) {
	authority, _ := auth.New(auth.Options{DataDir: b.TempDir(), BcryptCost: 4})
	reg := registry.New(registry.Options{})
	for i := 0; i < 10; i++ {
		reg.Register(registry.Registration{ServiceName: "svc", NodeName: "n" + string(rune('a'+i)), HostName: "127.0.0.1", Port: 9000 + i, Weight: 1, TimeOut: 60})
	}
	s, _ := New(Options{Registry: reg, Settings: config.New(config.Defaults()), Auth: authority})
	h := s.Handler()
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/api/maxine/serviceops/discover?serviceName=svc&endPoint=/x")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx.Response.Reset()
		h(&ctx)
		if ctx.Response.StatusCode() != 302 {
			b.Fatal(ctx.Response.StatusCode())
		}
	}
}

// TestDiscoverRedirectAllocs: a redirect discovery, the admin API's hot
// path, allocates nothing once warm (trace headers, metrics, the trace
// record and the per-request info included).
func TestDiscoverRedirectAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceDetector {
		t.Skip("allocation counts are meaningless under -race or coverage")
	}
	authority, _ := auth.New(auth.Options{DataDir: t.TempDir(), BcryptCost: 4})
	reg := registry.New(registry.Options{})
	for i := range 10 {
		reg.Register(registry.Registration{ServiceName: "svc", NodeName: "n" + string(rune('a'+i)), HostName: "127.0.0.1", Port: 9000 + i, Weight: 1, TimeOut: 60})
	}
	s, _ := New(Options{Registry: reg, Settings: config.New(config.Defaults()), Auth: authority, Traces: observe.NewTraces(16)})
	h := s.Handler()
	var ctx fasthttp.RequestCtx
	ctx.Response.KeepBodyBuffer = true // as the server's RequestCtx
	ctx.Request.SetRequestURI("/api/maxine/serviceops/discover?serviceName=svc&endPoint=/x")
	serve := func() {
		ctx.Response.Reset()
		h(&ctx)
		if ctx.Response.StatusCode() != 302 {
			t.Fatalf("status %d", ctx.Response.StatusCode())
		}
	}
	for range 10 {
		serve()
	}
	if n := testing.AllocsPerRun(200, serve); n != 0 {
		t.Errorf("%.0f allocs per redirect discovery, want 0", n)
	}
}
