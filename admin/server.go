// Package admin serves Maxine's control-plane HTTP API on the admin port:
// sign-in and RBAC, registration and deregistration, redirect discovery,
// the compatibility proxy endpoints, runtime configuration, the actuator
// (health, info, metrics, Prometheus, audit, alerts, traces, cluster,
// upstreams) and the log endpoints. Paths, field names, status codes and
// messages follow the old Node.js Maxine contract (SPEC section 3).
package admin

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fasthttp/router"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/maxine-io/maxine/auth"
	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/observe"
	"github.com/maxine-io/maxine/registry"
	"github.com/maxine-io/maxine/trace"
)

// Proxy is what admin needs of the gateway: the compatibility proxy
// endpoints and discover in proxy mode go through the same engine, and the
// servers listing shows each node's breaker and health state.
type Proxy interface {
	ServeService(ctx *fasthttp.RequestCtx, service string, path []byte)
	NodeStatus(service, virtualNode string) (breaker string, healthy bool, ok bool)
}

// HostChecker refuses registrations whose host is outside the upstream
// allow-list.
type HostChecker interface {
	Check(hostName string) error
}

// ClusterStatus is the body of /api/actuator/cluster. The first seven
// fields are the old contract; the rest say where the leader is and who
// else is in the cluster.
type ClusterStatus struct {
	Enabled          bool   `json:"enabled"`
	InstanceID       string `json:"instanceId"`
	IsLeader         bool   `json:"isLeader"`
	HasLeader        bool   `json:"hasLeader"`
	FencingToken     int64  `json:"fencingToken"`
	LeaderInstanceID string `json:"leaderInstanceId"`
	ObservedAt       int64  `json:"observedAt"`

	Mode            string          `json:"mode"`                      // local, shared-file or redis
	Elected         bool            `json:"elected"`                   // the cluster elects a leader (redis mode)
	LeaderAdminAddr string          `json:"leaderAdminAddr,omitempty"` // where config changes are forwarded
	LeaseExpiresAt  int64           `json:"leaseExpiresAt,omitempty"`  // ms since the epoch
	StoreUp         bool            `json:"storeUp"`
	Members         []ClusterMember `json:"members"`
	Message         string          `json:"message,omitempty"`
}

// ClusterMember is one live instance of the cluster.
type ClusterMember struct {
	InstanceID  string `json:"instanceId"`
	AdminAddr   string `json:"adminAddr,omitempty"`
	GatewayAddr string `json:"gatewayAddr,omitempty"`
	StartedAt   int64  `json:"startedAt,omitempty"`
	LastSeen    int64  `json:"lastSeen,omitempty"`
	Leader      bool   `json:"leader"`
}

// Registrar applies registrations and deregistrations. In local mode it is
// the Registry itself; in a cluster it writes through the shared store
// first and answers only once the store has the change. An error wrapping
// persistence.ErrStoreUnavailable is answered 503 with its message.
type Registrar interface {
	Register(ctx context.Context, reg registry.Registration) (registry.Result, error)
	Deregister(ctx context.Context, service, node string) (bool, error)
}

// LocalRegistrar is the Registrar of local mode: the Registry alone.
type LocalRegistrar struct{ Registry *registry.Registry }

// Register applies reg to the registry.
func (l LocalRegistrar) Register(_ context.Context, reg registry.Registration) (registry.Result, error) {
	return l.Registry.Register(reg)
}

// Deregister removes the node from the registry.
func (l LocalRegistrar) Deregister(_ context.Context, service, node string) (bool, error) {
	return l.Registry.Deregister(service, node), nil
}

// BuildInfo is shown by /api/actuator/info.
type BuildInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Version     string `json:"version"`
	Commit      string `json:"commit,omitempty"`
	GoVersion   string `json:"goVersion"`
}

// Options configure the admin API. Registry, Settings and Auth are
// required; every other dependency may be nil and its endpoints then answer
// with an empty result or 501.
type Options struct {
	Registry *registry.Registry
	Settings *config.Store
	Auth     *auth.Authority
	// SignInLimiter limits sign-in attempts per client IP; nil = unlimited.
	SignInLimiter *auth.RateLimiter
	// RegistrationToken, when set, must be sent as a Bearer token to
	// register and deregister.
	RegistrationToken string
	AllowList         HostChecker
	// OwnListeners are the addresses Maxine listens on (admin, gateway),
	// as bound ("0.0.0.0:8000", ":8080", "127.0.0.1:8080"). A registration
	// whose node is one of them is refused with 403 whatever the
	// allow-list: it would make the admin API reachable through the
	// gateway (selfaddr.go).
	OwnListeners []string

	Proxy Proxy
	// Upstreams returns the gateway's active health-check report.
	Upstreams func() any
	// Registrar applies registrations; nil = LocalRegistrar{Registry}.
	Registrar Registrar
	// Cluster returns the coordination state; nil = local mode, where
	// /api/actuator/cluster says clustering is off.
	Cluster func() ClusterStatus
	// SaveSettings, when set, shares a runtime settings change with the
	// cluster before it is applied here (in redis mode a leader-only,
	// fenced write). An error refuses the change: 409 with the leader
	// message when this instance lost the leadership meanwhile, else 503.
	SaveSettings func(ctx context.Context, s config.Settings) error
	// ForwardTimeout bounds a config change forwarded to the leader.
	// Default 5s.
	ForwardTimeout time.Duration
	// Ready reports readiness for /api/actuator/health; nil = always ready.
	Ready func() (ok bool, reason string)
	// HealthComponents, if set, gives the health body's "components"
	// (name -> {"status": "UP"|"DOWN", "details": {...}}).
	HealthComponents func() map[string]any

	Audit   *observe.Audit
	Alerts  *observe.Alerts
	Traces  *observe.Traces
	LogRing *observe.LogRing
	LogDir  string
	// SetLogFormat applies a runtime log format change.
	SetLogFormat func(config.LogFormat)

	// Metrics receives the admin's metrics and is exposed at
	// /api/actuator/prometheus; nil = a private set.
	Metrics       *metrics.Set
	PublicMetrics bool // also serve unauthenticated /metrics

	// CORSOrigins are the origins browsers may call the admin API from:
	// "*" for any (the old server's default), or exact origins such as
	// "https://dash.example". Empty turns CORS off.
	CORSOrigins []string

	Build       BuildInfo
	InstanceID  string
	TraceHeader string // default x-trace-id
	Logger      zerolog.Logger
	Now         func() time.Time
}

// Server is the admin API. Create it with New; it must not be copied.
type Server struct {
	o         Options
	forwarder *fasthttp.Client // config changes forwarded to the leader
	router    *router.Router
	m         *adminMetrics
	cors      *cors // nil = CORS off
	self      ownListeners
	start     time.Time
	traceHdr  string
	traceKey  []byte // traceHdr in fasthttp's canonical form
	infos     sync.Pool
}

// New builds the admin API.
func New(o Options) (*Server, error) {
	if o.Registry == nil || o.Settings == nil || o.Auth == nil {
		return nil, errors.New("admin: Registry, Settings and Auth are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	if o.TraceHeader == "" {
		o.TraceHeader = "x-trace-id"
	}
	s := &Server{o: o, start: o.Now(), traceHdr: o.TraceHeader, traceKey: fasthttp.AppendNormalizedHeaderKey(nil, o.TraceHeader),
		forwarder: &fasthttp.Client{NoDefaultUserAgentHeader: true, MaxConnsPerHost: 16, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}}
	s.m = newAdminMetrics(o.Metrics, &s.o)
	s.cors = newCORS(o.CORSOrigins, o.TraceHeader)
	self, err := parseOwnListeners(o.OwnListeners)
	if err != nil {
		return nil, err
	}
	s.self = self
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	r := router.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.HandleOPTIONS = false

	s.handle(r, "POST", "/api/maxine/signin", "signin", auth.RoleNone, s.signIn)
	s.handle(r, "PUT", "/api/maxine/change-password", "change_password", auth.Admin, s.changePassword)

	s.handle(r, "POST", "/api/maxine/serviceops/register", "register", auth.RoleNone, s.register)
	s.handle(r, "DELETE", "/api/maxine/serviceops/register", "deregister", auth.RoleNone, s.deregister)
	s.handle(r, "GET", "/api/maxine/serviceops/discover", "discover", auth.RoleNone, s.discover)
	s.handle(r, router.MethodWild, "/api/maxine/serviceops/proxy/{serviceName}/{path:*}", "proxy", auth.RoleNone, s.proxy)
	s.handle(r, "GET", "/api/maxine/serviceops/servers", "servers", auth.Viewer, s.servers)

	s.handle(r, "GET", "/api/maxine/control/config", "config_get", auth.Viewer, s.getConfig)
	s.handle(r, "PUT", "/api/maxine/control/config", "config_put", auth.Operator, s.putConfig)

	s.handle(r, "GET", "/api/actuator/health", "health", auth.RoleNone, s.health)
	s.handle(r, "GET", "/api/actuator/info", "info", auth.RoleNone, s.actuatorOn(s.info))
	s.handle(r, "GET", "/api/actuator/metrics", "metrics", auth.RoleNone, s.actuatorOn(s.processMetrics))
	s.handle(r, "GET", "/api/actuator/performance", "performance", auth.RoleNone, s.actuatorOn(s.performance))
	s.handle(r, "GET", "/api/actuator/prometheus", "prometheus", auth.Viewer, s.prometheus)
	if s.o.PublicMetrics {
		s.handle(r, "GET", "/metrics", "public_metrics", auth.RoleNone, s.prometheus)
	}
	s.handle(r, "GET", "/api/actuator/audit", "audit", auth.Viewer, s.audit)
	s.handle(r, "GET", "/api/actuator/alerts", "alerts", auth.Viewer, s.alerts)
	s.handle(r, "GET", "/api/actuator/traces", "traces", auth.Viewer, s.traces)
	s.handle(r, "GET", "/api/actuator/cluster", "cluster", auth.Viewer, s.cluster)
	s.handle(r, "GET", "/api/actuator/upstreams", "upstreams", auth.Viewer, s.upstreams)

	s.handle(r, "GET", "/api/logs/recent", "logs_recent", auth.Viewer, s.logsRecent)
	s.handle(r, "GET", "/api/logs/recent/clear", "logs_clear", auth.Operator, s.logsClear)
	s.handle(r, "POST", "/api/logs/recent/clear", "logs_clear", auth.Operator, s.logsClear)
	s.handle(r, "GET", "/api/logs/download", "logs_download", auth.Viewer, s.logsDownload)
	s.handle(r, "GET", logFilesPrefix+"{name}", "log_file", auth.Viewer, s.logFile)

	r.NotFound = s.wrap("not_found", auth.RoleNone, func(ctx *fasthttp.RequestCtx, _ *requestInfo) {
		writeMessage(ctx, fasthttp.StatusNotFound, "Not Found: "+string(ctx.Path()))
	})
	r.MethodNotAllowed = s.wrap("method_not_allowed", auth.RoleNone, func(ctx *fasthttp.RequestCtx, _ *requestInfo) {
		writeMessage(ctx, fasthttp.StatusMethodNotAllowed, "Method Not Allowed")
	})
	r.PanicHandler = func(ctx *fasthttp.RequestCtx, v any) {
		s.o.Logger.Error().Interface("panic", v).Bytes("path", ctx.Path()).Msg("admin handler panicked")
		writeMessage(ctx, fasthttp.StatusInternalServerError, "Internal Server Error")
	}
	s.router = r
}

// requestInfo is what the wrapper learned about a request before calling
// its handler: trace identity and, for protected routes, the caller.
type requestInfo struct {
	tc trace.Context
	// traceparent is the response's traceparent (the client's when
	// valid), for the trace record.
	traceparent [trace.TraceparentLen]byte
	tpLen       int
	claims      auth.Claims
	// routine marks a request that changed nothing worth an info line
	// (a heartbeat): its request log line is at debug.
	routine bool
}

type handlerFunc func(ctx *fasthttp.RequestCtx, ri *requestInfo)

func (s *Server) handle(r *router.Router, method, path, route string, need auth.Role, h handlerFunc) {
	r.Handle(method, path, s.wrap(route, need, h))
}

// wrap adds what every admin response needs: trace headers, the role
// check (401 for a missing or bad token, 403 for a weak role), the request
// log line, the request metric and the trace record.
func (s *Server) wrap(route string, need auth.Role, h handlerFunc) fasthttp.RequestHandler {
	rm := s.m.route(route)
	return func(ctx *fasthttp.RequestCtx) {
		start := ctx.Time() // the server's clock read for this request
		if start.IsZero() {
			start = time.Now()
		}
		// Pooled: handlers take it by pointer, so it would escape, one
		// allocation per request.
		ri, _ := s.infos.Get().(*requestInfo)
		if ri == nil {
			ri = new(requestInfo)
		}
		defer func() {
			*ri = requestInfo{}
			s.infos.Put(ri)
		}()
		s.traceHeaders(ctx, ri)
		if need != auth.RoleNone {
			if s.authorize(ctx, ri, need, route) {
				h(ctx, ri)
			}
		} else {
			h(ctx, ri)
		}
		d := time.Since(start)
		status := ctx.Response.StatusCode()
		rm.observe(status)
		s.m.old.requests.Inc()
		if s.o.Traces != nil {
			s.o.Traces.RecordTrace("admin", "", ri.traceparent[:ri.tpLen], ctx.Method(), ctx.Path(), status, start, d)
		}
		e := s.o.Logger.Info()
		if ri.routine {
			e = s.o.Logger.Debug()
		}
		if e.Enabled() {
			e.Str("route", route).Bytes("method", ctx.Method()).Bytes("path", ctx.Path()).Int("status", status).
				Dur("duration", d).Str("ip", ctx.RemoteIP().String()).Bytes("traceId", ctx.Response.Header.Peek(s.traceHdr)).
				Msg("admin request")
		}
	}
}

// traceHeaders keeps a valid incoming traceparent and x-trace-id and
// generates the missing ones (a malformed traceparent starts a new trace).
func (s *Server) traceHeaders(ctx *fasthttp.RequestCtx, ri *requestInfo) {
	in := ctx.Request.Header.PeekBytes(strTraceparent)
	tc, ok := trace.Parse(in)
	// Canonical keys: no normalization of each key per request.
	if ok {
		ctx.Response.Header.SetCanonical(strTraceparent, in) // whole, a later version's fields too
		ri.tpLen = copy(ri.traceparent[:], in)
	} else {
		tc = trace.New()
		ri.tpLen = len(tc.AppendTraceparent(ri.traceparent[:0]))
		ctx.Response.Header.SetCanonical(strTraceparent, ri.traceparent[:ri.tpLen])
	}
	ri.tc = tc
	if id := ctx.Request.Header.PeekBytes(s.traceKey); len(id) > 0 && len(id) <= 128 && printable(id) {
		ctx.Response.Header.SetCanonical(s.traceKey, id)
	} else {
		var buf [32]byte
		ctx.Response.Header.SetCanonical(s.traceKey, tc.AppendTraceID(buf[:0]))
	}
}

var strTraceparent = []byte(trace.Header)

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// Handler returns the request handler for the admin listener.
func (s *Server) Handler() fasthttp.RequestHandler {
	if s.cors != nil {
		return s.cors.handler(s.router.Handler)
	}
	return s.router.Handler
}

// HTTPServerOptions bound what one admin request may cost.
type HTTPServerOptions struct {
	MaxBodySize    int           // default 1 MiB; larger bodies get 413
	MaxHeaderBytes int           // default 8 KiB; larger headers get 431
	ReadTimeout    time.Duration // default 30 s
	IdleTimeout    time.Duration // default 60 s
}

// NewHTTPServer returns the fasthttp server for the admin listener with
// bounded header and body sizes and JSON errors for requests that cannot be
// read.
func (s *Server) NewHTTPServer(o HTTPServerOptions) *fasthttp.Server {
	if o.MaxBodySize <= 0 {
		o.MaxBodySize = 1 << 20
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 8 << 10
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 30 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 60 * time.Second
	}
	return &fasthttp.Server{
		Handler:                       s.Handler(),
		Name:                          "maxine",
		MaxRequestBodySize:            o.MaxBodySize,
		ReadBufferSize:                o.MaxHeaderBytes,
		ReadTimeout:                   o.ReadTimeout,
		WriteTimeout:                  o.ReadTimeout,
		IdleTimeout:                   o.IdleTimeout,
		DisablePreParseMultipartForm:  true,
		NoDefaultServerHeader:         true,
		DisableHeaderNamesNormalizing: false,
		CloseOnShutdown:               true,
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			var ri requestInfo
			s.traceHeaders(ctx, &ri)
			switch {
			case errors.Is(err, fasthttp.ErrBodyTooLarge):
				writeMessage(ctx, fasthttp.StatusRequestEntityTooLarge, "Request body is larger than "+strconv.Itoa(o.MaxBodySize)+" bytes")
			case isSmallBuffer(err):
				writeMessage(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "Request headers are too large")
			default:
				writeMessage(ctx, fasthttp.StatusBadRequest, "Bad Request")
			}
			ctx.SetConnectionClose()
			if s.cors != nil {
				s.cors.simple(ctx)
			}
			s.m.route("unreadable").observe(ctx.Response.StatusCode())
			s.m.old.requests.Inc()
		},
	}
}

// isSmallBuffer recognises fasthttp's error for headers that do not fit
// ReadBufferSize; fasthttp has no sentinel for it.
func isSmallBuffer(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "small read buffer") || strings.Contains(msg, "too big")
}

// clientIP is the peer's address; Maxine does not trust X-Forwarded-For on
// the admin port.
func clientIP(ctx *fasthttp.RequestCtx) string {
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return ctx.RemoteAddr().String()
}
