package account

import (
	"slices"
	"testing"
)

// TestOnLock: every way an account gets locked tells the hooks, once,
// with the account's ID; a failed lock tells nobody.
func TestOnLock(t *testing.T) {
	e := newEnv(t)
	a := e.signUpConfirmed(e.email, goodPassword)
	var got []string
	e.svc.OnLock(func(id string) { got = append(got, id) })

	if err := e.svc.Lock(e.ctx, "nobody@example.com", "", "cli"); err == nil {
		t.Fatal("locked an unknown account")
	}
	if len(got) != 0 {
		t.Fatalf("hooks told of a failed lock: %v", got)
	}
	if err := e.svc.Lock(e.ctx, e.email, "stolen phone", "cli"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Unlock(e.ctx, e.email, "cli"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{a.ID}) {
		t.Fatalf("after Lock and Unlock: %v", got)
	}

	// The owner's "this wasn't me" link.
	e.signIn(e.email, goodPassword, client("192.0.2.1", ""))
	link := linkToken(t, e.lastMail(e.email, subjNewSignIn).Body, PathSecureAccount)
	if err := e.svc.SecureAccount(e.ctx, link, client("192.0.2.1", "")); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{a.ID, a.ID}) {
		t.Fatalf("after SecureAccount: %v", got)
	}
}
