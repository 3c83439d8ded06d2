package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

const invalidReg = "Invalid or missing -> hostName, nodeName, serviceName or weight (Maximum allowed size of weight is 10 (One server can maximum be 10x more powerful than others)"

func TestSignInAndPasswordChange(t *testing.T) {
	in := start(t, "", nil)
	cases := []struct {
		body   string
		status int
		msg    string
	}{
		{`{"userName":"admin"}`, 400, "Please provide both of these -> userName and password."},
		{`{}`, 400, "Please provide both of these -> userName and password."},
		{`{"userName":"admin","password":"nope"}`, 401, "Unauthorized"},
	}
	for _, c := range cases {
		r := in.call("POST", "/api/maxine/signin", "", c.body)
		if r.status != c.status || r.msg() != c.msg {
			t.Fatalf("signin %s: %d %q", c.body, r.status, r.msg())
		}
	}
	old := in.signIn("admin", "admin")
	if r := in.call("PUT", "/api/maxine/change-password", old, `{"password":"admin"}`); r.status != 400 || r.msg() != "Please provide valid existing password and new password both." {
		t.Fatalf("change-password missing field: %d %s", r.status, r.body)
	}
	r := in.call("PUT", "/api/maxine/change-password", old, `{"password":"admin","newPassword":"s3cret-new"}`)
	if r.status != 200 || r.msg() != "successfully updated password" {
		t.Fatalf("change-password: %d %s", r.status, r.body)
	}
	// Tokens issued before the change stop working.
	if r := in.call("GET", "/api/maxine/serviceops/servers", old, ""); r.status != 401 {
		t.Fatalf("old token after password change: %d", r.status)
	}
	if r := in.call("POST", "/api/maxine/signin", "", `{"userName":"admin","password":"admin"}`); r.status != 401 {
		t.Fatalf("old password still works: %d", r.status)
	}
	tok := in.signIn("admin", "s3cret-new")
	// The new password survives a restart (bcrypt hash in the data dir).
	in.stop()
	in.restart()
	if r := in.call("GET", "/api/maxine/serviceops/servers", tok, ""); r.status != 200 {
		t.Fatalf("token after restart with the same secret: %d", r.status)
	}
	in.signIn("admin", "s3cret-new")
	raw, err := os.ReadFile(filepath.Join(in.dataDir, "admin-credentials.json"))
	if err != nil || strings.Contains(string(raw), "s3cret-new") || !strings.Contains(string(raw), "$2") {
		t.Fatalf("credentials file does not hold a bcrypt hash: %s %v", raw, err)
	}
}

func TestEnvManagedAdmin(t *testing.T) {
	in := start(t, "", []string{"MAXINE_ADMIN_USERNAME=root", "MAXINE_ADMIN_PASSWORD=env-pass"})
	tok := in.signIn("root", "env-pass")
	r := in.call("PUT", "/api/maxine/change-password", tok, `{"password":"env-pass","newPassword":"x"}`)
	if r.status != 409 || r.msg() != "Admin credentials are managed by environment variables and cannot be changed at runtime." {
		t.Fatalf("env admin change-password: %d %s", r.status, r.body)
	}
	if r := in.call("POST", "/api/maxine/signin", "", `{"userName":"admin","password":"admin"}`); r.status != 401 {
		t.Fatalf("default admin still signs in: %d", r.status)
	}
}

// forge builds an HS256 JWT by hand so the matrix can hold tokens the
// server never issued: expired, signed with another secret, alg none.
func forge(t *testing.T, header, payload map[string]any, secret string) string {
	t.Helper()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	unsigned := enc(header) + "." + enc(payload)
	if secret == "" {
		return unsigned + "."
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(unsigned))
	return unsigned + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// decodeToken returns a real token's header and claims, to re-sign
// variants of it.
func decodeToken(t *testing.T, tok string) (map[string]any, map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q", tok)
	}
	var h, p map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if json.Unmarshal(hb, &h) != nil || json.Unmarshal(pb, &p) != nil {
		t.Fatal("cannot decode a real token")
	}
	return h, p
}

func TestRBACMatrix(t *testing.T) {
	in := start(t, "", nil)
	admin := in.signIn("admin", "admin")
	h, p := decodeToken(t, admin)
	if h["alg"] != "HS256" || h["kid"] == nil {
		t.Fatalf("token header %v", h)
	}
	expired := map[string]any{}
	for k, v := range p {
		expired[k] = v
	}
	expired["iat"] = float64(time.Now().Add(-2 * time.Hour).Unix())
	expired["exp"] = float64(time.Now().Add(-time.Hour).Unix())
	none := map[string]any{"alg": "none", "typ": "JWT", "kid": h["kid"]}
	tokens := []struct {
		name   string
		token  string
		role   int // 0 = no valid token
		status int // expected status when role is 0
		msg    string
	}{
		{"no token", "", 0, 401, "Unauthorized"},
		{"garbage", "not.a.jwt", 0, 401, "Unauthorized"},
		{"expired", forge(t, h, expired, jwtSecret), 0, 401, "JWT token expired"},
		{"other secret", forge(t, h, p, "some-other-secret"), 0, 401, "Unauthorized"},
		{"alg none", forge(t, none, p, ""), 0, 401, "Unauthorized"},
		{"viewer", in.signIn("viewer", "viewer-pass"), 1, 0, ""},
		{"operator", in.signIn("op", "op-pass"), 2, 0, ""},
		{"admin", admin, 3, 0, ""},
	}
	endpoints := []struct {
		method, path, body string
		need               int
	}{
		{"GET", "/api/maxine/serviceops/servers", "", 1},
		{"GET", "/api/maxine/control/config", "", 1},
		{"PUT", "/api/maxine/control/config", `{"logAsync":true}`, 2},
		{"GET", "/api/actuator/prometheus", "", 1},
		{"GET", "/api/actuator/audit", "", 1},
		{"GET", "/api/actuator/alerts", "", 1},
		{"GET", "/api/actuator/traces", "", 1},
		{"GET", "/api/actuator/cluster", "", 1},
		{"GET", "/api/actuator/upstreams", "", 1},
		{"GET", "/api/logs/recent", "", 1},
		{"GET", "/api/logs/recent/clear", "", 2},
		{"GET", "/api/logs/download", "", 1},
		{"PUT", "/api/maxine/change-password", `{"password":"x"}`, 3},
	}
	for _, ep := range endpoints {
		for _, tk := range tokens {
			r := in.call(ep.method, ep.path, tk.token, ep.body)
			switch {
			case tk.role == 0:
				if r.status != tk.status || r.msg() != tk.msg {
					t.Errorf("%s %s with %s: %d %q, want %d %q", ep.method, ep.path, tk.name, r.status, r.msg(), tk.status, tk.msg)
				}
			case tk.role < ep.need:
				if r.status != 403 || r.msg() != "Forbidden" {
					t.Errorf("%s %s as %s: %d %q, want 403 Forbidden", ep.method, ep.path, tk.name, r.status, r.msg())
				}
			default:
				if r.status == 401 || r.status == 403 || r.status >= 500 {
					t.Errorf("%s %s as %s: %d %s", ep.method, ep.path, tk.name, r.status, r.body)
				}
			}
		}
	}
	// Denials are audited.
	r := in.call("GET", "/api/actuator/audit", admin, "")
	if !strings.Contains(string(r.body), `"authz_denied"`) {
		t.Fatalf("no authz_denied audit event: %s", r.body)
	}
}

func TestRegistrationDiscoveryAndServers(t *testing.T) {
	in := start(t, "", nil)
	viewer := in.signIn("viewer", "viewer-pass")
	r := in.register(`{"serviceName":"orders","nodeName":"n1","hostName":"127.0.0.1","port":9001,"path":"/v1/","weight":3,"timeOut":30,"healthCheckPath":"/health"}`)
	if r.status != 200 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	for k, want := range map[string]any{"hostName": "127.0.0.1", "nodeName": "n1", "serviceName": "orders", "timeOut": 30.0, "weight": 3.0,
		"address": "http://127.0.0.1:9001/v1", "healthCheckPath": "/health"} {
		if r.json[k] != want {
			t.Fatalf("register response %s = %v, want %v", k, r.json[k], want)
		}
	}
	// registeredAt is the old toLocaleString() string in the server's time
	// zone (which need not be this process's); /servers has ms.
	if s, _ := r.json["registeredAt"].(string); s == "" {
		t.Fatalf("registeredAt %#v is not a string", r.json["registeredAt"])
	} else if at, err := time.Parse("1/2/2006, 3:04:05 PM", s); err != nil || time.Until(at).Abs() > 27*time.Hour {
		t.Fatalf("registeredAt %q: %v", s, err)
	}
	r = in.call("GET", "/api/maxine/serviceops/discover?serviceName=orders&endPoint=/items?id=1", "", "")
	if r.status != 302 || r.header.Get("Location") != "http://127.0.0.1:9001/v1/items?id=1" {
		t.Fatalf("discover: %d %q", r.status, r.header.Get("Location"))
	}
	if r := in.call("GET", "/api/maxine/serviceops/discover", "", ""); r.status != 400 || r.msg() != "Please provide the serviceName." {
		t.Fatalf("discover without name: %d %s", r.status, r.body)
	}
	if r := in.call("GET", "/api/maxine/serviceops/discover?serviceName=ghost", "", ""); r.status != 503 || r.msg() != "Service Unavailable" {
		t.Fatalf("discover unknown: %d %s", r.status, r.body)
	}
	got := in.servers(viewer)["orders"]
	sort.Strings(got)
	if strings.Join(got, ",") != "n1-0,n1-1,n1-2" {
		t.Fatalf("servers: %v", got)
	}
	// A weight change, and nothing else, shrinks the node's virtual set.
	r = in.register(`{"serviceName":"orders","nodeName":"n1","hostName":"127.0.0.1","port":9001,"path":"/v1/","weight":1,"timeOut":30,"healthCheckPath":"/health"}`)
	if r.status != 200 || r.json["weight"] != 1.0 || r.json["address"] != "http://127.0.0.1:9001/v1" {
		t.Fatalf("re-register with weight 1: %d %s", r.status, r.body)
	}
	if got := in.servers(viewer)["orders"]; len(got) != 1 || got[0] != "n1-0" {
		t.Fatalf("after weight change: %v", got)
	}
	// Deregistration.
	if r := in.call("DELETE", "/api/maxine/serviceops/register?serviceName=orders&nodeName=other", "", ""); r.status != 404 {
		t.Fatalf("deregister unknown: %d", r.status)
	}
	if r := in.call("DELETE", "/api/maxine/serviceops/register?serviceName=orders", "", ""); r.status != 400 {
		t.Fatalf("deregister without node: %d", r.status)
	}
	if r := in.call("DELETE", "/api/maxine/serviceops/register?serviceName=orders&nodeName=n1", "", ""); r.status != 200 {
		t.Fatalf("deregister: %d", r.status)
	}
	if got := in.servers(viewer); len(got) != 0 {
		t.Fatalf("servers after deregister: %v", got)
	}
}

func TestStrategiesThroughConfig(t *testing.T) {
	in := start(t, "", nil)
	op := in.signIn("op", "op-pass")
	for i := 0; i < 4; i++ {
		in.register(`{"serviceName":"s","nodeName":"n` + string(rune('0'+i)) + `","hostName":"127.0.0.1","port":900` + string(rune('0'+i)) + `,"timeOut":60}`)
	}
	locations := func(n int) map[string]int {
		m := map[string]int{}
		for i := 0; i < n; i++ {
			r := in.call("GET", "/api/maxine/serviceops/discover?serviceName=s", "", "")
			m[r.header.Get("Location")]++
		}
		return m
	}
	if got := locations(40); len(got) != 4 {
		t.Fatalf("RR spread over %d nodes: %v", len(got), got)
	}
	for _, st := range []string{"CH", "RH"} {
		r := in.call("PUT", "/api/maxine/control/config", op, `{"serverSelectionStrategy":"`+st+`"}`)
		if r.status != 200 || r.json["serverSelectionStrategy"] != "Success" {
			t.Fatalf("set %s: %d %s", st, r.status, r.body)
		}
		if got := locations(20); len(got) != 1 {
			t.Fatalf("%s: one client IP should map to one node, got %v", st, got)
		}
	}
	r := in.call("GET", "/api/maxine/control/config", op, "")
	want := map[string]any{"name": "RH", "code": "2", "message": "Rendezvous Hashing", "ordinal": 2.0}
	got := r.json["serverSelectionStrategy"].(map[string]any)
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("config strategy %v", got)
		}
	}
	for _, k := range []string{"logAsync", "heartBeatTimeout", "logJsonPrettify", "actuatorEnabled", "statusMonitorEnabled", "discoveryMode", "logFormat", "port"} {
		if _, ok := r.json[k]; !ok {
			t.Fatalf("config lacks %s: %s", k, r.body)
		}
	}
	r = in.call("PUT", "/api/maxine/control/config", op, `{"serverSelectionStrategy":"XX","heartBeatTimeout":"x","logFormat":"PLAIN"}`)
	if r.json["serverSelectionStrategy"] != "Wrong value Or Invalid value" || r.json["heartBeatTimeout"] != "Type Error" || r.json["logFormat"] != "Success" {
		t.Fatalf("config results %s", r.body)
	}
}

// expiryWindow is how long after a registration request was sent its node
// must still be listed: timeOut plus the 500 ms grace (SPEC 2), less 50 ms
// for the two processes' clocks. The registry stamps the registration
// after the request was sent, so its deadline is no earlier than
// sent + timeOut + 500 ms; a listing whose response arrived before
// sent + expiryWindow was made before that deadline.
func expiryWindow(timeOut time.Duration) time.Duration {
	return timeOut + 450*time.Millisecond
}

// listed reports whether service has a node in the /servers listing, and
// how long after since the listing's response arrived.
func (in *instance) listed(token, service string, since time.Time) (bool, time.Duration) {
	in.t.Helper()
	_, ok := in.servers(token)[service]
	return ok, time.Since(since)
}

func TestTTLExpiry(t *testing.T) {
	in := start(t, "", nil)
	viewer := in.signIn("viewer", "viewer-pass")
	in.register(`{"serviceName":"long","nodeName":"n","hostName":"127.0.0.1","timeOut":60}`)
	const timeOut = time.Second
	short := `{"serviceName":"short","nodeName":"n","hostName":"127.0.0.1","timeOut":1}`
	// The grace: 150 ms past its timeOut the node is still listed. The
	// look starts 1.15 s after the registration's answer (past a deadline
	// without grace and the 100 ms reaper tick) and counts only when its
	// answer arrives within expiryWindow of the registration being sent;
	// a machine too slow for that gets another try, a bounded number of
	// times.
	observed := false
	for attempt := 1; attempt <= 5 && !observed; attempt++ {
		sent := time.Now()
		if r := in.register(short); r.status != 200 {
			t.Fatalf("register: %d %s", r.status, r.body)
		}
		time.Sleep(timeOut + 150*time.Millisecond) // from the answer's arrival
		ok, after := in.listed(viewer, "short", sent)
		if after >= expiryWindow(timeOut) {
			t.Logf("attempt %d not counted: the listing ended %s after the registration was sent", attempt, after)
			continue
		}
		if !ok {
			t.Fatalf("node with timeOut 1 gone %s after its registration was sent, before timeOut + 500 ms grace", after)
		}
		observed = true
	}
	if !observed {
		t.Fatal("machine too slow: no listing within timeOut + grace of a registration in 5 attempts")
	}
	eventually(t, 10*time.Second, "node with timeOut 1 expires", func() bool {
		_, ok := in.servers(viewer)["short"]
		return !ok
	})
	if _, ok := in.servers(viewer)["long"]; !ok {
		t.Fatal("long-lived node expired too")
	}
	admin := in.signIn("admin", "admin")
	eventually(t, 5*time.Second, "expiry audited", func() bool {
		return strings.Contains(string(in.call("GET", "/api/actuator/audit", admin, "").body), `"expiry"`)
	})
}

// TestHeartbeatKeepsNodeAlive re-registers a node with timeOut 1 every
// 400 ms for 5 s (over three times timeOut + grace): it is listed at every
// look made within expiryWindow of the last heartbeat; once the heartbeats
// stop it goes.
func TestHeartbeatKeepsNodeAlive(t *testing.T) {
	in := start(t, "", nil)
	viewer := in.signIn("viewer", "viewer-pass")
	const timeOut = time.Second
	body := `{"serviceName":"beat","nodeName":"n","hostName":"127.0.0.1","port":9100,"timeOut":1}`
	heartbeat := func() time.Time {
		t.Helper()
		sent := time.Now()
		if r := in.register(body); r.status != 200 {
			t.Fatalf("heartbeat: %d %s", r.status, r.body)
		}
		return sent
	}
	first := time.Now()
	last := heartbeat()
	counted := 0
	for i := 1; i <= 40 && time.Since(first) < 5*time.Second; i++ {
		time.Sleep(400 * time.Millisecond)
		ok, after := in.listed(viewer, "beat", last)
		if after < expiryWindow(timeOut) {
			counted++
			if !ok {
				t.Fatalf("look %d: heartbeating node gone %s after its last heartbeat was sent (%s after the first)", i, after, time.Since(first))
			}
		} else {
			t.Logf("look %d not counted: it ended %s after the last heartbeat was sent", i, after)
		}
		last = heartbeat()
	}
	if counted < 6 {
		t.Fatalf("machine too slow: only %d looks within timeOut + grace of a heartbeat", counted)
	}
	eventually(t, 10*time.Second, "node goes once its heartbeats stop", func() bool {
		_, ok := in.servers(viewer)["beat"]
		return !ok
	})
}

func TestRestartRestoresState(t *testing.T) {
	for _, mode := range []string{"graceful", "kill -9"} {
		t.Run(mode, func(t *testing.T) {
			in := start(t, "", nil)
			op := in.signIn("op", "op-pass")
			in.register(`{"serviceName":"keep","nodeName":"a","hostName":"127.0.0.1","port":9001,"weight":2,"timeOut":300}`)
			in.register(`{"serviceName":"keep","nodeName":"b","hostName":"127.0.0.1","port":9002,"timeOut":300}`)
			in.register(`{"serviceName":"gone","nodeName":"x","hostName":"127.0.0.1","timeOut":1}`)
			in.call("PUT", "/api/maxine/control/config", op, `{"serverSelectionStrategy":"CH"}`)
			if mode == "graceful" {
				in.stop()
			} else {
				// kill -9 loses at most what was not yet written: wait
				// (bounded) for a periodic write to have everything,
				// rather than sleeping one interval and hoping.
				eventually(t, 10*time.Second, "the state file to hold the registrations", func() bool {
					b, err := os.ReadFile(filepath.Join(in.dataDir, "registry-state.json"))
					st := string(b)
					return err == nil && strings.Count(st, `"serviceName":"keep"`) == 2 && strings.Contains(st, `"serverSelectionStrategy":1`)
				})
				in.kill()
			}
			time.Sleep(1600 * time.Millisecond) // "gone" expires while Maxine is down
			in.restart()
			viewer := in.signIn("viewer", "viewer-pass")
			got := in.servers(viewer)
			sort.Strings(got["keep"])
			if strings.Join(got["keep"], ",") != "a-0,a-1,b-0" {
				t.Fatalf("restored keep = %v", got["keep"])
			}
			if _, ok := got["gone"]; ok {
				t.Fatal("an expired node came back")
			}
			r := in.call("GET", "/api/maxine/control/config", viewer, "")
			if r.json["serverSelectionStrategy"].(map[string]any)["name"] != "CH" {
				t.Fatalf("strategy not restored: %s", r.body)
			}
		})
	}
}

func TestCorruptStateFileIsBackedUp(t *testing.T) {
	dir := t.TempDir()
	bad := []byte(`{"format":1,"nodes":[{"serviceName":"s"`)
	if err := os.WriteFile(filepath.Join(dir, "registry-state.json"), bad, 0o600); err != nil {
		t.Fatal(err)
	}
	in := start(t, dir, nil)
	if r := in.register(`{"serviceName":"s","nodeName":"n","hostName":"h"}`); r.status != 200 {
		t.Fatalf("register after corrupt start: %d", r.status)
	}
	backups, _ := filepath.Glob(filepath.Join(dir, "registry-state.json.corrupt-*"))
	if len(backups) != 1 {
		t.Fatalf("backups %v", backups)
	}
	if b, _ := os.ReadFile(backups[0]); string(b) != string(bad) {
		t.Fatal("backup does not hold the corrupt bytes")
	}
	if !strings.Contains(in.out.String(), "corrupt") {
		t.Fatalf("corruption not reported:\n%s", in.out.String())
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	in := start(t, "", nil)
	viewer := in.signIn("viewer", "viewer-pass")
	in.register(`{"serviceName":"s","nodeName":"n","hostName":"127.0.0.1","port":9000,"weight":2}`)
	before := in.call("GET", "/api/maxine/serviceops/servers", viewer, "")
	cases := []struct {
		name, body, ctype string
		status            int
	}{
		{"malformed json", `{"serviceName":"s",`, "application/json", 400},
		{"wrong type", `{"serviceName":["s"],"nodeName":"n","hostName":"h"}`, "application/json", 400},
		// "3" would be a number (the old server took decimal strings);
		// words and fractions in strings are not.
		{"weight as a word", `{"serviceName":"s","nodeName":"n","hostName":"h","weight":"three"}`, "application/json", 400},
		{"weight as a fraction string", `{"serviceName":"s","nodeName":"n","hostName":"h","weight":"1.5"}`, "application/json", 400},
		{"weight string 11", `{"serviceName":"s","nodeName":"n","hostName":"127.0.0.1","port":9000,"weight":"11"}`, "application/json", 400},
		{"weight 0", `{"serviceName":"s","nodeName":"n","hostName":"127.0.0.1","port":9000,"weight":0}`, "application/json", 400},
		{"weight 11", `{"serviceName":"s","nodeName":"n","hostName":"127.0.0.1","port":9000,"weight":11}`, "application/json", 400},
		{"port 70000", `{"serviceName":"s","nodeName":"n","hostName":"127.0.0.1","port":70000}`, "application/json", 400},
		{"empty host", `{"serviceName":"s","nodeName":"n","hostName":""}`, "application/json", 400},
		{"non-JSON content type", `{"serviceName":"s","nodeName":"n","hostName":"h"}`, "text/plain", 400},
	}
	for _, c := range cases {
		r := call(t, "POST", in.admin+"/api/maxine/serviceops/register", "", c.body, "Content-Type", c.ctype)
		if r.status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.status, r.body, c.status)
		}
		if r.json["message"] == nil {
			t.Errorf("%s: error body is not {\"message\"}: %s", c.name, r.body)
		}
		if strings.HasPrefix(c.name, "weight") || c.name == "port 70000" || c.name == "malformed json" {
			if r.msg() != invalidReg {
				t.Errorf("%s: message %q", c.name, r.msg())
			}
		}
	}
	// A 2 MB body is refused from its Content-Length, before it is read:
	// write the head on a raw connection and read the answer.
	if status := rawStatus(t, in.admin, "POST /api/maxine/serviceops/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2097152\r\n\r\n{\"serviceName\":"); status != 413 {
		t.Errorf("2 MB body: %d, want 413", status)
	}
	after := in.call("GET", "/api/maxine/serviceops/servers", viewer, "")
	var b, a map[string]any
	json.Unmarshal(before.body, &b)
	json.Unmarshal(after.body, &a)
	// Compare the registry's fields; breaker and health state belong to the
	// gateway, which may not have seen the node at the first listing.
	registryView := func(m map[string]any) string {
		nodes := m["s"].(map[string]any)["nodes"].(map[string]any)
		for _, n := range nodes {
			delete(n.(map[string]any), "breaker")
			delete(n.(map[string]any), "healthy")
		}
		out, _ := json.Marshal(nodes)
		return string(out)
	}
	bs, as := registryView(b), registryView(a)
	if bs != as {
		t.Fatalf("state changed by bad input:\n%s\n%s", bs, as)
	}
	// Still alive and well.
	if r := in.call("GET", "/api/actuator/health", "", ""); r.status != 200 {
		t.Fatal(r.status)
	}
}

func TestActuatorAndTraceHeaders(t *testing.T) {
	in := start(t, "", nil)
	viewer := in.signIn("viewer", "viewer-pass")
	paths := []struct {
		path, token string
		status      int
		key         string
	}{
		{"/api/actuator/health", "", 200, "status"},
		{"/api/actuator/info", "", 200, "build"},
		{"/api/actuator/metrics", "", 200, "mem"},
		{"/api/actuator/audit", viewer, 200, "events"},
		{"/api/actuator/alerts", viewer, 200, "alerts"},
		{"/api/actuator/traces", viewer, 200, "traces"},
		{"/api/actuator/cluster", viewer, 200, "instanceId"},
		{"/api/actuator/upstreams", viewer, 200, "started"},
		{"/api/logs/recent", viewer, 200, "logs"},
		{"/api/nothing/here", "", 404, "message"},
	}
	for _, p := range paths {
		r := in.call("GET", p.path, p.token, "")
		if r.status != p.status || r.json[p.key] == nil {
			t.Errorf("%s: %d %s", p.path, r.status, r.body)
		}
		tp := r.header.Get("traceparent")
		if len(tp) != 55 || !strings.HasPrefix(tp, "00-") || r.header.Get("x-trace-id") == "" {
			t.Errorf("%s: trace headers %q %q", p.path, tp, r.header.Get("x-trace-id"))
		}
	}
	in1 := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	r := in.call("GET", "/api/actuator/health", "", "", "traceparent", in1)
	if r.header.Get("traceparent") != in1 || r.header.Get("x-trace-id") != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("incoming traceparent not kept: %v", r.header)
	}
	// No log file configured: the old shape, an empty map.
	if r := in.call("GET", "/api/logs/download", viewer, ""); r.status != 200 || bodyString(r) != "{}" {
		t.Errorf("/api/logs/download: %d %s", r.status, r.body)
	}
	build := in.call("GET", "/api/actuator/info", "", "").json["build"].(map[string]any)
	if build["name"] != "maxine-discovery" || build["server"] != "maxine" || build["version"] == "" {
		t.Fatalf("info %v", build)
	}
	for _, bad := range []string{"..", "../registry-state.json", "/etc/passwd", "a/b"} {
		if r := in.call("GET", "/api/logs/download?file="+bad, viewer, ""); r.status != 400 && r.status != 404 {
			t.Errorf("download %q: %d", bad, r.status)
		}
	}
}

func TestSignInRateLimit(t *testing.T) {
	in := start(t, "", []string{"MAXINE_SIGNIN_RATE=1"})
	limited := false
	for i := 0; i < 15 && !limited; i++ {
		r := in.call("POST", "/api/maxine/signin", "", `{"userName":"admin","password":"wrong"}`)
		limited = r.status == 429
	}
	if !limited {
		t.Fatal("15 failed sign-ins in a row were never rate limited")
	}
}

func TestRegistrationTokenRequired(t *testing.T) {
	in := start(t, "", []string{"MAXINE_REGISTRATION_TOKEN=reg-token"})
	body := `{"serviceName":"s","nodeName":"n","hostName":"h"}`
	if r := in.register(body); r.status != 401 {
		t.Fatalf("without token: %d", r.status)
	}
	if r := in.call("POST", "/api/maxine/serviceops/register", "reg-token", body); r.status != 200 {
		t.Fatalf("with token: %d", r.status)
	}
}

func TestCommandLine(t *testing.T) {
	out, err := exec.Command(binary, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "maxine ") {
		t.Fatalf("--version: %v %s", err, out)
	}
	out, err = exec.Command(binary, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--gateway-addr") || !strings.Contains(string(out), "MAXINE_REGISTRY_STATE_MODE") {
		t.Fatalf("--help: %v %s", err, out)
	}
	bad := []struct{ env, want string }{
		{"MAXINE_HEARTBEAT_TIMEOUT=abc", "MAXINE_HEARTBEAT_TIMEOUT"},
		{"MAXINE_REGISTRY_STATE_MODE=floppy", "MAXINE_REGISTRY_STATE_MODE"},
		{"MAXINE_LOG_FORMAT=xml", "MAXINE_LOG_FORMAT"},
		{"MAXINE_UPSTREAM_ALLOW_CIDRS=10.0.0.0/99", "MAXINE_UPSTREAM_ALLOW_CIDRS"},
	}
	for _, b := range bad {
		cmd := exec.Command(binary, "--data-dir", t.TempDir(), "--admin-addr", freePort(t), "--gateway-addr", freePort(t))
		cmd.Env = append(baseEnv(), b.env)
		out, err := cmd.CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err == nil || !strings.Contains(lines[len(lines)-1], b.want) {
			t.Errorf("%s: err %v, output %s", b.env, err, out)
		}
	}
}
