package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

// apiKeyTests are the API key and sandbox book cases of Run.
func apiKeyTests() []struct {
	name string
	fn   func(t *testing.T, s store.Store)
} {
	return []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"APIKey/RoundTrip", testAPIKeyRoundTrip},
		{"APIKey/Duplicate", testAPIKeyDuplicate},
		{"APIKey/NotFound", testAPIKeyNotFound},
		{"APIKey/DeletedStillFoundByPublicKey", testAPIKeyDeleted},
		{"APIKey/List", testAPIKeyList},
		{"APIKey/Update", testAPIKeyUpdate},
		{"APIKey/UpdateConcurrent", testAPIKeyUpdateConcurrent},
		{"APIKey/Touch", testAPIKeyTouch},
		{"APIKey/TouchConcurrent", testAPIKeyTouchConcurrent},
		{"APIKey/NeedsAccount", testAPIKeyNeedsAccount},
		{"APIKey/InTx", testAPIKeyInTx},

		{"SandboxBook/Update", testSandboxBookUpdate},
		{"SandboxBook/UpdateConcurrent", testSandboxBookConcurrent},
		{"SandboxBook/InTx", testSandboxBookInTx},
	}
}

// fullAPIKey has every field set, times with microseconds and all distinct.
func fullAPIKey(id, accountID string) store.APIKey {
	return store.APIKey{
		ID:                  id,
		AccountID:           accountID,
		Name:                "grid bot ✓ " + id,
		PublicKey:           "pub-" + id,
		SecretSealed:        hash("sealed " + id),
		Permissions:         "query-funds,query-open-orders,create-modify-orders",
		AllowedIPs:          "203.0.113.7,2001:db8::/48",
		ExpiresAt:           at(90 * 24 * time.Hour),
		NonceWindow:         1 << 40,
		PasswordHash:        hash("password " + id),
		QueryStart:          at(-30 * 24 * time.Hour),
		QueryEnd:            at(30 * 24 * time.Hour),
		CreatedAt:           t0,
		UpdatedAt:           at(time.Minute),
		LastUsedAt:          at(2 * time.Minute),
		LastUsedIP:          "203.0.113.7",
		RotatedAt:           at(3 * time.Minute),
		OldSecretSealed:     hash("old sealed " + id),
		OldSecretValidUntil: at(time.Hour),
		DeletedAt:           at(4 * time.Hour),
	}
}

// apiKey is a minimal live key created at t0+created.
func apiKey(id, accountID string, created time.Duration) store.APIKey {
	return store.APIKey{
		ID:           id,
		AccountID:    accountID,
		Name:         "key " + id,
		PublicKey:    "pub-" + id,
		SecretSealed: hash("sealed " + id),
		Permissions:  "query-funds",
		CreatedAt:    at(created),
		UpdatedAt:    at(created),
	}
}

func mkAPIKey(t *testing.T, q store.Queries, k store.APIKey) {
	t.Helper()
	must(t, "CreateAPIKey "+k.ID, q.CreateAPIKey(context.Background(), k))
}

func getAPIKey(t *testing.T, q store.Queries, id string) store.APIKey {
	t.Helper()
	k, err := q.GetAPIKey(context.Background(), id)
	must(t, "GetAPIKey "+id, err)
	return k
}

func testAPIKeyRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	zoned := fullAPIKey("k-zoned", "acc-1")
	zoned.ExpiresAt = zoned.ExpiresAt.In(elsewhere)
	zoned.LastUsedAt = zoned.LastUsedAt.In(elsewhere)
	zoned.OldSecretValidUntil = zoned.OldSecretValidUntil.In(elsewhere)
	maxWindow := apiKey("k-max-window", "acc-1", 0)
	maxWindow.NonceWindow = 1<<63 - 1
	sparse := store.APIKey{ID: "k-sparse", AccountID: "acc-1", PublicKey: "pub-k-sparse", SecretSealed: hash("s")}
	for _, tc := range []struct {
		name       string
		give, want store.APIKey
	}{
		{"every field, deleted", fullAPIKey("k-full", "acc-1"), fullAPIKey("k-full", "acc-1")},
		{"zero times, empty strings and bytes", sparse, sparse},
		{"zoned", zoned, fullAPIKey("k-zoned", "acc-1")},
		{"largest nonce window", maxWindow, maxWindow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mkAPIKey(t, s, tc.give)
			equal(t, "GetAPIKey", getAPIKey(t, s, tc.give.ID), tc.want)
			got, err := s.GetAPIKeyByPublicKey(ctx, tc.give.PublicKey)
			must(t, "GetAPIKeyByPublicKey", err)
			equal(t, "GetAPIKeyByPublicKey", got, tc.want)
		})
	}
}

func testAPIKeyDuplicate(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	first := apiKey("k-1", "acc-1", 0)
	mkAPIKey(t, s, first)
	dupID := apiKey("k-1", "acc-1", time.Second)
	dupID.PublicKey = "pub-other"
	is(t, "same ID", s.CreateAPIKey(ctx, dupID), store.ErrAlreadyExists)
	dupPub := apiKey("k-2", "acc-1", time.Second)
	dupPub.PublicKey = first.PublicKey
	is(t, "same public key", s.CreateAPIKey(ctx, dupPub), store.ErrAlreadyExists)
	equal(t, "original", getAPIKey(t, s, "k-1"), first)
	_, err := s.GetAPIKey(ctx, "k-2")
	is(t, "refused key", err, store.ErrNotFound)
}

func testAPIKeyNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAPIKey(t, s, apiKey("k-1", "acc-1", 0))
	_, err := s.GetAPIKey(ctx, "k-9")
	is(t, "GetAPIKey", err, store.ErrNotFound)
	_, err = s.GetAPIKeyByPublicKey(ctx, "pub-k-9")
	is(t, "GetAPIKeyByPublicKey", err, store.ErrNotFound)
	_, err = s.GetAPIKeyByPublicKey(ctx, "pub-k")
	is(t, "public key prefix", err, store.ErrNotFound)
	_, err = s.GetAPIKeyByPublicKey(ctx, "PUB-K-1")
	is(t, "public key in other case", err, store.ErrNotFound)
	_, err = s.GetAPIKeyByPublicKey(ctx, "k-1")
	is(t, "ID as public key", err, store.ErrNotFound)
	_, err = s.UpdateAPIKey(ctx, "k-9", func(*store.APIKey) error { return nil })
	is(t, "UpdateAPIKey", err, store.ErrNotFound)
	is(t, "TouchAPIKey", s.TouchAPIKey(ctx, "k-9", t0, "198.51.100.1"), store.ErrNotFound)
	is(t, "TouchAPIKey zero time", s.TouchAPIKey(ctx, "k-9", time.Time{}, ""), store.ErrNotFound)
	keys, err := s.ListAPIKeys(ctx, "acc-9")
	must(t, "ListAPIKeys", err)
	if len(keys) != 0 {
		t.Errorf("ListAPIKeys of an unknown account returned %d keys", len(keys))
	}
}

// testAPIKeyDeleted: the hot path returns deleted keys (the gateway tells
// the client they are invalid), and listing hides them.
func testAPIKeyDeleted(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAPIKey(t, s, apiKey("k-1", "acc-1", 0))
	mkAPIKey(t, s, apiKey("k-2", "acc-1", time.Second))
	want, err := s.UpdateAPIKey(ctx, "k-1", func(k *store.APIKey) error {
		k.DeletedAt = at(time.Hour)
		return nil
	})
	must(t, "UpdateAPIKey", err)
	got, err := s.GetAPIKeyByPublicKey(ctx, "pub-k-1")
	must(t, "GetAPIKeyByPublicKey (deleted)", err)
	equal(t, "deleted key", got, want)
	equal(t, "GetAPIKey (deleted)", getAPIKey(t, s, "k-1"), want)
	keys, err := s.ListAPIKeys(ctx, "acc-1")
	must(t, "ListAPIKeys", err)
	equal(t, "listed", apiKeyIDs(keys), []string{"k-2"})
}

func apiKeyIDs(keys []store.APIKey) []string {
	out := []string{}
	for _, k := range keys {
		out = append(out, k.ID)
	}
	return out
}

func testAPIKeyList(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	// Inserted out of order; the IDs sort against the creation order so a
	// store ordering by ID fails.
	mkAPIKey(t, s, apiKey("k-b", "acc-1", time.Hour))
	mkAPIKey(t, s, apiKey("k-c", "acc-1", 0))
	mkAPIKey(t, s, apiKey("k-a", "acc-1", 2*time.Hour))
	mkAPIKey(t, s, apiKey("k-d", "acc-1", 3*time.Hour))
	mkAPIKey(t, s, apiKey("k-other", "acc-2", 4*time.Hour))
	full := fullAPIKey("k-full", "acc-1") // deleted
	mkAPIKey(t, s, full)
	_, err := s.UpdateAPIKey(ctx, "k-d", func(k *store.APIKey) error {
		k.DeletedAt = at(5 * time.Hour)
		return nil
	})
	must(t, "delete k-d", err)

	keys, err := s.ListAPIKeys(ctx, "acc-1")
	must(t, "ListAPIKeys", err)
	equal(t, "acc-1 keys, newest first", apiKeyIDs(keys), []string{"k-a", "k-b", "k-c"})
	if len(keys) == 3 {
		equal(t, "listed record", keys[1], apiKey("k-b", "acc-1", time.Hour))
	}
	keys, err = s.ListAPIKeys(ctx, "acc-2")
	must(t, "ListAPIKeys", err)
	equal(t, "acc-2 keys", apiKeyIDs(keys), []string{"k-other"})
}

func testAPIKeyUpdate(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	orig := apiKey("k-1", "acc-1", 0)
	mkAPIKey(t, s, orig)
	mkAPIKey(t, s, apiKey("k-2", "acc-1", 0))

	want := fullAPIKey("k-1", "acc-2")
	want.PublicKey = "pub-k-1-rotated"
	got, err := s.UpdateAPIKey(ctx, "k-1", func(k *store.APIKey) error {
		equal(t, "fn sees", *k, orig)
		*k = want
		return nil
	})
	must(t, "UpdateAPIKey", err)
	equal(t, "UpdateAPIKey result", got, want)
	equal(t, "stored", getAPIKey(t, s, "k-1"), want)
	got, err = s.GetAPIKeyByPublicKey(ctx, "pub-k-1-rotated")
	must(t, "lookup by the new public key", err)
	equal(t, "by new public key", got, want)
	_, err = s.GetAPIKeyByPublicKey(ctx, "pub-k-1")
	is(t, "lookup by the old public key", err, store.ErrNotFound)

	// Clearing every optional field stores NULLs and empty values.
	sparse := store.APIKey{ID: "k-1", AccountID: "acc-1", PublicKey: "pub-k-1", SecretSealed: hash("s2")}
	got, err = s.UpdateAPIKey(ctx, "k-1", func(k *store.APIKey) error {
		*k = sparse
		return nil
	})
	must(t, "UpdateAPIKey (clear)", err)
	equal(t, "cleared", got, sparse)
	equal(t, "stored cleared", getAPIKey(t, s, "k-1"), sparse)

	refuse := errors.New("step-up needed")
	_, err = s.UpdateAPIKey(ctx, "k-1", func(k *store.APIKey) error {
		k.Permissions = "withdraw-funds"
		return refuse
	})
	if err != refuse {
		t.Fatalf("UpdateAPIKey returned %v, want fn's error unchanged", err)
	}
	_, err = s.UpdateAPIKey(ctx, "k-1", func(k *store.APIKey) error {
		k.ID = "k-3"
		return nil
	})
	if err == nil {
		t.Fatal("UpdateAPIKey accepted a changed ID")
	}
	_, err = s.UpdateAPIKey(ctx, "k-1", func(k *store.APIKey) error {
		k.PublicKey = "pub-k-2"
		return nil
	})
	is(t, "UpdateAPIKey to a taken public key", err, store.ErrAlreadyExists)
	equal(t, "after refused updates", getAPIKey(t, s, "k-1"), sparse)
	_, err = s.GetAPIKey(ctx, "k-3")
	is(t, "renamed ID", err, store.ErrNotFound)
}

// testAPIKeyUpdateConcurrent: concurrent updaters of one key are
// serialised; none is lost.
func testAPIKeyUpdateConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	k := apiKey("k-1", "acc-1", 0)
	k.Name = ""
	mkAPIKey(t, s, k)
	errs := race(concurrency, func(i int) error {
		_, err := s.UpdateAPIKey(ctx, "k-1", func(k *store.APIKey) error {
			k.Name += string(rune('a' + i))
			k.NonceWindow++
			return nil
		})
		return err
	})
	for i, err := range errs {
		must(t, fmt.Sprint("UpdateAPIKey #", i), err)
	}
	got := getAPIKey(t, s, "k-1")
	if len(got.Name) != concurrency || got.NonceWindow != concurrency {
		t.Fatalf("after %d concurrent updates: Name = %q, NonceWindow = %d: lost updates", concurrency, got.Name, got.NonceWindow)
	}
	for i := range concurrency {
		if !strings.ContainsRune(got.Name, rune('a'+i)) {
			t.Errorf("update %d lost: Name = %q", i, got.Name)
		}
	}
}

func testAPIKeyTouch(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	want := apiKey("k-1", "acc-1", 0)
	mkAPIKey(t, s, want)
	touch := func(d time.Duration, ip string) {
		t.Helper()
		must(t, "TouchAPIKey", s.TouchAPIKey(ctx, "k-1", at(d).In(elsewhere), ip))
	}

	touch(time.Hour, "198.51.100.1") // first use
	want.LastUsedAt, want.LastUsedIP = at(time.Hour), "198.51.100.1"
	equal(t, "first use", getAPIKey(t, s, "k-1"), want)

	touch(30*time.Minute, "198.51.100.2") // a late report of an older use
	equal(t, "older report", getAPIKey(t, s, "k-1"), want)
	touch(time.Hour, "198.51.100.3") // the same instant is not newer
	equal(t, "same-time report", getAPIKey(t, s, "k-1"), want)
	must(t, "TouchAPIKey zero time", s.TouchAPIKey(ctx, "k-1", time.Time{}, "198.51.100.4"))
	equal(t, "zero-time report", getAPIKey(t, s, "k-1"), want)

	touch(time.Hour+time.Microsecond, "2001:db8::9")
	want.LastUsedAt, want.LastUsedIP = at(time.Hour+time.Microsecond), "2001:db8::9"
	equal(t, "newer report", getAPIKey(t, s, "k-1"), want)

	// Touch changes nothing else, even on a deleted key.
	full := fullAPIKey("k-full", "acc-1")
	mkAPIKey(t, s, full)
	must(t, "TouchAPIKey", s.TouchAPIKey(ctx, "k-full", at(5*time.Hour), "192.0.2.1"))
	full.LastUsedAt, full.LastUsedIP = at(5*time.Hour), "192.0.2.1"
	equal(t, "touched full key", getAPIKey(t, s, "k-full"), full)
}

// testAPIKeyTouchConcurrent: reports arriving at once, in any order, leave
// the newest.
func testAPIKeyTouchConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAPIKey(t, s, apiKey("k-1", "acc-1", 0))
	newest := concurrency / 2
	errs := race(concurrency, func(i int) error {
		d := time.Duration(i) * time.Second
		if i > newest {
			d = time.Duration(concurrency-i) * time.Second
		}
		return s.TouchAPIKey(ctx, "k-1", at(d), fmt.Sprint("192.0.2.", i))
	})
	for i, err := range errs {
		must(t, fmt.Sprint("TouchAPIKey #", i), err)
	}
	got := getAPIKey(t, s, "k-1")
	if !got.LastUsedAt.Equal(at(time.Duration(newest)*time.Second)) || got.LastUsedIP != fmt.Sprint("192.0.2.", newest) {
		t.Fatalf("after concurrent reports: last used %v from %s, want %v from 192.0.2.%d",
			got.LastUsedAt, got.LastUsedIP, at(time.Duration(newest)*time.Second), newest)
	}
}

func testAPIKeyNeedsAccount(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		create func(q store.Queries, accountID string) error
	}{
		{"API key", func(q store.Queries, accountID string) error {
			return q.CreateAPIKey(ctx, apiKey("k-"+accountID, accountID, 0))
		}},
		{"sandbox book", func(q store.Queries, accountID string) error {
			return q.UpdateSandboxBook(ctx, accountID, func([]byte) ([]byte, error) { return []byte("{}"), nil })
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

// testAPIKeyInTx: API key writes join the transaction, conflicts inside it
// are answers, and a rollback undoes them.
func testAPIKeyInTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAPIKey(t, s, apiKey("k-1", "acc-1", 0))
	mkAPIKey(t, s, apiKey("k-2", "acc-1", 0))

	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx store.Queries) error {
		mkAPIKey(t, tx, apiKey("k-3", "acc-1", 0))
		_, err := tx.UpdateAPIKey(ctx, "k-1", func(k *store.APIKey) error {
			k.DeletedAt = at(time.Hour)
			return nil
		})
		must(t, "UpdateAPIKey", err)
		must(t, "TouchAPIKey", tx.TouchAPIKey(ctx, "k-2", at(time.Hour), "192.0.2.1"))
		return boom
	})
	if err != boom {
		t.Fatalf("InTx returned %v, want fn's error unchanged", err)
	}
	_, err = s.GetAPIKey(ctx, "k-3")
	is(t, "key created in a rolled-back transaction", err, store.ErrNotFound)
	equal(t, "k-1 after rollback", getAPIKey(t, s, "k-1"), apiKey("k-1", "acc-1", 0))
	equal(t, "k-2 after rollback", getAPIKey(t, s, "k-2"), apiKey("k-2", "acc-1", 0))

	err = s.InTx(ctx, func(tx store.Queries) error {
		is(t, "CreateAPIKey (taken ID)", tx.CreateAPIKey(ctx, apiKey("k-1", "acc-1", time.Second)), store.ErrAlreadyExists)
		dup := apiKey("k-4", "acc-1", 0)
		dup.PublicKey = "pub-k-2"
		is(t, "CreateAPIKey (taken public key)", tx.CreateAPIKey(ctx, dup), store.ErrAlreadyExists)
		_, err := tx.UpdateAPIKey(ctx, "k-1", func(k *store.APIKey) error {
			k.PublicKey = "pub-k-2"
			return nil
		})
		is(t, "UpdateAPIKey (taken public key)", err, store.ErrAlreadyExists)
		is(t, "TouchAPIKey (missing)", tx.TouchAPIKey(ctx, "k-9", t0, ""), store.ErrNotFound)
		mkAPIKey(t, tx, apiKey("k-5", "acc-1", 0))
		_, err = tx.UpdateAPIKey(ctx, "k-5", func(k *store.APIKey) error {
			k.Name = "renamed in the transaction"
			return nil
		})
		must(t, "UpdateAPIKey", err)
		keys, err := tx.ListAPIKeys(ctx, "acc-1")
		must(t, "tx.ListAPIKeys", err)
		if !slices.Contains(apiKeyIDs(keys), "k-5") {
			t.Errorf("the transaction does not list its own key: %v", apiKeyIDs(keys))
		}
		return nil
	})
	must(t, "InTx after conflicts", err)
	if got := getAPIKey(t, s, "k-5"); got.Name != "renamed in the transaction" {
		t.Errorf("k-5 name = %q", got.Name)
	}
	equal(t, "k-1 after the conflicts", getAPIKey(t, s, "k-1"), apiKey("k-1", "acc-1", 0))
}

func getBook(t *testing.T, q store.Queries, accountID string) []byte {
	t.Helper()
	b, err := q.GetSandboxBook(context.Background(), accountID)
	must(t, "GetSandboxBook "+accountID, err)
	return b
}

func testSandboxBookUpdate(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	_, err := s.GetSandboxBook(ctx, "acc-1")
	is(t, "no book yet", err, store.ErrNotFound)

	refuse := errors.New("insufficient funds")
	err = s.UpdateSandboxBook(ctx, "acc-1", func(old []byte) ([]byte, error) { return []byte("x"), refuse })
	if err != refuse {
		t.Fatalf("UpdateSandboxBook returned %v, want fn's error unchanged", err)
	}
	_, err = s.GetSandboxBook(ctx, "acc-1")
	is(t, "after a refused first update", err, store.ErrNotFound)

	first := []byte(`{"balances":{"ZUSD":"10000.0000"}}` + "\x00\xff")
	must(t, "UpdateSandboxBook (create)", s.UpdateSandboxBook(ctx, "acc-1", func(old []byte) ([]byte, error) {
		if old != nil {
			t.Errorf("old = %q, want nil for a missing book", old)
		}
		return first, nil
	}))
	equal(t, "created", getBook(t, s, "acc-1"), first)

	second := []byte(`{"balances":{"ZUSD":"9000.0000"}}`)
	must(t, "UpdateSandboxBook", s.UpdateSandboxBook(ctx, "acc-1", func(old []byte) ([]byte, error) {
		equal(t, "fn sees", old, first)
		return second, nil
	}))
	equal(t, "updated", getBook(t, s, "acc-1"), second)
	err = s.UpdateSandboxBook(ctx, "acc-1", func(old []byte) ([]byte, error) { return []byte("lost"), refuse })
	if err != refuse {
		t.Fatalf("UpdateSandboxBook returned %v, want fn's error unchanged", err)
	}
	equal(t, "after a refused update", getBook(t, s, "acc-1"), second)

	// An empty book exists, and is not nil.
	must(t, "UpdateSandboxBook (empty)", s.UpdateSandboxBook(ctx, "acc-2", func([]byte) ([]byte, error) { return nil, nil }))
	equal(t, "empty book", getBook(t, s, "acc-2"), []byte{})
	must(t, "UpdateSandboxBook", s.UpdateSandboxBook(ctx, "acc-2", func(old []byte) ([]byte, error) {
		if old == nil || len(old) != 0 {
			t.Errorf("old = %#v, want an empty, non-nil book", old)
		}
		return []byte("two"), nil
	}))
	equal(t, "acc-1 untouched by acc-2", getBook(t, s, "acc-1"), second)
}

// testSandboxBookConcurrent: concurrent updaters of one book, first while
// it does not exist yet (they race to create it; several fresh accounts, as
// the window is narrow) and then while it does, are serialised: every
// update is kept.
func testSandboxBookConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const fresh = 8
	for a := range fresh {
		mkAccount(t, s, fmt.Sprint("acc-", a), fmt.Sprintf("a%d@example.com", a))
	}
	check := func(what, accountID string, rounds int) {
		t.Helper()
		got := getBook(t, s, accountID)
		if len(got) != rounds*concurrency {
			t.Fatalf("%s: book %q after %d updates in all: lost updates", what, got, rounds*concurrency)
		}
		for i := range concurrency {
			if n := bytes.Count(got, []byte{byte('a' + i)}); n != rounds {
				t.Errorf("%s: update %d appears %d times in %q", what, i, n, got)
			}
		}
	}
	update := func(accountID string) []error {
		return race(concurrency, func(i int) error {
			return s.UpdateSandboxBook(ctx, accountID, func(old []byte) ([]byte, error) {
				return append(slices.Clone(old), byte('a'+i)), nil
			})
		})
	}
	for a := range fresh {
		id := fmt.Sprint("acc-", a)
		for i, err := range update(id) {
			must(t, fmt.Sprintf("creating %s: UpdateSandboxBook #%d", id, i), err)
		}
		check("created concurrently", id, 1)
	}
	for i, err := range update("acc-0") {
		must(t, fmt.Sprint("UpdateSandboxBook #", i), err)
	}
	check("updated concurrently", "acc-0", 2)
}

func testSandboxBookInTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx store.Queries) error {
		must(t, "UpdateSandboxBook", tx.UpdateSandboxBook(ctx, "acc-1", func([]byte) ([]byte, error) { return []byte("v1"), nil }))
		equal(t, "the transaction reads its book", getBook(t, tx, "acc-1"), []byte("v1"))
		return boom
	})
	if err != boom {
		t.Fatalf("InTx returned %v, want fn's error unchanged", err)
	}
	_, err = s.GetSandboxBook(ctx, "acc-1")
	is(t, "book written in a rolled-back transaction", err, store.ErrNotFound)

	// A refused update inside a transaction leaves it usable.
	err = s.InTx(ctx, func(tx store.Queries) error {
		err := tx.UpdateSandboxBook(ctx, "acc-1", func([]byte) ([]byte, error) { return nil, boom })
		if err != boom {
			t.Errorf("UpdateSandboxBook returned %v, want fn's error unchanged", err)
		}
		return tx.UpdateSandboxBook(ctx, "acc-1", func(old []byte) ([]byte, error) {
			if old != nil {
				t.Errorf("old = %q after a refused creation, want nil", old)
			}
			return []byte("v2"), nil
		})
	})
	must(t, "InTx", err)
	equal(t, "committed", getBook(t, s, "acc-1"), []byte("v2"))
}

// CheckSecretsNotInDump proves that API secrets are encrypted at rest. It
// writes an API key to s the way the service does (secret sealed with a
// secrets.Box, key password as a keyed hash), rotates it (so the old
// secret is stored too) and records its use, then asks dump for every
// byte the database holds (a backend reads its file, or selects every text
// and binary column) and fails if a secret or the password appears in it:
// raw, in base64 (the form its owner copies) or in hex.
//
// To show that dump does see the data, the public key, the account's
// e-mail and the sealed secret must appear in it.
func CheckSecretsNotInDump(t *testing.T, s store.Store, dump func(t *testing.T) []byte) {
	t.Helper()
	ctx := context.Background()
	key := make([]byte, secrets.KeySize)
	secret := make([]byte, 64)
	oldSecret := make([]byte, 64)
	for _, b := range [][]byte{key, secret, oldSecret} {
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
	}
	const password = "otp-password-Zq8!"
	box, err := secrets.NewBox(key, rand.Reader)
	must(t, "NewBox", err)
	seal := func(id string, secret []byte) []byte {
		b, err := box.Seal(secret, "apikey:"+id)
		must(t, "Seal", err)
		return b
	}

	mkAccount(t, s, "acc-dump", "dump-owner@example.com")
	k := apiKey("k-dump", "acc-dump", 0)
	k.PublicKey = base64.StdEncoding.EncodeToString(hash("public key")[:30])
	k.SecretSealed = seal(k.ID, oldSecret)
	k.PasswordHash = secrets.KeyedHash([]byte("pepper"), "apikey-password\x00"+k.ID+"\x00"+password)
	mkAPIKey(t, s, k)
	var sealed []byte
	_, err = s.UpdateAPIKey(ctx, k.ID, func(k *store.APIKey) error {
		k.OldSecretSealed = k.SecretSealed
		k.SecretSealed = seal(k.ID, secret)
		sealed = k.SecretSealed
		k.RotatedAt, k.OldSecretValidUntil = at(time.Minute), at(time.Hour)
		return nil
	})
	must(t, "UpdateAPIKey (rotate)", err)
	must(t, "TouchAPIKey", s.TouchAPIKey(ctx, k.ID, at(2*time.Minute), "192.0.2.7"))
	must(t, "UpdateSandboxBook", s.UpdateSandboxBook(ctx, "acc-dump", func([]byte) ([]byte, error) {
		return []byte(`{"balances":{"ZUSD":"1.0"}}`), nil
	}))

	all := dump(t)
	for what, v := range map[string][]byte{
		"public key":    []byte(k.PublicKey),
		"e-mail":        []byte("dump-owner@example.com"),
		"sealed secret": sealed,
	} {
		if !bytes.Contains(all, v) {
			t.Fatalf("the dump (%d bytes) does not contain the %s: it cannot prove anything", len(all), what)
		}
	}
	for what, v := range map[string][]byte{"secret": secret, "old secret": oldSecret} {
		for form, enc := range map[string]string{
			"raw":        string(v),
			"base64":     base64.StdEncoding.EncodeToString(v),
			"base64 raw": base64.RawStdEncoding.EncodeToString(v),
			"base64 URL": base64.RawURLEncoding.EncodeToString(v),
			"hex":        hex.EncodeToString(v),
			"HEX":        strings.ToUpper(hex.EncodeToString(v)),
		} {
			// A 16-byte stretch is as good as the whole: nobody should
			// find part of a secret either.
			for _, part := range []string{enc, enc[:16], enc[len(enc)-16:]} {
				if bytes.Contains(all, []byte(part)) {
					t.Errorf("the database holds the %s (%s form) in plain text", what, form)
				}
			}
		}
	}
	if bytes.Contains(all, []byte(password)) {
		t.Error("the database holds the key password in plain text")
	}
}
