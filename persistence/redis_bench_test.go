package persistence

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maxine-io/maxine/internal/redistest"
	"github.com/maxine-io/maxine/registry"
)

// BenchmarkRedisRegister measures registrations acknowledged by Redis per
// second on one instance: 64 concurrent callers per GOMAXPROCS heartbeat
// 2,000 nodes of 20 services (the first round registers them), each call
// waiting for its Redis reply and the local apply. SPEC 9: ≥ 5,000/s,
// goal 20,000/s.
func BenchmarkRedisRegister(b *testing.B) {
	benchRegisterOn(b, redistest.Start(b))
}

func benchRegisterOn(b *testing.B, srv *redistest.Server) {
	s := startBenchStore(b, srv)
	const nodes = 2000
	regs := make([]struct{ svc, node string }, nodes)
	for i := range regs {
		regs[i].svc, regs[i].node = "svc"+strconv.Itoa(i%20), "n"+strconv.Itoa(i)
	}
	var next atomic.Uint64
	ctx := context.Background()
	b.SetParallelism(64)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := &regs[next.Add(1)%nodes]
			if _, err := s.Register(ctx, testReg(r.svc, r.node, 8080)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "regs/s")
}

func startBenchStore(b *testing.B, srv *redistest.Server) *Redis {
	b.Helper()
	o := RedisOptions{URL: srv.URL(0), InstanceID: "bench"}
	o.Registry = registry.New(registry.Options{})
	client, err := NewRedisClient(o)
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewRedis(o, client)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Load(ctx); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done; client.Close() })
	for i := 0; !s.running.Load() && i < 1000; i++ {
		time.Sleep(time.Millisecond)
	}
	return s
}
