package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

func token(name, accountID string, kind store.TokenKind) store.Token {
	return store.Token{
		Hash:      hash(name),
		Kind:      kind,
		AccountID: accountID,
		CreatedAt: t0,
		ExpiresAt: at(30 * time.Minute),
	}
}

func testTokenRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	for _, tc := range []struct {
		name string
		give store.Token
	}{
		{"every field", store.Token{Hash: hash("full"), Kind: store.TokenDeviceApproval, AccountID: "acc-1",
			Subject: "pending-7", CreatedAt: t0, ExpiresAt: at(30 * time.Minute)}},
		{"zero created, no subject", store.Token{Hash: hash("sparse"), Kind: store.TokenPasswordReset,
			AccountID: "acc-1", ExpiresAt: at(time.Minute)}},
		{"zoned", store.Token{Hash: hash("zoned"), Kind: store.TokenSecureAccount, AccountID: "acc-1",
			CreatedAt: t0.In(elsewhere), ExpiresAt: at(time.Hour).In(elsewhere)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, "CreateToken", s.CreateToken(ctx, tc.give))
			now := at(10 * time.Second).In(elsewhere)
			got, err := s.ConsumeToken(ctx, tc.give.Kind, tc.give.Hash, now)
			must(t, "ConsumeToken", err)
			want := tc.give
			want.CreatedAt = want.CreatedAt.UTC()
			want.ExpiresAt = want.ExpiresAt.UTC()
			want.UsedAt = now.UTC()
			equal(t, "consumed token", got, want)
		})
	}
}

func testTokenDuplicate(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	must(t, "CreateToken", s.CreateToken(ctx, token("a", "acc-1", store.TokenEmailConfirm)))
	is(t, "same hash", s.CreateToken(ctx, token("a", "acc-1", store.TokenEmailConfirm)), store.ErrAlreadyExists)
	is(t, "same hash, other kind", s.CreateToken(ctx, token("a", "acc-1", store.TokenPasswordReset)), store.ErrAlreadyExists)
	// The original is intact and still usable once.
	_, err := s.ConsumeToken(ctx, store.TokenEmailConfirm, hash("a"), t0)
	must(t, "ConsumeToken", err)
}

// testTokenConsumeRefusals: every way a token can fail to be consumed, and
// that a refusal leaves the token as it was.
func testTokenConsumeRefusals(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	tok := token("tok", "acc-1", store.TokenPasswordReset) // expires t0+30m

	must(t, "CreateToken", s.CreateToken(ctx, tok))
	_, err := s.ConsumeToken(ctx, store.TokenPasswordReset, hash("unknown"), t0)
	is(t, "unknown hash", err, store.ErrNotFound)
	_, err = s.ConsumeToken(ctx, store.TokenEmailConfirm, tok.Hash, t0)
	is(t, "other kind", err, store.ErrNotFound)
	_, err = s.ConsumeToken(ctx, store.TokenPasswordReset, tok.Hash, tok.ExpiresAt)
	is(t, "now == ExpiresAt", err, store.ErrTokenExpired)
	_, err = s.ConsumeToken(ctx, store.TokenPasswordReset, tok.Hash, tok.ExpiresAt.Add(time.Hour))
	is(t, "after ExpiresAt", err, store.ErrTokenExpired)

	// None of the refusals used it up.
	last := tok.ExpiresAt.Add(-time.Microsecond)
	got, err := s.ConsumeToken(ctx, store.TokenPasswordReset, tok.Hash, last)
	must(t, "ConsumeToken just before expiry", err)
	if !got.UsedAt.Equal(last) {
		t.Errorf("UsedAt = %v, want %v", got.UsedAt, last)
	}

	// Replay.
	for _, now := range []time.Time{last, t0, tok.ExpiresAt.Add(time.Hour)} {
		_, err = s.ConsumeToken(ctx, store.TokenPasswordReset, tok.Hash, now)
		is(t, fmt.Sprint("replay at ", now), err, store.ErrTokenUsed)
	}
	_, err = s.ConsumeToken(ctx, store.TokenEmailConfirm, tok.Hash, t0)
	is(t, "replay as other kind", err, store.ErrNotFound)
}

// testTokenConsumeConcurrent: of many simultaneous consumers of one token,
// exactly one wins.
func testTokenConsumeConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	tok := token("tok", "acc-1", store.TokenSecureAccount)
	must(t, "CreateToken", s.CreateToken(ctx, tok))
	errs := race(concurrency, func(int) error {
		_, err := s.ConsumeToken(ctx, tok.Kind, tok.Hash, t0)
		return err
	})
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, store.ErrTokenUsed):
		default:
			t.Errorf("consumer %d: %v", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent ConsumeToken calls succeeded, want exactly 1", wins, concurrency)
	}
}

func testTokenDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	for _, tok := range []store.Token{
		token("reset-1", "acc-1", store.TokenPasswordReset),
		token("reset-2", "acc-1", store.TokenPasswordReset),
		token("reset-used", "acc-1", store.TokenPasswordReset),
		token("confirm", "acc-1", store.TokenEmailConfirm),
		token("other-account", "acc-2", store.TokenPasswordReset),
	} {
		must(t, "CreateToken", s.CreateToken(ctx, tok))
	}
	_, err := s.ConsumeToken(ctx, store.TokenPasswordReset, hash("reset-used"), t0)
	must(t, "ConsumeToken", err)

	must(t, "DeleteTokens", s.DeleteTokens(ctx, "acc-1", store.TokenPasswordReset))

	for _, tc := range []struct {
		name string
		kind store.TokenKind
		want error
	}{
		{"reset-1", store.TokenPasswordReset, store.ErrNotFound},
		{"reset-2", store.TokenPasswordReset, store.ErrNotFound},
		{"reset-used", store.TokenPasswordReset, store.ErrTokenUsed}, // used tokens stay, so replays still say "used"
		{"confirm", store.TokenEmailConfirm, nil},
		{"other-account", store.TokenPasswordReset, nil},
	} {
		_, err := s.ConsumeToken(ctx, tc.kind, hash(tc.name), t0)
		if tc.want == nil {
			must(t, "ConsumeToken "+tc.name, err)
		} else {
			is(t, "ConsumeToken "+tc.name, err, tc.want)
		}
	}
	must(t, "DeleteTokens with nothing to delete", s.DeleteTokens(ctx, "acc-1", store.TokenPasswordReset))
}
