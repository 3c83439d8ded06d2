package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// healthPath is the admin endpoint `maxine health` probes: the same one
// load balancers, the image's HEALTHCHECK and the chart's probes use.
const healthPath = "/api/actuator/health"

// storeDownReason starts the reason the health endpoint gives when the only
// fault is an unreachable shared state store (lifecycle.ready).
const storeDownReason = "state store unreachable"

// runHealth is `maxine health [flags]`: it probes the health endpoint of
// the Maxine listening on the admin address the same settings name (flags,
// MAXINE_ADMIN_ADDR or PORT), so a container's exec health check needs no
// shell and no curl. It prints the status and exits 0 when UP, 1 otherwise
// (2 for bad flags).
//
// --allow-store-down also exits 0 when the instance is DOWN only because
// its shared store (Redis) is unreachable: the process is alive and its
// gateway keeps serving its last tables, which is what a liveness probe
// should ask (a Redis outage must not restart every pod).
func runHealth(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var o options
	s := newSettings("maxine health", stderr)
	defineSettings(&o, s)
	timeout := s.fs.Duration("probe-timeout", 3*time.Second, "how long the probe waits for the answer")
	allowStoreDown := s.fs.Bool("allow-store-down", false, "exit 0 also when DOWN only because the shared state store is unreachable")
	s.fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: maxine health [--admin-addr ADDR] [--probe-timeout D] [--allow-store-down]\n\n"+
			"Probes http://<admin-addr>%s of a running Maxine (the admin address comes from the same\n"+
			"flags and environment as the server's: --admin-addr, MAXINE_ADMIN_ADDR, PORT). Exits 0 when UP, 1 otherwise.\n", healthPath)
	}
	if p := getenv("PORT"); p != "" && getenv("MAXINE_ADMIN_ADDR") == "" {
		o.adminAddr = ":" + p
	}
	if err := s.parse(args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "maxine health: %v\n", err)
		return 2
	}
	url, err := healthURL(o.adminAddr)
	if err != nil {
		fmt.Fprintf(stderr, "maxine health: MAXINE_ADMIN_ADDR (--admin-addr) %q: %v\n", o.adminAddr, err)
		return 2
	}
	status, reason, code, err := probeHealth(url, *timeout)
	switch {
	case err != nil:
		fmt.Fprintf(stdout, "DOWN %s: %v\n", url, err)
		return 1
	case code == http.StatusOK && status == "UP":
		fmt.Fprintf(stdout, "UP %s\n", url)
		return 0
	case *allowStoreDown && code == http.StatusServiceUnavailable && strings.HasPrefix(reason, storeDownReason):
		fmt.Fprintf(stdout, "UP %s (store down: %s)\n", url, reason)
		return 0
	}
	if status == "" {
		status = "DOWN"
	}
	fmt.Fprintf(stdout, "%s %s: HTTP %d %s\n", status, url, code, reason)
	return 1
}

// healthURL turns a listen address into the URL of its health endpoint on
// this host: no host or an unspecified one (":8080", "0.0.0.0:8080",
// "[::]:8080") is dialled on loopback.
func healthURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + healthPath, nil
}

// probeHealth GETs url once and decodes {"status":…,"reason":…}.
func probeHealth(url string, timeout time.Duration) (status, reason string, code int, err error) {
	c := &http.Client{Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(url)
	if err != nil {
		return "", "", 0, err
	}
	defer resp.Body.Close()
	var body struct{ Status, Reason string }
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
	return body.Status, body.Reason, resp.StatusCode, nil
}
