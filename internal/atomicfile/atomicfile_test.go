package atomicfile

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.json")
	write := func(s string) func(*bufio.Writer) error {
		return func(w *bufio.Writer) error { _, err := w.WriteString(s); return err }
	}
	if err := Write(path, Options{}, write("one")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "one" {
		t.Fatalf("content %q", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	tests := []struct {
		name string
		o    Options
		fn   func(*bufio.Writer) error
	}{
		{"write error", Options{}, func(*bufio.Writer) error { return errors.New("boom") }},
		{"hook error", Options{BeforeRename: func(string) error { return errors.New("no") }}, write("two")},
	}
	for _, tc := range tests {
		if err := Write(path, tc.o, tc.fn); err == nil {
			t.Fatalf("%s: no error", tc.name)
		}
		if b, _ := os.ReadFile(path); string(b) != "one" {
			t.Fatalf("%s: old content lost: %q", tc.name, b)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, TempPattern(path))); len(left) != 0 {
			t.Fatalf("%s: temporary files left: %v", tc.name, left)
		}
	}
	// A target that is a directory cannot be replaced.
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o700)
	if err := Write(sub, Options{}, write("x")); err == nil {
		t.Fatal("replaced a directory")
	}
}
