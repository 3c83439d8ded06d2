package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// AllowList restricts the addresses nodes may have to a set of CIDRs
// (SPEC 4). Without it, anyone who can register a node can make the gateway
// send requests anywhere it can reach — its own admin port, a cloud
// metadata endpoint — which turns the gateway into an open proxy.
//
// Admin calls Check at registration. The Proxy also checks every address
// it connects to when Options.AllowList is set, because a name that
// resolved inside the list at registration may resolve elsewhere later
// (DNS rebinding).
//
// A nil or empty AllowList allows everything. An AllowList is immutable and
// safe for concurrent use.
type AllowList struct {
	prefixes []netip.Prefix
	// Resolver and Timeout resolve host names; zero values are
	// net.DefaultResolver and 2s.
	Resolver *net.Resolver
	Timeout  time.Duration
}

// NewAllowList parses CIDRs ("10.0.0.0/8", "fd00::/8") and bare addresses
// (taken as a single host). Empty entries are ignored.
func NewAllowList(cidrs []string) (*AllowList, error) {
	a := &AllowList{}
	for _, c := range cidrs {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		if !strings.Contains(c, "/") {
			ip, err := netip.ParseAddr(c)
			if err != nil {
				return nil, fmt.Errorf("gateway: allow-list entry %q is neither a CIDR nor an IP address", c)
			}
			ip = ip.Unmap()
			a.prefixes = append(a.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
			continue
		}
		pf, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("gateway: allow-list entry %q is not a valid CIDR: %w", c, err)
		}
		a.prefixes = append(a.prefixes, pf.Masked())
	}
	return a, nil
}

// Len returns the number of CIDRs.
func (a *AllowList) Len() int {
	if a == nil {
		return 0
	}
	return len(a.prefixes)
}

// Allowed reports whether ip is inside the list (always true for an empty
// list).
func (a *AllowList) Allowed(ip netip.Addr) bool {
	if a.Len() == 0 {
		return true
	}
	ip = ip.Unmap()
	for _, pf := range a.prefixes {
		if pf.Contains(ip) {
			return true
		}
	}
	return false
}

// Check reports whether a node's hostName is allowed. hostName may carry a
// scheme (http:// or https://), a port and a path, as registrations do. An
// IP literal is checked as is; a name is resolved ("localhost" without DNS,
// to the loopback addresses) and every address it resolves to must be
// allowed, so that a name cannot smuggle in one outside address among
// inside ones.
func (a *AllowList) Check(hostName string) error {
	if a.Len() == 0 {
		return nil
	}
	host := hostOf(hostName)
	if host == "" {
		return fmt.Errorf("gateway: no host in %q", hostName)
	}
	ips, err := a.resolve(host)
	if err != nil {
		return err
	}
	for _, ip := range ips {
		if !a.Allowed(ip) {
			return fmt.Errorf("gateway: host %q (%s) is outside the upstream allow-list", host, ip)
		}
	}
	return nil
}

// resolve returns the addresses of host (an IP literal or a name).
func (a *AllowList) resolve(host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		// RFC 6761 §6.3: localhost names resolve to loopback, locally.
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}, nil
	}
	r, timeout := a.Resolver, a.Timeout
	if r == nil {
		r = net.DefaultResolver
	}
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("gateway: cannot resolve %q: %w", host, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("gateway: %q resolves to no address", host)
	}
	for i := range ips {
		ips[i] = ips[i].Unmap()
	}
	return ips, nil
}

// hostOf extracts the host from "[scheme://]host[:port][/path]".
func hostOf(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if strings.HasPrefix(s, "[") {
		if i := strings.IndexByte(s, ']'); i >= 0 {
			return s[1:i]
		}
		return ""
	}
	if strings.Count(s, ":") == 1 {
		s = s[:strings.IndexByte(s, ':')]
	}
	return s
}

// dialAllowed resolves addr's host and returns the first allowed
// "ip:port" to dial, so the address connected to is the one checked.
func (a *AllowList) dialAllowed(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	ips, err := a.resolve(host)
	if err != nil {
		return "", err
	}
	for _, ip := range ips {
		if a.Allowed(ip) {
			return net.JoinHostPort(ip.String(), port), nil
		}
	}
	return "", fmt.Errorf("gateway: %s is outside the upstream allow-list", host)
}

// AllowList returns the allow-list the proxy enforces on its connections
// (Options.AllowList; nil when none).
func (p *Proxy) AllowList() *AllowList { return p.o.AllowList }
