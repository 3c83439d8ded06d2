package observe

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The file rotates by size, keeps Keep old files, and never splits a line.
func TestRotatingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	r, err := OpenRotatingFile(path, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	for i := 0; i < 40; i++ {
		line := []byte("line " + strconv.Itoa(i) + strings.Repeat(".", i%7) + "\n")
		all.Write(line)
		if n, err := r.Write(line); err != nil || n != len(line) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	// Several lines in one Write are split between files at a line end.
	batch := []byte(strings.Repeat("batch-line-xxxxxxxxxxxxxx\n", 6)) // 156 bytes
	all.Write(batch)
	if n, err := r.Write(batch); err != nil || n != len(batch) {
		t.Fatalf("Write(batch) = %d, %v", n, err)
	}
	// A line longer than the limit gets a file of its own.
	long := []byte(strings.Repeat("L", 150) + "\n")
	all.Write(long)
	if _, err := r.Write(long); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	var kept []byte
	for _, name := range []string{path + ".2", path + ".1", path} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(b) == 0 || b[len(b)-1] != '\n' || (len(b) > 100 && bytes.Count(b, []byte{'\n'}) != 1) {
			t.Fatalf("%s: %d bytes, a split line or over the limit:\n%s", name, len(b), b)
		}
		kept = append(kept, b...)
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Fatal("more than 2 rotated files kept")
	}
	if !bytes.HasSuffix(all.Bytes(), kept) {
		t.Fatalf("the kept files are not the tail of what was written:\n%s", kept)
	}
	// Reopening appends to the existing file and counts its size.
	r, _ = OpenRotatingFile(path, 200, 2)
	defer r.Close()
	if r.size != int64(len(long)) {
		t.Fatalf("reopened size %d", r.size)
	}
}
