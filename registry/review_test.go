package registry

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Tests for the defects found in the review of issue 11. Each failed
// against the code before its fix.

// A service emptied and registered again must not reuse a snapshot
// version: the gateway takes an equal version to mean the same snapshot.
func TestVersionNeverReusedAfterServiceEmptied(t *testing.T) {
	r := New(Options{})
	if _, err := r.Register(reg("orders", "a", 1, 5)); err != nil {
		t.Fatal(err)
	}
	v1 := r.Snapshot("orders").Version
	if !r.Deregister("orders", "a") {
		t.Fatal("deregister a")
	}
	if r.Snapshot("orders") != nil {
		t.Fatal("service should be gone")
	}
	if _, err := r.Register(reg("orders", "b", 1, 5)); err != nil {
		t.Fatal(err)
	}
	v3 := r.Snapshot("orders").Version
	if v3 <= v1 {
		t.Fatalf("version after refill = %d, first version %d: reused", v3, v1)
	}
	// Versions are unique across services too.
	if _, err := r.Register(reg("users", "a", 1, 5)); err != nil {
		t.Fatal(err)
	}
	if u := r.Snapshot("users").Version; u == v3 || u == v1 {
		t.Fatalf("users version %d collides with orders' %d/%d", u, v1, v3)
	}
}

// Each event's Version is the version of the snapshot it produced.
func TestEventVersionIsSnapshotVersion(t *testing.T) {
	r := New(Options{})
	sub := r.Subscribe(0)
	for _, n := range []string{"a", "b"} {
		if _, err := r.Register(reg("orders", n, 1, 5)); err != nil {
			t.Fatal(err)
		}
	}
	evs, _ := sub.Take(nil)
	if len(evs) != 2 || evs[1].Version != r.Snapshot("orders").Version || evs[0].Version >= evs[1].Version {
		t.Fatalf("events %+v, snapshot version %d", evs, r.Snapshot("orders").Version)
	}
}

// A changed metadata value is a new registration (NodeUpdated, a new
// snapshot carrying it), not a plain heartbeat.
func TestChangedMetadataIsAnUpdate(t *testing.T) {
	r := New(Options{})
	a := reg("orders", "a", 1, 5)
	a.Metadata = map[string]string{"zone": "eu-1", "tier": "gold"}
	if _, err := r.Register(a); err != nil {
		t.Fatal(err)
	}
	same := reg("orders", "a", 1, 5)
	same.Metadata = map[string]string{"tier": "gold", "zone": "eu-1"}
	if res, _ := r.Register(same); res.Kind != NodeHeartbeat {
		t.Fatalf("same metadata: kind %v, want heartbeat", res.Kind)
	}
	b := reg("orders", "a", 1, 5)
	b.Metadata = map[string]string{"zone": "eu-2", "tier": "gold"}
	res, err := r.Register(b)
	if err != nil || res.Kind != NodeUpdated {
		t.Fatalf("changed value: kind %v err %v, want updated", res.Kind, err)
	}
	if got := r.Snapshot("orders").Nodes[0].Metadata["zone"]; got != "eu-2" {
		t.Fatalf("snapshot metadata zone = %q", got)
	}
	c := reg("orders", "a", 1, 5)
	c.Metadata = map[string]string{"zone": "eu-2", "rack": "gold"}
	if res, _ := r.Register(c); res.Kind != NodeUpdated {
		t.Fatalf("changed key: kind %v, want updated", res.Kind)
	}
	if res, _ := r.Register(reg("orders", "a", 1, 5)); res.Kind != NodeUpdated {
		t.Fatalf("metadata dropped: kind %v, want updated", res.Kind)
	}
}

// Concurrent first callers of Derived share one build.
func TestDerivedBuildsOnceUnderContention(t *testing.T) {
	r := New(Options{})
	if _, err := r.Register(reg("orders", "a", 1, 5)); err != nil {
		t.Fatal(err)
	}
	s := r.Snapshot("orders")
	var builds atomic.Int32
	release := make(chan struct{})
	build := func(*Snapshot) any {
		builds.Add(1)
		<-release
		return 42
	}
	const callers = 16
	var started, done sync.WaitGroup
	started.Add(callers)
	done.Add(callers)
	for range callers {
		go func() {
			defer done.Done()
			started.Done()
			if v := s.Derived(build); v != 42 {
				t.Errorf("Derived = %v", v)
			}
		}()
	}
	started.Wait()
	time.Sleep(50 * time.Millisecond) // let callers reach Derived; the result does not depend on it
	close(release)
	done.Wait()
	if n := builds.Load(); n != 1 {
		t.Fatalf("%d builds for one snapshot, want 1", n)
	}
}

// Register reads the clock under the writer lock: a registration that
// waited for the lock behind a later heartbeat of the same node must not
// move the node's deadline backwards. The clock seam starts the later
// heartbeat from inside the first registration's clock read.
func TestRegisterDeadlineNeverMovesBackwards(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var calls atomic.Int32
	var r *Registry
	var wg sync.WaitGroup
	r = New(Options{Now: func() time.Time {
		switch calls.Add(1) {
		case 2: // the first heartbeat's read; a later one races it
			wg.Add(1)
			fin := make(chan struct{})
			go func() {
				defer wg.Done()
				defer close(fin)
				if _, err := r.Register(reg("orders", "a", 1, 5)); err != nil {
					t.Error(err)
				}
			}()
			select {
			case <-fin: // only possible when this read holds no lock
			case <-time.After(200 * time.Millisecond):
			}
			return base.Add(time.Second)
		case 3:
			return base.Add(2 * time.Second)
		}
		return base
	}})
	if _, err := r.Register(reg("orders", "a", 1, 5)); err != nil { // call 1
		t.Fatal(err)
	}
	if _, err := r.Register(reg("orders", "a", 1, 5)); err != nil { // call 2, racing call 3
		t.Fatal(err)
	}
	wg.Wait()
	want := base.Add(2*time.Second + 5*time.Second + ExpiryGrace).UnixMilli()
	if got := r.Export()[0].ExpiresAt; got != want {
		t.Fatalf("deadline = %d, want the later heartbeat's %d (moved back by %d ms)", got, want, want-got)
	}
}

// Restored deadlines are clamped to now + timeOut + grace.
func TestRestoreClampsDeadline(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := NodeState{Registration: reg("orders", "a", 1, 5), RegisteredAt: now.UnixMilli(), ExpiresAt: now.AddDate(5, 0, 0).UnixMilli()}
	clock := newClock()
	clock.ns.Store(now.UnixNano())
	r := New(Options{Now: clock.Now})
	if n, s := r.Restore([]NodeState{st}, now); n != 1 || s != 0 {
		t.Fatalf("restored %d skipped %d", n, s)
	}
	want := now.Add(5*time.Second + ExpiryGrace).UnixMilli()
	if got := r.Export()[0].ExpiresAt; got != want {
		t.Fatalf("restored deadline %v, want %v", time.UnixMilli(got), time.UnixMilli(want))
	}
	if n := r.ExpireDue(now.Add(5*time.Second + ExpiryGrace + time.Millisecond)); n != 1 {
		t.Fatalf("expired %d after timeOut+grace without heartbeats, want 1", n)
	}
}

// DeregisterAddress removes only the registration at the given address.
func TestDeregisterAddress(t *testing.T) {
	r := New(Options{})
	a := reg("orders", "a", 1, 5)
	if _, err := r.Register(a); err != nil {
		t.Fatal(err)
	}
	old := r.Snapshot("orders").Nodes[0].Address
	a.Port = 9000 // the node moved
	if _, err := r.Register(a); err != nil {
		t.Fatal(err)
	}
	if r.DeregisterAddress("orders", "a", old) {
		t.Fatal("removed the new registration by its old address")
	}
	if r.Snapshot("orders") == nil {
		t.Fatal("node gone")
	}
	if r.DeregisterAddress("orders", "a", "") {
		t.Fatal("empty address must match nothing")
	}
	if !r.DeregisterAddress("orders", "a", "http://127.0.0.1:9000") {
		t.Fatal("did not remove at the current address")
	}
	if r.Len() != 0 {
		t.Fatalf("Len = %d", r.Len())
	}
}

// Len and Export take no lock: a writer holding the lock never stalls them.
func TestLenAndExportTakeNoLock(t *testing.T) {
	r := New(Options{})
	if _, err := r.Register(reg("orders", "a", 1, 5)); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	done := make(chan int)
	go func() { done <- r.Len() + len(r.Export()) }()
	select {
	case n := <-done:
		if n != 2 {
			t.Fatalf("Len+len(Export) = %d", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Len/Export blocked on the writer lock")
	}
}

// Upsert applies replicated states with their own times; a replicated
// heartbeat older than the local one does not move the deadline back.
func TestUpsertReplicatedState(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := New(Options{Now: func() time.Time { return now }})
	st := NodeState{Registration: reg("orders", "a", 2, 5), RegisteredAt: now.UnixMilli(), ExpiresAt: now.Add(10 * time.Second).UnixMilli()}
	res, err := r.Upsert(st)
	if err != nil || res.Kind != NodeRegistered || len(r.Snapshot("orders").Nodes) != 2 {
		t.Fatalf("upsert: %+v %v", res, err)
	}
	older := st
	older.ExpiresAt = now.Add(5 * time.Second).UnixMilli()
	if res, _ := r.Upsert(older); res.Kind != NodeHeartbeat {
		t.Fatalf("older heartbeat kind %v", res.Kind)
	}
	if got := r.Export()[0].ExpiresAt; got != st.ExpiresAt {
		t.Fatalf("deadline moved back to %v", time.UnixMilli(got))
	}
	bad := st
	bad.Weight = 11
	if _, err := r.Upsert(bad); err == nil {
		t.Fatal("invalid replicated state accepted")
	}
	if !r.Remove("orders", "a", "", NodeExpired) || r.Len() != 0 {
		t.Fatal("Remove")
	}
}
