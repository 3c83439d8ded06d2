package persistence

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LockFileName is the file in the data directory that an instance holds an
// exclusive flock(2) on for as long as it runs, and that names it.
const LockFileName = "maxine.lock"

// DataDirLock is one instance's hold on its data directory. Two instances
// on one data dir would overwrite each other's state file, audit log and
// credentials; the second must refuse to start. The lock is flock(2) on
// <dir>/maxine.lock, which the kernel releases when the holder dies, kill
// -9 included, so a crash never leaves a stale lock behind (the file stays;
// it is only a name for the lock and a note of who held it).
//
// Every state mode locks its data dir: in the shared modes the registry is
// shared, but audit, credentials and logs stay per instance. The
// shared-file mode's shared state file lives wherever --shared-file says
// and is guarded by its own flock.
type DataDirLock struct {
	f *os.File
}

// DataDirLockedError is returned by LockDataDir when another process holds
// the data directory.
type DataDirLockedError struct {
	Dir    string
	Holder string // what the holder wrote into the lock file ("" if unknown)
}

func (e *DataDirLockedError) Error() string {
	holder := e.Holder
	if holder == "" {
		holder = "another process"
	}
	return fmt.Sprintf("the data dir %q is in use by %s; each instance needs a data dir of its own (MAXINE_DATA_DIR, --data-dir)", e.Dir, holder)
}

// LockDataDir creates dir (mode 0700) if needed and takes the exclusive
// lock on it without waiting, writing holder (who this process is: pid,
// instance id, addresses) into the lock file. It returns a
// *DataDirLockedError when another process holds it. On systems without
// flock(2) it returns an unlocked DataDirLock and no error.
func LockDataDir(dir, holder string) (*DataDirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create the data dir %q: %w", dir, err)
	}
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot open the data dir lock %q: %w", path, err)
	}
	ok, err := sharedFlock(f)
	switch {
	case noFlock(err):
		return &DataDirLock{f: f}, nil
	case err != nil:
		f.Close()
		return nil, fmt.Errorf("cannot lock the data dir %q: %w", dir, err)
	case !ok:
		b := make([]byte, 512)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		return nil, &DataDirLockedError{Dir: dir, Holder: strings.TrimSpace(string(b[:n]))}
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(holder+"\n"), 0) // only a note: the flock is the lock
	}
	return &DataDirLock{f: f}, nil
}

// Close releases the lock.
func (l *DataDirLock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
