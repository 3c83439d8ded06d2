package gateway

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// UpstreamsReport is the gateway's view of its nodes, for
// /api/actuator/upstreams. Started, UnhealthyNodes and FailureCounts keep
// the old Maxine shape; Nodes adds per-node detail. Node keys are
// "<service>/<node>".
type UpstreamsReport struct {
	Started        bool           `json:"started"`
	UnhealthyNodes []string       `json:"unhealthyNodes"`
	FailureCounts  map[string]int `json:"failureCounts"`
	Nodes          []NodeReport   `json:"nodes"`
}

// NodeReport is one (parent) node's state.
type NodeReport struct {
	Service             string `json:"service"`
	Node                string `json:"node"`
	Address             string `json:"address"`
	Healthy             bool   `json:"healthy"`
	Breaker             string `json:"breaker"`
	Ejected             bool   `json:"ejected"`
	InFlight            int64  `json:"inFlight"`
	ConsecutiveFailures int    `json:"consecutiveFailures"`
	HealthCheckFailures int    `json:"healthCheckFailures"`
	LastCheck           int64  `json:"lastCheck,omitempty"` // ms since the epoch; 0 = never probed
	LastError           string `json:"lastError,omitempty"`
}

// Upstreams reports every node's state. Started is true once Run is
// following the registry.
func (p *Proxy) Upstreams() UpstreamsReport {
	r := UpstreamsReport{
		Started:        p.started.Load() && p.running.Load(),
		UnhealthyNodes: []string{},
		FailureCounts:  map[string]int{},
		Nodes:          []NodeReport{},
	}
	now := time.Now().UnixNano()
	for u := range p.upstreams {
		key := u.service + "/" + u.name
		breaker, consec := u.breakerState()
		u.hmu.Lock()
		nr := NodeReport{
			Service:             u.service,
			Node:                u.name,
			Address:             u.address,
			Healthy:             !u.down.Load(),
			Breaker:             breaker,
			Ejected:             u.ejectedUntil.Load() > now,
			InFlight:            u.inFlight.Load(),
			ConsecutiveFailures: consec,
			HealthCheckFailures: u.checkFails,
			LastError:           u.lastError,
		}
		if !u.lastCheck.IsZero() {
			nr.LastCheck = u.lastCheck.UnixMilli()
		}
		u.hmu.Unlock()
		if !nr.Healthy {
			r.UnhealthyNodes = append(r.UnhealthyNodes, key)
		}
		if nr.HealthCheckFailures > 0 {
			r.FailureCounts[key] = nr.HealthCheckFailures
		}
		r.Nodes = append(r.Nodes, nr)
	}
	sort.Strings(r.UnhealthyNodes)
	sort.Slice(r.Nodes, func(i, j int) bool {
		if r.Nodes[i].Service != r.Nodes[j].Service {
			return r.Nodes[i].Service < r.Nodes[j].Service
		}
		return r.Nodes[i].Node < r.Nodes[j].Node
	})
	return r
}

// NodeStatus reports the breaker state ("closed", "half-open", "open" or
// "disabled") and health of the node behind a virtual node ("<node>-<i>")
// of service; ok is false when the gateway does not know it. healthy is
// false when health checks marked the node down or it is ejected.
func (p *Proxy) NodeStatus(service, virtualNode string) (breaker string, healthy bool, ok bool) {
	svc := p.routes.Load().exact[service]
	if svc == nil {
		return "", false, false
	}
	t := svc.table.Load()
	if t == nil {
		return "", false, false
	}
	u := t.parent(parentName(virtualNode))
	if u == nil {
		u = t.parent(virtualNode)
	}
	if u == nil {
		return "", false, false
	}
	healthy = !u.down.Load() && u.ejectedUntil.Load() <= time.Now().UnixNano()
	state, _ := u.breakerState()
	return state, healthy, true
}

// parentName strips the "-<index>" suffix of a virtual node name.
func parentName(v string) string {
	i := strings.LastIndexByte(v, '-')
	if i < 0 {
		return v
	}
	if _, err := strconv.Atoi(v[i+1:]); err != nil {
		return v
	}
	return v[:i]
}
