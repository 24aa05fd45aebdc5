package admin

import (
	"testing"

	"github.com/moat-dev/moat/internal/store"
)

// TestMatrix spells out who may do what; a change to the matrix must
// change this table too.
func TestMatrix(t *testing.T) {
	const (
		u = store.RoleUser
		s = store.RoleSupport
		a = store.RoleAdmin
	)
	want := map[Action]map[store.Role]bool{
		ActView:           {u: false, s: true, a: true},
		ActDocument:       {u: false, s: true, a: true},
		ActApprove:        {u: false, s: true, a: true},
		ActReject:         {u: false, s: true, a: true},
		ActStop:           {u: false, s: true, a: true},
		ActLock:           {u: false, s: true, a: true},
		ActRevokeSessions: {u: false, s: true, a: true},
		ActUnlock:         {u: false, s: false, a: true},
	}
	if len(want) != len(matrix) {
		t.Errorf("the matrix has %d actions, this test %d", len(matrix), len(want))
	}
	for act, roles := range want {
		for role, ok := range roles {
			if got := Allowed(role, act); got != ok {
				t.Errorf("Allowed(%s, %s) = %v, want %v", role, act, got, ok)
			}
		}
		if Allowed("", act) || Allowed("root", act) {
			t.Errorf("%s allowed for an empty or unknown role", act)
		}
	}
	if Allowed(a, "drop_database") {
		t.Error("an unknown action is allowed")
	}
}

func TestBreakable(t *testing.T) {
	for in, want := range map[string]string{
		"recovery.document_viewed": "recovery.<wbr>document_<wbr>viewed",
		"<script>.x":               "&lt;script&gt;.<wbr>x",
		"":                         "",
	} {
		if got := string(breakable(in)); got != want {
			t.Errorf("breakable(%q) = %q, want %q", in, got, want)
		}
	}
}
