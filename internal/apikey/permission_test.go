package apikey

import (
	"encoding/json"
	"testing"
)

func TestPermissionNames(t *testing.T) {
	want := []struct{ slug, name string }{
		{"query-funds", "Query Funds"},
		{"deposit-funds", "Deposit Funds"},
		{"withdraw-funds", "Withdraw Funds"},
		{"query-open-orders", "Query Open Orders & Trades"},
		{"query-closed-orders", "Query Closed Orders & Trades"},
		{"query-ledger", "Query Ledger Entries"},
		{"export-data", "Export Data"},
		{"create-modify-orders", "Create & Modify Orders"},
		{"cancel-close-orders", "Cancel/Close Orders"},
		{"access-websockets", "Access WebSockets API"},
	}
	all := AllPermissions()
	if len(all) != len(want) {
		t.Fatalf("%d permissions, want %d", len(all), len(want))
	}
	for i, p := range all {
		if p.Slug() != want[i].slug || p.Name() != want[i].name {
			t.Errorf("permission %d = %q/%q, want %q/%q", i, p.Slug(), p.Name(), want[i].slug, want[i].name)
		}
		for _, in := range []string{want[i].slug, want[i].name, "  " + want[i].name + " ", upper(want[i].slug)} {
			got, err := ParsePermission(in)
			if err != nil || got != p {
				t.Errorf("ParsePermission(%q) = %v, %v; want %v", in, got, err, p)
			}
		}
		if p.Dangerous() != (p == WithdrawFunds) {
			t.Errorf("%v dangerous = %v", p, p.Dangerous())
		}
	}
	if AllPermissionSet.Len() != 10 {
		t.Fatal("AllPermissionSet")
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

func TestParsePermissions(t *testing.T) {
	got, err := ParsePermissions("query-funds, Create & Modify Orders,,cancel-close-orders")
	if err != nil {
		t.Fatal(err)
	}
	want := PermissionsOf(QueryFunds, CreateModifyOrders, CancelCloseOrders)
	if got != want || got.String() != "query-funds,create-modify-orders,cancel-close-orders" {
		t.Fatalf("got %v", got)
	}
	if s, err := ParsePermissions(""); err != nil || s != 0 {
		t.Fatalf("empty = %v, %v", s, err)
	}
	for _, bad := range []string{"trade", "query-funds,withdraw", "Query"} {
		if _, err := ParsePermissions(bad); err == nil {
			t.Errorf("ParsePermissions(%q) accepted", bad)
		}
	}
	// Text round trip (config, JSON).
	b, _ := json.Marshal(struct{ P Permissions }{want})
	var back struct{ P Permissions }
	if err := json.Unmarshal(b, &back); err != nil || back.P != want {
		t.Fatalf("JSON round trip %s -> %v, %v", b, back.P, err)
	}
	if want.Without(QueryFunds).Has(QueryFunds) || !want.Has(CancelCloseOrders) || want.Has(WithdrawFunds) {
		t.Fatal("set operations")
	}
}
