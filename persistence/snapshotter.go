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
	// Interval is the shortest time between two writes; 0 means
	// DefaultInterval. Periodic writes are further spaced so that they take
	// at most a tenth of the time (maxWriteShare).
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
	// notBefore holds periodic writes back after a slow one (see
	// maxWriteShare); Flush ignores it.
	notBefore time.Time
}

// maxWriteShare bounds the share of time periodic writes may take: after a
// write that took d, the next periodic write waits at least d/maxWriteShare.
// A registry of a few hundred thousand nodes takes a few hundred
// milliseconds to encode; without the bound it would spend a core on
// rewriting the file every second while a registration storm goes on.
const maxWriteShare = 0.1

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
			if err := s.write(false); err != nil && s.o.OnError != nil {
				s.o.OnError(err)
			}
		}
	}
}

// Flush writes the state now if it changed since the last write (or was
// never written) and returns the Save error, if any.
func (s *Snapshotter) Flush() error { return s.write(true) }

func (s *Snapshotter) write(force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !force && time.Now().Before(s.notBefore) {
		return nil
	}
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
	took := time.Since(start)
	s.notBefore = start.Add(time.Duration(float64(took) / maxWriteShare))
	if s.o.OnWrite != nil {
		s.o.OnWrite(took, len(st.Nodes))
	}
	return nil
}
