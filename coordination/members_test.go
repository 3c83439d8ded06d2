package coordination

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/maxine-io/maxine/internal/redistest"
)

func memberIDs(t *testing.T, in *instance) []string {
	t.Helper()
	ms, err := in.l.Members(context.Background())
	if err != nil {
		t.Fatalf("Members: %v", err)
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.InstanceID
	}
	return ids
}

// TestMembers: every live instance is listed with its addresses and the
// leader marked; a cancelled instance is removed at once; a dead one (no
// release) stays in Redis until its record expires, then disappears.
func TestMembers(t *testing.T) {
	srv := redistest.Start(t)
	o := instOpts{ttl: time.Second, renew: 300 * time.Millisecond}
	a := start(t, srv, "a", instOpts{ttl: o.ttl, renew: o.renew, admin: "127.0.0.1:8081"})
	b := start(t, srv, "b", o)
	c := start(t, srv, "c", o)
	lead := waitOneLeader(t, 15*time.Second, a, b, c)
	waitFor(t, 15*time.Second, "three members", func() bool {
		return slices.Equal(memberIDs(t, a), []string{"a", "b", "c"})
	})
	ms, err := b.l.Members(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	leads := 0
	for _, m := range ms {
		if m.GatewayAddr != "gw-"+m.InstanceID || m.StartedAt.IsZero() || !m.ExpiresAt.After(m.LastSeen) {
			t.Errorf("member %+v: wrong addresses or times", m)
		}
		if m.Leader {
			leads++
			if m.InstanceID != lead.id {
				t.Errorf("member %s marked leader, want %s", m.InstanceID, lead.id)
			}
		}
		if m.InstanceID == "a" && m.AdminAddr != "127.0.0.1:8081" {
			t.Errorf("a's admin address %q", m.AdminAddr)
		}
	}
	if leads != 1 {
		t.Fatalf("%d members marked leader, want 1", leads)
	}

	c.stop()
	waitFor(t, 15*time.Second, "c to leave on cancel", func() bool {
		return slices.Equal(memberIDs(t, a), []string{"a", "b"})
	})

	_ = b.client.Close() // b dies: its release cannot reach Redis
	b.stop()
	if v, _ := srv.Do("HEXISTS", testPrefix+":members", "b"); v != "1" {
		t.Fatal("a dead instance's record vanished without expiring: was it released?")
	}
	waitFor(t, 15*time.Second, "b's record to expire", func() bool {
		return slices.Equal(memberIDs(t, a), []string{"a"})
	})
	if v, _ := srv.Do("HEXISTS", testPrefix+":members", "b"); v != "0" {
		t.Fatal("the expired record was not pruned on read")
	}
}

// TestMembersPrunesUnreadableRecords: a record that is not JSON is dropped
// on read instead of failing the listing.
func TestMembersPrunesUnreadableRecords(t *testing.T) {
	srv := redistest.Start(t)
	a := start(t, srv, "a", instOpts{ttl: time.Second, renew: 300 * time.Millisecond})
	if _, err := srv.Do("HSET", testPrefix+":members", "junk", "not json"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "a listed alone", func() bool {
		return slices.Equal(memberIDs(t, a), []string{"a"})
	})
	if v, _ := srv.Do("HEXISTS", testPrefix+":members", "junk"); v != "0" {
		t.Fatal("the unreadable record was not pruned")
	}
}
