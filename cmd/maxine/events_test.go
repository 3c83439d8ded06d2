package main

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/maxine-io/maxine/observe"
	"github.com/maxine-io/maxine/registry"
)

type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A node's expiry is logged at info, naming its service and node.
func TestExpiryLoggedAtInfo(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	reg := registry.New(registry.Options{Now: func() time.Time { return now }})
	if _, err := reg.Register(registry.Registration{ServiceName: "orders", NodeName: "n1", HostName: "h", Weight: 1, TimeOut: 1}); err != nil {
		t.Fatal(err)
	}
	audit, _ := observe.NewAudit(observe.AuditOptions{})
	var out syncLog
	sink := &eventSink{audit: audit, alerts: observe.NewAlerts(observe.AlertOptions{}), log: zerolog.New(&out).Level(zerolog.InfoLevel)}
	sub := reg.Subscribe(0)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() { sink.pumpRegistry(reg, sub, metrics.NewSet(), done); close(stopped) }()
	if n := reg.ExpireDue(now.Add(2 * time.Second)); n != 1 {
		t.Fatalf("expired %d", n)
	}
	for i := 0; i < 500 && len(audit.Recent(0)) == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	close(done)
	<-stopped
	if got := out.String(); !strings.Contains(got, `"level":"info"`) || !strings.Contains(got, `"service":"orders"`) ||
		!strings.Contains(got, `"node":"n1"`) || !strings.Contains(got, "node expired") {
		t.Fatalf("expiry log: %q", got)
	}
}
