package registry

import "time"

// NodeState is one registered node as persisted: its registration, its last
// registration time and its expiry deadline (both ms since the epoch).
type NodeState struct {
	Registration
	RegisteredAt int64 `json:"registeredAt"`
	ExpiresAt    int64 `json:"expiresAt"`
}

// Export returns every registered node. It holds the writer lock only while
// copying.
func (r *Registry) Export() []NodeState {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]NodeState, 0, r.nodes)
	for _, p := range r.expiry {
		out = append(out, NodeState{
			Registration: p.reg,
			RegisteredAt: p.registeredAt.Load(),
			ExpiresAt:    time.Unix(0, p.deadline).UnixMilli(),
		})
	}
	return out
}

// Restore applies persisted nodes, skipping those already expired at now or
// failing validation. It returns how many were restored and skipped.
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
		if _, err := r.apply(reg, time.UnixMilli(st.RegisteredAt), deadline); err != nil {
			skipped++
			continue
		}
		restored++
	}
	return restored, skipped
}
