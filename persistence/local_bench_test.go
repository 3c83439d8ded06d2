package persistence

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/maxine-io/maxine/registry"
)

// benchState is 100,000 nodes of realistic size: 1,000 services of 100
// nodes, a third with metadata, a path and SSL.
func benchState() State {
	nodes := make([]registry.NodeState, 0, 100_000)
	for i := range 100_000 {
		r := registry.Registration{
			ServiceName: fmt.Sprintf("service-%04d", i/100),
			NodeName:    fmt.Sprintf("node-%06d", i),
			HostName:    fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
			Port:        8080,
			TimeOut:     30,
			Weight:      1 + i%10,
		}
		if i%3 == 0 {
			r.SSL = true
			r.Path = "/api/v1"
			r.HealthCheckPath = "/health"
			r.Metadata = map[string]string{"zone": "eu-west-1a", "version": "1.2.3"}
		}
		nodes = append(nodes, registry.NodeState{Registration: r, RegisteredAt: 1767225600000 + int64(i), ExpiresAt: 1767225630500 + int64(i)})
	}
	return State{Nodes: nodes}
}

// BenchmarkSave100k is a full Save (encode, write, fsync, rename, directory
// fsync) of 100,000 nodes.
func BenchmarkSave100k(b *testing.B) {
	s := benchState()
	f := NewLocalFile(b.TempDir())
	b.ReportAllocs()
	for b.Loop() {
		if err := f.Save(s); err != nil {
			b.Fatal(err)
		}
	}
	if fi, err := os.Stat(f.Path()); err == nil {
		b.ReportMetric(float64(fi.Size())/(1<<20), "MiB/file")
	}
}

// BenchmarkEncode100k is the encoding part of Save alone.
func BenchmarkEncode100k(b *testing.B) {
	s := benchState()
	w := bufio.NewWriterSize(io.Discard, 256<<10)
	b.ReportAllocs()
	for b.Loop() {
		if err := encodeState(w, &s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad100k reads and decodes 100,000 nodes (the startup cost).
func BenchmarkLoad100k(b *testing.B) {
	f := NewLocalFile(b.TempDir())
	if err := f.Save(benchState()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Load(); err != nil {
			b.Fatal(err)
		}
	}
}
