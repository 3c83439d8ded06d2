package persistence

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Shared health (SPEC 4: "only the leader probes when clustered; health
// state is shared"). The leader's active health checks decide; each
// verdict change is written, fenced, to <prefix>:health (a hash holding
// only the nodes found unhealthy: "<service>\n<node>" → verdict JSON) and
// published as an op "health" message. Followers apply the message to
// their gateway at once, and every resync interval reconcile with the hash
// (a missed "healthy again" message cannot leave a node out of rotation).

// HealthVerdict is the leader's verdict on one registration.
type HealthVerdict struct {
	Service string `json:"service"`
	Node    string `json:"node"`
	Address string `json:"address"`
	Healthy bool   `json:"healthy"`
	At      int64  `json:"at"` // ms since the epoch
}

// healthScript (fenced) records a verdict and publishes it.
// KEYS: 3 health hash. ARGV: 3 field, 4 verdict JSON, 5 healthy "1"/"0",
// 6 channel, 7 message.
var healthScript = redis.NewScript(healthSource)

const healthSource = `
if ARGV[5] == '1' then
  redis.call('HDEL', KEYS[3], ARGV[3])
else
  redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
`

func (s *Redis) healthKey() string {
	return strings.TrimSuffix(s.keys.versions, ":versions") + ":health"
}

// SaveHealth records the leader's verdict on a node through fenced (only
// a current leader's verdicts are taken) and tells the other instances.
func (s *Redis) SaveHealth(ctx context.Context, v HealthVerdict, fenced FencedFunc) error {
	if v.At == 0 {
		v.At = time.Now().UnixMilli()
	}
	verdict, err := json.Marshal(v)
	if err != nil {
		return err
	}
	msg, err := json.Marshal(struct {
		Op     string        `json:"op"`
		Origin string        `json:"origin"`
		Health HealthVerdict `json:"health"`
	}{"health", s.o.InstanceID, v})
	if err != nil {
		return err
	}
	healthy := "0"
	if v.Healthy {
		healthy = "1"
	}
	_, err = fenced(ctx, healthScript, []string{s.healthKey()}, v.Service+"\n"+v.Node, string(verdict), healthy, s.keys.channel, string(msg))
	if err != nil {
		return s.fencedError("save health", err)
	}
	return nil
}

// LoadHealth returns the nodes the leader last found unhealthy.
func (s *Redis) LoadHealth(ctx context.Context) ([]HealthVerdict, error) {
	m, err := s.client.HGetAll(ctx, s.healthKey()).Result()
	if err != nil {
		return nil, s.unavailable(fmt.Errorf("load health: %w", err))
	}
	out := make([]HealthVerdict, 0, len(m))
	for _, raw := range m {
		var v HealthVerdict
		if json.Unmarshal([]byte(raw), &v) == nil {
			out = append(out, v)
		}
	}
	return out, nil
}

// handleHealthMessage passes another instance's verdict to OnHealth.
func (s *Redis) handleHealthMessage(payload string) {
	if s.o.OnHealth == nil {
		return
	}
	var m struct {
		Origin string        `json:"origin"`
		Health HealthVerdict `json:"health"`
	}
	if json.Unmarshal([]byte(payload), &m) != nil || m.Origin == s.o.InstanceID {
		return
	}
	s.o.OnHealth(m.Health)
}
