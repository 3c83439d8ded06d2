package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// upstream is a real HTTP server on loopback that records what reaches it.
type upstream struct {
	name  string
	srv   *http.Server
	ln    net.Listener
	port  int
	hits  atomic.Int64
	delay atomic.Int64 // ns to sleep per request
	// healthStatus is what /health answers (0 = 200).
	healthStatus atomic.Int64

	mu   sync.Mutex
	last http.Header
	path string
}

func newUpstream(t *testing.T, name string) *upstream {
	t.Helper()
	return newUpstreamOn(t, name, "127.0.0.1:0")
}

// newUpstreamOn starts the upstream on a given loopback address.
func newUpstreamOn(t *testing.T, name, addr string) *upstream {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{name: name, ln: ln, port: ln.Addr().(*net.TCPAddr).Port}
	u.srv = &http.Server{Handler: http.HandlerFunc(u.serve), ReadHeaderTimeout: 5 * time.Second}
	go u.srv.Serve(ln)
	t.Cleanup(func() { u.srv.Close() })
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	u.hits.Add(1)
	io.Copy(io.Discard, r.Body)
	u.mu.Lock()
	u.last = r.Header.Clone()
	u.path = r.URL.RequestURI()
	u.mu.Unlock()
	if d := u.delay.Load(); d > 0 {
		select {
		case <-time.After(time.Duration(d)):
		case <-r.Context().Done():
			return
		}
	}
	if r.URL.Path == "/health" {
		status := int(u.healthStatus.Load())
		if status == 0 {
			status = 200
		}
		w.WriteHeader(status)
		return
	}
	w.Header().Set("X-Upstream", u.name)
	fmt.Fprintf(w, "%s %s %s", u.name, r.Method, r.URL.RequestURI())
}

func (u *upstream) seen() (http.Header, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last, u.path
}

func (u *upstream) registration(service, node string) string {
	return fmt.Sprintf(`{"serviceName":%q,"nodeName":%q,"hostName":"127.0.0.1","port":%d,"timeOut":60}`, service, node, u.port)
}

// waitRoutable polls the gateway until service answers from an upstream
// (the gateway applies registry changes asynchronously, within
// milliseconds).
func (in *instance) waitRoutable(service string) {
	in.t.Helper()
	eventually(in.t, 5*time.Second, "gateway routes "+service, func() bool {
		r := call(in.t, "GET", in.gateway+"/"+service+"/ping", "", "")
		return r.status == 200 && r.header.Get("X-Upstream") != ""
	})
}

func bodyString(r reply) string { return strings.TrimSpace(string(r.body)) }
