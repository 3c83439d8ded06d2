package persistence

import (
	"errors"
	"strings"
	"testing"
)

// A second lock on a held data dir fails at once and names the holder;
// closing the first frees it.
func TestLockDataDir(t *testing.T) {
	dir := t.TempDir()
	first, err := LockDataDir(dir, "pid 1, instance a, admin 127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockDataDir(dir, "pid 2")
	var locked *DataDirLockedError
	if !errors.As(err, &locked) || locked.Holder != "pid 1, instance a, admin 127.0.0.1:1" || !strings.Contains(err.Error(), "pid 1") {
		t.Fatalf("second lock: %v", err)
	}
	first.Close()
	second, err := LockDataDir(dir, "pid 2")
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	second.Close()
}
