package config

import (
	"sync"
	"testing"
)

func TestParseEnums(t *testing.T) {
	for i, name := range []string{"RR", "CH", "RH", "LR"} {
		s, ok := ParseStrategy(name)
		if !ok || int(s) != i || s.String() != name || s.Enum().Ordinal != i {
			t.Fatalf("strategy %s -> %v %v", name, s, ok)
		}
	}
	if _, ok := ParseStrategy("rr"); ok {
		t.Fatal("lower-case strategy accepted")
	}
	if m, ok := ParseDiscoveryMode("PROXY"); !ok || m != Proxy || m.Enum().Message != "Proxy" {
		t.Fatal("PROXY")
	}
	if f, ok := ParseLogFormat("PLAIN"); !ok || f != PlainLogs || f.Enum().Message != "Plain logs" {
		t.Fatal("PLAIN")
	}
	if _, ok := ParseLogFormat("XML"); ok {
		t.Fatal("XML accepted")
	}
}

func TestUpdate(t *testing.T) {
	s := New(Defaults())
	var seen []Settings
	s.Subscribe(func(old, cur Settings) { seen = append(seen, old, cur) })
	g := s.Generation()
	before := s.Load()
	old, cur := s.Update(func(st *Settings) { st.Strategy = LeastRequest })
	if old.Strategy != RoundRobin || cur.Strategy != LeastRequest || s.Load().Strategy != LeastRequest {
		t.Fatal("update not applied")
	}
	if before.Strategy != RoundRobin {
		t.Fatal("a loaded Settings value was modified in place")
	}
	if s.Generation() == g || len(seen) != 2 {
		t.Fatal("generation or subscribers not updated")
	}
	g = s.Generation()
	s.Update(func(st *Settings) { st.Strategy = LeastRequest })
	if s.Generation() != g || len(seen) != 2 {
		t.Fatal("a no-op update counted as a change")
	}
}

func TestConcurrentLoadUpdate(t *testing.T) {
	s := New(Defaults())
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				if g%2 == 0 {
					s.Update(func(st *Settings) { st.HeartBeatTimeout = 1 + i%10 })
				} else if hb := s.Load().HeartBeatTimeout; hb < 1 || hb > 10 && hb != 5 {
					t.Errorf("torn read %d", hb)
				}
			}
		}(g)
	}
	wg.Wait()
}
