package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// RequestFunc fills req for the seq-th request sent by one worker. Each
// worker gets its own RequestFunc from a RequestFactory, so a RequestFunc
// may keep scratch buffers without locking. It must not retain req.
type RequestFunc func(req *fasthttp.Request, seq uint64)

// RequestFactory returns the RequestFunc of worker w.
type RequestFactory func(w int) RequestFunc

// Load describes one measurement: where to send, how many connections,
// how long, and which status code counts as success. Every run is bounded
// both by time (Warmup+Duration, plus a short grace for in-flight
// requests) and by count (MaxRequests), and stops by itself.
type Load struct {
	Addr        string        // host:port, always on 127.0.0.1
	Conns       int           // closed loop: workers = connections; open loop: most requests in flight
	Warmup      time.Duration // requests sent during warm-up are not recorded
	Duration    time.Duration // measurement window
	MaxRequests uint64        // hard cap on requests sent, warm-up included (0: no cap)
	Expect      int           // expected status code
	Request     RequestFactory
	Timeout     time.Duration // per-request read/write timeout (default 5 s); failed requests count at this latency
}

// timeout returns the per-request timeout: Timeout, or 5 s.
func (l *Load) timeout() time.Duration {
	if l.Timeout <= 0 {
		return 5 * time.Second
	}
	return l.Timeout
}

// Stats is the outcome of one run of a Load.
type Stats struct {
	Hist       Histogram     // latencies of every request in the window; a failed or missed one counts as at least the timeout
	OK         uint64        // successful requests in the window
	Errors     uint64        // transport errors and unexpected statuses in the window
	Missed     uint64        // open loop: requests never sent because the run hit its hard deadline
	Elapsed    time.Duration // closed loop: the window actually used; open loop: first due time to last answer (at least the planned window)
	FirstErr   string        // first error seen, for the report
	Stopped    string        // non-empty when the run was cut short by its context
	SendLagP99 time.Duration // open loop: p99 of (actual send - intended send)
}

// RPS returns successful requests per second over the window.
func (s *Stats) RPS() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.OK) / s.Elapsed.Seconds()
}

// ErrorRate returns the fraction of requests in the window that failed.
func (s *Stats) ErrorRate() float64 {
	total := s.OK + s.Errors + s.Missed
	if total == 0 {
		return 0
	}
	return float64(s.Errors+s.Missed) / float64(total)
}

// workerResult is what one worker hands back; merged after the run.
type workerResult struct {
	hist     Histogram
	lag      Histogram
	ok       uint64
	errs     uint64
	missed   uint64
	lastDone time.Time
	firstErr string
	failAt   time.Duration // the latency a failure is recorded at: the load's timeout
}

// record counts one finished request. A failure is recorded at the
// timeout (or its own latency, if longer): a request that got no good
// answer is one its client waited for in vain, and leaving it out would
// let a target that drops its slowest requests show better percentiles.
func (r *workerResult) record(err error, latency time.Duration) {
	if err != nil {
		r.errs++
		if r.firstErr == "" {
			r.firstErr = err.Error()
		}
		r.hist.Record(max(latency, r.failAt))
		return
	}
	r.ok++
	r.hist.Record(latency)
}

// recordMissed counts one request of the window that was never sent, at
// the timeout, like a failure.
func (r *workerResult) recordMissed() {
	r.missed++
	if r.firstErr == "" {
		r.firstErr = errOpenLoopLate.Error()
	}
	r.hist.Record(r.failAt)
}

// runWorkers runs one worker per connection, each with its own request and
// response and request filler, and returns their results once all are done.
func (l *Load) runWorkers(work func(r *workerResult, fill RequestFunc, req *fasthttp.Request, resp *fasthttp.Response)) []workerResult {
	results := make([]workerResult, l.Conns)
	var wg sync.WaitGroup
	for w := range l.Conns {
		results[w].failAt = l.timeout()
		wg.Go(func() {
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			work(&results[w], l.Request(w), req, resp)
		})
	}
	wg.Wait()
	return results
}

// client returns the connection pool of one run. The bench only ever
// loads servers it started itself on loopback; anything else is a bug.
func (l *Load) client() *fasthttp.HostClient {
	if !strings.HasPrefix(l.Addr, "127.0.0.1:") {
		panic("bench: load target " + l.Addr + " is not on 127.0.0.1")
	}
	timeout := l.timeout()
	return &fasthttp.HostClient{
		Addr:                          l.Addr,
		MaxConns:                      l.Conns,
		ReadTimeout:                   timeout,
		WriteTimeout:                  timeout,
		MaxConnWaitTimeout:            timeout,
		MaxIdleConnDuration:           time.Minute,
		MaxIdemponentCallAttempts:     1, // a load generator must see every failure, not retry it away
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
	}
}

// do sends one request and classifies the answer.
func do(c *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response, expect int) error {
	if err := c.Do(req, resp); err != nil {
		return err
	}
	if sc := resp.StatusCode(); sc != expect {
		return fmt.Errorf("status %d, want %d", sc, expect)
	}
	return nil
}

// RunClosed drives a closed loop: Conns workers, each sending its next
// request as soon as the previous one is answered. It measures the
// throughput a target sustains at that concurrency; the latencies it
// reports are service times under that load.
func (l *Load) RunClosed(ctx context.Context) Stats {
	c := l.client()
	defer c.CloseIdleConnections()
	start := time.Now()
	windowStart := start.Add(l.Warmup)
	windowEnd := windowStart.Add(l.Duration)
	var sent atomic.Uint64
	results := l.runWorkers(func(r *workerResult, fill RequestFunc, req *fasthttp.Request, resp *fasthttp.Response) {
		for seq := uint64(0); ctx.Err() == nil; seq++ {
			if l.MaxRequests > 0 && sent.Add(1) > l.MaxRequests {
				return
			}
			t0 := time.Now()
			if !t0.Before(windowEnd) {
				return
			}
			fill(req, seq)
			err := do(c, req, resp, l.Expect)
			t1 := time.Now()
			if t0.Before(windowStart) || t1.After(windowEnd) {
				continue // warm-up, or finished after the window closed
			}
			r.lastDone = t1
			r.record(err, t1.Sub(t0))
		}
	})
	return closeWindow(ctx, results, windowStart, windowEnd)
}

// closeWindow merges a closed loop's worker results into the Stats of
// the measurement window that began at windowStart and was planned to end
// at windowEnd.
func closeWindow(ctx context.Context, results []workerResult, windowStart, windowEnd time.Time) Stats {
	st := mergeResults(results)
	end := windowEnd
	if now := time.Now(); now.Before(end) {
		// Stopped early (count cap, failures or cancellation): the window
		// ends at the last completion, not at its planned end.
		end = windowStart
		for i := range results {
			if results[i].lastDone.After(end) {
				end = results[i].lastDone
			}
		}
	}
	st.Elapsed = max(end.Sub(windowStart), 0)
	if ctx.Err() != nil {
		st.Stopped = stopReason(ctx)
	}
	return st
}

// Schedule is the arithmetic of an open-loop run: request i is due at
// Start + i/Rate seconds. Times are computed from i, never accumulated,
// so the schedule does not drift however long it runs.
type Schedule struct {
	Start time.Time
	Rate  uint64 // requests per second, > 0
}

// Offset returns when request i is due, relative to Start.
func (s Schedule) Offset(i uint64) time.Duration {
	sec := i / s.Rate
	frac := i % s.Rate
	return time.Duration(sec)*time.Second + time.Duration(frac*uint64(time.Second)/s.Rate)
}

// At returns the intended send time of request i.
func (s Schedule) At(i uint64) time.Time { return s.Start.Add(s.Offset(i)) }

// Count returns how many requests fall in the first d of the schedule,
// i.e. the number of i with Offset(i) < d.
func (s Schedule) Count(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	// Offset(i) < d  <=>  i*1e9/Rate < d (integer division rounds down),
	// the smallest i with Offset(i) >= d is ceil(d*Rate/1e9).
	sec := uint64(d / time.Second)
	rem := uint64(d % time.Second)
	return sec*s.Rate + (rem*s.Rate+uint64(time.Second)-1)/uint64(time.Second)
}

// errOpenLoopLate marks requests that were still unsent at the hard
// deadline because the target (or the generator) fell too far behind.
var errOpenLoopLate = errors.New("not sent before the hard deadline: rate not sustained")

// RunOpen drives an open loop at rate requests per second: request i is
// due at a fixed intended time, and its latency is measured from that
// intended time, not from when it was actually sent. A target that stalls
// therefore pays for every request that queued behind the stall, which a
// closed loop would silently not send (coordinated omission). At most
// Conns requests are in flight; if all are busy the next request waits,
// and the wait counts as latency. Requests still unsent at the hard
// deadline (Warmup+Duration+2 s) are counted as missed, and recorded at
// the timeout like failed requests.
//
// One pacer goroutine releases each request at its due time and Conns
// workers send them. The pacer sleeps with nanosleep on its own thread
// with a 1 µs timer slack: Go's timers wake sub-millisecond sleeps up to
// 1 ms late on an idle process, and that lag, charged to every target
// alike, would flatten the p99 ratios this loop exists to measure. The
// remaining lag is reported as SendLagP99.
func (l *Load) RunOpen(ctx context.Context, rate uint64) Stats {
	c := l.client()
	defer c.CloseIdleConnections()
	// Start a little in the future so every worker is parked before the
	// first request is due.
	sched := Schedule{Start: time.Now().Add(20 * time.Millisecond), Rate: rate}
	warm := sched.Count(l.Warmup)
	total := sched.Count(l.Warmup + l.Duration)
	if l.MaxRequests > 0 && total > l.MaxRequests {
		total = l.MaxRequests
	}
	hardDeadline := sched.At(total).Add(2 * time.Second)
	release := make(chan uint64, min(total, 1<<16))
	var pacerMissed atomic.Uint64
	go func() {
		defer close(release)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		setTimerSlack(time.Microsecond)
		for i := uint64(0); i < total; i++ {
			if ctx.Err() != nil || time.Now().After(hardDeadline) {
				if i < warm {
					i = warm
				}
				pacerMissed.Add(total - i)
				return
			}
			if wait := time.Until(sched.At(i)); wait > 0 {
				ts := syscall.NsecToTimespec(int64(wait))
				_ = syscall.Nanosleep(&ts, nil) // EINTR: wakes early, the next check sleeps again
				if time.Until(sched.At(i)) > 0 {
					i--
					continue
				}
			}
			release <- i
		}
	}()
	results := l.runWorkers(func(r *workerResult, fill RequestFunc, req *fasthttp.Request, resp *fasthttp.Response) {
		var seq uint64
		for i := range release {
			due := sched.At(i)
			measured := i >= warm
			t0 := time.Now()
			if t0.After(hardDeadline) || ctx.Err() != nil {
				if measured {
					r.recordMissed()
				}
				continue
			}
			fill(req, seq)
			seq++
			err := do(c, req, resp, l.Expect)
			t1 := time.Now()
			if !measured {
				continue
			}
			r.lastDone = t1
			r.lag.Record(t0.Sub(due))
			r.record(err, t1.Sub(due))
		}
	})
	st := mergeResults(results)
	st.Missed += pacerMissed.Load()
	st.Hist.RecordN(l.timeout(), pacerMissed.Load())
	if st.Missed > 0 && st.FirstErr == "" {
		st.FirstErr = errOpenLoopLate.Error()
	}
	var lag Histogram
	for i := range results {
		lag.Merge(&results[i].lag)
	}
	st.SendLagP99 = lag.Quantile(0.99)
	// The window runs from the first measured request's due time to the
	// last measured answer, so RPS is what the target delivered: a target
	// that falls behind takes longer than the planned window, and dividing
	// by the plan would print the offered rate instead.
	st.Elapsed = sched.Offset(total) - sched.Offset(warm)
	windowStart := sched.At(warm)
	for i := range results {
		if d := results[i].lastDone.Sub(windowStart); d > st.Elapsed {
			st.Elapsed = d
		}
	}
	if ctx.Err() != nil {
		st.Stopped = stopReason(ctx)
	}
	return st
}

// setTimerSlack sets the calling thread's timer slack (prctl
// PR_SET_TIMERSLACK); the Linux default of 50 µs would add that much to
// every scheduled send. Best effort: errors leave the default.
func setTimerSlack(d time.Duration) {
	const prSetTimerSlack = 29
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, uintptr(d.Nanoseconds()), 0)
}

func mergeResults(results []workerResult) Stats {
	var st Stats
	for i := range results {
		r := &results[i]
		st.Hist.Merge(&r.hist)
		st.OK += r.ok
		st.Errors += r.errs
		st.Missed += r.missed
		if st.FirstErr == "" {
			st.FirstErr = r.firstErr
		}
	}
	return st
}
