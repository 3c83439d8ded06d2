package main

import (
	"strings"
	"testing"
	"time"
)

// TestRedisServer starts the redis-server the redis rows use: on a free
// loopback port, without persistence (--save "" --appendonly no), and
// gone after Stop.
func TestRedisServer(t *testing.T) {
	bin := requireBinary(t, "redis-server")
	r, err := StartRedis(testContext(t, 30*time.Second), bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	if !strings.HasPrefix(r.Addr, "127.0.0.1:") || r.URL() != "redis://"+r.Addr+"/0" {
		t.Fatalf("addr %q, url %q", r.Addr, r.URL())
	}
	for _, c := range []struct{ key, want string }{{"save", "save\n"}, {"appendonly", "appendonly\nno"}, {"bind", "bind\n127.0.0.1"}} {
		if got, err := r.Do("CONFIG", "GET", c.key); err != nil || got != c.want {
			t.Errorf("CONFIG GET %s = %q, %v; want %q", c.key, got, err, c.want)
		}
	}
	if _, err := r.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Keys(); err != nil || n != 1 {
		t.Fatalf("DBSIZE after one SET: %d, %v", n, err)
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Keys(); err != nil || n != 0 {
		t.Fatalf("DBSIZE after FLUSHALL: %d, %v", n, err)
	}
	if _, err := r.Do("NOSUCHCOMMAND"); err == nil {
		t.Error("an error reply came back as success")
	}
	r.Stop()
	if !r.proc.Exited() {
		t.Fatal("redis-server still running after Stop")
	}
	if _, err := r.Do("PING"); err == nil {
		t.Fatal("PING answered after Stop")
	}
}

func TestRedisVersion(t *testing.T) {
	got := redisVersion("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=c4780a3d2e2c3b8b")
	if got != "Redis 7.0.15" {
		t.Fatalf("got %q", got)
	}
	if got := redisVersion(""); got != "" {
		t.Fatalf("empty: got %q", got)
	}
}
