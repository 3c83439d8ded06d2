package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistIndexBoundsRoundTrip(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 63, 64, 127, 128, 129, 255, 256, 1000, 1 << 20, 123456789, 1 << 40, 1<<63 - 1, 1 << 63, ^uint64(0)} {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d, out of [0,%d)", v, i, histBuckets)
		}
		lo, w := histBounds(i)
		if v < lo || v-lo >= w {
			t.Fatalf("value %d in bucket %d = [%d,%d+%d)", v, i, lo, lo, w)
		}
		if i < prev {
			t.Fatalf("index not monotonic at %d", v)
		}
		prev = i
	}
	// Every bucket's lower bound maps back to that bucket, and buckets tile
	// the number line without gaps.
	for i := 0; i < histBuckets-1; i++ {
		lo, w := histBounds(i)
		if histIndex(lo) != i {
			t.Fatalf("histIndex(lower bound of %d) = %d", i, histIndex(lo))
		}
		next, _ := histBounds(i + 1)
		if lo+w != next {
			t.Fatalf("gap after bucket %d: %d+%d != %d", i, lo, w, next)
		}
	}
}

func TestQuantileEmptyAndSingle(t *testing.T) {
	var h Histogram
	if h.Quantile(0.99) != 0 || h.Count() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram must report zeros")
	}
	h.Record(1234567 * time.Nanosecond)
	for _, q := range []float64{0, 0.5, 0.99, 0.999, 1} {
		if got := h.Quantile(q); got != 1234567 {
			t.Fatalf("single value: q%.3f = %d, want exact 1234567 (clamped to min/max)", q, got)
		}
	}
	h.Record(-5) // clock step: counts as 0
	if h.Min() != 0 || h.Count() != 2 {
		t.Fatalf("negative value: min %d count %d", h.Min(), h.Count())
	}
}

// TestQuantileAgainstExact compares with the exact nearest-rank quantiles
// of a wide, skewed sample; the bucket layout promises < 1 % error.
func TestQuantileAgainstExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]time.Duration, 200000)
	for i := range vals {
		// log-uniform between 10 µs and 1 s
		v := time.Duration(10e3 * math.Pow(1e5, rng.Float64()))
		vals[i] = v
		h.Record(v)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		rank := int(float64(len(vals))*q+0.999999) - 1
		exact := vals[rank]
		got := h.Quantile(q)
		if rel := float64(got-exact) / float64(exact); rel > 0.01 || rel < -0.01 {
			t.Errorf("q%.3f: got %s, exact %s (%.2f %%)", q, got, exact, 100*rel)
		}
	}
	if h.Min() != vals[0] || h.Max() != vals[len(vals)-1] || h.Quantile(1) != vals[len(vals)-1] {
		t.Error("min/max must be exact")
	}
}

func TestMergeEqualsRecordingTogether(t *testing.T) {
	var a, b, all Histogram
	for i := range 1000 {
		d := time.Duration(i*i) * time.Microsecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{}) // empty merge is a no-op
	if m != all {
		t.Fatal("merged histogram differs from one recording everything")
	}
}
