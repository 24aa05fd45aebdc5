package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

func fullSignIn(id, accountID string) store.PendingSignIn {
	return store.PendingSignIn{
		ID:        id,
		TokenHash: hash("pending " + id),
		AccountID: accountID,
		State:     store.StateDeviceApproval,
		DeviceID:  "dev-9",
		NewDevice: true,
		CodeHash:  hash("code 123456"),
		Attempts:  2,
		Client:    "web",
		IP:        "192.0.2.77",
		UserAgent: "curl/8.0",
		FactorAt:  at(time.Minute),
		CreatedAt: t0,
		ExpiresAt: at(10 * time.Minute),
	}
}

// signIn is a pending sign-in expiring at t0+expires.
func signIn(id, accountID string, expires time.Duration) store.PendingSignIn {
	return store.PendingSignIn{
		ID:        id,
		TokenHash: hash("pending " + id),
		AccountID: accountID,
		State:     store.StateSecondFactor,
		CreatedAt: t0,
		ExpiresAt: at(expires),
	}
}

func getSignIn(t *testing.T, s store.Queries, id string) store.PendingSignIn {
	t.Helper()
	got, err := s.GetPendingSignIn(context.Background(), hash("pending "+id))
	must(t, "GetPendingSignIn "+id, err)
	return got
}

func testSignInRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	zoned := fullSignIn("p-zoned", "acc-1")
	zoned.ExpiresAt = zoned.ExpiresAt.In(elsewhere)
	for _, tc := range []struct {
		name       string
		give, want store.PendingSignIn
	}{
		{"every field", fullSignIn("p-full", "acc-1"), fullSignIn("p-full", "acc-1")},
		{"zero values", store.PendingSignIn{ID: "p-sparse", TokenHash: hash("pending p-sparse"), AccountID: "acc-1"},
			store.PendingSignIn{ID: "p-sparse", TokenHash: hash("pending p-sparse"), AccountID: "acc-1"}},
		{"zoned", zoned, fullSignIn("p-zoned", "acc-1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, "CreatePendingSignIn", s.CreatePendingSignIn(ctx, tc.give))
			equal(t, "pending sign-in", getSignIn(t, s, tc.give.ID), tc.want)
		})
	}
	_, err := s.GetPendingSignIn(ctx, hash("unknown"))
	is(t, "unknown", err, store.ErrNotFound)
}

func testSignInDuplicate(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	p := fullSignIn("p-1", "acc-1")
	must(t, "CreatePendingSignIn", s.CreatePendingSignIn(ctx, p))
	sameID := signIn("p-1", "acc-1", time.Hour)
	sameID.TokenHash = hash("other")
	is(t, "same ID", s.CreatePendingSignIn(ctx, sameID), store.ErrAlreadyExists)
	sameHash := signIn("p-2", "acc-1", time.Hour)
	sameHash.TokenHash = p.TokenHash
	is(t, "same token hash", s.CreatePendingSignIn(ctx, sameHash), store.ErrAlreadyExists)
	equal(t, "original", getSignIn(t, s, "p-1"), p)
}

func testSignInUpdate(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	orig := fullSignIn("p-1", "acc-1")
	must(t, "CreatePendingSignIn", s.CreatePendingSignIn(ctx, orig))

	want := orig
	want.State = store.StateDone
	want.NewDevice = false
	want.CodeHash = nil
	want.Attempts = 0
	want.FactorAt = at(2 * time.Minute)
	got, err := s.UpdatePendingSignIn(ctx, "p-1", func(p *store.PendingSignIn) error {
		equal(t, "fn sees", *p, orig)
		p.State = store.StateDone
		p.NewDevice = false
		p.CodeHash = []byte{}
		p.Attempts = 0
		p.FactorAt = at(2 * time.Minute).In(elsewhere)
		return nil
	})
	must(t, "UpdatePendingSignIn", err)
	equal(t, "UpdatePendingSignIn result", got, want)
	equal(t, "stored", getSignIn(t, s, "p-1"), want)

	refuse := errors.New("too many attempts")
	_, err = s.UpdatePendingSignIn(ctx, "p-1", func(p *store.PendingSignIn) error {
		p.Attempts = 99
		p.State = store.StateSecondFactor
		return refuse
	})
	if err != refuse {
		t.Fatalf("UpdatePendingSignIn returned %v, want fn's error unchanged", err)
	}
	equal(t, "after refused update", getSignIn(t, s, "p-1"), want)

	_, err = s.UpdatePendingSignIn(ctx, "p-9", func(*store.PendingSignIn) error { return nil })
	is(t, "unknown", err, store.ErrNotFound)
}

// testSignInUpdateConcurrent: wrong-code attempts counted under concurrency
// must all count, or an attacker could guess faster than the limit allows.
func testSignInUpdateConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	must(t, "CreatePendingSignIn", s.CreatePendingSignIn(ctx, signIn("p-1", "acc-1", time.Hour)))
	const limit = 5
	var refused = errors.New("too many attempts")
	errs := race(concurrency, func(int) error {
		_, err := s.UpdatePendingSignIn(ctx, "p-1", func(p *store.PendingSignIn) error {
			if p.Attempts >= limit {
				return refused
			}
			p.Attempts++
			return nil
		})
		return err
	})
	allowed := 0
	for i, err := range errs {
		switch {
		case err == nil:
			allowed++
		case err == refused:
		default:
			t.Errorf("attempt %d: %v", i, err)
		}
	}
	if allowed != limit {
		t.Errorf("%d of %d concurrent attempts got through, want exactly %d", allowed, concurrency, limit)
	}
	if got := getSignIn(t, s, "p-1").Attempts; got != limit {
		t.Errorf("Attempts = %d, want %d", got, limit)
	}

	// And plain increments: no lost updates.
	errs = race(concurrency, func(int) error {
		_, err := s.UpdatePendingSignIn(ctx, "p-1", func(p *store.PendingSignIn) error {
			p.Attempts++
			return nil
		})
		return err
	})
	for i, err := range errs {
		must(t, fmt.Sprint("increment ", i), err)
	}
	if got := getSignIn(t, s, "p-1").Attempts; got != limit+concurrency {
		t.Errorf("Attempts = %d after %d concurrent increments, want %d", got, concurrency, limit+concurrency)
	}
}

func testSignInDeleteExpired(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	now := at(time.Hour)
	for _, p := range []store.PendingSignIn{
		signIn("p-old", "acc-1", 0),
		signIn("p-just-expired", "acc-1", time.Hour-time.Microsecond),
		signIn("p-expires-now", "acc-1", time.Hour),
		signIn("p-live", "acc-1", 2*time.Hour),
	} {
		must(t, "CreatePendingSignIn", s.CreatePendingSignIn(ctx, p))
	}
	n, err := s.DeleteExpiredPendingSignIns(ctx, now)
	must(t, "DeleteExpiredPendingSignIns", err)
	if n != 2 {
		t.Errorf("deleted %d, want 2", n)
	}
	for id, want := range map[string]error{
		"p-old":          store.ErrNotFound,
		"p-just-expired": store.ErrNotFound,
		"p-expires-now":  nil, // "before now" is strict
		"p-live":         nil,
	} {
		_, err := s.GetPendingSignIn(ctx, hash("pending "+id))
		if want == nil {
			must(t, "GetPendingSignIn "+id, err)
		} else {
			is(t, "GetPendingSignIn "+id, err, want)
		}
	}
	n, err = s.DeleteExpiredPendingSignIns(ctx, now)
	must(t, "DeleteExpiredPendingSignIns again", err)
	if n != 0 {
		t.Errorf("second run deleted %d, want 0", n)
	}
}
