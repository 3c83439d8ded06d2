package gateway

import (
	"bytes"
	"strings"
	"testing"
)

func TestMetrics(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Breaker.Disabled = true })
	ok := startBackend(t, "ok", nil)
	f.register("svc", "ok", ok, 1, nil)
	dead := startBackend(t, "dead", nil)
	f.register(`we"ird`, "dead", dead, 1, nil)
	dead.kill()
	f.waitNodes("svc", 1)
	for range 3 {
		f.do("GET", "/svc/x", nil, nil)
	}
	f.do("GET", "/nothing/here", nil, nil)
	f.do("GET", "/x", nil, map[string]string{ServiceHeader: `we"ird`})

	var buf bytes.Buffer
	f.set.WritePrometheus(&buf)
	out := buf.String()
	for _, want := range []string{
		`maxine_gateway_requests_total{service="svc",code="2xx"} 3`,
		`maxine_gateway_request_duration_seconds_count{service="svc"} 3`,
		`maxine_gateway_request_duration_seconds_bucket{service="svc",le="+Inf"} 3`,
		`maxine_gateway_requests_total{service="we\"ird",code="5xx"} 1`,
		`maxine_gateway_upstream_errors_total{service="we\"ird",kind="connect"} 1`,
		`maxine_gateway_retries_total{service="we\"ird"} 0`,
		`maxine_gateway_nodes_active{service="svc"} 1`,
		`maxine_gateway_unrouted_requests_total 1`,
		`maxine_gateway_in_flight 0`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %s", want)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "/x") || strings.Contains(line, "127.0.0.1") || strings.Contains(line, "nothing") {
			t.Errorf("unbounded label: %s", line)
		}
	}
	// A removed service takes its series with it.
	f.reg.Deregister("svc", "ok")
	f.waitNodes("svc", 0)
	buf.Reset()
	f.set.WritePrometheus(&buf)
	if strings.Contains(buf.String(), `service="svc"`) {
		t.Error("series of a removed service remain")
	}
}
