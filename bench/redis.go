package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/maxine-io/maxine/internal/resp"
)

// RedisServer is a redis-server the bench starts for the redis
// state-mode rows: on a free loopback port, with no persistence (--save ""
// --appendonly no), its working directory in the run directory.
type RedisServer struct {
	Addr string // 127.0.0.1:port
	proc *Process
}

// StartRedis starts bin and waits (at most 10 s) until it answers PING.
func StartRedis(ctx context.Context, bin, runDir string) (*RedisServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(runDir, "redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create the redis-server directory: %w", err)
	}
	r := &RedisServer{Addr: loopback(port)}
	p, err := StartProcess("redis-server", filepath.Join(runDir, "redis-server.log"), bin, nil,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "no",
		"--daemonize", "no", "--loglevel", "warning")
	if err != nil {
		return nil, err
	}
	r.proc = p
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := r.Do("PING")
		switch {
		case err == nil:
			return r, nil
		case p.Exited():
			return nil, fmt.Errorf("redis-server exited during start-up; log %s:\n%s", p.LogPath, p.LogTail())
		case ctx.Err() != nil:
			p.Stop()
			return nil, ctx.Err()
		case time.Now().After(deadline):
			p.Stop()
			return nil, fmt.Errorf("redis-server on %s did not answer PING in 10 s (last: %v); log %s:\n%s", r.Addr, err, p.LogPath, p.LogTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URL is the --redis-url of database 0.
func (r *RedisServer) URL() string { return "redis://" + r.Addr + "/0" }

// Stop stops the server (SIGTERM, then SIGKILL after 5 s).
func (r *RedisServer) Stop() {
	if r != nil {
		r.proc.Stop()
	}
}

// Flush empties the server (FLUSHALL), so that each maxine starts on an
// empty shared registry.
func (r *RedisServer) Flush() error {
	_, err := r.Do("FLUSHALL")
	return err
}

// Keys returns the number of keys in database 0 (DBSIZE): proof that a
// maxine in redis mode really keeps its registry there.
func (r *RedisServer) Keys() (int, error) {
	s, err := r.Do("DBSIZE")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

// Do sends one command over a fresh connection and returns the reply as
// text: simple strings, integers and bulk strings as they are, arrays of
// them joined by "\n", an error reply as an error. It is for setting up
// and checking, never for load.
func (r *RedisServer) Do(args ...string) (string, error) {
	return resp.Do(r.Addr, 5*time.Second, args...)
}

// redisVersion turns `redis-server --version` ("Redis server v=7.0.15
// sha=…") into "Redis 7.0.15" for the machine line; "" when unknown.
func redisVersion(line string) string {
	for f := range strings.FieldsSeq(line) {
		if v, ok := strings.CutPrefix(f, "v="); ok && v != "" {
			return "Redis " + v
		}
	}
	return ""
}
