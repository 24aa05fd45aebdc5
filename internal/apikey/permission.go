// Package apikey is the domain of API keys for bots: what a key is, which
// permissions it can carry, how a request is signed the way Kraken signs it,
// how the signed request is parsed, which permission each method needs, and
// the rate-limit model; and the Service (service.go) that creates, changes
// and deletes keys in the store and answers the gateway's key lookups. It
// has no HTTP handler: internal/nonce keeps the hot counters, and
// internal/gateway puts it all together in front of the exchange backend.
package apikey

import (
	"fmt"
	"math/bits"
	"strings"
)

// Permission is one right an API key may carry. The ten permissions are
// Kraken's, so a bot developer recognises them.
type Permission uint8

// The permissions, in the order Kraken's key form lists them.
const (
	QueryFunds Permission = iota
	DepositFunds
	WithdrawFunds
	QueryOpenOrders
	QueryClosedOrders
	QueryLedger
	ExportData
	CreateModifyOrders
	CancelCloseOrders
	AccessWebSockets
	numPermissions
)

var permissionInfo = [numPermissions]struct{ slug, name string }{
	QueryFunds:         {"query-funds", "Query Funds"},
	DepositFunds:       {"deposit-funds", "Deposit Funds"},
	WithdrawFunds:      {"withdraw-funds", "Withdraw Funds"},
	QueryOpenOrders:    {"query-open-orders", "Query Open Orders & Trades"},
	QueryClosedOrders:  {"query-closed-orders", "Query Closed Orders & Trades"},
	QueryLedger:        {"query-ledger", "Query Ledger Entries"},
	ExportData:         {"export-data", "Export Data"},
	CreateModifyOrders: {"create-modify-orders", "Create & Modify Orders"},
	CancelCloseOrders:  {"cancel-close-orders", "Cancel/Close Orders"},
	AccessWebSockets:   {"access-websockets", "Access WebSockets API"},
}

// AllPermissions lists every permission in display order (for forms).
func AllPermissions() []Permission {
	out := make([]Permission, numPermissions)
	for i := range out {
		out[i] = Permission(i)
	}
	return out
}

// Slug is the permission as written in the CLI, config and JSON API,
// e.g. "query-funds".
func (p Permission) Slug() string {
	if p >= numPermissions {
		return fmt.Sprintf("permission(%d)", uint8(p))
	}
	return permissionInfo[p].slug
}

// Name is the permission as Kraken displays it, e.g. "Query Funds".
func (p Permission) Name() string {
	if p >= numPermissions {
		return p.Slug()
	}
	return permissionInfo[p].name
}

// String returns the slug.
func (p Permission) String() string { return p.Slug() }

// Dangerous reports whether granting p lets a holder of the key move money
// out of the account; forms show a warning next to it.
func (p Permission) Dangerous() bool { return p == WithdrawFunds }

// ParsePermission accepts a slug ("query-funds") or Kraken's display name
// ("Query Funds"), case-insensitively and ignoring surrounding spaces.
func ParsePermission(s string) (Permission, error) {
	t := strings.TrimSpace(s)
	for i, info := range permissionInfo {
		if strings.EqualFold(t, info.slug) || strings.EqualFold(t, info.name) {
			return Permission(i), nil
		}
	}
	return 0, fmt.Errorf("unknown permission %q (known: %s)", s, allSlugs())
}

func allSlugs() string {
	s := make([]string, numPermissions)
	for i := range s {
		s[i] = permissionInfo[i].slug
	}
	return strings.Join(s, ", ")
}

// Permissions is a set of permissions. The zero value is the empty set.
type Permissions uint16

// PermissionsOf returns the set holding ps.
func PermissionsOf(ps ...Permission) Permissions {
	var s Permissions
	for _, p := range ps {
		s = s.With(p)
	}
	return s
}

// AllPermissionSet is the set of every permission.
const AllPermissionSet Permissions = 1<<numPermissions - 1

// Has reports whether p is in the set.
func (s Permissions) Has(p Permission) bool { return p < numPermissions && s&(1<<p) != 0 }

// With returns the set with p added.
func (s Permissions) With(p Permission) Permissions {
	if p >= numPermissions {
		return s
	}
	return s | 1<<p
}

// Without returns the set with p removed.
func (s Permissions) Without(p Permission) Permissions { return s &^ (1 << p) }

// Intersects reports whether s and o share a permission.
func (s Permissions) Intersects(o Permissions) bool { return s&o != 0 }

// Len is the number of permissions in the set.
func (s Permissions) Len() int { return bits.OnesCount16(uint16(s & AllPermissionSet)) }

// List returns the permissions in display order.
func (s Permissions) List() []Permission {
	out := make([]Permission, 0, s.Len())
	for p := Permission(0); p < numPermissions; p++ {
		if s.Has(p) {
			out = append(out, p)
		}
	}
	return out
}

// Slugs returns the slugs in display order.
func (s Permissions) Slugs() []string {
	out := make([]string, 0, s.Len())
	for _, p := range s.List() {
		out = append(out, p.Slug())
	}
	return out
}

// String is the comma-separated slugs ("query-funds,create-modify-orders"),
// the form the store and the X-Moat-Permissions header use.
func (s Permissions) String() string { return strings.Join(s.Slugs(), ",") }

// ParsePermissions parses a comma-separated list of slugs or display names.
// Empty items are ignored, so "" is the empty set; an unknown name is an
// error.
func ParsePermissions(s string) (Permissions, error) {
	return ParsePermissionList(strings.Split(s, ","))
}

// ParsePermissionList parses each item with ParsePermission (form
// checkboxes, JSON arrays, repeated CLI flags).
func ParsePermissionList(items []string) (Permissions, error) {
	var set Permissions
	for _, it := range items {
		if strings.TrimSpace(it) == "" {
			continue
		}
		p, err := ParsePermission(it)
		if err != nil {
			return 0, err
		}
		set = set.With(p)
	}
	return set, nil
}

// MarshalText writes the comma-separated slugs (TOML, JSON).
func (s Permissions) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads what ParsePermissions reads.
func (s *Permissions) UnmarshalText(b []byte) error {
	v, err := ParsePermissions(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
