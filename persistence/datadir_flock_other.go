//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package persistence

import "errors"

// noFlock reports whether err says this system has no flock(2).
func noFlock(err error) bool { return errors.Is(err, errSharedNoFlock) }
