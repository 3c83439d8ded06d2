package admin

import (
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// health answers readiness: the status code and the top-level status say
// whether this instance should get traffic (Ready); components, when
// configured, say what is degraded even while it serves (the local state
// file failing is a DOWN store component under a 200 UP: the registry
// serves from memory).
func (s *Server) health(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	body := map[string]any{"status": "UP"}
	if s.o.HealthComponents != nil {
		body["components"] = s.o.HealthComponents()
	}
	if s.o.Ready != nil {
		if ok, reason := s.o.Ready(); !ok {
			body["status"], body["reason"] = "DOWN", reason
			writeJSON(ctx, fasthttp.StatusServiceUnavailable, body)
			return
		}
	}
	writeJSON(ctx, fasthttp.StatusOK, body)
}

// actuatorOn hides an informational actuator endpoint while the runtime
// setting actuatorEnabled is false (health stays: load balancers need it).
func (s *Server) actuatorOn(h handlerFunc) handlerFunc {
	return func(ctx *fasthttp.RequestCtx, ri *requestInfo) {
		if !s.o.Settings.Load().ActuatorEnabled {
			writeMessage(ctx, fasthttp.StatusNotFound, "Not Found: "+string(ctx.Path()))
			return
		}
		h(ctx, ri)
	}
}

// CompatBuildName is build.name in /api/actuator/info: the old server's
// npm package name, which dashboards and checks match on.
const CompatBuildName = "maxine-discovery"

// infoBuild is build in /api/actuator/info: the old fields (name,
// description, version) and ours.
type infoBuild struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Version     string `json:"version"`
	Server      string `json:"server,omitempty"` // Options.Build.Name
	Commit      string `json:"commit,omitempty"`
	GoVersion   string `json:"goVersion"`
}

func (s *Server) info(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	b := s.o.Build
	if b.GoVersion == "" {
		b.GoVersion = runtime.Version()
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"build": infoBuild{Name: CompatBuildName, Description: b.Description,
		Version: b.Version, Server: b.Name, Commit: b.Commit, GoVersion: b.GoVersion}})
}

// performance is the old actuator's load-test report endpoint. Maxine
// publishes its figures through bench and the README instead, so it gives
// the old answer for a server without a report URL.
func (s *Server) performance(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	writeMessage(ctx, fasthttp.StatusNotFound, "Performance report URL is not configured.")
}

// processMetrics answers with the old actuator's shape: memory and uptime.
func (s *Server) processMetrics(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{
		"mem": map[string]uint64{
			"rss":       rssBytes(),
			"heapTotal": ms.HeapSys,
			"heapUsed":  ms.HeapAlloc,
			"external":  ms.Sys - ms.HeapSys,
		},
		"uptime":     time.Since(s.start).Seconds(),
		"goroutines": runtime.NumGoroutine(),
		"nodes":      s.o.Registry.Len(),
	})
}

// rssBytes reads the resident set size from /proc (0 where unavailable).
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var i int
	for i < len(b) && b[i] != ' ' {
		i++
	}
	j := i + 1
	for j < len(b) && b[j] != ' ' {
		j++
	}
	if i+1 > len(b) || j > len(b) {
		return 0
	}
	pages, err := strconv.ParseUint(string(b[i+1:j]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

// prometheus writes the Prometheus text exposition: Maxine's own series
// plus Go runtime and process metrics.
func (s *Server) prometheus(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	if s.o.Alerts != nil {
		s.m.old.alerts.Set(s.o.Alerts.Raised())
	}
	ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	w := ctx.Response.BodyWriter()
	s.o.Metrics.WritePrometheus(w)
	metrics.WriteProcessMetrics(w)
}

func (s *Server) audit(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	limit := queryInt(ctx, "limit", 0)
	if s.o.Audit == nil {
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"events": []any{}})
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"events": s.o.Audit.Recent(limit)})
}

func (s *Server) alerts(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	limit := queryInt(ctx, "limit", 0)
	if s.o.Alerts == nil {
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"alerts": []any{}})
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"alerts": s.o.Alerts.Recent(limit)})
}

func (s *Server) traces(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	limit := queryInt(ctx, "limit", 0)
	if s.o.Traces == nil {
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"traces": []any{}})
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"traces": s.o.Traces.Recent(limit)})
}

func (s *Server) cluster(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	if s.o.Cluster != nil {
		writeJSON(ctx, fasthttp.StatusOK, s.o.Cluster())
		return
	}
	// Local mode: one instance, no election, so no leader to claim.
	writeJSON(ctx, fasthttp.StatusOK, ClusterStatus{
		Enabled: false, InstanceID: s.o.InstanceID, ObservedAt: s.o.Now().UnixMilli(),
		Mode: "local", StoreUp: true, Members: []ClusterMember{},
		Message: "clustering is off: state mode local (set MAXINE_REGISTRY_STATE_MODE=redis or shared-file)",
	})
}

func (s *Server) upstreams(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	if s.o.Upstreams == nil {
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"started": false, "unhealthyNodes": []string{}, "failureCounts": map[string]int{}})
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, s.o.Upstreams())
}

func queryInt(ctx *fasthttp.RequestCtx, name string, def int) int {
	v := ctx.QueryArgs().Peek(name)
	if len(v) == 0 {
		return def
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 {
		return def
	}
	return n
}
