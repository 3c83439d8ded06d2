package persistence

import (
	"sync"
	"time"

	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/registry"
)

// DefaultInterval is the snapshot interval when SnapshotterOptions.Interval
// is not set (SPEC 6: at most one write per second).
const DefaultInterval = time.Second

// SnapshotterOptions configure a Snapshotter.
type SnapshotterOptions struct {
	File     *LocalFile
	Registry *registry.Registry
	// Settings may be nil; then no settings are saved.
	Settings *config.Store
	// Interval is the shortest time between two writes; 0 means DefaultInterval.
	Interval time.Duration
	// OnError, if set, is called with the error of every failed write made
	// by Run (for logging and metrics). Run retries on its next tick. Flush
	// returns its error instead.
	OnError func(error)
	// OnWrite, if set, is called after every successful write with how long
	// it took (export, encode, fsync, rename) and how many nodes it holds.
	OnWrite func(d time.Duration, nodes int)
}

// Snapshotter coalesces registry and settings changes into at most one Save
// per interval. It compares Registry.Generation and Store.Generation with
// the ones it last wrote, so an idle registry costs no writes; heartbeats do
// change the generation (they move expiry deadlines) and are written too.
// The first check after NewSnapshotter always writes, so the file reflects
// the running state shortly after start.
//
// Run owns the periodic goroutine's work; the caller owns the goroutine and
// stops it by closing done. Flush may be called at any time, concurrently
// with Run.
type Snapshotter struct {
	o SnapshotterOptions

	mu      sync.Mutex // serializes writes and guards the fields below
	written bool       // whether anything was written yet
	regGen  uint64     // Registry.Generation of the last written state
	setGen  uint64     // Store.Generation of the last written state
}

// NewSnapshotter returns a Snapshotter for o. o.File and o.Registry are
// required.
func NewSnapshotter(o SnapshotterOptions) *Snapshotter {
	if o.File == nil || o.Registry == nil {
		panic("persistence: SnapshotterOptions.File and Registry are required")
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	return &Snapshotter{o: o}
}

// Run writes the state every Interval when it changed since the last write,
// until done is closed. It does not write on return: call Flush after Run
// has returned (or concurrently) for a final write on graceful shutdown.
func (s *Snapshotter) Run(done <-chan struct{}) {
	t := time.NewTicker(s.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if err := s.write(); err != nil && s.o.OnError != nil {
				s.o.OnError(err)
			}
		}
	}
}

// Flush writes the state now if it changed since the last write (or was
// never written) and returns the Save error, if any.
func (s *Snapshotter) Flush() error { return s.write() }

func (s *Snapshotter) write() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Read the generations before exporting: a change that lands during the
	// export bumps them again, so the next check writes once more rather
	// than missing it.
	regGen := s.o.Registry.Generation()
	var setGen uint64
	if s.o.Settings != nil {
		setGen = s.o.Settings.Generation()
	}
	if s.written && regGen == s.regGen && setGen == s.setGen {
		return nil
	}
	start := time.Now()
	st := State{SavedAt: start.UnixMilli(), Nodes: s.o.Registry.Export()}
	if s.o.Settings != nil {
		st.Settings = s.o.Settings.Load() // immutable; only read by the encoder
	}
	if err := s.o.File.Save(st); err != nil {
		return err
	}
	s.written, s.regGen, s.setGen = true, regGen, setGen
	if s.o.OnWrite != nil {
		s.o.OnWrite(time.Since(start), len(st.Nodes))
	}
	return nil
}
