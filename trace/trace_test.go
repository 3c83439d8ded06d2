package trace

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", false}, // version 00 has exactly 55 chars
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", false},
		{"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"", false},
		{strings.Repeat("z", 55), false},
	}
	for _, tc := range tests {
		c, ok := Parse([]byte(tc.in))
		if ok != tc.ok {
			t.Fatalf("Parse(%q) ok = %v, want %v", tc.in, ok, tc.ok)
		}
		if ok && tc.in[:2] == "00" && c.String() != tc.in {
			t.Fatalf("round trip %q -> %q", tc.in, c.String())
		}
	}
}

func TestNewAndChild(t *testing.T) {
	c := New()
	s := c.String()
	back, ok := Parse([]byte(s))
	if !ok || back != c || s[53:] != "01" {
		t.Fatalf("New() = %q does not parse back", s)
	}
	child := c.Child()
	if child.TraceID != c.TraceID || child.SpanID == c.SpanID {
		t.Fatal("Child must keep the trace id and change the span id")
	}
	if c.TraceIDString() != s[3:35] {
		t.Fatal("TraceIDString")
	}
}

func TestParseAllocatesNothing(t *testing.T) {
	in := []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	var buf [64]byte
	if n := testing.AllocsPerRun(100, func() {
		c, _ := Parse(in)
		_ = c.Child().AppendTraceparent(buf[:0])
	}); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
	f.Add([]byte("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds"))
	f.Add([]byte("00-"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, ok := Parse(b)
		if !ok {
			return
		}
		again, ok2 := Parse([]byte(c.String()))
		if !ok2 || again != c {
			t.Fatalf("accepted %q but its canonical form %q does not round-trip", b, c.String())
		}
	})
}

func TestParseTraceID(t *testing.T) {
	if id, ok := ParseTraceID([]byte("4bf92f3577b34da6a3ce929d0e0e4736")); !ok || id[0] != 0x4b || id[15] != 0x36 {
		t.Fatal("valid id refused")
	}
	for _, bad := range []string{"", "4bf92f3577b34da6a3ce929d0e0e473", "4BF92F3577B34DA6A3CE929D0E0E4736", "00000000000000000000000000000000", "zzf92f3577b34da6a3ce929d0e0e4736"} {
		if _, ok := ParseTraceID([]byte(bad)); ok {
			t.Fatalf("ParseTraceID(%q) accepted", bad)
		}
	}
}
