package persistence

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/maxine-io/maxine/internal/redistest"
	"github.com/maxine-io/maxine/registry"
)

// A leader's health verdict is taken only with the current token, reaches
// the other instances, and is kept in Redis until the node is healthy
// again.
func TestRedisHealthShared(t *testing.T) {
	srv := redistest.Start(t)
	var got sync.Map
	o := func(id string) RedisOptions {
		return RedisOptions{URL: srv.URL(0), InstanceID: id, OnHealth: func(v HealthVerdict) { got.Store(id, v) }}
	}
	a := startStore(t, o("a"))
	b := startStore(t, o("b"))
	ctx := context.Background()
	mustDo(t, srv, "SET", testPrefix+":fence", "3")
	mustDo(t, srv, "SET", testPrefix+":leader", "lease-a")
	v := HealthVerdict{Service: "orders", Node: "n1", Address: "http://127.0.0.1:9001", Healthy: false}

	if err := a.SaveHealth(ctx, v, fencedBy(a.client, "lease-a", "2")); !errors.Is(err, ErrFenced) {
		t.Fatalf("SaveHealth with a stale token: %v; want ErrFenced", err)
	}
	if list, err := b.LoadHealth(ctx); err != nil || len(list) != 0 {
		t.Fatalf("a stale verdict was stored: %v %v", list, err)
	}
	if err := a.SaveHealth(ctx, v, fencedBy(a.client, "lease-a", "3")); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 10*time.Second, "verdict on b", func() bool {
		x, ok := got.Load("b")
		return ok && x.(HealthVerdict).Address == v.Address && !x.(HealthVerdict).Healthy
	})
	if _, ok := got.Load("a"); ok {
		t.Fatal("OnHealth called on the instance that saved the verdict")
	}
	list, err := b.LoadHealth(ctx)
	if err != nil || len(list) != 1 || list[0].Node != "n1" || list[0].Healthy {
		t.Fatalf("LoadHealth = %+v, %v", list, err)
	}
	v.Healthy = true
	if err := a.SaveHealth(ctx, v, fencedBy(a.client, "lease-a", "3")); err != nil {
		t.Fatal(err)
	}
	if list, err := b.LoadHealth(ctx); err != nil || len(list) != 0 {
		t.Fatalf("healthy node still listed: %+v %v", list, err)
	}
}

// A registration that arrives between the listeners opening and Run's
// goroutine starting waits for Run instead of failing (a 503 a client
// would see right after start-up).
func TestRedisRegisterBeforeRunWaits(t *testing.T) {
	srv := redistest.Start(t)
	reg := registry.New(registry.Options{})
	o := RedisOptions{URL: srv.URL(0), InstanceID: "a", Registry: reg}
	client, err := NewRedisClient(o)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	s, err := NewRedis(o, client)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		_, err := s.Register(ctx, testReg("orders", "n1", 9001))
		res <- err
	}()
	time.Sleep(100 * time.Millisecond) // the registration is waiting; the result does not depend on this
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	if err := <-res; err != nil {
		t.Fatalf("Register before Run: %v", err)
	}
	if reg.Snapshot("orders") == nil {
		t.Fatal("not applied locally")
	}
	cancel()
	<-done
}
