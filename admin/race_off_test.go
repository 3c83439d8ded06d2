//go:build !race

package admin

// raceDetector reports a -race build: allocation counts mean nothing there.
const raceDetector = false
