// Package config holds Maxine's runtime settings: the values an operator can
// read and change at run time through the admin API (selection strategy,
// discovery mode, log format, heartbeat timeout, …). Settings are an
// immutable value behind an atomic.Pointer, so the data plane reads them
// without a lock; changes are serialized and announced to subscribers.
package config

import (
	"sync"
	"sync/atomic"
)

// Strategy is a node selection strategy; its codes are part of the admin
// API contract.
type Strategy uint8

// Selection strategies (SPEC 5).
const (
	RoundRobin Strategy = iota
	ConsistentHashing
	RendezvousHashing
	LeastRequest
)

// DiscoveryMode says whether discover redirects or proxies.
type DiscoveryMode uint8

// Discovery modes.
const (
	Redirect DiscoveryMode = iota
	Proxy
)

// LogFormat is the log line format.
type LogFormat uint8

// Log formats.
const (
	JSONLogs LogFormat = iota
	PlainLogs
)

// Enum describes one value of a runtime enum as the admin API shows it.
type Enum struct {
	Name    string `json:"name"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Ordinal int    `json:"ordinal"`
}

var strategies = []Enum{
	{"RR", "0", "Round Robin", 0},
	{"CH", "1", "Consistent Hashing", 1},
	{"RH", "2", "Rendezvous Hashing", 2},
	{"LR", "3", "Least Request", 3},
}

var modes = []Enum{
	{"REDIRECT", "0", "Redirect", 0},
	{"PROXY", "1", "Proxy", 1},
}

var formats = []Enum{
	{"JSON", "0", "Jsonified logging", 0},
	{"PLAIN", "1", "Plain logs", 1},
}

// Enum returns the API description of s.
func (s Strategy) Enum() Enum { return strategies[s] }

// String returns the strategy's short name (RR, CH, RH, LR).
func (s Strategy) String() string { return strategies[s].Name }

// Enum returns the API description of m.
func (m DiscoveryMode) Enum() Enum { return modes[m] }

func (m DiscoveryMode) String() string { return modes[m].Name }

// Enum returns the API description of f.
func (f LogFormat) Enum() Enum { return formats[f] }

func (f LogFormat) String() string { return formats[f].Name }

func parseEnum(list []Enum, s string) (int, bool) {
	for i, e := range list {
		if e.Name == s {
			return i, true
		}
	}
	return 0, false
}

// ParseStrategy accepts RR, CH, RH or LR.
func ParseStrategy(s string) (Strategy, bool) {
	i, ok := parseEnum(strategies, s)
	return Strategy(i), ok
}

// ParseDiscoveryMode accepts REDIRECT or PROXY.
func ParseDiscoveryMode(s string) (DiscoveryMode, bool) {
	i, ok := parseEnum(modes, s)
	return DiscoveryMode(i), ok
}

// ParseLogFormat accepts JSON or PLAIN.
func ParseLogFormat(s string) (LogFormat, bool) {
	i, ok := parseEnum(formats, s)
	return LogFormat(i), ok
}

// Settings are the runtime settings. A *Settings obtained from Store.Load
// is shared and must not be modified; use Store.Update.
type Settings struct {
	LogAsync             bool          `json:"logAsync"`
	HeartBeatTimeout     int           `json:"heartBeatTimeout"`
	LogJSONPrettify      bool          `json:"logJsonPrettify"`
	ActuatorEnabled      bool          `json:"actuatorEnabled"`
	StatusMonitorEnabled bool          `json:"statusMonitorEnabled"`
	Strategy             Strategy      `json:"serverSelectionStrategy"`
	DiscoveryMode        DiscoveryMode `json:"discoveryMode"`
	LogFormat            LogFormat     `json:"logFormat"`
	Port                 int           `json:"port"`
}

// Defaults returns the settings of a fresh installation.
func Defaults() Settings {
	return Settings{
		LogAsync:             true,
		HeartBeatTimeout:     5,
		ActuatorEnabled:      true,
		StatusMonitorEnabled: true,
		Port:                 8080,
	}
}

// Store holds the current Settings. The zero value is not usable; use New.
type Store struct {
	cur  atomic.Pointer[Settings]
	gen  atomic.Uint64
	mu   sync.Mutex // serializes Update and subscribers
	subs []func(old, cur Settings)
}

// New returns a store holding s.
func New(s Settings) *Store {
	st := &Store{}
	st.cur.Store(&s)
	return st
}

// Load returns the current settings without taking a lock.
func (s *Store) Load() *Settings { return s.cur.Load() }

// Generation changes on every update; persistence uses it to skip writes.
func (s *Store) Generation() uint64 { return s.gen.Load() }

// Update applies fn to a copy of the current settings and publishes it;
// subscribers are called (in order, outside no lock but the store's own)
// with the old and new values. It returns both.
func (s *Store) Update(fn func(*Settings)) (old, cur Settings) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old = *s.cur.Load()
	cur = old
	fn(&cur)
	if cur == old {
		return old, cur
	}
	next := cur
	s.cur.Store(&next)
	s.gen.Add(1)
	for _, f := range s.subs {
		f(old, cur)
	}
	return old, cur
}

// Subscribe registers fn to be called after every change.
func (s *Store) Subscribe(fn func(old, cur Settings)) {
	s.mu.Lock()
	s.subs = append(s.subs, fn)
	s.mu.Unlock()
}
