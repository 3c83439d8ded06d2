package auth

import "testing"

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   string
		ok     bool
	}{
		{"Bearer abc.def.ghi", "abc.def.ghi", true},
		{"bearer abc", "abc", true},
		{"BEARER abc", "abc", true},
		{"bEaReR\tabc", "abc", true},
		{"  Bearer   abc  ", "abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Bearer    ", "", false},
		{"Bearerabc", "", false},
		{"Basic YWRtaW46YWRtaW4=", "", false},
		{"Bearer a b", "", false},
		{"Bearer a\tb", "", false},
		{"Bearex abc", "", false},
		{"Bear\x80r abc", "", false},
		{"", "", false},
		{"abc.def.ghi", "", false},
	} {
		got, ok := BearerToken([]byte(tc.header))
		if ok != tc.ok || string(got) != tc.want {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBearerTokenAllocs(t *testing.T) {
	h := []byte("Bearer abc.def.ghi")
	if n := testing.AllocsPerRun(100, func() { BearerToken(h) }); n != 0 {
		t.Fatalf("BearerToken allocates %v times", n)
	}
}

func TestConstantTimeEqual(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"token", "token", true},
		{"token", "tokeN", false},
		{"token", "token2", false},
		{"", "x", false},
	} {
		if got := ConstantTimeEqual(tc.a, tc.b); got != tc.want {
			t.Errorf("ConstantTimeEqual(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}
