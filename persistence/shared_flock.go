//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package persistence

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// sharedFlock takes an exclusive flock(2) on f without waiting. It reports
// false when another open file description holds the lock. The kernel
// releases a flock when the last descriptor of its open file description
// is closed, which includes the death of the process (kill -9): a crashed
// instance never leaves the lock behind, unlike a lock directory or a PID
// file.
func sharedFlock(f *os.File) (bool, error) {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return false, nil
		default:
			return false, err
		}
	}
}

// sharedUnflock releases the lock taken by sharedFlock.
func sharedUnflock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}

// sharedFileID identifies one version of a file that is replaced by
// rename: the inode changes with every replacement, size and mtime guard
// against an inode number being reused.
type sharedFileID struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

func sharedIdentity(fi fs.FileInfo) sharedFileID {
	id := sharedFileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), uint64(st.Ino)
	}
	return id
}
