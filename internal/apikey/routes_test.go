package apikey

import (
	"testing"
)

// The default table states Kraken's documented requirement for each method.
func TestDefaultRoutes(t *testing.T) {
	rs := DefaultRoutes()
	for _, tc := range []struct {
		method string
		need   string
		cost   float64
		target Target
	}{
		{"Balance", "query-funds", 1, TargetUpstream},
		{"BalanceEx", "query-funds", 1, TargetUpstream},
		{"TradeBalance", "query-open-orders", 1, TargetUpstream},
		{"OpenOrders", "query-open-orders", 1, TargetUpstream},
		{"ClosedOrders", "query-closed-orders", 1, TargetUpstream},
		{"QueryOrders", "query-open-orders|query-closed-orders", 1, TargetUpstream},
		{"TradesHistory", "query-closed-orders", 2, TargetUpstream},
		{"QueryTrades", "query-closed-orders", 2, TargetUpstream},
		{"Ledgers", "query-ledger", 2, TargetUpstream},
		{"QueryLedgers", "query-ledger", 2, TargetUpstream},
		{"AddExport", "export-data", 1, TargetUpstream},
		{"AddOrder", "create-modify-orders", 1, TargetUpstream},
		{"AddOrderBatch", "create-modify-orders,cancel-close-orders", 1, TargetUpstream},
		{"CancelOrder", "cancel-close-orders", 1, TargetUpstream},
		{"GetWebSocketsToken", "access-websockets", 1, TargetUpstream},
		{"DepositAddresses", "deposit-funds", 1, TargetFunding},
		{"WithdrawAddresses", "withdraw-funds", 1, TargetFunding},
		{"Withdraw", "withdraw-funds", 1, TargetFunding},
	} {
		r, ok := rs.Lookup(tc.method)
		if !ok {
			t.Errorf("%s missing", tc.method)
			continue
		}
		if got := FormatRequirement(r.Need); got != tc.need || r.Cost != tc.cost || r.Target != tc.target || r.Method != tc.method {
			t.Errorf("%s = %s cost %v %s; want %s cost %v %s", tc.method, got, r.Cost, r.Target, tc.need, tc.cost, tc.target)
		}
	}
	if _, ok := rs.Lookup("balance"); ok {
		t.Error("method names must be case-sensitive")
	}
	// Every funding method is marked not proxied.
	for _, m := range rs.Methods() {
		r, _ := rs.Lookup(m)
		funding := r.Need[0].Intersects(PermissionsOf(DepositFunds, WithdrawFunds))
		if funding != (r.Target == TargetFunding) {
			t.Errorf("%s: target %s but needs %s", m, r.Target, FormatRequirement(r.Need))
		}
	}
}

// Allows over the whole permission lattice for the three shapes of
// requirement.
func TestRouteAllows(t *testing.T) {
	single := Route{Need: []Permissions{PermissionsOf(QueryFunds)}}
	either := Route{Need: []Permissions{PermissionsOf(QueryOpenOrders, QueryClosedOrders)}}
	both := Route{Need: []Permissions{PermissionsOf(CreateModifyOrders), PermissionsOf(CancelCloseOrders)}}
	for s := Permissions(0); s <= AllPermissionSet; s++ {
		if got, want := single.Allows(s), s.Has(QueryFunds); got != want {
			t.Fatalf("single %v: %v", s, got)
		}
		if got, want := either.Allows(s), s.Has(QueryOpenOrders) || s.Has(QueryClosedOrders); got != want {
			t.Fatalf("either %v: %v", s, got)
		}
		if got, want := both.Allows(s), s.Has(CreateModifyOrders) && s.Has(CancelCloseOrders); got != want {
			t.Fatalf("both %v: %v", s, got)
		}
		if (Route{}).Allows(s) {
			t.Fatal("a route without requirement allowed")
		}
	}
}

func TestRouteOverrides(t *testing.T) {
	zero := 0.0
	rs, err := DefaultRoutes().WithOverrides(map[string]RouteOverride{
		"TradeBalance":   {Permissions: "query-funds"},
		"AddOrder":       {Cost: &zero},
		"Withdraw":       {Target: TargetDisabled},
		"StakeSomething": {Permissions: "Query Funds|export-data, query-ledger"},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := rs.Lookup("TradeBalance")
	if FormatRequirement(r.Need) != "query-funds" || r.Cost != 1 {
		t.Errorf("TradeBalance = %+v", r)
	}
	r, _ = rs.Lookup("AddOrder")
	if r.Cost != 0 || FormatRequirement(r.Need) != "create-modify-orders" {
		t.Errorf("AddOrder = %+v", r)
	}
	r, _ = rs.Lookup("Withdraw")
	if r.Target != TargetDisabled {
		t.Errorf("Withdraw = %+v", r)
	}
	r, ok := rs.Lookup("StakeSomething")
	if !ok || FormatRequirement(r.Need) != "query-funds|export-data,query-ledger" || r.Target != TargetUpstream {
		t.Errorf("new = %+v", r)
	}
	// The defaults are untouched.
	if r, _ := DefaultRoutes().Lookup("TradeBalance"); FormatRequirement(r.Need) != "query-open-orders" {
		t.Error("WithOverrides changed the original")
	}
	neg := -1.0
	for name, bad := range map[string]map[string]RouteOverride{
		"unknown permission": {"Balance": {Permissions: "query-everything"}},
		"new without perms":  {"NewMethod": {}},
		"bad name":           {"Bal/ance": {Permissions: "query-funds"}},
		"negative cost":      {"Balance": {Cost: &neg}},
		"bad target":         {"Balance": {Target: "elsewhere"}},
		"empty group":        {"Balance": {Permissions: "query-funds,|"}},
	} {
		if _, err := DefaultRoutes().WithOverrides(bad); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
