package main

import (
	"context"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestScheduleOffsetsDoNotDrift(t *testing.T) {
	s := Schedule{Start: time.Unix(1000, 0), Rate: 3}
	want := []time.Duration{0, 333333333, 666666666, time.Second, time.Second + 333333333}
	for i, w := range want {
		if got := s.Offset(uint64(i)); got != w {
			t.Fatalf("Offset(%d) = %d, want %d", i, got, w)
		}
	}
	// Far into the run the offset is still exact: i/rate seconds.
	s.Rate = 7000
	if got := s.Offset(7000 * 3600); got != time.Hour {
		t.Fatalf("Offset after an hour = %s, want exactly 1h", got)
	}
	if got := s.At(14000); !got.Equal(s.Start.Add(2 * time.Second)) {
		t.Fatalf("At(14000) = %v", got)
	}
	// Large indices must not overflow (i*1e9 would for i > 9.2e9).
	s.Rate = 1_000_000
	if got := s.Offset(20_000_000_000); got != 20000*time.Second {
		t.Fatalf("Offset(2e10) = %s", got)
	}
}

func TestScheduleCount(t *testing.T) {
	cases := []struct {
		rate uint64
		d    time.Duration
		want uint64
	}{
		{5000, 5 * time.Second, 25000},
		{5000, 0, 0},
		{3, time.Second, 3},
		{3, time.Second + 1, 4},               // request 3 is due at exactly 1 s
		{3, 333333333, 1},                     // offsets 0 < d, 333333333 is not < d
		{3, 333333334, 2},                     //
		{1000, 1500 * time.Millisecond, 1500}, //
		{7, 10 * time.Second, 70},
	}
	for _, c := range cases {
		s := Schedule{Rate: c.rate}
		got := s.Count(c.d)
		if got != c.want {
			t.Errorf("Count(rate %d, %s) = %d, want %d", c.rate, c.d, got, c.want)
		}
		// Definition: exactly the i with Offset(i) < d.
		if got > 0 && s.Offset(got-1) >= c.d {
			t.Errorf("rate %d d %s: last counted request due at %s, not before d", c.rate, c.d, s.Offset(got-1))
		}
		if s.Offset(got) < c.d {
			t.Errorf("rate %d d %s: request %d due at %s is before d but not counted", c.rate, c.d, got, s.Offset(got))
		}
	}
}

// TestRunsAgainstLocalServer drives both loops briefly against the bench
// upstream: they must stop by themselves, count correctly and respect
// the count cap.
func TestRunsAgainstLocalServer(t *testing.T) {
	up, err := StartUpstream()
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	l := &Load{Addr: up.Addr, Conns: 4, Warmup: 50 * time.Millisecond, Duration: 300 * time.Millisecond, Expect: 200, Request: getRequests(up.Addr, "/x")}
	st := l.RunClosed(ctx)
	if st.OK == 0 || st.Errors != 0 || st.Hist.Count() != st.OK {
		t.Fatalf("closed loop: ok %d errors %d (%s) hist %d", st.OK, st.Errors, st.FirstErr, st.Hist.Count())
	}
	if st.Elapsed < 250*time.Millisecond || st.Elapsed > 400*time.Millisecond {
		t.Fatalf("closed loop window %s, want ≈300ms", st.Elapsed)
	}

	l.MaxRequests, l.Warmup, l.Duration = 100, 0, 5*time.Second
	start := time.Now()
	st = l.RunClosed(ctx)
	if st.OK != 100 || time.Since(start) > 3*time.Second {
		t.Fatalf("count-capped closed loop: ok %d in %s", st.OK, time.Since(start))
	}

	l.MaxRequests, l.Warmup, l.Duration = 0, 100*time.Millisecond, 400*time.Millisecond
	st = l.RunOpen(ctx, 1000)
	if st.OK+st.Errors+st.Missed != 400 || st.Errors != 0 {
		t.Fatalf("open loop: ok %d errors %d missed %d (%s), want 400 requests", st.OK, st.Errors, st.Missed, st.FirstErr)
	}
	if st.Elapsed < 400*time.Millisecond {
		t.Fatalf("open loop window %s, want at least the planned 400ms", st.Elapsed)
	}

	l.Expect = 302 // every answer is now "wrong"
	l.Warmup, l.Duration = 0, 100*time.Millisecond
	st = l.RunClosed(ctx)
	if st.OK != 0 || st.Errors == 0 || st.healthy() || st.FirstErr != "status 200, want 302" {
		t.Fatalf("unexpected status not counted as error: %+v", st.FirstErr)
	}
}

func TestRegisterBody(t *testing.T) {
	shape := regShape{servicePrefix: "disc-", services: 10000, perService: 10, nodePrefix: "n-", port: portFor, timeOut: 3600}
	got := string(shape.appendBody(nil, 12345))
	want := `{"serviceName":"disc-1234","nodeName":"n-12345","hostName":"127.0.0.1","port":13369,"timeOut":3600,"weight":1}`
	if got != want {
		t.Fatalf("body\n got %s\nwant %s", got, want)
	}
	hb := regShape{servicePrefix: "hb-", services: 100, nodePrefix: "node-", nodes: 1000, port: portFor, timeOut: 600}
	if a, b := string(hb.appendBody(nil, 1042)), string(hb.appendBody(nil, 42)); a != b {
		t.Fatalf("re-heartbeat of node 42 differs: %s vs %s", a, b)
	}
	r := string(appendRegistration(nil, Registration{Service: "s", Node: "n", Host: "127.0.0.1", Port: 9001, TimeOut: 60}))
	if r != `{"serviceName":"s","nodeName":"n","hostName":"127.0.0.1","port":9001,"timeOut":60,"weight":1}` {
		t.Fatalf("registration %s", r)
	}
	var req fasthttp.Request
	fillRegister(&req, "127.0.0.1:1", []byte(r))
	if string(req.Header.Method()) != "POST" || string(req.URI().Path()) != registerPath || string(req.Header.ContentType()) != "application/json" {
		t.Fatalf("request %s", req.String())
	}
}

// TestNodePortsBelowEphemeral: registered nodes never claim a port of the
// ephemeral range, where maxine's own listeners are (it refuses those
// with 403, which once failed 4 of a 100,000-node fill).
func TestNodePortsBelowEphemeral(t *testing.T) {
	for k := range uint64(200_000) {
		if p := portFor(k); p < 1024 || p >= 32768 {
			t.Fatalf("portFor(%d) = %d, want 1024..32767", k, p)
		}
	}
}
