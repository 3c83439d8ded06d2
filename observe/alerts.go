package observe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Alert types and severities Maxine raises.
const (
	AlertNodeEvicted    = "node_evicted"
	AlertBreakerOpened  = "breaker_opened"
	AlertStateStoreDown = "state_store_down"
	AlertLeadershipLost = "leadership_lost"

	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Alert is something an operator should look at now. It is kept in a ring
// for the actuator API and, with a webhook configured, POSTed as JSON.
// Details must not be modified after the alert has been raised.
type Alert struct {
	Time     time.Time      `json:"timestamp"`
	Type     string         `json:"type"`     // one of the Alert* constants
	Severity string         `json:"severity"` // SeverityWarning or SeverityCritical
	Message  string         `json:"message"`
	Service  string         `json:"service,omitempty"`
	Node     string         `json:"node,omitempty"`
	Instance string         `json:"instanceId,omitempty"`
	Details  map[string]any `json:"details,omitempty"`
}

// AlertOptions configures NewAlerts. Zero values take the defaults noted.
type AlertOptions struct {
	// WebhookURL receives each alert as a JSON POST. "" keeps alerts in
	// the ring only.
	WebhookURL string
	// Timeout bounds one delivery attempt. Default 3s.
	Timeout time.Duration
	// QueueSize bounds the alerts waiting for delivery. Default 256.
	QueueSize int
	// MaxAttempts is how many times one alert is tried. Default 4.
	MaxAttempts int
	// Backoff is the wait before the second attempt, doubling for each
	// further one. Default 200ms.
	Backoff time.Duration
	// RingSize is how many alerts Recent can return. Default 500.
	RingSize int
	// Audit, if set, records alerts that could not be delivered (queue
	// full or every attempt failed) as alert_delivery_failed.
	Audit *Audit
	// Instance is this Maxine instance's id, set on alerts raised without
	// one.
	Instance string
	// Now stamps alerts raised without a time. Default time.Now.
	Now func() time.Time
	// Client sends the webhook requests. nil: a client of its own, with
	// Timeout, sharing no connections with anything else.
	Client *http.Client
}

// Alerts keeps recent alerts and delivers them to a webhook. Raise never
// blocks; delivery happens in Run, one alert at a time, so a slow or dead
// webhook delays only other alerts, and when the queue is full new alerts
// are dropped from delivery (still kept in the ring, and audited).
type Alerts struct {
	o      AlertOptions
	client *http.Client

	mu   sync.Mutex // guards ring
	ring ring[Alert]

	queue     chan Alert // nil without a webhook
	raised    atomic.Uint64
	dropped   atomic.Uint64
	failed    atomic.Uint64
	delivered atomic.Uint64
}

// NewAlerts returns an Alerts configured by o.
func NewAlerts(o AlertOptions) *Alerts {
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Second
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 256
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 4
	}
	if o.Backoff <= 0 {
		o.Backoff = 200 * time.Millisecond
	}
	if o.RingSize <= 0 {
		o.RingSize = 500
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	a := &Alerts{o: o, client: o.Client, ring: newRing[Alert](o.RingSize)}
	if o.WebhookURL != "" {
		a.queue = make(chan Alert, o.QueueSize)
		if a.client == nil {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			a.client = &http.Client{Transport: tr, Timeout: o.Timeout}
		}
	}
	return a
}

// Raise records al, stamping Time and Instance when they are empty, and
// queues it for the webhook. It never blocks: when the queue is full the
// alert is not delivered, which is counted by Dropped and audited.
func (a *Alerts) Raise(al Alert) {
	if al.Time.IsZero() {
		al.Time = a.o.Now()
	}
	if al.Instance == "" {
		al.Instance = a.o.Instance
	}
	a.raised.Add(1)
	a.mu.Lock()
	a.ring.add(al)
	a.mu.Unlock()
	if a.queue == nil {
		return
	}
	select {
	case a.queue <- al:
	default:
		a.dropped.Add(1)
		a.auditFailure(al, 0, "delivery queue full")
	}
}

// Recent returns up to limit alerts, newest first; limit <= 0 returns all
// alerts in the ring.
func (a *Alerts) Recent(limit int) []Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ring.recent(limit)
}

// Raised returns how many alerts have been raised.
func (a *Alerts) Raised() uint64 { return a.raised.Load() }

// Dropped returns how many alerts were not queued for delivery because the
// queue was full.
func (a *Alerts) Dropped() uint64 { return a.dropped.Load() }

// Failed returns how many alerts were given up on after MaxAttempts.
func (a *Alerts) Failed() uint64 { return a.failed.Load() }

// Delivered returns how many alerts the webhook accepted with a 2xx.
func (a *Alerts) Delivered() uint64 { return a.delivered.Load() }

// Run delivers queued alerts to the webhook until done is closed. An alert
// is POSTed as JSON and retried with exponential backoff on a transport
// error or a non-2xx status. Closing done abandons the attempt in flight
// and whatever is still queued. Without a webhook Run just waits for done.
func (a *Alerts) Run(done <-chan struct{}) {
	if a.queue == nil {
		<-done
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // ends when done closes or Run returns
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}()
	if a.o.Client == nil {
		defer a.client.CloseIdleConnections()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case al := <-a.queue:
			a.deliver(ctx, al)
		}
	}
}

func (a *Alerts) deliver(ctx context.Context, al Alert) {
	body, err := json.Marshal(al)
	if err != nil {
		a.failed.Add(1)
		a.auditFailure(al, 0, err.Error())
		return
	}
	wait := a.o.Backoff
	for attempt := 1; ; attempt++ {
		err = a.post(ctx, body)
		if err == nil {
			a.delivered.Add(1)
			return
		}
		if ctx.Err() != nil {
			return // shutting down: abandon, this is not the webhook's fault
		}
		if attempt == a.o.MaxAttempts {
			a.failed.Add(1)
			a.auditFailure(al, attempt, err.Error())
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait *= 2
	}
}

func (a *Alerts) post(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, a.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.o.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("cannot build webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		// Leave the URL out: webhook URLs often carry a secret token and
		// this message ends up in the audit log.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("webhook request failed: %w", err)
	}
	// Read a little of the body so the connection can be reused, but never
	// let a webhook make us read without bound.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

func (a *Alerts) auditFailure(al Alert, attempts int, reason string) {
	if a.o.Audit == nil {
		return
	}
	a.o.Audit.Record(AuditEvent{
		Type:    AuditAlertDeliveryFailed,
		Actor:   "system",
		Service: al.Service,
		Node:    al.Node,
		Details: map[string]any{
			"alertType": al.Type,
			"attempts":  attempts,
			"error":     reason,
		},
	})
}
