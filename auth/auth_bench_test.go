package auth

import (
	"strconv"
	"testing"
)

// BenchmarkVerify is the per-request cost of an authenticated admin call.
func BenchmarkVerify(b *testing.B) {
	a := mustNew(b, testOptions(b))
	tok, _, err := a.SignIn("admin", "admin")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBearerToken(b *testing.B) {
	h := []byte("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2ln")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := BearerToken(h); !ok {
			b.Fatal("not ok")
		}
	}
}

func BenchmarkRateLimiterAllow(b *testing.B) {
	l := NewRateLimiter(60, 10, 1024, nil)
	keys := make([]string, 4096) // more keys than the cap: exercises eviction
	for i := range keys {
		keys[i] = "10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l.Allow(keys[i%len(keys)])
		i++
	}
}
