package persistence

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maxine-io/maxine/internal/redistest"
	"github.com/maxine-io/maxine/registry"
)

const testPrefix = "maxine:registry"

// testClock is a clock shared by the stores of one test: real time moved
// by an offset the test controls.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

type testStore struct {
	*Redis
	reg    *registry.Registry
	client redis.UniversalClient
	states chan bool
}

// startStore starts a store over url with its own registry, loaded and
// running until the test ends.
func startStore(t *testing.T, o RedisOptions) *testStore {
	t.Helper()
	if o.Registry == nil {
		o.Registry = registry.New(registry.Options{})
	}
	ts := &testStore{reg: o.Registry, states: make(chan bool, 100)}
	if o.OnStoreState == nil {
		o.OnStoreState = func(up bool, err error) {
			select {
			case ts.states <- up:
			default:
			}
		}
	}
	client, err := NewRedisClient(o)
	if err != nil {
		t.Fatal(err)
	}
	ts.client = client
	s, err := NewRedis(o, client)
	if err != nil {
		t.Fatal(err)
	}
	ts.Redis = s
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Load(ctx); err != nil {
		t.Fatalf("Load: %v", err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("Run did not return 30 s after its context ended")
		}
		client.Close()
	})
	// Register works once Run runs.
	pollUntil(t, 10*time.Second, "store subscribed", func() bool { return s.running.Load() && s.subscribed.Load() })
	return ts
}

// pollUntil polls cond every 10 ms until it holds, for at most limit.
func pollUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testReg(svc, node string, port int) registry.Registration {
	return registry.Registration{ServiceName: svc, NodeName: node, HostName: "127.0.0.1", Port: port, TimeOut: 5, Weight: 1}
}

// hasNode reports whether reg holds svc/node at address (any when "").
func hasNode(reg *registry.Registry, svc, node, address string) bool {
	snap := reg.Snapshot(svc)
	if snap == nil {
		return false
	}
	n := snap.Parent(node)
	return n != nil && (address == "" || n.Address == address)
}

// fencedBy is a test FencedFunc doing what coordination's Lease.Fenced
// does: the script runs only while <prefix>:fence holds token and
// <prefix>:leader holds lease, with those keys and values prepended.
func fencedBy(c redis.UniversalClient, lease, token string) FencedFunc {
	const prelude = `
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return redis.error_reply('FENCED stale fencing token') end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED lease lost') end
`
	return func(ctx context.Context, script *redis.Script, keys []string, args ...any) (any, error) {
		k := append([]string{testPrefix + ":leader", testPrefix + ":fence"}, keys...)
		a := append([]any{lease, token}, args...)
		return c.Eval(ctx, prelude+scriptSources[script], k, a...).Result()
	}
}

func mustDo(t *testing.T, srv *redistest.Server, args ...string) string {
	t.Helper()
	v, err := srv.Do(args...)
	if err != nil {
		t.Fatalf("redis %v: %v", args, err)
	}
	return v
}

func svcKey(svc string) string { return testPrefix + ":svc:{" + svc + "}" }

func TestRedisReplicatesBetweenInstances(t *testing.T) {
	srv := redistest.Start(t)
	a := startStore(t, RedisOptions{URL: srv.URL(0), InstanceID: "a"})
	b := startStore(t, RedisOptions{URL: srv.URL(0), InstanceID: "b"})
	ctx := context.Background()

	res, err := a.Register(ctx, testReg("orders", "n1", 8081))
	if err != nil {
		t.Fatal(err)
	}
	if res.Kind != registry.NodeRegistered || res.Address != "http://127.0.0.1:8081" {
		t.Fatalf("first registration: %+v", res)
	}
	if !hasNode(a.reg, "orders", "n1", "") {
		t.Fatal("the registering instance's registry does not have the node once acknowledged")
	}
	pollUntil(t, 10*time.Second, "n1 on b", func() bool { return hasNode(b.reg, "orders", "n1", "http://127.0.0.1:8081") })

	res, err = a.Register(ctx, testReg("orders", "n1", 8081))
	if err != nil || res.Kind != registry.NodeHeartbeat {
		t.Fatalf("second registration = %+v, %v; want a heartbeat", res, err)
	}
	if v := mustDo(t, srv, "HGET", testPrefix+":versions", "orders"); v != "1" {
		t.Fatalf("a heartbeat bumped the version to %s", v)
	}

	// A changed registration on b replaces the node on a.
	if res, err = b.Register(ctx, testReg("orders", "n1", 9091)); err != nil || res.Kind != registry.NodeUpdated {
		t.Fatalf("changed registration = %+v, %v; want updated", res, err)
	}
	pollUntil(t, 10*time.Second, "n1's new address on a", func() bool { return hasNode(a.reg, "orders", "n1", "http://127.0.0.1:9091") })

	ok, err := b.Deregister(ctx, "orders", "n1")
	if err != nil || !ok {
		t.Fatalf("Deregister = %v, %v", ok, err)
	}
	if hasNode(b.reg, "orders", "n1", "") {
		t.Fatal("deregistered node still in b's registry")
	}
	pollUntil(t, 10*time.Second, "n1 gone from a", func() bool { return !hasNode(a.reg, "orders", "n1", "") })
	if ok, err := a.Deregister(ctx, "orders", "n1"); err != nil || ok {
		t.Fatalf("second Deregister = %v, %v; want false", ok, err)
	}
	if n := mustDo(t, srv, "EXISTS", svcKey("orders")); n != "0" {
		t.Fatal("empty service hash left in Redis")
	}
	if m := mustDo(t, srv, "SISMEMBER", testPrefix+":services", "orders"); m != "0" {
		t.Fatal("empty service left in the services set")
	}
	if a.RemoteChanges() == 0 || b.RemoteChanges() == 0 {
		t.Fatalf("remote changes a=%d b=%d; want both > 0", a.RemoteChanges(), b.RemoteChanges())
	}

	// An invalid registration is refused before Redis.
	if _, err := a.Register(ctx, registry.Registration{ServiceName: "orders", NodeName: "x"}); !registry.IsValidationError(err) {
		t.Fatalf("invalid registration error = %v; want a validation error", err)
	}
	if n := mustDo(t, srv, "HLEN", svcKey("orders")); n != "0" {
		t.Fatal("invalid registration reached Redis")
	}
}

// A new instance loads what is in Redis before it serves.
func TestRedisLoadReadsSharedRegistry(t *testing.T) {
	srv := redistest.Start(t)
	a := startStore(t, RedisOptions{URL: srv.URL(0), InstanceID: "a"})
	ctx := context.Background()
	for i := range 50 {
		r := testReg("svc"+strconv.Itoa(i%5), "n"+strconv.Itoa(i), 8000+i)
		r.Weight = 1 + i%3
		r.Metadata = map[string]string{"i": strconv.Itoa(i)}
		if _, err := a.Register(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	b := startStore(t, RedisOptions{URL: srv.URL(0), InstanceID: "b"})
	if b.reg.Len() != 50 {
		t.Fatalf("after Load b has %d nodes; want 50", b.reg.Len())
	}
	n := b.reg.Snapshot("svc3").Parent("n8")
	if n == nil || n.Weight != 3 || n.Metadata["i"] != "8" || n.Address != "http://127.0.0.1:8008" {
		t.Fatalf("loaded node = %+v", n)
	}
}

func TestRedisHeartbeatOnOtherInstanceMovesExpiry(t *testing.T) {
	srv := redistest.Start(t)
	var clock testClock
	a := startStore(t, RedisOptions{URL: srv.URL(0), InstanceID: "a", Now: clock.now})
	b := startStore(t, RedisOptions{URL: srv.URL(0), InstanceID: "b", Now: clock.now})
	ctx := context.Background()
	mustDo(t, srv, "SET", testPrefix+":fence", "7")
	mustDo(t, srv, "SET", testPrefix+":leader", "lease-a")
	fenced := fencedBy(a.client, "lease-a", "7")

	t0 := clock.now()
	if _, err := a.Register(ctx, testReg("orders", "n1", 8081)); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 10*time.Second, "n1 on b", func() bool { return hasNode(b.reg, "orders", "n1", "") })
	score1, _ := strconv.ParseInt(mustDo(t, srv, "ZSCORE", testPrefix+":expiry", "orders\nn1"), 10, 64)

	clock.advance(4 * time.Second)
	if res, err := b.Register(ctx, testReg("orders", "n1", 8081)); err != nil || res.Kind != registry.NodeHeartbeat {
		t.Fatalf("heartbeat on b = %+v, %v", res, err)
	}
	score2, _ := strconv.ParseInt(mustDo(t, srv, "ZSCORE", testPrefix+":expiry", "orders\nn1"), 10, 64)
	if score2 < score1+4000 {
		t.Fatalf("expiry score %d after the heartbeat; want >= %d", score2, score1+4000)
	}

	// Past the first deadline, not past the heartbeat's: nothing expires.
	if n, err := a.Reap(ctx, t0.Add(7*time.Second), fenced); err != nil || n != 0 {
		t.Fatalf("Reap before the heartbeat's deadline = %d, %v; want 0", n, err)
	}
	if !hasNode(a.reg, "orders", "n1", "") {
		t.Fatal("node heartbeated on b was expired on a")
	}
	// Past the heartbeat's deadline it expires everywhere.
	if n, err := a.Reap(ctx, t0.Add(11*time.Second), fenced); err != nil || n != 1 {
		t.Fatalf("Reap after the deadline = %d, %v; want 1", n, err)
	}
	if hasNode(a.reg, "orders", "n1", "") {
		t.Fatal("reaped node still on the leader")
	}
	pollUntil(t, 10*time.Second, "reaped node gone from b", func() bool { return !hasNode(b.reg, "orders", "n1", "") })
	if n := mustDo(t, srv, "ZCARD", testPrefix+":expiry"); n != "0" {
		t.Fatalf("expiry index has %s members after the reap", n)
	}
}

func TestRedisReapRejectsStaleToken(t *testing.T) {
	srv := redistest.Start(t)
	var clock testClock
	a := startStore(t, RedisOptions{URL: srv.URL(0), InstanceID: "a", Now: clock.now})
	b := startStore(t, RedisOptions{URL: srv.URL(0), InstanceID: "b", Now: clock.now})
	ctx := context.Background()
	for i := range 3 {
		if _, err := a.Register(ctx, testReg("orders", "n"+strconv.Itoa(i), 8081+i)); err != nil {
			t.Fatal(err)
		}
	}
	pollUntil(t, 10*time.Second, "3 nodes on b", func() bool { return b.reg.Len() == 3 })
	mustDo(t, srv, "SET", testPrefix+":fence", "5")
	mustDo(t, srv, "SET", testPrefix+":leader", "lease-b")
	later := clock.now().Add(time.Hour)

	for _, stale := range []FencedFunc{fencedBy(a.client, "lease-b", "4"), fencedBy(a.client, "lease-a", "5")} {
		n, err := a.Reap(ctx, later, stale)
		if !errors.Is(err, ErrFenced) || n != 0 {
			t.Fatalf("stale Reap = %d, %v; want 0 and ErrFenced", n, err)
		}
	}
	if mustDo(t, srv, "HLEN", svcKey("orders")) != "3" || mustDo(t, srv, "ZCARD", testPrefix+":expiry") != "3" {
		t.Fatal("a fenced-off reap changed Redis")
	}
	if a.reg.Len() != 3 || b.reg.Len() != 3 {
		t.Fatalf("a fenced-off reap changed the registries: a=%d b=%d", a.reg.Len(), b.reg.Len())
	}

	n, err := b.Reap(ctx, later, fencedBy(b.client, "lease-b", "5"))
	if err != nil || n != 3 {
		t.Fatalf("Reap with the current token = %d, %v; want 3", n, err)
	}
	if b.reg.Len() != 0 {
		t.Fatal("reaped nodes still on the leader")
	}
	pollUntil(t, 10*time.Second, "reaped nodes gone from a", func() bool { return a.reg.Len() == 0 })
	if v := mustDo(t, srv, "HGET", testPrefix+":versions", "orders"); v != "6" {
		t.Fatalf("version after 3 registrations and 3 expiries = %s; want 6", v)
	}
}

func TestRedisDownThenRestartedEmpty(t *testing.T) {
	srv := redistest.Start(t)
	var clock testClock
	o := func(id string) RedisOptions {
		return RedisOptions{URL: srv.URL(0), InstanceID: id, Now: clock.now, ResyncInterval: 500 * time.Millisecond}
	}
	a := startStore(t, o("a"))
	b := startStore(t, o("b"))
	ctx := context.Background()
	if up := <-a.states; !up {
		t.Fatal("first reported state is down")
	}

	live := testReg("orders", "live", 8081)
	live.TimeOut = 60
	short := testReg("orders", "short", 8082)
	short.TimeOut = 1
	for _, r := range []registry.Registration{live, short} {
		if _, err := a.Register(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	pollUntil(t, 10*time.Second, "both nodes on b", func() bool { return b.reg.Len() == 2 })

	srv.Kill()
	_, err := a.Register(ctx, testReg("orders", "new", 8083))
	if !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Register with Redis down: %v; want ErrStoreUnavailable", err)
	}
	if !strings.Contains(err.Error(), srv.Addr()) {
		t.Fatalf("error %q does not name the store", err)
	}
	if hasNode(a.reg, "orders", "new", "") || a.reg.Len() != 2 {
		t.Fatal("a registration Redis did not take was applied locally")
	}
	if _, err := a.Deregister(ctx, "orders", "live"); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Deregister with Redis down: %v; want ErrStoreUnavailable", err)
	}
	if !hasNode(a.reg, "orders", "live", "") {
		t.Fatal("a deregistration Redis did not take was applied locally")
	}
	if a.Up() {
		t.Fatal("Up() is true with Redis down")
	}
	pollUntil(t, 5*time.Second, "down reported", func() bool {
		for {
			select {
			case up := <-a.states:
				if !up {
					return true
				}
			default:
				return false
			}
		}
	})

	// During the outage the short node's deadline passes.
	clock.advance(10 * time.Second)
	srv.Restart() // empty: no persistence

	pollUntil(t, 20*time.Second, "live node written back", func() bool {
		v, err := srv.Do("HEXISTS", svcKey("orders"), "live")
		return err == nil && v == "1"
	})
	epoch := mustDo(t, srv, "GET", testPrefix+":epoch")
	for _, s := range []*testStore{a, b} {
		pollUntil(t, 20*time.Second, "new epoch adopted", func() bool {
			s.applyMu.Lock()
			defer s.applyMu.Unlock()
			return s.epoch == epoch
		})
	}
	if v := mustDo(t, srv, "HEXISTS", svcKey("orders"), "short"); v != "0" {
		t.Fatal("a node whose deadline passed during the outage was written back")
	}
	if a.Reseeded()+b.Reseeded() == 0 {
		t.Fatal("no node counted as reseeded")
	}
	for _, s := range []*testStore{a, b} {
		pollUntil(t, 20*time.Second, "expired node dropped locally", func() bool { return !hasNode(s.reg, "orders", "short", "") })
		if !hasNode(s.reg, "orders", "live", "") {
			t.Fatal("live node lost locally")
		}
	}
	pollUntil(t, 10*time.Second, "up again", func() bool { return a.Up() })

	// Registrations work again and replicate.
	if _, err := a.Register(ctx, testReg("orders", "new", 8083)); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 10*time.Second, "new node on b", func() bool { return hasNode(b.reg, "orders", "new", "") })
}

func TestRedisResyncHealsMissedMessages(t *testing.T) {
	srv := redistest.Start(t)
	a := startStore(t, RedisOptions{URL: srv.URL(0), InstanceID: "a", ResyncInterval: 300 * time.Millisecond})
	b := startStore(t, RedisOptions{URL: srv.URL(0), InstanceID: "b", ResyncInterval: 300 * time.Millisecond})
	ctx := context.Background()

	b.unsubscribed.Store(true)
	if _, err := a.Register(ctx, testReg("orders", "n1", 8081)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Register(ctx, testReg("users", "u1", 8082)); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 10*time.Second, "missed registrations healed by resync", func() bool {
		return hasNode(b.reg, "orders", "n1", "") && hasNode(b.reg, "users", "u1", "")
	})
	if _, err := a.Deregister(ctx, "users", "u1"); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 10*time.Second, "missed deregistration healed by resync", func() bool { return !hasNode(b.reg, "users", "u1", "") })
	b.unsubscribed.Store(false)

	// A change written into Redis without a publish.
	st := registry.NodeState{Registration: testReg("orders", "n2", 8090), RegisteredAt: time.Now().UnixMilli(), ExpiresAt: time.Now().Add(time.Minute).UnixMilli()}
	_, state, _ := encodeNodeState(&st)
	mustDo(t, srv, "HSET", svcKey("orders"), "n2", state)
	mustDo(t, srv, "HINCRBY", testPrefix+":versions", "orders", "1")
	for _, s := range []*testStore{a, b} {
		pollUntil(t, 10*time.Second, "unpublished change applied", func() bool { return hasNode(s.reg, "orders", "n2", "http://127.0.0.1:8090") })
	}
	if b.Resyncs() == 0 {
		t.Fatal("no resync counted")
	}
}

// A lost message is noticed from the next one's version and healed without
// waiting for the periodic resync.
func TestRedisVersionGapReloadsService(t *testing.T) {
	srv := redistest.Start(t)
	a := startStore(t, RedisOptions{URL: srv.URL(0), InstanceID: "a", ResyncInterval: time.Hour})
	b := startStore(t, RedisOptions{URL: srv.URL(0), InstanceID: "b", ResyncInterval: time.Hour})
	ctx := context.Background()
	if _, err := a.Register(ctx, testReg("orders", "n0", 8080)); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 10*time.Second, "n0 on b", func() bool { return hasNode(b.reg, "orders", "n0", "") })

	b.unsubscribed.Store(true)
	if _, err := a.Register(ctx, testReg("orders", "n1", 8081)); err != nil {
		t.Fatal(err)
	}
	// Let the message for n1 reach b (and be dropped) before listening again.
	time.Sleep(200 * time.Millisecond)
	b.unsubscribed.Store(false)
	if _, err := a.Register(ctx, testReg("orders", "n2", 8082)); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 10*time.Second, "n2 on b", func() bool { return hasNode(b.reg, "orders", "n2", "") })
	pollUntil(t, 10*time.Second, "lost n1 healed on b", func() bool { return hasNode(b.reg, "orders", "n1", "") })
}

func TestRedisConfigShared(t *testing.T) {
	srv := redistest.Start(t)
	var got sync.Map
	o := func(id string) RedisOptions {
		return RedisOptions{URL: srv.URL(0), InstanceID: id, OnConfig: func(b []byte) { got.Store(id, string(b)) }}
	}
	a := startStore(t, o("a"))
	b := startStore(t, o("b"))
	ctx := context.Background()
	mustDo(t, srv, "SET", testPrefix+":fence", "3")
	mustDo(t, srv, "SET", testPrefix+":leader", "lease-a")

	if err := a.SaveConfig(ctx, []byte(`{"x":1}`), fencedBy(a.client, "lease-a", "2")); !errors.Is(err, ErrFenced) {
		t.Fatalf("SaveConfig with a stale token: %v; want ErrFenced", err)
	}
	if err := a.SaveConfig(ctx, []byte(`{"x":2}`), fencedBy(a.client, "lease-a", "3")); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 10*time.Second, "config on b", func() bool { v, _ := got.Load("b"); return v == `{"x":2}` })
	if _, ok := got.Load("a"); ok {
		t.Fatal("OnConfig called on the instance that saved the config")
	}
	data, err := b.LoadConfig(ctx)
	if err != nil || string(data) != `{"x":2}` {
		t.Fatalf("LoadConfig = %q, %v", data, err)
	}
}

func TestRedisOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		o    RedisOptions
		want string // "" = valid
	}{
		{RedisOptions{URL: "redis://127.0.0.1:6379/0"}, ""},
		{RedisOptions{URL: "rediss://user:p%40ss@redis.example:6380/3"}, ""},
		{RedisOptions{SentinelMaster: "m", SentinelAddrs: []string{"127.0.0.1:26379", "[::1]:26380"}}, ""},
		{RedisOptions{}, "MAXINE_REGISTRY_REDIS_URL"},
		{RedisOptions{URL: "http://127.0.0.1:6379"}, "MAXINE_REGISTRY_REDIS_URL"},
		{RedisOptions{URL: "redis://u:secret@127.0.0.1:6379/x"}, "MAXINE_REGISTRY_REDIS_URL"},
		{RedisOptions{SentinelMaster: "m"}, "MAXINE_REDIS_SENTINEL_ADDRS"},
		{RedisOptions{SentinelAddrs: []string{"127.0.0.1:26379"}}, "MAXINE_REDIS_SENTINEL_MASTER"},
		{RedisOptions{SentinelMaster: "m", SentinelAddrs: []string{"127.0.0.1"}}, "MAXINE_REDIS_SENTINEL_ADDRS"},
		{RedisOptions{URL: "redis://127.0.0.1", Prefix: "a b"}, "MAXINE_REGISTRY_REDIS_KEY_PREFIX"},
		{RedisOptions{URL: "redis://127.0.0.1", Prefix: "a{b}"}, "MAXINE_REGISTRY_REDIS_KEY_PREFIX"},
	} {
		err := tc.o.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.o, err)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("%+v: error %v; want one naming %s", tc.o, err, tc.want)
		case err != nil && (strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "\n")):
			t.Errorf("error %q leaks the password or spans lines", err)
		}
	}
}

func TestNewRedisClientURLForms(t *testing.T) {
	for _, tc := range []struct {
		url                  string
		addr, user, password string
		db                   int
		tls                  bool
	}{
		{"redis://127.0.0.1:6380", "127.0.0.1:6380", "", "", 0, false},
		{"redis://:pw@10.0.0.1/2", "10.0.0.1:6379", "", "pw", 2, false},
		{"redis://maxine:p%40ss%2Fw@[::1]:7000/15", "[::1]:7000", "maxine", "p@ss/w", 15, false},
		{"rediss://acl-user:s3cret@redis.example:6380/1", "redis.example:6380", "acl-user", "s3cret", 1, true},
	} {
		c, err := NewRedisClient(RedisOptions{URL: tc.url})
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		o := c.(*redis.Client).Options()
		if o.Addr != tc.addr || o.Username != tc.user || o.Password != tc.password || o.DB != tc.db || (o.TLSConfig != nil) != tc.tls {
			t.Errorf("%s: addr %q user %q password %q db %d tls %v", tc.url, o.Addr, o.Username, o.Password, o.DB, o.TLSConfig != nil)
		}
		if tc.tls && o.TLSConfig.ServerName != "redis.example" {
			t.Errorf("%s: TLS server name %q", tc.url, o.TLSConfig.ServerName)
		}
		c.Close()
	}
}

// A store on a Redis that is not there fails to load with
// ErrStoreUnavailable, and Register outside Run is refused.
func TestRedisUnreachableAtStart(t *testing.T) {
	port := redistest.FreePort(t)
	o := RedisOptions{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), Registry: registry.New(registry.Options{})}
	c, err := NewRedisClient(o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := NewRedis(o, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(context.Background()); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Load: %v; want ErrStoreUnavailable", err)
	}
	if _, err := s.Register(context.Background(), testReg("a", "b", 1)); err == nil {
		t.Fatal("Register outside Run succeeded")
	}
}

// With MinReplicas and no replica to acknowledge, a write is reported as
// failed (the client retries). It did reach the primary, so the registries
// may still learn it from its message: Redis, not the error, is the truth.
func TestRedisMinReplicasRefusesUnreplicatedWrite(t *testing.T) {
	srv := redistest.Start(t)
	st := startStore(t, RedisOptions{URL: srv.URL(0), InstanceID: "a", MinReplicas: 1, ReplicaWaitTimeout: 50 * time.Millisecond})
	_, err := st.Register(context.Background(), testReg("orders", "n1", 8081))
	if !errors.Is(err, ErrStoreUnavailable) || !strings.Contains(err.Error(), "replicas") {
		t.Fatalf("Register without a replica: %v; want ErrStoreUnavailable about replicas", err)
	}
}
