package e2e

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// Issue 8, section 2, against the real binary: no registration captures
// another service's traffic, Maxine's own listeners cannot be registered,
// hostName and endPoint are validated, and a bare LF in a request head is
// refused at once on both listeners.
func TestRoutingAndProxyHardening(t *testing.T) {
	up := newUpstream(t, "orders-up")
	thief := newUpstream(t, "thief-up")
	in := start(t, "", nil)
	if r := in.register(up.registration("orders", "o1")); r.status != 200 {
		t.Fatal(r.status, r.body)
	}
	for _, name := range []string{"127.0.0.1", "localhost"} {
		if r := in.register(thief.registration(name, "t")); r.status != 200 {
			t.Fatal(r.status, r.body)
		}
	}
	in.waitRoutable("orders")
	in.waitRoutable("localhost")
	gwHost := strings.TrimPrefix(in.gateway, "http://")
	port := gwHost[strings.LastIndexByte(gwHost, ':')+1:]
	for _, host := range []string{gwHost, "localhost:" + port} {
		r := call(t, "GET", in.gateway+"/orders/api", "", "", "Host", host)
		if r.status != 200 || !strings.HasPrefix(bodyString(r), "orders-up ") {
			t.Errorf("Host %s: %d %q, want orders-up", host, r.status, r.body)
		}
	}

	// Maxine's own listeners (bound to 127.0.0.1 here), by any name of
	// that address; ::1 is another address, not a listener of this one.
	for _, base := range []string{in.admin, in.gateway} {
		hp := strings.TrimPrefix(base, "http://")
		p := hp[strings.LastIndexByte(hp, ':')+1:]
		if r := in.register(fmt.Sprintf(`{"serviceName":"loop6","nodeName":"n","hostName":"::1","port":%s}`, p)); r.status != 200 {
			t.Errorf("register [::1]:%s (not a listener): %d %s", p, r.status, r.body)
		}
		for _, host := range []string{"127.0.0.1", "localhost", "http://127.0.0.1", "0.0.0.0"} {
			r := in.register(fmt.Sprintf(`{"serviceName":"loop","nodeName":"n","hostName":%q,"port":%s}`, host, p))
			if r.status != 403 || r.json["message"] == nil {
				t.Errorf("register %s:%s (own listener): %d %s, want 403", host, p, r.status, r.body)
			}
		}
	}

	// hostName: paths, ports and userinfo refused with a detail.
	for _, host := range []string{"127.0.0.1/path", "127.0.0.1:9", "u@127.0.0.1", "ftp://h", "h h"} {
		r := in.register(fmt.Sprintf(`{"serviceName":"bad","nodeName":"n","hostName":%q,"port":29001}`, host))
		if r.status != 400 || r.json["detail"] == nil {
			t.Errorf("hostName %q: %d %s, want 400 with a detail", host, r.status, r.body)
		}
	}
	r := in.register(`{"serviceName":"v6","nodeName":"n","hostName":"::1","port":29001}`)
	if r.status != 200 || r.json["address"] != "http://[::1]:29001" {
		t.Errorf("IPv6 hostName: %d %s", r.status, r.body)
	}

	// endPoint with a space or CRLF: 400 in both discovery modes.
	for _, ep := range []string{"/a b", "/a\r\nSet-Cookie: x=1"} {
		for _, mode := range []string{"", "&mode=proxy"} {
			r := in.call("GET", "/api/maxine/serviceops/discover?serviceName=orders"+mode+"&endPoint="+url.QueryEscape(ep), "", "")
			if r.status != 400 || r.header.Get("Location") != "" {
				t.Errorf("endPoint %q%s: %d %q", ep, mode, r.status, r.header.Get("Location"))
			}
		}
	}

	// A head ending in a bare LF gets 400 at once (rawStatus waits 5 s at
	// most; the head used to wait for the read timeout).
	for _, base := range []string{in.admin, in.gateway} {
		if s := rawStatus(t, base, "GET /orders/api HTTP/1.1\r\nHost: x\r\n\n"); s != 400 {
			t.Errorf("%s: bare LF ending the head: %d, want 400", base, s)
		}
	}
}
