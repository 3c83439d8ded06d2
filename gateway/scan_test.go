package gateway

import (
	"math/rand/v2"
	"testing"
)

// scanBytewise is the byte-at-a-time scan that scan replaced (the same
// state machine, scanByte, on every byte), kept as the reference scan is
// compared with.
func (c *headConn) scanBytewise(b []byte) int {
	for i, ch := range b {
		if c.scanByte(ch) {
			return i
		}
		if !c.inHead.Load() {
			return -1
		}
	}
	return -1
}

// TestScanMatchesBytewise: the vectorized scan finds the same bare CR or
// LF, and the same end of the head, as the byte-at-a-time state machine,
// over random heads split into random chunks (as reads deliver them).
func TestScanMatchesBytewise(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("a: \r\n")
	for n := range 200_000 {
		head := make([]byte, rng.IntN(40))
		for i := range head {
			head[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if n%3 == 0 { // mostly well-formed heads too
			head = append([]byte("GET /x HTTP/1.1\r\nHost: a\r\n"), head...)
		}
		fast, slow := &headConn{}, &headConn{}
		fast.inHead.Store(true)
		slow.inHead.Store(true)
		for off := 0; off < len(head) && fast.inHead.Load(); {
			end := min(len(head), off+1+rng.IntN(12))
			chunk := head[off:end]
			got, want := fast.scan(chunk), slow.scanBytewise(chunk)
			if got != want || fast.cr != slow.cr || fast.inHead.Load() != slow.inHead.Load() {
				t.Fatalf("head %q, chunk %d..%d: scan %d (cr %d, inHead %v), bytewise %d (cr %d, inHead %v)",
					head, off, end, got, fast.cr, fast.inHead.Load(), want, slow.cr, slow.inHead.Load())
			}
			if got >= 0 {
				break
			}
			off = end
		}
	}
}

// FuzzHeadScan: the vectorized scan agrees with the byte-at-a-time one
// on any bytes, read in chunks of any size. Run with -fuzztime Nx.
func FuzzHeadScan(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), uint8(3))
	f.Add([]byte("GET / HTTP/1.1\nHost: a\r\n\r\n"), uint8(1))
	f.Add([]byte("GET / HTTP/1.1\r\rHost: a\r\n\r\n"), uint8(7))
	f.Add([]byte("\r\n\r\nbody\n"), uint8(0))
	f.Fuzz(func(t *testing.T, head []byte, chunk uint8) {
		size := int(chunk%32) + 1
		fast, slow := &headConn{}, &headConn{}
		fast.inHead.Store(true)
		slow.inHead.Store(true)
		for off := 0; off < len(head) && fast.inHead.Load(); off += size {
			part := head[off:min(len(head), off+size)]
			got, want := fast.scan(part), slow.scanBytewise(part)
			if got != want || fast.cr != slow.cr || fast.inHead.Load() != slow.inHead.Load() {
				t.Fatalf("head %q, chunk at %d: scan %d (cr %d), bytewise %d (cr %d)", head, off, got, fast.cr, want, slow.cr)
			}
			if got >= 0 {
				return
			}
		}
	})
}
