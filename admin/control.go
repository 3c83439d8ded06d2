package admin

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/observe"
)

// Field results of PUT /api/maxine/control/config (the old contract).
const (
	fieldSuccess   = "Success"
	fieldTypeError = "Type Error"
	fieldBadValue  = "Wrong value Or Invalid value"
)

type configView struct {
	LogAsync                bool        `json:"logAsync"`
	HeartBeatTimeout        int         `json:"heartBeatTimeout"`
	LogJSONPrettify         bool        `json:"logJsonPrettify"`
	ActuatorEnabled         bool        `json:"actuatorEnabled"`
	StatusMonitorEnabled    bool        `json:"statusMonitorEnabled"`
	ServerSelectionStrategy config.Enum `json:"serverSelectionStrategy"`
	DiscoveryMode           config.Enum `json:"discoveryMode"`
	LogFormat               config.Enum `json:"logFormat"`
	Port                    int         `json:"port"`
}

func viewOf(s *config.Settings) configView {
	return configView{
		LogAsync: s.LogAsync, HeartBeatTimeout: s.HeartBeatTimeout, LogJSONPrettify: s.LogJSONPrettify,
		ActuatorEnabled: s.ActuatorEnabled, StatusMonitorEnabled: s.StatusMonitorEnabled,
		ServerSelectionStrategy: s.Strategy.Enum(), DiscoveryMode: s.DiscoveryMode.Enum(), LogFormat: s.LogFormat.Enum(),
		Port: s.Port,
	}
}

func (s *Server) getConfig(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	writeJSON(ctx, fasthttp.StatusOK, viewOf(s.o.Settings.Load()))
}

// putConfig applies a partial update. Each given field is answered with
// Success, Type Error or Wrong value Or Invalid value; the valid ones are
// applied together in one atomic settings change.
func (s *Server) putConfig(ctx *fasthttp.RequestCtx, ri *requestInfo) {
	if s.o.Cluster != nil {
		// Only a cluster that elects a leader has one to forward to
		// (shared-file mode elects none: each instance takes its own
		// settings changes).
		if st := s.o.Cluster(); st.Elected && !st.IsLeader {
			s.forwardToLeader(ctx)
			return
		}
	}
	body, ok := jsonBody(ctx)
	if !ok {
		return
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		writeMessage(ctx, fasthttp.StatusBadRequest, "The config update must be a JSON object.")
		return
	}
	result := make(map[string]string, len(fields))
	var apply []func(*config.Settings)
	for key, raw := range fields {
		res, fn := parseConfigField(key, raw)
		result[key] = res
		if fn != nil {
			apply = append(apply, fn)
		}
	}
	if len(apply) > 0 {
		if s.o.SaveSettings != nil {
			// Shared first: the change is made here only once the cluster
			// has it, so no instance keeps a change the others never see.
			next := *s.o.Settings.Load()
			for _, fn := range apply {
				fn(&next)
			}
			if err := s.o.SaveSettings(ctx, next); err != nil {
				if errors.Is(err, ErrNotLeader) {
					writeMessage(ctx, fasthttp.StatusConflict, leaderOnlyMessage)
					return
				}
				writeDetail(ctx, fasthttp.StatusServiceUnavailable, "The config change could not be shared with the cluster.", err.Error())
				return
			}
		}
		old, cur := s.o.Settings.Update(func(st *config.Settings) {
			for _, fn := range apply {
				fn(st)
			}
		})
		s.auditConfig(ri, old, cur)
		if old.LogFormat != cur.LogFormat && s.o.SetLogFormat != nil {
			s.o.SetLogFormat(cur.LogFormat)
		}
	}
	writeJSON(ctx, fasthttp.StatusOK, result)
}

func parseConfigField(key string, raw json.RawMessage) (string, func(*config.Settings)) {
	boolField := func(set func(*config.Settings, bool)) (string, func(*config.Settings)) {
		var v bool
		if json.Unmarshal(raw, &v) != nil {
			return fieldTypeError, nil
		}
		return fieldSuccess, func(s *config.Settings) { set(s, v) }
	}
	enumField := func(parse func(string) (func(*config.Settings), bool)) (string, func(*config.Settings)) {
		var v string
		if json.Unmarshal(raw, &v) != nil {
			return fieldTypeError, nil
		}
		fn, ok := parse(v)
		if !ok {
			return fieldBadValue, nil
		}
		return fieldSuccess, fn
	}
	switch key {
	case "logAsync":
		return boolField(func(s *config.Settings, v bool) { s.LogAsync = v })
	case "logJsonPrettify":
		return boolField(func(s *config.Settings, v bool) { s.LogJSONPrettify = v })
	case "actuatorEnabled":
		return boolField(func(s *config.Settings, v bool) { s.ActuatorEnabled = v })
	case "statusMonitorEnabled":
		return boolField(func(s *config.Settings, v bool) { s.StatusMonitorEnabled = v })
	case "heartBeatTimeout":
		var f float64
		if json.Unmarshal(raw, &f) != nil {
			return fieldTypeError, nil
		}
		n, err := strconv.Atoi(string(raw))
		if err != nil || n < 1 || n > 86400 {
			return fieldBadValue, nil
		}
		return fieldSuccess, func(s *config.Settings) { s.HeartBeatTimeout = n }
	case "serverSelectionStrategy":
		return enumField(func(v string) (func(*config.Settings), bool) {
			st, ok := config.ParseStrategy(v)
			return func(s *config.Settings) { s.Strategy = st }, ok
		})
	case "discoveryMode":
		return enumField(func(v string) (func(*config.Settings), bool) {
			m, ok := config.ParseDiscoveryMode(v)
			return func(s *config.Settings) { s.DiscoveryMode = m }, ok
		})
	case "logFormat":
		return enumField(func(v string) (func(*config.Settings), bool) {
			f, ok := config.ParseLogFormat(v)
			return func(s *config.Settings) { s.LogFormat = f }, ok
		})
	}
	// port and unknown fields cannot be changed at run time.
	return fieldBadValue, nil
}

func (s *Server) auditConfig(ri *requestInfo, old, cur config.Settings) {
	ov, cv := viewOf(&old), viewOf(&cur)
	var om, cm map[string]any
	ob, _ := json.Marshal(ov)
	cb, _ := json.Marshal(cv)
	_ = json.Unmarshal(ob, &om)
	_ = json.Unmarshal(cb, &cm)
	for _, k := range sortedKeys(cm) {
		o, _ := json.Marshal(om[k])
		c, _ := json.Marshal(cm[k])
		if string(o) == string(c) {
			continue
		}
		s.auditEvent(ri, observe.AuditEvent{Type: "config_change", Actor: ri.claims.User, Role: ri.claims.Role.String(),
			Details: map[string]any{"field": k, "old": om[k], "new": cm[k]}})
	}
}
