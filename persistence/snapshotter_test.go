package persistence

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/registry"
)

// pollDeadline bounds every wait; the tests never assert on timing.
const pollDeadline = 5 * time.Second

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(pollDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func node(svc, name string) registry.Registration {
	return registry.Registration{ServiceName: svc, NodeName: name, HostName: "10.0.0.1", Port: 8080, Weight: 2, TimeOut: 60}
}

// runSnapshotter starts s.Run and stops it (and waits for it) at cleanup.
func runSnapshotter(t *testing.T, s *Snapshotter) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { s.Run(done) })
	t.Cleanup(func() { close(done); wg.Wait() })
}

type writeCounter struct {
	writes atomic.Int64
	nodes  atomic.Int64
}

func (c *writeCounter) onWrite(_ time.Duration, nodes int) {
	c.nodes.Store(int64(nodes))
	c.writes.Add(1)
}

func loadNodes(t *testing.T, f *LocalFile) map[string]bool {
	t.Helper()
	s, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, n := range s.Nodes {
		out[n.ServiceName+"/"+n.NodeName] = true
	}
	return out
}

func TestSnapshotterWritesChanges(t *testing.T) {
	f := NewLocalFile(t.TempDir())
	reg := registry.New(registry.Options{})
	st := config.New(config.Defaults())
	var c writeCounter
	s := NewSnapshotter(SnapshotterOptions{File: f, Registry: reg, Settings: st, Interval: 20 * time.Millisecond, OnWrite: c.onWrite})
	runSnapshotter(t, s)

	// The first tick writes the (empty) state.
	waitFor(t, "the first write", func() bool { return c.writes.Load() >= 1 })
	if _, err := reg.Register(node("orders", "a")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the registration to be written", func() bool { return c.nodes.Load() == 1 })
	if !loadNodes(t, f)["orders/a"] {
		t.Fatal("registration not in the file")
	}

	// Settings changes are written too.
	st.Update(func(s *config.Settings) { s.Strategy = config.LeastRequest })
	waitFor(t, "the settings change to be written", func() bool {
		s, err := f.Load()
		return err == nil && s.Settings != nil && s.Settings.Strategy == config.LeastRequest
	})

	// Nothing changes: no more writes, the file is not replaced. Flush
	// takes the write mutex, so once it returns everything so far is
	// written and counted; the sleep only gives Run ticks to misbehave in.
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	n := c.writes.Load()
	fi1, _ := os.Stat(f.Path())
	time.Sleep(200 * time.Millisecond) // ~10 ticks; an upper bound is not asserted
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	fi2, _ := os.Stat(f.Path())
	if c.writes.Load() != n || !os.SameFile(fi1, fi2) || !fi1.ModTime().Equal(fi2.ModTime()) {
		t.Fatalf("rewritten without a change: writes %d -> %d", n, c.writes.Load())
	}
}

func TestFlushWritesImmediately(t *testing.T) {
	f := NewLocalFile(t.TempDir())
	reg := registry.New(registry.Options{})
	var c writeCounter
	// An interval far longer than the test: only Flush can write.
	s := NewSnapshotter(SnapshotterOptions{File: f, Registry: reg, Interval: time.Hour, OnWrite: c.onWrite})
	runSnapshotter(t, s)
	reg.Register(node("orders", "a"))
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if !loadNodes(t, f)["orders/a"] || c.writes.Load() != 1 {
		t.Fatalf("Flush did not write (writes %d)", c.writes.Load())
	}
	// Nothing changed: Flush does not write again.
	if err := s.Flush(); err != nil || c.writes.Load() != 1 {
		t.Fatalf("second Flush: %v, writes %d", err, c.writes.Load())
	}
	reg.Deregister("orders", "a")
	if err := s.Flush(); err != nil || c.writes.Load() != 2 || len(loadNodes(t, f)) != 0 {
		t.Fatalf("Flush after deregister: %v, writes %d", err, c.writes.Load())
	}
	s2, _ := f.Load()
	if s2.Settings != nil {
		t.Fatal("settings written without a store")
	}
}

func TestSnapshotterReportsAndRetriesErrors(t *testing.T) {
	f := NewLocalFile(t.TempDir())
	reg := registry.New(registry.Options{})
	boom := errors.New("disk on fire")
	var fail atomic.Bool
	fail.Store(true)
	f.beforeRename = func(string) error {
		if fail.Load() {
			return boom
		}
		return nil
	}
	var errs atomic.Int64
	var c writeCounter
	s := NewSnapshotter(SnapshotterOptions{
		File: f, Registry: reg, Interval: 10 * time.Millisecond, OnWrite: c.onWrite,
		OnError: func(err error) {
			if errors.Is(err, boom) {
				errs.Add(1)
			}
		},
	})
	reg.Register(node("orders", "a"))
	if err := s.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush = %v", err)
	}
	runSnapshotter(t, s)
	waitFor(t, "OnError", func() bool { return errs.Load() >= 2 })
	fail.Store(false)
	waitFor(t, "a write after the failure", func() bool { return c.writes.Load() >= 1 })
	if !loadNodes(t, f)["orders/a"] {
		t.Fatal("state not written after recovery")
	}
	noTemps(t, f.dir)
}

func TestSnapshotterConcurrentRegistrations(t *testing.T) {
	f := NewLocalFile(t.TempDir())
	reg := registry.New(registry.Options{})
	st := config.New(config.Defaults())
	var c writeCounter
	s := NewSnapshotter(SnapshotterOptions{File: f, Registry: reg, Settings: st, Interval: 5 * time.Millisecond, OnWrite: c.onWrite})
	runSnapshotter(t, s)

	const writers, perWriter = 4, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				if _, err := reg.Register(node(fmt.Sprintf("svc-%d", w), fmt.Sprintf("n-%d", i))); err != nil {
					t.Error(err)
					return
				}
				if i%10 == 0 {
					reg.Register(node(fmt.Sprintf("svc-%d", w), "n-0")) // heartbeat
					st.Update(func(s *config.Settings) { s.HeartBeatTimeout = i + 1 })
				}
			}
		})
	}
	wg.Go(func() { // Flush concurrently with Run
		for range 20 {
			if err := s.Flush(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	got := loadNodes(t, f)
	if len(got) != writers*perWriter {
		t.Fatalf("file has %d nodes, want %d", len(got), writers*perWriter)
	}
	saved, _ := f.Load()
	if *saved.Settings != *st.Load() {
		t.Fatalf("settings %+v, want %+v", *saved.Settings, *st.Load())
	}
	noTemps(t, f.dir)
}

// TestSlowWritesSpacePeriodicOnes checks the write-share bound: after a
// write, periodic writes wait until notBefore (set from how long the write
// took), while Flush still writes at once.
func TestSlowWritesSpacePeriodicOnes(t *testing.T) {
	f := NewLocalFile(t.TempDir())
	reg := registry.New(registry.Options{})
	var c writeCounter
	s := NewSnapshotter(SnapshotterOptions{File: f, Registry: reg, Interval: time.Hour, OnWrite: c.onWrite})
	reg.Register(node("orders", "a"))
	if err := s.write(false); err != nil || c.writes.Load() != 1 {
		t.Fatalf("first periodic write: %v, writes %d", err, c.writes.Load())
	}
	s.mu.Lock()
	if !s.notBefore.After(time.Now().Add(-time.Second)) {
		t.Fatal("notBefore not set from the write")
	}
	s.notBefore = time.Now().Add(time.Hour) // as after a very slow write
	s.mu.Unlock()
	reg.Register(node("orders", "b"))
	if err := s.write(false); err != nil || c.writes.Load() != 1 {
		t.Fatalf("periodic write inside the back-off: %v, writes %d", err, c.writes.Load())
	}
	if err := s.Flush(); err != nil || c.writes.Load() != 2 || !loadNodes(t, f)["orders/b"] {
		t.Fatalf("Flush during the back-off: %v, writes %d", err, c.writes.Load())
	}
}
