package persistence

import (
	"errors"
	"os"
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
	restored, skipped, err := Restore(f, reg, st, now)
	if err != nil || restored != 2 || skipped != 3 {
		t.Fatalf("Restore = %d restored, %d skipped, %v", restored, skipped, err)
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
	if r, s, err := Restore(f, reg, st, now); r != 0 || s != 0 || err != nil {
		t.Fatalf("Restore of missing file = %d, %d, %v", r, s, err)
	}
	os.WriteFile(f.Path(), []byte(`{"format":1,"nodes":[{"serviceName":`), 0o600)
	r, s, err := Restore(f, reg, st, now)
	var ce *CorruptError
	if r != 0 || s != 0 || !errors.As(err, &ce) {
		t.Fatalf("Restore of corrupt file = %d, %d, %v", r, s, err)
	}
	if reg.Len() != 0 || st.Generation() != gen {
		t.Fatal("something was applied from a missing or corrupt file")
	}
	// Without settings in the file (or without a store), settings are untouched.
	f.Save(State{Nodes: sampleState().Nodes})
	if _, _, err := Restore(f, reg, nil, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Restore(f, reg, st, now); err != nil || st.Generation() != gen {
		t.Fatalf("settings changed without saved settings: %v", err)
	}
}
