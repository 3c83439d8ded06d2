package test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// pod is what the kubelet would give one replica of the rendered
// Deployment, on this host: the container's environment (envFrom, env with
// secretKeyRef, configMapKeyRef and fieldRef, $(VAR) expansion), its
// volume on /data (a temp dir) and its own network. Pods here share the
// host's loopback instead of having an IP each, so each pod's container
// ports are mapped to free loopback ports, and the listen and advertised
// addresses are rewritten to them; nothing else is changed.
type pod struct {
	t     *testing.T
	name  string
	ctr   *corev1.Container
	env   []string
	vars  map[string]string
	ports map[int32]int // containerPort → loopback port
	cmd   *exec.Cmd
	out   *syncBuffer
	done  chan struct{}
	err   error
}

// newPod builds the environment of the container for pod name. secretData
// is the Secret the env refers to (the rendered one, or the test's
// existingSecret).
func newPod(t *testing.T, o *objects, name string, secretData map[string][]byte) *pod {
	t.Helper()
	d, ctr := o.deployment(t)
	p := &pod{t: t, name: name, ctr: ctr, vars: map[string]string{}, ports: map[int32]int{}}
	for _, cp := range ctr.Ports {
		p.ports[cp.ContainerPort] = freePort(t)
	}
	set := func(k, v string) {
		if _, ok := p.vars[k]; !ok {
			p.env = append(p.env, k)
		}
		p.vars[k] = v
	}
	for _, ef := range ctr.EnvFrom {
		if ef.ConfigMapRef == nil {
			t.Fatalf("envFrom %+v: only ConfigMaps expected", ef)
		}
		cm := o.configMap(t, ef.ConfigMapRef.Name)
		for k, v := range cm.Data {
			set(k, v)
		}
	}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom == nil:
			set(e.Name, expand(e.Value, p.vars))
		case e.ValueFrom.FieldRef != nil:
			switch e.ValueFrom.FieldRef.FieldPath {
			case "metadata.name":
				set(e.Name, name)
			case "status.podIP":
				set(e.Name, "127.0.0.1")
			default:
				t.Fatalf("%s: fieldRef %s not emulated", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
		case e.ValueFrom.SecretKeyRef != nil:
			k := e.ValueFrom.SecretKeyRef
			v, ok := secretData[k.Key]
			if !ok {
				if isTrue(k.Optional) {
					continue
				}
				t.Fatalf("%s: Secret %s has no key %s (the pod would not start)", e.Name, k.Name, k.Key)
			}
			set(e.Name, string(v))
		case e.ValueFrom.ConfigMapKeyRef != nil:
			k := e.ValueFrom.ConfigMapKeyRef
			set(e.Name, o.configMap(t, k.Name).Data[k.Key])
		default:
			t.Fatalf("%s: valueFrom %+v not emulated", e.Name, e.ValueFrom)
		}
	}
	// The pod's network and volume on this host.
	for _, k := range []string{"MAXINE_ADMIN_ADDR", "MAXINE_GATEWAY_ADDR", "MAXINE_ADVERTISE_ADMIN_ADDR", "MAXINE_ADVERTISE_GATEWAY_ADDR",
		"MAXINE_GATEWAY_TLS_ADDR", "MAXINE_ADMIN_TLS_ADDR"} {
		if v, ok := p.vars[k]; ok {
			p.vars[k] = p.hostAddr(v)
		}
	}
	if p.vars["MAXINE_DATA_DIR"] != ctr.VolumeMounts[0].MountPath {
		t.Fatalf("MAXINE_DATA_DIR %q is not the volume's mount path %q", p.vars["MAXINE_DATA_DIR"], ctr.VolumeMounts[0].MountPath)
	}
	p.vars["MAXINE_DATA_DIR"] = t.TempDir()
	_ = d
	return p
}

// mountSecret is the kubelet mounting a Secret volume: the pod's mount of
// volume name gets files (the Secret's keys) in a temp dir, and every
// variable pointing into the mount path points into that dir instead.
func (p *pod) mountSecret(name string, files map[string][]byte) {
	p.t.Helper()
	mount := ""
	for _, m := range p.ctr.VolumeMounts {
		if m.Name == name {
			mount = m.MountPath
		}
	}
	if mount == "" {
		p.t.Fatalf("no volume mount %q", name)
	}
	dir := p.t.TempDir()
	for k, v := range files {
		if err := os.WriteFile(filepath.Join(dir, k), v, 0o600); err != nil {
			p.t.Fatal(err)
		}
	}
	for k, v := range p.vars {
		if strings.HasPrefix(v, mount+"/") {
			p.vars[k] = dir + v[len(mount):]
		}
	}
}

// hostAddr maps "host:containerPort" of this pod to its loopback address.
func (p *pod) hostAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.t.Fatalf("address %q: %v", addr, err)
	}
	n, _ := strconv.Atoi(port)
	hp, ok := p.ports[int32(n)]
	if !ok {
		p.t.Fatalf("address %q: port %s is not a containerPort", addr, port)
	}
	if host == "" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(hp))
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand does the kubelet's $(VAR) expansion from earlier variables.
func expand(s string, vars map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := vars[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

func (p *pod) environ() []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for _, k := range p.env {
		env = append(env, k+"="+p.vars[k])
	}
	return env
}

func (p *pod) port(name string) int {
	for _, cp := range p.ctr.Ports {
		if cp.Name == name {
			return p.ports[cp.ContainerPort]
		}
	}
	p.t.Fatalf("no container port %q", name)
	return 0
}

func (p *pod) url(listener, path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", p.port(listener), path)
}

// start runs the image's entrypoint (the binary, with the container's
// args, none by default) with the pod's environment.
func (p *pod) start() {
	p.t.Helper()
	if len(p.ctr.Command) > 0 {
		p.t.Fatalf("the chart overrides the image's entrypoint: %q", p.ctr.Command)
	}
	p.out = &syncBuffer{}
	p.cmd = exec.Command(maxineBin, p.ctr.Args...)
	p.cmd.Env = p.environ()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	p.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if p.t.Failed() {
			p.t.Logf("%s output:\n%s", p.name, tailLines(p.out.String(), 25))
		}
	})
}

// stop is the kubelet's SIGTERM; the process must exit 0 within the grace
// period.
func (p *pod) stop(grace time.Duration) {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			p.t.Errorf("%s exited with %v after SIGTERM", p.name, p.err)
		}
	case <-time.After(grace):
		p.t.Errorf("%s did not stop within the grace period %s", p.name, grace)
	}
}

// probe runs one probe as the kubelet does: GET on the named port
// (200-399 passes) or the exec command in the container (exit 0 passes).
func (p *pod) probe(pr *corev1.Probe) error {
	timeout := time.Duration(pr.TimeoutSeconds) * time.Second
	switch {
	case pr.HTTPGet != nil:
		port := pr.HTTPGet.Port.IntValue()
		if pr.HTTPGet.Port.StrVal != "" {
			port = p.port(pr.HTTPGet.Port.StrVal)
		} else {
			port = p.ports[int32(port)]
		}
		c := &http.Client{Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, pr.HTTPGet.Path))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("GET %s: %d %s", pr.HTTPGet.Path, resp.StatusCode, b)
		}
		return nil
	case pr.Exec != nil:
		if pr.Exec.Command[0] != binPath {
			return fmt.Errorf("exec %q: not the image's binary", pr.Exec.Command)
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, maxineBin, pr.Exec.Command[1:]...)
		cmd.Env = p.environ()
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("exec %q: %v: %s", pr.Exec.Command, err, out)
		}
		return nil
	}
	return fmt.Errorf("unsupported probe %+v", pr)
}

// becomesReady waits (bounded) for the startup probe, then readiness and
// liveness, like the kubelet before a pod joins its Services.
func (p *pod) becomesReady() {
	p.t.Helper()
	var last error
	for i, pr := range []*corev1.Probe{p.ctr.StartupProbe, p.ctr.ReadinessProbe, p.ctr.LivenessProbe} {
		deadline := time.Now().Add(60 * time.Second)
		for n := 0; ; n++ {
			if last = p.probe(pr); last == nil {
				break
			}
			select {
			case <-p.done:
				p.t.Fatalf("%s exited (%v) before becoming ready:\n%s", p.name, p.err, tailLines(p.out.String(), 25))
			default:
			}
			if time.Now().After(deadline) || n > 600 {
				p.t.Fatalf("%s: probe %d never passed: %v", p.name, i, last)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// TestRunLocal starts the binary with the environment of the default
// values' Deployment and checks it becomes ready and uses the chart's
// credentials: the generated admin password, JWT secret and registration
// token.
func TestRunLocal(t *testing.T) {
	c := loadChart(t)
	files, err := render(c, parseValues(t, `config: {MAXINE_DRAIN_DELAY: 100ms}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	o := decode(t, files)
	d, _ := o.deployment(t)
	secret := o.secret(d.Name)
	p := newPod(t, o, d.Name+"-0", secret.Data)
	p.start()
	p.becomesReady()

	// The generated admin password works; the binary's default does not.
	if code, _ := call(t, "POST", p.url("admin", "/api/maxine/signin"), "", `{"userName":"admin","password":"admin"}`); code != 401 {
		t.Errorf("sign-in with admin/admin: %d, want 401 (the chart sets the password)", code)
	}
	token := signIn(t, p, "admin", string(secret.Data["admin-password"]))
	if code, body := call(t, "GET", p.url("admin", "/api/maxine/control/config"), token, ""); code != 200 {
		t.Errorf("config with the admin's token: %d %s", code, body)
	}
	// Registration needs the generated token.
	up := upstream(t)
	reg := fmt.Sprintf(`{"serviceName":"echo","nodeName":"echo-1","hostName":"127.0.0.1","port":%d,"timeOut":60}`, up)
	if code, _ := call(t, "POST", p.url("admin", "/api/maxine/serviceops/register"), "", reg); code != 401 && code != 403 {
		t.Errorf("registration without the token: %d, want 401/403", code)
	}
	if code, body := call(t, "POST", p.url("admin", "/api/maxine/serviceops/register"), string(secret.Data["registration-token"]), reg); code != 200 {
		t.Fatalf("registration with the token: %d %s", code, body)
	}
	if code, body := call(t, "GET", p.url("gateway", "/echo/hi"), "", ""); code != 200 || body != "upstream saw /hi" {
		t.Errorf("through the gateway: %d %q", code, body)
	}
	p.stop(time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second)
	if _, err := os.Stat(filepath.Join(p.vars["MAXINE_DATA_DIR"], "registry-state.json")); err != nil {
		t.Errorf("no state file in the data volume after the stop: %v", err)
	}
}

// TestRunTLS starts the binary with the environment of a Deployment whose
// gateway and admin TLS listeners are on, the values' kubernetes.io/tls
// Secret "mounted", and checks that both TLS ports serve the Secret's
// certificate to a client trusting it, that the admin API answers over
// TLS, and that the pod still becomes ready through its cleartext probes.
func TestRunTLS(t *testing.T) {
	c := loadChart(t)
	files, err := render(c, parseValues(t, `
tls: {secretName: maxine-tls, gateway: true, admin: true}
config: {MAXINE_DRAIN_DELAY: 100ms}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	o := decode(t, files)
	d, _ := o.deployment(t)
	certPEM, keyPEM, pool := selfSigned(t, "maxine.test")
	p := newPod(t, o, d.Name+"-0", o.secret(d.Name).Data)
	p.mountSecret("tls", map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM})
	p.start()
	p.becomesReady()

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "maxine.test"}}}
	defer hc.CloseIdleConnections()
	for _, c := range []struct {
		port, path string
		status     int
	}{
		{"admin-tls", "/api/actuator/health", 200},
		{"gateway-tls", "/no-such-service/x", 404},
	} {
		resp, err := hc.Get(fmt.Sprintf("https://127.0.0.1:%d%s", p.port(c.port), c.path))
		if err != nil {
			t.Fatalf("%s: %v", c.port, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || resp.TLS == nil || resp.TLS.PeerCertificates[0].Subject.CommonName != "maxine.test" {
			t.Errorf("%s %s: %d over %v, want %d with the Secret's certificate", c.port, c.path, resp.StatusCode, resp.TLS != nil, c.status)
		}
	}
	p.stop(time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second)
}

// selfSigned returns a self-signed certificate for name, its key and a
// pool trusting it.
func selfSigned(t *testing.T, name string) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), pool
}

// TestRunRedisSentinel starts the three replicas of the redis-mode
// Deployment (Sentinel settings, generated Secret) against a real
// redis-server watched by a real redis-sentinel, and checks they become
// ready, elect one leader, share the registry, the JWT secret and config
// changes (forwarded to the leader through the advertised pod address),
// and stay ready and alive through a Redis outage.
func TestRunRedisSentinel(t *testing.T) {
	redisPort := startRedis(t)
	sentinelPort := startSentinel(t, redisPort)
	c := loadChart(t)
	files, err := render(c, parseValues(t, fmt.Sprintf(`
mode: redis
replicaCount: 3
redis:
  sentinel: {master: mymaster, addrs: ["127.0.0.1:%d"]}
leader: {lease: 3s, renew: 1s}
config: {MAXINE_DRAIN_DELAY: 100ms}
`, sentinelPort)), nil)
	if err != nil {
		t.Fatal(err)
	}
	o := decode(t, files)
	d, _ := o.deployment(t)
	secret := o.secret(d.Name)
	var pods []*pod
	for i := 0; i < int(*d.Spec.Replicas); i++ {
		p := newPod(t, o, fmt.Sprintf("%s-%d", d.Name, i), secret.Data)
		p.start()
		pods = append(pods, p)
	}
	if len(pods) != 3 {
		t.Fatalf("%d replicas, want 3", len(pods))
	}
	for _, p := range pods {
		p.becomesReady()
	}

	// One JWT secret: a token from pod 0 works on every pod; exactly one
	// leader, every member seen.
	token := signIn(t, pods[0], "admin", string(secret.Data["admin-password"]))
	eventually(t, 30*time.Second, "one leader and three members", func() bool {
		leaders := 0
		for _, p := range pods {
			var cs struct {
				IsLeader, HasLeader bool
				Members             []struct{ InstanceID string }
			}
			code, body := call(t, "GET", p.url("admin", "/api/actuator/cluster"), token, "")
			if code != 200 || json.Unmarshal([]byte(body), &cs) != nil || !cs.HasLeader || len(cs.Members) != 3 {
				return false
			}
			if cs.IsLeader {
				leaders++
			}
		}
		return leaders == 1
	})

	// A registration on one pod is served by the others' gateways.
	up := upstream(t)
	reg := fmt.Sprintf(`{"serviceName":"echo","nodeName":"echo-1","hostName":"127.0.0.1","port":%d,"timeOut":60}`, up)
	if code, body := call(t, "POST", pods[1].url("admin", "/api/maxine/serviceops/register"), string(secret.Data["registration-token"]), reg); code != 200 {
		t.Fatalf("registration: %d %s", code, body)
	}
	for _, p := range pods {
		eventually(t, 15*time.Second, p.name+" gateway serves echo", func() bool {
			code, body := call(t, "GET", p.url("gateway", "/echo/x"), "", "")
			return code == 200 && body == "upstream saw /x"
		})
	}

	// A config change on every pod reaches all (followers forward it to
	// the leader at its advertised $(POD_IP) address).
	for _, p := range pods {
		code, body := call(t, "PUT", p.url("admin", "/api/maxine/control/config"), token, `{"serverSelectionStrategy":"CH"}`)
		if code != 200 {
			t.Fatalf("config change on %s: %d %s", p.name, code, body)
		}
	}
	for _, p := range pods {
		eventually(t, 15*time.Second, p.name+" has the shared config", func() bool {
			var cfg struct {
				ServerSelectionStrategy struct{ Name string } `json:"serverSelectionStrategy"`
			}
			_, body := call(t, "GET", p.url("admin", "/api/maxine/control/config"), token, "")
			return json.Unmarshal([]byte(body), &cfg) == nil && cfg.ServerSelectionStrategy.Name == "CH"
		})
	}

	// Redis outage: health answers 503 (registrations cannot be stored),
	// but the liveness probe and, with probes.redisOutage=serve, the
	// readiness probe still pass: no pod is restarted or taken out of the
	// Services, and the gateways keep serving their tables.
	stopRedis(t, redisPort)
	for _, p := range pods {
		eventually(t, 30*time.Second, p.name+" reports the store down", func() bool {
			code, _ := call(t, "GET", p.url("admin", healthPath), "", "")
			return code == 503
		})
		if err := p.probe(p.ctr.LivenessProbe); err != nil {
			t.Errorf("%s liveness fails in a Redis outage: %v", p.name, err)
		}
		if err := p.probe(p.ctr.ReadinessProbe); err != nil {
			t.Errorf("%s readiness fails in a Redis outage (redisOutage=serve): %v", p.name, err)
		}
		if code, body := call(t, "GET", p.url("gateway", "/echo/y"), "", ""); code != 200 || body != "upstream saw /y" {
			t.Errorf("%s gateway in a Redis outage: %d %q", p.name, code, body)
		}
	}
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Add(1)
		go func(p *pod) {
			defer wg.Done()
			p.stop(time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second)
		}(p)
	}
	wg.Wait()
}

// TestRunExistingSecret: the Deployment reads every credential from the
// user's Secret, with the keys the chart README names.
func TestRunExistingSecret(t *testing.T) {
	c := loadChart(t)
	files, err := render(c, parseValues(t, "auth: {existingSecret: mine}\nconfig: {MAXINE_DRAIN_DELAY: 100ms}"), nil)
	if err != nil {
		t.Fatal(err)
	}
	o := decode(t, files)
	if len(o.secrets) != 0 {
		t.Fatalf("the chart renders a Secret although existingSecret is set")
	}
	d, _ := o.deployment(t)
	mine := map[string][]byte{"jwt-secret": []byte("0123456789abcdef0123456789abcdef"), "admin-password": []byte("s3cret-admin"), "registration-token": []byte("reg-tok")}
	p := newPod(t, o, d.Name+"-0", mine)
	p.start()
	p.becomesReady()
	signIn(t, p, "admin", "s3cret-admin")
	up := upstream(t)
	reg := fmt.Sprintf(`{"serviceName":"echo","nodeName":"echo-1","hostName":"127.0.0.1","port":%d,"timeOut":60}`, up)
	if code, body := call(t, "POST", p.url("admin", "/api/maxine/serviceops/register"), "reg-tok", reg); code != 200 {
		t.Fatalf("registration with the existingSecret's token: %d %s", code, body)
	}
	p.stop(30 * time.Second)
}

func signIn(t *testing.T, p *pod, user, pass string) string {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"userName": user, "password": pass})
	code, body := call(t, "POST", p.url("admin", "/api/maxine/signin"), "", string(b))
	var r struct{ AccessToken string }
	if code != 200 || json.Unmarshal([]byte(body), &r) != nil || r.AccessToken == "" {
		t.Fatalf("sign-in as %s on %s: %d %s", user, p.name, code, body)
	}
	return r.AccessToken
}

var httpClient = &http.Client{Timeout: 10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func call(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for i := 0; ; i++ {
		if cond() {
			return
		}
		if time.Now().After(deadline) || i > 10000 {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func upstream(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "upstream saw "+r.URL.Path)
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Redis: a real redis-server and redis-sentinel (Debian's packages, which
// `make chart` installs) on free loopback ports, killed by the test.

var redisProcs sync.Map // port → *exec.Cmd

func lookRedis(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/bin", "/usr/sbin"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return filepath.Join(dir, name)
		}
	}
	t.Fatalf("%s not found: run `make redis-deps` (Debian's redis-server and redis-sentinel)", name)
	return ""
}

func startRedisProc(t *testing.T, port int, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	redisProcs.Store(port, cmd)
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s :%d output:\n%s", filepath.Base(bin), port, tailLines(out.String(), 10))
		}
	})
	eventually(t, 20*time.Second, fmt.Sprintf("%s answers PING on %d", filepath.Base(bin), port), func() bool {
		return redisCmd(port, "PING") == "+PONG"
	})
}

func startRedis(t *testing.T) int {
	port := freePort(t)
	startRedisProc(t, port, lookRedis(t, "redis-server"), "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", t.TempDir(), "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
	return port
}

func startSentinel(t *testing.T, redisPort int) int {
	port := freePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor mymaster 127.0.0.1 %d 1\nsentinel down-after-milliseconds mymaster 5000\n", port, dir, redisPort)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	startRedisProc(t, port, lookRedis(t, "redis-sentinel"), conf)
	eventually(t, 20*time.Second, "sentinel knows the master", func() bool {
		return strings.Contains(redisCmd(port, "SENTINEL get-master-addr-by-name mymaster"), strconv.Itoa(redisPort))
	})
	return port
}

func stopRedis(t *testing.T, port int) {
	v, ok := redisProcs.Load(port)
	if !ok {
		t.Fatalf("no redis on %d", port)
	}
	cmd := v.(*exec.Cmd)
	cmd.Process.Kill()
}

// redisCmd sends one inline command and returns the reply's first line
// (or, for an array, all of it joined), "" on error.
func redisCmd(port int, command string) string {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
	if err != nil {
		return ""
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, command+"\r\n"); err != nil {
		return ""
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return ""
	}
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "*") {
		n, _ := strconv.Atoi(line[1:])
		var parts []string
		for i := 0; i < 2*n && i < 20; i++ {
			l, err := r.ReadString('\n')
			if err != nil {
				break
			}
			parts = append(parts, strings.TrimRight(l, "\r\n"))
		}
		return strings.Join(parts, " ")
	}
	return line
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 4<<20 {
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
