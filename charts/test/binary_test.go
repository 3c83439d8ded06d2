package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// maxineBin is the real binary: $MAXINE_BIN (make passes bin/maxine), or
// built from the repository by TestMain.
var maxineBin string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		maxineBin = os.Getenv("MAXINE_BIN")
		if maxineBin == "" {
			dir, err := os.MkdirTemp("", "maxine-chart-test-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			maxineBin = filepath.Join(dir, "maxine")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "go", "build", "-o", maxineBin, "./cmd/maxine")
			cmd.Dir = "../.."
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "building maxine: %v\n%s", err, out)
				return 1
			}
		} else if abs, err := filepath.Abs(maxineBin); err == nil {
			maxineBin = abs
		}
		return m.Run()
	}())
}

var helpEnvRE = regexp.MustCompile(`(?m)\[(MAXINE_[A-Z0-9_]+)\]|^  ((?:MAXINE_[A-Z0-9_]+)|PORT)$`)

// helpEnvNames runs `maxine --help` and returns every environment name it
// lists (flags' [ENV] and the environment-only section).
func helpEnvNames(t testing.TB) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, maxineBin, "--help")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("maxine --help: %v\n%s", err, out.String())
	}
	names := map[string]bool{}
	for _, m := range helpEnvRE.FindAllStringSubmatch(out.String(), -1) {
		names[m[1]+m[2]] = true
	}
	if len(names) < 20 || !names["MAXINE_ADMIN_ADDR"] || !names["MAXINE_JWT_SECRET"] {
		t.Fatalf("maxine --help lists too few settings (%d); the parser is off:\n%s", len(names), out.String())
	}
	return names
}
