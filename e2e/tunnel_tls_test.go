package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/maxine-io/maxine/internal/testcert"
)

// wsEchoServer is a real WebSocket echo server (gorilla/websocket) on
// loopback; it answers plain requests 200 so waitRoutable works.
func wsEchoServer(t *testing.T) int {
	t.Helper()
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			w.Header().Set("X-Upstream", "ws")
			io.WriteString(w, "plain")
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(4 << 20)
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if c.WriteMessage(mt, msg) != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

func wsEcho(t *testing.T, c *websocket.Conn, mt int, msg []byte) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMessage(mt, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	gt, got, err := c.ReadMessage()
	if err != nil || gt != mt || string(got) != string(msg) {
		t.Fatalf("echo: type %d, %d bytes, %v; want type %d, %d bytes", gt, len(got), err, mt, len(msg))
	}
}

// TestWebSocketThroughBinary: WebSocket through the gateway listener and
// the admin compatibility proxy of the real binary; SIGHUP does not stop
// it; SIGTERM drains, closing the tunnels left after the drain timeout,
// and the process exits 0.
func TestWebSocketThroughBinary(t *testing.T) {
	port := wsEchoServer(t)
	in := start(t, "", nil, "--drain-timeout", "1s")
	if r := in.register(fmt.Sprintf(`{"serviceName":"ws","nodeName":"n1","hostName":"127.0.0.1","port":%d,"timeOut":600}`, port)); r.status != 200 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	in.waitRoutable("ws")
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	gw := "ws://" + strings.TrimPrefix(in.gateway, "http://")
	c, resp, err := d.Dial(gw+"/ws/echo", nil)
	if err != nil {
		t.Fatalf("dial through the gateway: %v %v", err, resp)
	}
	defer c.Close()
	c.SetReadLimit(4 << 20)
	wsEcho(t, c, websocket.TextMessage, []byte("hello"))
	wsEcho(t, c, websocket.BinaryMessage, make([]byte, 1<<20))

	adm := "ws://" + strings.TrimPrefix(in.admin, "http://")
	c2, resp, err := d.Dial(adm+"/api/maxine/serviceops/proxy/ws/echo", nil)
	if err != nil {
		t.Fatalf("dial through the compatibility proxy: %v %v", err, resp)
	}
	defer c2.Close()
	wsEcho(t, c2, websocket.TextMessage, []byte("via admin"))

	metrics := in.call("GET", "/api/actuator/prometheus", in.signIn("admin", "admin"), "")
	if !strings.Contains(string(metrics.body), "maxine_gateway_tunnels_active 2") {
		t.Fatalf("metrics without 2 active tunnels:\n%s", metrics.body)
	}

	// SIGHUP: no TLS listener, nothing to reload, and the process lives.
	in.cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, 5*time.Second, "SIGHUP logged", func() bool { return strings.Contains(in.out.String(), "SIGHUP") })
	wsEcho(t, c, websocket.TextMessage, []byte("after SIGHUP"))

	// SIGTERM: the tunnels outlive the listeners until the drain timeout,
	// then are closed.
	in.cmd.Process.Signal(syscall.SIGTERM)
	for _, cc := range []*websocket.Conn{c, c2} {
		cc.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, _, err := cc.ReadMessage()
		var ne net.Error
		if err == nil || errorsAsTimeout(err, &ne) {
			t.Fatalf("tunnel after the drain: %v, want closed", err)
		}
	}
	select {
	case <-in.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("maxine did not stop:\n%s", in.out.String())
	}
	if in.exitCode != 0 || !strings.Contains(in.out.String(), "closing open tunnels") {
		t.Fatalf("exit %d, log:\n%s", in.exitCode, in.out.String())
	}
}

func errorsAsTimeout(err error, ne *net.Error) bool {
	if e, ok := err.(net.Error); ok && e.Timeout() {
		*ne = e
		return true
	}
	return false
}

func servedCommonName(addr string, pool *x509.CertPool) string {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool})
	if err != nil {
		return "error: " + err.Error()
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// TestTLSThroughBinary: the binary's TLS gateway listener serves the
// configured certificate, reloads it on SIGHUP and when the files change
// (without restarting: the same process answers), refuses plain HTTP on
// the TLS port cleanly, and reaches an ssl node through the CA bundle.
func TestTLSThroughBinary(t *testing.T) {
	ca := testcert.NewCA(t)
	dir := t.TempDir()
	ca.WritePair(t, dir, "gw-v1")
	caFile := ca.WriteCA(t, dir)
	// An https node with a certificate of the same CA.
	nc, nk := ca.Issue(t, "node")
	pair, _ := tls.X509KeyPair(nc, nk)
	node := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", "secure")
		io.WriteString(w, "secure "+r.URL.Path+" "+r.Header.Get("X-Forwarded-Proto"))
	}))
	node.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	node.StartTLS()
	defer node.Close()

	// Port 0, read back from the start-up log: no window in which another
	// process could take a port chosen in advance.
	in := start(t, "", nil, "--gateway-tls-addr", "127.0.0.1:0",
		"--gateway-tls-cert-file", filepath.Join(dir, "cert.pem"), "--gateway-tls-key-file", filepath.Join(dir, "key.pem"),
		"--gateway-tls-reload-interval", "100ms", "--upstream-ca-file", caFile)
	pid := in.cmd.Process.Pid
	tlsAddr := in.loggedAddr("gatewayTLS")
	nodePort := node.Listener.Addr().(*net.TCPAddr).Port
	if r := in.register(fmt.Sprintf(`{"serviceName":"secure","nodeName":"n1","hostName":"127.0.0.1","port":%d,"ssl":true,"timeOut":600}`, nodePort)); r.status != 200 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	in.waitRoutable("secure")

	if cn := servedCommonName(tlsAddr, ca.Pool); cn != "gw-v1" {
		t.Fatalf("served %q", cn)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("https://" + tlsAddr + "/secure/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "secure /x https" {
		t.Fatalf("https through the gateway to an https node: %d %q", resp.StatusCode, body)
	}

	// SIGHUP reloads.
	ca.WritePair(t, dir, "gw-v2")
	in.cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, 10*time.Second, "gw-v2 served after SIGHUP", func() bool { return servedCommonName(tlsAddr, ca.Pool) == "gw-v2" })
	// A change on disk alone is noticed.
	ca.WritePair(t, dir, "gw-v3")
	eventually(t, 10*time.Second, "gw-v3 served after the files changed", func() bool { return servedCommonName(tlsAddr, ca.Pool) == "gw-v3" })
	select {
	case <-in.exited:
		t.Fatalf("maxine exited:\n%s", in.out.String())
	default:
	}
	if in.cmd.Process.Pid != pid {
		t.Fatal("restarted")
	}

	// Plain HTTP to the TLS port: a readable 400, connection closed.
	plainToTLSPort(t, tlsAddr, "/secure/x")
	in.stop()
}

// TestAdminTLSThroughBinary: the admin API's TLS listener, beside the
// cleartext one: the configured certificate, sign-in, a protected listing
// and a registration over https with the test CA (the same API, roles and
// tokens), the certificate reloaded on SIGHUP without a restart, plain
// HTTP to the TLS port answered 400, and the cleartext port unchanged.
func TestAdminTLSThroughBinary(t *testing.T) {
	ca := testcert.NewCA(t)
	dir := t.TempDir()
	ca.WritePair(t, dir, "admin-v1")
	in := start(t, "", nil, "--admin-tls-addr", "127.0.0.1:0",
		"--admin-tls-cert-file", filepath.Join(dir, "cert.pem"), "--admin-tls-key-file", filepath.Join(dir, "key.pem"),
		"--gateway-tls-reload-interval", "100ms")
	pid := in.cmd.Process.Pid
	tlsAddr := in.loggedAddr("adminTLS")
	if cn := servedCommonName(tlsAddr, ca.Pool); cn != "admin-v1" {
		t.Fatalf("served %q", cn)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	defer hc.CloseIdleConnections()
	do := func(method, path, token, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+tlsAddr+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	status, body := do("POST", "/api/maxine/signin", "", `{"userName":"admin","password":"admin"}`)
	var signin struct{ AccessToken string }
	if status != 200 || json.Unmarshal(body, &signin) != nil || signin.AccessToken == "" {
		t.Fatalf("sign-in over https: %d %s", status, body)
	}
	if status, body := do("POST", "/api/maxine/serviceops/register", "", `{"serviceName":"tls-svc","nodeName":"n1","hostName":"127.0.0.1","port":9,"timeOut":600}`); status != 200 {
		t.Fatalf("registration over https: %d %s", status, body)
	}
	if status, body := do("GET", "/api/maxine/serviceops/servers", signin.AccessToken, ""); status != 200 || !strings.Contains(string(body), "tls-svc") {
		t.Fatalf("listing over https: %d %s", status, body)
	}
	if status, _ := do("GET", "/api/maxine/serviceops/servers", "", ""); status != 401 {
		t.Fatalf("listing over https without a token: %d, want 401", status)
	}
	// The cleartext listener serves the same registry.
	tok := in.signIn("admin", "admin")
	if _, ok := in.servers(tok)["tls-svc"]; !ok {
		t.Fatal("the cleartext admin port does not list the node registered over https")
	}

	ca.WritePair(t, dir, "admin-v2")
	in.cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, 10*time.Second, "admin-v2 served after SIGHUP", func() bool { return servedCommonName(tlsAddr, ca.Pool) == "admin-v2" })
	if in.cmd.Process.Pid != pid {
		t.Fatal("restarted")
	}
	select {
	case <-in.exited:
		t.Fatalf("maxine exited:\n%s", in.out.String())
	default:
	}

	plainToTLSPort(t, tlsAddr, "/api/actuator/health")
	in.stop()
}

// plainToTLSPort sends a cleartext request to a TLS port and expects the
// readable 400 the listener answers it with.
func plainToTLSPort(t *testing.T, addr, path string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
	pr, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || pr.StatusCode != 400 {
		t.Fatalf("plain HTTP to the TLS port %s: %v %v", addr, pr, err)
	}
}

// TestTLSBadConfiguration: a TLS address without its files, or files that
// do not load, stop the start with exit 2 and one line naming the setting.
func TestTLSBadConfiguration(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--gateway-tls-addr", "127.0.0.1:0"}, "MAXINE_GATEWAY_TLS_CERT_FILE"},
		{[]string{"--gateway-tls-addr", "127.0.0.1:0", "--gateway-tls-cert-file", missing, "--gateway-tls-key-file", missing}, "MAXINE_GATEWAY_TLS_CERT_FILE"},
		{[]string{"--upstream-ca-file", missing}, "MAXINE_UPSTREAM_CA_FILE"},
		{[]string{"--admin-tls-addr", "127.0.0.1:0"}, "MAXINE_ADMIN_TLS_CERT_FILE"},
		{[]string{"--admin-tls-cert-file", missing, "--admin-tls-key-file", missing}, "MAXINE_ADMIN_TLS_ADDR"},
		{[]string{"--admin-tls-addr", "127.0.0.1:0", "--admin-tls-cert-file", missing, "--admin-tls-key-file", missing}, "MAXINE_ADMIN_TLS_CERT_FILE"},
	} {
		args := append([]string{"--admin-addr", freePort(t), "--gateway-addr", freePort(t), "--data-dir", t.TempDir()}, c.args...)
		cmd := exec.Command(binary, args...)
		cmd.Env = baseEnv()
		out, err := cmd.CombinedOutput()
		code := -1
		if ee, ok := err.(interface{ ExitCode() int }); ok {
			code = ee.ExitCode()
		}
		if code != 2 || !strings.Contains(string(out), c.want) {
			t.Fatalf("%v: exit %d, output %s", c.args, code, out)
		}
	}
}

// loggedAddr waits for the start-up log to give the address of listener
// key ("gatewayTLS", "adminTLS"): listeners on port 0 are found there,
// with no window in which another process could take a port chosen in
// advance.
func (in *instance) loggedAddr(key string) string {
	in.t.Helper()
	var addr string
	eventually(in.t, 10*time.Second, key+"'s address in the log", func() bool {
		m := regexp.MustCompile(`"` + key + `":"([^"]+)"`).FindStringSubmatch(in.out.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	return addr
}
