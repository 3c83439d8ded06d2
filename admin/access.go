package admin

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/maxine-io/maxine/auth"
	"github.com/maxine-io/maxine/observe"
)

// authorize enforces the role a route needs: no, malformed, badly signed or
// revoked tokens get 401 Unauthorized, expired ones 401 "JWT token
// expired", a valid token with too weak a role 403 Forbidden (audited).
func (s *Server) authorize(ctx *fasthttp.RequestCtx, ri *requestInfo, need auth.Role, route string) bool {
	tok, ok := auth.BearerToken(ctx.Request.Header.Peek("Authorization"))
	if !ok {
		s.m.old.authFailures.Inc()
		writeMessage(ctx, fasthttp.StatusUnauthorized, "Unauthorized")
		return false
	}
	claims, err := s.o.Auth.Verify(string(tok))
	if err != nil {
		s.m.old.authFailures.Inc()
		if errors.Is(err, auth.ErrTokenExpired) {
			writeMessage(ctx, fasthttp.StatusUnauthorized, "JWT token expired")
		} else {
			writeMessage(ctx, fasthttp.StatusUnauthorized, "Unauthorized")
		}
		return false
	}
	if !claims.Role.Allows(need) {
		s.m.old.authFailures.Inc()
		s.auditEvent(ri, observe.AuditEvent{Type: "authz_denied", Actor: claims.User, Role: claims.Role.String(),
			Details: map[string]any{"route": route, "needs": need.String(), "ip": clientIP(ctx)}})
		writeMessage(ctx, fasthttp.StatusForbidden, "Forbidden")
		return false
	}
	ri.claims = claims
	return true
}

func (s *Server) auditEvent(ri *requestInfo, ev observe.AuditEvent) {
	if s.o.Audit == nil {
		return
	}
	if ri != nil && ev.TraceID == "" {
		ev.TraceID = ri.tc.TraceIDString()
	}
	s.o.Audit.Record(ev)
}

type signInRequest struct {
	UserName *string `json:"userName"`
	Password *string `json:"password"`
}

func (s *Server) signIn(ctx *fasthttp.RequestCtx, ri *requestInfo) {
	ip := clientIP(ctx)
	if s.o.SignInLimiter != nil && !s.o.SignInLimiter.Allow(ip) {
		ctx.Response.Header.Set("Retry-After", "60")
		writeMessage(ctx, fasthttp.StatusTooManyRequests, "Too many sign-in attempts, try again later")
		return
	}
	body, ok := jsonBody(ctx)
	if !ok {
		return
	}
	var req signInRequest
	if err := json.Unmarshal(body, &req); err != nil || req.UserName == nil || req.Password == nil || *req.UserName == "" || *req.Password == "" {
		s.m.old.authFailures.Inc()
		writeMessage(ctx, fasthttp.StatusBadRequest, "Please provide both of these -> userName and password.")
		return
	}
	token, role, err := s.o.Auth.SignIn(*req.UserName, *req.Password)
	if err != nil {
		s.m.authFailure.Inc()
		s.m.old.authFailures.Inc()
		s.auditEvent(ri, observe.AuditEvent{Type: "signin_failure", Actor: truncate(*req.UserName, 64), Details: map[string]any{"ip": ip}})
		writeMessage(ctx, fasthttp.StatusUnauthorized, "Unauthorized")
		return
	}
	s.m.authSuccess.Inc()
	s.m.old.authSuccess.Inc()
	s.auditEvent(ri, observe.AuditEvent{Type: "signin_success", Actor: *req.UserName, Role: role.String(), Details: map[string]any{"ip": ip}})
	writeJSON(ctx, fasthttp.StatusOK, map[string]string{"accessToken": token, "role": role.String()})
}

type changePasswordRequest struct {
	Password    *string `json:"password"`
	NewPassword *string `json:"newPassword"`
}

const changePasswordMissing = "Please provide valid existing password and new password both."

func (s *Server) changePassword(ctx *fasthttp.RequestCtx, ri *requestInfo) {
	body, ok := jsonBody(ctx)
	if !ok {
		return
	}
	var req changePasswordRequest
	if err := json.Unmarshal(body, &req); err != nil || req.Password == nil || req.NewPassword == nil || *req.Password == "" || *req.NewPassword == "" {
		writeMessage(ctx, fasthttp.StatusBadRequest, changePasswordMissing)
		return
	}
	err := s.o.Auth.ChangePassword(ri.claims.User, *req.Password, *req.NewPassword)
	switch {
	case err == nil:
		s.auditEvent(ri, observe.AuditEvent{Type: "password_change", Actor: ri.claims.User, Role: ri.claims.Role.String()})
		writeMessage(ctx, fasthttp.StatusOK, "successfully updated password")
	case errors.Is(err, auth.ErrEnvManaged):
		writeMessage(ctx, fasthttp.StatusConflict, "Admin credentials are managed by environment variables and cannot be changed at runtime.")
	case errors.Is(err, auth.ErrBadCredentials), errors.Is(err, auth.ErrWeakPassword):
		writeMessage(ctx, fasthttp.StatusBadRequest, changePasswordMissing)
	default:
		s.o.Logger.Error().Err(err).Msg("cannot change the admin password")
		writeMessage(ctx, fasthttp.StatusInternalServerError, "Cannot store the new password")
	}
}

// registrationAllowed checks the optional registration token.
func (s *Server) registrationAllowed(ctx *fasthttp.RequestCtx) bool {
	if s.o.RegistrationToken == "" {
		return true
	}
	tok, ok := auth.BearerToken(ctx.Request.Header.Peek("Authorization"))
	if !ok || !auth.ConstantTimeEqual(string(tok), s.o.RegistrationToken) {
		s.m.old.authFailures.Inc()
		writeMessage(ctx, fasthttp.StatusUnauthorized, "Unauthorized")
		return false
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…(" + strconv.Itoa(len(s)) + " bytes)"
	}
	return s
}
