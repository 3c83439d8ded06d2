package gateway

// Shared health: in a cluster only the leader probes (HealthOptions.Leader)
// and its verdicts reach the other instances through the shared store;
// these methods apply them. They take no lock the request path takes: a
// verdict is one atomic store on the node's upstream, found through the
// published routes and tables.

// SetHealth applies a health verdict made elsewhere to the node of service
// registered at address (a verdict on an address the node has since left
// is ignored). It reports whether the node was found.
func (p *Proxy) SetHealth(service, node, address string, healthy bool) bool {
	svc := p.routes.Load().exact[service]
	if svc == nil {
		return false
	}
	t := svc.table.Load()
	if t == nil {
		return false
	}
	u := t.parent(node)
	if u == nil || u.address != address {
		return false
	}
	u.down.Store(!healthy)
	return true
}

// SyncHealth makes every node's health the shared verdict: down exactly
// when unhealthy reports it (by service, node and address). Followers call
// it periodically so that a missed "healthy again" message cannot keep a
// node out of rotation. It returns how many nodes changed.
func (p *Proxy) SyncHealth(unhealthy func(service, node, address string) bool) int {
	n := 0
	for u := range p.upstreams {
		down := unhealthy(u.service, u.name, u.address)
		if u.down.Load() != down {
			u.down.Store(down)
			n++
		}
	}
	return n
}
