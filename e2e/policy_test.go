package e2e

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// withMetadata adds a metadata object to an upstream's registration body.
func withMetadata(reg, md string) string {
	return strings.TrimSuffix(reg, "}") + `,"metadata":{` + md + `}}`
}

// TestGatewayPerServicePolicy runs per-service policy through the real
// binary: policy keys in registration metadata change how the gateway
// treats each service, a re-registration changes the policy in place, and
// an invalid value is refused 400 naming the key.
func TestGatewayPerServicePolicy(t *testing.T) {
	in := start(t, "", nil)
	slowUp := newUpstream(t, "slow-up")
	slowUp.delay.Store(int64(time.Minute)) // answers only after the gateway gave up
	fastUp := newUpstream(t, "fast-up")

	// Invalid policy: refused, and the node is not registered.
	for _, md := range []string{`"maxine.tryTimeout":"5"`, `"maxine.rateLimt":"10"`, `"maxine.retries":"11"`} {
		r := in.register(withMetadata(fastUp.registration("bad", "b1"), md))
		// "message" is the old server's fixed text; "detail" says why.
		if detail, _ := r.json["detail"].(string); r.status != 400 || !strings.Contains(detail, "maxine.") {
			t.Errorf("metadata {%s}: %d %s, want 400 with a detail naming the key", md, r.status, r.body)
		}
	}
	if r := call(t, "GET", in.gateway+"/bad/x", "", ""); r.status != 404 {
		t.Errorf("refused registration is routed: %d", r.status)
	}

	// Two services, different try timeouts: one gives up on its node (504
	// after one try, no retry), the other is answered.
	if r := in.register(withMetadata(slowUp.registration("slow", "s1"), `"maxine.tryTimeout":"100ms","maxine.retries":"0"`)); r.status != 200 {
		t.Fatalf("register slow: %d %s", r.status, r.body)
	}
	if r := in.register(withMetadata(fastUp.registration("fast", "f1"), `"maxine.tryTimeout":"10s"`)); r.status != 200 {
		t.Fatalf("register fast: %d %s", r.status, r.body)
	}
	in.waitRoutable("fast")
	// 504; 502 if a loaded machine spent the 100ms before connecting.
	if r := call(t, "GET", in.gateway+"/slow/x", "", ""); r.status != 504 && r.status != 502 {
		t.Errorf("slow service: %d %s, want 504 after its 100ms try timeout", r.status, r.body)
	}
	if n := slowUp.hits.Load(); n > 1 {
		t.Errorf("slow's node saw %d requests, want 1 (retries=0)", n)
	}

	// A rate limit added by re-registering: a burst of 2, then 429 with
	// Retry-After (one token per 1000 s: none comes due during the test).
	if r := in.register(withMetadata(fastUp.registration("fast", "f1"), `"maxine.rateLimit":"0.001","maxine.rateBurst":"2"`)); r.status != 200 {
		t.Fatalf("re-register fast: %d %s", r.status, r.body)
	}
	var ok, limited int
	eventually(t, 5*time.Second, "the rate limit to apply", func() bool {
		r := call(t, "GET", in.gateway+"/fast/x", "", "")
		switch r.status {
		case 200:
			ok++
		case 429:
			limited++
			if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
				t.Fatalf("429 with Retry-After %q", r.header.Get("Retry-After"))
			}
		default:
			t.Fatalf("status %d %s", r.status, r.body)
		}
		return limited >= 3
	})
	// The compatibility proxy endpoint is the same service: limited too.
	if r := in.call("GET", "/api/maxine/serviceops/proxy/fast/x", "", ""); r.status != 429 {
		t.Errorf("compat proxy of a limited service: %d", r.status)
	}
	// And lifted again.
	if r := in.register(fastUp.registration("fast", "f1")); r.status != 200 {
		t.Fatalf("re-register fast: %d", r.status)
	}
	eventually(t, 5*time.Second, "the limit to be lifted", func() bool {
		return call(t, "GET", in.gateway+"/fast/x", "", "").status == 200
	})
}

// TestClusterPolicyPerInstance: policy travels with the registration, so
// an instance that did not take the registration (shared-file mode)
// applies it too; rate limits are per instance, so each of the two
// admits its own burst (1) and then answers 429.
func TestClusterPolicyPerInstance(t *testing.T) {
	file := filepath.Join(t.TempDir(), "shared-state.json")
	args := []string{"--state-mode", "shared-file", "--shared-file", file, "--shared-poll-interval", "200ms", "--health-checks=false"}
	a := start(t, "", nil, append(args, "--instance-id", "a")...)
	b := start(t, "", nil, append(args, "--instance-id", "b")...)
	up := newUpstream(t, "orders-up")
	if r := a.register(withMetadata(up.registration("orders", "o1"), `"maxine.rateLimit":"0.001","maxine.rateBurst":"1"`)); r.status != 200 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	for _, in := range []*instance{a, b} {
		ok := 0
		eventually(t, 10*time.Second, "instance "+in.gateway+" to limit orders", func() bool {
			switch r := call(t, "GET", in.gateway+"/orders/x", "", ""); r.status {
			case 200:
				ok++
			case 429:
				return true
			case 404, 503: // not yet seen by this instance
			default:
				t.Fatalf("status %d %s", r.status, r.body)
			}
			return false
		})
		if ok != 1 {
			t.Errorf("instance %s admitted %d requests before 429, want its own burst of 1", in.gateway, ok)
		}
	}
}
