package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the tests run the real command as a child process: the
// test binary re-executed with asMainEnv=1 is maxine.
func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

const asMainEnv = "MAXINE_TEST_AS_MAIN"

// proc is one maxine child process.
type proc struct {
	t       *testing.T
	cmd     *exec.Cmd
	admin   string // 127.0.0.1:port
	gateway string
	out     *lockedBuffer
	exited  chan struct{}
	code    int
	dataDir string
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// spawn starts maxine on free loopback ports with dataDir and env; it does
// not wait for it.
func spawn(t *testing.T, dataDir string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, admin: freeAddr(t), gateway: freeAddr(t), out: &lockedBuffer{}, exited: make(chan struct{}), dataDir: dataDir}
	all := append([]string{"--admin-addr", p.admin, "--gateway-addr", p.gateway, "--data-dir", dataDir, "--persist-interval", "50ms"}, args...)
	p.cmd = exec.Command(os.Args[0], all...)
	p.cmd.Env = append([]string{asMainEnv + "=1", "MAXINE_JWT_SECRET=test-secret-0123456789", "PATH=" + os.Getenv("PATH")}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			p.code = ee.ExitCode()
		}
		close(p.exited)
	}()
	t.Cleanup(p.kill)
	return p
}

// startProc spawns maxine and waits until its health endpoint answers.
func startProc(t *testing.T, dataDir string, env []string, args ...string) *proc {
	t.Helper()
	p := spawn(t, dataDir, env, args...)
	for i := 0; i < 1000; i++ {
		select {
		case <-p.exited:
			t.Fatalf("maxine exited at start (%d):\n%s", p.code, p.out.String())
		default:
		}
		if resp, err := http.Get("http://" + p.admin + "/api/actuator/health"); err == nil {
			resp.Body.Close()
			return p
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("maxine did not answer:\n%s", p.out.String())
	return nil
}

// wait waits (bounded) for the process to exit by itself.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.code
	case <-time.After(30 * time.Second):
		p.t.Fatalf("maxine did not exit:\n%s", p.out.String())
		return -1
	}
}

func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait()
}

func (p *proc) do(method, path, body string) (int, []byte) {
	p.t.Helper()
	return p.doAt(p.admin, method, path, body)
}

func (p *proc) doAt(addr, method, path, body string) (int, []byte) {
	p.t.Helper()
	req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// lines returns the process's output lines that contain all of want.
func (p *proc) lines(want ...string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(p.out.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		for _, w := range want {
			if !strings.Contains(sc.Text(), w) {
				continue next
			}
		}
		out = append(out, sc.Text())
	}
	return out
}

// eventually polls cond every 20 ms, at most 500 times.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("never: %s", what)
}

// runInProcess runs the command for a case that must fail at start.
func runInProcess(args []string, env map[string]string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, func(k string) string { return env[k] }, &out, &errb)
	return code, out.String(), errb.String()
}

// oneJSONLine checks that s is exactly one JSON log line at level fatal
// whose message contains want.
func oneJSONLine(t *testing.T, s, want string) {
	t.Helper()
	if strings.Count(strings.TrimSpace(s), "\n") != 0 {
		t.Fatalf("want one line, got:\n%s", s)
	}
	var line struct{ Level, Message string }
	if err := json.Unmarshal([]byte(s), &line); err != nil || line.Level != "fatal" || !strings.Contains(line.Message, want) {
		t.Fatalf("want one JSON fatal line naming %q, got %q (%v)", want, s, err)
	}
}

// --help lists every setting without noise, and says what each secret is.
func TestHelpText(t *testing.T) {
	code, out, _ := runInProcess([]string{"--help"}, nil)
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, noise := range []string{`(default "")`, `(default "false")`, `(default false)`} {
		if strings.Contains(out, noise) {
			t.Errorf("--help has %s noise:\n%s", noise, out)
		}
	}
	i := strings.Index(out, "MAXINE_VIEWER_PASSWORD\n")
	if i < 0 || !strings.HasPrefix(strings.TrimSpace(out[i+len("MAXINE_VIEWER_PASSWORD\n"):]), "viewer") {
		t.Errorf("MAXINE_VIEWER_PASSWORD help is not about the viewer:\n%s", out[max(i, 0):])
	}
	for _, want := range []string{`(default ":8000")`, "(default true)", "--max-services", "--log-max-bytes", "--audit-max-bytes"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %s", want)
		}
	}
}

// A bad flag value, an unknown flag, a bad environment value and a bad
// setting found later at start all stop with exit code 2 and one line in
// the configured log format, not a usage dump.
func TestBadConfigurationOneLineExit2(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad flag value", []string{"--heartbeat-timeout", "x"}, nil, "--heartbeat-timeout"},
		{"unknown flag", []string{"--no-such-flag"}, nil, "no-such-flag"},
		{"bad env value", nil, map[string]string{"MAXINE_PERSIST_INTERVAL": "soon"}, "MAXINE_PERSIST_INTERVAL"},
		{"bad allow-list", nil, map[string]string{"MAXINE_UPSTREAM_ALLOW_CIDRS": "10.0.0.0/99"}, "MAXINE_UPSTREAM_ALLOW_CIDRS"},
		{"bad log level", []string{"--log-level", "loud"}, nil, "MAXINE_LOG_LEVEL"},
		{"bad admin address", []string{"--admin-addr", "nowhere"}, nil, "MAXINE_ADMIN_ADDR"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"--data-dir", dir, "--admin-addr", "127.0.0.1:0", "--gateway-addr", "127.0.0.1:0"}, c.args...)
			code, out, errb := runInProcess(args, c.env)
			if code != 2 || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errb)
			}
			oneJSONLine(t, errb, c.want)
		})
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("a bad configuration created the data dir")
	}
	// Plain format when configured, even for an error met while parsing.
	code, _, errb := runInProcess([]string{"--log-format", "plain", "--max-retries", "many"}, nil)
	if code != 2 || strings.HasPrefix(errb, "{") || !strings.Contains(errb, "--max-retries") || strings.Count(strings.TrimSpace(errb), "\n") != 0 {
		t.Fatalf("plain: exit %d, %q", code, errb)
	}
}

// A taken port fails the start before anything is created: no data dir,
// no log file, no credentials file.
func TestTakenPortFailsFirst(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, flagName := range []string{"--admin-addr", "--gateway-addr"} {
		dir := filepath.Join(t.TempDir(), "data")
		args := []string{"--data-dir", dir, "--log-file", "maxine.log", "--admin-addr", "127.0.0.1:0", "--gateway-addr", "127.0.0.1:0",
			flagName, taken.Addr().String()}
		code, _, errb := runInProcess(args, nil)
		if code != 1 {
			t.Fatalf("%s taken: exit %d, %q", flagName, code, errb)
		}
		oneJSONLine(t, errb, strings.ToUpper("MAXINE_"+strings.ReplaceAll(strings.TrimPrefix(flagName, "--"), "-", "_")))
		if _, err := os.Stat(dir); err == nil {
			t.Fatalf("%s taken: the data dir was created", flagName)
		}
	}
}

// A second instance on the data dir of a running one refuses to start with
// one line naming the holder, and leaves the first one's files alone.
func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	first := startProc(t, dir, nil)
	if code, _ := first.do("POST", "/api/maxine/serviceops/register", `{"serviceName":"s","nodeName":"n","hostName":"h","timeOut":60}`); code != 200 {
		t.Fatalf("register: %d", code)
	}
	second := spawn(t, dir, nil)
	if code := second.wait(); code != 1 {
		t.Fatalf("second instance: exit %d:\n%s", code, second.out.String())
	}
	out := strings.TrimSpace(second.out.String())
	if strings.Count(out, "\n") != 0 || !strings.Contains(out, "pid "+strconv.Itoa(first.cmd.Process.Pid)) || !strings.Contains(out, first.admin) {
		t.Fatalf("second instance output does not name the holder in one line:\n%s", out)
	}
	if code, body := first.do("GET", "/api/maxine/serviceops/discover?serviceName=s", ""); code != 302 {
		t.Fatalf("first instance after the refused second: %d %s", code, body)
	}
	// The lock dies with its holder, even killed.
	first.kill()
	startProc(t, dir, nil).stop()
}

// With the state file unwritable, registrations still work from memory,
// health keeps 200 (local mode: the data plane is not pulled) but shows the
// store component DOWN, and the loss window is logged.
func TestUnwritableStateFile(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, dir, nil)
	// A non-empty directory where the state file goes: every write fails.
	state := filepath.Join(dir, "registry-state.json")
	os.Remove(state)
	if err := os.MkdirAll(filepath.Join(state, "blocker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if code, _ := p.do("POST", "/api/maxine/serviceops/register", `{"serviceName":"s","nodeName":"n","hostName":"h","timeOut":60}`); code != 200 {
		t.Fatalf("register with the store down: %d", code)
	}
	var health struct {
		Status     string
		Components map[string]struct {
			Status  string
			Details map[string]any
		}
	}
	eventually(t, "health shows the store DOWN", func() bool {
		code, body := p.do("GET", "/api/actuator/health", "")
		health.Components = nil
		json.Unmarshal(body, &health)
		return code == 200 && health.Status == "UP" && health.Components["store"].Status == "DOWN"
	})
	if d := health.Components["store"].Details; d["unsavedSince"] == nil || d["error"] == nil {
		t.Fatalf("store details: %+v", d)
	}
	if len(p.lines("state changes are held in memory only", "unsavedSince")) == 0 {
		t.Fatalf("no loss window logged:\n%s", p.out.String())
	}
	if code, _ := p.do("GET", "/api/maxine/serviceops/discover?serviceName=s", ""); code != 302 {
		t.Fatalf("discover from memory: %d", code)
	}
	// Writable again: the store comes back UP and the window is closed.
	os.RemoveAll(state)
	eventually(t, "health shows the store UP again", func() bool {
		_, body := p.do("GET", "/api/actuator/health", "")
		health.Components = nil
		json.Unmarshal(body, &health)
		return health.Components["store"].Status == "UP"
	})
	if len(p.lines("state file writes recovered", "lossWindow")) == 0 {
		t.Fatalf("recovery does not give the loss window:\n%s", p.out.String())
	}
}

// Open registration stays the default, but start-up says so loudly unless
// a registration token or an allow-list is set.
func TestOpenRegistrationWarning(t *testing.T) {
	open := startProc(t, t.TempDir(), nil)
	eventually(t, "warning logged", func() bool { return len(open.lines(`"level":"warn"`, "registration is open")) == 1 })
	closed := startProc(t, t.TempDir(), []string{"MAXINE_REGISTRATION_TOKEN=t0ken"})
	allow := startProc(t, t.TempDir(), []string{"MAXINE_UPSTREAM_ALLOW_CIDRS=127.0.0.0/8"})
	for _, p := range []*proc{closed, allow} {
		p.stop()
		if len(p.lines("registration is open")) != 0 {
			t.Fatalf("warned although registration is restricted:\n%s", p.out.String())
		}
	}
}

// A heartbeat that changes nothing is logged at debug; the registration
// that created the node at info.
func TestHeartbeatLoggedAtDebug(t *testing.T) {
	p := startProc(t, t.TempDir(), nil)
	body := `{"serviceName":"s","nodeName":"n","hostName":"h","timeOut":60}`
	for i := 0; i < 3; i++ {
		if code, _ := p.do("POST", "/api/maxine/serviceops/register", body); code != 200 {
			t.Fatalf("register: %d", code)
		}
	}
	p.stop()
	if n := len(p.lines(`"message":"admin request"`, `"route":"register"`)); n != 1 {
		t.Fatalf("%d info lines for 1 registration and 2 heartbeats:\n%s", n, p.out.String())
	}
}

// Dropped audit events are counted in a metric.
func TestAuditDroppedMetric(t *testing.T) {
	p := startProc(t, t.TempDir(), nil, "--public-metrics")
	code, body := p.do("GET", "/metrics", "")
	if code != 200 || !strings.Contains(string(body), "\nmaxine_audit_dropped_total 0\n") {
		t.Fatalf("/metrics: %d, no maxine_audit_dropped_total:\n%s", code, body)
	}
}

// The log file rotates by size and keeps a bounded number of old files.
func TestLogFileRotates(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, dir, nil, "--log-file", "maxine.log", "--log-max-bytes", "4096", "--log-keep", "2",
		"--audit-max-bytes", "4096", "--audit-keep", "2")
	for i := 0; i < 150; i++ { // about 35 KB of log lines and 30 KB of audit events
		body := `{"serviceName":"s","nodeName":"n` + strconv.Itoa(i) + `","hostName":"h","timeOut":60}`
		if code, _ := p.do("POST", "/api/maxine/serviceops/register", body); code != 200 {
			t.Fatalf("register: %d", code)
		}
	}
	p.stop()
	for _, base := range []string{filepath.Join(dir, "logs", "maxine.log"), filepath.Join(dir, "audit.jsonl")} {
		for _, name := range []string{base, base + ".1", base + ".2"} {
			st, err := os.Stat(name)
			if err != nil || st.Size() > 4096 {
				t.Fatalf("%s: %v (size %v)", name, err, st)
			}
		}
		if _, err := os.Stat(base + ".3"); err == nil {
			t.Fatalf("%s.3 kept beyond --*-keep 2", base)
		}
	}
}

// Discover and the gateway answer the same case the same way: a service
// whose every breaker is open is 503 on both, with the same body naming
// the service and the reason; discover does not redirect to a node the
// gateway would not send to.
func TestDiscoverAndGatewayAgree(t *testing.T) {
	p := startProc(t, t.TempDir(), nil, "--breaker-failures", "1", "--breaker-open", "10m", "--max-retries", "0")
	dead := freeAddr(t) // nothing listens there
	_, port, _ := net.SplitHostPort(dead)
	if code, _ := p.do("POST", "/api/maxine/serviceops/register", `{"serviceName":"pay","nodeName":"n","hostName":"127.0.0.1","port":`+port+`,"timeOut":600}`); code != 200 {
		t.Fatalf("register: %d", code)
	}
	p.doAt(p.gateway, "GET", "/pay/x", "") // connect refused: the breaker opens
	gwCode, gwBody := p.doAt(p.gateway, "GET", "/pay/x", "")
	discCode, discBody := p.do("GET", "/api/maxine/serviceops/discover?serviceName=pay&endPoint=/x", "")
	want := `{"message":"Service Unavailable","reason":"all breakers open","service":"pay"}`
	if gwCode != 503 || string(gwBody) != want || discCode != 503 || string(discBody) != want {
		t.Fatalf("gateway %d %s, discover %d %s; want 503 %s on both", gwCode, gwBody, discCode, discBody, want)
	}
	// An unknown service: 404 on the gateway (SPEC 4), 503 on discover (the
	// old contract), both naming it.
	if code, body := p.doAt(p.gateway, "GET", "/ghost/x", ""); code != 404 || !strings.Contains(string(body), `"reason":"unknown service","service":"ghost"`) {
		t.Fatalf("gateway, unknown: %d %s", code, body)
	}
	if code, body := p.do("GET", "/api/maxine/serviceops/discover?serviceName=ghost", ""); code != 503 || !strings.Contains(string(body), `"reason":"unknown service","service":"ghost"`) {
		t.Fatalf("discover, unknown: %d %s", code, body)
	}
}
