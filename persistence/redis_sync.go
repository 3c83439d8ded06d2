package persistence

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maxine-io/maxine/registry"
)

const (
	// gapCheckInterval is how often services with missing versions are
	// looked at; gapGrace is how long missing versions may take to arrive
	// before the service is reloaded from Redis. A pipeline reply can
	// overtake the publish of an earlier change by another instance, so a
	// gap is not proof of a lost message at first sight.
	gapCheckInterval = 250 * time.Millisecond
	gapGrace         = 500 * time.Millisecond
	// reloadChunk bounds the services read in one MULTI.
	reloadChunk = 64
	// seedChunk bounds the nodes written back in one pipeline.
	seedChunk = 256
)

// redisMessage is one change published on <prefix>:events.
type redisMessage struct {
	Op      string              `json:"op"` // "upsert", "remove", "config"
	Service string              `json:"service"`
	Node    string              `json:"node"`
	Kind    string              `json:"kind"` // for "remove": "deregistered" or "expired"
	Origin  string              `json:"origin"`
	At      int64               `json:"at"` // publish time, µs since the epoch
	Version int64               `json:"version"`
	Epoch   string              `json:"epoch"`
	State   *registry.NodeState `json:"state"`
}

// subscriber applies published changes until ctx ends. go-redis reconnects
// and subscribes again after a lost connection; every (re)subscription
// triggers a full resync, since messages published meanwhile are lost.
func (s *Redis) subscriber(ctx context.Context) {
	ps := s.client.Subscribe(ctx, s.keys.channel)
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	defer ps.Close()
	backoff := 100 * time.Millisecond
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.storeErrors.Add(1)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				s.subscribed.Store(true)
				s.triggerResync()
			}
		case *redis.Message:
			s.handleMessage(m.Payload)
		}
	}
}

// handleMessage applies one published change.
func (s *Redis) handleMessage(payload string) {
	if s.unsubscribed.Load() {
		return
	}
	var m redisMessage
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		s.log.Warn().Err(err).Msg("redis store: undecodable change message; resyncing")
		s.triggerResync()
		return
	}
	switch m.Op {
	case "health":
		s.handleHealthMessage(payload)
		return
	case "config":
		if m.Origin != s.o.InstanceID {
			select {
			case s.configNow <- struct{}{}:
			default:
			}
		}
		return
	case "upsert":
		if m.State == nil {
			s.triggerResync()
			return
		}
	case "remove":
	default:
		return
	}
	s.applyMu.Lock()
	if m.Epoch != s.epoch {
		s.applyMu.Unlock()
		s.triggerResync()
		return
	}
	applied := s.applyVersionedLocked(m.Service, m.Version, func() {
		if m.Op == "upsert" {
			if _, err := s.reg.Upsert(*m.State); err != nil {
				s.log.Warn().Err(err).Str("service", m.Service).Str("node", m.Node).Msg("redis store: replicated registration refused")
			}
			return
		}
		kind := registry.NodeDeregistered
		if m.Kind == "expired" {
			kind = registry.NodeExpired
		}
		s.reg.Remove(m.Service, m.Node, "", kind)
	})
	s.applyMu.Unlock()
	if applied && m.Origin != s.o.InstanceID {
		s.remoteChanges.Add(1)
		if m.At > 0 {
			s.lastLag.Store(int64(time.Since(time.UnixMicro(m.At))))
		}
	}
}

// resyncLoop runs the periodic resync, the resyncs asked for by the other
// goroutines, gap healing and config updates until ctx ends.
func (s *Redis) resyncLoop(ctx context.Context) {
	full := time.NewTicker(s.o.ResyncInterval)
	defer full.Stop()
	gaps := time.NewTicker(gapCheckInterval)
	defer gaps.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-full.C:
			_ = s.fullResync(ctx, false)
		case <-s.resyncNow:
			_ = s.fullResync(ctx, false)
		case <-gaps.C:
			_ = s.healGaps(ctx)
		case <-s.configNow:
			_ = s.syncConfig(ctx)
		}
	}
}

// healGaps reloads the services whose missing versions did not arrive in
// gapGrace.
func (s *Redis) healGaps(ctx context.Context) error {
	var names []string
	s.applyMu.Lock()
	for svc, g := range s.gaps {
		if s.applied[svc] >= g.want {
			delete(s.gaps, svc)
		} else if time.Since(g.since) >= gapGrace {
			names = append(names, svc)
		}
	}
	s.applyMu.Unlock()
	if len(names) == 0 {
		return nil
	}
	return s.reloadServices(ctx, names)
}

// fullResync compares every service's version in Redis with the applied
// one and reloads those that differ; local services Redis does not know
// are reloaded too (and so emptied). A changed epoch means Redis lost its
// data: this instance writes its live nodes back first (reseed).
func (s *Redis) fullResync(ctx context.Context, initial bool) error {
	reloadAll := false
	for range 2 {
		pipe := s.client.TxPipeline()
		epochCmd := pipe.Get(ctx, s.keys.epoch)
		versCmd := pipe.HGetAll(ctx, s.keys.versions)
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return s.unavailable(err)
		}
		epoch := epochCmd.Val()
		s.applyMu.Lock()
		known := s.epoch
		s.applyMu.Unlock()
		if epoch != known && !initial {
			if err := s.reseed(ctx); err != nil {
				return err
			}
			// Read the versions of the new epoch and reload every
			// service: the applied versions were forgotten, and the
			// instance's own written-back nodes may already have been
			// applied from their messages, so equal versions prove
			// nothing about nodes that were not written back.
			reloadAll = true
			continue
		}
		s.setUp(true, nil)
		var names []string
		s.applyMu.Lock()
		for svc, v := range s.readVersions(versCmd.Val()) {
			if v != s.applied[svc] || reloadAll {
				names = append(names, svc)
			}
		}
		s.applyMu.Unlock()
		vers := versCmd.Val()
		s.reg.Range(func(snap *registry.Snapshot) bool {
			if _, ok := vers[snap.Service]; !ok {
				names = append(names, snap.Service)
			}
			return true
		})
		if err := s.reloadServices(ctx, names); err != nil {
			return err
		}
		if s.o.OnConfig != nil {
			return s.syncConfig(ctx)
		}
		return nil
	}
	return nil
}

func (s *Redis) readVersions(m map[string]string) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		n, _ := strconv.ParseInt(v, 10, 64)
		out[k] = n
	}
	return out
}

// reloadServices reads each service's version and nodes atomically and
// makes the local service equal to it, unless the local service has
// already applied a newer version meanwhile.
func (s *Redis) reloadServices(ctx context.Context, names []string) error {
	for len(names) > 0 {
		chunk := names[:min(len(names), reloadChunk)]
		names = names[len(chunk):]
		pipe := s.client.TxPipeline()
		verCmds := make([]*redis.StringCmd, len(chunk))
		nodeCmds := make([]*redis.MapStringStringCmd, len(chunk))
		for i, svc := range chunk {
			verCmds[i] = pipe.HGet(ctx, s.keys.versions, svc)
			nodeCmds[i] = pipe.HGetAll(ctx, s.keys.svc(svc))
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return s.unavailable(err)
		}
		for i, svc := range chunk {
			version, _ := verCmds[i].Int64()
			raw := nodeCmds[i].Val()
			states := make(map[string]*registry.NodeState, len(raw))
			for node, js := range raw {
				st := new(registry.NodeState)
				if err := json.Unmarshal([]byte(js), st); err != nil {
					s.log.Warn().Err(err).Str("service", svc).Str("node", node).Msg("redis store: undecodable node state skipped")
					continue
				}
				states[node] = st
			}
			s.applyReload(svc, version, states)
		}
	}
	return nil
}

// applyReload makes the local service svc equal to states at version.
func (s *Redis) applyReload(svc string, version int64, states map[string]*registry.NodeState) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	applied := s.applied[svc]
	if version < applied {
		return // a newer change was applied while the service was read
	}
	s.resyncs.Add(1)
	for _, st := range states {
		if _, err := s.reg.Upsert(*st); err != nil {
			s.log.Warn().Err(err).Str("service", svc).Str("node", st.NodeName).Msg("redis store: stored registration refused")
		}
	}
	if snap := s.reg.Snapshot(svc); snap != nil {
		for _, p := range snap.Parents {
			if _, ok := states[p.Parent]; !ok {
				s.reg.Remove(svc, p.Parent, "", registry.NodeDeregistered)
			}
		}
	}
	if version == 0 {
		delete(s.applied, svc)
	} else {
		s.applied[svc] = version
	}
	if g, ok := s.gaps[svc]; ok && version >= g.want {
		delete(s.gaps, svc)
	}
}

// reseed writes this instance's live nodes back to a Redis that lost its
// data, then adopts the new epoch and forgets the applied versions (the
// new epoch counts from scratch). Nodes whose deadline has passed are not
// written: a node that stopped heartbeating during the outage must not
// come back. Nodes Redis already has (registered again, or written back by
// another instance) are left as they are.
func (s *Redis) reseed(ctx context.Context) error {
	epoch, err := s.ensureEpoch(ctx)
	if err != nil {
		return s.unavailable(err)
	}
	now := s.now().UnixMilli()
	states := s.reg.Export()
	written := 0
	calls := make([]*scriptCall, 0, seedChunk)
	for len(states) > 0 {
		chunk := states[:min(len(states), seedChunk)]
		states = states[len(chunk):]
		calls = calls[:0]
		for i := range chunk {
			if chunk[i].ExpiresAt <= now {
				continue
			}
			c := new(scriptCall)
			if err := s.upsertCall(c, &chunk[i], seedScript); err != nil {
				continue
			}
			calls = append(calls, c)
		}
		if len(calls) == 0 {
			continue
		}
		s.runPipeline(ctx, calls)
		for _, c := range calls {
			if c.err != nil {
				return s.unavailable(c.err)
			}
			if n, _ := c.cmd.Int64(); n == 1 {
				written++
			}
		}
	}
	s.reseeded.Add(uint64(written))
	s.applyMu.Lock()
	old := s.epoch
	s.epoch = epoch
	clear(s.applied)
	clear(s.gaps)
	s.applyMu.Unlock()
	s.log.Warn().Str("store", s.addr).Str("oldEpoch", old).Str("epoch", epoch).Int("written", written).
		Msg("redis store: Redis lost the shared registry; live local nodes written back")
	return nil
}
