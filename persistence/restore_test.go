package persistence

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/registry"
)

func TestRestore(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ms := now.UnixMilli()
	f := NewLocalFile(t.TempDir())
	saved := sampleState()
	nodes := saved.Nodes
	nodes[0].RegisteredAt, nodes[0].ExpiresAt = ms-60_000, ms-1 // expired
	nodes[1].RegisteredAt, nodes[1].ExpiresAt = ms-2_000, ms+28_000
	nodes[2].RegisteredAt, nodes[2].ExpiresAt = ms-3_000, ms+86_000_000
	nodes = append(nodes, registry.NodeState{ // expires exactly now: expired
		Registration: registry.Registration{ServiceName: "orders", NodeName: "c", HostName: "c", Weight: 1, TimeOut: 5},
		RegisteredAt: ms - 5_500, ExpiresAt: ms,
	}, registry.NodeState{ // fails validation
		Registration: registry.Registration{ServiceName: "orders", NodeName: "bad name", HostName: "h", Weight: 1, TimeOut: 5},
		RegisteredAt: ms, ExpiresAt: ms + 5_000,
	})
	saved.Nodes = nodes
	if err := f.Save(saved); err != nil {
		t.Fatal(err)
	}

	reg := registry.New(registry.Options{Now: func() time.Time { return now }})
	st := config.New(config.Defaults())
	rep, err := Restore(f, reg, st, now)
	if err != nil || rep.Restored != 2 || rep.Skipped != 2 || len(rep.Invalid) != 1 || rep.Invalid[0].Node != "bad name" {
		t.Fatalf("Restore = %+v, %v", rep, err)
	}
	if got := *st.Load(); got != *saved.Settings {
		t.Fatalf("settings = %+v, want %+v", got, *saved.Settings)
	}
	if s := reg.Snapshot("orders"); s == nil || len(s.Nodes) != 10 || s.Nodes[0].Parent != "b" {
		t.Fatalf("orders snapshot = %+v", s)
	}
	if s := reg.Snapshot("orders"); s.Nodes[0].Metadata["zone"] != "eu-1" || s.Nodes[0].Address != "https://b.example/api/v1" {
		t.Fatalf("orders b = %+v", s.Nodes[0])
	}
	u := reg.Snapshot("users")
	if u == nil || len(u.Nodes) != 1 || u.Nodes[0].RegisteredAt() != ms-3_000 || u.Nodes[0].Address != "https://users.internal" {
		t.Fatalf("users snapshot = %+v", u)
	}
	// Export gives back the saved registeredAt and deadlines.
	byNode := map[string]registry.NodeState{}
	for _, n := range reg.Export() {
		byNode[n.NodeName] = n
	}
	if len(byNode) != 2 || byNode["b"].RegisteredAt != ms-2_000 || byNode["b"].ExpiresAt != ms+28_000 ||
		byNode["u-1"].ExpiresAt != ms+86_000_000 {
		t.Fatalf("exported after restore: %+v", byNode)
	}
	// Expiry still works on restored nodes.
	if n := reg.ExpireDue(now.Add(29 * time.Second)); n != 1 {
		t.Fatalf("expired %d, want 1", n)
	}
}

func TestRestoreMissingAndCorrupt(t *testing.T) {
	now := time.Now()
	f := NewLocalFile(t.TempDir())
	reg := registry.New(registry.Options{})
	st := config.New(config.Defaults())
	gen := st.Generation()
	if rep, err := Restore(f, reg, st, now); rep.Restored != 0 || rep.Skipped != 0 || err != nil {
		t.Fatalf("Restore of missing file = %+v, %v", rep, err)
	}
	os.WriteFile(f.Path(), []byte(`{"format":1,"nodes":[{"serviceName":`), 0o600)
	rep, err := Restore(f, reg, st, now)
	var ce *CorruptError
	if rep.Restored != 0 || rep.Skipped != 0 || !errors.As(err, &ce) {
		t.Fatalf("Restore of corrupt file = %+v, %v", rep, err)
	}
	if reg.Len() != 0 || st.Generation() != gen {
		t.Fatal("something was applied from a missing or corrupt file")
	}
	// Without settings in the file (or without a store), settings are untouched.
	f.Save(State{Nodes: sampleState().Nodes})
	if _, err := Restore(f, reg, nil, now); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(f, reg, st, now); err != nil || st.Generation() != gen {
		t.Fatalf("settings changed without saved settings: %v", err)
	}
}

// One bad entry in a state file costs that entry only: a node of the wrong
// type, a node that fails validation and invalid saved settings are each
// skipped and reported, every other node is restored, and a copy of the
// file is kept for the operator before the next write drops them.
func TestRestoreSkipsOnlyInvalidEntries(t *testing.T) {
	now := time.Now()
	ms := now.UnixMilli()
	f := NewLocalFile(t.TempDir())
	good := func(node string) string {
		return `{"serviceName":"orders","nodeName":"` + node + `","hostName":"h","timeOut":5,"weight":1,"registeredAt":` +
			strconv.FormatInt(ms, 10) + `,"expiresAt":` + strconv.FormatInt(ms+5000, 10) + `}`
	}
	content := `{"format":1,"savedAt":1,"settings":{"heartBeatTimeout":0,"serverSelectionStrategy":1},"nodes":[` + "\n" +
		good("a") + ",\n" +
		`{"serviceName":"orders","nodeName":"typed","hostName":"h","port":"x","timeOut":5,"weight":1,"expiresAt":` + strconv.FormatInt(ms+5000, 10) + "},\n" +
		`{"serviceName":"orders","nodeName":"heavy","hostName":"h","timeOut":5,"weight":0,"expiresAt":` + strconv.FormatInt(ms+5000, 10) + "},\n" +
		`17,` + "\n" +
		good("b") + "]}\n"
	if err := os.WriteFile(f.Path(), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := registry.New(registry.Options{})
	st := config.New(config.Defaults())
	rep, err := Restore(f, reg, st, now)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if rep.Restored != 2 || reg.Len() != 2 || len(rep.Invalid) != 3 {
		t.Fatalf("report %+v, registry has %d nodes; want 2 restored and 3 invalid", rep, reg.Len())
	}
	if rep.Invalid[0].Node != "typed" || rep.Invalid[1].Node != "heavy" || rep.Invalid[0].Index != 1 || rep.Invalid[2].Index != 3 ||
		rep.Invalid[1].Err == nil || !strings.Contains(rep.Invalid[1].Err.Error(), "weight") {
		t.Fatalf("invalid entries = %+v", rep.Invalid)
	}
	// heartBeatTimeout 0 would make every registration without timeOut
	// fail: the saved settings are refused as a whole, defaults kept.
	if rep.Settings == nil || !strings.Contains(rep.Settings.Error(), "heartBeatTimeout") || *st.Load() != config.Defaults() {
		t.Fatalf("settings error %v, settings now %+v", rep.Settings, *st.Load())
	}
	if rep.Backup == "" {
		t.Fatal("no copy of a file with skipped entries was kept")
	}
	if b, err := os.ReadFile(rep.Backup); err != nil || string(b) != content {
		t.Fatalf("backup %q: %v", rep.Backup, err)
	}
	if b, err := os.ReadFile(f.Path()); err != nil || string(b) != content {
		t.Fatal("the state file itself was moved or changed")
	}
}
