package persistence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maxine-io/maxine/registry"
)

// maxBatch bounds the registrations sent in one pipeline. The writer never
// waits to fill a batch: it takes whatever callers are ready, so a lone
// registration goes out at once and a storm is carried in a few round trips.
const maxBatch = 256

// errNotRunning is returned by Register and Deregister outside Run.
var errNotRunning = errors.New("persistence: the Redis store is not running")

// startWait bounds how long a write made before Run started waits for it.
const startWait = 5 * time.Second

// scriptCall is one script invocation in a pipeline and its outcome.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
	err    error
}

type opKind uint8

const (
	opRegister opKind = iota + 1
	opDeregister
)

// writeOp is one Register or Deregister waiting for the writer. The writer
// fills the result fields and then signals done; the caller reads them only
// after that.
type writeOp struct {
	call    scriptCall
	kind    opKind
	service string
	node    string
	state   registry.NodeState // opRegister

	res     registry.Result // opRegister
	removed bool            // opDeregister
	err     error
	done    chan struct{} // capacity 1
}

var writeOpPool = sync.Pool{New: func() any { return &writeOp{done: make(chan struct{}, 1)} }}

// Register writes a registration or heartbeat to Redis and, once Redis
// took it, applies it to the local registry. It returns a
// *registry.ValidationError for an invalid registration and an error
// wrapping ErrStoreUnavailable when Redis cannot be reached or did not
// take the write (nothing was then applied locally). It implements the
// admin's Registrar together with Deregister.
func (s *Redis) Register(ctx context.Context, reg registry.Registration) (registry.Result, error) {
	if err := reg.Validate(); err != nil {
		return registry.Result{}, err
	}
	canonicalRegistration(&reg)
	now := s.now()
	st := registry.NodeState{
		Registration: reg,
		RegisteredAt: now.UnixMilli(),
		ExpiresAt:    now.Add(time.Duration(reg.TimeOut)*time.Second + registry.ExpiryGrace).UnixMilli(),
	}
	op := writeOpPool.Get().(*writeOp)
	op.kind, op.service, op.node, op.state = opRegister, reg.ServiceName, reg.NodeName, st
	if err := s.upsertCall(&op.call, &st, registerScript); err != nil {
		op.reset()
		return registry.Result{}, err
	}
	if err := s.submit(ctx, op); err != nil {
		op.reset()
		return registry.Result{}, err
	}
	res, err := op.res, op.err
	op.reset()
	return res, err
}

// Deregister removes a node from Redis and then from the local registry.
// It reports whether the node existed; errors are as for Register.
func (s *Redis) Deregister(ctx context.Context, service, node string) (bool, error) {
	if service == "" || node == "" {
		return false, nil
	}
	op := writeOpPool.Get().(*writeOp)
	op.kind, op.service, op.node = opDeregister, service, node
	head := `{"op":"remove","service":` + jsonString(service) + `,"node":` + jsonString(node) +
		`,"kind":"deregistered","origin":` + s.origin + `,"at":` + strconv.FormatInt(time.Now().UnixMicro(), 10)
	op.call = scriptCall{
		script: deregisterScript,
		keys:   s.nodeKeys(service),
		args:   []any{service, node, expiryMember(service, node), s.keys.channel, head},
	}
	if err := s.submit(ctx, op); err != nil {
		op.reset()
		return false, err
	}
	removed, err := op.removed, op.err
	op.reset()
	return removed, err
}

func (op *writeOp) reset() {
	done := op.done
	*op = writeOp{done: done}
	writeOpPool.Put(op)
}

// submit hands op to the writer and waits for its result. Once the writer
// took op it always completes it (bounded by the client's timeouts), so the
// caller waits for that even if ctx ends: the write may have reached Redis.
func (s *Redis) submit(ctx context.Context, op *writeOp) error {
	if !s.running.Load() {
		// The listeners may open a moment before Run's goroutine is
		// scheduled: a registration arriving then waits for it (briefly),
		// rather than failing.
		t := time.NewTimer(startWait)
		select {
		case <-s.started:
			t.Stop()
		case <-t.C:
			return errNotRunning
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	select {
	case s.writes <- op:
	case <-s.stopped:
		return errNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	<-op.done
	return nil
}

// nodeKeys are the KEYS of the register, seed and deregister scripts.
func (s *Redis) nodeKeys(service string) []string {
	return []string{s.keys.svc(service), s.keys.versions, s.keys.services, s.keys.expiry, s.keys.epoch}
}

func expiryMember(service, node string) string { return service + "\n" + node }

// upsertCall prepares a register or seed script call for st.
func (s *Redis) upsertCall(c *scriptCall, st *registry.NodeState, script *redis.Script) error {
	regPart, state, err := encodeNodeState(st)
	if err != nil {
		return err
	}
	svc, node := st.ServiceName, st.NodeName
	head := `{"op":"upsert","service":` + jsonString(svc) + `,"node":` + jsonString(node) +
		`,"origin":` + s.origin + `,"at":` + strconv.FormatInt(time.Now().UnixMicro(), 10)
	*c = scriptCall{
		script: script,
		keys:   s.nodeKeys(svc),
		args: []any{svc, node, regPart, state, st.ExpiresAt, expiryMember(svc, node),
			s.keys.channel, head, s.epochSeed},
	}
	return nil
}

// encodeNodeState encodes st as stored in Redis and returns the
// registration part too: the text up to and including `,"registeredAt":`,
// which the register script compares to tell a heartbeat.
// encoding/json writes map keys sorted, so equal registrations always
// encode equally.
func encodeNodeState(st *registry.NodeState) (regPart, state string, err error) {
	b, err := json.Marshal(&st.Registration)
	if err != nil || len(b) < 2 || b[len(b)-1] != '}' {
		return "", "", fmt.Errorf("cannot encode registration: %v", err)
	}
	buf := make([]byte, 0, len(b)+64)
	buf = append(buf, b[:len(b)-1]...)
	buf = append(buf, `,"registeredAt":`...)
	n := len(buf)
	buf = strconv.AppendInt(buf, st.RegisteredAt, 10)
	buf = append(buf, `,"expiresAt":`...)
	buf = strconv.AppendInt(buf, st.ExpiresAt, 10)
	buf = append(buf, '}')
	s := string(buf)
	return s[:n], s, nil
}

// canonicalRegistration puts a registration in the canonical form the
// registry keeps (registry normalizes on Upsert too; the store needs the
// same form before it compares registrations in Redis).
func canonicalRegistration(r *registry.Registration) {
	r.Path = strings.TrimRight(r.Path, "/")
	if r.Path != "" && r.Path[0] != '/' {
		r.Path = "/" + r.Path
	}
	if r.HealthCheckPath != "" && r.HealthCheckPath[0] != '/' {
		r.HealthCheckPath = "/" + r.HealthCheckPath
	}
	if len(r.Metadata) == 0 {
		r.Metadata = nil
	}
}

// writer sends registrations in batches until ctx ends. It is the only
// goroutine that writes registrations to Redis, and it applies their
// results locally in the order Redis executed them.
func (s *Redis) writer(ctx context.Context) {
	// An accepted write runs to its end even while Run stops: it may
	// already be in Redis and its caller waits for the answer.
	wctx := context.WithoutCancel(ctx)
	batch := make([]*writeOp, 0, maxBatch)
	calls := make([]*scriptCall, 0, maxBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case op := <-s.writes:
			batch = append(batch[:0], op)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case op := <-s.writes:
				batch = append(batch, op)
			default:
				break fill
			}
		}
		calls = calls[:0]
		for _, op := range batch {
			calls = append(calls, &op.call)
		}
		s.runPipeline(wctx, calls)
		s.applyBatch(batch)
		for _, op := range batch {
			op.done <- struct{}{}
		}
		clear(batch)
	}
}

// runPipeline sends calls in one pipeline (followed by WAIT when
// MinReplicas is set) and sets each call's cmd and err. Calls that met an
// empty script cache (NOSCRIPT) are sent once more after loading the
// scripts: NOSCRIPT means the script did not run.
func (s *Redis) runPipeline(ctx context.Context, calls []*scriptCall) {
	pending := calls
	for attempt := 0; ; attempt++ {
		pipe := s.client.Pipeline()
		for _, c := range pending {
			c.cmd = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
		}
		var wait *redis.Cmd
		if s.o.MinReplicas > 0 {
			wait = pipe.Do(ctx, "WAIT", s.o.MinReplicas, s.o.ReplicaWaitTimeout.Milliseconds())
		}
		_, _ = pipe.Exec(ctx)
		var waitErr error
		if wait != nil {
			if err := wait.Err(); err != nil {
				waitErr = err
			} else if n, _ := wait.Int64(); n < int64(s.o.MinReplicas) {
				waitErr = fmt.Errorf("the write reached %d of %d replicas in %v", n, s.o.MinReplicas, s.o.ReplicaWaitTimeout)
			}
		}
		var retry []*scriptCall
		for _, c := range pending {
			c.err = c.cmd.Err()
			if c.err == nil {
				c.err = waitErr
			}
			if attempt == 0 && redis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
				retry = append(retry, c)
			}
		}
		if len(retry) == 0 {
			return
		}
		s.loadScripts(ctx)
		pending = retry
	}
}

// loadScripts loads the store's scripts into Redis's script cache.
func (s *Redis) loadScripts(ctx context.Context) {
	pipe := s.client.Pipeline()
	for _, sc := range storeScripts {
		pipe.ScriptLoad(ctx, scriptSource(sc))
	}
	_, _ = pipe.Exec(ctx)
}

func scriptSource(sc *redis.Script) string { return scriptSources[sc] }

// applyBatch applies the results of a written batch to the local registry
// in order and fills each op's result.
func (s *Redis) applyBatch(batch []*writeOp) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	ok := false
	for _, op := range batch {
		if op.call.err != nil {
			op.err = s.unavailable(op.call.err)
			continue
		}
		vals, err := op.call.cmd.Slice()
		if err != nil || len(vals) != 3 {
			op.err = s.unavailable(fmt.Errorf("unexpected script reply %v", op.call.cmd.Val()))
			continue
		}
		ok = true
		kind, _ := vals[0].(int64)
		version, _ := vals[1].(int64)
		epoch, _ := vals[2].(string)
		switch op.kind {
		case opRegister:
			op.res, op.err = s.applyOwnUpsertLocked(op, registry.EventKind(kind), version, epoch)
		case opDeregister:
			op.removed = s.applyOwnRemoveLocked(op.service, op.node, kind == 1, version, epoch, registry.NodeDeregistered)
		}
	}
	if ok {
		s.setUp(true, nil)
	}
}

// applyOwnUpsertLocked applies this instance's own registration after Redis
// took it. Structural changes follow the version rule (see
// applyVersionedLocked). A heartbeat carries the service's current version:
// it is applied when the local node already has the same registration (it
// only moves the deadline) or when the local service is not ahead of
// Redis; otherwise a later change of the node was applied already and the
// heartbeat is old news.
func (s *Redis) applyOwnUpsertLocked(op *writeOp, kind registry.EventKind, version int64, epoch string) (registry.Result, error) {
	res := registry.Result{
		Registration: op.state.Registration,
		Address:      op.state.Address(),
		RegisteredAt: op.state.RegisteredAt,
		Kind:         kind,
	}
	if kind != registry.NodeRegistered && kind != registry.NodeUpdated && kind != registry.NodeHeartbeat {
		res.Kind = registry.NodeRegistered
	}
	if epoch != s.epoch {
		// Redis lost its data since the last resync: apply without the
		// version bookkeeping and let the resync loop reseed and reload.
		s.triggerResync()
		_, err := s.reg.Upsert(op.state)
		return res, err
	}
	if kind == registry.NodeHeartbeat {
		applied := s.applied[op.service]
		if !s.sameLocalLocked(&op.state.Registration) && version < applied {
			return res, nil
		}
		_, err := s.reg.Upsert(op.state)
		if version > applied {
			s.noteGapLocked(op.service, version)
		}
		return res, err
	}
	var err error
	s.applyVersionedLocked(op.service, version, func() { _, err = s.reg.Upsert(op.state) })
	return res, err
}

// applyOwnRemoveLocked applies this instance's own deregistration (or
// expiry) after Redis took it and reports whether the node existed.
func (s *Redis) applyOwnRemoveLocked(service, node string, removed bool, version int64, epoch string, kind registry.EventKind) bool {
	if epoch != s.epoch {
		s.triggerResync()
		local := s.reg.Remove(service, node, "", kind)
		return removed || local
	}
	if !removed {
		// Redis does not have the node: a local copy is stale.
		return s.reg.Remove(service, node, "", kind)
	}
	s.applyVersionedLocked(service, version, func() { s.reg.Remove(service, node, "", kind) })
	return true
}

// applyVersionedLocked applies a structural change of service at version:
// at or below the applied version it is old news and skipped; one above,
// it is applied and becomes the applied version; further above, versions
// are missing: it is applied (it is the node's newest state) but the
// applied version stays, and the service is reloaded unless the missing
// versions arrive soon. It reports whether apply ran.
func (s *Redis) applyVersionedLocked(service string, version int64, apply func()) bool {
	applied := s.applied[service]
	if version <= applied {
		return false
	}
	apply()
	if version == applied+1 {
		s.applied[service] = version
		if g, ok := s.gaps[service]; ok && version >= g.want {
			delete(s.gaps, service)
		}
	} else {
		s.noteGapLocked(service, version)
	}
	return true
}

func (s *Redis) noteGapLocked(service string, version int64) {
	g, ok := s.gaps[service]
	if !ok {
		s.gaps[service] = gapRecord{want: version, since: time.Now()}
		return
	}
	if version > g.want {
		g.want = version
		s.gaps[service] = g
	}
}

// sameLocalLocked reports whether the local registry holds r's node with
// the same registration (as far as its snapshot shows it).
func (s *Redis) sameLocalLocked(r *registry.Registration) bool {
	snap := s.reg.Snapshot(r.ServiceName)
	if snap == nil {
		return false
	}
	n := snap.Parent(r.NodeName)
	return n != nil && n.Weight == r.Weight && n.TimeOut == r.TimeOut &&
		n.HealthCheckPath == r.HealthCheckPath && n.Address == r.Address() &&
		maps.Equal(n.Metadata, r.Metadata)
}

func (s *Redis) triggerResync() {
	select {
	case s.resyncNow <- struct{}{}:
	default:
	}
}
