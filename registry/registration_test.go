package registry

import (
	"strings"
	"testing"
)

func TestDecodeRegistration(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantErr   string // field of the ValidationError, "" for success
		wantAddr  string
		wantW     int
		wantT     int
		wantPath  string
		wantCheck string
	}{
		{name: "minimal", body: `{"serviceName":"s","nodeName":"n","hostName":"h"}`, wantAddr: "http://h", wantW: 1, wantT: 5},
		{name: "port and ssl", body: `{"serviceName":"s","nodeName":"n","hostName":"h","port":8443,"ssl":true}`, wantAddr: "https://h:8443", wantW: 1, wantT: 5},
		{name: "scheme kept", body: `{"serviceName":"s","nodeName":"n","hostName":"https://h","port":1,"ssl":false}`, wantAddr: "https://h:1", wantW: 1, wantT: 5},
		{name: "path cleaned", body: `{"serviceName":"s","nodeName":"n","hostName":"h","path":"api/v1/"}`, wantAddr: "http://h/api/v1", wantW: 1, wantT: 5, wantPath: "/api/v1"},
		{name: "root path dropped", body: `{"serviceName":"s","nodeName":"n","hostName":"h","path":"/"}`, wantAddr: "http://h", wantW: 1, wantT: 5},
		{name: "weight and timeout", body: `{"serviceName":"s","nodeName":"n","hostName":"h","weight":10,"timeOut":1}`, wantAddr: "http://h", wantW: 10, wantT: 1},
		{name: "health path gets slash", body: `{"serviceName":"s","nodeName":"n","hostName":"h","healthCheckPath":"health"}`, wantAddr: "http://h", wantW: 1, wantT: 5, wantCheck: "/health"},
		{name: "null weight is default", body: `{"serviceName":"s","nodeName":"n","hostName":"h","weight":null}`, wantAddr: "http://h", wantW: 1, wantT: 5},
		{name: "unknown fields ignored", body: `{"serviceName":"s","nodeName":"n","hostName":"h","extra":[1,2]}`, wantAddr: "http://h", wantW: 1, wantT: 5},
		{name: "malformed", body: `{"serviceName":`, wantErr: "body"},
		{name: "not an object", body: `[1]`, wantErr: "body"},
		{name: "empty body", body: ``, wantErr: "body"},
		{name: "trailing data", body: `{"serviceName":"s","nodeName":"n","hostName":"h"} x`, wantErr: "body"},
		{name: "missing service", body: `{"nodeName":"n","hostName":"h"}`, wantErr: "serviceName"},
		{name: "empty node", body: `{"serviceName":"s","nodeName":"","hostName":"h"}`, wantErr: "nodeName"},
		{name: "missing host", body: `{"serviceName":"s","nodeName":"n"}`, wantErr: "hostName"},
		{name: "service wrong type", body: `{"serviceName":1,"nodeName":"n","hostName":"h"}`, wantErr: "body"},
		{name: "weight 0", body: `{"serviceName":"s","nodeName":"n","hostName":"h","weight":0}`, wantErr: "weight"},
		{name: "weight 11", body: `{"serviceName":"s","nodeName":"n","hostName":"h","weight":11}`, wantErr: "weight"},
		// Decimal integer strings are numbers, as the old server (and its
		// SDKs' test data) had them; anything else in a string is not.
		{name: "numbers as strings", body: `{"serviceName":"s","nodeName":"n","hostName":"h","port":"8082","weight":"2","timeOut":"5"}`, wantAddr: "http://h:8082", wantW: 2, wantT: 5},
		{name: "weight string 10", body: `{"serviceName":"s","nodeName":"n","hostName":"h","weight":"10","timeOut":"86400"}`, wantAddr: "http://h", wantW: 10, wantT: 86400},
		{name: "weight string word", body: `{"serviceName":"s","nodeName":"n","hostName":"h","weight":"two"}`, wantErr: "weight"},
		{name: "weight string fraction", body: `{"serviceName":"s","nodeName":"n","hostName":"h","weight":"1.5"}`, wantErr: "weight"},
		{name: "weight string exponent", body: `{"serviceName":"s","nodeName":"n","hostName":"h","weight":"1e1"}`, wantErr: "weight"},
		{name: "weight string 11", body: `{"serviceName":"s","nodeName":"n","hostName":"h","weight":"11"}`, wantErr: "weight"},
		{name: "weight string empty", body: `{"serviceName":"s","nodeName":"n","hostName":"h","weight":""}`, wantErr: "weight"},
		{name: "weight string spaces", body: `{"serviceName":"s","nodeName":"n","hostName":"h","weight":" 2"}`, wantErr: "weight"},
		{name: "weight string plus", body: `{"serviceName":"s","nodeName":"n","hostName":"h","weight":"+2"}`, wantErr: "weight"},
		{name: "weight string hex", body: `{"serviceName":"s","nodeName":"n","hostName":"h","weight":"0x2"}`, wantErr: "weight"},
		{name: "weight string escaped", body: `{"serviceName":"s","nodeName":"n","hostName":"h","weight":"\u0032"}`, wantAddr: "http://h", wantW: 2, wantT: 5},
		{name: "port string 0", body: `{"serviceName":"s","nodeName":"n","hostName":"h","port":"0"}`, wantErr: "port"},
		{name: "port string 65536", body: `{"serviceName":"s","nodeName":"n","hostName":"h","port":"65536"}`, wantErr: "port"},
		{name: "port string negative", body: `{"serviceName":"s","nodeName":"n","hostName":"h","port":"-80"}`, wantErr: "port"},
		{name: "port string huge", body: `{"serviceName":"s","nodeName":"n","hostName":"h","port":"99999999999999999999"}`, wantErr: "port"},
		{name: "port string fraction", body: `{"serviceName":"s","nodeName":"n","hostName":"h","port":"80.0"}`, wantErr: "port"},
		{name: "timeout string 0", body: `{"serviceName":"s","nodeName":"n","hostName":"h","timeOut":"0"}`, wantErr: "timeOut"},
		{name: "timeout string word", body: `{"serviceName":"s","nodeName":"n","hostName":"h","timeOut":"five"}`, wantErr: "timeOut"},
		{name: "timeout string too long", body: `{"serviceName":"s","nodeName":"n","hostName":"h","timeOut":"86401"}`, wantErr: "timeOut"},
		{name: "weight bool", body: `{"serviceName":"s","nodeName":"n","hostName":"h","weight":true}`, wantErr: "weight"},
		{name: "weight object", body: `{"serviceName":"s","nodeName":"n","hostName":"h","weight":{"n":2}}`, wantErr: "weight"},
		{name: "weight fraction", body: `{"serviceName":"s","nodeName":"n","hostName":"h","weight":1.5}`, wantErr: "weight"},
		{name: "port 70000", body: `{"serviceName":"s","nodeName":"n","hostName":"h","port":70000}`, wantErr: "port"},
		{name: "port 0", body: `{"serviceName":"s","nodeName":"n","hostName":"h","port":0}`, wantErr: "port"},
		{name: "port huge", body: `{"serviceName":"s","nodeName":"n","hostName":"h","port":99999999999999}`, wantErr: "port"},
		{name: "timeout 0", body: `{"serviceName":"s","nodeName":"n","hostName":"h","timeOut":0}`, wantErr: "timeOut"},
		{name: "ssl wrong type", body: `{"serviceName":"s","nodeName":"n","hostName":"h","ssl":"yes"}`, wantErr: "body"},
		{name: "space in service", body: `{"serviceName":"a b","nodeName":"n","hostName":"h"}`, wantErr: "serviceName"},
		{name: "slash in node", body: `{"serviceName":"s","nodeName":"a/b","hostName":"h"}`, wantErr: "nodeName"},
		{name: "scheme only host", body: `{"serviceName":"s","nodeName":"n","hostName":"http://"}`, wantErr: "hostName"},
		{name: "userinfo host", body: `{"serviceName":"s","nodeName":"n","hostName":"u@h"}`, wantErr: "hostName"},
		{name: "long service", body: `{"serviceName":"` + strings.Repeat("x", 300) + `","nodeName":"n","hostName":"h"}`, wantErr: "serviceName"},
		{name: "metadata wrong type", body: `{"serviceName":"s","nodeName":"n","hostName":"h","metadata":{"a":1}}`, wantErr: "body"},
		{name: "metadata too big", body: `{"serviceName":"s","nodeName":"n","hostName":"h","metadata":{"a":"` + strings.Repeat("x", 2000) + `"}}`, wantErr: "metadata"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := DecodeRegistration([]byte(tc.body), 5)
			if tc.wantErr != "" {
				ve, ok := err.(*ValidationError)
				if !ok {
					t.Fatalf("err = %v, want ValidationError on %s", err, tc.wantErr)
				}
				if ve.Field != tc.wantErr {
					t.Fatalf("field = %q (%v), want %q", ve.Field, ve, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got := r.Address(); got != tc.wantAddr {
				t.Errorf("address = %q, want %q", got, tc.wantAddr)
			}
			if r.Weight != tc.wantW || r.TimeOut != tc.wantT {
				t.Errorf("weight/timeOut = %d/%d, want %d/%d", r.Weight, r.TimeOut, tc.wantW, tc.wantT)
			}
			if r.Path != tc.wantPath {
				t.Errorf("path = %q, want %q", r.Path, tc.wantPath)
			}
			if r.HealthCheckPath != tc.wantCheck {
				t.Errorf("healthCheckPath = %q, want %q", r.HealthCheckPath, tc.wantCheck)
			}
		})
	}
}

// FuzzDecodeRegistration checks that no input crashes decoding and that
// whatever is accepted validates again and yields a well-formed address.
func FuzzDecodeRegistration(f *testing.F) {
	for _, s := range []string{
		`{"serviceName":"s","nodeName":"n","hostName":"h","port":80,"weight":3,"timeOut":2,"path":"/a/"}`,
		`{"serviceName":"s","nodeName":"n","hostName":"https://h/","ssl":true,"metadata":{"k":"v"}}`,
		`{"serviceName":1}`, `[]`, `null`, `{"weight":1e3}`, `{"port":"80"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeRegistration(body, 5)
		if err != nil {
			if !IsValidationError(err) {
				t.Fatalf("non-validation error %T: %v", err, err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted registration fails Validate: %v", err)
		}
		addr := r.Address()
		if !strings.HasPrefix(addr, "http://") && !strings.HasPrefix(addr, "https://") {
			t.Fatalf("address %q has no scheme", addr)
		}
		if r.Weight < 1 || r.Weight > MaxWeight {
			t.Fatalf("weight %d out of range", r.Weight)
		}
		reg := New(Options{})
		if _, err := reg.Register(r); err != nil {
			t.Fatalf("Register of a decoded registration: %v", err)
		}
		if s := reg.Snapshot(r.ServiceName); s == nil || len(s.Nodes) != r.Weight {
			t.Fatalf("snapshot does not hold %d virtual nodes", r.Weight)
		}
	})
}
