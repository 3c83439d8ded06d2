package persistence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/maxine-io/maxine/registry"
)

// sharedContent is one version of the shared state file, decoded. It is
// immutable once built (SharedFile.applied and the decode cache share its
// entries); a batch works on a clone.
//
// The file has the local mode's shape (State: format, savedAt, settings,
// nodes, one node per line) plus "instanceId", the instance that wrote it;
// both modes read each other's files, so switching modes keeps the data.
type sharedContent struct {
	settings []byte                  // the "settings" value as found, kept verbatim; nil when absent
	nodes    map[string]*sharedEntry // by sharedKey(service, node)
	sum      uint64                  // xxhash of the file bytes it was read from or written as; 0 when unknown
	// keys are the keys of nodes in sorted order (the file's order), or
	// nil when they must be sorted again: a batch of heartbeats does not
	// change them, so most writes need no sort.
	keys []string

	// byRaw indexes the entries by their JSON text. It is built on first
	// use (always under SharedFile.mu) so that decoding the next version
	// decodes only the nodes whose text changed.
	byRaw map[string]*sharedEntry
}

// sharedEntry is one node of the file with its JSON text (raw) as read or
// written; entries are never modified, only replaced.
type sharedEntry struct {
	key string // sharedKey(st.ServiceName, st.NodeName)
	st  registry.NodeState
	raw string // "" until encoded
}

func newSharedEntry(st registry.NodeState) *sharedEntry {
	return &sharedEntry{key: sharedKey(st.ServiceName, st.NodeName), st: st}
}

func sharedKey(service, node string) string { return service + "\n" + node }

func newSharedContent() *sharedContent {
	return &sharedContent{nodes: map[string]*sharedEntry{}}
}

// clone returns a copy that may be modified; entries are shared.
func (c *sharedContent) clone() *sharedContent {
	return &sharedContent{settings: c.settings, nodes: maps.Clone(c.nodes), keys: c.keys}
}

// minExpires is the earliest deadline in c (math.MaxInt64 when empty).
func (c *sharedContent) minExpires() int64 {
	m := int64(math.MaxInt64)
	for _, e := range c.nodes {
		m = min(m, e.st.ExpiresAt)
	}
	return m
}

// dropExpired removes the nodes whose deadline is at or before nowMs and
// returns how many it removed.
func (c *sharedContent) dropExpired(nowMs int64) int {
	n := 0
	for k, e := range c.nodes {
		if e.st.ExpiresAt <= nowMs {
			delete(c.nodes, k)
			n++
		}
	}
	if n > 0 {
		c.keys = nil
	}
	return n
}

// register applies a validated, normalized registration received at nowMs
// the way registry.Register would: a new node, a changed node, or a
// heartbeat, which never moves a deadline backwards. It reports the kind
// and whether the content changed.
func (c *sharedContent) register(reg registry.Registration, nowMs int64) (registry.EventKind, bool) {
	key := sharedKey(reg.ServiceName, reg.NodeName)
	deadline := nowMs + int64(reg.TimeOut)*1000 + registry.ExpiryGrace.Milliseconds()
	kind := registry.NodeRegistered
	old := c.nodes[key]
	if old != nil {
		kind = registry.NodeUpdated
		if sharedSameRegistration(&old.st.Registration, &reg) {
			kind = registry.NodeHeartbeat
			if deadline <= old.st.ExpiresAt {
				return kind, false
			}
		}
	}
	if old == nil {
		c.keys = nil
	}
	c.nodes[key] = &sharedEntry{key: key, st: registry.NodeState{Registration: reg, RegisteredAt: nowMs, ExpiresAt: deadline}}
	return kind, true
}

// deregister removes a node and reports whether it was there.
func (c *sharedContent) deregister(service, node string) bool {
	key := sharedKey(service, node)
	if _, ok := c.nodes[key]; !ok {
		return false
	}
	delete(c.nodes, key)
	c.keys = nil
	return true
}

// sharedDoc is the file as decoded before its nodes are: each node stays
// JSON text so that unchanged nodes are matched by text, not decoded.
type sharedDoc struct {
	Format   int               `json:"format"`
	Settings json.RawMessage   `json:"settings"`
	Nodes    []json.RawMessage `json:"nodes"`
}

// decodeShared decodes a state file. Nodes whose JSON text is in prev
// reuse prev's entries. Nodes that fail validation are left out and
// counted in invalid; a duplicate node keeps its last occurrence. A file
// that is not JSON, or has another format, is an error (a corrupt file).
func decodeShared(data []byte, prev *sharedContent) (c *sharedContent, invalid int, err error) {
	var known map[string]*sharedEntry
	if prev != nil {
		known = prev.rawIndex()
	}
	head, lines, ok := splitSharedLines(data)
	if !ok {
		return decodeSharedDoc(data, known)
	}
	var doc sharedDoc
	if err := json.Unmarshal(head, &doc); err != nil || doc.Nodes != nil {
		return decodeSharedDoc(data, known)
	}
	if doc.Format != Format {
		return nil, 0, fmt.Errorf("unknown format %d (want %d)", doc.Format, Format)
	}
	c = &sharedContent{nodes: make(map[string]*sharedEntry, len(lines)), sum: xxhash.Sum64(data)}
	if len(doc.Settings) > 0 && string(doc.Settings) != "null" {
		c.settings = doc.Settings
	}
	c.keys = make([]string, 0, len(lines))
	for _, raw := range lines {
		e, ok := known[string(raw)]
		if !ok {
			var valid bool
			e, valid, err = decodeSharedNode(raw)
			if err != nil {
				// Not one JSON value: either the document is corrupt or
				// the line is not one node after all (`{..},{..}` on
				// one line). The full decoder tells which.
				return decodeSharedDoc(data, known)
			}
			if !valid {
				invalid++
				continue
			}
		}
		c.nodes[e.key] = e
		if c.keys != nil {
			if n := len(c.keys); n > 0 && c.keys[n-1] >= e.key {
				c.keys = nil // not in order (or a duplicate): sort when writing
			} else {
				c.keys = append(c.keys, e.key)
			}
		}
	}
	return c, invalid, nil
}

// splitSharedLines recognizes the layout that encode and LocalFile.Save
// write, `{<head>,"nodes":[` LF, then one node per line, each but the
// first preceded by a comma, then `]}` LF, and returns the head closed
// as a JSON object and the node lines. The head and every node line are
// still decoded by encoding/json (or matched byte for byte with a line
// decoded before), so a file in this layout is decoded exactly as the
// whole document would be; anything else (a file edited by hand,
// pretty-printed) is left to decodeSharedDoc. It spares encoding/json's
// two scans of the whole file when only a few nodes changed.
func splitSharedLines(data []byte) (head []byte, lines [][]byte, ok bool) {
	const key = `,"nodes":[`
	i := bytes.Index(data, []byte(key))
	if i < 0 || len(data) == 0 || data[0] != '{' {
		return nil, nil, false
	}
	head = append(data[:i:i], '}')
	rest := data[i+len(key):]
	if bytes.HasPrefix(rest, []byte("\n")) {
		rest = rest[1:]
		for first := true; ; first = false {
			if !first {
				if len(rest) == 0 || rest[0] != ',' {
					break
				}
				rest = rest[1:]
			}
			j := bytes.IndexByte(rest, '\n')
			if j < 2 || rest[0] != '{' || rest[j-1] != '}' {
				return nil, nil, false
			}
			lines = append(lines, rest[:j])
			rest = rest[j+1:]
		}
	}
	if string(bytes.TrimRight(rest, " \t\r\n")) != "]}" {
		return nil, nil, false
	}
	return head, lines, true
}

// decodeSharedNode decodes one node's JSON text. valid is false for a
// node that is JSON but not a valid node (it is skipped); err is set for
// text that is not JSON.
func decodeSharedNode(raw []byte) (e *sharedEntry, valid bool, err error) {
	var st registry.NodeState
	if err := json.Unmarshal(raw, &st); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, false, nil // e.g. a node that is a string
		}
		return nil, false, err
	}
	if err := st.Validate(); err != nil {
		return nil, false, nil
	}
	e = newSharedEntry(st)
	if sharedNormalize(&e.st.Registration) {
		e.raw = string(raw) // normalizing changed nothing: the text stays valid
	}
	return e, true, nil
}

// decodeSharedDoc decodes a file in any JSON layout.
func decodeSharedDoc(data []byte, known map[string]*sharedEntry) (c *sharedContent, invalid int, err error) {
	var doc sharedDoc
	// Unmarshal validates the whole input first: a truncated file is
	// rejected before anything is decoded.
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, 0, err
	}
	if doc.Format != Format {
		return nil, 0, fmt.Errorf("unknown format %d (want %d)", doc.Format, Format)
	}
	c = &sharedContent{nodes: make(map[string]*sharedEntry, len(doc.Nodes)), sum: xxhash.Sum64(data)}
	if len(doc.Settings) > 0 && string(doc.Settings) != "null" {
		c.settings = doc.Settings
	}
	for _, raw := range doc.Nodes {
		e, ok := known[string(raw)]
		if !ok {
			var valid bool
			if e, valid, _ = decodeSharedNode(raw); !valid { // raw is JSON here
				invalid++
				continue
			}
		}
		c.nodes[e.key] = e
	}
	return c, invalid, nil
}

// rawIndex returns c's entries by JSON text, building the index once.
// Callers hold SharedFile.mu.
func (c *sharedContent) rawIndex() map[string]*sharedEntry {
	if c.byRaw == nil {
		c.byRaw = make(map[string]*sharedEntry, len(c.nodes))
		for _, e := range c.nodes {
			if e.raw != "" {
				c.byRaw[e.raw] = e
			}
		}
	}
	return c.byRaw
}

// encode writes c into buf in the local mode's layout (one node per line,
// nodes sorted by service and node name), encoding only the entries that
// have no text yet, and sets c.sum. It replaces the entries it encodes, so
// it must run before c is shared.
func (c *sharedContent) encode(buf *bytes.Buffer, savedAt time.Time, instance string) error {
	if c.keys == nil {
		c.keys = slices.Sorted(maps.Keys(c.nodes))
	}
	buf.Reset()
	buf.WriteString(`{"format":`)
	buf.WriteString(strconv.Itoa(Format))
	buf.WriteString(`,"savedAt":`)
	buf.WriteString(strconv.FormatInt(savedAt.UnixMilli(), 10))
	buf.WriteString(`,"instanceId":`)
	id, err := json.Marshal(instance)
	if err != nil {
		return err
	}
	buf.Write(id)
	if c.settings != nil {
		buf.WriteString(`,"settings":`)
		buf.Write(c.settings)
	}
	buf.WriteString(`,"nodes":[`)
	for i, k := range c.keys {
		e := c.nodes[k]
		if e.raw == "" {
			b, err := json.Marshal(&e.st)
			if err != nil {
				return err
			}
			e = &sharedEntry{key: k, st: e.st, raw: string(b)}
			c.nodes[k] = e
		}
		if i == 0 {
			buf.WriteByte('\n')
		} else {
			buf.WriteByte(',')
		}
		buf.WriteString(e.raw)
		buf.WriteByte('\n')
	}
	buf.WriteString("]}\n")
	c.sum = xxhash.Sum64(buf.Bytes())
	return nil
}

// sharedSameRegistration reports whether two normalized registrations describe
// the same node (so that registering again is a heartbeat), as the
// registry decides it.
func sharedSameRegistration(a, b *registry.Registration) bool {
	return a.ServiceName == b.ServiceName && a.NodeName == b.NodeName && a.HostName == b.HostName &&
		a.Port == b.Port && a.SSL == b.SSL && a.Path == b.Path && a.TimeOut == b.TimeOut &&
		a.Weight == b.Weight && a.HealthCheckPath == b.HealthCheckPath && maps.Equal(a.Metadata, b.Metadata)
}

// sharedNormalize puts a validated registration into the canonical
// form the registry stores (it normalizes on every Upsert as well; the
// file keeps the same form so that heartbeats compare equal). It mirrors
// registry's unexported normalize and reports whether reg was already
// normal.
func sharedNormalize(reg *registry.Registration) bool {
	path := strings.TrimRight(reg.Path, "/")
	if path != "" && path[0] != '/' {
		path = "/" + path
	}
	health := reg.HealthCheckPath
	if health != "" && health[0] != '/' {
		health = "/" + health
	}
	normal := path == reg.Path && health == reg.HealthCheckPath && (reg.Metadata == nil || len(reg.Metadata) > 0)
	reg.Path, reg.HealthCheckPath = path, health
	if len(reg.Metadata) == 0 {
		reg.Metadata = nil
	}
	return normal
}
