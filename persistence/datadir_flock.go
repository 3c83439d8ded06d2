//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package persistence

// noFlock reports whether err says this system has no flock(2).
func noFlock(error) bool { return false }
