package persistence

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/registry"
)

// sampleState covers the fields that must survive a round trip: weights,
// metadata (including characters JSON must escape), ssl, paths, ports.
func sampleState() State {
	set := config.Defaults()
	set.Strategy = config.RendezvousHashing
	set.DiscoveryMode = config.Proxy
	set.LogFormat = config.PlainLogs
	set.HeartBeatTimeout = 9
	return State{
		SavedAt:  1767225600000,
		Settings: &set,
		Nodes: []registry.NodeState{
			{
				Registration: registry.Registration{ServiceName: "orders", NodeName: "a", HostName: "10.0.0.1", Port: 8080, Weight: 3, TimeOut: 5},
				RegisteredAt: 1767225600000, ExpiresAt: 1767225605500,
			},
			{
				Registration: registry.Registration{
					ServiceName: "orders", NodeName: "b", HostName: "https://b.example", SSL: true,
					Path: "/api/v1", TimeOut: 30, Weight: 10, HealthCheckPath: "/health",
					Metadata: map[string]string{"zone": "eu-1", "quote": `"<&>\` + "\n\u2028é"},
				},
				RegisteredAt: 1767225601000, ExpiresAt: 1767225631500,
			},
			{
				Registration: registry.Registration{ServiceName: "users", NodeName: "u-1", HostName: "users.internal", SSL: true, Weight: 1, TimeOut: 86400},
				RegisteredAt: 1767225602000, ExpiresAt: 1767312002500,
			},
		},
	}
}

// dirEntries returns the names in dir, failing the test on error.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// noTemps fails the test if a temporary file of Save is left in dir.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	for _, n := range dirEntries(t, dir) {
		if strings.HasPrefix(n, FileName+".tmp-") {
			t.Fatalf("temporary file left behind: %s (dir: %v)", n, dirEntries(t, dir))
		}
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	f := NewLocalFile(dir)
	if f.Path() != filepath.Join(dir, FileName) {
		t.Fatalf("Path = %q", f.Path())
	}
	// Missing file (and missing directory): empty state, no error.
	s, err := f.Load()
	if err != nil || !reflect.DeepEqual(s, State{}) {
		t.Fatalf("Load of missing file = %+v, %v", s, err)
	}
	want := sampleState()
	if err := f.Save(want); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode = %v, %v", fi.Mode(), err)
	}
	got, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	want.Format = Format
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	noTemps(t, dir)

	// The file is one JSON document, identical to what encoding/json makes.
	data, err := os.ReadFile(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	std, _ := json.Marshal(want)
	var a, b any
	if err := json.Unmarshal(data, &a); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(std, &b)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("streamed encoding differs from json.Marshal:\n%s\n%s", data, std)
	}

	// Empty state: nodes is [] (not null), no settings, SavedAt filled.
	if err := f.Save(State{}); err != nil {
		t.Fatal(err)
	}
	got, err = f.Load()
	if err != nil || got.Format != Format || got.SavedAt == 0 || got.Settings != nil || len(got.Nodes) != 0 {
		t.Fatalf("empty state = %+v, %v", got, err)
	}
	noTemps(t, dir)
}

func checkCorrupt(t *testing.T, f *LocalFile, original []byte) {
	t.Helper()
	s, err := f.Load()
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("Load = %+v, %v; want *CorruptError", s, err)
	}
	if !reflect.DeepEqual(s, State{}) {
		t.Fatalf("state from a corrupt file: %+v", s)
	}
	if ce.Path != f.Path() || ce.Err == nil || !strings.HasPrefix(filepath.Base(ce.Backup), FileName+".corrupt-") ||
		filepath.Dir(ce.Backup) != filepath.Dir(f.Path()) {
		t.Fatalf("CorruptError = %+v", ce)
	}
	if !strings.Contains(err.Error(), ce.Backup) {
		t.Fatalf("message does not name the backup: %v", err)
	}
	backup, rerr := os.ReadFile(ce.Backup)
	if rerr != nil || !bytes.Equal(backup, original) {
		t.Fatalf("backup content differs (%v)", rerr)
	}
	if _, err := os.Stat(f.Path()); !os.IsNotExist(err) {
		t.Fatalf("state file still there: %v", err)
	}
	// Loading again finds nothing; a later Save works and keeps the backup.
	if s, err := f.Load(); err != nil || !reflect.DeepEqual(s, State{}) {
		t.Fatalf("Load after move = %+v, %v", s, err)
	}
	if err := f.Save(sampleState()); err != nil {
		t.Fatal(err)
	}
	if s, err := f.Load(); err != nil || len(s.Nodes) != 3 {
		t.Fatalf("Load after Save = %d nodes, %v", len(s.Nodes), err)
	}
	if b, _ := os.ReadFile(ce.Backup); !bytes.Equal(b, original) {
		t.Fatal("backup changed by a later Save")
	}
}

func TestLoadTruncatedFile(t *testing.T) {
	dir := t.TempDir()
	f := NewLocalFile(dir)
	if err := f.Save(sampleState()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	half := data[:len(data)/2]
	if err := os.WriteFile(f.Path(), half, 0o600); err != nil {
		t.Fatal(err)
	}
	checkCorrupt(t, f, half)
	noTemps(t, dir)
}

func TestLoadCorruptFiles(t *testing.T) {
	valid, _ := json.Marshal(sampleState())
	cases := map[string][]byte{
		"garbage":          []byte("\x00\x01 this is not json \xff"),
		"empty":            {},
		"null":             []byte("null"),
		"array":            []byte(`[1,2,3]`),
		"no format":        []byte(`{"savedAt":1,"nodes":[]}`),
		"unknown format":   []byte(`{"format":2,"savedAt":1,"nodes":[]}`),
		"format 1 trailer": append([]byte(`{"format":1,"nodes":[]}`), " garbage"...),
		"wrong type":       []byte(`{"format":1,"nodes":{"a":1}}`),
		"format 0 valid":   valid, // a well-formed document without a format
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			f := NewLocalFile(dir)
			if err := os.WriteFile(f.Path(), content, 0o600); err != nil {
				t.Fatal(err)
			}
			checkCorrupt(t, f, content)
		})
	}
}

func TestCorruptBackupsNeverReplaced(t *testing.T) {
	dir := t.TempDir()
	f := NewLocalFile(dir)
	var backups []string
	for i := 0; i < 3; i++ {
		content := []byte("garbage " + string(rune('a'+i)))
		os.WriteFile(f.Path(), content, 0o600)
		_, err := f.Load()
		var ce *CorruptError
		if !errors.As(err, &ce) {
			t.Fatalf("Load = %v", err)
		}
		backups = append(backups, ce.Backup)
	}
	for i, b := range backups {
		got, err := os.ReadFile(b)
		if err != nil || string(got) != "garbage "+string(rune('a'+i)) {
			t.Fatalf("backup %d (%s) = %q, %v", i, b, got, err)
		}
	}
}

func TestLoadUnreadableIsNotCorrupt(t *testing.T) {
	dir := t.TempDir()
	f := NewLocalFile(dir)
	// A directory where the file should be cannot be read; it is not
	// "corrupt" and must not be moved.
	if err := os.Mkdir(f.Path(), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := f.Load()
	var ce *CorruptError
	if err == nil || errors.As(err, &ce) {
		t.Fatalf("Load = %v", err)
	}
	if fi, err := os.Stat(f.Path()); err != nil || !fi.IsDir() {
		t.Fatalf("state path moved: %v", err)
	}
}

func TestLoadRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	f := NewLocalFile(dir)
	stale := filepath.Join(dir, FileName+".tmp-12345")
	os.WriteFile(stale, []byte(`{"format":1`), 0o600)
	other := filepath.Join(dir, "unrelated.json")
	os.WriteFile(other, []byte(`x`), 0o600)
	if _, err := f.Load(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale temp not removed: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("unrelated file removed: %v", err)
	}
}

func TestFailedSaveKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	f := NewLocalFile(dir)
	if err := f.Save(sampleState()); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(f.Path())
	boom := errors.New("injected failure before rename")
	var sawTemp bool
	f.beforeRename = func(tmp string) error {
		_, err := os.Stat(tmp)
		sawTemp = err == nil
		return boom
	}
	err := f.Save(State{Nodes: sampleState().Nodes[:1]})
	if !errors.Is(err, boom) || !sawTemp {
		t.Fatalf("Save = %v (temp seen: %v)", err, sawTemp)
	}
	after, _ := os.ReadFile(f.Path())
	if !bytes.Equal(before, after) {
		t.Fatal("old file changed by a failed Save")
	}
	noTemps(t, dir)
	if s, err := f.Load(); err != nil || len(s.Nodes) != 3 {
		t.Fatalf("Load after failed Save = %d nodes, %v", len(s.Nodes), err)
	}
}

func TestSaveFailsOnRealFilesystemErrors(t *testing.T) {
	t.Run("target is a directory", func(t *testing.T) {
		dir := t.TempDir()
		f := NewLocalFile(dir)
		if err := os.Mkdir(f.Path(), 0o700); err != nil {
			t.Fatal(err)
		}
		marker := filepath.Join(f.Path(), "keep")
		os.WriteFile(marker, []byte("x"), 0o600)
		if err := f.Save(sampleState()); err == nil {
			t.Fatal("Save over a directory succeeded")
		}
		if b, err := os.ReadFile(marker); err != nil || string(b) != "x" {
			t.Fatalf("directory content disturbed: %v", err)
		}
		noTemps(t, dir)
	})
	t.Run("dir is a file", func(t *testing.T) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "data")
		os.WriteFile(dir, []byte("not a dir"), 0o600)
		f := NewLocalFile(dir)
		if err := f.Save(sampleState()); err == nil {
			t.Fatal("Save into a file succeeded")
		}
		if b, _ := os.ReadFile(dir); string(b) != "not a dir" {
			t.Fatal("file disturbed")
		}
		if got := dirEntries(t, parent); len(got) != 1 {
			t.Fatalf("left behind: %v", got)
		}
	})
}

// Settings out of range are refused on their own (they would index enum
// tables and panic on the data plane, or make every registration without
// timeOut invalid); the file is not corrupt for them.
func TestLoadRefusesBadSettingsOnly(t *testing.T) {
	for name, settings := range map[string]string{
		"bad strategy":      `{"serverSelectionStrategy":7,"heartBeatTimeout":5}`,
		"bad log format":    `{"logFormat":2,"heartBeatTimeout":5}`,
		"zero heartbeat":    `{"heartBeatTimeout":0}`,
		"huge heartbeat":    `{"heartBeatTimeout":86401}`,
		"settings not JSON": `"fast"`,
	} {
		t.Run(name, func(t *testing.T) {
			f := NewLocalFile(t.TempDir())
			content := `{"format":1,"settings":` + settings + `,"nodes":[]}`
			os.WriteFile(f.Path(), []byte(content), 0o600)
			s, err := f.Load()
			if err != nil || s.Settings != nil || s.SettingsErr == nil {
				t.Fatalf("Load = %+v, %v", s, err)
			}
		})
	}
}
