package main

import (
	"math"
	"math/bits"
	"time"
)

// histSubBits is the number of mantissa bits each power of two is split
// into: 64 sub-buckets per octave, so a recorded value is off by at most
// 1/128 (0.8 %) when reported as its bucket's midpoint.
const histSubBits = 6

const (
	histSub     = 1 << histSubBits // sub-buckets per octave
	histBuckets = histSub * (64 - histSubBits + 1)
)

// Histogram records latencies in nanoseconds in log-linear buckets (the HDR
// histogram layout): exact below 128 ns, then 64 buckets per power of two.
// Recording is one index computation and one increment, so each load worker
// owns one Histogram and the results are merged after the run. A Histogram
// is not safe for concurrent use.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    uint64
	min    uint64
	max    uint64
}

// histIndex returns the bucket of v. Values below 2*histSub map to
// themselves; above that, v = m<<e with m in [histSub, 2*histSub) maps to
// histSub*e + m, which keeps the indices contiguous.
func histIndex(v uint64) int {
	if v < 2*histSub {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits - 1
	m := v >> uint(e)
	return histSub*e + int(m)
}

// histBounds returns the lowest value of bucket i and its width.
func histBounds(i int) (lo, width uint64) {
	if i < 2*histSub {
		return uint64(i), 1
	}
	e := i/histSub - 1
	m := uint64(i - histSub*e)
	return m << uint(e), 1 << uint(e)
}

// Record adds one latency. Negative durations (a clock step) count as 0.
func (h *Histogram) Record(d time.Duration) { h.RecordN(d, 1) }

// RecordN adds n values of d at once.
func (h *Histogram) RecordN(d time.Duration, n uint64) {
	if n == 0 {
		return
	}
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[histIndex(v)] += n
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n += n
	h.sum += n * v
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Min returns the smallest recorded value (0 when empty).
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max returns the largest recorded value (0 when empty).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the arithmetic mean (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}

// Quantile returns the value below which a fraction q (0..1) of the
// recorded values fall, using the nearest-rank definition: the smallest
// recorded value v such that at least ceil(q*n) values are ≤ v. The answer
// is the midpoint of v's bucket, clamped to [Min, Max] so that p0 and p100
// are exact.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q <= 0 {
		return time.Duration(h.min)
	}
	if q >= 1 {
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen < rank {
			continue
		}
		lo, w := histBounds(i)
		v := lo + (w-1)/2
		v = max(v, h.min)
		v = min(v, h.max)
		return time.Duration(v)
	}
	return time.Duration(h.max)
}
