package persistence

import (
	"time"

	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/registry"
)

// RestoreReport says what Restore did with the state file.
type RestoreReport struct {
	Restored int // nodes registered from the file
	Skipped  int // nodes already expired at now, or over the registry's limits
	// Invalid lists the node entries left out because they could not be
	// decoded or failed validation; every other node was restored.
	Invalid []InvalidEntry
	// Settings says why the saved runtime settings were not applied
	// (defaults, or what the store held, stay in force); nil when they
	// were applied or the file had none.
	Settings error
	// Backup is a copy of the file kept because something in it was left
	// out ("" otherwise): the next write drops the invalid entries.
	Backup string
}

// Restore loads f and applies it: the saved settings through st.Update (when
// the file has valid settings and st is not nil) and the valid nodes
// through reg.Restore, which skips nodes already expired at now and keeps
// each node's registeredAt and expiry deadline. Invalid entries are skipped
// one by one and reported, never the whole file for them; when any were,
// a copy of the file is kept (RestoreReport.Backup). The error is the Load
// error: a *CorruptError is not fatal (the file was moved aside, nothing
// was applied, the caller logs it and goes on empty); any other error
// means the file is still in place and must not be overwritten.
//
// Call it before the listeners accept traffic (SPEC 6).
func Restore(f *LocalFile, reg *registry.Registry, st *config.Store, now time.Time) (RestoreReport, error) {
	s, err := f.Load()
	if err != nil {
		return RestoreReport{}, err
	}
	rep := RestoreReport{Invalid: s.Invalid, Settings: s.SettingsErr}
	if s.Settings != nil && st != nil {
		saved := *s.Settings
		st.Update(func(c *config.Settings) { *c = saved })
	}
	rep.Restored, rep.Skipped = reg.Restore(s.Nodes, now)
	if len(rep.Invalid) > 0 || rep.Settings != nil {
		rep.Backup, _ = f.keepCopy() // best effort: the report still names what was skipped
	}
	return rep, nil
}
