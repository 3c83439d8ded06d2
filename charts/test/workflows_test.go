package test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rhysd/actionlint"
)

// TestWorkflowsLint runs actionlint (with shellcheck on the run: scripts)
// on every workflow. They cannot run here; this is what can be checked.
func TestWorkflowsLint(t *testing.T) {
	files, err := filepath.Glob("../../.github/workflows/*.y*ml")
	if err != nil || len(files) < 2 {
		t.Fatalf("workflows: %v %v (want ci.yml and release.yml)", files, err)
	}
	shellcheck, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Fatal("shellcheck not found: `make chart-deps` installs Debian's shellcheck")
	}
	var out bytes.Buffer
	l, err := actionlint.NewLinter(&out, &actionlint.LinterOptions{Shellcheck: shellcheck, Color: actionlint.ColorOptionKindNever})
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.LintFiles(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) > 0 {
		t.Errorf("actionlint: %d problems:\n%s", len(errs), out.String())
	}
	t.Logf("actionlint: %d workflow files clean", len(files))
}
