package gateway

import (
	"net/http"
	"strings"
	"testing"
)

func TestAllowList(t *testing.T) {
	a, err := NewAllowList([]string{"10.0.0.0/8", " 192.168.1.7 ", "fd00::/8", ""})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		ok   bool
	}{
		{"10.1.2.3", true},
		{"http://10.1.2.3:8080", true},
		{"https://10.255.0.1/base/path", true},
		{"192.168.1.7:9000", true},
		{"[fd00::1]:80", true},
		{"http://[fd12::2]/x", true},
		{"::ffff:10.0.0.1", true},
		{"11.0.0.1", false},
		{"http://127.0.0.1:8080", false},
		{"169.254.169.254", false},
		{"192.168.1.8", false},
		{"localhost", false},
		{"http://LOCALHOST:8080", false},
		{"[::1]:80", false},
	}
	for _, tc := range tests {
		if err := a.Check(tc.host); (err == nil) != tc.ok {
			t.Errorf("Check(%q) = %v, want allowed=%v", tc.host, err, tc.ok)
		}
	}
	loop, _ := NewAllowList([]string{"127.0.0.0/8", "::1/128"})
	if err := loop.Check("http://localhost:9000"); err != nil {
		t.Errorf("localhost within loopback: %v", err)
	}
	var none *AllowList
	if err := none.Check("anything.example"); err != nil {
		t.Errorf("nil list: %v", err)
	}
	if empty, _ := NewAllowList(nil); empty.Check("8.8.8.8") != nil {
		t.Error("empty list refused")
	}
	for _, bad := range []string{"10.0.0.0/33", "not-an-ip", "10.0.0/8"} {
		if _, err := NewAllowList([]string{bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("NewAllowList(%q) = %v", bad, err)
		}
	}
}

// With Options.AllowList the gateway itself refuses to connect outside it.
func TestAllowListEnforcedOnDial(t *testing.T) {
	al, _ := NewAllowList([]string{"10.0.0.0/8"})
	f := newFixture(t, func(o *Options) { o.AllowList = al })
	b := startBackend(t, "a", nil)
	f.register("svc", "a", b, 1, nil)
	if status, _, _ := f.do("GET", "/svc/x", nil, nil); status != http.StatusBadGateway {
		t.Fatalf("status %d", status)
	}
	if b.hits.Load() != 0 || f.p.AllowList() != al {
		t.Fatal("connected outside the allow-list")
	}
}
