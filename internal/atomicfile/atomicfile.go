// Package atomicfile replaces files so that a crash leaves either the old or
// the new content, never a torn file: the new content goes to a temporary
// file in the same directory, which is fsynced, renamed over the target, and
// the directory fsynced so the rename itself is durable.
package atomicfile

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// TempPattern is the os.CreateTemp pattern of the temporary files Write
// makes for path; a caller that owns the directory may remove leftovers of
// a crash with filepath.Glob(filepath.Join(dir, TempPattern(path))).
func TempPattern(path string) string { return filepath.Base(path) + ".tmp-*" }

// Options adjust Write. The zero value is the common case.
type Options struct {
	// BufferSize of the writer handed to the write function; default 64 KiB.
	BufferSize int
	// BeforeRename, when set, runs after the temporary file is complete and
	// before it replaces path; an error aborts the write (tests inject
	// failures with it).
	BeforeRename func(tmp string) error
}

// Write replaces path (mode 0600) with what write produces. On any error
// path is left as it was and the temporary file is removed.
func Write(path string, o Options, write func(w *bufio.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, TempPattern(path)) // created 0600
	if err != nil {
		return fmt.Errorf("cannot create a temporary file for %q: %w", path, err)
	}
	tmpName := tmp.Name()
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				tmp.Close()
			}
			os.Remove(tmpName)
		}
	}()
	if o.BufferSize <= 0 {
		o.BufferSize = 64 << 10
	}
	bw := bufio.NewWriterSize(tmp, o.BufferSize)
	if err := write(bw); err != nil {
		return fmt.Errorf("cannot write %q: %w", tmpName, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("cannot write %q: %w", tmpName, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("cannot fsync %q: %w", tmpName, err)
	}
	closed = true
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot close %q: %w", tmpName, err)
	}
	if o.BeforeRename != nil {
		if err := o.BeforeRename(tmpName); err != nil {
			return err
		}
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("cannot replace %q: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		// The new file is in place; only the durability of the rename is
		// in doubt, so there is nothing to undo.
		return fmt.Errorf("cannot fsync directory %q: %w", dir, err)
	}
	return nil
}

// syncDir fsyncs a directory so that a rename in it is durable. Windows
// cannot open directories for syncing and orders renames itself.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
