package registry

import "time"

// NodeState is one registered node as persisted: its registration, its last
// registration time and its expiry deadline (both ms since the epoch).
type NodeState struct {
	Registration
	RegisteredAt int64 `json:"registeredAt"`
	ExpiresAt    int64 `json:"expiresAt"`
}

// Export returns every registered node. It reads the published snapshots
// and atomics only and takes no lock, so persisting a large registry never stalls
// registrations; each service is exported as one consistent snapshot (a
// heartbeat landing during the export may be seen half: its new
// registration time with the previous deadline, which the next write
// corrects).
func (r *Registry) Export() []NodeState {
	out := make([]NodeState, 0, r.Len())
	r.Range(func(s *Snapshot) bool {
		for _, n := range s.Parents {
			out = append(out, NodeState{
				Registration: n.p.reg,
				RegisteredAt: n.p.registeredAt.Load(),
				ExpiresAt:    n.p.expiresAt.Load(),
			})
		}
		return true
	})
	return out
}

// Restore applies persisted nodes, skipping those already expired at now or
// failing validation. It returns how many were restored and skipped. A
// saved deadline is trusted only up to now + timeOut + ExpiryGrace: a file
// edited by hand, or written by a clock that was wrong, must not keep a
// node alive for longer than one missed heartbeat would.
func (r *Registry) Restore(states []NodeState, now time.Time) (restored, skipped int) {
	for i := range states {
		st := &states[i]
		deadline := time.UnixMilli(st.ExpiresAt)
		if !deadline.After(now) {
			skipped++
			continue
		}
		reg := st.Registration
		if err := reg.Validate(); err != nil {
			skipped++
			continue
		}
		reg.normalize()
		if limit := now.Add(time.Duration(reg.TimeOut)*time.Second + ExpiryGrace); deadline.After(limit) {
			deadline = limit
		}
		r.mu.Lock()
		_, err := r.applyLocked(reg, time.UnixMilli(st.RegisteredAt), deadline)
		r.mu.Unlock()
		if err != nil {
			skipped++
			continue
		}
		restored++
	}
	return restored, skipped
}
