// Package e2e tests the real maxine binary over HTTP: it is built once in
// TestMain, started on free loopback ports with a temp data dir, and driven
// like a user would drive it.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "maxine-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "maxine")
	build := exec.Command("go", "build", "-o", binary, "../cmd/maxine")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "cannot build maxine:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const jwtSecret = "e2e-secret-0123456789abcdef"

// instance is one running maxine process.
type instance struct {
	t        *testing.T
	cmd      *exec.Cmd
	admin    string // http://127.0.0.1:port
	gateway  string
	dataDir  string
	env      []string
	args     []string
	out      *syncBuffer
	exited   chan struct{}
	exitCode int
}

type syncBuffer struct {
	mu chan struct{}
	b  bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }
func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// baseEnv is the environment every instance gets: a known JWT secret and
// operator/viewer accounts so the RBAC matrix can be tested.
func baseEnv() []string {
	return []string{
		"MAXINE_JWT_SECRET=" + jwtSecret,
		"MAXINE_OPERATOR_USERNAME=op", "MAXINE_OPERATOR_PASSWORD=op-pass",
		"MAXINE_VIEWER_USERNAME=viewer", "MAXINE_VIEWER_PASSWORD=viewer-pass",
		"MAXINE_LOG_LEVEL=info",
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
	}
}

// start runs maxine with a fresh data dir (or dataDir when given) and waits
// until it answers.
func start(t *testing.T, dataDir string, env []string, args ...string) *instance {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	in := &instance{t: t, dataDir: dataDir, env: append(baseEnv(), env...), args: args}
	in.launch()
	t.Cleanup(func() { in.kill() })
	return in
}

func (in *instance) launch() {
	t := in.t
	t.Helper()
	adminAddr, gwAddr := freePort(t), freePort(t)
	in.admin, in.gateway = "http://"+adminAddr, "http://"+gwAddr
	args := append([]string{"--admin-addr", adminAddr, "--gateway-addr", gwAddr, "--data-dir", in.dataDir,
		"--persist-interval", "100ms"}, in.args...)
	in.cmd = exec.Command(binary, args...)
	in.cmd.Env = in.env
	in.out = newSyncBuffer()
	in.cmd.Stdout, in.cmd.Stderr = in.out, in.out
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.exited = make(chan struct{})
	go func() {
		err := in.cmd.Wait()
		in.exitCode = 0
		if ee, ok := err.(*exec.ExitError); ok {
			in.exitCode = ee.ExitCode()
		}
		close(in.exited)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-in.exited:
			t.Fatalf("maxine exited at start (code %d):\n%s", in.exitCode, in.out.String())
		default:
		}
		resp, err := http.Get(in.admin + "/api/actuator/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("maxine did not become ready:\n%s", in.out.String())
}

// stop sends SIGTERM and waits for a clean exit.
func (in *instance) stop() {
	in.t.Helper()
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.exited:
	case <-time.After(30 * time.Second):
		in.cmd.Process.Kill()
		in.t.Fatalf("maxine did not stop on SIGTERM:\n%s", in.out.String())
	}
	if in.exitCode != 0 {
		in.t.Fatalf("maxine exited %d after SIGTERM:\n%s", in.exitCode, in.out.String())
	}
}

// kill sends SIGKILL (the crash case) and waits.
func (in *instance) kill() {
	if in.cmd == nil || in.cmd.Process == nil {
		return
	}
	in.cmd.Process.Kill()
	<-in.exited
}

// restart starts a new process on the same data dir.
func (in *instance) restart() { in.launch() }

var client = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type reply struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (r reply) msg() string {
	m, _ := r.json["message"].(string)
	return m
}

// call makes one request. hdr are name/value pairs; "Content-Type" defaults
// to application/json when a body is given.
func call(t *testing.T, method, url, token, body string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1] // net/http ignores a Host entry in Header
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &r.json)
	return r
}

func (in *instance) call(method, path, token, body string, hdr ...string) reply {
	in.t.Helper()
	return call(in.t, method, in.admin+path, token, body, hdr...)
}

func (in *instance) signIn(user, pass string) string {
	in.t.Helper()
	r := in.call("POST", "/api/maxine/signin", "", fmt.Sprintf(`{"userName":%q,"password":%q}`, user, pass))
	if r.status != 200 {
		in.t.Fatalf("signin %s: %d %s", user, r.status, r.body)
	}
	return r.json["accessToken"].(string)
}

func (in *instance) register(body string) reply {
	in.t.Helper()
	return in.call("POST", "/api/maxine/serviceops/register", "", body)
}

// servers returns the /servers listing as service -> virtual node names.
func (in *instance) servers(token string) map[string][]string {
	in.t.Helper()
	r := in.call("GET", "/api/maxine/serviceops/servers", token, "")
	if r.status != 200 {
		in.t.Fatalf("servers: %d %s", r.status, r.body)
	}
	out := map[string][]string{}
	for svc, v := range r.json {
		nodes := v.(map[string]any)["nodes"].(map[string]any)
		for name := range nodes {
			out[svc] = append(out[svc], name)
		}
	}
	return out
}

// eventually polls cond every 20 ms until it holds or the bound passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("not within %s: %s", within, what)
}

// rawStatus writes raw bytes on a new connection to base (http://host:port)
// and returns the status code of the answer (0 when there is none).
func rawStatus(t *testing.T, base, raw string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
