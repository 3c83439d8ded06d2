package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/maxine-io/maxine/registry"
)

func TestRouting(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.HostSuffix = "svc.local" })
	orders := startBackend(t, "orders", nil)
	users := startBackend(t, "users", nil)
	based := startBackend(t, "based", nil)
	f.register("orders", "o1", orders, 1, nil)
	f.register("Users", "u1", users, 1, nil)
	f.register("based", "b1", based, 1, func(r *registry.Registration) { r.Path = "/api/v2/" })
	f.waitNodes("orders", 1)
	f.waitNodes("Users", 1)
	f.waitNodes("based", 1)

	tests := []struct {
		name    string
		method  string
		path    string
		hdr     map[string]string
		backend *backend
		uri     string // as the backend received it
	}{
		{"header", "GET", "/x/y?a=1&b=2", map[string]string{ServiceHeader: "orders"}, orders, "/x/y?a=1&b=2"},
		{"header wins over path", "GET", "/Users/rest", map[string]string{ServiceHeader: "orders"}, orders, "/Users/rest"},
		{"host", "GET", "/items", map[string]string{"Host": "orders"}, orders, "/items"},
		{"host with port", "PUT", "/items/7", map[string]string{"Host": "orders:8000"}, orders, "/items/7"},
		{"host suffix", "DELETE", "/items/7?force=true", map[string]string{"Host": "orders.svc.local:8000"}, orders, "/items/7?force=true"},
		{"host case-insensitive", "GET", "/me", map[string]string{"Host": "users.SVC.local"}, users, "/me"},
		{"host wins over path", "GET", "/orders/list", map[string]string{"Host": "Users"}, users, "/orders/list"},
		{"path prefix stripped", "POST", "/orders/rest/of/it?q=%20x", nil, orders, "/rest/of/it?q=%20x"},
		{"path only service", "GET", "/orders", nil, orders, "/"},
		{"path keeps encoding", "GET", "/orders/a%2Fb/c", nil, orders, "/a%2Fb/c"},
		{"base path", "PATCH", "/based/items?x=1", nil, based, "/api/v2/items?x=1"},
		{"base path root", "GET", "/based", nil, based, "/api/v2/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.backend.hits.Load()
			status, hdr, body := f.do(tc.method, tc.path, strings.NewReader(""), tc.hdr)
			if status != http.StatusOK {
				t.Fatalf("status %d, body %s", status, body)
			}
			if got := hdr.Get("X-Node"); got != tc.backend.name {
				t.Fatalf("served by %q, want %q", got, tc.backend.name)
			}
			if tc.backend.hits.Load() != before+1 {
				t.Fatalf("backend hits %d, want %d", tc.backend.hits.Load(), before+1)
			}
			seen := tc.backend.last()
			if seen.Method != tc.method || seen.URI != tc.uri {
				t.Fatalf("backend saw %s %s, want %s %s", seen.Method, seen.URI, tc.method, tc.uri)
			}
			if seen.Host != "127.0.0.1:"+itoa(tc.backend.port) {
				t.Fatalf("backend saw Host %q", seen.Host)
			}
		})
	}

	errors := []struct {
		name   string
		path   string
		hdr    map[string]string
		status int
	}{
		{"unknown path", "/nope/x", nil, http.StatusNotFound},
		{"unknown header", "/orders/x", map[string]string{ServiceHeader: "nope"}, http.StatusNotFound},
		{"root", "/", nil, http.StatusNotFound},
	}
	total := orders.hits.Load() + users.hits.Load() + based.hits.Load()
	for _, tc := range errors {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := f.do("GET", tc.path, nil, tc.hdr)
			if status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
			var m map[string]string
			if err := json.Unmarshal(body, &m); err != nil || m["message"] == "" {
				t.Fatalf("body %q is not a JSON message", body)
			}
			if hdr.Get("Content-Type") != "application/json" || hdr.Get("x-trace-id") == "" {
				t.Fatalf("headers %v", hdr)
			}
		})
	}
	if got := orders.hits.Load() + users.hits.Load() + based.hits.Load(); got != total {
		t.Fatalf("unrouted requests reached backends: %d", got-total)
	}
}

// A service whose every node is down is known: 503, not 404.
func TestKnownServiceWithoutNodes(t *testing.T) {
	f := newFixture(t, nil)
	b := startBackend(t, "a", nil)
	f.register("svc", "a", b, 1, nil)
	f.waitNodes("svc", 1)
	f.p.routes.Load().exact["svc"].table.Load().nodeList()[0].down.Store(true)
	status, _, body := f.do("GET", "/svc/x", nil, nil)
	if status != http.StatusServiceUnavailable || string(body) != `{"message":"Service Unavailable","reason":"no healthy node","service":"svc"}` {
		t.Fatalf("got %d %s", status, body)
	}
	if b.hits.Load() != 0 {
		t.Fatal("a down node got traffic")
	}
}

// A service registered a moment ago is routable even before Run applied
// its event (the route-miss path).
func TestRouteMissAppliesRegistration(t *testing.T) {
	f := newFixture(t, nil)
	b := startBackend(t, "a", nil)
	for i := range 20 {
		name := "fresh" + itoa(i)
		f.register(name, "a", b, 1, nil)
		if status, _, body := f.do("GET", "/"+name+"/x", nil, nil); status != http.StatusOK {
			t.Fatalf("%s: %d %s", name, status, body)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
