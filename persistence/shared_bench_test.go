package persistence

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/maxine-io/maxine/registry"
)

// sharedBenchContent returns n nodes as one file version, encoded.
func sharedBenchContent(b *testing.B, n int) (*sharedContent, []byte) {
	c := newSharedContent()
	now := time.UnixMilli(1767225600000)
	for i := range n {
		reg := registry.Registration{ServiceName: "svc-" + strconv.Itoa(i%50), NodeName: "node-" + strconv.Itoa(i),
			HostName: "10.0.0." + strconv.Itoa(i%250), Port: 8080, Weight: 1, TimeOut: 30, Metadata: map[string]string{"zone": "eu-1"}}
		c.register(reg, now.UnixMilli())
	}
	var buf bytes.Buffer
	if err := c.encode(&buf, now, "bench"); err != nil {
		b.Fatal(err)
	}
	return c, bytes.Clone(buf.Bytes())
}

// BenchmarkSharedDecode decodes a 4,000-node file in which 16 nodes
// changed since the version the instance knows (the common case: another
// instance wrote one batch of heartbeats).
func BenchmarkSharedDecode(b *testing.B) {
	prev, _ := sharedBenchContent(b, 4000)
	next := prev.clone()
	i := 0
	for _, e := range next.nodes {
		if i == 16 {
			break
		}
		next.register(e.st.Registration, e.st.RegisteredAt+1000)
		i++
	}
	var buf bytes.Buffer
	next.encode(&buf, time.Now(), "other")
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		prev.byRaw = nil // as after every change of the applied version
		if _, _, err := decodeShared(data, prev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSharedEncode encodes a 4,000-node file after a batch of 16
// heartbeats.
func BenchmarkSharedEncode(b *testing.B) {
	c, _ := sharedBenchContent(b, 4000)
	var buf bytes.Buffer
	keys := make([]string, 0, 16)
	for k := range c.nodes {
		if len(keys) == 16 {
			break
		}
		keys = append(keys, k)
	}
	b.ReportAllocs()
	for b.Loop() {
		next := c.clone()
		for _, k := range keys {
			e := next.nodes[k]
			next.register(e.st.Registration, e.st.RegisteredAt+1000)
		}
		if err := next.encode(&buf, time.Now(), "bench"); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}
