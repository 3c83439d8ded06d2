package gateway

import (
	"bufio"
	"bytes"
	"net/url"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzValidPath checks the dot-segment rule: whatever validPath accepts
// has no "." or ".." segment once percent-decoded, so the node resolves
// the path as the gateway routed it.
func FuzzValidPath(f *testing.F) {
	for _, s := range []string{"/a/b", "/a/../b", "/%2e%2E/x", "/.", "/a/.%2e", "/a//b", "/..;/x", "/%zz"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		if !validPath(p) {
			return
		}
		dec, err := url.PathUnescape(string(p))
		if err != nil {
			return // the node will refuse it too
		}
		for _, seg := range strings.Split(dec, "/") {
			if seg == "." || seg == ".." {
				// Only an encoded slash can smuggle a segment past the raw
				// check; "%2f.." stays one segment for the node as well.
				if !bytes.Contains(bytes.ToLower(p), []byte("%2f")) {
					t.Fatalf("validPath accepted %q (decoded %q)", p, dec)
				}
			}
		}
	})
}

// FuzzRequestHead feeds raw request heads through fasthttp's parser and the
// gateway's checks: nothing panics, and an accepted request never carries
// both Content-Length and chunked Transfer-Encoding.
func FuzzRequestHead(f *testing.F) {
	for _, s := range []string{
		"GET /svc/x HTTP/1.1\r\nHost: svc\r\n\r\n",
		"POST /svc/x HTTP/1.1\r\nHost: svc\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET /svc/x HTTP/1.1\r\nHost: [::1]:80\r\nContent-Length : 1\r\n\r\n",
		"GET /../x HTTP/1.1\r\nHost: a b\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ctx fasthttp.RequestCtx
		if err := ctx.Request.Header.Read(bufio.NewReader(bytes.NewReader(raw))); err != nil {
			return
		}
		if !validRequest(&ctx) {
			return
		}
		h := &ctx.Request.Header
		if h.ContentLength() == -1 && bytes.Contains(append([]byte("\n"), bytes.ToLower(h.RawHeaders())...), []byte("\ncontent-length:")) {
			t.Fatalf("accepted chunked request with Content-Length: %q", raw)
		}
	})
}
