package admin

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// fakeAllowAll is an allow-list that allows everything: the refusal of
// Maxine's own listeners does not depend on it.
type fakeAllowAll struct{}

func (fakeAllowAll) Check(string) error { return nil }

// A node pointing at one of Maxine's own listeners would make the admin
// API (or the gateway itself) reachable through the gateway: it is refused
// with 403 whatever the allow-list, for every way of naming this host.
func TestRegistrationToOwnListenersRefused(t *testing.T) {
	const anyV4, anyPort, anyV6, loop = 18000, 18001, 18002, 18003
	ts := newTestServer(t, func(o *Options) {
		o.OwnListeners = []string{"0.0.0.0:" + strconv.Itoa(anyV4), ":" + strconv.Itoa(anyPort), "[::]:" + strconv.Itoa(anyV6), "127.0.0.1:" + strconv.Itoa(loop)}
		o.AllowList = fakeAllowAll{}
	})
	refused := []struct {
		host string
		port int
	}{
		{"127.0.0.1", anyV4}, {"127.0.0.2", anyV4}, {"localhost", anyV4}, {"0.0.0.0", anyV4}, {"http://127.0.0.1", anyV4},
		{"127.0.0.1", anyPort}, {"::1", anyPort}, {"[::1]", anyV6}, {"LOCALHOST", anyV6}, {"::", anyV6},
		{"127.0.0.1", loop}, {"localhost", loop}, {"::ffff:127.0.0.1", loop},
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if pfx, err := netip.ParsePrefix(a.String()); err == nil && !pfx.Addr().IsLoopback() && !pfx.Addr().IsLinkLocalUnicast() {
				refused = append(refused, struct {
					host string
					port int
				}{pfx.Addr().String(), anyV4})
				break
			}
		}
	}
	for i, r := range refused {
		body := `{"serviceName":"s","nodeName":"n` + strconv.Itoa(i) + `","hostName":"` + r.host + `","port":` + strconv.Itoa(r.port) + `}`
		resp, m := ts.do("POST", "/api/maxine/serviceops/register", "", body)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(m["message"].(string), "Maxine") {
			t.Errorf("%s port %d: %d %v, want 403", r.host, r.port, resp.StatusCode, m)
		}
	}
	if ts.reg.Snapshot("s") != nil {
		t.Fatal("a refused registration changed the registry")
	}
	accepted := []struct {
		host string
		port int
	}{{"127.0.0.1", 18004}, {"10.255.255.1", loop}, {"192.0.2.1", anyV4}}
	for i, r := range accepted {
		body := `{"serviceName":"s","nodeName":"a` + strconv.Itoa(i) + `","hostName":"` + r.host + `","port":` + strconv.Itoa(r.port) + `}`
		if resp, m := ts.do("POST", "/api/maxine/serviceops/register", "", body); resp.StatusCode != http.StatusOK {
			t.Errorf("%s port %d: %d %v, want 200", r.host, r.port, resp.StatusCode, m)
		}
	}
}

// A node at another cluster member's admin or gateway listener (the
// membership's advertised addresses) is refused like one of this
// instance's own: the gateway would loop through the other instance, or
// expose its admin API.
func TestRegistrationToClusterMembersRefused(t *testing.T) {
	members := []ClusterMember{
		{InstanceID: "b", AdminAddr: "127.0.0.2:18101", GatewayAddr: "127.0.0.2:18102"},
		{InstanceID: "c", AdminAddr: "[::1]:18103", GatewayAddr: "10.255.255.9:18104"},
		{InstanceID: "d", AdminAddr: "maxine-d.example:18105", GatewayAddr: "0.0.0.0:18106"},
	}
	ts := newTestServer(t, func(o *Options) {
		o.AllowList = fakeAllowAll{}
		o.Cluster = func() ClusterStatus { return ClusterStatus{Enabled: true, Mode: "redis", Members: members} }
	})
	refused := []struct {
		host, member string
		port         int
	}{
		{"127.0.0.2", "admin listener of cluster member b", 18101},
		{"127.0.0.2", "gateway listener of cluster member b", 18102},
		{"http://127.0.0.2", "gateway listener of cluster member b", 18102},
		{"::1", "admin listener of cluster member c", 18103},
		{"localhost", "admin listener of cluster member c", 18103},
		{"10.255.255.9", "gateway listener of cluster member c", 18104},
		{"::ffff:10.255.255.9", "gateway listener of cluster member c", 18104},
	}
	for i, r := range refused {
		body := `{"serviceName":"s","nodeName":"n` + strconv.Itoa(i) + `","hostName":"` + r.host + `","port":` + strconv.Itoa(r.port) + `}`
		resp, m := ts.do("POST", "/api/maxine/serviceops/register", "", body)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(fmt.Sprint(m), r.member) {
			t.Errorf("%s port %d: %d %v, want 403 naming the %s", r.host, r.port, resp.StatusCode, m, r.member)
		}
	}
	if ts.reg.Snapshot("s") != nil {
		t.Fatal("a refused registration changed the registry")
	}
	accepted := []struct {
		host string
		port int
	}{
		{"127.0.0.2", 18107},     // no member's port
		{"127.0.0.3", 18101},     // another address, a member's port
		{"10.255.255.9", 18103},  // c's gateway host, its admin port
		{"127.0.0.1", 18105},     // d advertises a name: not resolved here
		{"10.255.255.10", 18106}, // d's 0.0.0.0: it says nothing of where d is
	}
	for i, r := range accepted {
		body := `{"serviceName":"s","nodeName":"a` + strconv.Itoa(i) + `","hostName":"` + r.host + `","port":` + strconv.Itoa(r.port) + `}`
		if resp, m := ts.do("POST", "/api/maxine/serviceops/register", "", body); resp.StatusCode != http.StatusOK {
			t.Errorf("%s port %d: %d %v, want 200", r.host, r.port, resp.StatusCode, m)
		}
	}
}

// discover's endPoint must be an origin-form path: spaces and control
// characters are refused with 400 and never reach a Location header or a
// node.
func TestDiscoverEndPointValidated(t *testing.T) {
	ts := newTestServer(t, nil)
	if resp, m := ts.do("POST", "/api/maxine/serviceops/register", "", `{"serviceName":"s","nodeName":"n","hostName":"127.0.0.1","port":18005}`); resp.StatusCode != 200 {
		t.Fatalf("register: %d %v", resp.StatusCode, m)
	}
	for _, ep := range []string{"/a b", "/a\r\nSet-Cookie: x=1", "/a\tb", "/a\x00", "/a\x7f", "/caf\xc3\xa9", "/a#frag"} {
		for _, mode := range []string{"", "&mode=proxy"} {
			resp, m := ts.do("GET", "/api/maxine/serviceops/discover?serviceName=s"+mode+"&endPoint="+url.QueryEscape(ep), "", "")
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
				t.Errorf("endPoint %q%s: %d Location %q %v, want 400", ep, mode, resp.StatusCode, resp.Header.Get("Location"), m)
			}
		}
	}
	resp, _ := ts.do("GET", "/api/maxine/serviceops/discover?serviceName=s&endPoint="+url.QueryEscape("/a/b%20c?x=1&y=/z"), "", "")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "http://127.0.0.1:18005/a/b%20c?x=1&y=/z" {
		t.Fatalf("valid endPoint: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}
