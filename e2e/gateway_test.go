package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestGatewayRoutes(t *testing.T) {
	up := newUpstream(t, "orders-up")
	in := start(t, "", nil, "--host-suffix", "svc.local")
	if r := in.register(up.registration("orders", "o1")); r.status != 200 {
		t.Fatal(r.status)
	}
	in.waitRoutable("orders")
	routes := []struct {
		name string
		path string
		hdr  []string
	}{
		{"path prefix", "/orders/api/list?x=1", nil},
		{"host header", "/api/list?x=1", []string{"Host", "orders"}},
		{"host with port", "/api/list?x=1", []string{"Host", "orders:8000"}},
		{"host suffix", "/api/list?x=1", []string{"Host", "orders.svc.local"}},
		{"service header", "/api/list?x=1", []string{"X-Maxine-Service", "orders"}},
	}
	for _, rt := range routes {
		r := call(t, "GET", in.gateway+rt.path, "", "", rt.hdr...)
		if r.status != 200 || bodyString(r) != "orders-up GET /api/list?x=1" {
			t.Errorf("%s: %d %q", rt.name, r.status, r.body)
		}
	}
	if r := call(t, "GET", in.gateway+"/nosuch/x", "", ""); r.status != 404 || r.json["message"] == nil {
		t.Errorf("unknown service: %d %s", r.status, r.body)
	}
	// Old admin-port entry points go through the same engine.
	if r := in.call("GET", "/api/maxine/serviceops/proxy/orders/api/list?x=1", "", ""); r.status != 200 || bodyString(r) != "orders-up GET /api/list?x=1" {
		t.Errorf("compat proxy: %d %q", r.status, r.body)
	}
	if r := in.call("POST", "/api/maxine/serviceops/proxy/orders/api/create", "", `{"a":1}`); r.status != 200 || bodyString(r) != "orders-up POST /api/create" {
		t.Errorf("compat proxy POST: %d %q", r.status, r.body)
	}
	if r := in.call("GET", "/api/maxine/serviceops/discover?serviceName=orders&endPoint=/api/list&mode=proxy", "", ""); r.status != 200 || !strings.HasPrefix(bodyString(r), "orders-up GET /api/list") {
		t.Errorf("discover mode=proxy: %d %q", r.status, r.body)
	}
	op := in.signIn("op", "op-pass")
	if r := in.call("PUT", "/api/maxine/control/config", op, `{"discoveryMode":"PROXY"}`); r.json["discoveryMode"] != "Success" {
		t.Fatalf("set PROXY: %s", r.body)
	}
	if r := in.call("GET", "/api/maxine/serviceops/discover?serviceName=orders&endPoint=/api/list", "", ""); r.status != 200 || !strings.HasPrefix(bodyString(r), "orders-up GET /api/list") {
		t.Errorf("discoveryMode PROXY: %d %q", r.status, r.body)
	}
	// No node left: 503 from the gateway once the registry change lands.
	in.call("DELETE", "/api/maxine/serviceops/register?serviceName=orders&nodeName=o1", "", "")
	eventually(t, 5*time.Second, "gateway answers 503 or 404 for a service without nodes", func() bool {
		r := call(t, "GET", in.gateway+"/orders/x", "", "")
		return r.status == 503 || r.status == 404
	})
}

func TestGatewayWeightsAndHealthyNodes(t *testing.T) {
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	in := start(t, "", nil)
	in.register(strings.Replace(a.registration("w", "a"), `"timeOut":60`, `"timeOut":60,"weight":3`, 1))
	in.register(b.registration("w", "b"))
	eventually(t, 5*time.Second, "both nodes routable", func() bool {
		call(t, "GET", in.gateway+"/w/x", "", "")
		return a.hits.Load() > 0 && b.hits.Load() > 0
	})
	a0, b0 := a.hits.Load(), b.hits.Load()
	for i := 0; i < 400; i++ {
		if r := call(t, "GET", in.gateway+"/w/x", "", ""); r.status != 200 {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	da, db := a.hits.Load()-a0, b.hits.Load()-b0
	if da != 300 || db != 100 {
		t.Fatalf("weights 3:1 over 400 round-robin requests gave %d:%d", da, db)
	}
	viewer := in.signIn("viewer", "viewer-pass")
	r := in.call("GET", "/api/maxine/serviceops/servers", viewer, "")
	if !strings.Contains(string(r.body), `"breaker"`) || !strings.Contains(string(r.body), `"healthy"`) {
		t.Fatalf("servers lacks breaker/health fields: %s", r.body)
	}
	if r := in.call("GET", "/api/actuator/upstreams", viewer, ""); r.status != 200 || r.json["started"] == nil {
		t.Fatalf("upstreams: %d %s", r.status, r.body)
	}
}

// TestRoutingLoopBetweenInstances: two separate maxine processes (local
// mode, no shared membership) whose service "loop" points at each other's
// gateway, a registration neither can refuse. Each gateway names itself
// in X-Maxine-Via (its --instance-id and a nonce), so the request makes
// one lap and is answered 508 by the first one when it comes back,
// instead of circling between them. A node sees the instance in
// X-Maxine-Via, and the client's Via untouched.
func TestRoutingLoopBetweenInstances(t *testing.T) {
	a := start(t, "", nil, "--instance-id", "loop-a")
	b := start(t, "", nil, "--instance-id", "loop-b")
	at := func(in *instance) string {
		_, port, _ := strings.Cut(strings.TrimPrefix(in.gateway, "http://"), ":")
		return `{"serviceName":"loop","nodeName":"n","hostName":"127.0.0.1","port":` + port + `,"timeOut":60}`
	}
	if r := a.register(at(b)); r.status != 200 {
		t.Fatalf("register on a: %d %s", r.status, r.body)
	}
	if r := b.register(at(a)); r.status != 200 {
		t.Fatalf("register on b: %d %s", r.status, r.body)
	}
	eventually(t, 5*time.Second, "the loop to be refused with 508", func() bool {
		r := call(t, "GET", a.gateway+"/x", "", "", "X-Maxine-Service", "loop")
		return r.status == 508 && strings.Contains(bodyString(r), "Loop Detected")
	})

	up := newUpstream(t, "via-up")
	if r := a.register(up.registration("plain", "p1")); r.status != 200 {
		t.Fatal(r.status)
	}
	a.waitRoutable("plain")
	if r := call(t, "GET", a.gateway+"/plain/x", "", "", "Via", "1.0 edge"); r.status != 200 {
		t.Fatalf("plain: %d", r.status)
	}
	if h, _ := up.seen(); h.Get("Via") != "1.0 edge" || !regexp.MustCompile(`^1\.1 maxine-loop-a-[0-9a-f]{8}$`).MatchString(h.Get("X-Maxine-Via")) {
		t.Errorf("the node saw Via %q, X-Maxine-Via %q", h.Get("Via"), h.Get("X-Maxine-Via"))
	}

	// A chain through another deployment that uses the same instance id
	// (c is "loop-a" too) is not a loop: the pseudonym carries a
	// per-process nonce.
	c := start(t, "", nil, "--instance-id", "loop-a")
	if r := a.register(strings.Replace(at(c), `"loop"`, `"chain"`, 1)); r.status != 200 {
		t.Fatalf("register chain on a: %d %s", r.status, r.body)
	}
	if r := c.register(up.registration("chain", "u")); r.status != 200 {
		t.Fatalf("register chain on c: %d %s", r.status, r.body)
	}
	eventually(t, 5*time.Second, "the chain a → c → node to answer", func() bool {
		r := call(t, "GET", a.gateway+"/x", "", "", "X-Maxine-Service", "chain")
		return r.status == 200
	})
	if h, _ := up.seen(); !regexp.MustCompile(`^1\.1 maxine-loop-a-[0-9a-f]{8}, 1\.1 maxine-loop-a-[0-9a-f]{8}$`).MatchString(h.Get("X-Maxine-Via")) {
		t.Errorf("the node saw X-Maxine-Via %q after the chain", h.Get("X-Maxine-Via"))
	}
}
