package persistence

// The shared-file state mode (SPEC 6): several Maxine processes, on one
// host or on a shared volume, keep one registry in one state file. The
// file is the source of truth; each instance's registry.Registry is a
// replica of it that the data plane reads without ever touching the file.
//
// One registration, followed through SharedFile:
//
//  1. Register queues the change and waits. The writer goroutine takes
//     every change queued so far as one batch (group commit: a thousand
//     concurrent heartbeats cost one file write, not a thousand).
//  2. It takes flock(2) on <path>.lock, reads the file (another instance
//     may have changed it), applies the batch to what it read, drops the
//     nodes whose deadline has passed, and replaces the file atomically
//     (temporary file, fsync, rename, directory fsync).
//  3. It releases the lock, applies the new content to the local registry
//     (Upsert, Remove) and only then acknowledges the callers: an
//     acknowledged registration is in the file and in this instance's
//     tables.
//  4. The other instances notice the new file within one PollInterval
//     (stat: inode, size, mtime) and apply it the same way.
//
// Invariants:
//   - Every read-modify-write of the file happens under the flock, so two
//     instances never lose each other's updates. The flock belongs to the
//     open lock file, so the kernel drops it when the holder dies. On a
//     shared volume the file system must honour flock across its clients
//     (NFSv4 does, through its byte-range locks); one that silently grants
//     every flock cannot host this mode.
//   - The file is replaced by rename, never written in place, so a reader
//     without the lock sees one whole version or the next.
//   - Every application of a file version to the local registry happens
//     under SharedFile.mu together with the read of that version, so the
//     registry only moves forward through the file's versions.
//   - The local registry is changed only by SharedFile in this mode; it
//     does not run its own expiry (Registry.Run). Expiry is a write like
//     any other: whichever instance finds an expired node in the file
//     takes the lock and rewrites the file without it.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/rs/zerolog"

	"github.com/maxine-io/maxine/internal/atomicfile"
	"github.com/maxine-io/maxine/registry"
)

// Defaults of SharedFileOptions.
const (
	DefaultSharedPollInterval = 500 * time.Millisecond
	DefaultSharedLockTimeout  = 10 * time.Second
)

// sharedResyncPolls: every this many polls the file is read even if its stat
// did not change (its hash still spares the decoding). It covers file
// systems with coarse mtimes where a replaced file may get a recycled
// inode number, the same size and the same mtime.
const sharedResyncPolls = 10

// SharedFileOptions configure a SharedFile.
type SharedFileOptions struct {
	// Path of the shared state file. Empty means Dir/registry-state.json.
	Path string
	// Dir is the data directory, used when Path is empty.
	Dir string
	// InstanceID names this instance in the file ("instanceId" of the
	// last writer) and in logs; empty means <hostname>-<pid>.
	InstanceID string
	// Registry is this instance's registry, kept a replica of the file.
	// Required. Its expiry (Registry.Run) must not be started.
	Registry *registry.Registry
	// PollInterval is how often the file is checked for changes made by
	// other instances; 0 means DefaultSharedPollInterval.
	PollInterval time.Duration
	// LockTimeout bounds the wait for the file lock; a batch that cannot
	// take it in time fails with ErrStoreUnavailable. 0 means
	// DefaultSharedLockTimeout.
	LockTimeout time.Duration
	// Logger receives corrupt-file, store-state and replication
	// warnings. The zero value logs nothing.
	Logger zerolog.Logger
	// Now replaces time.Now for registration times and deadlines (tests).
	Now func() time.Time
	// OnStoreState, if set, is called when the file becomes unwritable
	// (up false, with the error) and when it is writable again (up true,
	// nil). Calls are serialized and made by the writer goroutine: it
	// must return quickly and must not call Register or Deregister.
	OnStoreState func(up bool, err error)
}

// Validate checks o and fills in its defaults.
func (o *SharedFileOptions) Validate() error {
	if o.Registry == nil {
		return errors.New("persistence: SharedFileOptions.Registry is required")
	}
	if o.Path == "" {
		if o.Dir == "" {
			return errors.New("persistence: SharedFileOptions needs Path or Dir")
		}
		o.Path = filepath.Join(o.Dir, FileName)
	}
	if o.PollInterval < 0 {
		return fmt.Errorf("persistence: SharedFileOptions.PollInterval must not be negative, got %s", o.PollInterval)
	}
	if o.PollInterval == 0 {
		o.PollInterval = DefaultSharedPollInterval
	}
	if o.LockTimeout < 0 {
		return fmt.Errorf("persistence: SharedFileOptions.LockTimeout must not be negative, got %s", o.LockTimeout)
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = DefaultSharedLockTimeout
	}
	if o.InstanceID == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "maxine"
		}
		o.InstanceID = host + "-" + strconv.Itoa(os.Getpid())
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// SharedFile keeps a registry in a state file shared by several processes
// (see the comment at the top of shared.go). It implements the Registrar
// of cmd/maxine and admin: Register and Deregister return once the change
// is in the file and in the local registry.
//
// Lifecycle: NewSharedFile, Load before the listeners open, then Run until
// shutdown. Register and Deregister may be called before Run starts (they
// wait for it) and fail once Run has returned. A SharedFile must not be
// copied.
type SharedFile struct {
	o        SharedFileOptions
	lockPath string

	qmu     sync.Mutex // guards queue, spare and closed
	queue   []*sharedOp
	spare   []*sharedOp
	closed  bool
	wake    chan struct{} // cap 1: the writer has work
	sweep   atomic.Bool   // the poller asks for a write without a caller (expiry, repair, probe)
	started atomic.Bool

	// mu serializes every read of the file that is applied to the
	// registry with that application, and guards the fields below. It is
	// taken before the flock, never after.
	mu        sync.Mutex
	applied   *sharedContent // the file version the registry reflects
	seen      sharedFileID   // stat identity of that version
	lockf     *os.File       // the open lock file; nil until first needed
	buf       bytes.Buffer   // encoding buffer, reused
	polls     int
	pollErr   string // last poll error logged, so one failure logs once
	corruptAt sharedFileID

	smu   sync.Mutex // serializes store-state transitions and OnStoreState
	down  atomic.Bool
	stats sharedStats
}

// sharedStats count the writer's work, for tests and benchmarks.
type sharedStats struct {
	writes  atomic.Int64 // files written
	batched atomic.Int64 // caller operations acknowledged by those writes
}

// sharedOp is one queued Register or Deregister.
type sharedOp struct {
	reg        registry.Registration // Register; normalized
	deregister bool
	service    string // Deregister
	node       string

	done    chan struct{} // closed by the writer
	res     registry.Result
	existed bool
	err     error
}

// NewSharedFile validates o and returns a SharedFile. It does not touch
// the file: call Load.
func NewSharedFile(o SharedFileOptions) (*SharedFile, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return &SharedFile{
		o:        o,
		lockPath: o.Path + ".lock",
		wake:     make(chan struct{}, 1),
		applied:  newSharedContent(),
	}, nil
}

// Path returns the shared state file's path.
func (s *SharedFile) Path() string { return s.o.Path }

// Up reports whether the last write of the file succeeded (true before
// the first one).
func (s *SharedFile) Up() bool { return !s.down.Load() }

// storeError wraps err as ErrStoreUnavailable naming the file.
func (s *SharedFile) storeError(err error) error {
	return fmt.Errorf("%w: shared file %s: %w", ErrStoreUnavailable, s.o.Path, err)
}

// Load reads the file and applies it to the registry; call it before the
// listeners accept traffic. Nodes already expired, and nodes that fail
// validation, are skipped. A corrupt file is moved aside under the lock,
// exactly as the local mode does, and Load returns (0, 0, *CorruptError):
// not fatal, the state starts empty and the next write creates a new file.
// Any other error (the file or its directory cannot be read or locked)
// means nothing was applied.
func (s *SharedFile) Load(ctx context.Context) (restored, skipped int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.lockLocked(ctx); err != nil {
		return 0, 0, s.storeError(err)
	}
	c, id, invalid, ferr := s.readLocked(true)
	if err := s.unlockLocked(); err != nil && ferr == nil {
		ferr = err
	}
	var corrupt *CorruptError
	if ferr != nil && !errors.As(ferr, &corrupt) {
		return 0, 0, ferr
	}
	if c == nil {
		c = newSharedContent()
	}
	nowMs := s.o.Now().UnixMilli()
	for _, e := range c.nodes {
		if e.st.ExpiresAt <= nowMs {
			skipped++
		}
	}
	failed := s.reconcileLocked(c, nowMs)
	s.seen = id
	restored = len(c.nodes) - skipped - len(failed)
	skipped += len(failed)
	if ferr != nil {
		return restored, skipped + invalid, ferr
	}
	return restored, skipped + invalid, nil
}

// Register writes reg (a registration or a heartbeat) to the file and
// applies it locally. A validation error is returned as registry.Register
// returns it; an error wrapping ErrStoreUnavailable means the file could
// not be written and the change was not acknowledged. registry.ErrFull
// means the change is in the file (other instances serve it) but this
// instance's registry has no room for it. Result.Kind says what the
// change was to the file, which may differ from what it was to this
// instance's registry while that lags behind the file.
func (s *SharedFile) Register(ctx context.Context, reg registry.Registration) (registry.Result, error) {
	if err := reg.Validate(); err != nil {
		return registry.Result{}, err
	}
	sharedNormalize(&reg)
	op := &sharedOp{reg: reg, done: make(chan struct{})}
	if err := s.submit(ctx, op); err != nil {
		return registry.Result{}, err
	}
	return op.res, op.err
}

// Deregister removes a node from the file and from the local registry. It
// reports whether the file had the node.
func (s *SharedFile) Deregister(ctx context.Context, service, node string) (bool, error) {
	op := &sharedOp{deregister: true, service: service, node: node, done: make(chan struct{})}
	if err := s.submit(ctx, op); err != nil {
		return false, err
	}
	return op.existed, op.err
}

// submit queues op for the writer and waits for it or for ctx. When ctx
// ends while op is still queued, op is withdrawn and never applied; when
// the writer has already taken it, the outcome is unknown to the caller.
func (s *SharedFile) submit(ctx context.Context, op *sharedOp) error {
	s.qmu.Lock()
	if s.closed {
		s.qmu.Unlock()
		return s.storeError(errSharedStopped)
	}
	s.queue = append(s.queue, op)
	s.qmu.Unlock()
	s.kick()
	select {
	case <-op.done:
		return nil
	case <-ctx.Done():
	}
	s.qmu.Lock()
	if i := slices.Index(s.queue, op); i >= 0 {
		s.queue = slices.Delete(s.queue, i, i+1)
		s.qmu.Unlock()
		return fmt.Errorf("shared file %s: not written: %w", s.o.Path, ctx.Err())
	}
	s.qmu.Unlock()
	select {
	case <-op.done:
		return nil
	default:
		return fmt.Errorf("shared file %s: write in progress, outcome unknown: %w", s.o.Path, ctx.Err())
	}
}

var errSharedStopped = errors.New("stopped")

func (s *SharedFile) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run polls the file for other instances' changes and writes the queued
// changes until ctx is done. It may be called once. Changes still queued
// when it returns fail with ErrStoreUnavailable.
func (s *SharedFile) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("persistence: SharedFile.Run called twice")
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.writeLoop(ctx) })
	t := time.NewTicker(s.o.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			s.mu.Lock()
			s.closeLockFile()
			s.mu.Unlock()
			return nil
		case <-t.C:
			s.poll()
		}
	}
}

func (s *SharedFile) writeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			s.qmu.Lock()
			s.closed = true
			ops := s.queue
			s.queue = nil
			s.qmu.Unlock()
			for _, op := range ops {
				op.err = s.storeError(errSharedStopped)
				close(op.done)
			}
			return
		case <-s.wake:
		}
		s.commit(ctx)
	}
}

// commit takes the flock and then, as one batch, every change queued by
// then: the changes that arrived while another instance held the lock
// join this write instead of waiting for the next one. It writes the
// batch (read, apply, drop expired, write, unlock, apply locally) and
// acknowledges it.
func (s *SharedFile) commit(ctx context.Context) {
	s.mu.Lock()
	err := s.lockLocked(ctx)
	s.qmu.Lock()
	batch := s.queue
	s.queue, s.spare = s.spare[:0], nil
	s.qmu.Unlock()
	select { // what is queued now is in this batch
	case <-s.wake:
	default:
	}
	sweep := s.sweep.Swap(false)
	report := true
	switch {
	case err != nil && ctx.Err() != nil:
		err, report = errSharedStopped, false // shutting down: not a store failure
	case err != nil:
	case len(batch) == 0 && !sweep:
		s.unlockLocked()
		report = false
	default:
		err = s.commitLocked(batch)
	}
	s.mu.Unlock()
	if err != nil {
		err = s.storeError(err)
	}
	if report {
		s.setStoreState(err)
	}
	for _, op := range batch {
		if err != nil {
			op.err = err
		}
		close(op.done)
	}
	clear(batch)
	s.qmu.Lock()
	s.spare = batch[:0]
	s.qmu.Unlock()
}

// commitLocked writes a batch with the flock held and releases it.
func (s *SharedFile) commitLocked(batch []*sharedOp) error {
	locked := true
	defer func() {
		if locked {
			s.unlockLocked()
		}
	}()
	cur, id, _, err := s.readLocked(false)
	force := s.down.Load() // a write proves the store is back
	var corrupt *CorruptError
	switch {
	case errors.As(err, &corrupt):
		// Moved aside and reported; rebuild the file from this
		// instance's replica rather than lose every node.
		cur, force = s.applied, true
	case err != nil:
		return err
	case cur == nil:
		// The file is gone (deleted, or never written). Rebuild it
		// from the replica: a vanished file must not wipe every
		// instance's tables.
		cur, force = s.applied, force || len(s.applied.nodes) > 0
	}
	now := s.o.Now()
	nowMs := now.UnixMilli()
	next := cur.clone()
	changed := next.dropExpired(nowMs) > 0 || force
	for _, op := range batch {
		if op.deregister {
			op.existed = next.deregister(op.service, op.node)
			changed = changed || op.existed
			continue
		}
		kind, ch := next.register(op.reg, nowMs)
		changed = changed || ch
		op.res = registry.Result{Registration: op.reg, Address: op.reg.Address(), RegisteredAt: nowMs, Kind: kind}
	}
	if changed {
		if err := next.encode(&s.buf, now, s.o.InstanceID); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(s.o.Path), 0o700); err != nil {
			return err
		}
		err := atomicfile.Write(s.o.Path, atomicfile.Options{}, func(w *bufio.Writer) error {
			_, err := w.Write(s.buf.Bytes())
			return err
		})
		if err != nil {
			return err
		}
		s.stats.writes.Add(1)
		s.stats.batched.Add(int64(len(batch)))
		id = sharedFileID{} // unknown: the poller reads it once more
		if fi, err := os.Stat(s.o.Path); err == nil {
			id = sharedIdentity(fi)
		}
	} else {
		next = cur
	}
	s.seen = id
	locked = false
	if err := s.unlockLocked(); err != nil {
		s.o.Logger.Warn().Err(err).Str("path", s.lockPath).Msg("shared state file: cannot release the lock; closing the lock file")
	}
	failed := s.reconcileLocked(next, nowMs)
	for _, op := range batch {
		if !op.deregister {
			op.err = failed[sharedKey(op.reg.ServiceName, op.reg.NodeName)]
		}
	}
	return nil
}

// readLocked reads the file under the lock and returns it with its stat
// identity and the number of invalid nodes left out. It returns a nil
// content and no error when the file does not exist. A corrupt file is moved aside and reported as
// a *CorruptError. When load is set, leftovers of a crashed write are
// removed first: with the lock held nobody else is writing.
func (s *SharedFile) readLocked(load bool) (*sharedContent, sharedFileID, int, error) {
	if load {
		names, _ := filepath.Glob(filepath.Join(filepath.Dir(s.o.Path), atomicfile.TempPattern(s.o.Path)))
		for _, n := range names {
			os.Remove(n)
		}
	}
	data, id, err := sharedReadFile(s.o.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, sharedFileID{}, 0, nil
	}
	if err != nil {
		return nil, sharedFileID{}, 0, fmt.Errorf("cannot read: %w", err)
	}
	if xxhash.Sum64(data) == s.applied.sum && s.applied.sum != 0 {
		return s.applied, id, 0, nil
	}
	c, invalid, derr := decodeShared(data, s.applied)
	if derr != nil {
		lf := &LocalFile{dir: filepath.Dir(s.o.Path), path: s.o.Path}
		backup, err := lf.moveAside()
		if err != nil {
			return nil, sharedFileID{}, 0, fmt.Errorf("corrupt (%v) and cannot be moved aside: %w", derr, err)
		}
		cerr := &CorruptError{Path: s.o.Path, Backup: backup, Err: derr}
		s.o.Logger.Error().Err(cerr).Msg("shared state file")
		return nil, sharedFileID{}, 0, cerr
	}
	if invalid > 0 {
		s.o.Logger.Warn().Int("nodes", invalid).Str("path", s.o.Path).Msg("shared state file: invalid nodes skipped")
	}
	return c, id, invalid, nil
}

// sharedReadFile reads a file and the stat identity of the version read.
func sharedReadFile(path string) ([]byte, sharedFileID, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, sharedFileID{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, sharedFileID{}, err
	}
	data := make([]byte, 0, fi.Size()+512)
	buf := bytes.NewBuffer(data)
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, sharedFileID{}, err
	}
	return buf.Bytes(), sharedIdentity(fi), nil
}

// reconcileLocked makes the registry reflect c and records c as applied:
// nodes new or changed since the applied version are upserted with their
// own times, nodes gone are removed (as expired when their deadline has
// passed, else as deregistered), and nodes of c already past their
// deadline are treated as gone. It returns the errors of failed upserts by
// key (the registry is full).
func (s *SharedFile) reconcileLocked(c *sharedContent, nowMs int64) map[string]error {
	prev := s.applied
	reg := s.o.Registry
	var failed map[string]error
	for k, e := range c.nodes {
		old := prev.nodes[k]
		if e.st.ExpiresAt <= nowMs {
			if old != nil {
				reg.Remove(e.st.ServiceName, e.st.NodeName, "", registry.NodeExpired)
			}
			continue
		}
		if old == e {
			continue
		}
		if _, err := reg.Upsert(e.st); err != nil {
			if failed == nil {
				failed = map[string]error{}
			}
			failed[k] = err
			s.o.Logger.Warn().Err(err).Str("service", e.st.ServiceName).Str("node", e.st.NodeName).Msg("shared state file: node not applied")
		}
	}
	for k, old := range prev.nodes {
		if _, ok := c.nodes[k]; ok {
			continue
		}
		kind := registry.NodeDeregistered
		if old.st.ExpiresAt <= nowMs {
			kind = registry.NodeExpired
		}
		reg.Remove(old.st.ServiceName, old.st.NodeName, "", kind)
	}
	s.applied = c
	return failed
}

// poll applies the file if another instance changed it, and asks the
// writer for a write when a node in it has expired, when it is corrupt or
// missing, or when the store is down (the write is the probe that brings
// it back up).
func (s *SharedFile) poll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.polls++
	nowMs := s.o.Now().UnixMilli()
	defer func() {
		if s.down.Load() || s.applied.minExpires() <= nowMs {
			s.requestSweep()
		}
	}()
	fi, err := os.Stat(s.o.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if len(s.applied.nodes) > 0 {
			s.pollFailed(errors.New("the file is missing; the next write recreates it from this instance's tables"))
			s.requestSweep()
		}
		return
	case err != nil:
		s.pollFailed(err)
		return
	}
	if id := sharedIdentity(fi); id == s.seen && s.polls%sharedResyncPolls != 0 {
		return
	}
	data, id, err := sharedReadFile(s.o.Path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.pollFailed(err)
		}
		return
	}
	s.pollErr = ""
	if s.applied.sum != 0 && xxhash.Sum64(data) == s.applied.sum {
		s.seen = id
		return
	}
	c, invalid, err := decodeShared(data, s.applied)
	if err != nil {
		// The writer moves it aside under the lock; logged once here.
		if id != s.corruptAt {
			s.corruptAt = id
			s.o.Logger.Error().Err(err).Str("path", s.o.Path).Msg("shared state file is corrupt; the next write moves it aside and rewrites it")
		}
		s.requestSweep()
		return
	}
	if invalid > 0 {
		s.o.Logger.Warn().Int("nodes", invalid).Str("path", s.o.Path).Msg("shared state file: invalid nodes skipped")
	}
	s.reconcileLocked(c, nowMs)
	s.seen = id
}

func (s *SharedFile) requestSweep() {
	s.sweep.Store(true)
	s.kick()
}

func (s *SharedFile) pollFailed(err error) {
	if msg := err.Error(); msg != s.pollErr {
		s.pollErr = msg
		s.o.Logger.Warn().Err(err).Str("path", s.o.Path).Msg("shared state file: cannot poll; serving the last tables")
	}
}

// setStoreState reports transitions between writable and not.
func (s *SharedFile) setStoreState(err error) {
	s.smu.Lock()
	defer s.smu.Unlock()
	up := err == nil
	if up != s.down.Load() {
		return // no transition
	}
	s.down.Store(!up)
	if up {
		s.o.Logger.Info().Str("path", s.o.Path).Msg("shared state file is writable again")
	} else {
		s.o.Logger.Error().Err(err).Msg("shared state file cannot be written")
	}
	if s.o.OnStoreState != nil {
		s.o.OnStoreState(up, err)
	}
}

// lockLocked takes the flock on the lock file beside the state file,
// creating both the directory and the lock file when needed. It polls a
// non-blocking flock with a short backoff so that it can give up after
// LockTimeout or when ctx ends: a blocking flock(2) cannot be interrupted,
// and a stopped (not dead) peer would hold it forever.
func (s *SharedFile) lockLocked(ctx context.Context) error {
	deadline := time.Now().Add(s.o.LockTimeout)
	wait := 50 * time.Microsecond
	for {
		if s.lockf == nil {
			if err := os.MkdirAll(filepath.Dir(s.lockPath), 0o700); err != nil {
				return err
			}
			f, err := os.OpenFile(s.lockPath, os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				return err
			}
			s.lockf = f
		}
		ok, err := sharedFlock(s.lockf)
		if err != nil {
			s.closeLockFile()
			return fmt.Errorf("cannot lock %s: %w", s.lockPath, err)
		}
		if ok {
			// A lock on a lock file that was deleted (and maybe
			// recreated) since it was opened excludes nobody.
			if same, err := s.lockFileCurrent(); err == nil && same {
				return nil
			}
			s.closeLockFile()
			continue
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lock %s held by another process for more than %s", s.lockPath, s.o.LockTimeout)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for lock %s: %w", s.lockPath, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Millisecond)
	}
}

func (s *SharedFile) lockFileCurrent() (bool, error) {
	a, err := s.lockf.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Stat(s.lockPath)
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}

func (s *SharedFile) unlockLocked() error {
	if err := sharedUnflock(s.lockf); err != nil {
		s.closeLockFile() // closing the last descriptor drops the lock
		return err
	}
	return nil
}

func (s *SharedFile) closeLockFile() {
	if s.lockf != nil {
		s.lockf.Close()
		s.lockf = nil
	}
}
