package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// testBinDir holds the maxine binary the tests build once; TestMain
// removes it.
var (
	testBinDir  string
	buildOnce   sync.Once
	builtMaxine string
	buildErr    error
)

func TestMain(m *testing.M) {
	runCalibrationProxyIfAsked() // the tests start this binary as the calibration proxy
	runWebSocketEchoIfAsked()    // and as the WebSocket echo node
	code := m.Run()
	if testBinDir != "" {
		os.RemoveAll(testBinDir)
	}
	os.Exit(code)
}

// maxineBinary builds ./cmd/maxine once per test binary (go build's cache
// makes it quick after the first time) and returns its path. The
// environment variable BENCH_TEST_MAXINE names a prebuilt binary instead.
func maxineBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("BENCH_TEST_MAXINE"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		testBinDir, buildErr = os.MkdirTemp("", "maxine-bench-test-")
		if buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		builtMaxine, buildErr = BuildMaxine(ctx, testBinDir)
	})
	if buildErr != nil {
		t.Fatalf("cannot build maxine for the bench tests: %v", buildErr)
	}
	return builtMaxine
}

// environOf returns the environment process pid was started with.
func environOf(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range splitNUL(b) {
		for i := range len(kv) {
			if kv[i] == '=' {
				env[kv[:i]] = kv[i+1:]
				break
			}
		}
	}
	return env
}

func splitNUL(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	return out
}
