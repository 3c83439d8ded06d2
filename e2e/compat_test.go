package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestOldClientCompat drives the binary the way the old Node.js Maxine's
// SDKs, dashboards and alert rules did (SPEC section 3's compatibility
// details), each check naming what the old server answered.
func TestOldClientCompat(t *testing.T) {
	up := newUpstream(t, "old")
	in := start(t, "", nil, "--log-file", "Maxine-info.log", "--health-interval", "50ms")

	// Numbers as strings, as the old SDKs' test data sends them; the
	// register response's registeredAt is the old toLocaleString string.
	r := in.register(fmt.Sprintf(`{"serviceName":"old-svc","nodeName":"n1","hostName":"127.0.0.1","port":"%d","weight":"2","timeOut":"30","healthCheckPath":"/health"}`, up.port))
	if r.status != 200 || r.json["weight"] != 2.0 || r.json["timeOut"] != 30.0 || r.json["address"] != fmt.Sprintf("http://127.0.0.1:%d", up.port) {
		t.Fatalf("register with string numbers: %d %s", r.status, r.body)
	}
	if s, ok := r.json["registeredAt"].(string); !ok {
		t.Fatalf("registeredAt %#v is not a string", r.json["registeredAt"])
	} else if _, err := time.ParseInLocation("1/2/2006, 3:04:05 PM", s, time.Local); err != nil {
		t.Fatalf("registeredAt %q: %v", s, err)
	}
	if r := in.register(`{"serviceName":"old-svc","nodeName":"n2","hostName":"127.0.0.1","port":"80.5"}`); r.status != 400 {
		t.Fatalf("fractional port string: %d %s", r.status, r.body)
	}

	// JSON without HTML escaping, byte for byte.
	if r := in.call("POST", "/api/maxine/signin", "", `{"userName":"admin"}`); bodyString(r) != `{"message":"Please provide both of these -> userName and password."}` {
		t.Fatalf("signin without password: %s", r.body)
	}

	// JWT claims of the old server.
	viewer := in.signIn("viewer", "viewer-pass")
	_, claims := decodeToken(t, viewer)
	if claims["userName"] != "viewer" || claims["role"] != "viewer" || claims["credentialVersion"] != 0.0 || claims["iat"] == nil || claims["exp"] == nil {
		t.Fatalf("token claims %v", claims)
	}

	// The discover redirect's body.
	r = in.call("GET", "/api/maxine/serviceops/discover?serviceName=old-svc&endPoint=/x", "", "")
	want := fmt.Sprintf("Found. Redirecting to http://127.0.0.1:%d/x", up.port)
	if r.status != 302 || string(r.body) != want || r.header.Get("Location") != fmt.Sprintf("http://127.0.0.1:%d/x", up.port) {
		t.Fatalf("discover: %d %q %q", r.status, r.header.Get("Location"), r.body)
	}

	// Actuator info and performance.
	if b, _ := in.call("GET", "/api/actuator/info", "", "").json["build"].(map[string]any); b["name"] != "maxine-discovery" {
		t.Fatalf("info build %v", b)
	}
	if r := in.call("GET", "/api/actuator/performance", "", ""); r.status != 404 || bodyString(r) != `{"message":"Performance report URL is not configured."}` {
		t.Fatalf("performance: %d %s", r.status, r.body)
	}

	// Logs: the old listing and the file at its URL; recent as a string.
	if r := in.call("GET", "/api/logs/download", viewer, ""); bodyString(r) != `{"Maxine-info.log":"/logs/Maxine-info.log"}` {
		t.Fatalf("logs listing: %s", r.body)
	}
	if r := in.call("GET", "/logs/Maxine-info.log", viewer, ""); r.status != 200 || !strings.Contains(string(r.body), "admin request") {
		t.Fatalf("GET /logs/Maxine-info.log: %d", r.status)
	}
	if r := in.call("GET", "/logs/Maxine-info.log", "", ""); r.status != 401 {
		t.Fatalf("log file without a token: %d", r.status)
	}
	if r := in.call("GET", "/api/logs/recent", viewer, ""); !strings.Contains(fmt.Sprint(r.json["logs"]), "admin request") {
		t.Fatalf("recent logs: %s", r.body)
	}

	// CORS as the old cors() middleware: * everywhere, preflights 204.
	r = in.call("GET", "/api/maxine/serviceops/servers", viewer, "", "Origin", "https://dash.example")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("servers from another origin: %d %v", r.status, r.header)
	}
	r = in.call("OPTIONS", "/api/maxine/serviceops/servers", "", "", "Origin", "https://dash.example",
		"Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "authorization")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "PUT") ||
		!strings.Contains(strings.ToLower(r.header.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Fatalf("preflight: %d %v", r.status, r.header)
	}

	// Prometheus: every old family, one unlabeled sample, old meaning.
	in.call("GET", "/api/maxine/serviceops/proxy/old-svc/y", "", "")
	eventually(t, 10*time.Second, "health checks counted", func() bool {
		return value(in.scrape(viewer), "maxine_health_checks_total", nil) >= 1
	})
	fams := in.scrape(viewer)
	for _, name := range []string{
		"maxine_requests_total", "maxine_auth_failures_total", "maxine_auth_success_total",
		"maxine_registrations_total", "maxine_discoveries_total", "maxine_proxied_requests_total",
		"maxine_health_checks_total", "maxine_health_check_failures_total", "maxine_health_evictions_total",
		"maxine_alerts_total", "maxine_registered_services", "maxine_registered_parent_nodes",
		"maxine_registered_virtual_nodes", "maxine_cluster_is_leader", "maxine_cluster_has_leader",
		"maxine_unhealthy_upstreams",
	} {
		f := fams[name]
		if f == nil || len(f.Metric) != 1 || len(f.Metric[0].Label) != 0 {
			t.Errorf("old family %s: %v, want one unlabeled sample", name, f)
		}
	}
	for name, want := range map[string]float64{
		"maxine_registrations_total": 1, "maxine_discoveries_total": 2, "maxine_proxied_requests_total": 1,
		"maxine_auth_success_total": 1, "maxine_auth_failures_total": 2,
		"maxine_registered_services": 1, "maxine_registered_parent_nodes": 1, "maxine_registered_virtual_nodes": 2,
		"maxine_cluster_is_leader": 1, "maxine_cluster_has_leader": 1,
		"maxine_health_check_failures_total": 0, "maxine_unhealthy_upstreams": 0,
	} {
		if got := value(fams, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if value(fams, "maxine_requests_total", nil) < 15 {
		t.Errorf("maxine_requests_total = %v", value(fams, "maxine_requests_total", nil))
	}
}

// TestCORSConfigured: MAXINE_CORS_ORIGINS narrows CORS to listed origins,
// and empty turns it off.
func TestCORSConfigured(t *testing.T) {
	in := start(t, "", []string{"MAXINE_CORS_ORIGINS=https://dash.example"})
	if r := in.call("GET", "/api/actuator/health", "", "", "Origin", "https://dash.example"); r.header.Get("Access-Control-Allow-Origin") != "https://dash.example" {
		t.Fatalf("listed origin: %v", r.header)
	}
	if r := in.call("GET", "/api/actuator/health", "", "", "Origin", "https://evil.example"); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("unlisted origin: %v", r.header)
	}
	off := start(t, "", nil, "--cors-origins", "")
	if r := off.call("OPTIONS", "/api/actuator/health", "", "", "Origin", "https://dash.example", "Access-Control-Request-Method", "GET"); r.status == 204 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS off: %d %v", r.status, r.header)
	}
}
