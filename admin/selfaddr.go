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
// again at connect, is the defence against that. Other instances of a
// cluster are not covered either: their listeners are known to the
// membership, not here.
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
	u, err := url.Parse(reg.Address())
	if err != nil {
		return nil // registry validated the host; nothing to compare
	}
	port := 80
	if strings.EqualFold(u.Scheme, "https") {
		port = 443
	}
	if p := u.Port(); p != "" {
		port, _ = strconv.Atoi(p)
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
