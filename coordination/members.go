package coordination

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Member is one live instance as published in <prefix>:members.
type Member struct {
	InstanceID, AdminAddr, GatewayAddr string
	// StartedAt is when the instance's Run started; LastSeen when it last
	// refreshed its record; ExpiresAt when the record goes stale (LastSeen +
	// its LeaseTTL) unless refreshed.
	StartedAt, LastSeen, ExpiresAt time.Time
	// Leader is true for the instance that held the lease when read.
	Leader bool
}

// memberRecord is a member's JSON in the hash; times are Unix ms.
type memberRecord struct {
	InstanceID  string `json:"instanceId"`
	AdminAddr   string `json:"adminAddr"`
	GatewayAddr string `json:"gatewayAddr"`
	StartedAt   int64  `json:"startedAt"`
	LastSeen    int64  `json:"lastSeen"`
	ExpiresAt   int64  `json:"expiresAt"`
}

// refreshMember writes this instance's record, valid for one LeaseTTL.
func (l *Lease) refreshMember(ctx context.Context) {
	now := l.now()
	b, err := json.Marshal(memberRecord{
		InstanceID: l.o.InstanceID, AdminAddr: l.o.AdminAddr, GatewayAddr: l.o.GatewayAddr,
		StartedAt: l.startedAt.UnixMilli(), LastSeen: now.UnixMilli(),
		ExpiresAt: now.Add(l.o.LeaseTTL).UnixMilli(),
	})
	if err != nil {
		l.log.Error().Err(err).Msg("coordination: encode membership record")
		return
	}
	cctx, cancel := l.opContext(ctx, now)
	defer cancel()
	if err := l.o.Client.HSet(cctx, l.member, l.o.InstanceID, b).Err(); err != nil && ctx.Err() == nil {
		l.redisError("members", err)
	}
}

// Members returns the live instances sorted by InstanceID, reading from
// Redis; records that expired by this instance's clock are deleted on the
// way (a member's expiry is judged by the reader's clock, so clocks should
// agree to well within a LeaseTTL).
func (l *Lease) Members(ctx context.Context) ([]Member, error) {
	res, err := membersScript.Run(ctx, l.o.Client, []string{l.member, l.leader}, l.now().UnixMilli()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("coordination: read members: %w", err)
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("coordination: read members: empty reply")
	}
	var leader leaderRecord
	if res[0] != "" {
		_ = json.Unmarshal([]byte(res[0]), &leader)
	}
	out := make([]Member, 0, len(res)-1)
	for _, raw := range res[1:] {
		var r memberRecord
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			continue // the script already dropped unreadable records
		}
		out = append(out, Member{
			InstanceID: r.InstanceID, AdminAddr: r.AdminAddr, GatewayAddr: r.GatewayAddr,
			StartedAt: time.UnixMilli(r.StartedAt), LastSeen: time.UnixMilli(r.LastSeen),
			ExpiresAt: time.UnixMilli(r.ExpiresAt),
			Leader:    leader.InstanceID != "" && r.InstanceID == leader.InstanceID,
		})
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.InstanceID, b.InstanceID) })
	return out, nil
}
