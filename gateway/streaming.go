package gateway

import (
	"errors"
	"io"
	"time"

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
//
// It also bounds the time the client takes: before each read from the
// client the connection's read deadline is set to the moment by which the
// body must have arrived at MinBodyRate since start, after the grace
// period (never later than the server's own ReadTimeout). A client that
// falls behind gets a read timeout, answered 408.
type requestBody struct {
	prefix   []byte // the buffered start of the body, sent first
	r        io.Reader
	left     int64 // bytes still allowed
	read     bool  // a byte was consumed: the body can no longer be replayed
	tooLarge bool
	timedOut bool  // the client fell below the minimum rate
	err      error // the client's read error, if any

	ctx   *fasthttp.RequestCtx // whose connection's read deadline is set
	start time.Time
	grace time.Duration
	rate  int64     // bytes per second
	limit time.Time // latest deadline; zero = none
	got   int64     // bytes read from the client
}

func (b *requestBody) Read(p []byte) (int, error) {
	if len(b.prefix) > 0 {
		n := copy(p, b.prefix)
		b.prefix = b.prefix[n:]
		b.read = true
		return n, nil
	}
	b.arm()
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
	b.got += int64(n)
	return n, b.noteErr(err)
}

// arm sets the read deadline of the client's connection for the next read.
func (b *requestBody) arm() {
	if b.ctx == nil || b.rate <= 0 {
		return
	}
	d := b.start.Add(b.grace + time.Duration(b.got*int64(time.Second)/b.rate))
	if !b.limit.IsZero() && d.After(b.limit) {
		d = b.limit
	}
	_ = b.ctx.SetReadDeadline(d)
}

func (b *requestBody) noteErr(err error) error {
	if err != nil && err != io.EOF {
		b.err = err
		if isTimeout(err) {
			b.timedOut = true
		}
		return errClientBody
	}
	return err
}

// status is the answer to a request whose body could not be read: 413
// over the limit, 408 too slow, else 400.
func (b *requestBody) status() int {
	switch {
	case b.tooLarge:
		return fasthttp.StatusRequestEntityTooLarge
	case b.timedOut:
		return fasthttp.StatusRequestTimeout
	}
	return fasthttp.StatusBadRequest
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
