package gateway

import (
	"strings"
	"testing"
)

// Malformed and smuggling-shaped requests are answered 400 and never reach
// a node.
func TestMalformedRequests(t *testing.T) {
	f := newFixture(t, nil)
	b := startBackend(t, "a", nil)
	f.register("svc", "a", b, 1, nil)
	f.waitNodes("svc", 1)

	tests := []struct {
		name string
		raw  string
	}{
		{"CL and TE", "POST /svc/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"TE and CL", "POST /svc/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"},
		{"two CL", "POST /svc/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"},
		{"TE not chunked", "POST /svc/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
		{"TE on HTTP/1.0", "POST /svc/x HTTP/1.0\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"space before colon", "POST /svc/x HTTP/1.1\r\nHost: gw\r\nContent-Length : 4\r\n\r\nabcd"},
		{"bad CL", "POST /svc/x HTTP/1.1\r\nHost: gw\r\nContent-Length: -4\r\n\r\nabcd"},
		{"bad request line", "GET/svc/x HTTP/1.1\r\nHost: gw\r\n\r\n"},
		{"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"},
		{"bad version", "GET /svc/x HTTP/9.9x\r\nHost: gw\r\n\r\n"},
		{"oversized headers", "GET /svc/x HTTP/1.1\r\nHost: gw\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n"},
		{"no Host", "GET /svc/x HTTP/1.1\r\n\r\n"},
		{"two Hosts", "GET /svc/x HTTP/1.1\r\nHost: gw\r\nHost: svc\r\n\r\n"},
		{"Host with space", "GET /svc/x HTTP/1.1\r\nHost: g w\r\n\r\n"},
		{"Host with slash", "GET /svc/x HTTP/1.1\r\nHost: svc/evil\r\n\r\n"},
		{"Host with at", "GET /svc/x HTTP/1.1\r\nHost: user@svc\r\n\r\n"},
		{"Host bad port", "GET /svc/x HTTP/1.1\r\nHost: svc:80a\r\n\r\n"},
		{"Host open bracket", "GET /svc/x HTTP/1.1\r\nHost: [::1\r\n\r\n"},
		{"dot-dot", "GET /svc/../admin HTTP/1.1\r\nHost: gw\r\n\r\n"},
		{"encoded dot-dot", "GET /svc/%2e%2E/admin HTTP/1.1\r\nHost: gw\r\n\r\n"},
		{"dot", "GET /svc/./x HTTP/1.1\r\nHost: gw\r\n\r\n"},
		{"asterisk", "OPTIONS * HTTP/1.1\r\nHost: gw\r\n\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line := f.rawRequest(tc.raw)
			if !strings.HasPrefix(line, "HTTP/1.1 400") {
				t.Fatalf("got %q, want 400", line)
			}
		})
	}
	if n := b.hits.Load(); n != 0 {
		t.Fatalf("%d malformed requests reached the node", n)
	}
	// And a well-formed one does.
	if line := f.rawRequest("GET /svc/x HTTP/1.1\r\nHost: gw:8000\r\n\r\n"); line != "HTTP/1.1 200 OK" {
		t.Fatalf("well-formed request: %q", line)
	}
	if line := f.rawRequest("GET /svc/x..y/.z HTTP/1.0\r\n\r\n"); line != "HTTP/1.1 200 OK" {
		t.Fatalf("HTTP/1.0 without Host, dots inside segments: %q", line)
	}
}

func TestValidHost(t *testing.T) {
	for host, want := range map[string]bool{
		"svc": true, "svc:8000": true, "a.b-c_d~e": true, "[::1]:80": true, "[fe80::1%25eth0]": true,
		"svc:": true, "127.0.0.1:1": true,
		"s v": false, "a/b": false, "a@b": false, "a:b": false, "[::1": false, "a:123456": false, "a\"b": false,
	} {
		if got := validHost([]byte(host)); got != want {
			t.Errorf("validHost(%q) = %v", host, got)
		}
	}
}
