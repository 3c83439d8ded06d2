package gateway

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/registry"
)

// Options configure a Proxy. Zero values take the documented defaults;
// New refuses values that cannot work (negative durations, ratios outside
// 0..1) with an error naming the option.
type Options struct {
	// Registry is the source of services and nodes. Required.
	Registry *registry.Registry
	// Settings supplies the selection strategy, read per request with a
	// lock-free Load. Nil means round robin.
	Settings *config.Store

	// HostSuffix enables "<service>.<HostSuffix>" Host routing; empty
	// disables it (a Host equal to a service name still routes).
	HostSuffix string
	// OwnHosts are further names the gateway itself is reached by (its
	// public DNS names): like IP literals, localhost and the machine's
	// host name they never route by Host, so that a service registered
	// under such a name cannot capture requests addressed to the gateway
	// (routing.go). Case-insensitive.
	OwnHosts []string
	// HashHeader and HashCookie name where the consistent-hash and
	// rendezvous key comes from; the header wins when both are set and
	// present. Without either (or when the request lacks them) the key is
	// the client IP.
	HashHeader, HashCookie string

	// ConnectTimeout bounds one TCP (and TLS) connect to a node. Default 1s.
	ConnectTimeout time.Duration
	// TryTimeout bounds one attempt at one node, from sending the request
	// to the end of the response body; expiry answers 504. Default 10s.
	TryTimeout time.Duration
	// Deadline bounds the whole request, retries included. Default 30s.
	Deadline time.Duration
	// MaxRetries is the number of further nodes tried after a failed
	// attempt. 0 means the default, 2; negative disables retries. At most 10.
	MaxRetries int
	// RetryBudget is the fraction of requests that may be retried, per
	// service (a token bucket: each request earns RetryBudget tokens, each
	// retry spends one; a small reserve refilled over time lets a lone
	// request still retry). 0 means the default, 0.2; must be in (0, 1].
	RetryBudget float64
	// MaxBodySize is the largest request body accepted (413 beyond it).
	// Default 32 MiB.
	MaxBodySize int
	// StreamThreshold is the body size above which request and response
	// bodies are streamed instead of buffered. Default 1 MiB.
	StreamThreshold int
	// MinBodyRate is the slowest a request body may arrive, in bytes per
	// second averaged since its first byte was awaited, once
	// BodyReadGrace has passed; a slower client gets 408 and its
	// connection is closed. It bounds how long a trickling upload can
	// hold a node's pooled connection. Default 16 KiB/s.
	MinBodyRate int
	// BodyReadGrace is the time a body may take before MinBodyRate
	// applies. Default 10s.
	BodyReadGrace time.Duration
	// MaxRequestsPerClient bounds the requests one client address may
	// have in progress at once; more get 429. Behind a load balancer all
	// requests share its address: raise it there. Default 512; negative
	// disables the cap.
	MaxRequestsPerClient int
	// MaxConnsPerNode bounds the connection pool of each node. Default 512.
	MaxConnsPerNode int
	// MaxIdleConnDuration closes pooled connections idle this long. It is
	// kept below common upstream keep-alive timeouts (Node.js: 5s) so that
	// the gateway, not the node, closes idle connections. Default 4s.
	MaxIdleConnDuration time.Duration

	// TunnelIdleTimeout closes an Upgrade tunnel (WebSocket) after this
	// long without a byte in either direction. Default 10m.
	TunnelIdleTimeout time.Duration
	// MaxTunnels bounds the Upgrade tunnels open at once (each holds two
	// connections, two goroutines and 64 KiB of buffers); more upgrades
	// get 503. Default 10000; negative means no bound.
	MaxTunnels int

	// TLSConfig is the base TLS configuration for https nodes (root CAs,
	// client certificates); it is cloned per node with ServerName set to
	// the node's host. Nil means the system roots, TLS 1.2 or later.
	TLSConfig *tls.Config

	// AllowList, when non-empty, is also enforced on every connection the
	// gateway makes (admin enforces it at registration with Check).
	AllowList *AllowList

	// Breaker configures the per-node circuit breakers.
	Breaker BreakerOptions
	// Health configures active health checks.
	Health HealthOptions
	// OutlierConsecutive5xx ejects a node after this many consecutive
	// failed attempts (5xx responses or transport errors), for
	// OutlierEjectionTime. 0 disables passive ejection.
	OutlierConsecutive5xx int
	// OutlierEjectionTime is how long an ejected node is skipped.
	// Default 10s.
	OutlierEjectionTime time.Duration

	// Metrics receives the gateway's metrics; nil turns metrics off. One
	// Proxy per Set.
	Metrics *metrics.Set
	// Events receives breaker, health and eviction changes; may be nil.
	Events EventSink
	// Traces receives one record per proxied request; may be nil.
	Traces TraceSink
	// TraceHeader is the trace-id header name. Default "x-trace-id".
	TraceHeader string
	// Via is this process's pseudonym in the X-Maxine-Via field of
	// forwarded requests, which detects routing loops (via.go); cmd/maxine
	// sets ViaPseudonym(instance id, a random nonce). Empty: a random one
	// per Proxy. It must be an HTTP token.
	Via string
	// Logger receives breaker, health and eviction log lines.
	Logger zerolog.Logger
}

// BreakerOptions configure the circuit breaker of every node (SPEC 4).
type BreakerOptions struct {
	// Disabled turns circuit breaking off.
	Disabled bool
	// ConsecutiveFailures opens the breaker after this many failures in a
	// row. Default 5.
	ConsecutiveFailures int
	// FailureRatio opens the breaker when at least this fraction of the
	// requests in Window failed, once MinRequests were seen. Default 0.5.
	FailureRatio float64
	// MinRequests is the sample size below which FailureRatio is not
	// applied. Default 20.
	MinRequests int
	// Window is the rolling window FailureRatio is computed over.
	// Default 10s.
	Window time.Duration
	// OpenTimeout is how long an open breaker refuses traffic before it
	// lets probes through (half-open). Default 5s.
	OpenTimeout time.Duration
	// HalfOpenMaxRequests is how many probes a half-open breaker admits;
	// that many consecutive successes close it. Default 3.
	HalfOpenMaxRequests int
}

// HealthOptions configure active health checks.
type HealthOptions struct {
	// Enabled turns active health checks on.
	Enabled bool
	// Interval between two probes of one node. Default 5s.
	Interval time.Duration
	// Timeout of one probe. Default 2s.
	Timeout time.Duration
	// Path is probed on nodes registered without a healthCheckPath; empty
	// means only nodes with one are probed.
	Path string
	// FailThreshold consecutive failed probes mark a node down. Default 3.
	FailThreshold int
	// PassThreshold consecutive passed probes mark it up again. Default 2.
	PassThreshold int
	// Evict deregisters a node once it is marked down (the old Maxine
	// behaviour) instead of only taking it out of rotation.
	Evict bool
	// Leader reports whether this instance should probe (in a cluster only
	// the leader does); nil means always.
	Leader func() bool
	// Concurrency bounds the probes in flight at once. Default 16.
	Concurrency int
	// Evictor, when set, removes an evicted node instead of the local
	// registry: in a cluster the eviction goes through the shared store
	// (a leader-only, fenced write). It must remove the node only while it
	// is registered at address, and report whether it did.
	Evictor func(service, node, address string) bool
}

// EventSink receives state changes of nodes. It is called from the Proxy's
// Run goroutine, never from a request, so a slow sink delays only other
// events; it must not call back into the Proxy's Run.
type EventSink interface {
	// BreakerChanged reports a breaker transition; from and to are
	// "closed", "half-open" or "open".
	BreakerChanged(service, node, from, to string)
	// HealthChanged reports an active health-check verdict change.
	HealthChanged(service, node string, healthy bool)
	// Evicted reports a node deregistered by the health checker.
	Evicted(service, node, reason string)
}

// TraceSink records proxied requests. It is called on the request path once
// the response status is known: it must be fast and must not block, and it
// must copy traceparent, method and path, which are only valid during the
// call. kind is "gateway" for the gateway listener and "proxy" for
// ServeService.
type TraceSink interface {
	RecordTrace(kind, service string, traceparent, method, path []byte, status int, start time.Time, d time.Duration)
}

// maxRetriesLimit bounds MaxRetries: more retries than this only multiply
// load on a failing service.
const maxRetriesLimit = 10

func (o *Options) normalize() error {
	if o.Registry == nil {
		return errors.New("gateway: Options.Registry is required")
	}
	durations := []struct {
		name string
		d    *time.Duration
		def  time.Duration
	}{
		{"ConnectTimeout", &o.ConnectTimeout, time.Second},
		{"TryTimeout", &o.TryTimeout, 10 * time.Second},
		{"Deadline", &o.Deadline, 30 * time.Second},
		{"MaxIdleConnDuration", &o.MaxIdleConnDuration, 4 * time.Second},
		{"OutlierEjectionTime", &o.OutlierEjectionTime, 10 * time.Second},
		{"TunnelIdleTimeout", &o.TunnelIdleTimeout, 10 * time.Minute},
		{"Breaker.Window", &o.Breaker.Window, 10 * time.Second},
		{"BodyReadGrace", &o.BodyReadGrace, 10 * time.Second},
		{"Breaker.OpenTimeout", &o.Breaker.OpenTimeout, 5 * time.Second},
		{"Health.Interval", &o.Health.Interval, 5 * time.Second},
		{"Health.Timeout", &o.Health.Timeout, 2 * time.Second},
	}
	for _, d := range durations {
		if *d.d < 0 {
			return fmt.Errorf("gateway: %s must not be negative, got %s", d.name, *d.d)
		}
		if *d.d == 0 {
			*d.d = d.def
		}
	}
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxBodySize", &o.MaxBodySize, 32 << 20},
		{"StreamThreshold", &o.StreamThreshold, 1 << 20},
		{"MaxConnsPerNode", &o.MaxConnsPerNode, 512},
		{"MinBodyRate", &o.MinBodyRate, 16 << 10},
		{"Breaker.ConsecutiveFailures", &o.Breaker.ConsecutiveFailures, 5},
		{"Breaker.MinRequests", &o.Breaker.MinRequests, 20},
		{"Breaker.HalfOpenMaxRequests", &o.Breaker.HalfOpenMaxRequests, 3},
		{"Health.FailThreshold", &o.Health.FailThreshold, 3},
		{"Health.PassThreshold", &o.Health.PassThreshold, 2},
		{"Health.Concurrency", &o.Health.Concurrency, 16},
	}
	for _, v := range ints {
		if *v.v < 0 {
			return fmt.Errorf("gateway: %s must not be negative, got %d", v.name, *v.v)
		}
		if *v.v == 0 {
			*v.v = v.def
		}
	}
	switch {
	case o.MaxRetries == 0:
		o.MaxRetries = 2
	case o.MaxRetries < 0:
		o.MaxRetries = 0
	case o.MaxRetries > maxRetriesLimit:
		return fmt.Errorf("gateway: MaxRetries must be at most %d, got %d", maxRetriesLimit, o.MaxRetries)
	}
	switch {
	case o.MaxTunnels == 0:
		o.MaxTunnels = 10000
	case o.MaxTunnels < 0:
		o.MaxTunnels = 0 // no bound
	}
	switch {
	case o.MaxRequestsPerClient == 0:
		o.MaxRequestsPerClient = 512
	case o.MaxRequestsPerClient < 0:
		o.MaxRequestsPerClient = 0 // no cap
	}
	if o.RetryBudget == 0 {
		o.RetryBudget = 0.2
	}
	if o.RetryBudget < 0 || o.RetryBudget > 1 {
		return fmt.Errorf("gateway: RetryBudget must be in (0, 1], got %g", o.RetryBudget)
	}
	if o.Breaker.FailureRatio == 0 {
		o.Breaker.FailureRatio = 0.5
	}
	if o.Breaker.FailureRatio < 0 || o.Breaker.FailureRatio > 1 {
		return fmt.Errorf("gateway: Breaker.FailureRatio must be in (0, 1], got %g", o.Breaker.FailureRatio)
	}
	if o.OutlierConsecutive5xx < 0 {
		return fmt.Errorf("gateway: OutlierConsecutive5xx must not be negative, got %d", o.OutlierConsecutive5xx)
	}
	if o.Health.Path != "" && o.Health.Path[0] != '/' {
		o.Health.Path = "/" + o.Health.Path
	}
	if o.Via == "" {
		var b [8]byte
		rand.Read(b[:])
		o.Via = "maxine-" + hex.EncodeToString(b[:])
	}
	if !isToken(o.Via) {
		return fmt.Errorf("gateway: X-Maxine-Via pseudonym %q is not an HTTP token", o.Via)
	}
	if o.TraceHeader == "" {
		o.TraceHeader = "x-trace-id"
	}
	if o.StreamThreshold > o.MaxBodySize {
		o.StreamThreshold = o.MaxBodySize
	}
	return nil
}
