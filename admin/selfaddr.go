package admin

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/maxine-io/maxine/registry"
)

// ownListeners refuses registrations whose node is one of Maxine's own
// listeners (Options.OwnListeners). Registering the admin port as a node
// would make the admin API reachable through the gateway, bypassing
// whatever fronts the admin port; the gateway port would loop. This holds
// whatever the allow-list says.
//
// A listener on a specific address matches that address; one on 0.0.0.0,
// :: or "" (every address) matches any address of this host: loopback,
// the unspecified address (dialling 0.0.0.0 reaches the local host), and
// every interface address. Host names are resolved, but only when the
// port is a listener's, so ordinary registrations cost nothing.
//
// It is a check at registration time: a name that resolves elsewhere now
// and here later (DNS rebinding) is not caught; --upstream-allow, checked
// again at connect, is the defence against that. The other instances of
// a cluster are checked by memberListener, from the membership.
type ownListeners []ownListener

type ownListener struct {
	ip   netip.Addr // invalid: every address
	port uint16
}

func parseOwnListeners(addrs []string) (ownListeners, error) {
	var ls ownListeners
	for _, a := range addrs {
		if a == "" {
			continue
		}
		host, portStr, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("admin: own listener %q: %w", a, err)
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("admin: own listener %q: bad port", a)
		}
		if host == "" {
			ls = append(ls, ownListener{port: uint16(port)})
			continue
		}
		ips, err := resolveHost(host)
		if err != nil {
			return nil, fmt.Errorf("admin: own listener %q: %w", a, err)
		}
		for _, ip := range ips {
			if ip.IsUnspecified() {
				ip = netip.Addr{}
			}
			ls = append(ls, ownListener{ip: ip, port: uint16(port)})
		}
	}
	return ls, nil
}

// check returns an error naming the listener when reg's node is one of
// them.
func (ls ownListeners) check(reg registry.Registration) error {
	if len(ls) == 0 {
		return nil
	}
	u, port, ok := nodeHostPort(reg)
	if !ok {
		return nil // registry validated the host; nothing to compare
	}
	var candidates ownListeners
	for _, l := range ls {
		if int(l.port) == port {
			candidates = append(candidates, l)
		}
	}
	if len(candidates) == 0 {
		return nil
	}
	ips, err := resolveHost(u.Hostname())
	if err != nil {
		return nil // unresolvable: it cannot reach us now either
	}
	var local []netip.Addr
	for _, ip := range ips {
		for _, l := range candidates {
			switch {
			case ip == l.ip, ip.IsUnspecified():
			case l.ip.IsValid():
				continue
			case ip.IsLoopback():
			default:
				if local == nil {
					local = localAddrs()
				}
				if !contains(local, ip) {
					continue
				}
			}
			return fmt.Errorf("%s:%d is Maxine's own listener (%s)", ip, port, l)
		}
	}
	return nil
}

// nodeHostPort is the node's address as a URL and its port (the scheme's
// default when none is given).
func nodeHostPort(reg registry.Registration) (*url.URL, int, bool) {
	u, err := url.Parse(reg.Address())
	if err != nil {
		return nil, 0, false
	}
	port := 80
	if strings.EqualFold(u.Scheme, "https") {
		port = 443
	}
	if p := u.Port(); p != "" {
		port, _ = strconv.Atoi(p)
	}
	return u, port, true
}

// memberListener returns an error naming the cluster member whose admin or
// gateway listener reg's node is. Members are the instances of the shared
// store's membership (Options.Cluster), with the addresses they advertise
// (--advertise-admin-addr, --advertise-gateway-addr): a node there would
// send the gateway's traffic to another gateway of the same registry (a
// routing loop, which the gateway also stops with 508 at run time) or
// expose that instance's admin API through the gateway. Only advertised IP
// addresses are compared; a member advertising a host name is not resolved
// on every registration and is left to the run-time check.
func memberListener(reg registry.Registration, members []ClusterMember) error {
	if len(members) == 0 {
		return nil
	}
	u, port, ok := nodeHostPort(reg)
	if !ok {
		return nil
	}
	type candidate struct {
		ip       netip.Addr
		listener string
		member   string
	}
	var candidates []candidate
	for _, m := range members {
		for _, l := range [...]struct{ name, addr string }{{"admin", m.AdminAddr}, {"gateway", m.GatewayAddr}} {
			host, p, err := net.SplitHostPort(l.addr)
			if err != nil || p != strconv.Itoa(port) {
				continue
			}
			ip, err := netip.ParseAddr(host)
			if err != nil || ip.IsUnspecified() {
				continue
			}
			candidates = append(candidates, candidate{ip.Unmap(), l.name, m.InstanceID})
		}
	}
	if len(candidates) == 0 {
		return nil
	}
	ips, err := resolveHost(u.Hostname())
	if err != nil {
		return nil
	}
	for _, ip := range ips {
		for _, c := range candidates {
			if ip == c.ip {
				return fmt.Errorf("%s:%d is the %s listener of cluster member %s", ip, port, c.listener, c.member)
			}
		}
	}
	return nil
}

func (l ownListener) String() string {
	if !l.ip.IsValid() {
		return ":" + strconv.Itoa(int(l.port))
	}
	return netip.AddrPortFrom(l.ip, l.port).String()
}

// resolveHost returns host's addresses: an IP literal as is, localhost
// names as loopback (RFC 6761 §6.3), others from DNS within 2 s.
func resolveHost(host string) ([]netip.Addr, error) {
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	if l := strings.ToLower(host); l == "localhost" || strings.HasSuffix(l, ".localhost") {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	for i := range ips {
		ips[i] = ips[i].Unmap()
	}
	return ips, err
}

// localAddrs returns the addresses of this host's interfaces.
func localAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return []netip.Addr{}
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

func contains(list []netip.Addr, ip netip.Addr) bool {
	for _, x := range list {
		if x == ip {
			return true
		}
	}
	return false
}
