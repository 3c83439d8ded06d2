package gateway

import (
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Active health checks probe each node's healthCheckPath (or
// HealthOptions.Path) every Interval. FailThreshold failures in a row mark
// the node down (selection skips it), PassThreshold passes in a row mark it
// up again; hysteresis keeps a flapping node from flapping the table. With
// Evict, a node marked down is deregistered instead, the old Maxine
// behaviour. In a cluster only the leader probes (HealthOptions.Leader).
//
// Passive outlier ejection needs no probes: OutlierConsecutive5xx failed
// attempts in a row (5xx responses, connect errors, timeouts) eject the node
// for OutlierEjectionTime, but never more than half of a service's nodes,
// so that a service-wide failure is answered by the nodes rather than by
// an empty table.

// healthLoop runs probe rounds until done is closed; Run owns it.
func (p *Proxy) healthLoop(done <-chan struct{}) {
	t := time.NewTicker(p.o.Health.Interval)
	defer t.Stop()
	for {
		p.probeRound(done)
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

// probeRound probes every node with a health path once, at most
// Health.Concurrency at a time, and waits for all probes (each bounded by
// Health.Timeout).
func (p *Proxy) probeRound(done <-chan struct{}) {
	if l := p.o.Health.Leader; l != nil && !l() {
		return
	}
	var targets []*upstream
	for u := range p.upstreams {
		if p.healthPath(u) != "" {
			targets = append(targets, u)
		}
	}
	sem := make(chan struct{}, p.o.Health.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, u := range targets {
		select {
		case <-done:
			return
		case sem <- struct{}{}:
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			p.probe(u)
		}()
	}
}

func (p *Proxy) healthPath(u *upstream) string {
	u.hmu.Lock()
	defer u.hmu.Unlock()
	if u.healthPath != "" {
		return u.healthPath
	}
	return p.o.Health.Path
}

// probe sends one GET to the node's health path through its own pool; any
// 2xx or 3xx passes (RFC 9110 §15.3, §15.4: the node answered and did not
// report an error).
func (p *Proxy) probe(u *upstream) {
	if u.retired.Load() {
		return
	}
	path := p.healthPath(u)
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	uri := append(append([]byte(nil), u.uriPrefix...), path...)
	req.SetRequestURIBytes(uri)
	req.Header.SetUserAgent("maxine-health-check")
	err := u.connection().client.DoTimeout(req, resp, p.o.Health.Timeout)
	_ = resp.CloseBodyStream()
	errText := ""
	switch {
	case err != nil:
		errText = err.Error()
	case resp.StatusCode() < 200 || resp.StatusCode() >= 400:
		errText = "status " + strconv.Itoa(resp.StatusCode())
	}
	p.recordProbe(u, errText)
}

// recordProbe applies one probe result; errText is empty for a pass.
func (p *Proxy) recordProbe(u *upstream, errText string) {
	h := p.o.Health
	p.metrics.healthCheck(errText != "")
	u.hmu.Lock()
	u.lastCheck = time.Now()
	u.lastError = errText
	change, healthy := false, false
	if errText == "" {
		u.checkFails = 0
		u.checkPasses++
		if u.down.Load() && u.checkPasses >= h.PassThreshold {
			u.down.Store(false)
			change, healthy = true, true
		}
	} else {
		u.checkPasses = 0
		u.checkFails++
		if !u.down.Load() && u.checkFails >= h.FailThreshold {
			u.down.Store(true)
			change = true
		}
	}
	u.hmu.Unlock()
	if !change {
		return
	}
	p.notify(notice{kind: noticeHealth, service: u.service, node: u.name, healthy: healthy, reason: errText})
	if !healthy && h.Evict && !u.retired.Load() {
		// Only the registration that was probed: the node may have
		// registered again at a new address while the probe was in
		// flight, and that registration is not the one found dead.
		if p.evict(u.service, u.name, u.address) {
			p.metrics.evicted()
			p.notify(notice{kind: noticeEvicted, service: u.service, node: u.name, reason: "health check failed: " + errText})
		}
	}
}

// observe is passive outlier detection, run after every attempt: failed
// counts toward ejection, ok resets the count, anything else (a refused or
// client-caused attempt) says nothing about the node.
func (p *Proxy) observe(t *serviceTable, u *upstream, failed, ok bool) {
	n := p.o.OutlierConsecutive5xx
	if n == 0 {
		return
	}
	if !failed {
		if ok && u.consecFail.Load() != 0 {
			u.consecFail.Store(0)
		}
		return
	}
	if u.consecFail.Add(1) < int64(n) {
		return
	}
	u.consecFail.Store(0)
	if t == nil {
		return
	}
	// Count and eject as one step per service: counted apart, two nodes
	// failing at once could each see the other still usable and both be
	// ejected, emptying a two-node service. Only the attempt that crosses
	// the failure threshold takes this lock; selection never does.
	svc := t.svc
	svc.ejectMu.Lock()
	defer svc.ejectMu.Unlock()
	if p.afterEjectCount != nil {
		p.afterEjectCount()
	}
	if 2*(t.usableNodes()-1) < len(t.snap.Parents) {
		return // ejecting it would leave fewer than half of the nodes
	}
	u.ejectedUntil.Store(time.Now().Add(p.o.OutlierEjectionTime).UnixNano())
	p.notify(notice{kind: noticeEjected, service: u.service, node: u.name})
}

// evict deregisters an unhealthy node (HealthOptions.Evict) through
// HealthOptions.Evictor when set (a shared store in a cluster), else from
// the local registry; only while it is still registered at address.
func (p *Proxy) evict(service, node, address string) bool {
	if e := p.o.Health.Evictor; e != nil {
		return e(service, node, address)
	}
	return p.reg.DeregisterAddress(service, node, address)
}
