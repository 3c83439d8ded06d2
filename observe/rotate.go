package observe

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
)

// RotatingFile is an append-only file rotated by size: when a write would
// take it past MaxBytes, the file is renamed to <name>.1 (the older
// <name>.1 to <name>.2, and so on up to Keep, the oldest removed) and a new
// <name> is started. It is what bounds the disk used by the log file and
// the audit file, which only ever grow otherwise.
//
// Rotation happens only at a line end, so that no line is split across two
// files: a Write may hold several lines, and a line longer than MaxBytes on
// its own gets a file of its own. RotatingFile is safe for concurrent use;
// it must not be copied.
type RotatingFile struct {
	path string
	max  int64
	keep int

	mu   sync.Mutex
	f    *os.File
	size int64
}

// OpenRotatingFile opens path for appending (creating it, mode 0600),
// rotating it by maxBytes and keeping keep rotated files. maxBytes and
// keep must be positive.
func OpenRotatingFile(path string, maxBytes int64, keep int) (*RotatingFile, error) {
	if maxBytes <= 0 || keep <= 0 {
		return nil, fmt.Errorf("rotating file %q: max bytes and kept files must be positive", path)
	}
	r := &RotatingFile{path: path, max: maxBytes, keep: keep}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *RotatingFile) open() error {
	f, err := os.OpenFile(r.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("cannot open %q: %w", r.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("cannot stat %q: %w", r.path, err)
	}
	r.f, r.size = f, st.Size()
	return nil
}

// Write appends p, rotating first wherever the next whole line would not
// fit. It returns len(p) when everything was written.
func (r *RotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, os.ErrClosed
	}
	n := 0
	for len(p) > 0 {
		room := r.max - r.size
		if int64(len(p)) <= room {
			m, err := r.f.Write(p)
			r.size += int64(m)
			return n + m, err
		}
		// The whole lines that fit; none when not even the first does.
		cut := 0
		if room > 0 {
			cut = bytes.LastIndexByte(p[:room], '\n') + 1
		}
		if cut == 0 && r.size == 0 {
			// A fresh file and still no room: the first line is longer
			// than max and is written whole.
			if cut = bytes.IndexByte(p, '\n') + 1; cut == 0 {
				cut = len(p)
			}
		}
		if cut > 0 {
			m, err := r.f.Write(p[:cut])
			r.size += int64(m)
			n += m
			if err != nil {
				return n, err
			}
			p = p[cut:]
		}
		if len(p) > 0 {
			if err := r.rotateLocked(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// rotateLocked shifts <name>.i to <name>.i+1 (dropping <name>.keep) and
// starts a new, empty <name>. r.mu must be held.
func (r *RotatingFile) rotateLocked() error {
	if err := r.f.Close(); err != nil {
		r.f = nil
		return fmt.Errorf("cannot close %q for rotation: %w", r.path, err)
	}
	r.f = nil
	for i := r.keep - 1; i >= 1; i-- {
		err := os.Rename(r.path+"."+strconv.Itoa(i), r.path+"."+strconv.Itoa(i+1))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cannot rotate %q: %w", r.path, err)
		}
	}
	if err := os.Rename(r.path, r.path+".1"); err != nil {
		return fmt.Errorf("cannot rotate %q: %w", r.path, err)
	}
	return r.open()
}

// Sync commits the current file to stable storage.
func (r *RotatingFile) Sync() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return os.ErrClosed
	}
	return r.f.Sync()
}

// Close closes the current file. Writes after Close fail.
func (r *RotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
