// Package redistest starts real redis-server and redis-sentinel processes
// on free loopback ports for tests: a standalone server, a primary with a
// replica, and sentinels watching them. Every process belongs to the test
// that started it and is killed by t.Cleanup; nothing outlives the test.
//
// The binaries come from Debian's redis-server and redis-sentinel packages,
// which `make deps` installs. A test that needs them and cannot find them
// fails (it does not skip): a green run must mean Redis mode was tested.
package redistest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/maxine-io/maxine/internal/resp"
)

// Server is one redis-server (or redis-sentinel) process.
type Server struct {
	t    testing.TB
	Port int
	Dir  string
	cmd  *exec.Cmd
	args []string
	bin  string
	log  string
}

// Addr is the server's "127.0.0.1:port".
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// URL is the server's redis:// URL for db.
func (s *Server) URL(db int) string { return fmt.Sprintf("redis://%s/%d", s.Addr(), db) }

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func lookBin(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/bin", "/usr/sbin", "/usr/local/bin"} {
			if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
				return filepath.Join(dir, name)
			}
		}
		t.Fatalf("%s not found: run `make deps` (installs Debian's redis-server and redis-sentinel)", name)
	}
	return p
}

// Start runs a standalone redis-server with no persistence on a free port;
// extra are more config directives ("--appendonly", "yes", ...).
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	s := &Server{t: t, Dir: t.TempDir(), bin: lookBin(t, "redis-server")}
	s.Port = FreePort(t)
	s.args = append([]string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.Dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "no",
		"--daemonize", "no", "--loglevel", "warning",
	}, extra...)
	s.start()
	t.Cleanup(s.Kill)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	s.log = filepath.Join(s.Dir, "server.log")
	out, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	defer out.Close()
	s.cmd = exec.Command(s.bin, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = out, out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", s.bin, err)
	}
	s.waitReady()
}

// waitReady waits (at most 20 s) until the server answers PING.
func (s *Server) waitReady() {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := s.Do("PING"); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(s.log)
	s.t.Fatalf("redis on %s did not answer PING in 20 s; log:\n%s", s.Addr(), b)
}

// Kill stops the process at once (SIGKILL) and waits for it.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same port with the same
// settings (and, without persistence, empty).
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
}

// Do sends one command over a fresh connection and returns the reply as
// text (simple strings, integers and bulk strings; arrays joined by "\n").
// It is for test setup and assertions, not for load.
func (s *Server) Do(args ...string) (string, error) {
	return Do(s.Addr(), args...)
}

// Do sends one command to addr; see Server.Do.
func Do(addr string, args ...string) (string, error) {
	return resp.Do(addr, 5*time.Second, args...)
}

// Replica starts a redis-server replicating primary.
func Replica(t testing.TB, primary *Server) *Server {
	t.Helper()
	return Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(primary.Port),
		"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
}

// Sentinel starts a redis-sentinel monitoring primary as master (quorum
// quorum), with a 1 s down-after and a quick failover.
func Sentinel(t testing.TB, master string, primary *Server, quorum int) *Server {
	t.Helper()
	s := &Server{t: t, Dir: t.TempDir(), bin: lookBin(t, "redis-sentinel")}
	s.Port = FreePort(t)
	conf := filepath.Join(s.Dir, "sentinel.conf")
	body := fmt.Sprintf(`port %d
bind 127.0.0.1
protected-mode no
daemonize no
dir %s
sentinel monitor %s 127.0.0.1 %d %d
sentinel down-after-milliseconds %s 1000
sentinel failover-timeout %s 5000
sentinel parallel-syncs %s 1
`, s.Port, s.Dir, master, primary.Port, quorum, master, master, master)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	s.args = []string{conf}
	s.start()
	t.Cleanup(s.Kill)
	return s
}
