package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Helper is a target this bench executable serves itself: the
// calibration proxy and redirect server (calibration.go) and the
// WebSocket echo node (websocket.go). The bench starts one by executing
// itself again with the helper's environment variable set, so the target
// is a process of its own with the run's CPU budget (GOMAXPROCS), not
// goroutines sharing the load generator's.
type Helper struct {
	Addr string // its loopback listen address
	proc *Process
}

// runHelperIfAsked serves as the helper that env asks for, and exits, when
// env is set; otherwise it returns at once. main (and the tests' TestMain)
// call it first.
func runHelperIfAsked(env string, serve func(spec string) error) {
	spec := os.Getenv(env)
	if spec == "" {
		return
	}
	if err := serve(spec); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

// startHelper starts this executable again as the helper name, with env
// set to "<listen addr>" (then " " and arg when arg is not empty) and
// GOMAXPROCS cpus, and waits until GET /ping answers status.
func startHelper(ctx context.Context, runDir, name, env, arg string, cpus, status int) (*Helper, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot find the bench executable to start the %s: %w", name, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	h := &Helper{Addr: loopback(port)}
	spec := h.Addr
	if arg != "" {
		spec += " " + arg
	}
	vars := []string{env + "=" + spec, "GOMAXPROCS=" + strconv.Itoa(cpus)}
	p, err := StartProcess(name, filepath.Join(runDir, strings.ReplaceAll(name, " ", "-")+".log"), self, vars)
	if err != nil {
		return nil, err
	}
	h.proc = p
	if err := p.WaitHTTP(ctx, "http://"+h.Addr+"/ping", status, 10*time.Second); err != nil {
		p.Stop()
		return nil, err
	}
	return h, nil
}

// Pid returns the process id of the helper.
func (h *Helper) Pid() int { return h.proc.Pid() }

// Stop stops the helper.
func (h *Helper) Stop() { h.proc.Stop() }
