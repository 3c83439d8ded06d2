package registry

import (
	"strconv"
	"testing"
)

func BenchmarkSnapshotLookup(b *testing.B) {
	r := New(Options{})
	for i := 0; i < 10000; i++ {
		r.Register(reg("svc"+strconv.Itoa(i), "n", 1, 60))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r.Snapshot("svc4242") == nil {
			b.Fatal("missing")
		}
	}
}

func BenchmarkRegisterDistinct(b *testing.B) {
	// Room for every node: the default cap (DefaultMaxNodes) is below
	// the b.N a fast machine reaches.
	r := New(Options{MaxNodes: b.N + 1})
	regs := make([]Registration, b.N)
	for i := range regs {
		regs[i] = reg("svc"+strconv.Itoa(i%10000), "n"+strconv.Itoa(i), 1, 60)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range regs {
		if _, err := r.Register(regs[i]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHeartbeat(b *testing.B) {
	r := New(Options{})
	regs := make([]Registration, 1000)
	for i := range regs {
		regs[i] = reg("svc"+strconv.Itoa(i%100), "n"+strconv.Itoa(i), 2, 60)
		r.Register(regs[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Register(regs[i%len(regs)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRegistration(b *testing.B) {
	body := []byte(`{"serviceName":"orders","nodeName":"node-1","hostName":"10.0.0.1","port":8080,"timeOut":5,"weight":2}`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := DecodeRegistration(body, 5); err != nil {
			b.Fatal(err)
		}
	}
}
