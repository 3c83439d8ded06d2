//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package persistence

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/maxine-io/maxine/registry"
)

// sharedWaitLimit bounds every wait of these tests; none asserts how fast
// anything happens.
const sharedWaitLimit = 20 * time.Second

// sharedWait polls cond until it holds or sharedWaitLimit passes, and
// returns how long it took.
func sharedWait(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > sharedWaitLimit {
			t.Fatalf("timed out after %s waiting for %s", sharedWaitLimit, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

func sharedNode(svc, name string) registry.Registration {
	return registry.Registration{ServiceName: svc, NodeName: name, HostName: "10.0.0.7", Port: 9000, Weight: 1, TimeOut: 3600}
}

// newShared returns a loaded SharedFile on path with its own registry.
func newShared(t *testing.T, path, id string, tweak func(*SharedFileOptions)) (*SharedFile, *registry.Registry) {
	t.Helper()
	reg := registry.New(registry.Options{})
	o := SharedFileOptions{Path: path, InstanceID: id, Registry: reg, PollInterval: 50 * time.Millisecond}
	if tweak != nil {
		tweak(&o)
	}
	s, err := NewSharedFile(o)
	if err != nil {
		t.Fatal(err)
	}
	return s, reg
}

// runShared runs s until the test ends and waits for Run to return.
func runShared(t *testing.T, s *SharedFile) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func loadShared(t *testing.T, s *SharedFile) {
	t.Helper()
	if _, _, err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// fileNodes decodes the state file as the local mode does and returns its
// nodes by "service/node".
func fileNodes(t *testing.T, path string) map[string]registry.NodeState {
	t.Helper()
	st, err := (&LocalFile{dir: filepath.Dir(path), path: path}).Load()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]registry.NodeState, len(st.Nodes))
	for _, n := range st.Nodes {
		out[n.ServiceName+"/"+n.NodeName] = n
	}
	return out
}

func has(reg *registry.Registry, svc, node string) bool {
	s := reg.Snapshot(svc)
	return s != nil && s.Parent(node) != nil
}

func registerCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), sharedWaitLimit)
	t.Cleanup(cancel)
	return ctx
}

func TestSharedFileOptionsValidate(t *testing.T) {
	reg := registry.New(registry.Options{})
	o := SharedFileOptions{Dir: "/data", Registry: reg}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.Path != filepath.Join("/data", FileName) || o.PollInterval != DefaultSharedPollInterval ||
		o.LockTimeout != DefaultSharedLockTimeout || o.InstanceID == "" || o.Now == nil {
		t.Fatalf("defaults not filled: %+v", o)
	}
	for name, bad := range map[string]SharedFileOptions{
		"no registry":   {Path: "/x"},
		"no path":       {Registry: reg},
		"negative poll": {Path: "/x", Registry: reg, PollInterval: -1},
		"negative lock": {Path: "/x", Registry: reg, LockTimeout: -1},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, bad)
		}
	}
}

// TestSharedFileResultsAndFormat checks what Register and Deregister
// report, and that the file is the local mode's format: LocalFile reads
// it, and SharedFile reads a LocalFile's file (switching modes keeps the
// data, settings included).
func TestSharedFileResultsAndFormat(t *testing.T) {
	dir := t.TempDir()
	local := NewLocalFile(dir)
	saved := sampleState()
	now := time.UnixMilli(saved.Nodes[0].RegisteredAt)
	if err := local.Save(saved); err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return now }
	s, reg := newShared(t, local.Path(), "a", func(o *SharedFileOptions) { o.Now = clock })
	restored, skipped, err := s.Load(context.Background())
	if err != nil || restored != 3 || skipped != 0 || reg.Len() != 3 {
		t.Fatalf("Load of a local file = %d, %d, %v; registry %d", restored, skipped, err, reg.Len())
	}
	runShared(t, s)
	ctx := registerCtx(t)

	n := sharedNode("pay", "p1")
	n.Path = "api/" // normalized like the registry does
	res, err := s.Register(ctx, n)
	if err != nil || res.Kind != registry.NodeRegistered || res.Address != "http://10.0.0.7:9000/api" || res.RegisteredAt != now.UnixMilli() {
		t.Fatalf("first Register = %+v, %v", res, err)
	}
	if res, err = s.Register(ctx, n); err != nil || res.Kind != registry.NodeHeartbeat {
		t.Fatalf("same registration again = %+v, %v; want a heartbeat", res, err)
	}
	n.Weight = 3
	if res, err = s.Register(ctx, n); err != nil || res.Kind != registry.NodeUpdated {
		t.Fatalf("changed registration = %+v, %v; want updated", res, err)
	}
	if p := reg.Snapshot("pay").Parent("p1"); p == nil || p.Weight != 3 {
		t.Fatalf("registry after update: %+v", p)
	}
	if _, err := s.Register(ctx, registry.Registration{ServiceName: "x"}); !registry.IsValidationError(err) {
		t.Fatalf("invalid registration: %v", err)
	}
	if ok, err := s.Deregister(ctx, "orders", "a"); !ok || err != nil || has(reg, "orders", "a") {
		t.Fatalf("Deregister existing = %v, %v", ok, err)
	}
	if ok, err := s.Deregister(ctx, "orders", "nope"); ok || err != nil {
		t.Fatalf("Deregister missing = %v, %v", ok, err)
	}

	// LocalFile reads the shared file: settings kept, nodes as written.
	st, err := local.Load()
	if err != nil {
		t.Fatal(err)
	}
	if st.Settings == nil || *st.Settings != *saved.Settings {
		t.Fatalf("settings not kept: %+v", st.Settings)
	}
	got := fileNodes(t, local.Path())
	if len(got) != 3 || got["pay/p1"].Weight != 3 || got["pay/p1"].Path != "/api" || got["orders/b"].Metadata["quote"] != saved.Nodes[1].Metadata["quote"] {
		t.Fatalf("file nodes = %+v", got)
	}
	data, _ := os.ReadFile(local.Path())
	if !strings.Contains(string(data), `"instanceId":"a"`) {
		t.Fatalf("file does not name its writer:\n%s", data)
	}
}

// TestSharedFileConcurrentInstances runs two instances on one file, each
// with 16 goroutines registering 2,000 nodes: every acknowledged node must
// be in the file and in both registries (no lost update between the
// instances' read-modify-writes).
func TestSharedFileConcurrentInstances(t *testing.T) {
	const perInstance, workers = 2000, 16
	path := filepath.Join(t.TempDir(), FileName)
	a, regA := newShared(t, path, "a", nil)
	b, regB := newShared(t, path, "b", nil)
	loadShared(t, a)
	loadShared(t, b)
	runShared(t, a)
	runShared(t, b)
	// The run is bounded by its count; the deadline only catches a hang,
	// and must allow for -race on a loaded 2-core machine (~300/s).
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	var failed atomic.Int64
	start := time.Now()
	for _, inst := range []struct {
		name string
		s    *SharedFile
	}{{"a", a}, {"b", b}} {
		for w := range workers {
			wg.Go(func() {
				for i := w; i < perInstance; i += workers {
					n := sharedNode("svc-"+strconv.Itoa(i%10), inst.name+"-"+strconv.Itoa(i))
					if _, err := inst.s.Register(ctx, n); err != nil {
						failed.Add(1)
						t.Errorf("Register %s: %v", n.NodeName, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	took := time.Since(start)
	if failed.Load() > 0 {
		t.FailNow()
	}
	writes := a.stats.writes.Load() + b.stats.writes.Load()
	t.Logf("%d registrations in %s (%.0f/s) with %d file writes (%.1f per write)",
		2*perInstance, took.Round(time.Millisecond), float64(2*perInstance)/took.Seconds(), writes, float64(2*perInstance)/float64(writes))

	inFile := fileNodes(t, path)
	if len(inFile) != 2*perInstance {
		t.Fatalf("file has %d nodes, want %d", len(inFile), 2*perInstance)
	}
	check := func(reg *registry.Registry) bool {
		if reg.Len() != 2*perInstance {
			return false
		}
		for k := range inFile {
			svc, node, _ := strings.Cut(k, "/")
			if !has(reg, svc, node) {
				return false
			}
		}
		return true
	}
	sharedWait(t, "both registries to hold every node", func() bool { return check(regA) && check(regB) })
}

// TestSharedFileChangesVisibleOnOtherInstance: what A writes, B applies
// by polling; the observed delays are logged, not asserted.
func TestSharedFileChangesVisibleOnOtherInstance(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	a, regA := newShared(t, path, "a", func(o *SharedFileOptions) { o.PollInterval = DefaultSharedPollInterval })
	b, regB := newShared(t, path, "b", func(o *SharedFileOptions) { o.PollInterval = DefaultSharedPollInterval })
	loadShared(t, a)
	loadShared(t, b)
	runShared(t, a)
	runShared(t, b)
	ctx := registerCtx(t)
	sub := regB.Subscribe(0)
	defer regB.Unsubscribe(sub)

	var delays []time.Duration
	for i := range 5 {
		// Spread the changes over the poll period; without the pause
		// each lands just after B's previous poll.
		time.Sleep(time.Duration(i) * DefaultSharedPollInterval / 5)
		name := "n" + strconv.Itoa(i)
		if _, err := a.Register(ctx, sharedNode("web", name)); err != nil {
			t.Fatal(err)
		}
		if !has(regA, "web", name) {
			t.Fatal("acknowledged registration not in the registry of the instance that took it")
		}
		delays = append(delays, sharedWait(t, "B to see "+name, func() bool { return has(regB, "web", name) }))
	}
	if ok, err := b.Deregister(ctx, "web", "n0"); !ok || err != nil {
		t.Fatalf("B deregisters A's node: %v, %v", ok, err)
	}
	delays = append(delays, sharedWait(t, "A to lose n0", func() bool { return !has(regA, "web", "n0") }))
	t.Logf("PollInterval %s; delays until the other instance applied a change: %v", DefaultSharedPollInterval, delays)

	var kinds []string
	evs, _ := sub.Take(nil)
	for _, ev := range evs {
		kinds = append(kinds, ev.Kind.String()+":"+ev.Node)
	}
	if want := "registered:n0 registered:n1 registered:n2 registered:n3 registered:n4 deregistered:n0"; strings.Join(kinds, " ") != want {
		t.Fatalf("B's events = %v, want %s", kinds, want)
	}
}

// TestSharedFileExpiry: a node with timeOut 1 whose heartbeats stop is
// dropped from the file and from both registries (as expired), although
// nobody registers anything afterwards.
func TestSharedFileExpiry(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	a, regA := newShared(t, path, "a", nil)
	b, regB := newShared(t, path, "b", nil)
	loadShared(t, a)
	loadShared(t, b)
	runShared(t, a)
	runShared(t, b)
	ctx := registerCtx(t)
	subA, subB := regA.Subscribe(0), regB.Subscribe(0)
	defer regA.Unsubscribe(subA)
	defer regB.Unsubscribe(subB)

	short := sharedNode("jobs", "short")
	short.TimeOut = 1
	for range 3 { // a few heartbeats, then silence
		if _, err := a.Register(ctx, short); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Register(ctx, sharedNode("jobs", "long")); err != nil {
		t.Fatal(err)
	}
	sharedWait(t, "B to see the node", func() bool { return has(regB, "jobs", "short") })
	sharedWait(t, "the node to expire everywhere", func() bool {
		_, inFile := fileNodes(t, path)["jobs/short"]
		return !inFile && !has(regA, "jobs", "short") && !has(regB, "jobs", "short")
	})
	if !has(regA, "jobs", "long") || !has(regB, "jobs", "long") {
		t.Fatal("expiry removed a live node")
	}
	for name, sub := range map[string]*registry.Subscription{"A": subA, "B": subB} {
		evs, _ := sub.Take(nil)
		last := evs[len(evs)-1]
		if last.Node != "short" || last.Kind != registry.NodeExpired {
			t.Fatalf("%s: last event %v %s, want expired short", name, last.Kind, last.Node)
		}
	}
}

// TestSharedFileCorruptAtLoad: a corrupt file is moved aside, reported,
// and never overwritten; the next write starts a new file.
func TestSharedFileCorruptAtLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	garbage := []byte(`{"format":1,"savedAt":1,"nodes":[{"serviceName":"a"`)
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	s, reg := newShared(t, path, "a", nil)
	restored, _, err := s.Load(context.Background())
	var ce *CorruptError
	if !errors.As(err, &ce) || restored != 0 || reg.Len() != 0 {
		t.Fatalf("Load = %d, %v; want a *CorruptError", restored, err)
	}
	if ce.Path != path || !strings.HasPrefix(ce.Backup, path+".corrupt-") {
		t.Fatalf("CorruptError = %+v", ce)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("corrupt file still at %s: %v", path, err)
	}
	runShared(t, s)
	if _, err := s.Register(registerCtx(t), sharedNode("web", "w1")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(ce.Backup); string(got) != string(garbage) {
		t.Fatalf("backup changed: %q", got)
	}
	if n := fileNodes(t, path); len(n) != 1 {
		t.Fatalf("new file nodes = %v", n)
	}
}

// TestSharedFileCorruptAtRuntime: a file corrupted while instances run is
// moved aside by the next write and rebuilt from the instance's replica.
func TestSharedFileCorruptAtRuntime(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	a, regA := newShared(t, path, "a", nil)
	loadShared(t, a)
	runShared(t, a)
	ctx := registerCtx(t)
	if _, err := a.Register(ctx, sharedNode("web", "w1")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".new", []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	sharedWait(t, "the file to be rebuilt", func() bool {
		st, err := (&LocalFile{dir: filepath.Dir(path), path: path}).Load()
		return err == nil && len(st.Nodes) == 1
	})
	if !has(regA, "web", "w1") {
		t.Fatal("a corrupt file emptied the registry")
	}
	backups, _ := filepath.Glob(path + ".corrupt-*")
	if len(backups) != 1 {
		t.Fatalf("backups = %v", backups)
	}
	if got, _ := os.ReadFile(backups[0]); string(got) != "not json" {
		t.Fatalf("backup = %q", got)
	}
}

// TestSharedFileUnwritable: when the directory cannot be created, Register
// fails with ErrStoreUnavailable naming the file, OnStoreState reports the
// transition once, and the store comes back by itself once it is
// writable (the poller probes it).
func TestSharedFileUnwritable(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "data")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil { // a file where the directory should be
		t.Fatal(err)
	}
	path := filepath.Join(blocker, FileName)
	var mu sync.Mutex
	var states []string
	s, reg := newShared(t, path, "a", func(o *SharedFileOptions) {
		o.OnStoreState = func(up bool, err error) {
			mu.Lock()
			defer mu.Unlock()
			states = append(states, fmt.Sprint(up))
			if up != (err == nil) {
				t.Errorf("OnStoreState(%v, %v)", up, err)
			}
		}
	})
	if _, _, err := s.Load(context.Background()); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Load = %v", err)
	}
	runShared(t, s)
	ctx := registerCtx(t)
	for range 2 {
		_, err := s.Register(ctx, sharedNode("web", "w1"))
		if !errors.Is(err, ErrStoreUnavailable) || !strings.Contains(err.Error(), path) {
			t.Fatalf("Register = %v; want ErrStoreUnavailable naming %s", err, path)
		}
	}
	if has(reg, "web", "w1") {
		t.Fatal("a registration that was not written was applied")
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	sharedWait(t, "the store to come back", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(states) == 2
	})
	if _, err := s.Register(ctx, sharedNode("web", "w1")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(states, ",") != "false,true" {
		t.Fatalf("OnStoreState calls = %v", states)
	}
}

// TestSharedFileCancelledWhileQueued: a change whose context ends before
// the writer took it is withdrawn and never written.
func TestSharedFileCancelledWhileQueued(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, reg := newShared(t, path, "a", nil)
	loadShared(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Run is not started: the op stays queued until ctx ends.
	if _, err := s.Register(ctx, sharedNode("web", "w1")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Register = %v", err)
	}
	runShared(t, s)
	if _, err := s.Register(registerCtx(t), sharedNode("web", "w2")); err != nil {
		t.Fatal(err)
	}
	if n := fileNodes(t, path); len(n) != 1 || reg.Len() != 1 {
		t.Fatalf("file %v, registry %d; the withdrawn registration was written", n, reg.Len())
	}
}

// TestSharedFileStopped: once Run has returned, changes fail as the
// store being unavailable.
func TestSharedFileStopped(t *testing.T) {
	s, _ := newShared(t, filepath.Join(t.TempDir(), FileName), "a", nil)
	loadShared(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	if _, err := s.Register(registerCtx(t), sharedNode("web", "w1")); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Register(registerCtx(t), sharedNode("web", "w2")); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Register after Run returned = %v", err)
	}
	if _, err := s.Deregister(registerCtx(t), "web", "w1"); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Deregister after Run returned = %v", err)
	}
	if err := s.Run(context.Background()); err == nil {
		t.Fatal("Run ran twice")
	}
}

// TestSharedFileLockReleasedWhenHolderKilled: a process that holds the
// flock and dies by SIGKILL leaves nothing behind; the next Register of
// another instance goes through.
func TestSharedFileLockReleasedWhenHolderKilled(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, reg := newShared(t, path, "a", func(o *SharedFileOptions) { o.LockTimeout = time.Minute })
	loadShared(t, s)
	runShared(t, s)

	child := sharedHelper(t, "lock", path)
	if line := child.readLine(t); line != "locked" {
		t.Fatalf("helper said %q", line)
	}
	// While the helper lives, nothing is written.
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err := s.Register(short, sharedNode("web", "while-locked"))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not written") {
		t.Fatalf("Register while another process holds the lock = %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file written while locked: %v", err)
	}

	if err := child.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.cmd.Wait()
	if _, err := s.Register(registerCtx(t), sharedNode("web", "after-kill")); err != nil {
		t.Fatalf("Register after the holder was killed: %v", err)
	}
	if !has(reg, "web", "after-kill") || len(fileNodes(t, path)) == 0 {
		t.Fatal("registration after the kill not applied")
	}
}

// sharedChild is a helper process: this test binary re-executed with
// MAXINE_SHARED_HELPER set (see TestSharedFileHelperProcess).
type sharedChild struct {
	cmd   *exec.Cmd
	out   *bufio.Reader
	stdin io.WriteCloser
}

func sharedHelper(t testing.TB, mode string, args ...string) *sharedChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSharedFileHelperProcess$", "-test.v=false")
	cmd.Env = append(os.Environ(), "MAXINE_SHARED_HELPER="+mode, "MAXINE_SHARED_ARGS="+strings.Join(args, "\x1f"))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &sharedChild{cmd: cmd, out: bufio.NewReader(out), stdin: stdin}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return c
}

// readLine returns the child's next line, waiting at most sharedWaitLimit.
func (c *sharedChild) readLine(t testing.TB) string {
	t.Helper()
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := c.out.ReadString('\n')
		ch <- result{strings.TrimSpace(line), err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("helper process: %v", r.err)
		}
		return r.line
	case <-time.After(sharedWaitLimit):
		t.Fatalf("helper process silent for %s", sharedWaitLimit)
		return ""
	}
}

// TestSharedFileHelperProcess is not a test: it is the body of the helper
// processes, and does nothing unless MAXINE_SHARED_HELPER is set.
func TestSharedFileHelperProcess(t *testing.T) {
	mode := os.Getenv("MAXINE_SHARED_HELPER")
	if mode == "" {
		return
	}
	args := strings.Split(os.Getenv("MAXINE_SHARED_ARGS"), "\x1f")
	switch mode {
	case "lock":
		// Hold the flock like a writer in the middle of a batch, until
		// killed (or a minute passes).
		f, err := os.OpenFile(args[0]+".lock", os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println("locked")
		time.Sleep(time.Minute)
		os.Exit(3)
	case "register":
		os.Exit(sharedRegisterHelper(args))
	}
	os.Exit(2)
}

// sharedRegisterHelper runs one instance that, once told "go" on stdin,
// sends count registrations over nodes distinct nodes from workers
// goroutines, then prints "done <count> <nanoseconds> <writes>".
func sharedRegisterHelper(args []string) int {
	path, id := args[0], args[1]
	count, _ := strconv.Atoi(args[2])
	nodes, _ := strconv.Atoi(args[3])
	workers, _ := strconv.Atoi(args[4])
	reg := registry.New(registry.Options{})
	s, err := NewSharedFile(SharedFileOptions{Path: path, InstanceID: id, Registry: reg})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, _, err := s.Load(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	go s.Run(ctx)
	fmt.Println("ready")
	if line, _ := bufio.NewReader(os.Stdin).ReadString('\n'); strings.TrimSpace(line) != "go" {
		return 2
	}
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(count) {
					return
				}
				n := sharedNode("svc-"+strconv.Itoa(int(i)%10), id+"-"+strconv.Itoa(int(i)%nodes))
				if _, err := s.Register(ctx, n); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if failed.Load() > 0 {
		fmt.Fprintln(os.Stderr, failed.Load(), "registrations failed")
		return 1
	}
	fmt.Printf("done %d %d %d\n", count, took.Nanoseconds(), s.stats.writes.Load())
	return 0
}

// BenchmarkSharedFileTwoProcesses measures registrations per second with
// two Maxine processes on one shared file, each sending registrations and
// heartbeats (1,000 nodes each, b.N requests each) from 64 goroutines.
func BenchmarkSharedFileTwoProcesses(b *testing.B) {
	path := filepath.Join(b.TempDir(), FileName)
	children := []*sharedChild{
		sharedHelper(b, "register", path, "a", strconv.Itoa(b.N), "1000", "64"),
		sharedHelper(b, "register", path, "b", strconv.Itoa(b.N), "1000", "64"),
	}
	for _, c := range children {
		if line := c.readLine(b); line != "ready" {
			b.Fatalf("helper said %q", line)
		}
	}
	b.ResetTimer()
	start := time.Now()
	for _, c := range children {
		io.WriteString(c.stdin, "go\n")
	}
	var total, writes int64
	for _, c := range children {
		var n, ns, w int64
		if _, err := fmt.Sscanf(c.readLine(b), "done %d %d %d", &n, &ns, &w); err != nil {
			b.Fatal(err)
		}
		total += n
		writes += w
	}
	took := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(total)/took.Seconds(), "regs/s")
	b.ReportMetric(float64(total)/float64(max(writes, 1)), "regs/write")
}
