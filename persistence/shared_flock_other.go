//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package persistence

import (
	"errors"
	"io/fs"
	"os"
	"runtime"
)

var errSharedNoFlock = errors.New("the shared-file state mode needs flock(2), which " + runtime.GOOS + " does not have")

func sharedFlock(*os.File) (bool, error) { return false, errSharedNoFlock }

func sharedUnflock(*os.File) error { return errSharedNoFlock }

type sharedFileID struct {
	size  int64
	mtime int64
}

func sharedIdentity(fi fs.FileInfo) sharedFileID {
	return sharedFileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
}
