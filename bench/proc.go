package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// freePort returns a loopback port that was free a moment ago: the kernel
// picks it for a listener that is closed at once. Another process could
// take it in between; the target's start-up then fails with a clear error.
func freePort() (int, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("cannot find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// loopback returns "127.0.0.1:port".
func loopback(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// Process is a child process started by the bench (maxine, nginx or
// HAProxy). It runs in its own process group so that Stop reaches its
// workers too, and its output goes to a log file in the run directory.
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// StartProcess runs bin with args, output appended to logPath, in the
// bench's environment with env ("KEY=value") added on top.
func StartProcess(name, logPath, bin string, env []string, args ...string) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open %s log %q: %w", name, logPath, err)
	}
	cmd := exec.Command(bin, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...) // later entries win
	}
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("cannot start %s (%s): %w", name, bin, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, exited: make(chan struct{})}
	children.add(p)
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.exited)
		children.remove(p)
	}()
	return p, nil
}

// Pid returns the process id of the child.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the child has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the child's process group, then SIGKILL if it has
// not exited after 5 s. It is safe to call more than once.
func (p *Process) Stop() {
	if p == nil || p.Exited() {
		return
	}
	pgid := p.cmd.Process.Pid // Setpgid: the group id is the child's pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.exited // SIGKILL to the group also reaches a master's workers
	}
}

// LogTail returns the last lines of the child's log, for error messages.
func (p *Process) LogTail() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, "\n")
}

// WaitHTTP polls url until it answers with status want, the child exits,
// or timeout passes.
func (p *Process) WaitHTTP(ctx context.Context, url string, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if p.Exited() {
			return fmt.Errorf("%s exited during start-up (%v); log %s:\n%s", p.Name, p.waitErr, p.LogPath, p.LogTail())
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		code, _, err := probe(url)
		if err == nil && code == want {
			return nil
		}
		if err == nil {
			last = fmt.Errorf("status %d", code)
		} else {
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready at %s after %s (last: %v); log %s:\n%s", p.Name, url, timeout, last, p.LogPath, p.LogTail())
}

// probe sends one GET to url and returns the status code and body. Unlike
// fasthttp.Get it never follows redirects: a 302 is an answer here.
func probe(url string) (int, []byte, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.SetConnectionClose()
	if err := fasthttp.DoTimeout(req, resp, 2*time.Second); err != nil {
		return 0, nil, err
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), nil
}

// findBinary returns the path of name on PATH or in /usr/sbin, or "".
func findBinary(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// versionLine runs bin with arg and returns the first line of its output.
func versionLine(bin string, arg string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, arg).CombinedOutput()
	if err != nil && len(out) == 0 {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// errSkip marks a measurement that cannot be taken (no binary).
var errSkip = errors.New("skipped")

// childSet tracks the running children so that the run's watchdog can kill
// them if the harness itself hangs. Normal shutdown stops each child from
// the scenario that started it.
type childSet struct {
	mu    sync.Mutex
	procs map[*Process]struct{}
}

var children = &childSet{procs: map[*Process]struct{}{}}

func (s *childSet) add(p *Process) {
	s.mu.Lock()
	s.procs[p] = struct{}{}
	s.mu.Unlock()
}

func (s *childSet) remove(p *Process) {
	s.mu.Lock()
	delete(s.procs, p)
	s.mu.Unlock()
}

// killChildren sends SIGKILL to the process group of every running child.
func killChildren() {
	children.mu.Lock()
	defer children.mu.Unlock()
	for p := range children.procs {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
}
