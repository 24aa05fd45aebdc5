package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

// fullAccount has every field set, times with microseconds.
func fullAccount(id, email string) store.Account {
	return store.Account{
		ID:                id,
		Email:             email,
		PasswordHash:      "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
		Role:              store.RoleSupport,
		EmailConfirmedAt:  at(time.Minute),
		LockedAt:          at(2 * time.Minute),
		LockReason:        "owner used the secure-account link",
		AntiPhishingCode:  "blue heron 42",
		PasswordChangedAt: at(3 * time.Minute),
		SecurityHoldUntil: at(24 * time.Hour),
		CreatedAt:         t0,
		UpdatedAt:         at(4 * time.Minute),
	}
}

// account is a minimal account: zero times and empty strings where allowed.
func account(id, email string) store.Account {
	return store.Account{ID: id, Email: email, Role: store.RoleUser, CreatedAt: t0}
}

// mkAccount creates a minimal account.
func mkAccount(t *testing.T, q store.Queries, id, email string) store.Account {
	t.Helper()
	a := account(id, email)
	must(t, "CreateAccount "+id, q.CreateAccount(context.Background(), a))
	return a
}

func testPing(t *testing.T, s store.Store) {
	must(t, "Ping", s.Ping(context.Background()))
}

func testAccountRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	zoned := fullAccount("acc-zoned", "zoned@example.com")
	zoned.EmailConfirmedAt = zoned.EmailConfirmedAt.In(elsewhere)
	zoned.CreatedAt = zoned.CreatedAt.In(elsewhere)
	wantZoned := fullAccount("acc-zoned", "zoned@example.com")

	for _, tc := range []struct {
		name       string
		give, want store.Account
	}{
		{"every field", fullAccount("acc-full", "full@example.com"), fullAccount("acc-full", "full@example.com")},
		{"zero times and empty strings", store.Account{ID: "acc-sparse", Email: "sparse@example.com"},
			store.Account{ID: "acc-sparse", Email: "sparse@example.com"}},
		{"times in another zone come back in UTC", zoned, wantZoned},
		{"unicode", account("acc-ünï", "ünïcødé@exämple.com"), account("acc-ünï", "ünïcødé@exämple.com")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, "CreateAccount", s.CreateAccount(ctx, tc.give))
			got, err := s.GetAccount(ctx, tc.give.ID)
			must(t, "GetAccount", err)
			equal(t, "GetAccount", got, tc.want)
			got, err = s.GetAccountByEmail(ctx, tc.give.Email)
			must(t, "GetAccountByEmail", err)
			equal(t, "GetAccountByEmail", got, tc.want)
		})
	}
}

func testAccountDuplicate(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	is(t, "same ID", s.CreateAccount(ctx, account("acc-1", "other@example.com")), store.ErrAlreadyExists)
	is(t, "same e-mail", s.CreateAccount(ctx, account("acc-2", "one@example.com")), store.ErrAlreadyExists)
	if _, err := s.GetAccount(ctx, "acc-2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused account was stored (GetAccount: %v)", err)
	}
	got, err := s.GetAccountByEmail(ctx, "other@example.com")
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused account was stored: %+v, %v", got, err)
	}
}

func testAccountNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	_, err := s.GetAccount(ctx, "acc-2")
	is(t, "GetAccount", err, store.ErrNotFound)
	// Lookup is exact: the caller normalises.
	_, err = s.GetAccountByEmail(ctx, "ONE@example.com")
	is(t, "GetAccountByEmail (other case)", err, store.ErrNotFound)
	_, err = s.GetAccountByEmail(ctx, "two@example.com")
	is(t, "GetAccountByEmail", err, store.ErrNotFound)
	called := false
	_, err = s.UpdateAccount(ctx, "acc-2", func(*store.Account) error { called = true; return nil })
	is(t, "UpdateAccount", err, store.ErrNotFound)
	if called {
		t.Error("UpdateAccount called fn for a missing account")
	}
}

func testAccountUpdate(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, "CreateAccount", s.CreateAccount(ctx, account("acc-1", "one@example.com")))
	want := fullAccount("acc-1", "new@example.com")
	got, err := s.UpdateAccount(ctx, "acc-1", func(a *store.Account) error {
		equal(t, "fn sees", *a, account("acc-1", "one@example.com"))
		*a = fullAccount("acc-1", "new@example.com")
		// A time finer than microseconds or in another zone comes back
		// as stored.
		a.UpdatedAt = want.UpdatedAt.Add(999 * time.Nanosecond).In(elsewhere)
		return nil
	})
	must(t, "UpdateAccount", err)
	equal(t, "UpdateAccount result", got, want)
	stored, err := s.GetAccount(ctx, "acc-1")
	must(t, "GetAccount", err)
	equal(t, "stored", stored, want)
	_, err = s.GetAccountByEmail(ctx, "one@example.com")
	is(t, "old e-mail", err, store.ErrNotFound)

	// And back to zero values.
	got, err = s.UpdateAccount(ctx, "acc-1", func(a *store.Account) error {
		*a = store.Account{ID: "acc-1", Email: "new@example.com"}
		return nil
	})
	must(t, "UpdateAccount to zero", err)
	equal(t, "UpdateAccount to zero", got, store.Account{ID: "acc-1", Email: "new@example.com"})
	stored, err = s.GetAccount(ctx, "acc-1")
	must(t, "GetAccount", err)
	equal(t, "stored zero", stored, store.Account{ID: "acc-1", Email: "new@example.com"})
}

func testAccountUpdateFnError(t *testing.T, s store.Store) {
	ctx := context.Background()
	want := fullAccount("acc-1", "one@example.com")
	must(t, "CreateAccount", s.CreateAccount(ctx, want))
	refuse := errors.New("refused by fn")
	_, err := s.UpdateAccount(ctx, "acc-1", func(a *store.Account) error {
		a.Email = "changed@example.com"
		a.LockReason = "changed"
		a.LockedAt = time.Time{}
		return refuse
	})
	if err != refuse {
		t.Fatalf("UpdateAccount returned %v, want fn's error unchanged", err)
	}
	got, err := s.GetAccount(ctx, "acc-1")
	must(t, "GetAccount", err)
	equal(t, "after refused update", got, want)
}

func testAccountUpdateEmailTaken(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	two := mkAccount(t, s, "acc-2", "two@example.com")
	_, err := s.UpdateAccount(ctx, "acc-2", func(a *store.Account) error {
		a.Email = "one@example.com"
		a.LockReason = "should not be written"
		return nil
	})
	is(t, "UpdateAccount to a taken e-mail", err, store.ErrAlreadyExists)
	got, err := s.GetAccount(ctx, "acc-2")
	must(t, "GetAccount", err)
	equal(t, "after refused update", got, two)
}

func testAccountUpdateIDChange(t *testing.T, s store.Store) {
	ctx := context.Background()
	one := mkAccount(t, s, "acc-1", "one@example.com")
	_, err := s.UpdateAccount(ctx, "acc-1", func(a *store.Account) error {
		a.ID = "acc-9"
		return nil
	})
	if err == nil {
		t.Fatal("UpdateAccount let fn change the ID")
	}
	got, err := s.GetAccount(ctx, "acc-1")
	must(t, "GetAccount", err)
	equal(t, "after refused update", got, one)
	_, err = s.GetAccount(ctx, "acc-9")
	is(t, "GetAccount(new ID)", err, store.ErrNotFound)
}

// testAccountUpdateConcurrent attacks UpdateAccount's read-modify-write:
// every updater appends one character, so a lost update shows as a short
// string.
func testAccountUpdateConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	errs := race(concurrency, func(i int) error {
		_, err := s.UpdateAccount(ctx, "acc-1", func(a *store.Account) error {
			a.LockReason += string(rune('a' + i))
			return nil
		})
		return err
	})
	for i, err := range errs {
		must(t, fmt.Sprint("UpdateAccount #", i), err)
	}
	got, err := s.GetAccount(ctx, "acc-1")
	must(t, "GetAccount", err)
	if len(got.LockReason) != concurrency {
		t.Fatalf("LockReason = %q after %d concurrent appends: lost updates", got.LockReason, concurrency)
	}
	for i := range concurrency {
		if !strings.ContainsRune(got.LockReason, rune('a'+i)) {
			t.Errorf("update %d lost: LockReason = %q", i, got.LockReason)
		}
	}
}

func testAccountList(t *testing.T, s store.Store) {
	ctx := context.Background()
	emails := []string{"carol@example.com", "alice@example.org", "bob@example.com", "dave@test.net", "erin@example.com"}
	for i, e := range emails {
		mkAccount(t, s, fmt.Sprint("acc-", i), e)
	}
	list := func(opt store.ListAccountsOptions) []string {
		t.Helper()
		as, err := s.ListAccounts(ctx, opt)
		must(t, "ListAccounts", err)
		var out []string
		for _, a := range as {
			out = append(out, a.Email)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		opt  store.ListAccountsOptions
		want []string
	}{
		{"all, by e-mail", store.ListAccountsOptions{},
			[]string{"alice@example.org", "bob@example.com", "carol@example.com", "dave@test.net", "erin@example.com"}},
		{"substring", store.ListAccountsOptions{EmailContains: "example.com"},
			[]string{"bob@example.com", "carol@example.com", "erin@example.com"}},
		{"substring, any case", store.ListAccountsOptions{EmailContains: "EXAMPLE.Com"},
			[]string{"bob@example.com", "carol@example.com", "erin@example.com"}},
		{"substring is literal", store.ListAccountsOptions{EmailContains: "%"}, nil},
		{"substring is literal (_)", store.ListAccountsOptions{EmailContains: "a_"}, nil},
		{"no match", store.ListAccountsOptions{EmailContains: "zed"}, nil},
		{"first page", store.ListAccountsOptions{Limit: 2},
			[]string{"alice@example.org", "bob@example.com"}},
		{"second page", store.ListAccountsOptions{Limit: 2, AfterEmail: "bob@example.com"},
			[]string{"carol@example.com", "dave@test.net"}},
		{"last page", store.ListAccountsOptions{Limit: 2, AfterEmail: "dave@test.net"},
			[]string{"erin@example.com"}},
		{"past the end", store.ListAccountsOptions{Limit: 2, AfterEmail: "erin@example.com"}, nil},
		{"after a missing e-mail", store.ListAccountsOptions{AfterEmail: "c"},
			[]string{"carol@example.com", "dave@test.net", "erin@example.com"}},
		{"filtered pages", store.ListAccountsOptions{EmailContains: "example", Limit: 2, AfterEmail: "bob@example.com"},
			[]string{"carol@example.com", "erin@example.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			equal(t, "e-mails", list(tc.opt), tc.want)
		})
	}

	as, err := s.ListAccounts(ctx, store.ListAccountsOptions{EmailContains: "alice"})
	must(t, "ListAccounts", err)
	if len(as) != 1 {
		t.Fatalf("ListAccounts(alice) = %d accounts", len(as))
	}
	equal(t, "listed account", as[0], account("acc-1", "alice@example.org"))
}

func testAccountListDefaultLimit(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, "InTx", s.InTx(ctx, func(tx store.Queries) error {
		for i := range 105 {
			if err := tx.CreateAccount(ctx, account(fmt.Sprint("acc-", i), fmt.Sprintf("u%03d@example.com", i))); err != nil {
				return err
			}
		}
		return nil
	}))
	as, err := s.ListAccounts(ctx, store.ListAccountsOptions{})
	must(t, "ListAccounts", err)
	if len(as) != 100 {
		t.Fatalf("ListAccounts with Limit 0 returned %d accounts, want 100", len(as))
	}
	if as[99].Email != "u099@example.com" {
		t.Errorf("100th account = %s", as[99].Email)
	}
}

// testOwnedRecordsNeedAccount: tokens, sessions, devices and pending
// sign-ins belong to an account that must exist by the time the write
// commits; within a transaction the account may be created second.
func testOwnedRecordsNeedAccount(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		create func(q store.Queries, accountID string) error
	}{
		{"token", func(q store.Queries, accountID string) error {
			return q.CreateToken(ctx, store.Token{Hash: hash("t" + accountID), Kind: store.TokenEmailConfirm, AccountID: accountID, ExpiresAt: at(time.Hour)})
		}},
		{"session", func(q store.Queries, accountID string) error {
			return q.CreateSession(ctx, store.Session{ID: "s" + accountID, TokenHash: hash("s" + accountID), AccountID: accountID})
		}},
		{"device", func(q store.Queries, accountID string) error {
			return q.CreateDevice(ctx, store.Device{ID: "d" + accountID, AccountID: accountID, TokenHash: hash("d" + accountID)})
		}},
		{"pending sign-in", func(q store.Queries, accountID string) error {
			return q.CreatePendingSignIn(ctx, store.PendingSignIn{ID: "p" + accountID, TokenHash: hash("p" + accountID), AccountID: accountID})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ghost := "ghost-" + strings.ReplaceAll(tc.name, " ", "-")
			if err := tc.create(s, ghost); err == nil {
				t.Errorf("created a %s for a missing account", tc.name)
			}
			if err := s.InTx(ctx, func(tx store.Queries) error { return tc.create(tx, ghost) }); err == nil {
				t.Errorf("committed a %s for a missing account", tc.name)
			}
			must(t, "InTx (record, then its account)", s.InTx(ctx, func(tx store.Queries) error {
				if err := tc.create(tx, ghost); err != nil {
					return err
				}
				return tx.CreateAccount(ctx, account(ghost, ghost+"@example.com"))
			}))
		})
	}
}
