package persistence

import (
	"time"

	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/registry"
)

// Restore loads f and applies it: the saved settings through st.Update (when
// the file has settings and st is not nil) and the nodes through
// reg.Restore, which skips nodes already expired at now (and any that fail
// validation) and keeps each node's registeredAt and expiry deadline. It
// returns the restored and skipped node counts and the Load error. A
// *CorruptError is not fatal: the file was moved aside, nothing was applied,
// and the caller logs it and goes on empty. Any other error means the file
// is still in place and must not be overwritten.
//
// Call it before the listeners accept traffic (SPEC 6).
func Restore(f *LocalFile, reg *registry.Registry, st *config.Store, now time.Time) (restored, skipped int, err error) {
	s, err := f.Load()
	if err != nil {
		return 0, 0, err
	}
	if s.Settings != nil && st != nil {
		saved := *s.Settings
		st.Update(func(c *config.Settings) { *c = saved })
	}
	restored, skipped = reg.Restore(s.Nodes, now)
	return restored, skipped, nil
}
