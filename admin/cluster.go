package admin

import (
	"errors"
	"time"

	"github.com/valyala/fasthttp"
)

// leaderOnlyMessage is the old contract's 409 for a control-plane mutation
// that reached a follower (SPEC 3).
const leaderOnlyMessage = "This control-plane mutation must be handled by the current leader instance."

// ErrNotLeader is wrapped by Options.SaveSettings errors when this instance
// is not (or no longer) the leader: its fenced write was refused.
var ErrNotLeader = errors.New("not the leader")

// forwardedHeader marks a config change forwarded by a follower, so that a
// leader that lost its lease meanwhile answers 409 instead of forwarding
// it on: a change travels at most one hop.
const forwardedHeader = "X-Maxine-Forwarded-By"

// forwardToLeader sends a config change that reached a follower to the
// leader (its admin address is in the lease record) and answers with the
// leader's answer. Only when no leader is known or reachable does the
// follower answer 409 with the old message. The caller's Authorization
// goes along: instances of one cluster share MAXINE_JWT_SECRET.
func (s *Server) forwardToLeader(ctx *fasthttp.RequestCtx) {
	st := s.o.Cluster()
	if !st.HasLeader || st.LeaderAdminAddr == "" || len(ctx.Request.Header.Peek(forwardedHeader)) > 0 {
		writeMessage(ctx, fasthttp.StatusConflict, leaderOnlyMessage)
		return
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPut)
	req.SetRequestURI("http://" + st.LeaderAdminAddr + "/api/maxine/control/config")
	if a := ctx.Request.Header.Peek("Authorization"); len(a) > 0 {
		req.Header.SetBytesV("Authorization", a)
	}
	if ct := ctx.Request.Header.ContentType(); len(ct) > 0 {
		req.Header.SetContentTypeBytes(ct)
	}
	if tp := ctx.Request.Header.Peek("traceparent"); len(tp) > 0 {
		req.Header.SetBytesV("traceparent", tp)
	}
	req.Header.Set(forwardedHeader, s.o.InstanceID)
	req.SetBody(ctx.Request.Body())
	timeout := s.o.ForwardTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if err := s.forwarder.DoTimeout(req, resp, timeout); err != nil {
		s.o.Logger.Warn().Err(err).Str("leader", st.LeaderInstanceID).Str("addr", st.LeaderAdminAddr).Msg("cannot forward a config change to the leader")
		writeMessage(ctx, fasthttp.StatusConflict, leaderOnlyMessage)
		return
	}
	ctx.SetStatusCode(resp.StatusCode())
	if ct := resp.Header.ContentType(); len(ct) > 0 {
		ctx.SetContentTypeBytes(ct)
	}
	ctx.Response.Header.Set("X-Maxine-Leader", st.LeaderInstanceID)
	ctx.SetBody(resp.Body())
}
