package main

import (
	"strings"
	"testing"
	"time"
)

// TestMaxineGetsTheCPUBudget: HAProxy runs 2 threads and nginx 2 workers,
// so maxine must run with GOMAXPROCS 2 too, whatever the bench's own
// environment says, or it is compared with more CPU than they have.
func TestMaxineGetsTheCPUBudget(t *testing.T) {
	t.Setenv("GOMAXPROCS", "1") // inherited unless the bench sets its own
	b := &Bench{runDir: t.TempDir(), maxineBin: maxineBinary(t)}
	m, err := b.startMaxine(testContext(t, 30*time.Second), "cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	if got := environOf(t, m.Pid())["GOMAXPROCS"]; got != "2" {
		t.Fatalf("maxine started with GOMAXPROCS=%q, want 2 like HAProxy's 2 threads and nginx's 2 workers", got)
	}
	if c := nginxConfig("/tmp/x", 1, "", defaultCPUs); !strings.Contains(c, "worker_processes 2;") {
		t.Fatalf("nginx config:\n%s", c)
	}
	if c := haproxyConfig(1, "127.0.0.1:2", 100, defaultCPUs); !strings.Contains(c, "nbthread 2\n") {
		t.Fatalf("haproxy config:\n%s", c)
	}
}

// TestCPUBudgetIsOneSetting: -cpus changes every target's budget at once.
func TestCPUBudgetIsOneSetting(t *testing.T) {
	b := &Bench{cfg: Config{CPUs: 3}, runDir: t.TempDir(), maxineBin: maxineBinary(t)}
	m, err := b.startMaxine(testContext(t, 30*time.Second), "cpu3")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	if got := environOf(t, m.Pid())["GOMAXPROCS"]; got != "3" {
		t.Fatalf("maxine GOMAXPROCS=%q with -cpus 3", got)
	}
	if c := nginxConfig("/tmp/x", 1, "", b.cfg.cpus()); !strings.Contains(c, "worker_processes 3;") {
		t.Fatalf("nginx config with -cpus 3:\n%s", c)
	}
	if c := haproxyConfig(1, "127.0.0.1:2", 100, b.cfg.cpus()); !strings.Contains(c, "nbthread 3\n") {
		t.Fatalf("haproxy config with -cpus 3:\n%s", c)
	}
}

// TestCalibrationProxy starts the bare fasthttp proxy as its own process
// (this test binary, re-executed) with the same CPU budget as the other
// targets, and checks that it proxies to the upstream.
func TestCalibrationProxy(t *testing.T) {
	t.Setenv("GOMAXPROCS", "1")
	up := stubUpstream(t, func(int64, time.Time) (time.Duration, int) { return 0, 200 })
	ctx := testContext(t, 30*time.Second)
	c, err := StartCalibrationProxy(ctx, t.TempDir(), up, defaultCPUs)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if got := environOf(t, c.Pid())["GOMAXPROCS"]; got != "2" {
		t.Fatalf("calibration proxy started with GOMAXPROCS=%q, want the budget 2", got)
	}
	code, body, err := probe("http://" + c.Addr + "/anything")
	if err != nil || code != 200 || string(body) != string(upstreamBody) {
		t.Fatalf("through the calibration proxy: %d %q %v", code, body, err)
	}
}
