package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

func fullSession(id, accountID string) store.Session {
	return store.Session{
		ID:             id,
		TokenHash:      hash("session " + id),
		AccountID:      accountID,
		DeviceID:       "dev-1",
		Client:         "web",
		IP:             "2001:db8::7",
		UserAgent:      "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
		CreatedAt:      t0,
		LastSeenAt:     at(time.Minute),
		ExpiresAt:      at(12 * time.Hour),
		SecondFactorAt: at(30 * time.Second),
		SignInFactor:   "webauthn",
		RevokedAt:      at(2 * time.Hour),
	}
}

// session is a live session created at t0+created, expiring at t0+12h.
func session(id, accountID string, created time.Duration) store.Session {
	return store.Session{
		ID:         id,
		TokenHash:  hash("session " + id),
		AccountID:  accountID,
		Client:     "api",
		CreatedAt:  at(created),
		LastSeenAt: at(created),
		ExpiresAt:  at(12 * time.Hour),
	}
}

func mkSession(t *testing.T, s store.Queries, ss store.Session) {
	t.Helper()
	must(t, "CreateSession "+ss.ID, s.CreateSession(context.Background(), ss))
}

func getSession(t *testing.T, s store.Queries, id string) store.Session {
	t.Helper()
	got, err := s.GetSessionByTokenHash(context.Background(), hash("session "+id))
	must(t, "GetSessionByTokenHash "+id, err)
	return got
}

func testSessionRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	zoned := fullSession("s-zoned", "acc-1")
	zoned.LastSeenAt = zoned.LastSeenAt.In(elsewhere)
	zoned.RevokedAt = zoned.RevokedAt.In(elsewhere)
	for _, tc := range []struct {
		name       string
		give, want store.Session
	}{
		// Revoked and expired sessions come back too: the caller decides.
		{"every field, revoked", fullSession("s-full", "acc-1"), fullSession("s-full", "acc-1")},
		{"zero times and empty strings",
			store.Session{ID: "s-sparse", TokenHash: hash("session s-sparse"), AccountID: "acc-1"},
			store.Session{ID: "s-sparse", TokenHash: hash("session s-sparse"), AccountID: "acc-1"}},
		{"zoned", zoned, fullSession("s-zoned", "acc-1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mkSession(t, s, tc.give)
			equal(t, "session", getSession(t, s, tc.give.ID), tc.want)
		})
	}
	_, err := s.GetSessionByTokenHash(ctx, hash("no such session"))
	is(t, "unknown hash", err, store.ErrNotFound)
	_, err = s.GetSessionByTokenHash(ctx, hash("session s-full")[:16])
	is(t, "hash prefix", err, store.ErrNotFound)
}

func testSessionDuplicate(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	first := session("s-1", "acc-1", 0)
	mkSession(t, s, first)
	dupID := session("s-1", "acc-1", time.Second)
	dupID.TokenHash = hash("another token")
	is(t, "same ID", s.CreateSession(ctx, dupID), store.ErrAlreadyExists)
	dupHash := session("s-2", "acc-1", time.Second)
	dupHash.TokenHash = first.TokenHash
	is(t, "same token hash", s.CreateSession(ctx, dupHash), store.ErrAlreadyExists)
	equal(t, "original", getSession(t, s, "s-1"), first)
}

func testSessionTouch(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	want := fullSession("s-1", "acc-1")
	mkSession(t, s, want)
	seen := at(5 * time.Minute).In(elsewhere)
	must(t, "TouchSession", s.TouchSession(ctx, "s-1", seen, "198.51.100.4"))
	want.LastSeenAt = seen.UTC()
	want.IP = "198.51.100.4"
	equal(t, "touched", getSession(t, s, "s-1"), want)
	is(t, "unknown session", s.TouchSession(ctx, "s-2", seen, "198.51.100.4"), store.ErrNotFound)
}

func testSessionUpdate(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	orig := session("s-1", "acc-1", 0)
	mkSession(t, s, orig)

	want := fullSession("s-1", "acc-2")
	want.TokenHash = hash("session s-1") // keep the lookup key
	got, err := s.UpdateSession(ctx, "s-1", func(ss *store.Session) error {
		equal(t, "fn sees", *ss, orig)
		*ss = want
		return nil
	})
	must(t, "UpdateSession", err)
	equal(t, "UpdateSession result", got, want)
	equal(t, "stored", getSession(t, s, "s-1"), want)

	refuse := errors.New("step-up expired")
	_, err = s.UpdateSession(ctx, "s-1", func(ss *store.Session) error {
		ss.SecondFactorAt = at(time.Hour)
		ss.RevokedAt = time.Time{}
		return refuse
	})
	if err != refuse {
		t.Fatalf("UpdateSession returned %v, want fn's error unchanged", err)
	}
	equal(t, "after refused update", getSession(t, s, "s-1"), want)

	_, err = s.UpdateSession(ctx, "s-9", func(*store.Session) error { return nil })
	is(t, "unknown session", err, store.ErrNotFound)
}

func testSessionList(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	now := at(6 * time.Hour)

	oldest := session("s-old", "acc-1", 0)
	newest := session("s-new", "acc-1", 2*time.Hour)
	middle := session("s-mid", "acc-1", time.Hour)
	revoked := session("s-revoked", "acc-1", 3*time.Hour)
	revoked.RevokedAt = at(4 * time.Hour)
	expired := session("s-expired", "acc-1", 4*time.Hour)
	expired.ExpiresAt = at(5 * time.Hour)
	expiresNow := session("s-expires-now", "acc-1", 4*time.Hour)
	expiresNow.ExpiresAt = now
	justAlive := session("s-just-alive", "acc-1", -time.Hour)
	justAlive.ExpiresAt = now.Add(time.Microsecond)
	other := session("s-other", "acc-2", 5*time.Hour)
	undated := session("s-undated", "acc-1", 0)
	undated.CreatedAt = time.Time{} // zero is the earliest time: listed last
	for _, ss := range []store.Session{middle, revoked, undated, oldest, expired, expiresNow, other, newest, justAlive} {
		mkSession(t, s, ss)
	}

	got, err := s.ListSessions(ctx, "acc-1", now)
	must(t, "ListSessions", err)
	equal(t, "live sessions, newest first", got, []store.Session{newest, middle, oldest, justAlive, undated})

	got, err = s.ListSessions(ctx, "acc-3", now)
	must(t, "ListSessions (no sessions)", err)
	if len(got) != 0 {
		t.Errorf("ListSessions of an account without sessions = %+v", got)
	}
}

func testSessionRevoke(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	mine := session("s-mine", "acc-1", 0)
	theirs := session("s-theirs", "acc-2", 0)
	mkSession(t, s, mine)
	mkSession(t, s, theirs)

	is(t, "another account's session", s.RevokeSession(ctx, "acc-1", "s-theirs", at(time.Hour)), store.ErrNotFound)
	equal(t, "their session after the attempt", getSession(t, s, "s-theirs"), theirs)
	is(t, "unknown session", s.RevokeSession(ctx, "acc-1", "s-none", at(time.Hour)), store.ErrNotFound)

	must(t, "RevokeSession", s.RevokeSession(ctx, "acc-1", "s-mine", at(time.Hour).In(elsewhere)))
	mine.RevokedAt = at(time.Hour)
	equal(t, "revoked", getSession(t, s, "s-mine"), mine)

	// Already revoked: not found, and the first revocation time stays.
	is(t, "revoke twice", s.RevokeSession(ctx, "acc-1", "s-mine", at(2*time.Hour)), store.ErrNotFound)
	equal(t, "revoked once", getSession(t, s, "s-mine"), mine)
}

func testSessionRevokeAll(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	current := session("s-current", "acc-1", 0)
	a := session("s-a", "acc-1", time.Minute)
	b := session("s-b", "acc-1", 2*time.Minute)
	old := session("s-old", "acc-1", 3*time.Minute)
	old.RevokedAt = at(4 * time.Minute)
	other := session("s-other", "acc-2", 0)
	for _, ss := range []store.Session{current, a, b, old, other} {
		mkSession(t, s, ss)
	}
	revokeAt := at(time.Hour)
	n, err := s.RevokeSessions(ctx, "acc-1", "s-current", revokeAt)
	must(t, "RevokeSessions", err)
	if n != 2 {
		t.Errorf("RevokeSessions revoked %d sessions, want 2", n)
	}
	a.RevokedAt, b.RevokedAt = revokeAt, revokeAt
	equal(t, "current", getSession(t, s, "s-current"), current)
	equal(t, "a", getSession(t, s, "s-a"), a)
	equal(t, "b", getSession(t, s, "s-b"), b)
	equal(t, "already revoked keeps its time", getSession(t, s, "s-old"), old)
	equal(t, "other account's", getSession(t, s, "s-other"), other)

	// No exception: every remaining one.
	n, err = s.RevokeSessions(ctx, "acc-1", "", at(2*time.Hour))
	must(t, "RevokeSessions (all)", err)
	if n != 1 {
		t.Errorf("RevokeSessions(all) revoked %d sessions, want 1", n)
	}
	current.RevokedAt = at(2 * time.Hour)
	equal(t, "current", getSession(t, s, "s-current"), current)
	n, err = s.RevokeSessions(ctx, "acc-1", "", at(3*time.Hour))
	must(t, "RevokeSessions (none left)", err)
	if n != 0 {
		t.Errorf("RevokeSessions with none left revoked %d", n)
	}
	equal(t, "other account's", getSession(t, s, "s-other"), other)
}
