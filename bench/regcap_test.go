package main

import (
	"testing"
	"time"
)

// TestDistinctRegistrationsStayUnderTheNodeCap: every round of the
// distinct-registration case adds new nodes to the same maxine, and the
// registry answers 503 once it holds its --max-nodes. The bench gives
// that maxine an explicit cap and shares it out over the rounds, so no
// round runs into it however fast the machine is. Here a cap of 300
// nodes over 3 rounds whose windows could each register far more.
func TestDistinctRegistrationsStayUnderTheNodeCap(t *testing.T) {
	cfg := Config{
		Duration: 300 * time.Millisecond, Conns: 4, Rate: 200, Nodes: 10, Services: 1,
		MaxReqs: 20000, Repeat: 3, RegNodeCap: 300,
		Scenarios: map[string]bool{"register": true},
	}
	b := &Bench{cfg: cfg, runDir: t.TempDir()}
	ctx := testContext(t, time.Minute)
	b.prepareMaxine(ctx, maxineBinary(t))
	b.Registrations(ctx)
	if len(b.rows) != 2 {
		t.Fatalf("%d rows, want 2", len(b.rows))
	}
	for _, r := range b.rows {
		if r.OK == 0 || r.Errors != 0 || r.Verdict == verdictSkip {
			t.Errorf("%s: %d ok, %d failed, verdict %q: %s", r.Target, r.OK, r.Errors, r.Verdict, r.Note)
		}
	}
	if d := b.rows[0]; d.OK > 300 {
		t.Errorf("%s: the median round alone registered %d nodes, over the cap of 300", d.Target, d.OK)
	}
}
