package httpx

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

var proxies = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("fd00::/8"),
}

func TestClientIP(t *testing.T) {
	tests := []struct {
		name    string
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{name: "no proxies configured: peer", remote: "203.0.113.7:5555", xff: []string{"1.2.3.4"}, want: "203.0.113.7"},
		{name: "untrusted peer spoofing XFF is ignored", remote: "198.51.100.9:1234", xff: []string{"10.0.0.1, 1.2.3.4"}, trusted: proxies, want: "198.51.100.9"},
		{name: "trusted proxy: rightmost entry", remote: "10.0.0.2:443", xff: []string{"203.0.113.7"}, trusted: proxies, want: "203.0.113.7"},
		{name: "client-supplied prefix is skipped", remote: "10.0.0.2:443", xff: []string{"6.6.6.6, 203.0.113.7"}, trusted: proxies, want: "203.0.113.7"},
		{name: "chain of trusted proxies", remote: "10.0.0.2:443", xff: []string{"6.6.6.6, 203.0.113.7, 10.0.0.9, 10.1.1.1"}, trusted: proxies, want: "203.0.113.7"},
		{name: "several header lines in order", remote: "10.0.0.2:443", xff: []string{"6.6.6.6", "203.0.113.7", "10.0.0.9"}, trusted: proxies, want: "203.0.113.7"},
		{name: "all trusted: leftmost", remote: "10.0.0.2:443", xff: []string{"10.0.0.3, 10.0.0.4"}, trusted: proxies, want: "10.0.0.3"},
		{name: "no header from trusted proxy: proxy", remote: "10.0.0.2:443", trusted: proxies, want: "10.0.0.2"},
		{name: "garbage right of the client: last trusted hop", remote: "10.0.0.2:443", xff: []string{"203.0.113.7, not-an-ip"}, trusted: proxies, want: "10.0.0.2"},
		{name: "garbage left of the client is never read", remote: "10.0.0.2:443", xff: []string{"<script>, 203.0.113.7"}, trusted: proxies, want: "203.0.113.7"},
		{name: "entry with port", remote: "10.0.0.2:443", xff: []string{"203.0.113.7:4711"}, trusted: proxies, want: "203.0.113.7"},
		{name: "ipv6 entry with port", remote: "10.0.0.2:443", xff: []string{"[2001:db8::1]:443"}, trusted: proxies, want: "2001:db8::1"},
		{name: "ipv6 proxy", remote: "[fd00::1]:443", xff: []string{"2001:db8::2"}, trusted: proxies, want: "2001:db8::2"},
		{name: "mapped ipv4 unmapped", remote: "[::ffff:10.0.0.2]:443", xff: []string{"::ffff:203.0.113.7"}, trusted: proxies, want: "203.0.113.7"},
		{name: "empty entries skipped", remote: "10.0.0.2:443", xff: []string{"203.0.113.7, , "}, trusted: proxies, want: "203.0.113.7"},
		{name: "unix socket peer", remote: "@", trusted: proxies, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := ClientIP(r, tt.trusted); got != tt.want {
				t.Errorf("ClientIP = %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzClientIP checks the invariants whatever the header holds: the answer
// is an address (or "" for a non-IP peer); an untrusted peer is always the
// answer; and the answer is the peer or appears in the header.
func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.2:443", "203.0.113.7, 10.0.0.9")
	f.Add("198.51.100.9:1", "1.2.3.4")
	f.Add("[fd00::1]:443", "[2001:db8::1]:443,,")
	f.Add("10.0.0.2:443", ",,,\x00, 300.1.1.1")
	f.Add("10.0.0.2:1", "[::ffff:1.2.3.4%eth0]")
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", xff)
		got := ClientIP(r, proxies)

		peer, ok := parseHop(remote)
		if !ok {
			if got != "" {
				t.Fatalf("non-address peer %q gave %q", remote, got)
			}
			return
		}
		a, err := netip.ParseAddr(got)
		if err != nil {
			t.Fatalf("result %q is not an address", got)
		}
		if a.Is4In6() || a.Zone() != "" {
			t.Fatalf("result %q not normalised", got)
		}
		if !contains(proxies, peer) && got != peer.String() {
			t.Fatalf("untrusted peer %s: XFF %q believed, got %q", peer, xff, got)
		}
		if got != peer.String() && !strings.Contains(xff, strings.Split(got, "%")[0]) && !containsHop(xff, a) {
			t.Fatalf("result %q neither the peer nor in the header %q", got, xff)
		}
	})
}

func containsHop(xff string, a netip.Addr) bool {
	for e := range strings.SplitSeq(xff, ",") {
		if h, ok := parseHop(strings.TrimSpace(e)); ok && h == a {
			return true
		}
	}
	return false
}
