package persistence

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maxine-io/maxine/registry"
)

// ReapBatch bounds the nodes one Reap call expires, so that one script
// never blocks Redis for long; the leader calls Reap again while it
// returns ReapBatch.
const ReapBatch = 1000

// fencedError maps a fenced write's error: a rejected fencing token wraps
// ErrFenced (and keeps the runner's own error in the chain), anything else
// is the store being unavailable.
func (s *Redis) fencedError(what string, err error) error {
	if redis.HasErrorPrefix(err, "FENCED") || strings.Contains(strings.ToLower(err.Error()), "fenced") {
		return fmt.Errorf("%s: %w: %w", what, ErrFenced, err)
	}
	s.storeErrors.Add(1)
	e := fmt.Errorf("%s: %w: %s: %w", what, ErrStoreUnavailable, s.addr, err)
	s.setUp(false, e)
	return e
}

// Reap expires, as the leader, up to ReapBatch nodes of the shared registry
// whose deadline is at or before now: they are removed from Redis, their
// services' versions bumped and their removal (kind "expired") published,
// all in one script that fenced runs only while this instance's fencing
// token is current. A stale leader gets an error wrapping ErrFenced and
// changes nothing. The removals are applied to the local registry at once;
// other instances apply the published ones. It returns how many nodes
// expired.
func (s *Redis) Reap(ctx context.Context, now time.Time, fenced FencedFunc) (int, error) {
	keys := []string{s.keys.expiry, s.keys.versions, s.keys.services, s.keys.epoch}
	res, err := fenced(ctx, reapScript, keys, now.UnixMilli(), ReapBatch, s.keys.svcPrefix,
		s.keys.channel, s.origin, time.Now().UnixMicro())
	if err != nil {
		return 0, s.fencedError("reap", err)
	}
	s.setUp(true, nil)
	vals, _ := res.([]any)
	n := 0
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	for i := 0; i+2 < len(vals); i += 3 {
		svc, _ := vals[i].(string)
		node, _ := vals[i+1].(string)
		version, _ := vals[i+2].(int64)
		s.applyVersionedLocked(svc, version, func() { s.reg.Remove(svc, node, "", registry.NodeExpired) })
		n++
	}
	return n, nil
}

// SaveConfig replaces the shared runtime configuration, as the leader,
// through fenced, and tells the other instances (their OnConfig runs).
func (s *Redis) SaveConfig(ctx context.Context, data []byte, fenced FencedFunc) error {
	keys := []string{s.keys.config, s.keys.configVersion}
	res, err := fenced(ctx, configScript, keys, data, s.keys.channel, s.origin, time.Now().UnixMicro())
	if err != nil {
		return s.fencedError("save config", err)
	}
	s.setUp(true, nil)
	if v, ok := res.(int64); ok {
		s.configMu.Lock()
		s.configVersion = max(s.configVersion, v)
		s.configMu.Unlock()
	}
	return nil
}

// LoadConfig returns the shared runtime configuration, or nil when none
// was saved yet.
func (s *Redis) LoadConfig(ctx context.Context) ([]byte, error) {
	data, version, err := s.readConfig(ctx)
	if err != nil {
		return nil, err
	}
	s.configMu.Lock()
	s.configVersion = max(s.configVersion, version)
	s.configMu.Unlock()
	return data, nil
}

func (s *Redis) readConfig(ctx context.Context) ([]byte, int64, error) {
	pipe := s.client.TxPipeline()
	dataCmd := pipe.Get(ctx, s.keys.config)
	verCmd := pipe.Get(ctx, s.keys.configVersion)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, s.unavailable(err)
	}
	data, err := dataCmd.Bytes()
	if errors.Is(err, redis.Nil) {
		data = nil
	}
	version, _ := verCmd.Int64()
	return data, version, nil
}

// syncConfig calls OnConfig when the shared configuration is newer than the
// one this instance saved or last saw.
func (s *Redis) syncConfig(ctx context.Context) error {
	if s.o.OnConfig == nil {
		return nil
	}
	data, version, err := s.readConfig(ctx)
	if err != nil {
		return err
	}
	s.configMu.Lock()
	newer := version > s.configVersion
	if newer {
		s.configVersion = version
	}
	s.configMu.Unlock()
	if newer && data != nil {
		s.o.OnConfig(data)
	}
	return nil
}
