package registry

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// Per-service gateway policy travels in a registration's metadata under
// the keys below (README, "Per-service policy"). The registry owns their
// syntax: Validate refuses a registration whose policy keys do not parse,
// and any other key under the "maxine." prefix, so that a typo is a 400 at
// registration, never a limit silently left off. The gateway combines the
// policies of a service's nodes (see gateway/policy.go).
const (
	PolicyPrefix        = "maxine."
	PolicyTryTimeout    = "maxine.tryTimeout"   // Go duration, 1ms–1h
	PolicyRetries       = "maxine.retries"      // 0–10
	PolicyRetryOn       = "maxine.retryOn"      // "502,503", "5xx", "gateway-error", "none"
	PolicyMaxBodySize   = "maxine.maxBodySize"  // bytes, ≥ 1
	PolicyRateLimit     = "maxine.rateLimit"    // requests/s, > 0, ≤ 1,000,000
	PolicyRateBurst     = "maxine.rateBurst"    // requests, 1–1,000,000; default max(1, rateLimit)
	PolicyRateLimitKey  = "maxine.rateLimitKey" // "service" (default) or "client"
	PolicyPipeline      = "maxine.pipeline"     // connections, 1–64: pipeline this node's GET/HEAD requests
	maxPolicyTryTimeout = time.Hour
	maxPolicyRetries    = 10 // the gateway's own bound (gateway.maxRetriesLimit)
	maxPolicyRate       = 1e6
	maxPolicyPipeline   = 64
)

// PolicyKeys are the documented policy keys, in documentation order.
var PolicyKeys = []string{PolicyTryTimeout, PolicyRetries, PolicyRetryOn, PolicyMaxBodySize,
	PolicyRateLimit, PolicyRateBurst, PolicyRateLimitKey, PolicyPipeline}

// StatusSet is a set of 5xx status codes (500–599) as a bitmask.
type StatusSet [2]uint64

// Has reports whether code is in the set.
func (s StatusSet) Has(code int) bool {
	i := code - 500
	return i >= 0 && i < 100 && s[i/64]&(1<<(i%64)) != 0
}

func (s *StatusSet) add(code int) { i := code - 500; s[i/64] |= 1 << (i % 64) }

// GatewayErrors is {502, 503, 504}: the statuses a gateway retries by
// default (the node, or one in front of it, could not answer).
var GatewayErrors = func() (s StatusSet) {
	s.add(502)
	s.add(503)
	s.add(504)
	return s
}()

// Policy fields a registration sets (Policy.Set).
const (
	SetTryTimeout uint8 = 1 << iota
	SetRetries
	SetRetryOn
	SetMaxBodySize
	SetRateLimit
	SetPipeline
)

// Policy is one registration's parsed policy. Only the fields named in Set
// were given; the others are zero.
type Policy struct {
	Set         uint8
	TryTimeout  time.Duration
	Retries     int
	RetryOn     StatusSet
	MaxBodySize int64
	RateLimit   float64 // requests per second
	RateBurst   int     // with RateLimit
	PerClient   bool    // with RateLimit: one bucket per client address
	// Pipeline is the node's own setting, not combined across a
	// service's nodes: it says the node answers pipelined HTTP/1.1
	// requests in order, and over how many connections (per gateway
	// instance) its GET and HEAD requests may be pipelined.
	Pipeline int
}

// ParsePolicy reads the policy keys of md. An error names the key and what
// it must be (a *ValidationError on field "metadata").
func ParsePolicy(md map[string]string) (Policy, error) {
	var p Policy
	bad := func(key, must string) error { return invalid("metadata", key+" "+must) }
	burst, key := "", ""
	for k, v := range md {
		if !strings.HasPrefix(k, PolicyPrefix) {
			continue
		}
		switch k {
		case PolicyTryTimeout:
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Millisecond || d > maxPolicyTryTimeout {
				return Policy{}, bad(k, "must be a Go duration from 1ms to 1h, such as 2s or 500ms")
			}
			p.TryTimeout, p.Set = d, p.Set|SetTryTimeout
		case PolicyRetries:
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > maxPolicyRetries {
				return Policy{}, bad(k, "must be an integer from 0 to 10")
			}
			p.Retries, p.Set = n, p.Set|SetRetries
		case PolicyRetryOn:
			s, ok := parseStatuses(v)
			if !ok {
				return Policy{}, bad(k, `must be a comma-separated list of statuses 500-599, "5xx", "gateway-error", or "none"`)
			}
			p.RetryOn, p.Set = s, p.Set|SetRetryOn
		case PolicyMaxBodySize:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				return Policy{}, bad(k, "must be a positive integer number of bytes")
			}
			p.MaxBodySize, p.Set = n, p.Set|SetMaxBodySize
		case PolicyRateLimit:
			r, err := strconv.ParseFloat(v, 64)
			if err != nil || !(r > 0) || r > maxPolicyRate || math.IsInf(r, 0) {
				return Policy{}, bad(k, "must be a number of requests per second above 0 and at most 1000000")
			}
			p.RateLimit, p.Set = r, p.Set|SetRateLimit
		case PolicyPipeline:
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxPolicyPipeline {
				return Policy{}, bad(k, "must be an integer number of connections from 1 to 64")
			}
			p.Pipeline, p.Set = n, p.Set|SetPipeline
		case PolicyRateBurst:
			burst = v
		case PolicyRateLimitKey:
			key = v
		default:
			return Policy{}, bad(k, "is not a policy key (known: "+strings.Join(PolicyKeys, ", ")+")")
		}
	}
	if (burst != "" || key != "") && p.Set&SetRateLimit == 0 {
		return Policy{}, invalid("metadata", PolicyRateBurst+" and "+PolicyRateLimitKey+" need "+PolicyRateLimit)
	}
	if p.Set&SetRateLimit != 0 {
		p.RateBurst = max(1, int(p.RateLimit))
		if burst != "" {
			n, err := strconv.Atoi(burst)
			if err != nil || n < 1 || n > maxPolicyRate {
				return Policy{}, bad(PolicyRateBurst, "must be an integer from 1 to 1000000")
			}
			p.RateBurst = n
		}
		switch key {
		case "", "service":
		case "client":
			p.PerClient = true
		default:
			return Policy{}, bad(PolicyRateLimitKey, `must be "service" or "client"`)
		}
	}
	return p, nil
}

func parseStatuses(v string) (StatusSet, bool) {
	var s StatusSet
	if strings.TrimSpace(v) == "none" {
		return s, true
	}
	for f := range strings.SplitSeq(v, ",") {
		switch f = strings.TrimSpace(f); f {
		case "5xx":
			s = StatusSet{^uint64(0), 1<<36 - 1}
		case "gateway-error":
			s[0] |= GatewayErrors[0]
			s[1] |= GatewayErrors[1]
		default:
			n, err := strconv.Atoi(f)
			if err != nil || n < 500 || n > 599 {
				return s, false
			}
			s.add(n)
		}
	}
	return s, true
}
