// Command maxine runs the Maxine service registry, discovery service and
// reverse-proxy gateway: the admin API on one listener, the gateway on
// another. It wires the packages together; none of them reaches for a
// global.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	pprofhttp "net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/maxine-io/maxine/admin"
	"github.com/maxine-io/maxine/auth"
	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/gateway"
	"github.com/maxine-io/maxine/observe"
	"github.com/maxine-io/maxine/persistence"
	"github.com/maxine-io/maxine/registry"
)

// version and commit are set at build time with -ldflags "-X main.version=…".
var (
	version = "0.1.0-dev"
	commit  = ""
)

// options is the whole startup configuration (SPEC section 10).
type options struct {
	adminAddr, gatewayAddr, dataDir, stateMode string
	redisURL, redisPrefix, instanceID          string
	leaseInterval, renewInterval               time.Duration
	heartbeatTimeout                           int
	persistInterval                            time.Duration
	jwtSecret, jwtPrevious                     string
	jwtTTL                                     time.Duration
	registrationToken                          string
	upstreamAllow                              string
	hostSuffix, hashHeader, hashCookie         string
	connectTimeout, tryTimeout, deadline       time.Duration
	maxRetries                                 int
	retryBudget                                float64
	breakerFailures                            int
	breakerRatio                               float64
	breakerMinRequests                         int
	breakerWindow, breakerOpen                 time.Duration
	breakerHalfOpen                            int
	healthEnabled                              bool
	healthInterval, healthTimeout              time.Duration
	healthPath                                 string
	healthFail, healthPass                     int
	healthEvict                                bool
	outlier5xx                                 int
	maxBodySize, streamThreshold, adminMaxBody int
	maxHeaderBytes                             int
	alertWebhook                               string
	alertTimeout                               time.Duration
	logFormat, logLevel, logFile               string
	traceHeader                                string
	auditRing, alertRing, traceRing, logRing   int
	metricsOn, publicMetrics                   bool
	corsOrigins                                string
	signinPerMinute                            int
	drainTimeout, drainDelay                   time.Duration
	maxNodes, maxServices                      int
	logMaxBytes, logKeep                       int
	auditMaxBytes, auditKeep                   int
	cpuProfile, pprofAddr                      string
	gatewayEnabled                             bool
	operatorUser, operatorPass, viewerUser     string
	viewerPass, adminUser, adminPass           string
	showVersion                                bool
	adminReadTimeout, idleTimeout              time.Duration
	maxConnsPerNode                            int
	cluster                                    clusterSettings

	allow *gateway.AllowList // parsed from upstreamAllow by validate

	gatewayTLSAddr, gatewayTLSCert, gatewayTLSKey string
	adminTLSAddr, adminTLSCert, adminTLSKey       string
	upstreamCAFile                                string
	tlsReloadInterval, tunnelIdleTimeout          time.Duration
	maxTunnels                                    int
	upstreamTLS                                   *tls.Config // loaded from upstreamCAFile by validate
}

func defineSettings(o *options, s *settings) {
	s.String(&o.adminAddr, "admin-addr", "MAXINE_ADMIN_ADDR", ":8080", "admin (control plane) listen address; PORT=<n> means :<n>")
	s.String(&o.gatewayAddr, "gateway-addr", "MAXINE_GATEWAY_ADDR", ":8000", "gateway (data plane) listen address")
	s.Bool(&o.gatewayEnabled, "gateway", "MAXINE_GATEWAY_ENABLED", true, "serve the gateway listener")
	s.String(&o.gatewayTLSAddr, "gateway-tls-addr", "MAXINE_GATEWAY_TLS_ADDR", "", "gateway TLS listen address, beside the cleartext one (empty = no TLS listener; needs the cert and key files)")
	s.String(&o.gatewayTLSCert, "gateway-tls-cert-file", "MAXINE_GATEWAY_TLS_CERT_FILE", "", "PEM certificate (leaf first, then intermediates) of the gateway TLS listener; reloaded on SIGHUP and when the file changes")
	s.String(&o.gatewayTLSKey, "gateway-tls-key-file", "MAXINE_GATEWAY_TLS_KEY_FILE", "", "PEM private key of the gateway TLS listener; reloaded with the certificate")
	s.Duration(&o.tlsReloadInterval, "gateway-tls-reload-interval", "MAXINE_GATEWAY_TLS_RELOAD_INTERVAL", 5*time.Second, "how often the TLS certificate and key files (gateway and admin) are checked for changes")
	s.String(&o.adminTLSAddr, "admin-tls-addr", "MAXINE_ADMIN_TLS_ADDR", "", "admin API TLS listen address, beside the cleartext one (empty = none; needs the cert and key files); the same API, roles and tokens")
	s.String(&o.adminTLSCert, "admin-tls-cert-file", "MAXINE_ADMIN_TLS_CERT_FILE", "", "PEM certificate (leaf first, then intermediates) of the admin TLS listener; reloaded on SIGHUP and when the file changes")
	s.String(&o.adminTLSKey, "admin-tls-key-file", "MAXINE_ADMIN_TLS_KEY_FILE", "", "PEM private key of the admin TLS listener; reloaded with the certificate")
	s.String(&o.upstreamCAFile, "upstream-ca-file", "MAXINE_UPSTREAM_CA_FILE", "", "PEM CA bundle trusted for https nodes (ssl: true), beside the system roots; nodes' certificates are always verified")
	s.Duration(&o.tunnelIdleTimeout, "tunnel-idle-timeout", "MAXINE_GATEWAY_TUNNEL_IDLE_TIMEOUT", 10*time.Minute, "close an Upgrade (WebSocket) tunnel after this long with no byte either way")
	s.Int(&o.maxTunnels, "max-tunnels", "MAXINE_GATEWAY_MAX_TUNNELS", 10000, "Upgrade (WebSocket) tunnels open at once per instance (then 503; about 64 KiB of buffers each); each also counts as a request in progress of its client")
	s.String(&o.dataDir, "data-dir", "MAXINE_DATA_DIR", "./data", "directory for the state file, credentials, audit log and log files")
	s.String(&o.stateMode, "state-mode", "MAXINE_REGISTRY_STATE_MODE", "local", "registry state mode: local (one instance, state file in the data dir), shared-file (instances share one state file under flock) or redis (instances share Redis, with a fenced leader)")
	s.String(&o.redisURL, "redis-url", "MAXINE_REGISTRY_REDIS_URL", "", "Redis URL for state mode redis: redis://[user:password@]host:port[/db] or rediss:// for TLS")
	s.String(&o.redisPrefix, "redis-prefix", "MAXINE_REGISTRY_REDIS_KEY_PREFIX", "maxine:registry", "key prefix in Redis (instances sharing it form one cluster)")
	s.String(&o.instanceID, "instance-id", "MAXINE_INSTANCE_ID", "", "instance id (default hostname-pid)")
	s.Duration(&o.leaseInterval, "lease-interval", "MAXINE_LEADER_LEASE", 10*time.Second, "leader lease length (redis mode)")
	s.Duration(&o.renewInterval, "renew-interval", "MAXINE_LEADER_RENEW", 3*time.Second, "leader lease renewal interval (redis mode)")
	s.Int(&o.heartbeatTimeout, "heartbeat-timeout", "MAXINE_HEARTBEAT_TIMEOUT", 5, "default node timeOut in seconds when a registration gives none")
	s.Duration(&o.persistInterval, "persist-interval", "MAXINE_PERSIST_INTERVAL", time.Second, "at most one state-file write per interval")
	s.Int(&o.maxNodes, "max-nodes", "MAXINE_MAX_NODES", registry.DefaultMaxNodes, "maximum registered nodes (then 503)")
	s.Int(&o.maxServices, "max-services", "MAXINE_MAX_SERVICES", registry.DefaultMaxServices, "maximum registered services (then 503)")
	s.String(&o.jwtSecret, "", "MAXINE_JWT_SECRET", "", "HS256 signing secret (default: random per process, tokens die with it)")
	s.String(&o.jwtPrevious, "", "MAXINE_JWT_PREVIOUS_SECRETS", "", "comma-separated earlier secrets whose tokens still verify (rotation)")
	s.Duration(&o.jwtTTL, "jwt-ttl", "MAXINE_JWT_TTL", 30*time.Minute, "access token lifetime")
	s.String(&o.registrationToken, "", "MAXINE_REGISTRATION_TOKEN", "", "when set, register/deregister need Authorization: Bearer <token>")
	s.String(&o.adminUser, "", "MAXINE_ADMIN_USERNAME", "", "admin user name; with the password, the admin is env-managed")
	s.String(&o.adminPass, "", "MAXINE_ADMIN_PASSWORD", "", "admin password (default: file-backed admin/admin)")
	s.String(&o.operatorUser, "", "MAXINE_OPERATOR_USERNAME", "", "optional operator account")
	s.String(&o.operatorPass, "", "MAXINE_OPERATOR_PASSWORD", "", "operator password")
	s.String(&o.viewerUser, "", "MAXINE_VIEWER_USERNAME", "", "optional viewer account")
	s.String(&o.viewerPass, "", "MAXINE_VIEWER_PASSWORD", "", "viewer password")
	s.Int(&o.signinPerMinute, "signin-rate", "MAXINE_SIGNIN_RATE", 30, "sign-in attempts per minute per client IP (burst 10)")
	s.String(&o.upstreamAllow, "upstream-allow", "MAXINE_UPSTREAM_ALLOW_CIDRS", "", "comma-separated CIDRs registered hosts must fall in (empty = any)")
	s.String(&o.hostSuffix, "host-suffix", "MAXINE_GATEWAY_HOST_SUFFIX", "", "route Host <service>.<suffix> to <service>")
	s.String(&o.hashHeader, "hash-header", "MAXINE_HASH_HEADER", "", "CH/RH key header (default: client IP)")
	s.String(&o.hashCookie, "hash-cookie", "MAXINE_HASH_COOKIE", "", "CH/RH key cookie (default: client IP)")
	s.Duration(&o.connectTimeout, "connect-timeout", "MAXINE_CONNECT_TIMEOUT", time.Second, "upstream connect timeout")
	s.Duration(&o.tryTimeout, "try-timeout", "MAXINE_TRY_TIMEOUT", 10*time.Second, "per-try upstream timeout (then 504)")
	s.Duration(&o.deadline, "request-deadline", "MAXINE_REQUEST_DEADLINE", 30*time.Second, "overall deadline of a proxied request, retries included")
	s.Int(&o.maxRetries, "max-retries", "MAXINE_MAX_RETRIES", 2, "retries on another node (idempotent or never-sent requests)")
	s.Float(&o.retryBudget, "retry-budget", "MAXINE_RETRY_BUDGET", 0.2, "retries allowed as a fraction of requests in flight")
	s.Int(&o.breakerFailures, "breaker-failures", "MAXINE_BREAKER_FAILURES", 5, "consecutive failures that open a node's breaker")
	s.Float(&o.breakerRatio, "breaker-ratio", "MAXINE_BREAKER_RATIO", 0.5, "failure ratio that opens a node's breaker")
	s.Int(&o.breakerMinRequests, "breaker-min-requests", "MAXINE_BREAKER_MIN_REQUESTS", 20, "requests in the window before the ratio counts")
	s.Duration(&o.breakerWindow, "breaker-window", "MAXINE_BREAKER_WINDOW", 10*time.Second, "breaker counting window")
	s.Duration(&o.breakerOpen, "breaker-open", "MAXINE_BREAKER_OPEN", 5*time.Second, "how long an open breaker stays open before half-open probes")
	s.Int(&o.breakerHalfOpen, "breaker-half-open", "MAXINE_BREAKER_HALF_OPEN", 3, "probe requests let through when half-open")
	s.Bool(&o.healthEnabled, "health-checks", "MAXINE_HEALTH_CHECKS", true, "active health checks of nodes")
	s.Duration(&o.healthInterval, "health-interval", "MAXINE_HEALTH_INTERVAL", 5*time.Second, "active health-check interval")
	s.Duration(&o.healthTimeout, "health-timeout", "MAXINE_HEALTH_TIMEOUT", 2*time.Second, "active health-check timeout")
	s.String(&o.healthPath, "health-path", "MAXINE_HEALTH_PATH", "", "probe path for nodes without healthCheckPath (empty = only probe nodes that have one)")
	s.Int(&o.healthFail, "health-fail", "MAXINE_HEALTH_FAIL", 3, "failed probes that mark a node down")
	s.Int(&o.healthPass, "health-pass", "MAXINE_HEALTH_PASS", 2, "passed probes that mark a node up again")
	s.Bool(&o.healthEvict, "health-evict", "MAXINE_HEALTH_EVICT", false, "deregister nodes that fail health checks (old behaviour)")
	s.Int(&o.outlier5xx, "outlier-5xx", "MAXINE_OUTLIER_5XX", 5, "consecutive 5xx responses that eject a node passively (0 = off)")
	s.Int(&o.maxBodySize, "max-body-size", "MAXINE_MAX_BODY_SIZE", 32<<20, "largest proxied request body in bytes (then 413)")
	s.Int(&o.streamThreshold, "stream-threshold", "MAXINE_STREAM_THRESHOLD", 1<<20, "proxied bodies larger than this are streamed")
	s.Int(&o.maxConnsPerNode, "max-conns-per-node", "MAXINE_MAX_CONNS_PER_NODE", 512, "connection pool size per node")
	s.Int(&o.adminMaxBody, "admin-max-body", "MAXINE_ADMIN_MAX_BODY", 1<<20, "largest admin request body in bytes (then 413)")
	s.Int(&o.maxHeaderBytes, "max-header-bytes", "MAXINE_MAX_HEADER_BYTES", 16<<10, "largest request header block in bytes")
	s.Duration(&o.adminReadTimeout, "read-timeout", "MAXINE_READ_TIMEOUT", 30*time.Second, "time to read one request")
	s.Duration(&o.idleTimeout, "idle-timeout", "MAXINE_IDLE_TIMEOUT", 60*time.Second, "keep-alive idle timeout")
	s.String(&o.alertWebhook, "alert-webhook", "MAXINE_ALERT_WEBHOOK_URL", "", "URL alerts are POSTed to as JSON")
	s.Duration(&o.alertTimeout, "alert-timeout", "MAXINE_ALERT_TIMEOUT", 3*time.Second, "alert webhook timeout")
	s.String(&o.logFormat, "log-format", "MAXINE_LOG_FORMAT", "json", "log format: json or plain")
	s.String(&o.logLevel, "log-level", "MAXINE_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	s.String(&o.logFile, "log-file", "MAXINE_LOG_FILE", "", "also write logs to this file name under <data-dir>/logs")
	s.Int(&o.logMaxBytes, "log-max-bytes", "MAXINE_LOG_MAX_BYTES", 64<<20, "rotate the log file when it would grow past this size")
	s.Int(&o.logKeep, "log-keep", "MAXINE_LOG_KEEP", 5, "rotated log files kept (<name>.1 is the newest)")
	s.Int(&o.auditMaxBytes, "audit-max-bytes", "MAXINE_AUDIT_MAX_BYTES", 64<<20, "rotate audit.jsonl when it would grow past this size")
	s.Int(&o.auditKeep, "audit-keep", "MAXINE_AUDIT_KEEP", 5, "rotated audit files kept (audit.jsonl.1 is the newest)")
	s.String(&o.traceHeader, "trace-header", "MAXINE_TRACE_HEADER", "x-trace-id", "trace id header name")
	s.Int(&o.auditRing, "audit-ring", "MAXINE_AUDIT_RING", 1000, "audit events kept in memory")
	s.Int(&o.alertRing, "alert-ring", "MAXINE_ALERT_RING", 500, "alerts kept in memory")
	s.Int(&o.traceRing, "trace-ring", "MAXINE_TRACE_RING", 500, "request traces kept in memory")
	s.Int(&o.logRing, "log-ring", "MAXINE_LOG_RING", 1000, "log lines kept in memory")
	s.Bool(&o.metricsOn, "metrics", "MAXINE_METRICS", true, "gateway metrics (off only for benchmarking their cost)")
	s.Bool(&o.publicMetrics, "public-metrics", "MAXINE_PUBLIC_METRICS", false, "also serve unauthenticated /metrics on the admin port")
	s.String(&o.corsOrigins, "cors-origins", "MAXINE_CORS_ORIGINS", "*", "comma-separated origins browsers may call the admin API from: * for any (the old default), exact origins like https://dash.example, empty for CORS off")
	s.Duration(&o.drainTimeout, "drain-timeout", "MAXINE_DRAIN_TIMEOUT", 20*time.Second, "on SIGTERM, how long in-flight requests may finish")
	s.Duration(&o.drainDelay, "drain-delay", "MAXINE_DRAIN_DELAY", 0, "on SIGTERM, how long to keep accepting with health DOWN before closing the listeners (let load balancers notice)")
	s.String(&o.cpuProfile, "cpuprofile", "", "", "write a CPU profile to this file until exit")
	s.String(&o.pprofAddr, "pprof-addr", "MAXINE_PPROF_ADDR", "", "serve net/http/pprof on this address (keep it on loopback; empty = off)")
	s.Bool(&o.showVersion, "version", "", false, "print the version and exit")
	defineClusterSettings(&o.cluster, s)
}

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "health" {
		return runHealth(args[1:], getenv, stdout, stderr)
	}
	var o options
	s := newSettings("maxine", stderr)
	defineSettings(&o, s)
	defaults := s.defaultsOf()
	s.fs.Usage = func() { s.usage(stdout, defaults) }
	if p := getenv("PORT"); p != "" && getenv("MAXINE_ADMIN_ADDR") == "" {
		o.adminAddr = ":" + p
	}
	if err := s.parse(args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return fatal(stderr, logFormatOf(args, o.logFormat), configError{err})
	}
	if o.showVersion {
		fmt.Fprintf(stdout, "maxine %s %s %s\n", version, commit, runtime.Version())
		return 0
	}
	if err := o.validate(); err != nil {
		return fatal(stderr, o.logFormat, configError{err})
	}
	if err := serve(&o, getenv, stdout); err != nil {
		return fatal(stderr, o.logFormat, err)
	}
	return 0
}

func (o *options) validate() error {
	switch o.stateMode {
	case "local", "shared-file", "redis":
	default:
		return fmt.Errorf("MAXINE_REGISTRY_STATE_MODE (--state-mode) must be local, shared-file or redis, not %q", o.stateMode)
	}
	checks := []struct {
		ok   bool
		what string
	}{
		{o.heartbeatTimeout >= 1 && o.heartbeatTimeout <= 86400, "MAXINE_HEARTBEAT_TIMEOUT (--heartbeat-timeout) must be 1-86400 seconds"},
		{o.persistInterval >= 10*time.Millisecond, "MAXINE_PERSIST_INTERVAL (--persist-interval) must be at least 10ms"},
		{o.jwtTTL >= time.Second, "MAXINE_JWT_TTL (--jwt-ttl) must be at least 1s"},
		{o.maxRetries >= 0 && o.maxRetries <= 10, "MAXINE_MAX_RETRIES (--max-retries) must be 0-10"},
		{o.retryBudget >= 0 && o.retryBudget <= 1, "MAXINE_RETRY_BUDGET (--retry-budget) must be 0-1"},
		{o.breakerRatio > 0 && o.breakerRatio <= 1, "MAXINE_BREAKER_RATIO (--breaker-ratio) must be in (0,1]"},
		{o.breakerFailures >= 1, "MAXINE_BREAKER_FAILURES (--breaker-failures) must be at least 1"},
		{o.connectTimeout > 0 && o.tryTimeout > 0 && o.deadline > 0, "connect, try and request timeouts must be positive"},
		{o.maxBodySize > 0 && o.adminMaxBody > 0 && o.maxHeaderBytes >= 1024, "body and header limits must be positive (headers at least 1024)"},
		{o.maxNodes > 0, "MAXINE_MAX_NODES (--max-nodes) must be positive"},
		{o.maxServices > 0, "MAXINE_MAX_SERVICES (--max-services) must be positive"},
		{o.logMaxBytes >= 4096 && o.logKeep >= 1, "MAXINE_LOG_MAX_BYTES (--log-max-bytes) must be at least 4096 and MAXINE_LOG_KEEP (--log-keep) at least 1"},
		{o.auditMaxBytes >= 4096 && o.auditKeep >= 1, "MAXINE_AUDIT_MAX_BYTES (--audit-max-bytes) must be at least 4096 and MAXINE_AUDIT_KEEP (--audit-keep) at least 1"},
		{o.signinPerMinute > 0, "MAXINE_SIGNIN_RATE (--signin-rate) must be positive"},
		{o.drainTimeout >= 0 && o.drainDelay >= 0, "MAXINE_DRAIN_TIMEOUT and MAXINE_DRAIN_DELAY must not be negative"},
		{o.gatewayTLSAddr == "" || o.gatewayTLSCert != "" && o.gatewayTLSKey != "", "MAXINE_GATEWAY_TLS_ADDR (--gateway-tls-addr) needs MAXINE_GATEWAY_TLS_CERT_FILE (--gateway-tls-cert-file) and MAXINE_GATEWAY_TLS_KEY_FILE (--gateway-tls-key-file)"},
		{o.gatewayTLSAddr != "" || o.gatewayTLSCert == "" && o.gatewayTLSKey == "", "MAXINE_GATEWAY_TLS_CERT_FILE and MAXINE_GATEWAY_TLS_KEY_FILE are set but MAXINE_GATEWAY_TLS_ADDR (--gateway-tls-addr) is not"},
		{o.gatewayTLSAddr == "" || o.gatewayEnabled, "MAXINE_GATEWAY_TLS_ADDR (--gateway-tls-addr) needs the gateway enabled (MAXINE_GATEWAY_ENABLED)"},
		{o.adminTLSAddr == "" || o.adminTLSCert != "" && o.adminTLSKey != "", "MAXINE_ADMIN_TLS_ADDR (--admin-tls-addr) needs MAXINE_ADMIN_TLS_CERT_FILE (--admin-tls-cert-file) and MAXINE_ADMIN_TLS_KEY_FILE (--admin-tls-key-file)"},
		{o.adminTLSAddr != "" || o.adminTLSCert == "" && o.adminTLSKey == "", "MAXINE_ADMIN_TLS_CERT_FILE and MAXINE_ADMIN_TLS_KEY_FILE are set but MAXINE_ADMIN_TLS_ADDR (--admin-tls-addr) is not"},
		{o.tlsReloadInterval > 0, "MAXINE_GATEWAY_TLS_RELOAD_INTERVAL (--gateway-tls-reload-interval) must be positive"},
		{o.tunnelIdleTimeout > 0, "MAXINE_GATEWAY_TUNNEL_IDLE_TIMEOUT (--tunnel-idle-timeout) must be positive"},
		{o.maxTunnels > 0, "MAXINE_GATEWAY_MAX_TUNNELS (--max-tunnels) must be positive"},
		{o.logFile == "" || (!strings.ContainsAny(o.logFile, `/\`) && o.logFile != ".." && o.logFile != "."), "MAXINE_LOG_FILE (--log-file) must be a plain file name"},
	}
	for _, c := range checks {
		if !c.ok {
			return errors.New(c.what)
		}
	}
	if _, ok := parseLogFormat(o.logFormat); !ok {
		return fmt.Errorf("MAXINE_LOG_FORMAT (--log-format) must be json or plain, not %q", o.logFormat)
	}
	if _, err := observe.NewLogger(observe.NewLogOutput(nil, nil, false), o.logLevel); err != nil {
		return fmt.Errorf("MAXINE_LOG_LEVEL (--log-level): %w", err)
	}
	for _, a := range []struct {
		addr, what string
		optional   bool
	}{
		{o.adminAddr, "MAXINE_ADMIN_ADDR (--admin-addr)", false},
		{o.gatewayAddr, "MAXINE_GATEWAY_ADDR (--gateway-addr)", !o.gatewayEnabled},
		{o.gatewayTLSAddr, "MAXINE_GATEWAY_TLS_ADDR (--gateway-tls-addr)", true},
		{o.adminTLSAddr, "MAXINE_ADMIN_TLS_ADDR (--admin-tls-addr)", true},
		{o.pprofAddr, "MAXINE_PPROF_ADDR (--pprof-addr)", true},
	} {
		if a.addr == "" && a.optional {
			continue
		}
		if _, port, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%s %q is not a listen address (host:port or :port): %v", a.what, a.addr, err)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("%s %q: the port must be a number from 0 to 65535", a.what, a.addr)
		}
	}
	o.upstreamTLS = nil
	if o.upstreamCAFile != "" {
		cfg, err := gateway.UpstreamTLSConfig(o.upstreamCAFile)
		if err != nil {
			return fmt.Errorf("MAXINE_UPSTREAM_CA_FILE (--upstream-ca-file): %w", err)
		}
		o.upstreamTLS = cfg
	}
	o.allow = nil
	if cidrs := splitList(o.upstreamAllow); len(cidrs) > 0 {
		allow, err := gateway.NewAllowList(cidrs)
		if err != nil {
			return fmt.Errorf("MAXINE_UPSTREAM_ALLOW_CIDRS (--upstream-allow): %w", err)
		}
		o.allow = allow
	}
	if o.alertWebhook != "" && !strings.HasPrefix(o.alertWebhook, "http://") && !strings.HasPrefix(o.alertWebhook, "https://") {
		return fmt.Errorf("MAXINE_ALERT_WEBHOOK_URL (--alert-webhook) must be an http(s) URL")
	}
	if o.instanceID == "" {
		h, _ := os.Hostname()
		o.instanceID = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	return o.cluster.validate(o)
}

func parseLogFormat(s string) (config.LogFormat, bool) {
	return config.ParseLogFormat(strings.ToUpper(s))
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// serve runs Maxine until SIGINT or SIGTERM.
func serve(o *options, getenv func(string) string, stdout io.Writer) error {
	// Start-up order: nothing on disk is touched before both listeners
	// are bound and the data dir is locked, so a taken port or a second
	// instance on the same data dir fails before anything is created,
	// restored or overwritten. The logger writes to stdout only until the
	// log file can be opened.
	format, _ := parseLogFormat(o.logFormat)
	ring := observe.NewLogRing(o.logRing)
	output := observe.NewLogOutput(stdout, ring, format == config.PlainLogs)
	log, err := observe.NewLogger(output, o.logLevel)
	if err != nil {
		return configError{fmt.Errorf("MAXINE_LOG_LEVEL (--log-level): %w", err)}
	}
	log = log.With().Str("instance", o.instanceID).Logger()

	// Listen before anything else starts, so a busy port fails fast and
	// a cluster member can advertise the address it really has. Nothing
	// is accepted until the registry is restored or loaded.
	adminLn, err := net.Listen("tcp", o.adminAddr)
	if err != nil {
		return fmt.Errorf("MAXINE_ADMIN_ADDR (--admin-addr) %s: %w", o.adminAddr, err)
	}
	defer adminLn.Close()
	var gwLn net.Listener
	if o.gatewayEnabled {
		if gwLn, err = net.Listen("tcp", o.gatewayAddr); err != nil {
			return fmt.Errorf("MAXINE_GATEWAY_ADDR (--gateway-addr) %s: %w", o.gatewayAddr, err)
		}
		defer gwLn.Close()
	}
	tlsLn, keyPair, err := listenTLS(o.gatewayTLSAddr, o.gatewayTLSCert, o.gatewayTLSKey, "GATEWAY", "gateway")
	if err != nil {
		return err
	}
	if tlsLn != nil {
		defer tlsLn.Close()
	}
	adminTLSLn, adminKeyPair, err := listenTLS(o.adminTLSAddr, o.adminTLSCert, o.adminTLSKey, "ADMIN", "admin")
	if err != nil {
		return err
	}
	if adminTLSLn != nil {
		defer adminTLSLn.Close()
	}
	var pprofLn net.Listener
	if o.pprofAddr != "" {
		if pprofLn, err = net.Listen("tcp", o.pprofAddr); err != nil {
			return fmt.Errorf("MAXINE_PPROF_ADDR (--pprof-addr) %s: %w", o.pprofAddr, err)
		}
		defer pprofLn.Close()
	}
	lock, err := persistence.LockDataDir(o.dataDir, fmt.Sprintf("pid %d, instance %s, admin %s, since %s",
		os.Getpid(), o.instanceID, adminLn.Addr(), time.Now().UTC().Format(time.RFC3339)))
	if err != nil {
		return err
	}
	defer lock.Close()

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("cannot create the CPU profile %q: %w", o.cpuProfile, err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	logDir := filepath.Join(o.dataDir, "logs")
	if o.logFile != "" {
		if err := os.MkdirAll(logDir, 0o700); err != nil {
			return fmt.Errorf("cannot create the log dir %q: %w", logDir, err)
		}
		f, err := observe.OpenRotatingFile(filepath.Join(logDir, o.logFile), int64(o.logMaxBytes), o.logKeep)
		if err != nil {
			return fmt.Errorf("cannot open the log file: %w", err)
		}
		output.Tee(f)
		defer func() { output.Tee(nil); f.Close() }()
	}

	// Security.
	var previous [][]byte
	for _, p := range splitList(o.jwtPrevious) {
		previous = append(previous, []byte(p))
	}
	authority, err := auth.New(auth.Options{
		DataDir: o.dataDir, AdminUser: o.adminUser, AdminPassword: o.adminPass,
		OperatorUser: o.operatorUser, OperatorPassword: o.operatorPass,
		ViewerUser: o.viewerUser, ViewerPassword: o.viewerPass,
		Secret: []byte(o.jwtSecret), PreviousSecrets: previous, TokenTTL: o.jwtTTL,
	})
	if err != nil {
		return err
	}
	if authority.UsingDefaultAdmin() {
		log.Warn().Msg("SECURITY: the admin account still has the default password admin/admin; change it with PUT /api/maxine/change-password or set MAXINE_ADMIN_USERNAME and MAXINE_ADMIN_PASSWORD")
	}
	if o.jwtSecret == "" {
		log.Warn().Msg("MAXINE_JWT_SECRET is not set: tokens are signed with a random per-process secret and stop working on restart")
	}
	if o.registrationToken == "" && o.allow == nil {
		log.Warn().Msg("SECURITY: registration is open: anyone who can reach the admin port can register nodes, and the gateway sends traffic to them; " +
			"set MAXINE_REGISTRATION_TOKEN and MAXINE_UPSTREAM_ALLOW_CIDRS for production (README, Production)")
	}

	// Registry and runtime settings, restored before any listener accepts.
	defaults := config.Defaults()
	defaults.HeartBeatTimeout = o.heartbeatTimeout
	defaults.LogFormat = format
	if _, port, err := net.SplitHostPort(o.adminAddr); err == nil {
		fmt.Sscanf(port, "%d", &defaults.Port)
	}
	settingsStore := config.New(defaults)
	reg := registry.New(registry.Options{MaxNodes: o.maxNodes, MaxServices: o.maxServices})

	// Observability. # HELP/# TYPE lines make the exposition typed (a
	// histogram is a histogram to Prometheus, not three untyped series).
	metrics.ExposeMetadata(true)
	set := metrics.NewSet()
	auditDropped := set.NewCounter(`maxine_audit_dropped_total`)
	audit, err := observe.NewAudit(observe.AuditOptions{Dir: o.dataDir, RingSize: o.auditRing,
		MaxBytes: int64(o.auditMaxBytes), Keep: o.auditKeep, OnDrop: auditDropped.Inc})
	if err != nil {
		return err
	}
	alerts := observe.NewAlerts(observe.AlertOptions{WebhookURL: o.alertWebhook, Timeout: o.alertTimeout, RingSize: o.alertRing, Audit: audit, Instance: o.instanceID})

	// State: the local file, or a shared store whose registry is loaded
	// into this one before the listeners accept.
	var stateFile *persistence.LocalFile
	var localHealth *localStoreHealth // local mode only
	var backend *stateBackend
	if o.stateMode == "local" {
		stateFile = persistence.NewLocalFile(o.dataDir)
		localHealth = newLocalStoreHealth(stateFile.Path(), time.Now())
		rep, err := persistence.Restore(stateFile, reg, settingsStore, time.Now())
		var corrupt *persistence.CorruptError
		switch {
		case errors.As(err, &corrupt):
			log.Error().Err(corrupt.Err).Str("file", corrupt.Path).Str("backup", corrupt.Backup).Msg("state file is corrupt: kept as a backup, starting empty")
		case err != nil:
			return fmt.Errorf("cannot restore state from %q: %w", stateFile.Path(), err)
		}
		for _, e := range rep.Invalid {
			log.Error().Err(e.Err).Int("entry", e.Index).Str("service", e.Service).Str("node", e.Node).Str("backup", rep.Backup).Msg("state file entry is invalid: skipped")
		}
		if rep.Settings != nil {
			log.Error().Err(rep.Settings).Str("backup", rep.Backup).Msg("saved runtime settings are invalid: starting with the defaults")
		}
		log.Info().Int("restored", rep.Restored).Int("expiredSkipped", rep.Skipped).Int("invalidSkipped", len(rep.Invalid)).Str("file", stateFile.Path()).Msg("registry state restored")
	} else {
		backend, err = newStateBackend(o, &o.cluster, clusterDeps{
			reg: reg, settings: settingsStore, log: log, audit: audit, alerts: alerts, metrics: set,
			adminAddr: adminLn.Addr().String(), gatewayAddr: addrOf(gwLn),
			onSettings: func(old, cur config.Settings) { output.SetPlain(cur.LogFormat == config.PlainLogs) },
		})
		if err != nil {
			return err
		}
	}
	// Runtime settings changed through the API survive restarts, but the
	// port is whatever this process listens on.
	settingsStore.Update(func(st *config.Settings) { st.Port = defaults.Port })
	output.SetPlain(settingsStore.Load().LogFormat == config.PlainLogs)
	traces := observe.NewTraces(o.traceRing)
	events := &eventSink{audit: audit, alerts: alerts, log: log, onHealth: backend.healthFunc()}

	// Gateway.
	allow := o.allow
	var gwMetrics *metrics.Set
	if o.metricsOn {
		gwMetrics = set
	}
	proxy, err := gateway.New(gateway.Options{
		Registry: reg, Settings: settingsStore, HostSuffix: o.hostSuffix, HashHeader: o.hashHeader, HashCookie: o.hashCookie,
		ConnectTimeout: o.connectTimeout, TryTimeout: o.tryTimeout, Deadline: o.deadline,
		MaxRetries: o.maxRetries, RetryBudget: o.retryBudget, MaxBodySize: o.maxBodySize, StreamThreshold: o.streamThreshold,
		MaxConnsPerNode: o.maxConnsPerNode,
		Breaker: gateway.BreakerOptions{ConsecutiveFailures: o.breakerFailures, FailureRatio: o.breakerRatio, MinRequests: o.breakerMinRequests,
			Window: o.breakerWindow, OpenTimeout: o.breakerOpen, HalfOpenMaxRequests: o.breakerHalfOpen},
		Health: gateway.HealthOptions{Enabled: o.healthEnabled, Interval: o.healthInterval, Timeout: o.healthTimeout, Path: o.healthPath,
			FailThreshold: o.healthFail, PassThreshold: o.healthPass, Evict: o.healthEvict,
			Leader: backend.leaderFunc(), Evictor: backend.evictorFunc()},
		OutlierConsecutive5xx: o.outlier5xx,
		TLSConfig:             o.upstreamTLS,
		TunnelIdleTimeout:     o.tunnelIdleTimeout,
		MaxTunnels:            o.maxTunnels,
		Metrics:               gwMetrics, Events: events, Traces: traces, TraceHeader: o.traceHeader, Via: gateway.ViaPseudonym(o.instanceID, rand.Uint32()), Logger: log,
	})
	if err != nil {
		return err
	}

	// Admin.
	lc := lifecycle{storeUp: backend.storeUpFunc(), mode: o.stateMode}
	adminOpts := admin.Options{
		Registrar: backend.registrarOr(reg), Cluster: backend.clusterFunc(), SaveSettings: backend.saveSettingsFunc(),
		Registry: reg, Settings: settingsStore, Auth: authority,
		SignInLimiter:     auth.NewRateLimiter(o.signinPerMinute, 10, 100_000, time.Now),
		RegistrationToken: o.registrationToken,
		OwnListeners:      ownListeners(adminLn, gwLn, tlsLn, adminTLSLn),
		Proxy:             proxy,
		Upstreams:         func() any { return proxy.Upstreams() },
		Ready:             lc.ready,
		HealthComponents: func() map[string]any {
			return healthComponents(localHealth, backend.storeUpFunc(), o, reg)
		},
		Audit: audit, Alerts: alerts, Traces: traces, LogRing: ring, LogDir: logDir,
		SetLogFormat:  func(f config.LogFormat) { output.SetPlain(f == config.PlainLogs) },
		Metrics:       set,
		PublicMetrics: o.publicMetrics,
		CORSOrigins:   splitList(o.corsOrigins),
		Build:         admin.BuildInfo{Name: "maxine", Description: "Service registry, discovery service and reverse-proxy gateway", Version: version, Commit: commit},
		InstanceID:    o.instanceID, TraceHeader: o.traceHeader, Logger: log,
	}
	if allow != nil {
		adminOpts.AllowList = allow
	}
	adm, err := admin.New(adminOpts)
	if err != nil {
		return err
	}

	if pprofLn != nil {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprofhttp.Index)
		mux.HandleFunc("/debug/pprof/profile", pprofhttp.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprofhttp.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprofhttp.Trace)
		psrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go psrv.Serve(pprofLn)
		defer psrv.Close()
	}

	// Background work, each with an owner: done stops them all.
	done := make(chan struct{})
	var bg sync.WaitGroup
	start := func(f func()) { bg.Add(1); go func() { defer bg.Done(); f() }() }
	if backend == nil {
		// Local mode expires its own nodes; in a shared mode the store
		// does (the leader's reap, or the flock holder's sweep).
		start(func() { reg.Run(done, 100*time.Millisecond) })
	} else {
		bctx, bcancel := context.WithCancel(context.Background())
		backend.proxy.Store(proxy)
		start(func() { backend.run(bctx) })
		start(func() { <-done; bcancel() })
	}
	start(func() { proxy.Run(done) })
	start(func() { audit.Run(done) })
	start(func() { alerts.Run(done) })
	persistWrites := set.GetOrCreateCounter(`maxine_persistence_writes_total`)
	persistErrors := set.GetOrCreateCounter(`maxine_persistence_errors_total`)
	persistSeconds := set.GetOrCreatePrometheusHistogram(`maxine_persistence_write_duration_seconds`)
	var snap *persistence.Snapshotter
	if stateFile != nil {
		snap = persistence.NewSnapshotter(persistence.SnapshotterOptions{
			File: stateFile, Registry: reg, Settings: settingsStore, Interval: o.persistInterval,
			OnError: func(err error) {
				persistErrors.Inc()
				// The first failure of an outage, then every 60th (about
				// once a minute at the default interval): the loss window
				// is what an operator needs, not a line per tick.
				n, since := localHealth.failed(err)
				if n == 1 || n%60 == 0 {
					log.Error().Err(err).Str("file", stateFile.Path()).Time("unsavedSince", since).Dur("lossWindow", time.Since(since)).Int("failedWrites", n).
						Msg("cannot write the state file: state changes are held in memory only and are lost if the process stops")
				}
				if n == 1 {
					alerts.Raise(observe.Alert{Type: observe.AlertStateStoreDown, Severity: observe.SeverityCritical,
						Message: "cannot write the state file: " + err.Error()})
				}
			},
			OnWrite: func(d time.Duration, nodes int) {
				persistWrites.Inc()
				persistSeconds.Update(d.Seconds())
				if recovered, since := localHealth.wrote(time.Now()); recovered {
					log.Info().Time("unsavedSince", since).Dur("lossWindow", time.Since(since)).Msg("state file writes recovered: the changes held in memory only are saved")
				}
			},
		})
		start(func() { snap.Run(done) })
	}
	sub := reg.Subscribe(0)
	start(func() { events.pumpRegistry(reg, sub, set, done) })

	adminHTTP := admin.HTTPServerOptions{MaxBodySize: o.adminMaxBody, MaxHeaderBytes: o.maxHeaderBytes,
		ReadTimeout: o.adminReadTimeout, IdleTimeout: o.idleTimeout}
	gwOpts := gateway.ServerOptions{MaxHeaderBytes: o.maxHeaderBytes, ReadTimeout: o.adminReadTimeout, IdleTimeout: o.idleTimeout, Logger: log}
	adminSrv := adm.NewHTTPServer(adminHTTP)
	var gwSrv, tlsSrv, adminTLSSrv *fasthttp.Server
	serveErr := make(chan error, 4)
	// serveTLS serves srv on a TLS listener whose certificate kp reloads
	// when its files change; name is the listener's key in the log.
	serveTLS := func(srv *fasthttp.Server, ln net.Listener, kp *gateway.KeyPair, name string) {
		go func() { serveErr <- srv.Serve(gateway.TLSListener(ln, gateway.ServerTLSConfig(kp))) }()
		start(func() { kp.Watch(done, o.tlsReloadInterval, &log) })
		log.Info().Str(name, ln.Addr().String()).Str("subject", kp.Subject()).Time("notAfter", kp.NotAfter()).Msg("TLS listener")
	}
	// gateway.Listener: a request head with a bare LF is refused at once,
	// on both listeners alike.
	go func() { serveErr <- adminSrv.Serve(gateway.Listener(adminLn)) }()
	if gwLn != nil {
		gwSrv = gateway.NewServer(proxy, gwOpts)
		go func() { serveErr <- gwSrv.Serve(gateway.Listener(gwLn)) }()
	}
	if tlsLn != nil {
		tlsSrv = gateway.NewServer(proxy, gwOpts)
		serveTLS(tlsSrv, tlsLn, keyPair, "gatewayTLS")
	}
	if adminTLSLn != nil {
		adminTLSSrv = adm.NewHTTPServer(adminHTTP)
		serveTLS(adminTLSSrv, adminTLSLn, adminKeyPair, "adminTLS")
	}
	log.Info().Str("admin", adminLn.Addr().String()).Str("gateway", addrOf(gwLn)).Str("dataDir", o.dataDir).Str("stateMode", o.stateMode).Str("version", version).Msg("maxine started")

	sigs := make(chan os.Signal, 2)
	// SIGHUP reloads the TLS certificate and never stops the process
	// (Go's default for an unhandled SIGHUP is to exit).
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	var runErr error
wait:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				reloadOnHUP(log, namedKeyPair{"gateway", keyPair}, namedKeyPair{"admin", adminKeyPair})
				continue
			}
			log.Info().Str("signal", sig.String()).Dur("drainTimeout", o.drainTimeout).Msg("shutting down: draining")
		case runErr = <-serveErr:
			log.Error().Err(runErr).Msg("listener failed")
		}
		break wait
	}

	// Drain: readiness goes DOWN first, then the listeners stop accepting
	// and in-flight requests get up to drainTimeout to finish.
	lc.setDraining()
	if o.drainDelay > 0 {
		time.Sleep(o.drainDelay)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.drainTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range []*fasthttp.Server{gwSrv, tlsSrv, adminSrv, adminTLSSrv} {
		if srv == nil {
			continue
		}
		wg.Add(1)
		go func(srv *fasthttp.Server) {
			defer wg.Done()
			if err := srv.ShutdownWithContext(ctx); err != nil {
				log.Warn().Err(err).Msg("drain timeout: closing remaining connections")
			}
		}(srv)
	}
	wg.Wait()
	// Upgrade tunnels are no server's connections any more: they get
	// what is left of the drain timeout, then are closed.
	if n := proxy.CloseTunnels(ctx); n > 0 {
		log.Warn().Int("tunnels", n).Msg("drain timeout: closing open tunnels")
	}
	close(done)
	bg.Wait()
	reg.Unsubscribe(sub)
	if snap != nil {
		if err := snap.Flush(); err != nil {
			log.Error().Err(err).Msg("final state write failed")
		}
	}
	if err := audit.Close(); err != nil {
		log.Error().Err(err).Msg("cannot close the audit log")
	}
	log.Info().Msg("maxine stopped")
	return runErr
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return "disabled"
	}
	return ln.Addr().String()
}

// lifecycle is the process's readiness: DOWN once draining starts, so a
// load balancer in front stops sending traffic.
type lifecycle struct {
	mu       sync.Mutex
	draining bool
	storeUp  func() bool // nil in local mode
	mode     string
}

func (l *lifecycle) setDraining() {
	l.mu.Lock()
	l.draining = true
	l.mu.Unlock()
}

func (l *lifecycle) ready() (bool, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.draining {
		return false, "draining"
	}
	if l.storeUp != nil && !l.storeUp() {
		return false, "state store unreachable (" + l.mode + ")"
	}
	return true, ""
}
