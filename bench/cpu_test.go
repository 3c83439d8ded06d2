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
