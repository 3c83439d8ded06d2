package gateway

import (
	"bufio"
	"errors"
	"io"
	"net/http/httputil"
	"time"

	"github.com/valyala/fasthttp"
)

// roundTrip is HostClient.DoDeadline for the proxy's attempts, done here
// on the pool's connections (AcquireConn, ReleaseConn) so that the body
// can be handled by its size once the head is read: a body with a
// Content-Length up to StreamThreshold is read into resp at once and the
// connection goes back to the pool before the response is written to the
// client; a larger one, a chunked one and a close-delimited one stay on
// the connection and are streamed (nodeBody), the connection going back
// when the stream is closed. fasthttp's own streaming (StreamResponseBody)
// streams every body and allocates per response; buffering the small
// ones measured several per cent more requests per second through the
// gateway.
//
// Like the pool's Do it retries once, on another pooled or new
// connection, a request that met a keep-alive connection the node had
// closed, when that is safe (staleConn, idempotent, buffered body).
//
// now is the time the attempt started (the caller read the clock for
// deadline already).
func (p *Proxy) roundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response, now, deadline time.Time) error {
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			now = time.Now()
		}
		retry, err := p.roundTripOnce(hc, req, resp, deadline.Sub(now), deadline)
		if err == nil {
			return nil
		}
		if !retry || attempt >= 2 || req.IsBodyStream() || !staleConn(err) || !idempotent(req.Header.Method()) {
			if err == io.EOF {
				err = fasthttp.ErrConnectionClosed
			}
			return err
		}
	}
}

// roundTripOnce sends req on one connection and reads the response head,
// and the body when it is buffered. retry reports whether the failure
// came from a connection that was used (so a retry may succeed).
func (p *Proxy) roundTripOnce(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response, timeout time.Duration, deadline time.Time) (retry bool, err error) {
	if timeout <= 0 {
		return false, fasthttp.ErrTimeout
	}
	resp.Reset()
	resp.Header.SetNoDefaultContentType(true)
	req.URI().DisablePathNormalizing = true
	cc, err := hc.AcquireConn(timeout, req.ConnectionClose())
	if err != nil {
		return false, err
	}
	conn := cc.Conn()
	// One deadline for writing the request and reading the response
	// (each Set*Deadline costs a clock read and a timer update).
	if err = conn.SetDeadline(deadline); err != nil {
		hc.CloseConn(cc)
		return true, err
	}
	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err != nil {
		hc.CloseConn(cc)
		return true, timeoutErr(err)
	}
	if req.Header.IsHead() {
		resp.SkipBody = true
	}
	br := hc.AcquireReader(conn)
	if err = readHead(resp, br); err != nil {
		hc.ReleaseReader(br)
		hc.CloseConn(cc)
		return true, timeoutErr(err)
	}
	closeConn := req.ConnectionClose() || resp.ConnectionClose()
	status := resp.StatusCode()
	cl := resp.Header.ContentLength()
	noBody := resp.SkipBody || status < 200 || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified
	if noBody || cl >= 0 && cl <= p.o.StreamThreshold {
		if !noBody && cl > 0 {
			if err = resp.ReadBody(br, cl); err != nil {
				hc.ReleaseReader(br)
				hc.CloseConn(cc)
				return true, timeoutErr(err)
			}
		}
		hc.ReleaseReader(br)
		if closeConn {
			hc.CloseConn(cc)
		} else {
			hc.ReleaseConn(cc)
		}
		return false, nil
	}
	// Only streamed (large or unframed) bodies allocate: the stream and
	// the closure that hands the connection back.
	b := &nodeBody{hc: hc, br: br, reuse: !closeConn, left: int64(cl)}
	b.release = func(reuse bool) {
		if reuse {
			hc.ReleaseConn(cc)
		} else {
			hc.CloseConn(cc)
		}
	}
	switch {
	case cl >= 0:
		b.r = b.limited()
	case cl == -1:
		b.r = httputil.NewChunkedReader(br)
		b.chunked = true
	default: // -2: delimited by the node closing the connection
		b.r = br
		b.reuse = false
	}
	resp.SetBodyStream(b, cl)
	return false, nil
}

// readHead reads the response head, skipping interim (1xx) responses
// other than 101.
func readHead(resp *fasthttp.Response, br *bufio.Reader) error {
	for n := 0; ; n++ {
		if err := resp.Header.Read(br); err != nil {
			return err
		}
		s := resp.StatusCode()
		if s < 100 || s > 199 || s == fasthttp.StatusSwitchingProtocols {
			return nil
		}
		if n >= maxInterim {
			return errTooManyInterim
		}
	}
}

const maxInterim = 16

var errTooManyInterim = errors.New("gateway: too many interim responses from the node")

// timeoutErr maps a network timeout to fasthttp.ErrTimeout, as the pool's
// Do does.
func timeoutErr(err error) error {
	if isTimeout(err) {
		return fasthttp.ErrTimeout
	}
	return err
}

// nodeBody is a streamed response body on its pooled connection. Close
// (called by fasthttp's CloseBodyStream, directly or through
// responseStream) returns the connection to the pool when the body was
// read to its end, and closes it otherwise.
type nodeBody struct {
	hc      *fasthttp.HostClient
	br      *bufio.Reader
	release func(reuse bool) // hands the connection back to its pool
	r       io.Reader
	left    int64 // Content-Length bodies: bytes still to read
	chunked bool
	reuse   bool // the connection may be pooled once the body is read
	done    bool // the body was read to its end
	closed  bool
}

// limited reads the Content-Length body.
func (b *nodeBody) limited() io.Reader { return (*lengthReader)(b) }

type lengthReader nodeBody

func (l *lengthReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		l.done = true
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.br.Read(p)
	l.left -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if l.left == 0 && err == nil {
		l.done = true
	}
	return n, err
}

func (b *nodeBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, io.ErrClosedPipe
	}
	n, err := b.r.Read(p)
	if err == io.EOF && b.chunked && !b.done {
		// The last chunk: the trailer section (discarded) ends the
		// message at an empty line.
		if terr := b.skipTrailer(); terr != nil {
			return n, terr
		}
		b.done = true
	}
	if err == io.EOF && !b.chunked && b.r == io.Reader(b.br) {
		b.done = true
	}
	return n, err
}

// maxTrailerLines bounds the trailer fields skipped after a chunked body.
const maxTrailerLines = 64

func (b *nodeBody) skipTrailer() error {
	for range maxTrailerLines {
		line, err := b.br.ReadSlice('\n')
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if len(line) <= 2 && (len(line) == 1 || line[0] == '\r') {
			return nil
		}
	}
	return errors.New("gateway: too many trailer fields from the node")
}

func (b *nodeBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	b.hc.ReleaseReader(b.br)
	b.release(b.done && b.reuse)
	b.br, b.r = nil, nil
	return nil
}
