package admin

import (
	"sort"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/lb"
	"github.com/maxine-io/maxine/observe"
	"github.com/maxine-io/maxine/registry"
)

type registerResponse struct {
	HostName        string `json:"hostName"`
	NodeName        string `json:"nodeName"`
	ServiceName     string `json:"serviceName"`
	TimeOut         int    `json:"timeOut"`
	Weight          int    `json:"weight"`
	Address         string `json:"address"`
	HealthCheckPath string `json:"healthCheckPath"`
	// RegisteredAt is a string, as the old server's was: it came from
	// new Date().toLocaleString(), "3/30/2026, 1:08:26 PM" in the
	// server's time zone (en-US, Node's default locale). The servers
	// listing keeps ms since the epoch, as the old one did.
	RegisteredAt string `json:"registeredAt"`
}

// registeredAtLayout is the en-US toLocaleString() layout.
const registeredAtLayout = "1/2/2006, 3:04:05 PM"

func (s *Server) register(ctx *fasthttp.RequestCtx, ri *requestInfo) {
	if !s.registrationAllowed(ctx) {
		return
	}
	body, ok := jsonBody(ctx)
	if !ok {
		s.m.registrations[3].Inc()
		return
	}
	reg, err := registry.DecodeRegistration(body, s.o.Settings.Load().HeartBeatTimeout)
	if err != nil {
		s.m.registrations[3].Inc()
		writeDetail(ctx, fasthttp.StatusBadRequest, registry.InvalidRegistrationMessage, err.Error())
		return
	}
	err = s.self.check(reg)
	if err == nil && s.o.Cluster != nil {
		err = memberListener(reg, s.o.Cluster().Members)
	}
	if err != nil {
		s.m.registrations[3].Inc()
		writeDetail(ctx, fasthttp.StatusForbidden, "Registration refused: the node's address is one of Maxine's own listeners", err.Error())
		return
	}
	if s.o.AllowList != nil {
		if err := s.o.AllowList.Check(reg.HostName); err != nil {
			s.m.registrations[3].Inc()
			writeDetail(ctx, fasthttp.StatusForbidden, "hostName is outside the upstream allow-list", err.Error())
			return
		}
	}
	res, err := s.registrar().Register(ctx, reg)
	if err != nil {
		s.m.registrations[3].Inc()
		if !registry.IsValidationError(err) {
			// Full, or the shared store could not take it (its message
			// names the store): nothing was changed anywhere.
			writeMessage(ctx, fasthttp.StatusServiceUnavailable, err.Error())
			return
		}
		writeDetail(ctx, fasthttp.StatusBadRequest, registry.InvalidRegistrationMessage, err.Error())
		return
	}
	s.m.registration(res.Kind)
	ri.routine = !res.Changed() // a heartbeat: thousands a second, nothing to read
	if res.Changed() {
		s.auditEvent(ri, observe.AuditEvent{Type: "register", Actor: clientIP(ctx), Service: reg.ServiceName, Node: reg.NodeName,
			Details: map[string]any{"address": res.Address, "weight": reg.Weight, "kind": res.Kind.String()}})
	}
	writeJSON(ctx, fasthttp.StatusOK, registerResponse{
		HostName: reg.HostName, NodeName: reg.NodeName, ServiceName: reg.ServiceName, TimeOut: reg.TimeOut,
		Weight: reg.Weight, Address: res.Address, HealthCheckPath: reg.HealthCheckPath, RegisteredAt: time.UnixMilli(res.RegisteredAt).Format(registeredAtLayout),
	})
}

func (s *Server) registrar() Registrar {
	if s.o.Registrar != nil {
		return s.o.Registrar
	}
	return LocalRegistrar{Registry: s.o.Registry}
}

func (s *Server) deregister(ctx *fasthttp.RequestCtx, ri *requestInfo) {
	if !s.registrationAllowed(ctx) {
		return
	}
	args := ctx.QueryArgs()
	svc, node := string(args.Peek("serviceName")), string(args.Peek("nodeName"))
	if svc == "" || node == "" {
		writeMessage(ctx, fasthttp.StatusBadRequest, "Please provide the serviceName and nodeName.")
		return
	}
	removed, err := s.registrar().Deregister(ctx, svc, node)
	if err != nil {
		writeMessage(ctx, fasthttp.StatusServiceUnavailable, err.Error())
		return
	}
	if !removed {
		writeMessage(ctx, fasthttp.StatusNotFound, "Node not found")
		return
	}
	s.m.deregistrations.Inc()
	s.auditEvent(ri, observe.AuditEvent{Type: "deregister", Actor: clientIP(ctx), Service: svc, Node: node})
	writeJSON(ctx, fasthttp.StatusOK, map[string]string{"message": "Node deregistered", "serviceName": svc, "nodeName": node})
}

// gatewaySelection is what redirect discovery uses of the gateway, when it
// has one (gateway.Proxy): its snapshot and node state for a service, and
// its 503 for a service with no node to send to.
type gatewaySelection interface {
	Selection(service []byte) (*registry.Snapshot, lb.NodeState)
	Unavailable(ctx *fasthttp.RequestCtx, service []byte)
}

// discover resolves a node with the current strategy and redirects to it
// (302, Location = address + endPoint), or proxies in proxy mode. This is
// the hottest admin route: it takes no lock and builds the Location header
// in a stack buffer.
func (s *Server) discover(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	args := ctx.QueryArgs()
	name := args.Peek("serviceName")
	if len(name) == 0 {
		writeMessage(ctx, fasthttp.StatusBadRequest, "Please provide the serviceName.")
		return
	}
	endPoint := args.Peek("endPoint")
	if !validEndPoint(endPoint) {
		writeDetail(ctx, fasthttp.StatusBadRequest, "Invalid endPoint",
			"endPoint must be a URL path and query (origin-form): no spaces, control characters, raw non-ASCII bytes or fragment")
		return
	}
	settings := s.o.Settings.Load()
	if string(args.Peek("mode")) == "proxy" || settings.DiscoveryMode == config.Proxy {
		s.m.discoveries[1].Inc()
		if s.o.Proxy == nil {
			writeMessage(ctx, fasthttp.StatusNotImplemented, "Proxy mode is not available: the gateway is disabled")
			return
		}
		s.countProxied(name)
		s.o.Proxy.ServeService(ctx, string(name), endPoint)
		return
	}
	s.m.discoveries[0].Inc()
	// With the gateway, choose as it would: never redirect to a node it
	// would not send to (health-checked down, breaker open, ejected), and
	// answer a service with no such node as it does (503 naming the
	// service and why).
	snap := s.o.Registry.Snapshot(string(name))
	var state lb.NodeState
	sel, _ := s.o.Proxy.(gatewaySelection)
	if sel != nil {
		if gs, st := sel.Selection(name); gs != nil {
			snap, state = gs, st
		}
	}
	i := lb.ForSnapshot(snap).Pick(settings.Strategy, ctx.RemoteIP(), state)
	if i < 0 {
		if sel != nil {
			sel.Unavailable(ctx, name)
			return
		}
		writeMessage(ctx, fasthttp.StatusServiceUnavailable, "Service Unavailable")
		return
	}
	s.m.old.discovered.Inc()
	var buf [512]byte
	loc := append(buf[:0], snap.Nodes[i].Address...)
	if len(endPoint) > 0 && endPoint[0] != '/' {
		loc = append(loc, '/')
	}
	loc = append(loc, endPoint...)
	ctx.Response.Header.SetBytesV("Location", loc)
	ctx.SetStatusCode(fasthttp.StatusFound)
	// The old server's body: Express's res.redirect answers a client that
	// accepts text (or says nothing) with "Found. Redirecting to <url>".
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.Response.AppendBodyString("Found. Redirecting to ")
	ctx.Response.AppendBody(loc)
}

// validEndPoint reports whether discover's endPoint can be appended to a
// node address as an origin-form path and query (RFC 9112 §3.2.1): only
// visible ASCII, no '#'. A space or CRLF would otherwise split the
// Location header or the forwarded request line.
func validEndPoint(ep []byte) bool {
	for _, c := range ep {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// proxy serves /api/maxine/serviceops/proxy/{serviceName}/{path...}.
func (s *Server) proxy(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	if s.o.Proxy == nil {
		writeMessage(ctx, fasthttp.StatusNotImplemented, "Proxy mode is not available: the gateway is disabled")
		return
	}
	svc, _ := ctx.UserValue("serviceName").(string)
	path, _ := ctx.UserValue("path").(string)
	s.m.discoveries[1].Inc()
	s.countProxied([]byte(svc))
	s.o.Proxy.ServeService(ctx, svc, append([]byte{'/'}, path...))
}

// countProxied counts a proxied discovery in the old families, which
// counted those that found a node: here, those of a service that has
// nodes (the gateway may still find them all unusable).
func (s *Server) countProxied(service []byte) {
	if snap := s.o.Registry.Snapshot(string(service)); snap != nil && len(snap.Nodes) > 0 {
		s.m.old.discovered.Inc()
		s.m.old.proxied.Inc()
	}
}

type serverNode struct {
	NodeName        string            `json:"nodeName"`
	ParentNode      string            `json:"parentNode"`
	Address         string            `json:"address"`
	TimeOut         int               `json:"timeOut"`
	RegisteredAt    int64             `json:"registeredAt"`
	HealthCheckPath string            `json:"healthCheckPath"`
	Weight          int               `json:"weight"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	Breaker         string            `json:"breaker,omitempty"`
	Healthy         *bool             `json:"healthy,omitempty"`
}

type serverService struct {
	Offset int                   `json:"offset"`
	Nodes  map[string]serverNode `json:"nodes"`
}

// servers lists the registry in the old shape, with breaker and health
// state as extra per-node fields.
func (s *Server) servers(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	out := make(map[string]serverService)
	s.o.Registry.Range(func(snap *registry.Snapshot) bool {
		svc := serverService{Nodes: make(map[string]serverNode, len(snap.Nodes))}
		if n := len(snap.Nodes); n > 0 {
			svc.Offset = int(snap.RR.Load() % uint64(n))
		}
		for _, n := range snap.Nodes {
			sn := serverNode{NodeName: n.Name, ParentNode: n.Parent, Address: n.Address, TimeOut: n.TimeOut,
				RegisteredAt: n.RegisteredAt(), HealthCheckPath: n.HealthCheckPath, Weight: n.Weight, Metadata: n.Metadata}
			if s.o.Proxy != nil {
				if br, healthy, ok := s.o.Proxy.NodeStatus(snap.Service, n.Name); ok {
					sn.Breaker = br
					sn.Healthy = &healthy
				}
			}
			svc.Nodes[n.Name] = sn
		}
		out[snap.Service] = svc
		return true
	})
	writeJSON(ctx, fasthttp.StatusOK, out)
}

// sortedKeys is used where a deterministic order helps readers.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
