package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// nginxRedirectTarget is the Location nginx answers with in the redirect
// comparison. Port 9 (discard) on loopback: nothing ever follows it.
const nginxRedirectTarget = "http://127.0.0.1:9/x"

// nginxConfig renders a minimal nginx.conf with cpus workers (the run's
// CPU budget, Config.CPUs) and everything
// it writes kept under dir. When upstream is empty the server answers
// every request with `return 302`; otherwise it proxies to upstream over
// HTTP/1.1 keep-alive connections.
//
// keepalive_requests is raised on both sides because nginx's default
// (1000) closes a client connection every 1000 requests, which would
// charge nginx for reconnects the other targets never make.
func nginxConfig(dir string, port int, upstream string, cpus int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "worker_processes %d;\ndaemon off;\nerror_log %s;\npid %s;\n",
		cpus, filepath.Join(dir, "e.log"), filepath.Join(dir, "nginx.pid"))
	b.WriteString("events { worker_connections 4096; }\n")
	b.WriteString("http {\n    access_log off;\n")
	// The packaged nginx writes temp files under /var/lib/nginx by default.
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "    %s_temp_path %s;\n", t, filepath.Join(dir, t+"_temp"))
	}
	b.WriteString("    keepalive_requests 1000000;\n    keepalive_timeout 120s;\n")
	if upstream != "" {
		fmt.Fprintf(&b, "    upstream bench_upstream {\n        server %s;\n        keepalive 256;\n        keepalive_requests 1000000;\n        keepalive_timeout 120s;\n    }\n", upstream)
	}
	fmt.Fprintf(&b, "    server {\n        listen 127.0.0.1:%d;\n        location / {\n", port)
	if upstream == "" {
		fmt.Fprintf(&b, "            return 302 %s;\n", nginxRedirectTarget)
	} else {
		b.WriteString("            proxy_pass http://bench_upstream;\n")
		b.WriteString("            proxy_http_version 1.1;\n")
		b.WriteString("            proxy_set_header Connection \"\";\n")
	}
	b.WriteString("        }\n    }\n}\n")
	return b.String()
}

// Nginx is a running nginx started by the bench.
type Nginx struct {
	Addr string
	proc *Process
}

// StartNginx renders the config into a fresh directory under runDir,
// starts bin in the foreground with cpus workers and waits until it
// answers. upstream "" selects the `return 302` server.
func StartNginx(ctx context.Context, bin, runDir, label, upstream string, cpus int) (*Nginx, error) {
	dir := filepath.Join(runDir, "nginx-"+label)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create nginx dir: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConfig(dir, port, upstream, cpus)), 0o644); err != nil {
		return nil, fmt.Errorf("cannot write %q: %w", conf, err)
	}
	p, err := StartProcess("nginx", filepath.Join(dir, "stdout.log"), bin, nil,
		"-p", dir, "-c", conf, "-e", filepath.Join(dir, "e.log"))
	if err != nil {
		return nil, err
	}
	n := &Nginx{Addr: loopback(port), proc: p}
	want := 200
	if upstream == "" {
		want = 302
	}
	if err := p.WaitHTTP(ctx, "http://"+n.Addr+"/", want, 10*time.Second); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%w (error log %s)", err, filepath.Join(dir, "e.log"))
	}
	return n, nil
}

// Stop stops nginx and its workers.
func (n *Nginx) Stop() { n.proc.Stop() }
