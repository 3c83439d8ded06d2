package gateway

import (
	"errors"
	"io"

	"github.com/valyala/fasthttp"
)

// Bodies up to Options.StreamThreshold are buffered: the request body can
// then be replayed on a retry, and a small response frees its upstream
// connection before the client has read a byte. Larger bodies, and request
// bodies of unknown length (chunked), are streamed so that memory stays
// bounded by buffer sizes, not by body sizes.
//
// A streamed request body cannot be replayed, so such a request is retried
// only when its attempt failed to connect, before a byte of it was read.

var (
	errBodyTooLarge = errors.New("gateway: request body exceeds the limit")
	errClientBody   = errors.New("gateway: cannot read the request body from the client")
)

// requestBody is the streamed body of a request, forwarded to the node as
// it is read from the client. It enforces the body size limit on bodies of
// unknown length and records why reading stopped, so that a failed attempt
// can be blamed on the client (400/413) rather than on the node.
type requestBody struct {
	r        io.Reader
	left     int64 // bytes still allowed
	read     bool  // a byte was consumed: the body can no longer be replayed
	tooLarge bool
	err      error // the client's read error, if any
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// Read one byte more than allowed to tell "exactly at the limit"
		// from "over it".
		var one [1]byte
		n, err := b.r.Read(one[:])
		if n > 0 {
			b.tooLarge = true
			return 0, errBodyTooLarge
		}
		return 0, b.noteErr(err)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	if n > 0 {
		b.read = true
	}
	b.left -= int64(n)
	return n, b.noteErr(err)
}

func (b *requestBody) noteErr(err error) error {
	if err != nil && err != io.EOF {
		b.err = err
		return errClientBody
	}
	return err
}

// responseStream hands a streamed upstream response body to the fasthttp
// server, which reads it to the client after the handler has returned and
// then closes it. Close returns the upstream connection to its pool (or
// closes it if the body was not read to the end) and ends the attempt's
// in-flight count, so least-request keeps counting a node busy while it is
// still sending.
type responseStream struct {
	resp *fasthttp.Response
	body io.Reader
	u    *upstream
}

func (s *responseStream) Read(p []byte) (int, error) { return s.body.Read(p) }

func (s *responseStream) Close() error {
	if s.resp == nil {
		return nil // closed already
	}
	err := s.resp.CloseBodyStream()
	fasthttp.ReleaseResponse(s.resp)
	s.u.inFlight.Add(-1)
	s.resp, s.body = nil, nil
	return err
}
