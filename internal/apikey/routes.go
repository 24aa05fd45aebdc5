package apikey

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Target says where a verified call goes.
type Target string

const (
	// TargetUpstream: proxied to the exchange backend with identity headers.
	TargetUpstream Target = "upstream"
	// TargetFunding: never proxied. Deposits and withdrawals are answered
	// by moat's own funding handler (withdrawal protections, a later issue);
	// until one is configured they answer EAPI:Feature disabled.
	TargetFunding Target = "funding"
	// TargetDisabled: refused with EAPI:Feature disabled.
	TargetDisabled Target = "disabled"
)

// Route is what the gateway knows about one private method.
type Route struct {
	Method string
	// Need is the permission requirement in conjunctive form: the key must
	// hold at least one permission of every group. One group with one
	// permission is the usual case; Kraken's QueryOrders needs "open or
	// closed" (one group of two), AddOrderBatch needs "create and cancel"
	// (two groups). A route with no groups is never allowed.
	Need []Permissions
	// Cost is what a call adds to the key's rate counter.
	Cost   float64
	Target Target
}

// Allows reports whether a key holding p may call the route.
func (r Route) Allows(p Permissions) bool {
	if len(r.Need) == 0 {
		return false
	}
	for _, g := range r.Need {
		if !p.Intersects(g) {
			return false
		}
	}
	return true
}

// Routes maps method names (case-sensitive, as Kraken's) to routes. It is
// read-only after construction and safe for concurrent use.
type Routes struct{ m map[string]Route }

// Lookup returns the route of a method.
func (rs *Routes) Lookup(method string) (Route, bool) {
	r, ok := rs.m[method]
	return r, ok
}

// Methods returns the method names, sorted.
func (rs *Routes) Methods() []string { return slices.Sorted(maps.Keys(rs.m)) }

// DefaultRoutes is Kraken's spot REST private API with the permission each
// method's documentation requires. Costs follow Kraken's call counter:
// ledger and trade-history queries 2, everything else 1. (Kraken counts
// AddOrder and CancelOrder on a separate matching-engine limiter; moat, in
// front of an arbitrary backend, counts them as 1. Set their cost to 0 to
// leave them to the backend.)
func DefaultRoutes() *Routes {
	g := func(ps ...Permission) Permissions { return PermissionsOf(ps...) }
	rs := &Routes{m: map[string]Route{}}
	add := func(target Target, cost float64, need []Permissions, methods ...string) {
		for _, m := range methods {
			rs.m[m] = Route{Method: m, Need: need, Cost: cost, Target: target}
		}
	}
	one := func(p Permission) []Permissions { return []Permissions{g(p)} }

	// Account data.
	add(TargetUpstream, 1, one(QueryFunds), "Balance", "BalanceEx", "CreditLines", "TradeVolume")
	add(TargetUpstream, 1, one(QueryOpenOrders), "TradeBalance", "OpenOrders", "OpenPositions")
	add(TargetUpstream, 1, one(QueryClosedOrders), "ClosedOrders")
	add(TargetUpstream, 1, []Permissions{g(QueryOpenOrders, QueryClosedOrders)}, "QueryOrders", "OrderAmends")
	add(TargetUpstream, 2, one(QueryClosedOrders), "TradesHistory", "QueryTrades")
	add(TargetUpstream, 2, one(QueryLedger), "Ledgers", "QueryLedgers")
	add(TargetUpstream, 1, one(ExportData), "AddExport", "ExportStatus", "RetrieveExport", "RemoveExport")
	// Trading.
	add(TargetUpstream, 1, one(CreateModifyOrders), "AddOrder", "AmendOrder", "EditOrder")
	add(TargetUpstream, 1, []Permissions{g(CreateModifyOrders), g(CancelCloseOrders)}, "AddOrderBatch")
	add(TargetUpstream, 1, one(CancelCloseOrders), "CancelOrder", "CancelAll", "CancelAllOrdersAfter", "CancelOrderBatch")
	add(TargetUpstream, 1, one(AccessWebSockets), "GetWebSocketsToken")
	// Funding: never proxied.
	add(TargetFunding, 1, one(DepositFunds), "DepositMethods", "DepositAddresses", "DepositStatus")
	add(TargetFunding, 1, one(WithdrawFunds), "WithdrawMethods", "WithdrawAddresses", "WithdrawInfo",
		"Withdraw", "WithdrawStatus", "WithdrawCancel", "WalletTransfer")
	return rs
}

// RouteOverride changes or adds one method in configuration:
//
//	[apikey.routes.TradeBalance]
//	permissions = "query-funds"
//	[apikey.routes.AddOrder]
//	cost = 0
//
// Zero fields keep the default (a new method must name its permissions and
// goes upstream unless Target says otherwise).
type RouteOverride struct {
	// Permissions uses FormatRequirement's syntax: "a|b,c" means (a or b)
	// and c.
	Permissions string   `toml:"permissions" json:"permissions,omitempty"`
	Cost        *float64 `toml:"cost" json:"cost,omitempty"`
	Target      Target   `toml:"target" json:"target,omitempty"`
}

// WithOverrides returns a copy of rs with the overrides applied.
func (rs *Routes) WithOverrides(o map[string]RouteOverride) (*Routes, error) {
	out := &Routes{m: maps.Clone(rs.m)}
	for method, ov := range o {
		if m, ok := MethodFromPath(PathPrefix + method); !ok || m != method {
			return nil, fmt.Errorf("routes: %q is not a method name", method)
		}
		r, exists := out.m[method]
		if !exists {
			r = Route{Method: method, Cost: 1, Target: TargetUpstream}
		}
		if ov.Permissions != "" {
			need, err := ParseRequirement(ov.Permissions)
			if err != nil {
				return nil, fmt.Errorf("routes: %s: %w", method, err)
			}
			r.Need = need
		} else if !exists {
			return nil, fmt.Errorf("routes: %s: a new method must name its permissions", method)
		}
		if ov.Cost != nil {
			if *ov.Cost < 0 {
				return nil, fmt.Errorf("routes: %s: cost must not be negative", method)
			}
			r.Cost = *ov.Cost
		}
		switch ov.Target {
		case "":
		case TargetUpstream, TargetFunding, TargetDisabled:
			r.Target = ov.Target
		default:
			return nil, fmt.Errorf("routes: %s: unknown target %q (upstream, funding, disabled)", method, ov.Target)
		}
		out.m[method] = r
	}
	return out, nil
}

// ParseRequirement parses "a|b,c": comma-separated groups, each a
// |-separated list of permissions (slugs or display names).
func ParseRequirement(s string) ([]Permissions, error) {
	var need []Permissions
	for _, group := range strings.Split(s, ",") {
		if strings.TrimSpace(group) == "" {
			continue
		}
		set, err := ParsePermissionList(strings.Split(group, "|"))
		if err != nil {
			return nil, err
		}
		if set == 0 {
			return nil, fmt.Errorf("empty permission group in %q", s)
		}
		need = append(need, set)
	}
	if len(need) == 0 {
		return nil, fmt.Errorf("no permissions in %q", s)
	}
	return need, nil
}

// FormatRequirement writes what ParseRequirement reads.
func FormatRequirement(need []Permissions) string {
	groups := make([]string, len(need))
	for i, g := range need {
		groups[i] = strings.Join(g.Slugs(), "|")
	}
	return strings.Join(groups, ",")
}
