package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func parseWith(t *testing.T, args []string, env map[string]string) (*options, error) {
	t.Helper()
	var o options
	s := newSettings("maxine", &bytes.Buffer{})
	defineSettings(&o, s)
	err := s.parse(args, func(k string) string { return env[k] })
	return &o, err
}

func TestSettingsPrecedence(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(*options) bool
	}{
		{"defaults", nil, nil, func(o *options) bool {
			return o.adminAddr == ":8080" && o.gatewayAddr == ":8000" && o.dataDir == "./data" && o.stateMode == "local" &&
				o.heartbeatTimeout == 5 && o.persistInterval == time.Second && o.logFormat == "json" && o.logLevel == "info" &&
				o.redisPrefix == "maxine:registry" && o.jwtTTL == 30*time.Minute
		}},
		{"env applies", nil, map[string]string{"MAXINE_GATEWAY_ADDR": ":9000", "MAXINE_HEARTBEAT_TIMEOUT": "7", "MAXINE_JWT_SECRET": "s"},
			func(o *options) bool {
				return o.gatewayAddr == ":9000" && o.heartbeatTimeout == 7 && o.jwtSecret == "s"
			}},
		{"flag wins over env", []string{"--gateway-addr", ":9100"}, map[string]string{"MAXINE_GATEWAY_ADDR": ":9000"},
			func(o *options) bool { return o.gatewayAddr == ":9100" }},
		{"bool flag", []string{"--metrics=false"}, nil, func(o *options) bool { return !o.metricsOn }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseWith(t, tc.args, tc.env)
			if err != nil || !tc.check(o) {
				t.Fatalf("err %v, options %+v", err, o)
			}
		})
	}
}

func TestSettingsErrorsNameTheSetting(t *testing.T) {
	_, err := parseWith(t, nil, map[string]string{"MAXINE_PERSIST_INTERVAL": "soon"})
	if err == nil || !strings.Contains(err.Error(), "MAXINE_PERSIST_INTERVAL") || !strings.Contains(err.Error(), "--persist-interval") {
		t.Fatalf("err = %v", err)
	}
	if _, err := parseWith(t, []string{"stray"}, nil); err == nil {
		t.Fatal("stray argument accepted")
	}
	bad := []struct {
		mutate func(*options)
		want   string
	}{
		{func(o *options) { o.stateMode = "floppy" }, "MAXINE_REGISTRY_STATE_MODE"},
		{func(o *options) { o.heartbeatTimeout = 0 }, "MAXINE_HEARTBEAT_TIMEOUT"},
		{func(o *options) { o.retryBudget = 2 }, "MAXINE_RETRY_BUDGET"},
		{func(o *options) { o.logFormat = "xml" }, "MAXINE_LOG_FORMAT"},
		{func(o *options) { o.logFile = "../x" }, "MAXINE_LOG_FILE"},
		{func(o *options) { o.alertWebhook = "ftp://x" }, "MAXINE_ALERT_WEBHOOK_URL"},
	}
	for _, b := range bad {
		o, _ := parseWith(t, nil, nil)
		b.mutate(o)
		if err := o.validate(); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("want error naming %s, got %v", b.want, err)
		}
	}
}

func TestRunHelpVersionAndPort(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--version"}, func(string) string { return "" }, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "maxine ") {
		t.Fatalf("--version: %d %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"--help"}, func(string) string { return "" }, &out, &errb); code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, want := range []string{"--admin-addr", "[MAXINE_ADMIN_ADDR]", "MAXINE_JWT_SECRET", "PORT", `(default ":8000")`} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("--help lacks %q:\n%s", want, out.String())
		}
	}
	errb.Reset()
	code := run(nil, func(k string) string {
		return map[string]string{"PORT": "1", "MAXINE_HEARTBEAT_TIMEOUT": "x"}[k]
	}, &out, &errb)
	if code != 2 || strings.Count(strings.TrimSpace(errb.String()), "\n") != 0 {
		t.Fatalf("bad setting: exit %d, stderr %q", code, errb.String())
	}
}
