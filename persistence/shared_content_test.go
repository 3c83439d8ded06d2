package persistence

import (
	"bufio"
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/maxine-io/maxine/registry"
)

// sharedSample is a shared file as encode writes it, with settings.
func sharedSample(t testing.TB) []byte {
	t.Helper()
	st := sampleState()
	c := newSharedContent()
	for _, n := range st.Nodes {
		e := newSharedEntry(n)
		c.nodes[e.key] = e
	}
	c.settings, _ = json.Marshal(st.Settings)
	var buf bytes.Buffer
	if err := c.encode(&buf, time.UnixMilli(st.SavedAt), "a"); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sameDecoding fails unless the line decoder and the whole-document
// decoder agree on data.
func sameDecoding(t *testing.T, data []byte) {
	t.Helper()
	fast, fastInvalid, fastErr := decodeShared(data, nil)
	full, fullInvalid, fullErr := decodeSharedDoc(data, nil)
	if (fastErr == nil) != (fullErr == nil) {
		t.Fatalf("errors differ on %q: lines %v, document %v", data, fastErr, fullErr)
	}
	if fastErr != nil {
		return
	}
	if fastInvalid != fullInvalid || !bytes.Equal(fast.settings, full.settings) || len(fast.nodes) != len(full.nodes) {
		t.Fatalf("decodings differ on %q: %d/%d invalid, settings %s/%s, %d/%d nodes",
			data, fastInvalid, fullInvalid, fast.settings, full.settings, len(fast.nodes), len(full.nodes))
	}
	for k, e := range fast.nodes {
		if f := full.nodes[k]; f == nil || !reflect.DeepEqual(e.st, f.st) {
			t.Fatalf("node %q differs on %q: %+v / %+v", k, data, e, f)
		}
	}
}

func TestSharedDecodeLayouts(t *testing.T) {
	data := sharedSample(t)
	c, invalid, err := decodeShared(data, nil)
	if err != nil || invalid != 0 || len(c.nodes) != 3 || c.keys == nil || c.settings == nil {
		t.Fatalf("decode of an encoded file = %+v, %d, %v", c, invalid, err)
	}
	if _, _, ok := splitSharedLines(data); !ok {
		t.Fatal("the encoder's layout is not recognized")
	}

	// Re-encoding what was decoded gives the same bytes: unchanged nodes
	// keep their text, so other instances match them without decoding.
	var buf bytes.Buffer
	c.encode(&buf, time.UnixMilli(sampleState().SavedAt), "a")
	if !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("re-encoded file differs:\n%s\n%s", buf.Bytes(), data)
	}
	// The next version decodes only its changed nodes.
	next := c.clone()
	st := sampleState().Nodes[0]
	next.register(st.Registration, st.RegisteredAt+1000)
	next.encode(&buf, time.Now(), "b")
	d, _, err := decodeShared(buf.Bytes(), c)
	if err != nil {
		t.Fatal(err)
	}
	reused := 0
	for k, e := range d.nodes {
		if c.nodes[k] == e {
			reused++
		}
	}
	if reused != 2 || d.nodes[sharedKey(st.ServiceName, st.NodeName)].st.RegisteredAt != st.RegisteredAt+1000 {
		t.Fatalf("reused %d entries; changed node %+v", reused, d.nodes[sharedKey(st.ServiceName, st.NodeName)])
	}

	var pretty bytes.Buffer
	json.Indent(&pretty, data, "", "  ")
	local := func() []byte {
		var b bytes.Buffer
		s := sampleState()
		s.Format = Format
		w := bufio.NewWriter(&b)
		encodeState(w, &s)
		w.Flush()
		return b.Bytes()
	}()
	for name, in := range map[string]string{
		"encoded":           string(data),
		"pretty":            pretty.String(),
		"local mode":        string(local),
		"no nodes":          `{"format":1,"nodes":[]}`,
		"null nodes":        `{"format":1,"nodes":null}`,
		"nodes first":       `{"nodes":[` + "\n" + `{"serviceName":"a"}` + "\n" + `],"format":1}`,
		"nodes twice":       `{"format":1,"nodes":[],"nodes":[` + "\n" + `{"serviceName":"a"}` + "\n]}",
		"invalid node":      `{"format":1,"nodes":[` + "\n" + `{"serviceName":"a","nodeName":"b"}` + "\n" + `,{"serviceName":5}` + "\n]}",
		"string node":       `{"format":1,"nodes":["x",null]}`,
		"nodes on one line": `{"format":1,"nodes":[` + "\n" + `{"serviceName":"a","nodeName":"b","hostName":"h","timeOut":1,"weight":1},{"serviceName":"a","nodeName":"c","hostName":"h","timeOut":1,"weight":1}` + "\n]}",
		"truncated":         string(data[:len(data)-10]),
		"broken line":       strings.Replace(string(data), `"nodeName":"a"`, `"nodeName":"a"x`, 1),
		"trailing key":      strings.Replace(string(data), "]}\n", `],"x":1}`, 1),
		"trailing garbage":  string(data) + "x",
		"format 2":          strings.Replace(string(data), `"format":1`, `"format":2`, 1),
		"format string":     strings.Replace(string(data), `"format":1`, `"format":"1"`, 1),
		"key in string":     `{"format":1,"x":",\"nodes\":[","nodes":[]}`,
		"empty":             ``,
	} {
		t.Run(name, func(t *testing.T) { sameDecoding(t, []byte(in)) })
	}
}

// FuzzSharedDecode checks that the line decoder never disagrees with the
// whole-document decoder. Run with -fuzztime Nx.
func FuzzSharedDecode(f *testing.F) {
	data := sharedSample(f)
	f.Add(data)
	f.Add([]byte(`{"format":1,"nodes":[]}`))
	f.Add([]byte(`{"format":1,"settings":null,"nodes":[` + "\n" + `{"serviceName":"a","nodeName":"b","hostName":"h","timeOut":1,"weight":1}` + "\n]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) { sameDecoding(t, data) })
}

func TestSharedContentRegister(t *testing.T) {
	c := newSharedContent()
	reg := registry.Registration{ServiceName: "s", NodeName: "n", HostName: "h", TimeOut: 2, Weight: 1}
	if kind, ch := c.register(reg, 1000); kind != registry.NodeRegistered || !ch {
		t.Fatalf("first = %v, %v", kind, ch)
	}
	if kind, ch := c.register(reg, 3000); kind != registry.NodeHeartbeat || !ch || c.nodes["s\nn"].st.ExpiresAt != 5500 {
		t.Fatalf("heartbeat = %v, %v, %+v", kind, ch, c.nodes["s\nn"].st)
	}
	// A heartbeat from a clock behind never moves the deadline back.
	if kind, ch := c.register(reg, 2000); kind != registry.NodeHeartbeat || ch || c.nodes["s\nn"].st.ExpiresAt != 5500 {
		t.Fatalf("late heartbeat = %v, %v, %+v", kind, ch, c.nodes["s\nn"].st)
	}
	reg.Metadata = map[string]string{"a": "b"}
	if kind, _ := c.register(reg, 2000); kind != registry.NodeUpdated || c.nodes["s\nn"].st.ExpiresAt != 4500 {
		t.Fatalf("update = %v, %+v", kind, c.nodes["s\nn"].st)
	}
	if c.dropExpired(4499) != 0 || c.dropExpired(4500) != 1 || len(c.nodes) != 0 {
		t.Fatal("expiry is not at the deadline")
	}
	if c.deregister("s", "n") {
		t.Fatal("deregistered a missing node")
	}
	if !maps.Equal(reg.Metadata, map[string]string{"a": "b"}) {
		t.Fatal("registration modified")
	}
}
