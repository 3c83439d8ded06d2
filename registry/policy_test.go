package registry

import (
	"strings"
	"testing"
	"time"
)

// TestPolicyRefusedAtRegistration: a registration whose policy metadata
// does not parse, or that names an unknown "maxine." key (a typo), is
// refused with the key named, so a limit is never silently left off.
func TestPolicyRefusedAtRegistration(t *testing.T) {
	bad := map[string]string{
		"timeout unit":       `"maxine.tryTimeout":"5"`,
		"timeout negative":   `"maxine.tryTimeout":"-1s"`,
		"timeout too long":   `"maxine.tryTimeout":"2h"`,
		"retries 11":         `"maxine.retries":"11"`,
		"retries word":       `"maxine.retries":"two"`,
		"retryOn 404":        `"maxine.retryOn":"404"`,
		"retryOn junk":       `"maxine.retryOn":"502,,x"`,
		"body zero":          `"maxine.maxBodySize":"0"`,
		"body unit":          `"maxine.maxBodySize":"1MB"`,
		"rate zero":          `"maxine.rateLimit":"0"`,
		"rate NaN":           `"maxine.rateLimit":"NaN"`,
		"rate huge":          `"maxine.rateLimit":"1e9"`,
		"burst zero":         `"maxine.rateLimit":"5","maxine.rateBurst":"0"`,
		"burst without rate": `"maxine.rateBurst":"5"`,
		"key without rate":   `"maxine.rateLimitKey":"client"`,
		"key unknown":        `"maxine.rateLimit":"5","maxine.rateLimitKey":"ip"`,
		"typo key":           `"maxine.rateLimt":"5"`,
		"pipeline zero":      `"maxine.pipeline":"0"`,
		"pipeline too many":  `"maxine.pipeline":"65"`,
		"pipeline word":      `"maxine.pipeline":"on"`,
	}
	for name, md := range bad {
		t.Run(name, func(t *testing.T) {
			body := `{"serviceName":"s","nodeName":"n","hostName":"h","metadata":{` + md + `}}`
			_, err := DecodeRegistration([]byte(body), 5)
			ve, ok := err.(*ValidationError)
			if !ok || ve.Field != "metadata" || !strings.Contains(ve.Reason, "maxine.") {
				t.Fatalf("DecodeRegistration(%s) = %v, want a metadata error naming the key", md, err)
			}
		})
	}
}

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy(map[string]string{
		"other": "x", "maxine.tryTimeout": "250ms", "maxine.retries": "0",
		"maxine.retryOn": "500, gateway-error", "maxine.maxBodySize": "1024",
		"maxine.rateLimit": "2.5", "maxine.rateLimitKey": "client", "maxine.pipeline": "4",
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Set != SetTryTimeout|SetRetries|SetRetryOn|SetMaxBodySize|SetRateLimit|SetPipeline ||
		p.TryTimeout != 250*time.Millisecond || p.Retries != 0 || p.MaxBodySize != 1024 ||
		p.RateLimit != 2.5 || p.RateBurst != 2 || !p.PerClient || p.Pipeline != 4 {
		t.Fatalf("ParsePolicy = %+v", p)
	}
	for code, want := range map[int]bool{500: true, 501: false, 502: true, 503: true, 504: true, 599: false, 404: false} {
		if p.RetryOn.Has(code) != want {
			t.Errorf("RetryOn.Has(%d) = %v, want %v", code, !want, want)
		}
	}
	all, _ := ParsePolicy(map[string]string{"maxine.retryOn": "5xx"})
	none, _ := ParsePolicy(map[string]string{"maxine.retryOn": "none"})
	for c := 500; c <= 599; c++ {
		if !all.RetryOn.Has(c) || none.RetryOn.Has(c) {
			t.Fatalf("5xx/none wrong at %d", c)
		}
	}
	if all.RetryOn.Has(600) || all.RetryOn.Has(499) {
		t.Fatal("5xx covers codes outside 500-599")
	}
	if p, _ := ParsePolicy(nil); p.Set != 0 {
		t.Fatalf("empty metadata set %b", p.Set)
	}
}
