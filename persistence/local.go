// Package persistence keeps Maxine's registry and runtime settings across
// restarts. In the local state mode (SPEC 6) the state lives in one JSON file,
// <data dir>/registry-state.json: a Snapshotter rewrites it atomically at
// most once per interval when something changed, Flush writes it on graceful
// shutdown, and Restore loads it into a fresh Registry and config.Store
// before the listeners accept traffic. A corrupt file is moved aside, kept
// for the operator and reported; it never stops the process.
package persistence

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/internal/atomicfile"
	"github.com/maxine-io/maxine/registry"
)

// FileName is the name of the state file inside the data directory.
const FileName = "registry-state.json"

// Format is the state file format this package writes and reads. A file with
// any other format is treated as corrupt.
const Format = 1

// tmpPattern names temporary files (os.CreateTemp replaces the '*'). They
// share the directory with the target so the final rename is atomic.
var tmpPattern = atomicfile.TempPattern(FileName)

// State is what the local store persists.
type State struct {
	Format   int                  `json:"format"`  // always Format when written by Save
	SavedAt  int64                `json:"savedAt"` // ms since the Unix epoch
	Settings *config.Settings     `json:"settings,omitempty"`
	Nodes    []registry.NodeState `json:"nodes"`

	// Filled by Load, never saved: the entries of a well-formed file that
	// were left out because they are invalid on their own (a node of the
	// wrong shape or failing validation, settings out of range). One bad
	// entry costs that entry, not the whole file.
	Invalid     []InvalidEntry `json:"-"`
	SettingsErr error          `json:"-"` // why Settings is nil although the file had settings
}

// InvalidEntry is one node entry of the state file that Load skipped, with
// why: it did not decode as a node, or failed registry validation.
type InvalidEntry struct {
	Index         int // position in the file's nodes array
	Service, Node string
	Err           error
}

// CorruptError reports a state file that could not be decoded as a whole
// (truncated, not JSON, unknown format, nodes not an array). The file was renamed to
// Backup so that it is never overwritten; the caller reports the error and
// starts empty. It is not fatal.
type CorruptError struct {
	Path   string // the state file
	Backup string // where the corrupt file now is
	Err    error  // why it was rejected
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("state file %q is corrupt (%v); it was moved to %q and the state starts empty", e.Path, e.Err, e.Backup)
}

// Unwrap returns the decoding error.
func (e *CorruptError) Unwrap() error { return e.Err }

// LocalFile is the state file <dir>/registry-state.json. It assumes that one
// process owns the directory: Load removes temporary files that a crashed
// Save left behind. Save and Load may be called from several goroutines; the
// Snapshotter serializes its own writes.
type LocalFile struct {
	dir  string
	path string

	// beforeRename, when set (tests only), runs after the temporary file is
	// written and synced and may fail the Save just before the rename.
	beforeRename func(tmp string) error
}

// NewLocalFile returns the state file in dir. The directory is created
// (mode 0700) by the first Save, not here.
func NewLocalFile(dir string) *LocalFile {
	return &LocalFile{dir: dir, path: filepath.Join(dir, FileName)}
}

// Path returns the state file's path.
func (f *LocalFile) Path() string { return f.path }

// Load reads the state. A missing file gives (State{}, nil). Nodes holds the
// valid node entries only; invalid entries and invalid settings are left
// out and reported in Invalid and SettingsErr. A corrupt or truncated file is renamed to registry-state.json.corrupt-<UTC timestamp>
// and Load returns (State{}, *CorruptError). Any other error (the file
// cannot be read, or a corrupt file cannot be moved aside) is returned as
// is and the file is left where it was: the caller must not go on to
// overwrite it.
func (f *LocalFile) Load() (State, error) {
	f.removeStaleTemps()
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("cannot read state file %q: %w", f.path, err)
	}
	s, derr := decodeState(data)
	if derr == nil {
		return s, nil
	}
	backup, err := f.moveAside()
	if err != nil {
		return State{}, fmt.Errorf("state file %q is corrupt (%v) and cannot be moved aside: %w", f.path, derr, err)
	}
	return State{}, &CorruptError{Path: f.path, Backup: backup, Err: derr}
}

// fileState is the state file's outline: the header must decode, the
// settings and each node are decoded on their own so that one bad entry
// is skipped rather than failing the whole file.
type fileState struct {
	Format   int               `json:"format"`
	SavedAt  int64             `json:"savedAt"`
	Settings json.RawMessage   `json:"settings"`
	Nodes    []json.RawMessage `json:"nodes"`
}

func decodeState(data []byte) (State, error) {
	var file fileState
	// Unmarshal validates the whole input first, so truncated files and
	// trailing garbage are rejected before anything is decoded.
	if err := json.Unmarshal(data, &file); err != nil {
		return State{}, err
	}
	if file.Format != Format {
		return State{}, fmt.Errorf("unknown format %d (want %d)", file.Format, Format)
	}
	s := State{Format: file.Format, SavedAt: file.SavedAt, Nodes: make([]registry.NodeState, 0, len(file.Nodes))}
	if len(file.Settings) > 0 && string(file.Settings) != "null" {
		var st config.Settings
		if err := json.Unmarshal(file.Settings, &st); err != nil {
			s.SettingsErr = fmt.Errorf("settings: %w", err)
		} else if err := checkSettings(&st); err != nil {
			s.SettingsErr = err
		} else {
			s.Settings = &st
		}
	}
	for i, raw := range file.Nodes {
		var n registry.NodeState
		if err := json.Unmarshal(raw, &n); err != nil {
			// Name the node if its names at least decode.
			var id struct {
				ServiceName string `json:"serviceName"`
				NodeName    string `json:"nodeName"`
			}
			json.Unmarshal(raw, &id)
			s.Invalid = append(s.Invalid, InvalidEntry{Index: i, Service: id.ServiceName, Node: id.NodeName, Err: err})
			continue
		}
		if err := n.Registration.Validate(); err != nil {
			s.Invalid = append(s.Invalid, InvalidEntry{Index: i, Service: n.ServiceName, Node: n.NodeName, Err: err})
			continue
		}
		s.Nodes = append(s.Nodes, n)
	}
	return s, nil
}

// checkSettings rejects enum codes out of range (config's Enum and String
// methods index tables with them and would panic later on the data plane)
// and a heartBeatTimeout that no registration could use.
func checkSettings(s *config.Settings) error {
	switch {
	case s.Strategy > config.LeastRequest:
		return fmt.Errorf("settings: unknown serverSelectionStrategy %d", s.Strategy)
	case s.DiscoveryMode > config.Proxy:
		return fmt.Errorf("settings: unknown discoveryMode %d", s.DiscoveryMode)
	case s.LogFormat > config.PlainLogs:
		return fmt.Errorf("settings: unknown logFormat %d", s.LogFormat)
	case s.Port < 0 || s.Port > 65535:
		return fmt.Errorf("settings: port %d out of range", s.Port)
	case s.HeartBeatTimeout < 1 || s.HeartBeatTimeout > registry.MaxTimeOutSeconds:
		// 0 would make every registration without timeOut invalid.
		return fmt.Errorf("settings: heartBeatTimeout %d is not 1-%d seconds", s.HeartBeatTimeout, registry.MaxTimeOutSeconds)
	}
	return nil
}

// moveAside renames the state file to a backup name that does not exist yet,
// so an earlier backup is never replaced either.
func (f *LocalFile) moveAside() (string, error) {
	base := f.path + ".corrupt-" + time.Now().UTC().Format("20060102T150405.000Z")
	for i := 0; i < 100; i++ {
		backup := base
		if i > 0 {
			backup += "-" + strconv.Itoa(i)
		}
		if _, err := os.Lstat(backup); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		if err := os.Rename(f.path, backup); err != nil {
			return "", err
		}
		return backup, nil
	}
	return "", fmt.Errorf("too many backups named %s*", base)
}

// keepCopy copies the state file to registry-state.json.invalid-<UTC
// timestamp> (a name not taken yet), so that entries Restore skipped are
// not lost when the next Save rewrites the file without them.
func (f *LocalFile) keepCopy() (string, error) {
	data, err := os.ReadFile(f.path)
	if err != nil {
		return "", err
	}
	base := f.path + ".invalid-" + time.Now().UTC().Format("20060102T150405.000Z")
	for i := 0; i < 100; i++ {
		backup := base
		if i > 0 {
			backup += "-" + strconv.Itoa(i)
		}
		out, err := os.OpenFile(backup, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		_, err = out.Write(data)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(backup)
			return "", err
		}
		return backup, nil
	}
	return "", fmt.Errorf("too many copies named %s*", base)
}

// removeStaleTemps deletes temporary files left by a Save that was
// interrupted by a crash. Errors are ignored: the files are only clutter.
func (f *LocalFile) removeStaleTemps() {
	names, _ := filepath.Glob(filepath.Join(filepath.Clean(f.dir), tmpPattern))
	for _, name := range names {
		os.Remove(name)
	}
}

// Save writes s atomically: a temporary file in the same directory is
// written, fsynced and renamed over the state file, then the directory is
// fsynced so the rename itself survives a power loss. Readers see either the
// old file or the new one, never a mix; on any error the old file is left
// as it was and the temporary file is removed. Save sets s.Format to Format
// and fills s.SavedAt with the current time when it is zero.
func (f *LocalFile) Save(s State) (err error) {
	s.Format = Format
	if s.SavedAt == 0 {
		s.SavedAt = time.Now().UnixMilli()
	}
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return fmt.Errorf("cannot create state directory %q: %w", f.dir, err)
	}
	return atomicfile.Write(f.path, atomicfile.Options{BufferSize: 256 << 10, BeforeRename: f.beforeRename},
		func(w *bufio.Writer) error { return encodeState(w, &s) })
}

// encodeState streams s as JSON, one node per line, so that the encoder
// never holds the whole document in memory: a single json.Marshal of 100,000
// nodes would build a second copy of the file in a buffer first.
func encodeState(w *bufio.Writer, s *State) error {
	w.WriteString(`{"format":`)
	w.WriteString(strconv.Itoa(s.Format))
	w.WriteString(`,"savedAt":`)
	w.WriteString(strconv.FormatInt(s.SavedAt, 10))
	if s.Settings != nil {
		b, err := json.Marshal(s.Settings)
		if err != nil {
			return err
		}
		w.WriteString(`,"settings":`)
		w.Write(b)
	}
	w.WriteString(`,"nodes":[`)
	enc := json.NewEncoder(w) // Encode ends each node with '\n'
	for i := range s.Nodes {
		if i == 0 {
			w.WriteByte('\n')
		} else {
			w.WriteByte(',')
		}
		if err := enc.Encode(&s.Nodes[i]); err != nil {
			return err
		}
	}
	_, err := w.WriteString("]}\n")
	return err // bufio.Writer errors are sticky: this reports any earlier one
}
