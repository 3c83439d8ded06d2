package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/maxine-io/maxine/internal/redistest"
)

// Clustered Maxine end to end: real maxine processes sharing a real
// redis-server (or Sentinel-managed primary, or one state file), driven
// over HTTP. Bounds are generous where the machine's load could stretch
// a step; the figures a run observed are logged.

// Short lease settings so failover tests take seconds, not tens of them.
const (
	testLease = 2 * time.Second
	testRenew = 500 * time.Millisecond
)

func redisArgs(url string) []string {
	return []string{"--state-mode", "redis", "--redis-url", url,
		"--lease-interval", testLease.String(), "--renew-interval", testRenew.String(),
		"--redis-resync-interval", "1s", "--health-checks=false"}
}

// startRedisCluster starts n maxine instances on one Redis.
func startRedisCluster(t *testing.T, n int, args []string, env ...string) []*instance {
	t.Helper()
	out := make([]*instance, n)
	for i := range out {
		a := append(append([]string{}, args...), "--instance-id", fmt.Sprintf("m%d", i+1))
		out[i] = start(t, "", env, a...)
	}
	return out
}

type clusterView struct {
	Enabled, IsLeader, HasLeader bool
	FencingToken                 int64
	Leader, LeaderAddr           string
	Members                      int
	StoreUp                      bool
}

func (in *instance) cluster(token string) clusterView {
	in.t.Helper()
	r := in.call("GET", "/api/actuator/cluster", token, "")
	if r.status != 200 {
		in.t.Fatalf("cluster: %d %s", r.status, r.body)
	}
	b := func(k string) bool { v, _ := r.json[k].(bool); return v }
	s := func(k string) string { v, _ := r.json[k].(string); return v }
	tok, _ := r.json["fencingToken"].(float64)
	members, _ := r.json["members"].([]any)
	return clusterView{Enabled: b("enabled"), IsLeader: b("isLeader"), HasLeader: b("hasLeader"), FencingToken: int64(tok),
		Leader: s("leaderInstanceId"), LeaderAddr: s("leaderAdminAddr"), Members: len(members), StoreUp: b("storeUp")}
}

// leader waits until exactly one of ins claims the lease and all of them
// agree on it; it returns its index.
func leader(t *testing.T, ins []*instance, token string, within time.Duration) int {
	t.Helper()
	idx := -1
	eventually(t, within, "one agreed leader", func() bool {
		idx = -1
		name := ""
		for i, in := range ins {
			v := in.cluster(token)
			if v.IsLeader {
				if idx >= 0 {
					return false
				}
				idx = i
			}
			if name == "" {
				name = v.Leader
			}
			if !v.HasLeader || v.Leader != name {
				return false
			}
		}
		return idx >= 0
	})
	return idx
}

func discoverStatus(in *instance, service string) int {
	return in.call("GET", "/api/maxine/serviceops/discover?serviceName="+service, "", "").status
}

// Register on A; discover on B and C; proxy through C. Heartbeats sent to
// B alone keep the node alive on all three; once they stop it expires
// everywhere.
func TestClusterRedisSharesRegistry(t *testing.T) {
	rs := redistest.Start(t)
	ins := startRedisCluster(t, 3, redisArgs(rs.URL(0)))
	a, b, c := ins[0], ins[1], ins[2]
	tok := a.signIn("viewer", "viewer-pass")
	up := newUpstream(t, "u1")
	reg := fmt.Sprintf(`{"serviceName":"orders","nodeName":"n1","hostName":"127.0.0.1","port":%d,"timeOut":2}`, up.port)

	if r := a.register(reg); r.status != 200 {
		t.Fatalf("register on A: %d %s", r.status, r.body)
	}
	for _, in := range []*instance{b, c} {
		eventually(t, 5*time.Second, "orders discoverable on "+in.admin, func() bool { return discoverStatus(in, "orders") == 302 })
	}
	c.waitRoutable("orders")
	if r := call(t, "GET", c.gateway+"/orders/x", "", ""); r.status != 200 || r.header.Get("X-Upstream") != "u1" {
		t.Fatalf("proxy through C: %d %s", r.status, r.body)
	}
	v := leader(t, ins, tok, 10*time.Second)
	t.Logf("leader m%d", v+1)
	if m := a.cluster(tok).Members; m != 3 {
		eventually(t, 5*time.Second, "3 members listed", func() bool { return a.cluster(tok).Members == 3 })
	}
	// A node at another member's gateway or admin listener is refused on
	// A like one of A's own (it would loop, or expose B's admin API).
	for _, l := range []struct{ name, url string }{{"gateway", b.gateway}, {"admin", b.admin}} {
		_, port, _ := strings.Cut(strings.TrimPrefix(l.url, "http://"), ":")
		r := a.register(`{"serviceName":"loop","nodeName":"b","hostName":"127.0.0.1","port":` + port + `}`)
		if r.status != 403 || !strings.Contains(string(r.body), l.name+" listener of cluster member m2") {
			t.Errorf("a node at B's %s listener: %d %s", l.name, r.status, r.body)
		}
	}

	// Heartbeats to B only, for three timeOuts: the node stays on A and C
	// (the leader reaps by the shared expiry index, which B's heartbeats
	// keep pushing back).
	var last time.Time
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		if r := b.register(reg); r.status != 200 {
			t.Fatalf("heartbeat to B: %d %s", r.status, r.body)
		}
		last = time.Now()
		for _, in := range []*instance{a, c} {
			if st := discoverStatus(in, "orders"); st != 302 {
				t.Fatalf("node lost on %s while heartbeating to B: %d", in.admin, st)
			}
		}
	}
	// Stopped: gone on all three within timeOut + 2 s of the last
	// heartbeat (+2 s for a loaded machine).
	for _, in := range ins {
		eventually(t, time.Until(last.Add(2*time.Second+2*time.Second+2*time.Second)), "orders expired on "+in.admin, func() bool {
			return discoverStatus(in, "orders") == 503
		})
	}
	t.Logf("expired everywhere %.1fs after the last heartbeat (timeOut 2s)", time.Since(last).Seconds())
}

// gatewayLoad sends requests through the gateways round robin until stop
// is closed (at most max requests) and counts the failures.
func gatewayLoad(t *testing.T, gateways []string, service string, stop <-chan struct{}, max int) (ok, failed *atomic.Int64, done <-chan struct{}) {
	ok, failed = new(atomic.Int64), new(atomic.Int64)
	fin := make(chan struct{})
	cl := &http.Client{Timeout: 10 * time.Second}
	go func() {
		defer close(fin)
		for i := 0; i < max; i++ {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := cl.Get(gateways[i%len(gateways)] + "/" + service + "/load")
			if err != nil {
				failed.Add(1)
				t.Logf("gateway error: %v", err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed.Add(1)
				t.Logf("gateway status %d", resp.StatusCode)
				continue
			}
			ok.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return ok, failed, fin
}

// kill -9 of the leader: another instance leads within lease + renew, and
// gateway traffic through the survivors sees no error meanwhile.
func TestClusterLeaderFailover(t *testing.T) {
	rs := redistest.Start(t)
	ins := startRedisCluster(t, 3, redisArgs(rs.URL(0)))
	tok := ins[0].signIn("viewer", "viewer-pass")
	up := newUpstream(t, "u1")
	if r := ins[0].register(up.registration("orders", "n1")); r.status != 200 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	li := leader(t, ins, tok, 10*time.Second)
	old := ins[li].cluster(tok)
	var survivors []*instance
	var gws []string
	for i, in := range ins {
		if i != li {
			survivors = append(survivors, in)
			gws = append(gws, in.gateway)
			in.waitRoutable("orders")
		}
	}
	stop := make(chan struct{})
	ok, failed, done := gatewayLoad(t, gws, "orders", stop, 100000)
	time.Sleep(300 * time.Millisecond)

	killed := time.Now()
	ins[li].kill()
	nl := -1
	eventually(t, testLease+testRenew+3*time.Second, "a new leader", func() bool {
		for i, in := range survivors {
			if v := in.cluster(tok); v.IsLeader {
				nl = i
				return true
			}
		}
		return false
	})
	took := time.Since(killed)
	nv := survivors[nl].cluster(tok)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	<-done
	t.Logf("new leader %s after %.2fs (lease %s + renew %s); token %d -> %d; gateway %d ok, %d failed",
		nv.Leader, took.Seconds(), testLease, testRenew, old.FencingToken, nv.FencingToken, ok.Load(), failed.Load())
	if nv.FencingToken <= old.FencingToken {
		t.Fatalf("fencing token did not increase: %d -> %d", old.FencingToken, nv.FencingToken)
	}
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("gateway during failover: %d ok, %d failed", ok.Load(), failed.Load())
	}
}

// SIGSTOP the leader past its lease: another takes over; on SIGCONT the
// old leader finds its lease gone, steps down, audits and alerts it, and
// its leader-only work (expiry reaping) has not touched the data.
func TestClusterFencingStaleLeader(t *testing.T) {
	rs := redistest.Start(t)
	ins := startRedisCluster(t, 3, redisArgs(rs.URL(0)))
	tok := ins[0].signIn("viewer", "viewer-pass")
	li := leader(t, ins, tok, 10*time.Second)
	old := ins[li]
	oldToken := old.cluster(tok).FencingToken
	var others []*instance
	for i, in := range ins {
		if i != li {
			others = append(others, in)
		}
	}
	up := newUpstream(t, "u1")
	if r := others[0].register(up.registration("orders", "n1")); r.status != 200 {
		t.Fatalf("register: %d", r.status)
	}

	if err := old.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			old.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	var newToken int64
	eventually(t, testLease+testRenew+5*time.Second, "another leader while the old one is stopped", func() bool {
		for _, in := range others {
			if v := in.cluster(tok); v.IsLeader {
				newToken = v.FencingToken
				return true
			}
		}
		return false
	})
	// Registered while the old leader sleeps: it must survive its return.
	if r := others[1].register(up.registration("orders", "n2")); r.status != 200 {
		t.Fatalf("register n2: %d", r.status)
	}
	time.Sleep(testLease) // well past the old lease
	old.cmd.Process.Signal(syscall.SIGCONT)
	stopped = false

	eventually(t, 10*time.Second, "the old leader steps down", func() bool {
		v := old.cluster(tok)
		return !v.IsLeader && v.HasLeader && v.FencingToken == newToken
	})
	if newToken <= oldToken {
		t.Fatalf("token %d -> %d", oldToken, newToken)
	}
	eventually(t, 5*time.Second, "leadership_lost audited and alerted on the old leader", func() bool {
		a := old.call("GET", "/api/actuator/audit", tok, "")
		al := old.call("GET", "/api/actuator/alerts", tok, "")
		return strings.Contains(string(a.body), `"leadership_lost"`) && strings.Contains(string(al.body), `"leadership_lost"`)
	})
	time.Sleep(time.Second) // let a stale reap or write happen if it were going to
	for _, in := range ins {
		s := in.servers(tok)["orders"]
		if len(s) != 2 {
			t.Fatalf("%s lists orders nodes %v after the stale leader's return, want n1-0 and n2-0", in.admin, s)
		}
	}
	// Exactly one leader, the new one.
	if i := leader(t, ins, tok, 5*time.Second); ins[i] == old {
		t.Fatal("the stale leader leads again")
	}
}

// Redis killed for a few seconds under gateway load: the gateways keep
// serving healthy nodes, registrations answer 503 naming the store and
// succeed again after; Redis back EMPTY: the live node is back in Redis
// within a heartbeat, the one that expired during the outage is not.
func TestClusterRedisOutage(t *testing.T) {
	rs := redistest.Start(t)
	ins := startRedisCluster(t, 2, redisArgs(rs.URL(0)))
	tok := ins[0].signIn("viewer", "viewer-pass")
	up := newUpstream(t, "u1")
	live := fmt.Sprintf(`{"serviceName":"orders","nodeName":"live","hostName":"127.0.0.1","port":%d,"timeOut":30}`, up.port)
	short := fmt.Sprintf(`{"serviceName":"orders","nodeName":"short","hostName":"127.0.0.1","port":%d,"timeOut":1}`, up.port)
	for _, body := range []string{live, short} {
		if r := ins[0].register(body); r.status != 200 {
			t.Fatalf("register: %d %s", r.status, r.body)
		}
	}
	for _, in := range ins {
		in.waitRoutable("orders")
	}
	stop := make(chan struct{})
	ok, failed, done := gatewayLoad(t, []string{ins[0].gateway, ins[1].gateway}, "orders", stop, 100000)

	rs.Kill()
	down := time.Now()
	var r reply
	eventually(t, 10*time.Second, "registrations refused while Redis is down", func() bool {
		r = ins[1].register(live)
		return r.status == 503
	})
	if !strings.Contains(strings.ToLower(r.msg()), "redis") {
		t.Fatalf("503 message does not name the store: %q", r.msg())
	}
	eventually(t, 10*time.Second, "readiness reports the store down", func() bool {
		return ins[0].call("GET", "/api/actuator/health", "", "").status == 503
	})
	eventually(t, 10*time.Second, "state_store_down alert", func() bool {
		return strings.Contains(string(ins[0].call("GET", "/api/actuator/alerts", tok, "").body), "state_store_down")
	})
	// Let "short" (timeOut 1 s) pass its deadline during the outage.
	time.Sleep(time.Until(down.Add(3 * time.Second)))
	rs.Restart() // empty: no persistence
	t.Logf("Redis down for %.1fs", time.Since(down).Seconds())
	eventually(t, 15*time.Second, "registrations accepted again", func() bool { return ins[1].register(live).status == 200 })
	eventually(t, 10*time.Second, "the live node re-seeded into the empty Redis", func() bool {
		v, err := rs.Do("HGET", "maxine:registry:svc:{orders}", "live")
		return err == nil && v != ""
	})
	time.Sleep(500 * time.Millisecond)
	close(stop)
	<-done
	t.Logf("gateway during the outage: %d ok, %d failed", ok.Load(), failed.Load())
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("gateway errors during the Redis outage: %d ok, %d failed", ok.Load(), failed.Load())
	}
	if v, _ := rs.Do("HGET", "maxine:registry:svc:{orders}", "short"); v != "" {
		t.Fatalf("the node that expired during the outage was resurrected: %s", v)
	}
	for _, in := range ins {
		eventually(t, 10*time.Second, "short gone and live kept on "+in.admin, func() bool {
			s := in.servers(tok)["orders"]
			return len(s) == 1 && s[0] == "live-0"
		})
		eventually(t, 10*time.Second, "ready again", func() bool { return in.call("GET", "/api/actuator/health", "", "").status == 200 })
	}
}

// A config change made on one instance (a follower forwards it to the
// leader) is seen by the others within a second.
func TestClusterConfigChangePropagates(t *testing.T) {
	rs := redistest.Start(t)
	ins := startRedisCluster(t, 2, redisArgs(rs.URL(0)))
	tok := ins[0].signIn("viewer", "viewer-pass")
	li := leader(t, ins, tok, 10*time.Second)
	for _, i := range []int{1 - li, li} { // through the follower, then the leader
		from, to := ins[i], ins[1-i]
		want := map[int]string{1 - li: "CH", li: "RH"}[i]
		op := from.signIn("op", "op-pass")
		r := from.call("PUT", "/api/maxine/control/config", op, fmt.Sprintf(`{"serverSelectionStrategy":%q}`, want))
		if r.status != 200 || r.json["serverSelectionStrategy"] != "Success" {
			t.Fatalf("config on %s: %d %s", from.admin, r.status, r.body)
		}
		changed := time.Now()
		eventually(t, 3*time.Second, "strategy "+want+" on the other instance", func() bool {
			c := to.call("GET", "/api/maxine/control/config", tok, "")
			s, _ := c.json["serverSelectionStrategy"].(map[string]any)
			return s["name"] == want
		})
		t.Logf("%s seen on the other instance after %dms", want, time.Since(changed).Milliseconds())
	}
	// It survives a restart of every instance.
	for _, in := range ins {
		in.stop()
	}
	for _, in := range ins {
		in.restart()
	}
	for _, in := range ins {
		c := in.call("GET", "/api/maxine/control/config", in.signIn("viewer", "viewer-pass"), "")
		if s, _ := c.json["serverSelectionStrategy"].(map[string]any); s["name"] != "RH" {
			t.Fatalf("after restarting all: %v", c.json["serverSelectionStrategy"])
		}
	}
}

// Sentinel: primary + two replicas + three sentinels. Kill the primary while
// registrations go on: they succeed again once Sentinel fails over, and
// every acknowledged one is still there (writes wait for the replica).
func TestClusterSentinelFailover(t *testing.T) {
	// Two replicas: after the failover the new primary still has one, so
	// writes that wait for a replica (--redis-min-replicas 1) go on.
	primary := redistest.Start(t)
	replicas := []*redistest.Server{redistest.Replica(t, primary), redistest.Replica(t, primary)}
	var addrs []string
	for range 3 {
		addrs = append(addrs, redistest.Sentinel(t, "mx", primary, 2).Addr())
	}
	for _, replica := range replicas {
		eventually(t, 20*time.Second, "replica in sync", func() bool {
			v, err := replica.Do("INFO", "replication")
			return err == nil && strings.Contains(v, "master_link_status:up")
		})
	}
	args := []string{"--state-mode", "redis", "--redis-sentinel-master", "mx", "--redis-sentinel-addrs", strings.Join(addrs, ","),
		"--redis-min-replicas", "1", "--lease-interval", testLease.String(), "--renew-interval", testRenew.String(),
		"--redis-resync-interval", "1s", "--health-checks=false"}
	ins := startRedisCluster(t, 2, args)
	tok := ins[0].signIn("viewer", "viewer-pass")

	var mu sync.Mutex
	acked := map[string]bool{}
	register := func(i int) int {
		name := fmt.Sprintf("n%d", i)
		r := ins[i%2].register(fmt.Sprintf(`{"serviceName":"orders","nodeName":%q,"hostName":"127.0.0.1","port":%d,"timeOut":600}`, name, 10000+i))
		if r.status == 200 {
			mu.Lock()
			acked[name] = true
			mu.Unlock()
		}
		return r.status
	}
	for i := range 50 {
		if st := register(i); st != 200 {
			t.Fatalf("register before failover: %d", st)
		}
	}
	primary.Kill()
	killed := time.Now()
	i := 50
	// Each instance learns of the new primary on its own (its Sentinel
	// client follows +switch-master): wait for both.
	for k := range ins {
		var refused int
		eventually(t, 40*time.Second, fmt.Sprintf("registrations through m%d succeed after the failover", k+1), func() bool {
			i += 2 - (i-k)%2 // the next i with i%2 == k
			if register(i) == 200 {
				return true
			}
			refused++
			time.Sleep(100 * time.Millisecond)
			return false
		})
		t.Logf("m%d: registrations succeeded again %.1fs after the primary died (%d refused meanwhile)", k+1, time.Since(killed).Seconds(), refused)
	}
	// The surviving replica re-syncs from the new primary meanwhile, so a
	// write waiting for it may still time out once or twice: a client
	// retries, as it would.
	for j := i + 1; j < i+50; j++ {
		st := 0
		for try := 0; try < 30 && st != 200; try++ {
			if st = register(j); st != 200 {
				time.Sleep(100 * time.Millisecond)
			}
		}
		if st != 200 {
			t.Fatalf("register after failover: %d after 30 tries", st)
		}
	}
	for _, in := range ins {
		eventually(t, 15*time.Second, "every acknowledged registration on "+in.admin, func() bool {
			got := map[string]bool{}
			for _, v := range in.servers(tok)["orders"] {
				got[strings.TrimSuffix(v, "-0")] = true
			}
			mu.Lock()
			defer mu.Unlock()
			for name := range acked {
				if !got[name] {
					return false
				}
			}
			return true
		})
	}
	t.Logf("%d acknowledged registrations, none lost", len(acked))
}

// shared-file: two processes on one state file, concurrent registrations
// on both; every acknowledged node is in the file and on both instances. A
// kill -9 of one mid-load never blocks the other.
func TestClusterSharedFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "shared-state.json")
	args := []string{"--state-mode", "shared-file", "--shared-file", file, "--shared-poll-interval", "200ms", "--health-checks=false"}
	a := start(t, "", nil, append(args, "--instance-id", "a")...)
	b := start(t, "", nil, append(args, "--instance-id", "b")...)
	tok := a.signIn("viewer", "viewer-pass")

	const perInstance, workers = 600, 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]bool{}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; k < 2*perInstance; k += workers {
				in := []*instance{a, b}[k%2]
				name := fmt.Sprintf("n%d", k)
				r := call(t, "POST", in.admin+"/api/maxine/serviceops/register", "",
					fmt.Sprintf(`{"serviceName":"orders","nodeName":%q,"hostName":"127.0.0.1","port":%d,"timeOut":600}`, name, 10000+k))
				if r.status == 200 {
					mu.Lock()
					acked[name] = true
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(acked) != 2*perInstance {
		t.Fatalf("%d of %d registrations acknowledged", len(acked), 2*perInstance)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for name := range acked {
		if !strings.Contains(string(data), `"nodeName":"`+name+`"`) {
			t.Fatalf("acknowledged %s is not in the shared file", name)
		}
	}
	for _, in := range []*instance{a, b} {
		eventually(t, 10*time.Second, "every node on "+in.admin, func() bool { return len(in.servers(tok)["orders"]) == 2*perInstance })
	}

	// kill -9 of a while it is busy writing: b keeps registering.
	stop := make(chan struct{})
	go func() {
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := http.Post(a.admin+"/api/maxine/serviceops/register", "application/json",
				strings.NewReader(fmt.Sprintf(`{"serviceName":"busy","nodeName":"x%d","hostName":"127.0.0.1","port":9000,"timeOut":600}`, k)))
			if err != nil {
				return
			}
			resp.Body.Close()
		}
	}()
	time.Sleep(300 * time.Millisecond)
	a.kill()
	close(stop)
	if r := b.register(`{"serviceName":"after","nodeName":"z","hostName":"127.0.0.1","port":9001,"timeOut":600}`); r.status != 200 {
		t.Fatalf("b after a's kill -9: %d %s", r.status, r.body)
	}
}

// Only the leader probes; its verdicts reach the followers, whose
// gateways then skip the node it found dead, and take it back when it
// recovers.
func TestClusterSharedHealth(t *testing.T) {
	rs := redistest.Start(t)
	args := append(redisArgs(rs.URL(0)), "--health-checks=true", "--health-interval", "200ms", "--health-fail", "2", "--health-pass", "1")
	ins := startRedisCluster(t, 2, args)
	tok := ins[0].signIn("viewer", "viewer-pass")
	li := leader(t, ins, tok, 10*time.Second)
	follower := ins[1-li]
	good, bad := newUpstream(t, "good"), newUpstream(t, "bad")
	for _, u := range []*upstream{good, bad} {
		body := fmt.Sprintf(`{"serviceName":"orders","nodeName":%q,"hostName":"127.0.0.1","port":%d,"timeOut":600,"healthCheckPath":"/health"}`, u.name, u.port)
		if r := follower.register(body); r.status != 200 {
			t.Fatalf("register: %d %s", r.status, r.body)
		}
	}
	follower.waitRoutable("orders")
	badHits := bad.hits.Load()
	bad.healthStatus.Store(503)
	eventually(t, 10*time.Second, "the follower's gateway to stop sending to the node the leader found dead", func() bool {
		before := bad.hits.Load()
		for range 10 {
			call(t, "GET", follower.gateway+"/orders/x", "", "")
		}
		// Probes of /health count as hits too, but only the leader probes.
		return bad.hits.Load()-before == 0
	})
	r := follower.call("GET", "/api/actuator/upstreams", tok, "")
	if !strings.Contains(string(r.body), "bad") {
		t.Fatalf("follower's upstreams report does not show the unhealthy node: %s", r.body)
	}
	for range 20 {
		if r := call(t, "GET", follower.gateway+"/orders/x", "", ""); r.status != 200 || r.header.Get("X-Upstream") != "good" {
			t.Fatalf("follower routed to %q (%d)", r.header.Get("X-Upstream"), r.status)
		}
	}
	bad.healthStatus.Store(0)
	eventually(t, 10*time.Second, "the recovered node back in the follower's rotation", func() bool {
		r := call(t, "GET", follower.gateway+"/orders/x", "", "")
		return r.header.Get("X-Upstream") == "bad"
	})
	t.Logf("bad node hits before the outage: %d", badHits)
}
