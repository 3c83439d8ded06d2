package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// healthServer serves healthPath on a loopback port the way the admin API
// does: 200 {"status":"UP"} or 503 {"status":"DOWN","reason":…}, with the
// reason the real lifecycle gives.
func healthServer(t *testing.T, lc *lifecycle) (port string, hits *atomic.Int64) {
	t.Helper()
	hits = new(atomic.Int64)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+healthPath, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if ok, reason := lc.ready(); !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(map[string]string{"status": "DOWN", "reason": reason})
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"status": "UP"})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), hits
}

func runHealthCmd(args []string, env map[string]string) (int, string) {
	var out bytes.Buffer
	code := run(append([]string{"health"}, args...), func(k string) string { return env[k] }, &out, &out)
	return code, out.String()
}

func TestHealthCommand(t *testing.T) {
	storeUp := atomic.Bool{}
	storeUp.Store(true)
	lc := &lifecycle{mode: "redis", storeUp: storeUp.Load}
	port, hits := healthServer(t, lc)

	// The admin address comes from the flag, MAXINE_ADMIN_ADDR or PORT,
	// as for the server; ":port" is probed on loopback.
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"flag", []string{"--admin-addr", "127.0.0.1:" + port}, nil},
		{"env", nil, map[string]string{"MAXINE_ADMIN_ADDR": ":" + port}},
		{"PORT", nil, map[string]string{"PORT": port}},
		{"unspecified host", nil, map[string]string{"MAXINE_ADMIN_ADDR": "0.0.0.0:" + port}},
	} {
		before := hits.Load()
		if code, out := runHealthCmd(tc.args, tc.env); code != 0 || !strings.HasPrefix(out, "UP ") {
			t.Errorf("%s: exit %d, output %q; want 0 and UP", tc.name, code, out)
		}
		if hits.Load() != before+1 {
			t.Errorf("%s: the health endpoint was not probed", tc.name)
		}
	}

	// Store down: DOWN (1), but alive for --allow-store-down (0).
	storeUp.Store(false)
	env := map[string]string{"MAXINE_ADMIN_ADDR": ":" + port}
	if code, out := runHealthCmd(nil, env); code != 1 || !strings.Contains(out, "DOWN") || !strings.Contains(out, "503") {
		t.Errorf("store down: exit %d, output %q; want 1, DOWN, 503", code, out)
	}
	if code, out := runHealthCmd([]string{"--allow-store-down"}, env); code != 0 {
		t.Errorf("store down with --allow-store-down: exit %d, output %q; want 0", code, out)
	}

	// Draining is DOWN even with --allow-store-down.
	storeUp.Store(true)
	lc.setDraining()
	for _, args := range [][]string{nil, {"--allow-store-down"}} {
		if code, out := runHealthCmd(args, env); code != 1 || !strings.Contains(out, "draining") {
			t.Errorf("draining %v: exit %d, output %q; want 1 naming draining", args, code, out)
		}
	}
}

func TestHealthCommandNothingListening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if code, out := runHealthCmd([]string{"--admin-addr", addr, "--allow-store-down"}, nil); code != 1 || !strings.HasPrefix(out, "DOWN ") {
		t.Errorf("nothing listening: exit %d, output %q; want 1 and DOWN", code, out)
	}
	if code, _ := runHealthCmd([]string{"--admin-addr", "no-port"}, nil); code != 2 {
		t.Errorf("bad address: exit %d, want 2", code)
	}
}

func TestHealthURL(t *testing.T) {
	for in, want := range map[string]string{
		":8080":          "http://127.0.0.1:8080" + healthPath,
		"0.0.0.0:8080":   "http://127.0.0.1:8080" + healthPath,
		"[::]:8080":      "http://[::1]:8080" + healthPath,
		"10.1.2.3:9090":  "http://10.1.2.3:9090" + healthPath,
		"localhost:8081": "http://localhost:8081" + healthPath,
	} {
		if got, err := healthURL(in); err != nil || got != want {
			t.Errorf("healthURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
