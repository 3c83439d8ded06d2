package gateway

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

const bigBody = 5 << 20

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// A 5 MB upload arrives byte-identical, and the node starts receiving it
// before the client has finished sending: the gateway streams it.
func TestUploadStreamed(t *testing.T) {
	f := newFixture(t, nil)
	payload := randomBytes(t, bigBody)
	started := make(chan struct{}, 1)
	b := startBackend(t, "up", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	})
	b.keep = false
	f.register("svc", "up", b, 1, nil)

	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "POST /svc/upload HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n", len(payload))
	half := len(payload) / 2
	if _, err := conn.Write(payload[:half]); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the node saw nothing while half the body was sent: the body was buffered, not streamed")
	}
	if _, err := conn.Write(payload[half:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	want := fmt.Sprintf("%d %s", len(payload), sum(payload))
	if resp.StatusCode != 200 || string(got) != want {
		t.Fatalf("got %d %q, want %q", resp.StatusCode, got, want)
	}

	// And a chunked upload of unknown length, through net/http.
	status, _, body := f.do("POST", "/svc/upload", io.MultiReader(bytes.NewReader(payload)), nil)
	<-started
	if status != 200 || string(body) != want {
		t.Fatalf("chunked: got %d %q", status, body)
	}
}

// A 5 MB download arrives byte-identical, and the client receives its
// first megabyte before the node has written the rest.
func TestDownloadStreamed(t *testing.T) {
	f := newFixture(t, nil)
	payload := randomBytes(t, bigBody)
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			proceed := make(chan struct{})
			b := startBackend(t, "down", func(w http.ResponseWriter, r *http.Request) {
				if !chunked {
					w.Header().Set("Content-Length", fmt.Sprint(len(payload)))
				}
				w.Write(payload[:1<<20])
				w.(http.Flusher).Flush()
				select {
				case <-proceed:
				case <-time.After(10 * time.Second):
				}
				w.Write(payload[1<<20:])
			})
			svc := fmt.Sprintf("dl%v", chunked)
			f.register(svc, "down", b, 1, nil)
			resp, err := f.client.Get(f.url + "/" + svc + "/file")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			first := make([]byte, 1<<20)
			done := make(chan error, 1)
			go func() { _, err := io.ReadFull(resp.Body, first); done <- err }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(8 * time.Second):
				t.Fatal("no byte reached the client before the node finished: the response was buffered")
			}
			close(proceed)
			rest, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if got := sum(append(first, rest...)); got != sum(payload) {
				t.Fatal("download differs")
			}
			if chunked == (resp.ContentLength >= 0) {
				t.Errorf("Content-Length %d for chunked=%v", resp.ContentLength, chunked)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	const limit = 1 << 20
	f := newFixture(t, func(o *Options) { o.MaxBodySize = limit; o.StreamThreshold = 64 << 10 })
	b := startBackend(t, "a", nil)
	f.register("svc", "a", b, 1, nil)

	// Declared too large: refused before anything is forwarded. Exactly
	// the 8 KiB the server reads ahead are sent, so no unread byte turns
	// the close into a reset.
	line := f.rawRequest(fmt.Sprintf("POST /svc/x HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n%s", 2*limit, strings.Repeat("a", 8<<10)))
	if line != "HTTP/1.1 413 Request Entity Too Large" {
		t.Fatalf("declared length: %q", line)
	}
	if b.hits.Load() != 0 {
		t.Fatalf("backend got %d requests", b.hits.Load())
	}

	// Chunked, discovered too large while streaming.
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST /svc/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n")
	chunk := strings.Repeat("b", 64<<10)
	for sent := 0; sent <= limit; sent += len(chunk) {
		fmt.Fprintf(conn, "%x\r\n%s\r\n", len(chunk), chunk)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked: status %d", resp.StatusCode)
	}

	// At the limit is fine.
	status, _, _ := f.do("POST", "/svc/x", bytes.NewReader(make([]byte, limit)), nil)
	if status != 200 {
		t.Fatalf("at the limit: %d", status)
	}
	if got := b.last().Len; got != limit {
		t.Fatalf("backend got %d bytes", got)
	}
}

// Redirects are passed through, never followed; statuses and headers kept.
func TestResponsesPassThrough(t *testing.T) {
	f := newFixture(t, nil)
	b := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			w.Header().Set("Location", "http://elsewhere.example/next?x=1")
			w.WriteHeader(http.StatusFound)
		case "/teapot":
			w.Header().Set("X-Custom", "v")
			w.Header()["Date"] = nil
			w.WriteHeader(http.StatusTeapot)
			io.WriteString(w, "short and stout")
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/raw":
			w.Header()["Content-Type"] = nil
			io.WriteString(w, "raw")
		default:
			w.Header().Set("Content-Length", "11")
			io.WriteString(w, "hello world")
		}
	})
	f.register("svc", "a", b, 1, nil)

	status, hdr, _ := f.do("GET", "/svc/redirect", nil, nil)
	if status != http.StatusFound || hdr.Get("Location") != "http://elsewhere.example/next?x=1" {
		t.Fatalf("redirect: %d %q", status, hdr.Get("Location"))
	}
	if b.hits.Load() != 1 {
		t.Fatalf("redirect followed: %d hits", b.hits.Load())
	}
	status, hdr, body := f.do("GET", "/svc/teapot", nil, nil)
	if status != http.StatusTeapot || hdr.Get("X-Custom") != "v" || string(body) != "short and stout" {
		t.Fatalf("teapot: %d %v %q", status, hdr, body)
	}
	if status, _, body = f.do("GET", "/svc/nocontent", nil, nil); status != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("204: %d %q", status, body)
	}
	status, hdr, body = f.do("GET", "/svc/raw", nil, nil)
	if status != 200 || string(body) != "raw" || hdr.Get("Content-Type") != "" {
		t.Fatalf("raw: %d %q Content-Type %q", status, body, hdr.Get("Content-Type"))
	}
	req, _ := http.NewRequest("HEAD", f.url+"/svc/head", nil)
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != 11 {
		t.Fatalf("HEAD: %d Content-Length %d", resp.StatusCode, resp.ContentLength)
	}
}
