package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// InvalidRegistrationMessage is the exact 400 message of the old Maxine
// contract for any registration that fails validation. Clients match on it.
const InvalidRegistrationMessage = "Invalid or missing -> hostName, nodeName, serviceName or weight (Maximum allowed size of weight is 10 (One server can maximum be 10x more powerful than others)"

// Limits on registration fields. They bound the memory one registration can
// pin and keep names usable in gateway routes and HTTP headers.
const (
	MaxWeight         = 10
	MaxNameLen        = 256
	MaxHostLen        = 512
	MaxPathLen        = 1024
	MaxMetadataKeys   = 32
	MaxMetadataKeyLen = 128
	MaxMetadataValLen = 1024
	// MaxMetadataBytes bounds a node's metadata in total (keys plus
	// values), so that the per-entry limits cannot add up to 36 KB a node.
	MaxMetadataBytes  = 4096
	MaxTimeOutSeconds = 86400
)

// ValidationError is returned for a registration that must be refused with
// 400. Field names the offending field; Error() gives a readable reason that
// admin puts next to the compatible message.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

func invalid(field, reason string) error { return &ValidationError{Field: field, Reason: reason} }

// Registration is one node's registration (and heartbeat) as sent by a
// client, after DecodeRegistration has validated it and filled defaults.
type Registration struct {
	ServiceName     string            `json:"serviceName"`
	NodeName        string            `json:"nodeName"`
	HostName        string            `json:"hostName"`
	Port            int               `json:"port,omitempty"`
	SSL             bool              `json:"ssl,omitempty"`
	Path            string            `json:"path,omitempty"`
	TimeOut         int               `json:"timeOut"`
	Weight          int               `json:"weight"`
	HealthCheckPath string            `json:"healthCheckPath,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
}

// wireRegistration mirrors Registration with pointers so absent fields can be
// told from zero values, and typed fields so wrong JSON types fail decoding.
type wireRegistration struct {
	ServiceName     *string           `json:"serviceName"`
	NodeName        *string           `json:"nodeName"`
	HostName        *string           `json:"hostName"`
	Port            json.RawMessage   `json:"port"`
	SSL             *bool             `json:"ssl"`
	Path            *string           `json:"path"`
	TimeOut         json.RawMessage   `json:"timeOut"`
	Weight          json.RawMessage   `json:"weight"`
	HealthCheckPath *string           `json:"healthCheckPath"`
	Metadata        map[string]string `json:"metadata"`
}

// DecodeRegistration parses a JSON registration body and validates it.
// defaultTimeOut (seconds) applies when timeOut is absent. The returned
// registration is normalized (defaults filled, path cleaned). Any error is a
// *ValidationError; the input is never partially applied anywhere.
func DecodeRegistration(body []byte, defaultTimeOut int) (Registration, error) {
	var w wireRegistration
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&w); err != nil {
		return Registration{}, invalid("body", "malformed JSON: "+err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return Registration{}, invalid("body", "trailing data after the JSON object")
	}
	var r Registration
	var err error
	if w.ServiceName != nil {
		r.ServiceName = *w.ServiceName
	}
	if w.NodeName != nil {
		r.NodeName = *w.NodeName
	}
	if w.HostName != nil {
		r.HostName = *w.HostName
	}
	if w.SSL != nil {
		r.SSL = *w.SSL
	}
	if w.Path != nil {
		r.Path = *w.Path
	}
	if w.HealthCheckPath != nil {
		r.HealthCheckPath = *w.HealthCheckPath
	}
	r.Metadata = w.Metadata
	if present(w.Port) {
		if r.Port, err = intField("port", w.Port); err != nil {
			return Registration{}, err
		}
		if r.Port < 1 || r.Port > 65535 {
			return Registration{}, invalid("port", "must be an integer from 1 to 65535")
		}
	}
	r.Weight = 1
	if present(w.Weight) {
		if r.Weight, err = intField("weight", w.Weight); err != nil {
			return Registration{}, err
		}
		if r.Weight < 1 || r.Weight > MaxWeight {
			return Registration{}, invalid("weight", "must be an integer from 1 to 10")
		}
	}
	r.TimeOut = defaultTimeOut
	if present(w.TimeOut) {
		if r.TimeOut, err = intField("timeOut", w.TimeOut); err != nil {
			return Registration{}, err
		}
		if r.TimeOut < 1 || r.TimeOut > MaxTimeOutSeconds {
			return Registration{}, invalid("timeOut", "must be an integer number of seconds from 1 to 86400")
		}
	}
	if err := r.Validate(); err != nil {
		return Registration{}, err
	}
	r.normalize()
	return r, nil
}

// present reports whether a raw JSON value was given and is not null.
func present(raw json.RawMessage) bool { return len(raw) != 0 && string(raw) != "null" }

// intField accepts a JSON integer or a string holding a decimal integer
// ("8082"), as the old server did (it ran parseInt on these fields and its
// own SDK test data sends a string port). Fractions, exponents, signs other
// than a leading '-', spaces, hex and empty strings are type errors, quoted
// or not; the caller checks the range.
func intField(field string, n json.RawMessage) (int, error) {
	digits := n
	if len(n) > 0 && n[0] == '"' {
		var s string
		if err := json.Unmarshal(n, &s); err != nil || !decimalInteger(s) {
			return 0, invalid(field, "must be an integer or a string holding a decimal integer")
		}
		digits = json.RawMessage(s)
	}
	v, err := strconv.ParseInt(string(digits), 10, 32)
	if err != nil {
		return 0, invalid(field, "must be an integer")
	}
	return int(v), nil
}

// decimalInteger reports whether s is an optional '-' followed by 1 to 10
// ASCII digits: nothing strconv would read differently from JSON.
func decimalInteger(s string) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Validate checks a registration's fields (also used for registrations that
// did not come through DecodeRegistration, such as restored state).
func (r *Registration) Validate() error {
	if err := checkName("serviceName", r.ServiceName); err != nil {
		return err
	}
	if err := checkName("nodeName", r.NodeName); err != nil {
		return err
	}
	if err := checkHostName(r.HostName); err != nil {
		return err
	}
	if r.Port < 0 || r.Port > 65535 {
		return invalid("port", "must be an integer from 1 to 65535")
	}
	if r.Weight < 1 || r.Weight > MaxWeight {
		return invalid("weight", "must be an integer from 1 to 10")
	}
	if r.TimeOut < 1 || r.TimeOut > MaxTimeOutSeconds {
		return invalid("timeOut", "must be an integer number of seconds from 1 to 86400")
	}
	if len(r.Path) > MaxPathLen || hasSpaceOrControl(r.Path) || strings.ContainsAny(r.Path, "?#") {
		return invalid("path", "must be a URL path of at most 1024 characters")
	}
	if len(r.HealthCheckPath) > MaxPathLen || hasSpaceOrControl(r.HealthCheckPath) {
		return invalid("healthCheckPath", "must be a URL path of at most 1024 characters")
	}
	if len(r.Metadata) > MaxMetadataKeys {
		return invalid("metadata", fmt.Sprintf("at most %d entries", MaxMetadataKeys))
	}
	total := 0
	for k, v := range r.Metadata {
		if k == "" || len(k) > MaxMetadataKeyLen || len(v) > MaxMetadataValLen {
			return invalid("metadata", "keys must be 1-128 characters and values at most 1024")
		}
		total += len(k) + len(v)
	}
	if total > MaxMetadataBytes {
		return invalid("metadata", fmt.Sprintf("at most %d bytes of keys and values in total", MaxMetadataBytes))
	}
	// The gateway policy keys (policy.go): refused here, not ignored by
	// the gateway, so that a typo never silently disables a limit.
	if _, err := ParsePolicy(r.Metadata); err != nil {
		return err
	}
	return nil
}

// checkHostName accepts a host name, an IPv4 literal or an IPv6 literal
// (bare or bracketed), optionally after http:// or https:// and before one
// trailing '/', as the old server took them. Everything else that could
// reshape the node's address is refused with the reason: a path (which
// once turned "127.0.0.1/path" and port 29001 into
// "http://127.0.0.1/path:29001"), userinfo, a port (the port field says
// it), another scheme, spaces and control characters.
func checkHostName(hostName string) error {
	bad := func(reason string) error { return invalid("hostName", reason) }
	switch {
	case hostName == "":
		return bad("must be a non-empty host name or IP address")
	case len(hostName) > MaxHostLen:
		return bad("must be at most 512 characters")
	case hasSpaceOrControl(hostName):
		return bad("must not contain spaces or control characters")
	}
	host, hadScheme := cutScheme(hostName)
	if !hadScheme {
		if i := strings.Index(host, "://"); i >= 0 || isSchemePrefix(host) {
			return bad("scheme must be http:// or https://")
		}
	}
	host = strings.TrimSuffix(host, "/")
	if i := strings.IndexAny(host, "/?#"); i >= 0 {
		return bad("must not contain a path, query or fragment (use the path field)")
	}
	if strings.IndexByte(host, '@') >= 0 {
		return bad("must not contain userinfo")
	}
	if host == "" {
		return bad("must name a host")
	}
	if host[0] == '[' {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return bad("unclosed '[' in an IPv6 literal")
		}
		if end != len(host)-1 {
			return bad("must not carry a port (use the port field)")
		}
		if ip, err := netip.ParseAddr(host[1:end]); err != nil || !ip.Is6() {
			return bad("brackets must hold an IPv6 address")
		}
		return nil
	}
	if strings.Count(host, ":") > 1 {
		if ip, err := netip.ParseAddr(host); err != nil || !ip.Is6() {
			return bad("is not a valid IPv6 address")
		}
		return nil
	}
	if strings.IndexByte(host, ':') >= 0 {
		return bad("must not carry a port (use the port field)")
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok || c == '.' && (i == 0 || host[i-1] == '.') {
			return bad("must be a host name (letters, digits, '-', '_', '.'), an IPv4 address or an IPv6 address")
		}
	}
	return nil
}

// isSchemePrefix reports whether s starts like "scheme:" (RFC 3986 §3.1)
// with something other than a port after the colon ("javascript:x",
// "mailto:a"), as opposed to "host:8080".
func isSchemePrefix(s string) bool {
	i := strings.IndexByte(s, ':')
	if i <= 0 || strings.Count(s, ":") > 1 {
		return false
	}
	for j := 0; j < i; j++ {
		c := s[j]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || j > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	rest := s[i+1:]
	if rest == "" {
		return true
	}
	for j := 0; j < len(rest); j++ {
		if rest[j] < '0' || rest[j] > '9' {
			return true
		}
	}
	return false
}

func checkName(field, s string) error {
	if s == "" || len(s) > MaxNameLen || hasSpaceOrControl(s) || strings.ContainsAny(s, "/?#") {
		return invalid(field, "must be a non-empty string of at most 256 characters without spaces, '/', '?' or '#'")
	}
	return nil
}

func hasSpaceOrControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return true
		}
	}
	return false
}

func cutScheme(host string) (string, bool) {
	lower := strings.ToLower(host)
	if strings.HasPrefix(lower, "http://") {
		return host[len("http://"):], true
	}
	if strings.HasPrefix(lower, "https://") {
		return host[len("https://"):], true
	}
	return host, false
}

// normalize fills in the canonical path form (leading '/', no trailing '/').
func (r *Registration) normalize() {
	r.Path = cleanPath(r.Path)
	if r.HealthCheckPath != "" && r.HealthCheckPath[0] != '/' {
		r.HealthCheckPath = "/" + r.HealthCheckPath
	}
	if len(r.Metadata) == 0 {
		r.Metadata = nil
	}
}

func cleanPath(p string) string {
	p = strings.TrimRight(p, "/")
	if p != "" && p[0] != '/' {
		p = "/" + p
	}
	return p
}

// Address builds the node's base URL: http(s)://hostName[:port][/path]. A
// hostName that already carries http:// or https:// keeps its scheme.
func (r *Registration) Address() string {
	var b strings.Builder
	host, hadScheme := cutScheme(r.HostName)
	if hadScheme {
		b.WriteString(r.HostName[:len(r.HostName)-len(host)])
	} else if r.SSL {
		b.WriteString("https://")
	} else {
		b.WriteString("http://")
	}
	host = strings.TrimRight(host, "/")
	if strings.IndexByte(host, ':') >= 0 && host[0] != '[' {
		// An IPv6 literal: bracketed in a URL (RFC 3986 §3.2.2), or its
		// colons would be read as the port's.
		host = "[" + host + "]"
	}
	b.WriteString(host)
	if r.Port != 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(r.Port))
	}
	b.WriteString(cleanPath(r.Path))
	return b.String()
}

// sameAs reports whether two normalized registrations describe the same
// node, so a re-registration is a plain heartbeat that changes no snapshot.
func (r *Registration) sameAs(o *Registration) bool {
	if r.ServiceName != o.ServiceName || r.NodeName != o.NodeName || r.HostName != o.HostName ||
		r.Port != o.Port || r.SSL != o.SSL || r.Path != o.Path || r.TimeOut != o.TimeOut ||
		r.Weight != o.Weight || r.HealthCheckPath != o.HealthCheckPath || len(r.Metadata) != len(o.Metadata) {
		return false
	}
	for k, v := range r.Metadata {
		if ov, ok := o.Metadata[k]; !ok || ov != v {
			return false
		}
	}
	return true
}

// IsValidationError reports whether err came from validation (a 400), as
// opposed to a capacity or internal error.
func IsValidationError(err error) bool {
	var v *ValidationError
	return errors.As(err, &v)
}
