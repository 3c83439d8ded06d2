package observe

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// runAlerts starts a.Run and returns a function that stops it and waits.
func runAlerts(a *Alerts) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { a.Run(done) })
	return func() {
		close(done)
		wg.Wait()
	}
}

// waitFor polls cond for up to 10 s; it is a deadline for a test that
// would otherwise hang, not a timing assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func failedDeliveries(au *Audit) []AuditEvent {
	var out []AuditEvent
	for _, ev := range au.Recent(0) {
		if ev.Type == AuditAlertDeliveryFailed {
			out = append(out, ev)
		}
	}
	return out
}

func TestAlertsWebhookReceivesJSON(t *testing.T) {
	type received struct {
		contentType, method string
		body                map[string]any
	}
	got := make(chan received, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		data, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(data, &body); err != nil {
			t.Errorf("webhook body is not JSON: %v: %s", err, data)
		}
		got <- received{r.Header.Get("Content-Type"), r.Method, body}
	}))
	defer srv.Close()

	at := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	a := NewAlerts(AlertOptions{WebhookURL: srv.URL, Instance: "maxine-1", Now: func() time.Time { return at }})
	defer runAlerts(a)()
	a.Raise(Alert{
		Type: AlertNodeEvicted, Severity: SeverityWarning, Message: "node n1 evicted",
		Service: "orders", Node: "n1", Details: map[string]any{"missedHeartbeats": 3},
	})
	var r received
	select {
	case r = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("webhook never called")
	}
	if r.method != http.MethodPost || r.contentType != "application/json" {
		t.Errorf("method %s, content type %q", r.method, r.contentType)
	}
	want := map[string]any{
		"timestamp": "2025-03-04T05:06:07Z", "type": "node_evicted", "severity": "warning",
		"message": "node n1 evicted", "service": "orders", "node": "n1", "instanceId": "maxine-1",
	}
	for k, v := range want {
		if r.body[k] != v {
			t.Errorf("body[%q] = %v, want %v", k, r.body[k], v)
		}
	}
	if d, _ := r.body["details"].(map[string]any); d["missedHeartbeats"] != 3.0 {
		t.Errorf("details = %v", r.body["details"])
	}
	waitFor(t, "delivery count", func() bool { return a.Delivered() == 1 })
}

func TestAlertsRetriesNon2xx(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls < 3 {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	au, _ := NewAudit(AuditOptions{})
	a := NewAlerts(AlertOptions{WebhookURL: srv.URL, Backoff: time.Millisecond, Audit: au})
	defer runAlerts(a)()
	a.Raise(Alert{Type: AlertBreakerOpened, Severity: SeverityWarning})
	waitFor(t, "delivery", func() bool { return a.Delivered() == 1 })
	mu.Lock()
	defer mu.Unlock()
	if calls != 3 {
		t.Errorf("webhook called %d times, want 3", calls)
	}
	if f := failedDeliveries(au); len(f) != 0 {
		t.Errorf("audited failures after a successful retry: %+v", f)
	}
}

func TestAlertsWebhookDownIsAudited(t *testing.T) {
	// A port nothing listens on: take one, then close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/hook"
	ln.Close()

	au, _ := NewAudit(AuditOptions{})
	a := NewAlerts(AlertOptions{WebhookURL: url, MaxAttempts: 3, Backoff: time.Millisecond, Audit: au})
	defer runAlerts(a)()
	start := time.Now()
	a.Raise(Alert{Type: AlertStateStoreDown, Severity: SeverityCritical, Service: "redis", Node: "n2"})
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Errorf("Raise took %v with the webhook down", el)
	}
	waitFor(t, "audited delivery failure", func() bool { return len(failedDeliveries(au)) == 1 })
	ev := failedDeliveries(au)[0]
	if ev.Actor != "system" || ev.Service != "redis" || ev.Node != "n2" ||
		ev.Details["alertType"] != AlertStateStoreDown || ev.Details["attempts"] != 3 {
		t.Errorf("audit event = %+v", ev)
	}
	if a.Failed() != 1 {
		t.Errorf("Failed() = %d", a.Failed())
	}
	if got := a.Recent(0); len(got) != 1 || got[0].Type != AlertStateStoreDown {
		t.Errorf("ring = %+v", got)
	}
}

// A webhook that hangs longer than Timeout slows neither Raise nor
// shutdown, even once the delivery queue is full, and the failure is
// audited.
func TestAlertsHangingWebhookNeverBlocksRaise(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		// The server notices the client leaving only once the body is read.
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done(): // the client gave up
		case <-time.After(5 * time.Second):
		}
	}))
	defer srv.Close()

	au, _ := NewAudit(AuditOptions{})
	a := NewAlerts(AlertOptions{
		WebhookURL: srv.URL, Timeout: 50 * time.Millisecond, MaxAttempts: 2,
		Backoff: time.Millisecond, QueueSize: 2, Audit: au,
	})
	stop := runAlerts(a)
	for i := range 20 {
		start := time.Now()
		a.Raise(Alert{Type: AlertLeadershipLost, Severity: SeverityCritical, Message: "lost", Details: map[string]any{"i": i}})
		if el := time.Since(start); el > 100*time.Millisecond {
			t.Errorf("Raise %d took %v while the webhook hangs", i, el)
		}
	}
	// At most one in flight plus two queued; the rest were dropped and audited.
	if d := a.Dropped(); d < 17 {
		t.Errorf("Dropped() = %d, want >= 17", d)
	}
	// The first alert times out twice and is audited as failed.
	waitFor(t, "timed-out delivery audited", func() bool { return a.Failed() >= 1 })
	var timedOut bool
	for _, ev := range failedDeliveries(au) {
		if ev.Details["attempts"] == 2 {
			timedOut = true
		}
	}
	if !timedOut {
		t.Errorf("no audited failure after MaxAttempts: %+v", failedDeliveries(au))
	}
	if got := len(a.Recent(0)); got != 20 {
		t.Errorf("ring holds %d alerts, want 20", got)
	}
	start := time.Now()
	stop()
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Run took %v to stop with a hanging webhook", el)
	}
}

func TestAlertsRunStopsDuringHangingDelivery(t *testing.T) {
	entered := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		entered <- struct{}{}
		<-r.Context().Done()
	}))
	defer srv.Close()
	au, _ := NewAudit(AuditOptions{})
	a := NewAlerts(AlertOptions{WebhookURL: srv.URL, Timeout: time.Minute, Audit: au})
	stop := runAlerts(a)
	a.Raise(Alert{Type: AlertNodeEvicted, Severity: SeverityWarning})
	<-entered
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not abandon the delivery when done closed")
	}
	if f := failedDeliveries(au); len(f) != 0 {
		t.Errorf("shutdown audited as a delivery failure: %+v", f)
	}
}

func TestAlertsWithoutWebhook(t *testing.T) {
	a := NewAlerts(AlertOptions{RingSize: 3, Instance: "i1"})
	defer runAlerts(a)()
	for i := range 7 {
		a.Raise(Alert{Type: AlertNodeEvicted, Severity: SeverityWarning, Details: map[string]any{"i": i}})
	}
	got := a.Recent(0)
	if len(got) != 3 {
		t.Fatalf("ring holds %d, want 3", len(got))
	}
	for k, al := range got {
		if al.Details["i"] != 6-k || al.Instance != "i1" || al.Time.IsZero() {
			t.Errorf("alert %d = %+v", k, al)
		}
	}
	if got := a.Recent(1); len(got) != 1 || got[0].Details["i"] != 6 {
		t.Errorf("Recent(1) = %+v", got)
	}
}

func TestAlertsFailureAuditHidesWebhookURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/hooks/s3cr3t-token"
	ln.Close()
	au, _ := NewAudit(AuditOptions{})
	a := NewAlerts(AlertOptions{WebhookURL: url, MaxAttempts: 1, Audit: au})
	defer runAlerts(a)()
	a.Raise(Alert{Type: AlertNodeEvicted, Severity: SeverityWarning})
	waitFor(t, "audited failure", func() bool { return len(failedDeliveries(au)) == 1 })
	data, _ := json.Marshal(failedDeliveries(au)[0])
	if strings.Contains(string(data), "s3cr3t") {
		t.Errorf("audit event leaks the webhook URL: %s", data)
	}
}
