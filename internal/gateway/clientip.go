package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP decides the client address of r. The TCP peer is the client
// unless it is one of the trusted proxies; then X-Forwarded-For is read from
// the right (the hop nearest to us) and the first address that is not a
// trusted proxy is the client. Addresses a client wrote into the header
// itself sit to the left of that and are never believed. With no trusted
// proxies (the default) the header is ignored entirely.
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	addr := parseHost(r.RemoteAddr)
	if !inAny(trusted, addr) {
		return addr
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a := parseHost(strings.TrimSpace(parts[j]))
			if !a.IsValid() {
				// Garbage from a trusted proxy: stop at the last hop we trust.
				return addr
			}
			addr = a
			if !inAny(trusted, a) {
				return a
			}
		}
	}
	return addr
}

// parseHost reads "ip", "ip:port" or "[ipv6]:port".
func parseHost(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap().WithZone("")
		}
	}
	return netip.Addr{}
}

func inAny(ps []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// lockoutKey is the unit the invalid-key lockout counts: one IPv4 address,
// or one IPv6 /64 (a single host usually holds a whole /64 and could
// otherwise step through it).
func lockoutKey(a netip.Addr) string {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return "lockout:" + p.String()
	}
	return "lockout:" + a.String()
}
