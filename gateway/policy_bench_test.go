package gateway

import (
	"net/netip"
	"sync/atomic"
	"testing"
)

// BenchmarkRateLimiter is one token taken per request, all goroutines on
// the same limiter: one bucket for the service, or the per-client table
// with each goroutine a different client. The rate is high enough that
// every take is admitted: this is the cost an admitted request pays.
func BenchmarkRateLimiter(b *testing.B) {
	for _, perClient := range []bool{false, true} {
		name := "service"
		if perClient {
			name = "client"
		}
		b.Run(name, func(b *testing.B) {
			l := newRateLimiter(1e6, 1e6, perClient)
			var next atomic.Uint32
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				n := next.Add(1)
				ip := netip.AddrFrom4([4]byte{10, 0, byte(n >> 8), byte(n)})
				for pb.Next() {
					l.take(ip)
				}
			})
		})
	}
}
