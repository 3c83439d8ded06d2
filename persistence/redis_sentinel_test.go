package persistence

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maxine-io/maxine/internal/redistest"
)

// With Sentinel and MinReplicas 1 a registration is acknowledged only once
// a replica has it; the primary is killed mid-stream, registrations work
// again after the failover and none that was acknowledged is lost.
// Sentinel promotes the replica with the largest replication offset, which
// holds every write any replica acknowledged (WAIT 1 puts each on at least
// one); two replicas leave one to acknowledge writes to the new primary.
func TestRedisSentinelFailoverLosesNoAcknowledgedRegistration(t *testing.T) {
	primary := redistest.Start(t)
	replicas := []*redistest.Server{redistest.Replica(t, primary), redistest.Replica(t, primary)}
	pollUntil(t, 20*time.Second, "replicas online", func() bool {
		v, err := primary.Do("INFO", "replication")
		return err == nil && strings.Contains(v, "connected_slaves:2") && strings.Count(v, "state=online") == 2
	})
	var sentinels []*redistest.Server
	var addrs []string
	for range 3 {
		s := redistest.Sentinel(t, "maxine", primary, 2)
		sentinels = append(sentinels, s)
		addrs = append(addrs, s.Addr())
	}
	pollUntil(t, 20*time.Second, "sentinels know the replicas and each other", func() bool {
		for _, s := range sentinels {
			v, err := s.Do("SENTINEL", "MASTER", "maxine")
			if err != nil || !strings.Contains(v, "num-slaves\n2") || !strings.Contains(v, "num-other-sentinels\n2") {
				return false
			}
		}
		return true
	})

	st := startStore(t, RedisOptions{SentinelMaster: "maxine", SentinelAddrs: addrs, InstanceID: "a", MinReplicas: 1})
	ctx := context.Background()

	var (
		mu    sync.Mutex
		acked []string
		after int // acknowledged after the kill
	)
	killed := make(chan struct{})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			node := "n" + strconv.Itoa(i)
			if _, err := st.Register(ctx, testReg("orders", node, 8080)); err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			mu.Lock()
			acked = append(acked, node)
			select {
			case <-killed:
				after++
			default:
			}
			mu.Unlock()
		}
	}()
	count := func() (int, int) { mu.Lock(); defer mu.Unlock(); return len(acked), after }
	pollUntil(t, 20*time.Second, "registrations before the kill", func() bool { n, _ := count(); return n >= 50 })
	mu.Lock()
	primary.Kill()
	close(killed)
	mu.Unlock()
	pollUntil(t, 30*time.Second, "registrations after the failover", func() bool { _, a := count(); return a >= 20 })
	close(stop)
	<-done

	var promoted *redistest.Server
	for _, r := range replicas {
		if v, err := r.Do("ROLE"); err == nil && strings.HasPrefix(v, "master") {
			promoted = r
		}
	}
	if promoted == nil {
		t.Fatal("no replica was promoted")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, node := range acked {
		if v := mustDo(t, promoted, "HEXISTS", svcKey("orders"), node); v != "1" {
			t.Fatalf("acknowledged registration %s lost in the failover (%d acknowledged)", node, len(acked))
		}
		if !hasNode(st.reg, "orders", node, "") {
			t.Fatalf("acknowledged registration %s missing locally", node)
		}
	}
	t.Logf("%d registrations acknowledged, %d after the failover", len(acked), after)
}
