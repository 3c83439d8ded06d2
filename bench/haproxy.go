package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// haproxyConfig renders the HAProxy configuration the gateway is compared
// against: cpus threads (the run's CPU budget, Config.CPUs), HTTP mode, keep-alive on both
// sides and server connections shared between client connections
// (`http-reuse always`), which is HAProxy at its fastest for this load.
//
// maxconn is passed in because HAProxy refuses to start when it cannot
// raise its file-descriptor limit to about twice maxconn.
func haproxyConfig(port int, upstream string, maxconn, cpus int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global\n    nbthread %d\n    maxconn %d\n\n", cpus, maxconn)
	b.WriteString("defaults\n    mode http\n    option http-keep-alive\n    http-reuse always\n")
	b.WriteString("    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n    timeout http-keep-alive 60s\n\n")
	fmt.Fprintf(&b, "frontend bench_in\n    bind 127.0.0.1:%d\n    default_backend bench_upstream\n\n", port)
	fmt.Fprintf(&b, "backend bench_upstream\n    server up1 %s\n", upstream)
	return b.String()
}

// haproxyMaxconn picks the largest maxconn (at most 10,000) whose file
// descriptors fit under the hard RLIMIT_NOFILE HAProxy inherits.
func haproxyMaxconn() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1000
	}
	n := (int64(min(lim.Max, 1<<20)) - 200) / 2
	return int(max(min(n, 10000), 256))
}

// HAProxy is a running HAProxy started by the bench.
type HAProxy struct {
	Addr string
	proc *Process
}

// StartHAProxy renders the config under runDir, starts bin in the
// foreground (-db) with cpus threads and waits until it proxies a request
// to upstream.
func StartHAProxy(ctx context.Context, bin, runDir, upstream string, cpus int) (*HAProxy, error) {
	dir := filepath.Join(runDir, "haproxy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create haproxy dir: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(conf, []byte(haproxyConfig(port, upstream, haproxyMaxconn(), cpus)), 0o644); err != nil {
		return nil, fmt.Errorf("cannot write %q: %w", conf, err)
	}
	p, err := StartProcess("haproxy", filepath.Join(dir, "haproxy.log"), bin, nil, "-db", "-f", conf)
	if err != nil {
		return nil, err
	}
	h := &HAProxy{Addr: loopback(port), proc: p}
	if err := p.WaitHTTP(ctx, "http://"+h.Addr+"/", 200, 10*time.Second); err != nil {
		p.Stop()
		return nil, err
	}
	return h, nil
}

// Stop stops HAProxy.
func (h *HAProxy) Stop() { h.proc.Stop() }
