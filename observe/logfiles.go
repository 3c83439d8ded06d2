package observe

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrBadLogName is returned by OpenLogFile for a name that is not a plain
// file name of a regular file directly inside the log directory.
var ErrBadLogName = errors.New("invalid log file name")

// LogFile describes one downloadable log file.
type LogFile struct {
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"modTime"`
}

// ListLogFiles lists the regular files directly in dir, sorted by name.
// Subdirectories, symlinks and other special files are left out, so that
// nothing listed can lead outside dir. A dir that is "" or does not exist
// has no log files.
func ListLogFiles(dir string) ([]LogFile, error) {
	if dir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("cannot list log directory %q: %w", dir, err)
	}
	files := make([]LogFile, 0, len(entries))
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed since ReadDir, e.g. by log rotation
		}
		files = append(files, LogFile{Name: e.Name(), Size: info.Size(), ModTime: info.ModTime()})
	}
	return files, nil
}

// OpenLogFile opens for reading the regular file called name directly in
// dir. name comes from an HTTP request, so anything but a plain file name
// is refused with ErrBadLogName: separators, "..", absolute or volume
// paths, NUL, and any name that is a symlink or not a regular file, even
// one resolving inside dir (ListLogFiles never lists those). The open goes
// through os.Root, which cannot leave dir even if the directory changes
// between the checks and the open, and the opened file is checked to be
// the one that was inspected. A missing file gives an error wrapping
// fs.ErrNotExist.
func OpenLogFile(dir, name string) (*os.File, error) {
	if dir == "" || !plainFileName(name) {
		return nil, ErrBadLogName
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot open log directory %q: %w", dir, err)
	}
	defer root.Close()
	before, err := root.Lstat(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("log file %q: %w", name, fs.ErrNotExist)
		}
		return nil, ErrBadLogName
	}
	if !before.Mode().IsRegular() {
		return nil, ErrBadLogName
	}
	f, err := root.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("log file %q: %w", name, fs.ErrNotExist)
		}
		return nil, ErrBadLogName
	}
	after, err := f.Stat()
	if err != nil || !after.Mode().IsRegular() || !os.SameFile(before, after) {
		// Replaced (by a symlink, say) between Lstat and Open.
		f.Close()
		return nil, ErrBadLogName
	}
	return f, nil
}

// plainFileName reports whether name is a single path element that cannot
// name anything but an entry of the directory it is looked up in.
func plainFileName(name string) bool {
	return name != "" &&
		!strings.ContainsAny(name, "/\\\x00") &&
		!strings.Contains(name, "..") &&
		name != "." &&
		!filepath.IsAbs(name) &&
		filepath.VolumeName(name) == "" &&
		filepath.Base(name) == name
}
