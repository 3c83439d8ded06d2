package registry

import (
	"strings"
	"testing"
)

// hostName is a host name, an IPv4 literal or an IPv6 literal, optionally
// after http:// or https://; paths, userinfo, ports, spaces, control
// characters and other schemes are refused with a reason, and the address
// built from it is one a client can dial.
func TestHostNameValidation(t *testing.T) {
	ok := map[string]string{ // hostName (port 29001) → address
		"h":                 "http://h:29001",
		"users.internal":    "http://users.internal:29001",
		"my_host-1.local":   "http://my_host-1.local:29001",
		"127.0.0.1":         "http://127.0.0.1:29001",
		"::1":               "http://[::1]:29001",
		"[::1]":             "http://[::1]:29001",
		"fd00::7":           "http://[fd00::7]:29001",
		"http://h":          "http://h:29001",
		"HTTPS://h":         "HTTPS://h:29001",
		"https://h/":        "https://h:29001",
		"h/":                "http://h:29001",
		"https://[fe80::1]": "https://[fe80::1]:29001",
		"http://10.0.0.1":   "http://10.0.0.1:29001",
		"Upper.Example.COM": "http://Upper.Example.COM:29001",
	}
	for host, want := range ok {
		body := `{"serviceName":"s","nodeName":"n","hostName":"` + host + `","port":29001}`
		r, err := DecodeRegistration([]byte(body), 5)
		if err != nil {
			t.Errorf("hostName %q refused: %v", host, err)
			continue
		}
		if got := r.Address(); got != want {
			t.Errorf("hostName %q: address %q, want %q", host, got, want)
		}
	}
	bad := map[string]string{ // hostName → a word the reason must contain
		"127.0.0.1/path":         "path",
		"http://h/x":             "path",
		"h?x=1":                  "path",
		"h#f":                    "path",
		"u@h":                    "userinfo",
		"http://u:p@h":           "userinfo",
		"h:8080":                 "port",
		"[::1]:8080":             "port",
		"ftp://h":                "scheme",
		"javascript:alert":       "scheme",
		"file:///etc":            "scheme",
		"h h":                    "space",
		"h\tx":                   "space",
		"h\u0000":                "control",
		"http://":                "host",
		"[::1":                   "IPv6",
		"[h]":                    "IPv6",
		"::zz":                   "IPv6",
		"h%2f":                   "host name",
		"h..x":                   "host name",
		".h":                     "host name",
		strings.Repeat("a", 600): "512",
	}
	for host, word := range bad {
		body := `{"serviceName":"s","nodeName":"n","hostName":` + quote(host) + `,"port":29001}`
		_, err := DecodeRegistration([]byte(body), 5)
		ve, isVE := err.(*ValidationError)
		if !isVE || ve.Field != "hostName" {
			t.Errorf("hostName %q: err %v, want a hostName validation error", host, err)
			continue
		}
		if !strings.Contains(ve.Reason, word) {
			t.Errorf("hostName %q: reason %q does not say %q", host, ve.Reason, word)
		}
	}
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range []byte(s) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[c>>4])
			b.WriteByte("0123456789abcdef"[c&15])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
