package registry

import (
	"sync"
	"time"
)

// EventKind says what happened to a node.
type EventKind uint8

// Event kinds. NodeHeartbeat is never published as an Event (a heartbeat
// changes no snapshot); it appears only in Result.Kind.
const (
	NodeRegistered EventKind = iota + 1
	NodeUpdated
	NodeDeregistered
	NodeExpired
	NodeHeartbeat
)

var kindNames = [...]string{"", "registered", "updated", "deregistered", "expired", "heartbeat"}

func (k EventKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Event is one structural change to a service. Events are numbered by Seq in
// the order they were applied; Version is the service's snapshot version
// after the change.
type Event struct {
	Seq     uint64
	Kind    EventKind
	Service string
	Node    string // parent node name
	Version uint64
	At      time.Time
}

// Subscription receives the registry's events in order. A slow consumer
// never blocks writers: once more than its limit of events are queued they
// are dropped and the next Take reports an overflow, after which the
// consumer must resynchronise from Range. Subscriptions must be closed with
// Registry.Unsubscribe when no longer read.
type Subscription struct {
	mu       sync.Mutex
	queue    []Event
	limit    int
	overflow bool
	ready    chan struct{}
}

// Subscribe returns a subscription holding at most limit undelivered events
// (limit ≤ 0 means 65536).
func (r *Registry) Subscribe(limit int) *Subscription {
	if limit <= 0 {
		limit = 65536
	}
	s := &Subscription{limit: limit, ready: make(chan struct{}, 1)}
	r.mu.Lock()
	r.subs = append(r.subs, s)
	r.mu.Unlock()
	return s
}

// Unsubscribe stops delivery to s.
func (r *Registry) Unsubscribe(s *Subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, x := range r.subs {
		if x == s {
			r.subs = append(r.subs[:i:i], r.subs[i+1:]...)
			return
		}
	}
}

// Ready is signalled (level-triggered, capacity one) when events are queued.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Take appends the queued events to dst and returns it. overflowed is true
// when events were dropped since the last Take; the consumer must then
// rebuild its view from Registry.Range.
func (s *Subscription) Take(dst []Event) (events []Event, overflowed bool) {
	s.mu.Lock()
	dst = append(dst, s.queue...)
	clear(s.queue)
	s.queue = s.queue[:0]
	overflowed, s.overflow = s.overflow, false
	s.mu.Unlock()
	return dst, overflowed
}

func (s *Subscription) push(ev Event) {
	s.mu.Lock()
	if len(s.queue) >= s.limit {
		s.overflow = true
		clear(s.queue)
		s.queue = s.queue[:0]
	} else {
		s.queue = append(s.queue, ev)
	}
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}
