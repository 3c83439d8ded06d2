package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/registry"
)

// A config change sent to a follower is forwarded to the leader (a real
// admin server on loopback) and answered with the leader's answer; the
// follower does not apply it itself.
func TestFollowerForwardsConfigToLeader(t *testing.T) {
	var saved atomic.Int32
	leader := newTestServer(t, func(o *Options) {
		o.InstanceID = "leader-1"
		o.Cluster = func() ClusterStatus {
			return ClusterStatus{Enabled: true, Elected: true, IsLeader: true, HasLeader: true, LeaderInstanceID: "leader-1"}
		}
		o.SaveSettings = func(context.Context, config.Settings) error { saved.Add(1); return nil }
	})
	leaderAddr := strings.TrimPrefix(leader.base, "http://")
	follower := newTestServer(t, func(o *Options) {
		o.InstanceID = "follower-1"
		o.Cluster = func() ClusterStatus {
			return ClusterStatus{Enabled: true, Elected: true, HasLeader: true, LeaderInstanceID: "leader-1", LeaderAdminAddr: leaderAddr}
		}
	})
	// Instances of one cluster share the JWT secret (newTestServer's) and
	// env-managed accounts (a file-backed admin is per instance).
	resp, m := follower.do("PUT", "/api/maxine/control/config", follower.token("op", "op-pass"), `{"serverSelectionStrategy":"CH","logAsync":"x"}`)
	if resp.StatusCode != 200 || m["serverSelectionStrategy"] != "Success" || m["logAsync"] != "Type Error" {
		t.Fatalf("forwarded: %d %v", resp.StatusCode, m)
	}
	if resp.Header.Get("X-Maxine-Leader") != "leader-1" {
		t.Fatalf("X-Maxine-Leader = %q", resp.Header.Get("X-Maxine-Leader"))
	}
	if got := leader.settings.Load().Strategy; got != config.ConsistentHashing {
		t.Fatalf("leader strategy = %v", got)
	}
	if got := follower.settings.Load().Strategy; got != config.RoundRobin {
		t.Fatalf("follower applied the change itself: %v", got)
	}
	if saved.Load() != 1 {
		t.Fatalf("SaveSettings called %d times on the leader", saved.Load())
	}
	// The leader's refusals are relayed too (a viewer may not change config).
	resp, _ = follower.do("PUT", "/api/maxine/control/config", follower.token("viewer", "viewer-pass"), `{"serverSelectionStrategy":"RH"}`)
	if resp.StatusCode != 403 {
		t.Fatalf("viewer through the follower: %d", resp.StatusCode)
	}
}

// No reachable leader: the old 409. A forwarded change that reaches a
// follower is not forwarded again.
func TestForwardWithoutReachableLeader(t *testing.T) {
	for name, st := range map[string]ClusterStatus{
		"no leader":   {Enabled: true, Elected: true},
		"unreachable": {Enabled: true, Elected: true, HasLeader: true, LeaderAdminAddr: "127.0.0.1:1"},
	} {
		t.Run(name, func(t *testing.T) {
			ts := newTestServer(t, func(o *Options) { o.Cluster = func() ClusterStatus { return st } })
			resp, m := ts.do("PUT", "/api/maxine/control/config", ts.token("admin", "admin"), `{"serverSelectionStrategy":"CH"}`)
			if resp.StatusCode != 409 || m["message"] != leaderOnlyMessage {
				t.Fatalf("%d %v", resp.StatusCode, m)
			}
		})
	}
	self := newTestServer(t, nil)
	loop := newTestServer(t, func(o *Options) {
		o.Cluster = func() ClusterStatus {
			return ClusterStatus{Enabled: true, Elected: true, HasLeader: true, LeaderAdminAddr: strings.TrimPrefix(self.base, "http://")}
		}
	})
	resp, _ := loop.do("PUT", "/api/maxine/control/config", loop.token("admin", "admin"), `{"serverSelectionStrategy":"CH"}`, forwardedHeader, "other")
	if resp.StatusCode != 409 {
		t.Fatalf("second hop: %d", resp.StatusCode)
	}
	if self.settings.Load().Strategy != config.RoundRobin {
		t.Fatal("a twice-forwarded change was applied")
	}
}

// A leader whose fenced write is refused answers 409 and applies nothing;
// a store failure answers 503 and applies nothing.
func TestSaveSettingsRefusal(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
	}{{fmt.Errorf("fenced: %w", ErrNotLeader), 409}, {errors.New("redis 127.0.0.1:1: connection refused"), 503}} {
		ts := newTestServer(t, func(o *Options) {
			o.Cluster = func() ClusterStatus {
				return ClusterStatus{Enabled: true, Elected: true, IsLeader: true, HasLeader: true}
			}
			o.SaveSettings = func(context.Context, config.Settings) error { return c.err }
		})
		resp, m := ts.do("PUT", "/api/maxine/control/config", ts.token("admin", "admin"), `{"serverSelectionStrategy":"CH"}`)
		if resp.StatusCode != c.status {
			t.Fatalf("%v: %d %v", c.err, resp.StatusCode, m)
		}
		if ts.settings.Load().Strategy != config.RoundRobin {
			t.Fatalf("%v: the change was applied", c.err)
		}
	}
}

// failingRegistrar is a shared store that cannot be reached.
type failingRegistrar struct{}

func (failingRegistrar) Register(context.Context, registry.Registration) (registry.Result, error) {
	return registry.Result{}, errors.New("state store unavailable: redis 127.0.0.1:1: connection refused")
}
func (failingRegistrar) Deregister(context.Context, string, string) (bool, error) {
	return false, errors.New("state store unavailable: redis 127.0.0.1:1: connection refused")
}

// A registration the store cannot take is answered 503 naming the store,
// never 200, and a bad registration is still 400.
func TestRegistrarUnavailable(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.Registrar = failingRegistrar{} })
	resp, m := ts.do("POST", "/api/maxine/serviceops/register", "", `{"serviceName":"s","nodeName":"n","hostName":"127.0.0.1","port":8081}`)
	if resp.StatusCode != 503 || !strings.Contains(fmt.Sprint(m["message"]), "redis 127.0.0.1:1") {
		t.Fatalf("register: %d %v", resp.StatusCode, m)
	}
	resp, m = ts.do("DELETE", "/api/maxine/serviceops/register?serviceName=s&nodeName=n", "", "")
	if resp.StatusCode != 503 || !strings.Contains(fmt.Sprint(m["message"]), "unavailable") {
		t.Fatalf("deregister: %d %v", resp.StatusCode, m)
	}
	resp, _ = ts.do("POST", "/api/maxine/serviceops/register", "", `{"serviceName":"s","nodeName":"n","hostName":"127.0.0.1","weight":11}`)
	if resp.StatusCode != 400 {
		t.Fatalf("invalid: %d", resp.StatusCode)
	}
	if ts.reg.Len() != 0 {
		t.Fatal("local registry changed")
	}
}

// In local mode the cluster endpoint says clustering is off and claims no
// leadership.
func TestClusterLocalModeIsOff(t *testing.T) {
	ts := newTestServer(t, nil)
	resp, m := ts.do("GET", "/api/actuator/cluster", ts.token("viewer", "viewer-pass"), "")
	if resp.StatusCode != 200 || m["enabled"] != false || m["isLeader"] != false || m["hasLeader"] != false || m["mode"] != "local" {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
}

// A cluster that elects no leader (shared-file mode) takes a config change
// on the instance it reached, neither forwarding it nor refusing it.
func TestConfigWithoutElectionAppliesLocally(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		o.Cluster = func() ClusterStatus { return ClusterStatus{Enabled: true, Mode: "shared-file"} }
	})
	resp, m := ts.do("PUT", "/api/maxine/control/config", ts.token("op", "op-pass"), `{"serverSelectionStrategy":"CH"}`)
	if resp.StatusCode != 200 || m["serverSelectionStrategy"] != "Success" {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	if ts.settings.Load().Strategy != config.ConsistentHashing {
		t.Fatal("not applied")
	}
}
