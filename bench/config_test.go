package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNginxConfigRedirect(t *testing.T) {
	c := nginxConfig("/tmp/x", 18080, "", 2)
	for _, want := range []string{
		"worker_processes 2;", "daemon off;", "error_log /tmp/x/e.log;", "pid /tmp/x/nginx.pid;",
		"access_log off;", "listen 127.0.0.1:18080;", "return 302 http://127.0.0.1:9/x;",
		"keepalive_requests 1000000;", "proxy_temp_path /tmp/x/proxy_temp;",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("redirect config lacks %q:\n%s", want, c)
		}
	}
	if strings.Contains(c, "proxy_pass") || strings.Contains(c, "upstream ") {
		t.Errorf("redirect config must not proxy:\n%s", c)
	}
	if strings.Count(c, "{") != strings.Count(c, "}") {
		t.Errorf("unbalanced braces:\n%s", c)
	}
}

func TestNginxConfigProxy(t *testing.T) {
	c := nginxConfig("/tmp/x", 18081, "127.0.0.1:9999", 2)
	for _, want := range []string{
		"server 127.0.0.1:9999;", "keepalive 256;", "proxy_pass http://bench_upstream;",
		"proxy_http_version 1.1;", `proxy_set_header Connection "";`, "listen 127.0.0.1:18081;",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("proxy config lacks %q:\n%s", want, c)
		}
	}
	if strings.Contains(c, "return 302") {
		t.Errorf("proxy config must not redirect")
	}
	if strings.Count(c, "{") != strings.Count(c, "}") {
		t.Errorf("unbalanced braces:\n%s", c)
	}
}

func TestHAProxyConfig(t *testing.T) {
	c := haproxyConfig(18082, "127.0.0.1:9999", 5000, 2)
	for _, want := range []string{
		"nbthread 2", "mode http", "option http-keep-alive", "http-reuse always",
		"bind 127.0.0.1:18082", "maxconn 5000", "server up1 127.0.0.1:9999", "timeout connect",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("haproxy config lacks %q:\n%s", want, c)
		}
	}
}

// TestConfigsParse lets the real binaries check the rendered configs (a
// fraction of a second each); it fails when they are not installed.
func TestConfigsParse(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if bin := requireBinary(t, "nginx"); bin != "" {
		for name, up := range map[string]string{"redirect": "", "proxy": "127.0.0.1:9999"} {
			d := filepath.Join(dir, name)
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			conf := filepath.Join(d, "nginx.conf")
			if err := os.WriteFile(conf, []byte(nginxConfig(d, 18083, up, 2)), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.CommandContext(ctx, bin, "-t", "-q", "-p", d, "-c", conf, "-e", filepath.Join(d, "e.log")).CombinedOutput(); err != nil {
				t.Errorf("nginx -t rejects the %s config: %v\n%s", name, err, out)
			}
		}
	}
	if bin := requireBinary(t, "haproxy"); bin != "" {
		conf := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(conf, []byte(haproxyConfig(18084, "127.0.0.1:9999", haproxyMaxconn(), 2)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.CommandContext(ctx, bin, "-c", "-f", conf).CombinedOutput()
		if err != nil || strings.Contains(string(out), "WARNING") {
			t.Errorf("haproxy -c: %v\n%s", err, out)
		}
	}
}

func TestParseStatusKB(t *testing.T) {
	status := "Name:\tmaxine\nVmPeak:\t  900000 kB\nVmHWM:\t  300000 kB\nVmRSS:\t  123456 kB\nThreads:\t8\n"
	if got := parseStatusKB(status, "VmRSS:"); got != 123456 {
		t.Fatalf("VmRSS = %d", got)
	}
	if got := parseStatusKB(status, "VmHWM:"); got != 300000 {
		t.Fatalf("VmHWM = %d", got)
	}
	if got := parseStatusKB(status, "VmSwap:"); got != 0 {
		t.Fatalf("missing field = %d", got)
	}
	rss, _, err := procRSS(os.Getpid())
	if err != nil || rss == 0 {
		t.Fatalf("own RSS: %d, %v", rss, err)
	}
}

func TestSupportsFlag(t *testing.T) {
	help := "Usage: maxine [flags]\n\n  --admin-addr  [MAXINE_ADMIN_ADDR]\n        admin listener\n  --metrics  [MAXINE_METRICS]\n        gateway metrics\n  --metrics-path\n  -cpuprofile string\n  --trace-ring=100\n"
	for name, want := range map[string]bool{"metrics": true, "cpuprofile": true, "admin-addr": true, "trace-ring": true, "memprofile": false, "admin": false, "metrics-p": false} {
		if got := supportsFlag(help, name); got != want {
			t.Errorf("supportsFlag(%q) = %v", name, got)
		}
	}
	if supportsFlag("  --metrics-path\n", "metrics") {
		t.Error("--metrics-path must not count as --metrics")
	}
}
