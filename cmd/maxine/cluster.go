package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/maxine-io/maxine/admin"
	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/coordination"
	"github.com/maxine-io/maxine/gateway"
	"github.com/maxine-io/maxine/observe"
	"github.com/maxine-io/maxine/persistence"
	"github.com/maxine-io/maxine/registry"
)

// clusterSettings are the settings of the shared state modes. The flags
// fill the packages' own option structs (persistence.RedisOptions,
// persistence.SharedFileOptions, coordination.Options); only what has no
// home there lives here.
type clusterSettings struct {
	redis    persistence.RedisOptions
	shared   persistence.SharedFileOptions
	lease    coordination.Options
	sentinel string // comma-separated sentinel addresses

	advertiseAdmin, advertiseGateway string
	reapInterval                     time.Duration
}

func defineClusterSettings(c *clusterSettings, s *settings) {
	s.String(&c.redis.SentinelMaster, "redis-sentinel-master", "MAXINE_REDIS_SENTINEL_MASTER", "", "Redis Sentinel master name (redis mode through Sentinel; the URL then only gives user, password, DB and TLS)")
	s.String(&c.sentinel, "redis-sentinel-addrs", "MAXINE_REDIS_SENTINEL_ADDRS", "", "comma-separated Redis Sentinel addresses host:port")
	s.String(&c.redis.SentinelPassword, "", "MAXINE_REDIS_SENTINEL_PASSWORD", "", "password of the Redis Sentinels (when they require one)")
	s.Int(&c.redis.MinReplicas, "redis-min-replicas", "MAXINE_REDIS_MIN_REPLICAS", 0, "acknowledge a registration only once this many Redis replicas have it (WAIT); 0 = the primary alone")
	s.Duration(&c.redis.ReplicaWaitTimeout, "redis-replica-wait", "MAXINE_REDIS_REPLICA_WAIT", persistence.DefaultReplicaWaitTimeout, "how long a write waits for --redis-min-replicas")
	s.Duration(&c.redis.ResyncInterval, "redis-resync-interval", "MAXINE_REDIS_RESYNC_INTERVAL", persistence.DefaultRedisResyncInterval, "full resync by versions that heals missed change messages (redis mode)")
	s.String(&c.shared.Path, "shared-file", "MAXINE_SHARED_STATE_FILE", "", "state file shared by the instances in shared-file mode (default <data-dir>/registry-state.json)")
	s.Duration(&c.shared.PollInterval, "shared-poll-interval", "MAXINE_SHARED_POLL_INTERVAL", persistence.DefaultSharedPollInterval, "how often the shared file is checked for other instances' changes (shared-file mode)")
	s.String(&c.advertiseAdmin, "advertise-admin-addr", "MAXINE_ADVERTISE_ADMIN_ADDR", "", "admin address other instances use to reach this one (leader forwarding); default: the listen address, with this host's first non-loopback IP when it has no host")
	s.String(&c.advertiseGateway, "advertise-gateway-addr", "MAXINE_ADVERTISE_GATEWAY_ADDR", "", "gateway address published in the membership record; default as for the admin address")
	s.Duration(&c.reapInterval, "reap-interval", "MAXINE_REAP_INTERVAL", 250*time.Millisecond, "how often the leader removes expired nodes from the shared registry (redis mode)")
}

// validate checks the cluster settings of mode with one line naming the
// setting at fault.
func (c *clusterSettings) validate(o *options) error {
	switch o.stateMode {
	case "redis":
		c.redis.URL, c.redis.Prefix, c.redis.InstanceID = o.redisURL, o.redisPrefix, o.instanceID
		c.redis.SentinelAddrs = splitList(c.sentinel)
		if err := c.redis.Validate(); err != nil {
			return err
		}
		c.lease.LeaseTTL, c.lease.RenewInterval = o.leaseInterval, o.renewInterval
		c.lease.InstanceID, c.lease.Prefix = o.instanceID, o.redisPrefix
		check := c.lease
		check.Client = redis.NewClient(&redis.Options{}) // Validate wants one; it never connects
		err := check.Validate()
		_ = check.Client.Close()
		if err != nil {
			return fmt.Errorf("MAXINE_LEADER_LEASE / MAXINE_LEADER_RENEW (--lease-interval / --renew-interval): %w", err)
		}
		if c.reapInterval < 10*time.Millisecond {
			return errors.New("MAXINE_REAP_INTERVAL (--reap-interval) must be at least 10ms")
		}
	case "shared-file":
		c.shared.Dir, c.shared.InstanceID = o.dataDir, o.instanceID
		if c.shared.PollInterval < 10*time.Millisecond {
			return errors.New("MAXINE_SHARED_POLL_INTERVAL (--shared-poll-interval) must be at least 10ms")
		}
	}
	return nil
}

// stateBackend is what serve needs of a shared state mode.
type stateBackend struct {
	mode      string
	registrar admin.Registrar
	// cluster reports /api/actuator/cluster.
	cluster func() admin.ClusterStatus
	// saveSettings shares a runtime settings change (nil: local only).
	saveSettings func(ctx context.Context, s config.Settings) error
	// leader reports whether this instance does the leader-only work
	// (health probes); nil: always.
	leader func() bool
	// evictor removes a node found dead (nil: the local registry).
	evictor func(service, node, address string) bool
	// storeUp reports the shared store's reachability for readiness.
	storeUp func() bool
	// run runs the backend's background work until ctx ends.
	run func(ctx context.Context)
	// health shares this instance's health verdicts (nil: not shared).
	health func(service, node string, healthy bool)
	// proxy is the gateway, set before run: shared verdicts apply to it.
	proxy atomic.Pointer[gateway.Proxy]
}

// clusterDeps are the parts of serve a backend reports to.
type clusterDeps struct {
	reg      *registry.Registry
	settings *config.Store
	log      zerolog.Logger
	audit    *observe.Audit
	alerts   *observe.Alerts
	metrics  *metrics.Set
	// adminAddr and gatewayAddr are the listeners' addresses.
	adminAddr, gatewayAddr string
	// onSettings applies a settings change made by another instance.
	onSettings func(old, cur config.Settings)
}

// advertised turns a listen address into one other hosts can dial: an
// explicit setting wins; a missing or unspecified host becomes this host's
// first non-loopback IP (or 127.0.0.1 when it has none).
func advertised(explicit, listen string) string {
	if explicit != "" {
		return explicit
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return listen
	}
	return net.JoinHostPort(firstHostIP(), port)
}

func firstHostIP() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// newStateBackend builds and loads the backend of a shared mode: the
// shared registry is in the local one before this returns (or the store is
// reported down and the registry starts empty, to be filled on reconnect).
func newStateBackend(o *options, c *clusterSettings, d clusterDeps) (*stateBackend, error) {
	switch o.stateMode {
	case "redis":
		return newRedisBackend(o, c, d)
	case "shared-file":
		return newSharedFileBackend(c, d)
	}
	return nil, fmt.Errorf("state mode %q has no shared backend", o.stateMode)
}

// storeAlerts raises state_store_down when the store becomes unreachable
// and logs its recovery; it also keeps the store_up gauge.
type storeAlerts struct {
	d    clusterDeps
	name string
	up   atomic.Bool
}

func (s *storeAlerts) changed(up bool, err error) {
	was := s.up.Swap(up)
	switch {
	case !up && (was || err != nil):
		msg := s.name + " is unreachable"
		if err != nil {
			msg += ": " + err.Error()
		}
		s.d.log.Error().Err(err).Str("store", s.name).Msg("state store down: registrations answer 503, the gateway keeps its tables")
		s.d.alerts.Raise(observe.Alert{Type: observe.AlertStateStoreDown, Severity: observe.SeverityCritical, Message: msg})
	case up && !was:
		s.d.log.Info().Str("store", s.name).Msg("state store reachable")
	}
}

func newRedisBackend(o *options, c *clusterSettings, d clusterDeps) (*stateBackend, error) {
	sa := &storeAlerts{d: d, name: "redis"}
	ro := c.redis
	ro.Registry, ro.Logger = d.reg, d.log
	ro.OnStoreState = sa.changed
	var b *stateBackend // set below; OnHealth runs only once Run does
	ro.OnHealth = func(v persistence.HealthVerdict) {
		if p := b.proxy.Load(); p != nil {
			p.SetHealth(v.Service, v.Node, v.Address, v.Healthy)
		}
	}
	ro.OnConfig = func(data []byte) {
		var st config.Settings
		if err := json.Unmarshal(data, &st); err != nil {
			d.log.Error().Err(err).Msg("ignoring a malformed shared config")
			return
		}
		applyShared(d, st)
	}
	client, err := persistence.NewRedisClient(ro)
	if err != nil {
		return nil, err
	}
	store, err := persistence.NewRedis(ro, client)
	if err != nil {
		return nil, err
	}
	lo := c.lease
	lo.Client, lo.Logger = client, d.log
	lo.AdminAddr = advertised(c.advertiseAdmin, d.adminAddr)
	lo.GatewayAddr = advertised(c.advertiseGateway, d.gatewayAddr)
	lo.OnChange = leadershipReporter(d)
	lease, err := coordination.New(lo)
	if err != nil {
		return nil, err
	}

	loadCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := store.Load(loadCtx); err != nil {
		// Start anyway: readiness reports the store down, registrations
		// answer 503, and the store loads everything once Redis answers.
		d.log.Error().Err(err).Msg("cannot load the shared registry from Redis; starting empty until it is reachable")
		sa.changed(false, err)
	} else {
		sa.up.Store(true)
		if data, err := store.LoadConfig(loadCtx); err == nil && len(data) > 0 {
			var st config.Settings
			if json.Unmarshal(data, &st) == nil {
				applyShared(d, st)
			}
		}
	}
	d.log.Info().Int("nodes", d.reg.Len()).Str("redis", redisTarget(&ro)).Msg("shared registry loaded from Redis")

	members := &memberCache{lease: lease}
	fenced := fencedRunner(lease)
	registerClusterMetrics(d.metrics, lease, func() bool { return store.Up() })
	d.metrics.GetOrCreateGauge(`maxine_store_errors_total`, func() float64 { return float64(store.StoreErrors()) })
	d.metrics.GetOrCreateGauge(`maxine_store_resyncs_total`, func() float64 { return float64(store.Resyncs()) })
	d.metrics.GetOrCreateGauge(`maxine_store_remote_changes_total`, func() float64 { return float64(store.RemoteChanges()) })
	d.metrics.GetOrCreateGauge(`maxine_store_sync_lag_seconds`, func() float64 { return store.LastSyncLag().Seconds() })
	d.metrics.GetOrCreateGauge(`maxine_store_reseeds_total`, func() float64 { return float64(store.Reseeded()) })

	verdicts := make(chan persistence.HealthVerdict, 4096)
	b = &stateBackend{
		mode:      "redis",
		registrar: store,
		storeUp:   store.Up,
		leader:    func() bool { ok, _ := lease.IsLeader(); return ok },
		cluster: func() admin.ClusterStatus {
			st := lease.Status()
			cs := admin.ClusterStatus{
				Enabled: true, InstanceID: st.InstanceID, IsLeader: st.IsLeader, HasLeader: st.HasLeader,
				FencingToken: st.FencingToken, LeaderInstanceID: st.LeaderInstanceID, ObservedAt: millis(st.ObservedAt),
				Mode: "redis", Elected: true, LeaderAdminAddr: st.LeaderAdminAddr, LeaseExpiresAt: millis(st.LeaseExpiresAt),
				StoreUp: store.Up(), Members: members.get(),
			}
			if cs.ObservedAt == 0 {
				cs.ObservedAt = time.Now().UnixMilli()
			}
			return cs
		},
		saveSettings: func(ctx context.Context, s config.Settings) error {
			data, err := json.Marshal(s)
			if err != nil {
				return err
			}
			err = store.SaveConfig(ctx, data, fenced)
			if errors.Is(err, persistence.ErrFenced) || errors.Is(err, coordination.ErrFenced) {
				return fmt.Errorf("%w: %v", admin.ErrNotLeader, err)
			}
			return err
		},
		health: func(service, node string, healthy bool) {
			// From the gateway's Run goroutine: hand the Redis write to
			// the backend's own goroutine.
			if ok, _ := lease.IsLeader(); !ok {
				return
			}
			v := persistence.HealthVerdict{Service: service, Node: node, Healthy: healthy, At: time.Now().UnixMilli()}
			if snap := d.reg.Snapshot(service); snap != nil {
				if n := snap.Parent(node); n != nil {
					v.Address = n.Address
				}
			}
			select {
			case verdicts <- v:
			default:
				d.log.Warn().Str("service", service).Str("node", node).Msg("health verdict not shared: queue full")
			}
		},
		evictor: func(service, node, address string) bool {
			// Leader-only (only the leader probes), and only the
			// registration that was probed.
			snap := d.reg.Snapshot(service)
			if snap == nil {
				return false
			}
			if n := snap.Parent(node); n == nil || n.Address != address {
				return false
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ok, err := store.Deregister(ctx, service, node)
			if err != nil {
				d.log.Warn().Err(err).Str("service", service).Str("node", node).Msg("health eviction not written to Redis")
			}
			return ok
		},
	}
	b.run = func(ctx context.Context) {
		var wg sync.WaitGroup
		run := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
		run(func() { _ = store.Run(ctx) })
		run(func() { lease.Run(ctx) })
		run(func() { members.run(ctx, lo.RenewInterval) })
		run(func() { reapLoop(ctx, c.reapInterval, lease, store, fenced, d) })
		run(func() { shareHealth(ctx, verdicts, store, fenced, d) })
		run(func() { syncHealth(ctx, ro.ResyncInterval, lease, store, b) })
		wg.Wait()
	}
	return b, nil
}

func redisTarget(o *persistence.RedisOptions) string {
	if o.SentinelMaster != "" {
		return "sentinel:" + o.SentinelMaster
	}
	return "url"
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// applyShared applies runtime settings another instance changed; this
// process's port stays its own.
func applyShared(d clusterDeps, st config.Settings) {
	old, cur := d.settings.Update(func(s *config.Settings) {
		port := s.Port
		*s = st
		s.Port = port
	})
	if d.onSettings != nil {
		d.onSettings(old, cur)
	}
}

// reapLoop is the leader's expiry of the shared registry: every interval,
// while this instance leads, the expired nodes are removed from Redis by
// a fenced script (a deposed leader's reap is refused by Redis), and the
// removal reaches every instance as a change message.
func reapLoop(ctx context.Context, every time.Duration, lease *coordination.Lease, store *persistence.Redis, fenced persistence.FencedFunc, d clusterDeps) {
	everyTick(ctx, every, func() {
		if ok, _ := lease.IsLeader(); !ok {
			return
		}
		n, err := store.Reap(ctx, time.Now(), fenced)
		switch {
		case errors.Is(err, persistence.ErrFenced) || errors.Is(err, coordination.ErrFenced):
			d.log.Warn().Err(err).Msg("expiry reap refused by Redis: this instance lost the leadership")
			d.audit.Record(observe.AuditEvent{Type: "fenced_write_rejected", Actor: "system", Details: map[string]any{"write": "expiry reap", "error": err.Error()}})
		case err != nil && ctx.Err() == nil:
			d.log.Warn().Err(err).Msg("expiry reap failed")
		case n > 0:
			d.log.Debug().Int("expired", n).Msg("expired nodes reaped")
		}
	})
}

// everyTick calls fn every interval until ctx ends: the shape of each of
// the backend's periodic duties.
func everyTick(ctx context.Context, every time.Duration, fn func()) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn()
	}
}

// leadershipReporter audits leadership changes and raises leadership_lost.
func leadershipReporter(d clusterDeps) func(coordination.Status) {
	var was atomic.Bool
	var leader atomic.Value // string
	leader.Store("")
	return func(st coordination.Status) {
		prev := was.Swap(st.IsLeader)
		switch {
		case st.IsLeader && !prev:
			d.log.Info().Int64("fencingToken", st.FencingToken).Str("reason", st.Reason).Msg("leadership gained")
			d.audit.Record(observe.AuditEvent{Type: "leadership_gained", Actor: "system",
				Details: map[string]any{"fencingToken": st.FencingToken, "reason": st.Reason}})
		case !st.IsLeader && prev:
			d.log.Warn().Str("reason", st.Reason).Str("leader", st.LeaderInstanceID).Msg("leadership lost")
			d.audit.Record(observe.AuditEvent{Type: "leadership_lost", Actor: "system",
				Details: map[string]any{"reason": st.Reason, "newLeader": st.LeaderInstanceID}})
			d.alerts.Raise(observe.Alert{Type: observe.AlertLeadershipLost, Severity: observe.SeverityCritical,
				Message: "this instance lost the leadership: " + st.Reason})
		}
		if old := leader.Swap(st.LeaderInstanceID).(string); old != st.LeaderInstanceID && !st.IsLeader {
			d.log.Info().Str("leader", st.LeaderInstanceID).Int64("fencingToken", st.FencingToken).Msg("leader observed")
		}
	}
}

// registerClusterMetrics exports leader state under both the old and the
// new names.
func registerClusterMetrics(set *metrics.Set, lease *coordination.Lease, storeUp func() bool) {
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	set.GetOrCreateGauge(`maxine_cluster_is_leader`, func() float64 { return b2f(lease.Status().IsLeader) })
	set.GetOrCreateGauge(`maxine_cluster_has_leader`, func() float64 { return b2f(lease.Status().HasLeader) })
	set.GetOrCreateGauge(`maxine_cluster_fencing_token`, func() float64 { return float64(lease.Status().FencingToken) })
	set.GetOrCreateGauge(`maxine_cluster_leadership_acquisitions_total`, func() float64 { return float64(lease.Counters().Acquisitions) })
	set.GetOrCreateGauge(`maxine_cluster_leadership_losses_total`, func() float64 { return float64(lease.Counters().Losses) })
	set.GetOrCreateGauge(`maxine_store_up`, func() float64 { return b2f(storeUp()) })
}

// memberCache keeps the cluster's member list, read from Redis every
// renew interval, so /api/actuator/cluster costs no Redis round trip.
type memberCache struct {
	lease *coordination.Lease
	list  atomic.Pointer[[]admin.ClusterMember]
}

func (m *memberCache) get() []admin.ClusterMember {
	if p := m.list.Load(); p != nil {
		return *p
	}
	return []admin.ClusterMember{}
}

func (m *memberCache) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, every)
		ms, err := m.lease.Members(rctx)
		cancel()
		if err == nil {
			out := make([]admin.ClusterMember, 0, len(ms))
			for _, x := range ms {
				out = append(out, admin.ClusterMember{InstanceID: x.InstanceID, AdminAddr: x.AdminAddr, GatewayAddr: x.GatewayAddr,
					StartedAt: millis(x.StartedAt), LastSeen: millis(x.LastSeen), Leader: x.Leader})
			}
			m.list.Store(&out)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func newSharedFileBackend(c *clusterSettings, d clusterDeps) (*stateBackend, error) {
	sa := &storeAlerts{d: d, name: "shared file"}
	so := c.shared
	so.Registry, so.Logger = d.reg, d.log
	so.OnStoreState = sa.changed
	store, err := persistence.NewSharedFile(so)
	if err != nil {
		return nil, err
	}
	restored, skipped, err := store.Load(context.Background())
	var corrupt *persistence.CorruptError
	switch {
	case errors.As(err, &corrupt):
		d.log.Error().Err(corrupt.Err).Str("file", corrupt.Path).Str("backup", corrupt.Backup).Msg("shared state file is corrupt: kept as a backup, starting empty")
	case err != nil:
		return nil, fmt.Errorf("cannot load the shared state file %q: %w", store.Path(), err)
	}
	sa.up.Store(true)
	d.log.Info().Int("restored", restored).Int("expiredSkipped", skipped).Str("file", store.Path()).Msg("shared registry loaded")
	host, _ := os.Hostname()
	return &stateBackend{
		mode:      "shared-file",
		registrar: store,
		storeUp:   func() bool { return sa.up.Load() },
		cluster: func() admin.ClusterStatus {
			return admin.ClusterStatus{
				Enabled: true, InstanceID: so.InstanceID, ObservedAt: time.Now().UnixMilli(), Mode: "shared-file",
				StoreUp: sa.up.Load(), Members: []admin.ClusterMember{},
				Message: "shared-file mode has no leader election: every instance writes the shared file under flock (" + host + ":" + strconv.Itoa(os.Getpid()) + ")",
			}
		},
		run: func(ctx context.Context) { _ = store.Run(ctx) },
	}, nil
}

// The accessors below let serve wire local mode (a nil backend) and the
// shared modes the same way.

func (b *stateBackend) leaderFunc() func() bool {
	if b == nil {
		return nil
	}
	return b.leader
}

func (b *stateBackend) evictorFunc() func(service, node, address string) bool {
	if b == nil {
		return nil
	}
	return b.evictor
}

func (b *stateBackend) storeUpFunc() func() bool {
	if b == nil {
		return nil
	}
	return b.storeUp
}

func (b *stateBackend) registrarOr(reg *registry.Registry) admin.Registrar {
	if b == nil {
		return admin.LocalRegistrar{Registry: reg}
	}
	return b.registrar
}

func (b *stateBackend) clusterFunc() func() admin.ClusterStatus {
	if b == nil {
		return nil
	}
	return b.cluster
}

func (b *stateBackend) saveSettingsFunc() func(context.Context, config.Settings) error {
	if b == nil {
		return nil
	}
	return b.saveSettings
}

// fencedRunner adapts the lease's fenced writes to the store: each of the
// store's fenced scripts (whose body reads its own keys from KEYS[3] on,
// after the fence prelude) is built once with coordination.FencedScript.
func fencedRunner(lease *coordination.Lease) persistence.FencedFunc {
	var built sync.Map // *redis.Script (store's) -> *redis.Script (fenced)
	return func(ctx context.Context, script *redis.Script, keys []string, args ...any) (any, error) {
		f, ok := built.Load(script)
		if !ok {
			src, known := persistence.ScriptSource(script)
			if !known {
				return nil, errors.New("fenced write with a script the store does not know")
			}
			f, _ = built.LoadOrStore(script, coordination.FencedScript(src))
		}
		return lease.Fenced(ctx, f.(*redis.Script), keys, args...)
	}
}

// shareHealth writes the leader's health verdicts to Redis (fenced: a
// deposed leader's verdicts are refused) until ctx ends.
func shareHealth(ctx context.Context, verdicts <-chan persistence.HealthVerdict, store *persistence.Redis, fenced persistence.FencedFunc, d clusterDeps) {
	for {
		select {
		case <-ctx.Done():
			return
		case v := <-verdicts:
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := store.SaveHealth(wctx, v, fenced)
			cancel()
			if err != nil && ctx.Err() == nil {
				d.log.Warn().Err(err).Str("service", v.Service).Str("node", v.Node).Msg("health verdict not shared")
			}
		}
	}
}

// syncHealth makes a follower's gateway follow the leader's verdicts in
// Redis every interval, healing any missed message. The leader keeps its
// own probes' verdicts.
func syncHealth(ctx context.Context, every time.Duration, lease *coordination.Lease, store *persistence.Redis, b *stateBackend) {
	if every <= 0 {
		every = persistence.DefaultRedisResyncInterval
	}
	everyTick(ctx, every, func() {
		p := b.proxy.Load()
		if ok, _ := lease.IsLeader(); ok || p == nil {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, every)
		list, err := store.LoadHealth(rctx)
		cancel()
		if err != nil {
			return
		}
		down := make(map[string]string, len(list))
		for _, v := range list {
			down[v.Service+"\n"+v.Node] = v.Address
		}
		p.SyncHealth(func(service, node, address string) bool {
			a, ok := down[service+"\n"+node]
			return ok && a == address
		})
	})
}

func (b *stateBackend) healthFunc() func(service, node string, healthy bool) {
	if b == nil {
		return nil
	}
	return b.health
}
