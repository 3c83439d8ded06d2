package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/maxine-io/maxine/internal/testcert"
	"github.com/maxine-io/maxine/registry"
)

// tlsGateway serves f's Proxy on a TLS listener with the key pair.
func tlsGateway(t *testing.T, f *fixture, kp *KeyPair) string {
	t.Helper()
	srv := NewServer(f.p, ServerOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(TLSListener(ln, ServerTLSConfig(kp)))
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.ShutdownWithContext(ctx)
		<-served
	})
	return ln.Addr().String()
}

// servedCN connects to addr trusting pool and returns the common name of
// the certificate served and the protocol ALPN chose.
func servedCN(t *testing.T, addr string, pool *x509.CertPool) (string, string) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer c.Close()
	st := c.ConnectionState()
	return st.PeerCertificates[0].Subject.CommonName, st.NegotiatedProtocol
}

// TestTLSListener: the gateway serves TLS with the configured certificate
// (ALPN http/1.1, TLS 1.2 at least), tells the node the request came over
// https, and reloads the certificate on Reload (SIGHUP) and when the files
// change, keeping the old one when the new files do not load.
func TestTLSListener(t *testing.T) {
	f := newFixture(t, nil)
	b := startBackend(t, "n1", nil)
	f.register("svc", "n1", b, 1, nil)
	f.waitNodes("svc", 1)
	ca := testcert.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.WritePair(t, dir, "gateway-v1")
	kp, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := tlsGateway(t, f, kp)

	cn, proto := servedCN(t, addr, ca.Pool)
	if cn != "gateway-v1" || proto != "http/1.1" {
		t.Fatalf("served %q with ALPN %q", cn, proto)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + addr + "/svc/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "n1" {
		t.Fatalf("through TLS: %d %q", resp.StatusCode, body)
	}
	if got := b.last().Header.Get("X-Forwarded-Proto"); got != "https" {
		t.Fatalf("X-Forwarded-Proto %q, want https", got)
	}
	// Not trusted without the CA; TLS 1.1 refused.
	if _, err := tls.Dial("tcp", addr, &tls.Config{}); err == nil {
		t.Fatal("a client without the CA accepted the certificate")
	}
	if c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Fatal("TLS 1.1 accepted")
	}

	// SIGHUP's path: Reload reads the files again.
	ca.WritePair(t, dir, "gateway-v2")
	if err := kp.Reload(); err != nil {
		t.Fatal(err)
	}
	if cn, _ := servedCN(t, addr, ca.Pool); cn != "gateway-v2" {
		t.Fatalf("after Reload: %q", cn)
	}
	// The files' change noticed by the poll.
	ca.WritePair(t, dir, "gateway-v3")
	if changed, err := kp.ReloadIfChanged(); !changed || err != nil {
		t.Fatalf("ReloadIfChanged after a change: %v %v", changed, err)
	}
	if cn, _ := servedCN(t, addr, ca.Pool); cn != "gateway-v3" {
		t.Fatalf("after the files changed: %q", cn)
	}
	if changed, err := kp.ReloadIfChanged(); changed || err != nil {
		t.Fatalf("ReloadIfChanged without a change: %v %v", changed, err)
	}
	// A key that does not match: refused, the last good pair stays.
	_, otherKey := ca.Issue(t, "other")
	if err := os.WriteFile(keyFile, otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := kp.Reload(); err == nil {
		t.Fatal("Reload accepted a key that does not match the certificate")
	}
	if cn, _ := servedCN(t, addr, ca.Pool); cn != "gateway-v3" {
		t.Fatalf("after a bad reload: %q", cn)
	}
}

// TestTLSWatch: Watch notices replaced files by itself.
func TestTLSWatch(t *testing.T) {
	ca := testcert.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.WritePair(t, dir, "w1")
	kp, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		kp.Watch(done, 10*time.Millisecond, nil)
	}()
	defer func() { close(done); <-stopped }()
	ca.WritePair(t, dir, "w2")
	waitFor(t, "the watcher to load w2", func() bool {
		c, _ := kp.GetCertificate(nil)
		x, _ := x509.ParseCertificate(c.Certificate[0])
		return x.Subject.CommonName == "w2"
	})
}

// TestPlainHTTPToTLSPort: a cleartext request to the TLS listener gets a
// plain 400 saying so, and the connection is closed.
func TestPlainHTTPToTLSPort(t *testing.T) {
	f := newFixture(t, nil)
	ca := testcert.NewCA(t)
	certFile, keyFile := ca.WritePair(t, t.TempDir(), "gw")
	kp, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := tlsGateway(t, f, kp)
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /svc/x HTTP/1.1\r\nHost: gw\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no plain answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(body), "HTTPS") {
		t.Fatalf("plain request to the TLS port: %d %q", resp.StatusCode, body)
	}
}

// TestUpstreamTLS: a node registered with ssl is reached over TLS and its
// certificate verified: with the CA bundle it works, without it the
// gateway answers 502.
func TestUpstreamTLS(t *testing.T) {
	ca := testcert.NewCA(t)
	certPEM, keyPEM := ca.Issue(t, "node")
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	node := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) {
			c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			mt, msg, err := c.ReadMessage()
			if err == nil {
				c.WriteMessage(mt, append([]byte("tls node: "), msg...))
			}
			return
		}
		io.WriteString(w, "tls node "+r.URL.Path)
	}))
	node.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	node.StartTLS()
	defer node.Close()
	port := node.Listener.Addr().(*net.TCPAddr).Port
	caFile := ca.WriteCA(t, t.TempDir())
	bundle, err := UpstreamTLSConfig(caFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		cfg    *tls.Config
		status int
	}{{"with the CA bundle", bundle, 200}, {"without", nil, 502}} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) { o.TLSConfig = c.cfg; o.MaxRetries = -1 })
			if _, err := f.reg.Register(registry.Registration{ServiceName: "sec", NodeName: "n1", HostName: "127.0.0.1", Port: port, SSL: true, TimeOut: 600, Weight: 1}); err != nil {
				t.Fatal(err)
			}
			f.waitNodes("sec", 1)
			status, _, body := f.do("GET", "/sec/hello", nil, nil)
			if status != c.status {
				t.Fatalf("status %d (%q), want %d", status, body, c.status)
			}
			if c.status == 200 && string(body) != "tls node /hello" {
				t.Fatalf("body %q", body)
			}
			// A WebSocket to the https node is tunnelled over TLS too.
			addr := listenerServer(t, f)
			ws, resp, err := wsDial(t, "ws://"+addr+"/sec/ws")
			if c.status != 200 {
				if err == nil || resp == nil || resp.StatusCode != c.status {
					t.Fatalf("upgrade to an untrusted node: %v %v", err, resp)
				}
				return
			}
			if err != nil {
				t.Fatalf("upgrade to the TLS node: %v %v", err, resp)
			}
			ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			ws.WriteMessage(websocket.TextMessage, []byte("hi"))
			if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != "tls node: hi" {
				t.Fatalf("over the TLS tunnel: %q %v", msg, err)
			}
		})
	}
	if _, err := UpstreamTLSConfig(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Fatal("a missing CA file accepted")
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	if _, err := UpstreamTLSConfig(bad); err == nil {
		t.Fatal("a CA file without certificates accepted")
	}
}

// TestWebSocketOverTLSListener: wss:// to the gateway's TLS listener is
// tunnelled to a cleartext node.
func TestWebSocketOverTLSListener(t *testing.T) {
	f := newFixture(t, nil)
	e := startWSEcho(t, "n1")
	f.register("ws", "n1", e.backend, 1, nil)
	f.waitNodes("ws", 1)
	ca := testcert.NewCA(t)
	certFile, keyFile := ca.WritePair(t, t.TempDir(), "gw")
	kp, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := tlsGateway(t, f, kp)
	t.Cleanup(func() { f.p.CloseTunnels(context.Background()) })
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}
	c, resp, err := d.Dial("wss://"+addr+"/ws/echo", nil)
	if err != nil {
		t.Fatalf("wss dial: %v %v", err, resp)
	}
	defer c.Close()
	c.SetReadLimit(4 << 20)
	echo(t, c, websocket.BinaryMessage, make([]byte, 1<<20))
	echo(t, c, websocket.TextMessage, []byte("over TLS"))
	if got := e.last().Header.Get("X-Forwarded-Proto"); got != "https" {
		t.Fatalf("X-Forwarded-Proto %q", got)
	}
}
