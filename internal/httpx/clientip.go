package httpx

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP returns the address of the client that made r.
//
// X-Forwarded-For is believed only as far as trusted proxies vouch for it:
// when the TCP peer is not in trusted, the peer is the client and the header
// is ignored (anyone can send it). When the peer is trusted, the header is
// walked right to left — each proxy appends the address it saw — skipping
// trusted proxies; the first address that is not a trusted proxy is the
// client. Entries to its left were written by that client and are never
// read. If every entry is a trusted proxy the leftmost one is returned; if
// the walk meets an entry that is not an address, the last trusted hop
// before it is returned (a well-behaved proxy writes addresses only).
//
// Several X-Forwarded-For header lines count as one comma-separated list, in
// order. Entries may carry a port ("203.0.113.7:4711", "[2001:db8::1]:443").
// IPv4-mapped IPv6 addresses are returned as IPv4. The result is "" only
// when RemoteAddr is not an address (e.g. a Unix socket).
func ClientIP(r *http.Request, trusted []netip.Prefix) string {
	peer, ok := parseHop(r.RemoteAddr)
	if !ok {
		return ""
	}
	if !contains(trusted, peer) {
		return peer.String()
	}
	client := peer
	values := r.Header.Values("X-Forwarded-For")
	for i := len(values) - 1; i >= 0; i-- {
		rest := values[i]
		for rest != "" {
			var entry string
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				entry, rest = rest[j+1:], rest[:j]
			} else {
				entry, rest = rest, ""
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			a, ok := parseHop(entry)
			if !ok {
				return client.String()
			}
			client = a
			if !contains(trusted, a) {
				return a.String()
			}
		}
	}
	return client.String()
}

// parseHop parses "ip", "ip:port" or "[ipv6]:port". Zones are dropped.
func parseHop(s string) (netip.Addr, bool) {
	// RemoteAddr always has a port: try that first when s looks like it
	// (a failed parse costs an allocated error).
	if strings.HasPrefix(s, "[") || strings.Count(s, ":") == 1 {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return normal(ap.Addr()), true
		}
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return normal(a), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normal(ap.Addr()), true
	}
	// "[::1]" without a port, or a RemoteAddr net/http did not make.
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return normal(a), true
		}
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return normal(a), true
		}
	}
	return netip.Addr{}, false
}

func normal(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

func contains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
