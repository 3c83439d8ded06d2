// The Redis store (state mode redis, SPEC 6). Redis is the source of truth
// for the shared registry; every instance's registry.Registry is a replica
// that discovery and the gateway read without ever waiting on Redis.
//
// One replicated change, file by file:
//
//  1. redis_write.go: admin calls Redis.Register. The caller's registration
//     is encoded once (registration JSON, then registeredAt and expiresAt)
//     and handed to the writer goroutine, which collects every registration
//     that is ready (up to maxBatch) and sends them in one pipeline of
//     EVALSHA calls (plus WAIT when MinReplicas is set).
//  2. redis_scripts.go: the register script runs atomically in Redis. It
//     compares the stored node's registration part with the new one: equal
//     means a heartbeat (state and expiry score move forward, nothing else);
//     different or absent means a structural change: the service's version
//     is bumped, the service is added to the services set and the change is
//     published on <prefix>:events with its version, the Redis epoch and the
//     publish time.
//  3. redis_write.go: when the pipeline reply arrives the writer applies
//     each result to the local registry in pipeline order (registry.Upsert,
//     gated by the service's applied version, see below) and only then wakes
//     the caller, who answers 200. An error (Redis down, no replica ack)
//     wakes the caller with an error wrapping ErrStoreUnavailable and
//     nothing is applied locally.
//  4. redis_sync.go: every other instance's subscriber receives the message
//     and applies it with registry.Upsert or registry.Remove. Per service it
//     remembers the last applied version: a message at or below it is old
//     news and ignored; a message more than one above it means messages
//     were lost, so it is applied and the service is reloaded from Redis
//     unless the missing versions arrive soon (pipeline replies can overtake
//     the publish of an earlier change).
//  5. redis_sync.go: a periodic resync reads the versions hash and reloads
//     every service whose version differs from the applied one, and removes
//     local services that Redis no longer has. It also watches the epoch
//     key: an epoch that changed means Redis lost its data (a restart
//     without persistence, a failover to an empty replica); the instance
//     then writes back its own nodes that have not expired (never
//     resurrecting one whose deadline passed) and reloads everything.
//  6. redis_leader.go: expiry is the leader's job. Reap runs a fenced script
//     (the coordination lease's fencing token must still be current) that
//     removes due nodes from the expiry index and publishes their removal,
//     so a stale leader can never expire a node a newer leader keeps.
//
// Invariants: only the writer goroutine sends registrations to Redis and it
// applies their results in Redis order; every local change caused by Redis
// (writer results, messages, reloads) is made under applyMu together with
// the applied-version bookkeeping; discovery and the gateway only read the
// registry's snapshots; every goroutine belongs to Run and ends with its
// context.

package persistence

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/maxine-io/maxine/registry"
)

// Defaults of RedisOptions.
const (
	DefaultRedisPrefix         = "maxine:registry"
	DefaultRedisResyncInterval = 5 * time.Second
	DefaultReplicaWaitTimeout  = time.Second
)

// ErrFenced is wrapped by Reap and SaveConfig errors when Redis rejected the
// write because the caller's fencing token is no longer current: another
// instance is the leader now.
var ErrFenced = errors.New("fenced: the leader lease was lost")

// FencedFunc runs script as a leader-only write: it prepends the leader key
// and the fence key to keys and the lease value and fencing token to args,
// and the script runs only while both are still current (otherwise Redis
// replies with an error starting with "FENCED"). coordination's Lease.Fenced
// is one. The script reads its own keys from KEYS[3] and its own arguments
// from ARGV[3] on.
type FencedFunc func(ctx context.Context, script *redis.Script, keys []string, args ...any) (any, error)

// RedisOptions configure the Redis store and its client. Settings map to
// the environment variables named in Validate's errors.
type RedisOptions struct {
	// URL is redis://[user:password@]host:port[/db] or rediss:// for TLS
	// (MAXINE_REGISTRY_REDIS_URL). With Sentinel it is optional and only
	// supplies the user, password, DB and TLS for the primary; its host is
	// ignored.
	URL string
	// SentinelMaster and SentinelAddrs (host:port, …) select a primary
	// through Redis Sentinel (MAXINE_REDIS_SENTINEL_MASTER,
	// MAXINE_REDIS_SENTINEL_ADDRS). SentinelPassword authenticates to the
	// sentinels.
	SentinelMaster   string
	SentinelAddrs    []string
	SentinelPassword string
	// TLS, if set, is the TLS configuration for rediss:// (a private CA,
	// client certificates). Its ServerName defaults to the URL's host.
	TLS *tls.Config
	// Prefix starts every key (MAXINE_REGISTRY_REDIS_KEY_PREFIX); empty
	// means DefaultRedisPrefix.
	Prefix string
	// InstanceID names this instance in published changes (origin).
	InstanceID string
	// Registry is the local replica. Required.
	Registry *registry.Registry
	// ResyncInterval is the period of the full resync by versions; 0 means
	// DefaultRedisResyncInterval.
	ResyncInterval time.Duration
	// MinReplicas, when > 0, makes every write batch end with WAIT
	// MinReplicas ReplicaWaitTimeout: a registration is acknowledged only
	// once that many replicas have it, so a Sentinel failover to one of
	// them cannot lose it. Redis replication is asynchronous; without
	// this, a write acknowledged by a primary that dies a moment later
	// may never reach the replica that takes over. A write that too few
	// replicas acknowledged in time is reported as failed (wrapping
	// ErrStoreUnavailable, so the client retries) although the primary
	// has it; the registries learn it from its published change like any
	// other, and the retry makes it durable.
	MinReplicas int
	// ReplicaWaitTimeout bounds that WAIT; 0 means DefaultReplicaWaitTimeout.
	ReplicaWaitTimeout time.Duration
	Logger             zerolog.Logger
	// Now replaces time.Now (registration times, expiry, reseeding).
	Now func() time.Time
	// OnStoreState, if set, is called on every change of the store's
	// reachability (and once for the first known state), serialized. It
	// must not call back into the store.
	OnStoreState func(up bool, err error)
	// OnConfig, if set, is called from Run with the runtime configuration
	// when another instance changed it (SaveConfig).
	OnConfig func(data []byte)
	// OnHealth, if set, is called from Run with a health verdict another
	// instance (the leader) published (SaveHealth).
	OnHealth func(HealthVerdict)
}

// Validate checks the options as given (before defaults), with one line per
// error naming the setting.
func (o *RedisOptions) Validate() error {
	sentinel := o.SentinelMaster != "" || len(o.SentinelAddrs) > 0
	switch {
	case o.URL == "" && !sentinel:
		return errors.New("MAXINE_REGISTRY_REDIS_URL: required in the redis state mode (or set MAXINE_REDIS_SENTINEL_MASTER and MAXINE_REDIS_SENTINEL_ADDRS)")
	case o.SentinelMaster != "" && len(o.SentinelAddrs) == 0:
		return errors.New("MAXINE_REDIS_SENTINEL_ADDRS: required when MAXINE_REDIS_SENTINEL_MASTER is set")
	case o.SentinelMaster == "" && len(o.SentinelAddrs) > 0:
		return errors.New("MAXINE_REDIS_SENTINEL_MASTER: required when MAXINE_REDIS_SENTINEL_ADDRS is set")
	}
	if o.URL != "" {
		if !strings.HasPrefix(o.URL, "redis://") && !strings.HasPrefix(o.URL, "rediss://") {
			return fmt.Errorf("MAXINE_REGISTRY_REDIS_URL: %q must start with redis:// or rediss://", redactURL(o.URL))
		}
		if _, err := redis.ParseURL(o.URL); err != nil {
			return fmt.Errorf("MAXINE_REGISTRY_REDIS_URL: %q: %v", redactURL(o.URL), err)
		}
	}
	for _, a := range o.SentinelAddrs {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return fmt.Errorf("MAXINE_REDIS_SENTINEL_ADDRS: %q is not host:port", a)
		}
	}
	return o.validateStore()
}

// validateStore checks the settings that do not concern the connection.
func (o *RedisOptions) validateStore() error {
	if strings.ContainsAny(o.Prefix, " \t\r\n{}") {
		return fmt.Errorf("MAXINE_REGISTRY_REDIS_KEY_PREFIX: %q must not contain spaces or braces", o.Prefix)
	}
	if o.MinReplicas < 0 {
		return fmt.Errorf("redis MinReplicas: %d must not be negative", o.MinReplicas)
	}
	if o.ResyncInterval < 0 || o.ReplicaWaitTimeout < 0 {
		return errors.New("redis ResyncInterval and ReplicaWaitTimeout must not be negative")
	}
	return nil
}

// redactURL hides a URL's password in error messages and logs.
func redactURL(u string) string {
	at := strings.LastIndexByte(u, '@')
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return u
	}
	userinfo := u[scheme+3 : at]
	if i := strings.IndexByte(userinfo, ':'); i >= 0 {
		return u[:scheme+3] + userinfo[:i] + ":xxxxx" + u[at:]
	}
	return u
}

// NewRedisClient builds the client the store and the coordination package
// share: a plain client for o.URL, or a Sentinel failover client. It does
// not connect; the first command does.
func NewRedisClient(o RedisOptions) (redis.UniversalClient, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	base := &redis.Options{}
	if o.URL != "" {
		var err error
		if base, err = redis.ParseURL(o.URL); err != nil {
			return nil, fmt.Errorf("MAXINE_REGISTRY_REDIS_URL: %v", err)
		}
		if base.TLSConfig != nil && o.TLS != nil {
			c := o.TLS.Clone()
			if c.ServerName == "" {
				c.ServerName = base.TLSConfig.ServerName
			}
			if c.MinVersion == 0 {
				c.MinVersion = tls.VersionTLS12
			}
			base.TLSConfig = c
		}
	}
	// Bounded waits: a registration fails with 503 within a few seconds
	// when Redis is gone rather than hanging on go-redis's default retries.
	if base.DialTimeout == 0 {
		base.DialTimeout = 2 * time.Second
	}
	if base.ReadTimeout == 0 {
		base.ReadTimeout = 3 * time.Second
	}
	if base.WriteTimeout == 0 {
		base.WriteTimeout = 3 * time.Second
	}
	if base.MaxRetries == 0 {
		base.MaxRetries = 1
	}
	if o.SentinelMaster == "" {
		base.DisableIdentity = true
		base.DialerRetries = 1
		return redis.NewClient(base), nil
	}
	return redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:       o.SentinelMaster,
		SentinelAddrs:    o.SentinelAddrs,
		SentinelPassword: o.SentinelPassword,
		Username:         base.Username,
		Password:         base.Password,
		DB:               base.DB,
		TLSConfig:        base.TLSConfig,
		DialTimeout:      base.DialTimeout,
		ReadTimeout:      base.ReadTimeout,
		WriteTimeout:     base.WriteTimeout,
		MaxRetries:       base.MaxRetries,
		DialerRetries:    1,
		DisableIdentity:  true,
	}), nil
}

// redisKeys are the store's key names (cluster design: per-service hashes,
// never one global blob).
type redisKeys struct {
	svcPrefix     string // + service + "}" is the service's hash
	versions      string
	services      string
	expiry        string
	epoch         string
	config        string
	configVersion string
	channel       string
}

func newRedisKeys(prefix string) redisKeys {
	return redisKeys{
		svcPrefix:     prefix + ":svc:{",
		versions:      prefix + ":versions",
		services:      prefix + ":services",
		expiry:        prefix + ":expiry",
		epoch:         prefix + ":epoch",
		config:        prefix + ":config",
		configVersion: prefix + ":config:version",
		channel:       prefix + ":events",
	}
}

func (k *redisKeys) svc(service string) string { return k.svcPrefix + service + "}" }

// Redis is the Redis-backed shared registry store. Create it with NewRedis,
// call Load before the listeners open, then run Run for the life of the
// process; Register and Deregister work while Run runs. A Redis must not be
// copied.
type Redis struct {
	o      RedisOptions
	client redis.UniversalClient
	keys   redisKeys
	reg    *registry.Registry
	now    func() time.Time
	log    zerolog.Logger
	addr   string // names the store in errors
	origin string // JSON-encoded instance id
	// epochSeed makes the epoch this instance creates unique; Redis adds
	// its own clock.
	epochSeed string

	writes  chan *writeOp // unbuffered: a send is a hand-off to the writer
	running atomic.Bool
	started chan struct{} // closed when Run starts
	stopped chan struct{} // closed when Run returns

	resyncNow chan struct{} // capacity 1: a full resync is wanted
	configNow chan struct{} // capacity 1: the config may have changed

	// applyMu serializes every local change that comes from Redis with the
	// bookkeeping below.
	applyMu sync.Mutex
	applied map[string]int64     // service -> last applied version
	gaps    map[string]gapRecord // services waiting for missing versions
	epoch   string               // the Redis epoch the applied versions belong to

	configMu      sync.Mutex
	configVersion int64

	stateMu   sync.Mutex  // serializes OnStoreState calls
	stateSeen atomic.Bool // a state was reported
	up        atomic.Bool

	storeErrors   atomic.Uint64
	resyncs       atomic.Uint64
	remoteChanges atomic.Uint64
	reseeded      atomic.Uint64
	lastLag       atomic.Int64 // ns

	// subscribed is set once the subscriber listens (tests wait for it).
	subscribed atomic.Bool
	// unsubscribed, when set (tests only), makes the subscriber drop
	// messages as if they had been lost.
	unsubscribed atomic.Bool
}

type gapRecord struct {
	want  int64     // the version seen beyond the applied one
	since time.Time // when the gap was first seen
}

// NewRedis returns the store for o over client (from NewRedisClient; the
// caller owns it and closes it after Run returned).
func NewRedis(o RedisOptions, client redis.UniversalClient) (*Redis, error) {
	if o.Registry == nil || client == nil {
		return nil, errors.New("persistence: NewRedis needs a Registry and a client")
	}
	if err := o.validateStore(); err != nil {
		return nil, err
	}
	if o.Prefix == "" {
		o.Prefix = DefaultRedisPrefix
	}
	if o.ResyncInterval <= 0 {
		o.ResyncInterval = DefaultRedisResyncInterval
	}
	if o.ReplicaWaitTimeout <= 0 {
		o.ReplicaWaitTimeout = DefaultReplicaWaitTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	s := &Redis{
		o:         o,
		client:    client,
		keys:      newRedisKeys(o.Prefix),
		reg:       o.Registry,
		now:       o.Now,
		log:       o.Logger,
		origin:    jsonString(o.InstanceID),
		epochSeed: hex.EncodeToString(seed[:]),
		writes:    make(chan *writeOp),
		started:   make(chan struct{}),
		stopped:   make(chan struct{}),
		resyncNow: make(chan struct{}, 1),
		configNow: make(chan struct{}, 1),
		applied:   make(map[string]int64),
		gaps:      make(map[string]gapRecord),
	}
	s.addr = "redis"
	if c, ok := client.(*redis.Client); ok {
		s.addr = "redis " + c.Options().Addr
	}
	if o.SentinelMaster != "" {
		s.addr = "redis sentinel master " + o.SentinelMaster
	}
	return s, nil
}

// Up reports whether the last exchange with Redis succeeded.
func (s *Redis) Up() bool { return s.up.Load() }

// StoreErrors counts failed exchanges with Redis (writes, resyncs, reads).
func (s *Redis) StoreErrors() uint64 { return s.storeErrors.Load() }

// Resyncs counts service reloads from Redis (periodic resync, gaps,
// epoch changes).
func (s *Redis) Resyncs() uint64 { return s.resyncs.Load() }

// RemoteChanges counts changes published by other instances (or the
// leader's reaper) that were applied to the local registry.
func (s *Redis) RemoteChanges() uint64 { return s.remoteChanges.Load() }

// Reseeded counts nodes this instance wrote back after Redis lost its data.
func (s *Redis) Reseeded() uint64 { return s.reseeded.Load() }

// LastSyncLag is the time from the publish of the last applied remote
// change to its application here (clocks of different hosts included).
func (s *Redis) LastSyncLag() time.Duration { return time.Duration(s.lastLag.Load()) }

// unavailable wraps err as ErrStoreUnavailable naming the store, counts it
// and marks the store down.
func (s *Redis) unavailable(err error) error {
	s.storeErrors.Add(1)
	e := fmt.Errorf("%w: %s: %v", ErrStoreUnavailable, s.addr, err)
	s.setUp(false, e)
	return e
}

// setUp records the store's reachability and reports transitions.
func (s *Redis) setUp(up bool, err error) {
	if s.up.Load() == up && s.stateSeen.Load() {
		return
	}
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if s.stateSeen.Load() && s.up.Load() == up {
		return
	}
	s.stateSeen.Store(true)
	s.up.Store(up)
	if up {
		s.log.Info().Str("store", s.addr).Msg("state store reachable")
	} else {
		s.log.Warn().Str("store", s.addr).Err(err).Msg("state store unreachable")
	}
	if s.o.OnStoreState != nil {
		s.o.OnStoreState(up, err)
	}
}

// Run serves the store until ctx ends: the writer that batches
// registrations, the subscriber that applies other instances' changes and
// the resync loop. It returns once all three have stopped. Call Load first.
func (s *Redis) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("persistence: Redis.Run called twice")
	}
	close(s.started)
	defer close(s.stopped)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); s.writer(ctx) }()
	go func() { defer wg.Done(); s.subscriber(ctx) }()
	go func() { defer wg.Done(); s.resyncLoop(ctx) }()
	wg.Wait()
	return nil
}

// Load reads the whole shared registry into the local one (call it before
// the listeners accept traffic) and adopts Redis's epoch, creating it when
// this is the first instance.
func (s *Redis) Load(ctx context.Context) error {
	epoch, err := s.ensureEpoch(ctx)
	if err != nil {
		return s.unavailable(err)
	}
	s.applyMu.Lock()
	s.epoch = epoch
	clear(s.applied)
	s.applyMu.Unlock()
	if err := s.fullResync(ctx, true); err != nil {
		return err
	}
	s.setUp(true, nil)
	return nil
}

// ensureEpoch returns the Redis epoch, creating it when missing.
func (s *Redis) ensureEpoch(ctx context.Context) (string, error) {
	v, err := epochScript.Run(ctx, s.client, []string{s.keys.epoch}, s.epochSeed).Text()
	if err != nil {
		return "", err
	}
	return v, nil
}

// jsonString returns v as a JSON string literal.
func jsonString(v string) string {
	b, _ := json.Marshal(v) // a string always marshals
	return string(b)
}
