package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

// mfaTests are the second-factor cases of Run (store.MFAQueries).
func mfaTests() []struct {
	name string
	fn   func(t *testing.T, s store.Store)
} {
	return []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"MFA/TOTP/RoundTrip", testTOTPRoundTrip},
		{"MFA/TOTP/OnePerAccount", testTOTPOnePerAccount},
		{"MFA/TOTP/NotFound", testTOTPNotFound},
		{"MFA/TOTP/Update", testTOTPUpdate},
		{"MFA/TOTP/ReplayConcurrent", testTOTPReplayConcurrent},
		{"MFA/TOTP/UpdateConcurrent", testTOTPUpdateConcurrent},

		{"MFA/BackupCodes/SpendAndCount", testBackupSpend},
		{"MFA/BackupCodes/SpendConcurrent", testBackupSpendConcurrent},
		{"MFA/BackupCodes/Replace", testBackupReplace},
		{"MFA/BackupCodes/ReplaceRefusesDuplicates", testBackupReplaceDuplicates},
		{"MFA/BackupCodes/ReplaceConcurrent", testBackupReplaceConcurrent},

		{"MFA/SMS/Phone", testSMSPhone},
		{"MFA/SMS/PutCode", testSMSPutCode},
		{"MFA/SMS/UpdateCode", testSMSUpdateCode},
		{"MFA/SMS/UpdateCodeConcurrent", testSMSUpdateCodeConcurrent},
		{"MFA/SMS/DeletePhoneDeletesCode", testSMSDeletePhone},

		{"MFA/WebAuthn/RoundTrip", testKeyRoundTrip},
		{"MFA/WebAuthn/Duplicate", testKeyDuplicate},
		{"MFA/WebAuthn/List", testKeyList},
		{"MFA/WebAuthn/Update", testKeyUpdate},
		{"MFA/WebAuthn/UpdateCounterConcurrent", testKeyCounterConcurrent},
		{"MFA/WebAuthn/Delete", testKeyDelete},

		{"MFA/Ceremony/Take", testCeremonyTake},
		{"MFA/Ceremony/TakeConcurrent", testCeremonyTakeConcurrent},
		{"MFA/Ceremony/DeleteExpired", testCeremonyDeleteExpired},

		{"MFA/Settings/CreateOnUpdate", testSettingsCreate},
		{"MFA/Settings/FailedCreateLeavesNothing", testSettingsFailedCreate},
		{"MFA/Settings/UpdateConcurrent", testSettingsConcurrent},
		{"MFA/Settings/SerialisesFactorChanges", testSettingsSerialise},

		{"MFA/RecordsNeedAccount", testMFANeedsAccount},
		{"MFA/Rollback", testMFARollback},
	}
}

var errStop = errors.New("storetest: fn refused")

// Authenticator apps.

func fullTOTP(accountID string) store.TOTPCredential {
	return store.TOTPCredential{
		AccountID:    accountID,
		Secret:       []byte("sealed seed for " + accountID),
		ConfirmedAt:  at(time.Minute),
		LastUsedStep: 63_592_650_000, // beyond 32 bits
		CreatedAt:    t0,
		LastUsedAt:   at(2 * time.Minute),
	}
}

func getTOTP(t *testing.T, q store.Queries, accountID string) store.TOTPCredential {
	t.Helper()
	c, err := q.GetTOTP(context.Background(), accountID)
	must(t, "GetTOTP "+accountID, err)
	return c
}

func testTOTPRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	zoned := fullTOTP("acc-zoned")
	zoned.CreatedAt, zoned.LastUsedAt = zoned.CreatedAt.In(elsewhere), zoned.LastUsedAt.In(elsewhere)
	for _, tc := range []struct {
		name       string
		give, want store.TOTPCredential
	}{
		{"every field", fullTOTP("acc-full"), fullTOTP("acc-full")},
		// A pending enrolment: nothing confirmed or used yet.
		{"pending", store.TOTPCredential{AccountID: "acc-pending", Secret: []byte{0, 1, 2}},
			store.TOTPCredential{AccountID: "acc-pending", Secret: []byte{0, 1, 2}}},
		{"zoned", zoned, fullTOTP("acc-zoned")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mkAccount(t, s, tc.give.AccountID, tc.give.AccountID+"@example.com")
			must(t, "CreateTOTP", s.CreateTOTP(ctx, tc.give))
			equal(t, "TOTP credential", getTOTP(t, s, tc.give.AccountID), tc.want)
		})
	}
}

func testTOTPOnePerAccount(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	first := fullTOTP("acc-1")
	must(t, "CreateTOTP", s.CreateTOTP(ctx, first))
	second := store.TOTPCredential{AccountID: "acc-1", Secret: []byte("another seed"), CreatedAt: at(time.Hour)}
	is(t, "second app", s.CreateTOTP(ctx, second), store.ErrAlreadyExists)
	equal(t, "first app kept", getTOTP(t, s, "acc-1"), first)
	// Inside a transaction the refusal is an answer: the transaction goes on.
	must(t, "InTx", s.InTx(ctx, func(tx store.Queries) error {
		is(t, "second app in tx", tx.CreateTOTP(ctx, second), store.ErrAlreadyExists)
		_, err := tx.UpdateTOTP(ctx, "acc-1", func(c *store.TOTPCredential) error {
			c.LastUsedStep++
			return nil
		})
		return err
	}))
	if got := getTOTP(t, s, "acc-1"); got.LastUsedStep != first.LastUsedStep+1 || string(got.Secret) != string(first.Secret) {
		t.Errorf("after the transaction: %+v", got)
	}
}

func testTOTPNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	_, err := s.GetTOTP(ctx, "acc-1")
	is(t, "GetTOTP", err, store.ErrNotFound)
	_, err = s.UpdateTOTP(ctx, "acc-1", func(*store.TOTPCredential) error {
		t.Error("fn called for a missing credential")
		return nil
	})
	is(t, "UpdateTOTP", err, store.ErrNotFound)
	is(t, "DeleteTOTP", s.DeleteTOTP(ctx, "acc-1"), store.ErrNotFound)

	must(t, "CreateTOTP", s.CreateTOTP(ctx, fullTOTP("acc-1")))
	must(t, "DeleteTOTP", s.DeleteTOTP(ctx, "acc-1"))
	_, err = s.GetTOTP(ctx, "acc-1")
	is(t, "GetTOTP after delete", err, store.ErrNotFound)
	is(t, "DeleteTOTP again", s.DeleteTOTP(ctx, "acc-1"), store.ErrNotFound)
	// Deleted, the account may enrol again.
	must(t, "CreateTOTP again", s.CreateTOTP(ctx, fullTOTP("acc-1")))
}

func testTOTPUpdate(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	pending := store.TOTPCredential{AccountID: "acc-1", Secret: []byte("seed"), CreatedAt: t0}
	must(t, "CreateTOTP", s.CreateTOTP(ctx, pending))

	var seen store.TOTPCredential
	got, err := s.UpdateTOTP(ctx, "acc-1", func(c *store.TOTPCredential) error {
		seen = *c
		c.ConfirmedAt = at(time.Minute).In(elsewhere)
		c.LastUsedStep = 42
		c.LastUsedAt = at(time.Minute)
		return nil
	})
	must(t, "UpdateTOTP", err)
	equal(t, "fn's view", seen, pending)
	want := pending
	want.ConfirmedAt, want.LastUsedStep, want.LastUsedAt = at(time.Minute), 42, at(time.Minute)
	equal(t, "returned", got, want)
	equal(t, "stored", getTOTP(t, s, "acc-1"), want)

	// fn's error comes back unchanged and nothing is written.
	_, err = s.UpdateTOTP(ctx, "acc-1", func(c *store.TOTPCredential) error {
		c.LastUsedStep = 1000
		return errStop
	})
	if err != errStop {
		t.Fatalf("UpdateTOTP returned %v, want fn's error unchanged", err)
	}
	equal(t, "after a refused update", getTOTP(t, s, "acc-1"), want)

	// The account is the key: fn may not move the credential.
	mkAccount(t, s, "acc-2", "two@example.com")
	_, err = s.UpdateTOTP(ctx, "acc-1", func(c *store.TOTPCredential) error {
		c.AccountID = "acc-2"
		return nil
	})
	if err == nil {
		t.Fatal("UpdateTOTP moved the credential to another account")
	}
	equal(t, "after a refused move", getTOTP(t, s, "acc-1"), want)
	_, err = s.GetTOTP(ctx, "acc-2")
	is(t, "other account", err, store.ErrNotFound)
}

// acceptStep is the replay guard internal/mfa puts in UpdateTOTP's fn: a
// step at or below the last accepted one is refused.
func acceptStep(step int64) func(c *store.TOTPCredential) error {
	return func(c *store.TOTPCredential) error {
		if step <= c.LastUsedStep {
			return errStop
		}
		c.LastUsedStep = step
		return nil
	}
}

// testTOTPReplayConcurrent: many requests with the same code (time step)
// at once; exactly one is accepted. Several rounds, each with the next step,
// give an unserialised store several chances to let two through.
func testTOTPReplayConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	c := fullTOTP("acc-1")
	c.LastUsedStep = 100
	must(t, "CreateTOTP", s.CreateTOTP(ctx, c))
	const rounds = 5
	for step := int64(101); step <= 100+rounds; step++ {
		errs := race(concurrency, func(int) error {
			_, err := s.UpdateTOTP(ctx, "acc-1", acceptStep(step))
			return err
		})
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case err == errStop:
			default:
				t.Errorf("step %d, updater %d: %v", step, i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d of %d concurrent uses of time step %d succeeded, want exactly 1", wins, concurrency, step)
		}
		if got := getTOTP(t, s, "acc-1").LastUsedStep; got != step {
			t.Fatalf("LastUsedStep = %d, want %d", got, step)
		}
	}
	// Sequentially, too: the step (and any earlier one) stays used.
	for _, step := range []int64{100 + rounds, 101, 50} {
		_, err := s.UpdateTOTP(ctx, "acc-1", acceptStep(step))
		if err != errStop {
			t.Errorf("replay of step %d: %v, want refusal", step, err)
		}
	}
}

// testTOTPUpdateConcurrent: concurrent updaters are serialised, so none of
// their increments is lost.
func testTOTPUpdateConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	must(t, "CreateTOTP", s.CreateTOTP(ctx, store.TOTPCredential{AccountID: "acc-1", Secret: []byte("seed")}))
	for i, err := range race(concurrency, func(int) error {
		_, err := s.UpdateTOTP(ctx, "acc-1", func(c *store.TOTPCredential) error {
			c.LastUsedStep++
			return nil
		})
		return err
	}) {
		if err != nil {
			t.Errorf("updater %d: %v", i, err)
		}
	}
	if got := getTOTP(t, s, "acc-1").LastUsedStep; got != concurrency {
		t.Fatalf("LastUsedStep = %d after %d concurrent increments", got, concurrency)
	}
}

// Backup codes.

// codeSet returns n backup codes named prefix-0, prefix-1, ...
func codeSet(prefix string, n int) []store.BackupCode {
	out := make([]store.BackupCode, n)
	for i := range out {
		out[i] = store.BackupCode{Hash: hash(fmt.Sprint(prefix, "-", i)), CreatedAt: t0}
	}
	return out
}

func countCodes(t *testing.T, q store.Queries, accountID string) int {
	t.Helper()
	n, err := q.CountBackupCodes(context.Background(), accountID)
	must(t, "CountBackupCodes", err)
	return n
}

func testBackupSpend(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	if n := countCodes(t, s, "acc-1"); n != 0 {
		t.Fatalf("%d codes before any were made", n)
	}
	must(t, "ReplaceBackupCodes", s.ReplaceBackupCodes(ctx, "acc-1", codeSet("a", 10)))
	// The same code value may exist for another account: codes are per
	// account.
	must(t, "ReplaceBackupCodes acc-2", s.ReplaceBackupCodes(ctx, "acc-2",
		append(codeSet("a", 3), store.BackupCode{Hash: hash("b-0")})))
	if n := countCodes(t, s, "acc-1"); n != 10 {
		t.Fatalf("CountBackupCodes = %d, want 10", n)
	}

	must(t, "SpendBackupCode", s.SpendBackupCode(ctx, "acc-1", hash("a-1"), at(time.Minute)))
	is(t, "spent again", s.SpendBackupCode(ctx, "acc-1", hash("a-1"), at(2*time.Minute)), store.ErrTokenUsed)
	is(t, "unknown hash", s.SpendBackupCode(ctx, "acc-1", hash("a-99"), t0), store.ErrNotFound)
	is(t, "hash prefix", s.SpendBackupCode(ctx, "acc-1", hash("a-4")[:16], t0), store.ErrNotFound)
	is(t, "other account's code", s.SpendBackupCode(ctx, "acc-1", hash("b-0"), t0), store.ErrNotFound)
	is(t, "unknown account", s.SpendBackupCode(ctx, "acc-9", hash("a-4"), t0), store.ErrNotFound)
	if n := countCodes(t, s, "acc-1"); n != 9 {
		t.Errorf("CountBackupCodes = %d after one spend, want 9", n)
	}
	// acc-2's copy of a-1 is its own and still unused.
	must(t, "SpendBackupCode acc-2", s.SpendBackupCode(ctx, "acc-2", hash("a-1"), t0))
	if n := countCodes(t, s, "acc-2"); n != 3 {
		t.Errorf("acc-2 has %d codes, want 3", n)
	}
	// Inside a transaction the refusals are answers, not failures.
	must(t, "InTx", s.InTx(ctx, func(tx store.Queries) error {
		is(t, "spent again in tx", tx.SpendBackupCode(ctx, "acc-1", hash("a-1"), t0), store.ErrTokenUsed)
		is(t, "unknown in tx", tx.SpendBackupCode(ctx, "acc-1", hash("zzz"), t0), store.ErrNotFound)
		return tx.SpendBackupCode(ctx, "acc-1", hash("a-4"), t0)
	}))
	if n := countCodes(t, s, "acc-1"); n != 8 {
		t.Errorf("CountBackupCodes = %d, want 8", n)
	}
}

// testBackupSpendConcurrent: one code, many simultaneous spenders; exactly
// one wins and the others are told it was used.
func testBackupSpendConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	must(t, "ReplaceBackupCodes", s.ReplaceBackupCodes(ctx, "acc-1", codeSet("a", 10)))
	errs := race(concurrency, func(int) error {
		return s.SpendBackupCode(ctx, "acc-1", hash("a-0"), t0)
	})
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, store.ErrTokenUsed):
		default:
			t.Errorf("spender %d: %v", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent spends of one code succeeded, want exactly 1", wins, concurrency)
	}
	if n := countCodes(t, s, "acc-1"); n != 9 {
		t.Errorf("CountBackupCodes = %d, want 9", n)
	}
}

// testBackupReplace: a new set voids the old one, used codes included, and
// leaves other accounts alone.
func testBackupReplace(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	must(t, "ReplaceBackupCodes", s.ReplaceBackupCodes(ctx, "acc-1", codeSet("old", 10)))
	must(t, "ReplaceBackupCodes acc-2", s.ReplaceBackupCodes(ctx, "acc-2", codeSet("other", 10)))
	must(t, "SpendBackupCode", s.SpendBackupCode(ctx, "acc-1", hash("old-0"), t0))

	// The new set may even reuse a value of the old one (here old-0, used):
	// it comes back unused.
	next := append(codeSet("new", 4), store.BackupCode{Hash: hash("old-0"), CreatedAt: at(time.Hour)})
	must(t, "ReplaceBackupCodes", s.ReplaceBackupCodes(ctx, "acc-1", next))
	if n := countCodes(t, s, "acc-1"); n != 5 {
		t.Fatalf("CountBackupCodes = %d after replacing, want 5", n)
	}
	for _, name := range []string{"old-1", "old-9"} {
		is(t, "old unused code "+name, s.SpendBackupCode(ctx, "acc-1", hash(name), t0), store.ErrNotFound)
	}
	must(t, "reissued value", s.SpendBackupCode(ctx, "acc-1", hash("old-0"), t0))
	must(t, "new code", s.SpendBackupCode(ctx, "acc-1", hash("new-2"), t0))
	if n := countCodes(t, s, "acc-2"); n != 10 {
		t.Errorf("acc-2 has %d codes after acc-1's replacement, want 10", n)
	}

	// Codes are stored for the account named in the call.
	must(t, "ReplaceBackupCodes with a wrong AccountID", s.ReplaceBackupCodes(ctx, "acc-1",
		[]store.BackupCode{{AccountID: "acc-2", Hash: hash("x"), CreatedAt: t0}}))
	if n := countCodes(t, s, "acc-1"); n != 1 {
		t.Errorf("acc-1 has %d codes, want 1", n)
	}
	if n := countCodes(t, s, "acc-2"); n != 10 {
		t.Errorf("acc-2 has %d codes, want 10", n)
	}

	// An empty set just deletes, used codes too.
	must(t, "SpendBackupCode x", s.SpendBackupCode(ctx, "acc-1", hash("x"), t0))
	must(t, "ReplaceBackupCodes empty", s.ReplaceBackupCodes(ctx, "acc-1", nil))
	is(t, "used code after clearing", s.SpendBackupCode(ctx, "acc-1", hash("x"), t0), store.ErrNotFound)
	if n := countCodes(t, s, "acc-1"); n != 0 {
		t.Errorf("%d codes after clearing", n)
	}

	// In a transaction that rolls back, the old set stays.
	must(t, "ReplaceBackupCodes", s.ReplaceBackupCodes(ctx, "acc-1", codeSet("kept", 3)))
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx store.Queries) error {
		must(t, "ReplaceBackupCodes in tx", tx.ReplaceBackupCodes(ctx, "acc-1", codeSet("lost", 7)))
		if n := countCodes(t, tx, "acc-1"); n != 7 {
			t.Errorf("the transaction sees %d codes, want its 7", n)
		}
		return boom
	})
	if err != boom {
		t.Fatalf("InTx: %v", err)
	}
	if n := countCodes(t, s, "acc-1"); n != 3 {
		t.Errorf("%d codes after a rolled-back replacement, want the 3 before it", n)
	}
	must(t, "old set still works", s.SpendBackupCode(ctx, "acc-1", hash("kept-1"), t0))
}

// testBackupReplaceDuplicates: a set with a repeated code is refused as a
// whole, also inside a transaction that then goes on.
func testBackupReplaceDuplicates(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	must(t, "ReplaceBackupCodes", s.ReplaceBackupCodes(ctx, "acc-1", codeSet("old", 3)))
	bad := append(codeSet("new", 3), codeSet("new", 1)...)
	is(t, "duplicate", s.ReplaceBackupCodes(ctx, "acc-1", bad), store.ErrAlreadyExists)
	must(t, "InTx", s.InTx(ctx, func(tx store.Queries) error {
		is(t, "duplicate in tx", tx.ReplaceBackupCodes(ctx, "acc-1", bad), store.ErrAlreadyExists)
		return tx.SpendBackupCode(ctx, "acc-1", hash("old-0"), t0)
	}))
	if n := countCodes(t, s, "acc-1"); n != 2 {
		t.Errorf("%d codes, want the old set minus one spent", n)
	}
	is(t, "new code", s.SpendBackupCode(ctx, "acc-1", hash("new-0"), t0), store.ErrNotFound)
}

// testBackupReplaceConcurrent: replacements racing each other and readers
// counting meanwhile, for a few rounds. Each replacement is all or nothing
// and they do not interleave, so readers always count a whole set and each
// round ends with exactly one of the sets.
func testBackupReplaceConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	const size, rounds = 5, 3
	must(t, "ReplaceBackupCodes", s.ReplaceBackupCodes(ctx, "acc-1", codeSet("initial", size)))
	for round := range rounds {
		name := func(i int) string { return fmt.Sprint("round", round, "-set", i) }
		for i, err := range race(concurrency, func(i int) error {
			if i%2 == 0 {
				return s.ReplaceBackupCodes(ctx, "acc-1", codeSet(name(i), size))
			}
			n, err := s.CountBackupCodes(ctx, "acc-1")
			if err == nil && n != size {
				err = fmt.Errorf("counted %d codes in the middle of a replacement, want %d", n, size)
			}
			return err
		}) {
			if err != nil {
				t.Errorf("round %d, goroutine %d: %v", round, i, err)
			}
		}
		if n := countCodes(t, s, "acc-1"); n != size {
			t.Fatalf("round %d: %d codes after concurrent replacements of %d", round, n, size)
		}
		// Find which set won; all of its codes, and only those, are there.
		winner := -1
		for i := 0; i < concurrency; i += 2 {
			err := s.SpendBackupCode(ctx, "acc-1", hash(name(i)+"-0"), t0)
			if err == nil {
				if winner >= 0 {
					t.Fatalf("round %d: codes of set %d and set %d are both present", round, winner, i)
				}
				winner = i
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Fatal(err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no set survived the concurrent replacements", round)
		}
		for j := 1; j < size; j++ {
			must(t, "code of the winning set", s.SpendBackupCode(ctx, "acc-1", hash(fmt.Sprint(name(winner), "-", j)), t0))
		}
		if n := countCodes(t, s, "acc-1"); n != 0 {
			t.Fatalf("round %d: %d codes left beyond the winning set", round, n)
		}
		// A whole unused set again for the next round's readers.
		must(t, "ReplaceBackupCodes", s.ReplaceBackupCodes(ctx, "acc-1", codeSet(fmt.Sprint("after", round), size)))
	}
}

// SMS.

func fullPhone(accountID string) store.SMSPhone {
	return store.SMSPhone{
		AccountID:  accountID,
		Number:     "+442079460958",
		VerifiedAt: at(time.Minute),
		CreatedAt:  t0,
		LastUsedAt: at(time.Hour),
	}
}

func fullSMSCode(accountID string) store.SMSCode {
	return store.SMSCode{
		AccountID: accountID,
		Purpose:   store.SMSPurposeVerify,
		Number:    "+442079460958",
		CodeHash:  hash("code for " + accountID),
		Attempts:  2,
		CreatedAt: t0,
		ExpiresAt: at(5 * time.Minute),
		UsedAt:    at(time.Minute),
	}
}

// getSMSCode reads the account's code (there is no getter: UpdateSMSCode
// with a refusing fn shows it).
func getSMSCode(t *testing.T, q store.Queries, accountID string) (store.SMSCode, error) {
	t.Helper()
	var c store.SMSCode
	_, err := q.UpdateSMSCode(context.Background(), accountID, func(x *store.SMSCode) error {
		c = *x
		return errStop
	})
	if err == errStop {
		return c, nil
	}
	return c, err
}

func testSMSPhone(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	_, err := s.GetSMSPhone(ctx, "acc-1")
	is(t, "GetSMSPhone before", err, store.ErrNotFound)
	_, err = s.UpdateSMSPhone(ctx, "acc-1", func(*store.SMSPhone) error { return nil })
	is(t, "UpdateSMSPhone before", err, store.ErrNotFound)
	is(t, "DeleteSMSPhone before", s.DeleteSMSPhone(ctx, "acc-1"), store.ErrNotFound)

	unverified := store.SMSPhone{AccountID: "acc-1", Number: "+15555550100", CreatedAt: t0.In(elsewhere)}
	must(t, "CreateSMSPhone", s.CreateSMSPhone(ctx, unverified))
	is(t, "second phone", s.CreateSMSPhone(ctx, fullPhone("acc-1")), store.ErrAlreadyExists)
	got, err := s.GetSMSPhone(ctx, "acc-1")
	must(t, "GetSMSPhone", err)
	equal(t, "phone", got, store.SMSPhone{AccountID: "acc-1", Number: "+15555550100", CreatedAt: t0})

	got, err = s.UpdateSMSPhone(ctx, "acc-1", func(p *store.SMSPhone) error {
		*p = fullPhone("acc-1")
		return nil
	})
	must(t, "UpdateSMSPhone", err)
	equal(t, "updated phone", got, fullPhone("acc-1"))
	_, err = s.UpdateSMSPhone(ctx, "acc-1", func(p *store.SMSPhone) error {
		p.Number = "+10000000000"
		return errStop
	})
	if err != errStop {
		t.Fatalf("UpdateSMSPhone returned %v, want fn's error", err)
	}
	_, err = s.UpdateSMSPhone(ctx, "acc-1", func(p *store.SMSPhone) error {
		p.AccountID = "acc-2"
		return nil
	})
	if err == nil {
		t.Fatal("UpdateSMSPhone moved the phone to another account")
	}
	got, err = s.GetSMSPhone(ctx, "acc-1")
	must(t, "GetSMSPhone", err)
	equal(t, "phone after refused updates", got, fullPhone("acc-1"))
}

func testSMSPutCode(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	_, err := getSMSCode(t, s, "acc-1")
	is(t, "no code yet", err, store.ErrNotFound)

	// A code does not need a phone row: enrolment sends one to a number
	// that is not saved as verified yet.
	must(t, "PutSMSCode", s.PutSMSCode(ctx, fullSMSCode("acc-1")))
	got, err := getSMSCode(t, s, "acc-1")
	must(t, "read code", err)
	equal(t, "code", got, fullSMSCode("acc-1"))

	// A new code replaces the old one, every field of it.
	next := store.SMSCode{AccountID: "acc-1", Purpose: store.SMSPurposeEnrol, Number: "+15555550100",
		CodeHash: hash("next"), CreatedAt: at(time.Hour).In(elsewhere), ExpiresAt: at(time.Hour + 5*time.Minute)}
	must(t, "PutSMSCode again", s.PutSMSCode(ctx, next))
	got, err = getSMSCode(t, s, "acc-1")
	must(t, "read code", err)
	next.CreatedAt = next.CreatedAt.UTC()
	equal(t, "replaced code", got, next)

	must(t, "PutSMSCode acc-2", s.PutSMSCode(ctx, fullSMSCode("acc-2")))
	got, err = getSMSCode(t, s, "acc-1")
	must(t, "read code", err)
	equal(t, "acc-1's code after acc-2's", got, next)
}

// testSMSUpdateCode: verification counts attempts through UpdateSMSCode,
// so what fn writes must stick when it returns nil, and nothing when it
// returns an error.
func testSMSUpdateCode(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	_, err := s.UpdateSMSCode(ctx, "acc-1", func(*store.SMSCode) error { return nil })
	is(t, "UpdateSMSCode without a code", err, store.ErrNotFound)

	code := fullSMSCode("acc-1")
	code.Attempts, code.UsedAt = 0, time.Time{}
	must(t, "PutSMSCode", s.PutSMSCode(ctx, code))
	got, err := s.UpdateSMSCode(ctx, "acc-1", func(c *store.SMSCode) error {
		c.Attempts++
		return nil
	})
	must(t, "UpdateSMSCode", err)
	want := code
	want.Attempts = 1
	equal(t, "returned", got, want)
	stored, err := getSMSCode(t, s, "acc-1")
	must(t, "read code", err)
	equal(t, "stored attempt", stored, want)

	_, err = s.UpdateSMSCode(ctx, "acc-1", func(c *store.SMSCode) error {
		c.Attempts = 99
		c.UsedAt = at(time.Minute)
		return errStop
	})
	if err != errStop {
		t.Fatalf("UpdateSMSCode returned %v, want fn's error", err)
	}
	stored, err = getSMSCode(t, s, "acc-1")
	must(t, "read code", err)
	equal(t, "after a refused update", stored, want)

	got, err = s.UpdateSMSCode(ctx, "acc-1", func(c *store.SMSCode) error {
		c.UsedAt = at(time.Minute).In(elsewhere)
		return nil
	})
	must(t, "spend", err)
	want.UsedAt = at(time.Minute)
	equal(t, "spent", got, want)
}

// testSMSUpdateCodeConcurrent: concurrent guesses are serialised: every
// wrong guess is counted, and only one of several right ones spends the
// code.
func testSMSUpdateCodeConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	code := store.SMSCode{AccountID: "acc-1", Purpose: store.SMSPurposeVerify, CodeHash: hash("c"), ExpiresAt: at(time.Hour)}
	must(t, "PutSMSCode", s.PutSMSCode(ctx, code))
	errs := race(concurrency, func(i int) error {
		_, err := s.UpdateSMSCode(ctx, "acc-1", func(c *store.SMSCode) error {
			if i%2 == 1 { // a wrong guess
				c.Attempts++
				return nil
			}
			if !c.UsedAt.IsZero() {
				return errStop
			}
			c.UsedAt = t0
			return nil
		})
		return err
	})
	spent := 0
	for i, err := range errs {
		switch {
		case err == nil && i%2 == 0:
			spent++
		case err == nil, err == errStop:
		default:
			t.Errorf("guess %d: %v", i, err)
		}
	}
	if spent != 1 {
		t.Errorf("the code was spent %d times, want once", spent)
	}
	got, err := getSMSCode(t, s, "acc-1")
	must(t, "read code", err)
	if got.Attempts != concurrency/2 {
		t.Errorf("Attempts = %d after %d concurrent wrong guesses", got.Attempts, concurrency/2)
	}
}

func testSMSDeletePhone(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	for _, id := range []string{"acc-1", "acc-2"} {
		must(t, "CreateSMSPhone", s.CreateSMSPhone(ctx, fullPhone(id)))
		must(t, "PutSMSCode", s.PutSMSCode(ctx, fullSMSCode(id)))
	}
	must(t, "DeleteSMSPhone", s.DeleteSMSPhone(ctx, "acc-1"))
	_, err := s.GetSMSPhone(ctx, "acc-1")
	is(t, "deleted phone", err, store.ErrNotFound)
	_, err = getSMSCode(t, s, "acc-1")
	is(t, "the deleted phone's code", err, store.ErrNotFound)
	is(t, "DeleteSMSPhone again", s.DeleteSMSPhone(ctx, "acc-1"), store.ErrNotFound)

	_, err = s.GetSMSPhone(ctx, "acc-2")
	must(t, "acc-2's phone", err)
	_, err = getSMSCode(t, s, "acc-2")
	must(t, "acc-2's code", err)

	// Rolled back, both come back.
	boom := errors.New("boom")
	if err := s.InTx(ctx, func(tx store.Queries) error {
		must(t, "DeleteSMSPhone in tx", tx.DeleteSMSPhone(ctx, "acc-2"))
		return boom
	}); err != boom {
		t.Fatalf("InTx: %v", err)
	}
	_, err = s.GetSMSPhone(ctx, "acc-2")
	must(t, "acc-2's phone after rollback", err)
	_, err = getSMSCode(t, s, "acc-2")
	must(t, "acc-2's code after rollback", err)
}

// Security keys and passkeys.

func fullKey(id, accountID string) store.WebAuthnCredential {
	return store.WebAuthnCredential{
		ID:                id,
		AccountID:         accountID,
		CredentialID:      hash("credential " + id),
		Name:              "YubiKey “on my keyring”",
		PublicKey:         []byte("COSE key of " + id),
		AttestationType:   "basic",
		AttestationFormat: "packed",
		AAGUID:            []byte{0xcb, 0x69, 0x48, 0x1e, 0x8f, 0xf7, 0x40, 0x39, 0x93, 0xec, 0x0a, 0x27, 0x29, 0xa1, 0x54, 0xa8},
		Transports:        "usb,nfc",
		SignCount:         1<<32 - 1,
		UserVerified:      true,
		BackupEligible:    true,
		BackupState:       true,
		Attachment:        "cross-platform",
		Discoverable:      true,
		CreatedAt:         t0,
		LastUsedAt:        at(time.Hour),
	}
}

// key is a minimal credential created at t0+created.
func key(id, accountID string, created time.Duration) store.WebAuthnCredential {
	return store.WebAuthnCredential{
		ID:           id,
		AccountID:    accountID,
		CredentialID: hash("credential " + id),
		Name:         id,
		PublicKey:    []byte("pk"),
		CreatedAt:    at(created),
	}
}

func getKey(t *testing.T, q store.Queries, id string) store.WebAuthnCredential {
	t.Helper()
	k, err := q.GetWebAuthnCredentialByCredentialID(context.Background(), hash("credential "+id))
	must(t, "GetWebAuthnCredentialByCredentialID "+id, err)
	return k
}

func testKeyRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	zoned := fullKey("k-zoned", "acc-1")
	zoned.CreatedAt, zoned.LastUsedAt = zoned.CreatedAt.In(elsewhere), zoned.LastUsedAt.In(elsewhere)
	for _, tc := range []struct {
		name       string
		give, want store.WebAuthnCredential
	}{
		{"every field", fullKey("k-full", "acc-1"), fullKey("k-full", "acc-1")},
		// No AAGUID (U2F keys have none), flags false, never used.
		{"sparse", store.WebAuthnCredential{ID: "k-sparse", AccountID: "acc-1", CredentialID: hash("credential k-sparse"), PublicKey: []byte("pk")},
			store.WebAuthnCredential{ID: "k-sparse", AccountID: "acc-1", CredentialID: hash("credential k-sparse"), PublicKey: []byte("pk")}},
		{"zoned", zoned, fullKey("k-zoned", "acc-1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, "CreateWebAuthnCredential", s.CreateWebAuthnCredential(ctx, tc.give))
			equal(t, "credential", getKey(t, s, tc.give.ID), tc.want)
		})
	}
	_, err := s.GetWebAuthnCredentialByCredentialID(ctx, hash("credential unknown"))
	is(t, "unknown credential ID", err, store.ErrNotFound)
	_, err = s.GetWebAuthnCredentialByCredentialID(ctx, hash("credential k-full")[:16])
	is(t, "credential ID prefix", err, store.ErrNotFound)
}

func testKeyDuplicate(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	must(t, "CreateWebAuthnCredential", s.CreateWebAuthnCredential(ctx, key("k-1", "acc-1", 0)))
	sameID := key("k-1", "acc-1", 0)
	sameID.CredentialID = hash("another authenticator")
	is(t, "same ID", s.CreateWebAuthnCredential(ctx, sameID), store.ErrAlreadyExists)
	// An authenticator's credential belongs to one account only.
	stolen := key("k-2", "acc-2", 0)
	stolen.CredentialID = hash("credential k-1")
	is(t, "credential ID of another account", s.CreateWebAuthnCredential(ctx, stolen), store.ErrAlreadyExists)
	again := key("k-3", "acc-1", 0)
	again.CredentialID = hash("credential k-1")
	is(t, "credential ID registered twice", s.CreateWebAuthnCredential(ctx, again), store.ErrAlreadyExists)
	if got := getKey(t, s, "k-1"); got.AccountID != "acc-1" || got.ID != "k-1" {
		t.Errorf("the credential changed hands: %+v", got)
	}
	// Inside a transaction the refusal is an answer.
	must(t, "InTx", s.InTx(ctx, func(tx store.Queries) error {
		is(t, "duplicate in tx", tx.CreateWebAuthnCredential(ctx, stolen), store.ErrAlreadyExists)
		return tx.CreateWebAuthnCredential(ctx, key("k-4", "acc-2", 0))
	}))
	getKey(t, s, "k-4")
}

func testKeyList(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	list := func(accountID string) []string {
		t.Helper()
		ks, err := s.ListWebAuthnCredentials(ctx, accountID)
		must(t, "ListWebAuthnCredentials", err)
		var ids []string
		for _, k := range ks {
			ids = append(ids, k.ID)
		}
		return ids
	}
	if ids := list("acc-1"); len(ids) != 0 {
		t.Fatalf("keys before any: %q", ids)
	}
	zero := key("k-zero", "acc-1", 0)
	zero.CreatedAt = time.Time{}
	for _, k := range []store.WebAuthnCredential{
		key("k-b", "acc-1", time.Hour),
		key("k-late", "acc-1", 2*time.Hour),
		key("k-a", "acc-1", time.Hour), // same time as k-b: ID breaks the tie
		zero,                           // no creation time sorts first
		key("k-other", "acc-2", 30*time.Minute),
		key("k-early", "acc-1", time.Minute),
	} {
		must(t, "CreateWebAuthnCredential "+k.ID, s.CreateWebAuthnCredential(ctx, k))
	}
	equal(t, "acc-1's keys", list("acc-1"), []string{"k-zero", "k-early", "k-a", "k-b", "k-late"})
	equal(t, "acc-2's keys", list("acc-2"), []string{"k-other"})
	ks, err := s.ListWebAuthnCredentials(ctx, "acc-2")
	must(t, "ListWebAuthnCredentials", err)
	equal(t, "listed record", ks[0], key("k-other", "acc-2", 30*time.Minute))
}

func testKeyUpdate(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	_, err := s.UpdateWebAuthnCredential(ctx, "k-1", func(*store.WebAuthnCredential) error { return nil })
	is(t, "missing", err, store.ErrNotFound)

	orig := fullKey("k-1", "acc-1")
	must(t, "CreateWebAuthnCredential", s.CreateWebAuthnCredential(ctx, orig))
	must(t, "CreateWebAuthnCredential", s.CreateWebAuthnCredential(ctx, key("k-2", "acc-1", 0)))
	var seen store.WebAuthnCredential
	got, err := s.UpdateWebAuthnCredential(ctx, "k-1", func(k *store.WebAuthnCredential) error {
		seen = *k
		k.Name = "Renamed"
		k.SignCount = 7
		k.BackupState = false
		k.AAGUID = nil
		k.LastUsedAt = at(3 * time.Hour).In(elsewhere)
		return nil
	})
	must(t, "UpdateWebAuthnCredential", err)
	equal(t, "fn's view", seen, orig)
	want := orig
	want.Name, want.SignCount, want.BackupState, want.AAGUID, want.LastUsedAt = "Renamed", 7, false, nil, at(3*time.Hour)
	equal(t, "returned", got, want)
	equal(t, "stored", getKey(t, s, "k-1"), want)

	_, err = s.UpdateWebAuthnCredential(ctx, "k-1", func(k *store.WebAuthnCredential) error {
		k.SignCount = 100
		return errStop
	})
	if err != errStop {
		t.Fatalf("UpdateWebAuthnCredential returned %v, want fn's error", err)
	}
	_, err = s.UpdateWebAuthnCredential(ctx, "k-1", func(k *store.WebAuthnCredential) error {
		k.ID = "k-9"
		return nil
	})
	if err == nil {
		t.Fatal("UpdateWebAuthnCredential changed the ID")
	}
	// A credential ID cannot be taken from another credential, and inside
	// a transaction the refusal leaves it usable.
	must(t, "InTx", s.InTx(ctx, func(tx store.Queries) error {
		_, err := tx.UpdateWebAuthnCredential(ctx, "k-1", func(k *store.WebAuthnCredential) error {
			k.CredentialID = hash("credential k-2")
			return nil
		})
		is(t, "taken credential ID", err, store.ErrAlreadyExists)
		_, err = tx.UpdateWebAuthnCredential(ctx, "k-1", func(k *store.WebAuthnCredential) error {
			k.SignCount++
			return nil
		})
		return err
	}))
	want.SignCount = 8
	equal(t, "after the refusals", getKey(t, s, "k-1"), want)
}

// testKeyCounterConcurrent: two assertions cannot both pass with the same
// sign counter, because the check and the raise happen in one serialised
// update.
func testKeyCounterConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	k := key("k-1", "acc-1", 0)
	k.SignCount = 10
	must(t, "CreateWebAuthnCredential", s.CreateWebAuthnCredential(ctx, k))
	errs := race(concurrency, func(int) error {
		_, err := s.UpdateWebAuthnCredential(ctx, "k-1", func(k *store.WebAuthnCredential) error {
			if k.SignCount >= 11 {
				return errStop // counter regression: refused
			}
			k.SignCount = 11
			return nil
		})
		return err
	})
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case err == errStop:
		default:
			t.Errorf("assertion %d: %v", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent assertions with one counter value passed, want exactly 1", wins, concurrency)
	}
}

func testKeyDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	must(t, "CreateWebAuthnCredential", s.CreateWebAuthnCredential(ctx, key("k-1", "acc-1", 0)))
	is(t, "someone else's key", s.DeleteWebAuthnCredential(ctx, "acc-2", "k-1"), store.ErrNotFound)
	getKey(t, s, "k-1")
	is(t, "unknown key", s.DeleteWebAuthnCredential(ctx, "acc-1", "k-9"), store.ErrNotFound)
	must(t, "DeleteWebAuthnCredential", s.DeleteWebAuthnCredential(ctx, "acc-1", "k-1"))
	_, err := s.GetWebAuthnCredentialByCredentialID(ctx, hash("credential k-1"))
	is(t, "deleted key", err, store.ErrNotFound)
	is(t, "delete again", s.DeleteWebAuthnCredential(ctx, "acc-1", "k-1"), store.ErrNotFound)
	// Its credential ID is free again (the authenticator may be registered
	// anew, to any account).
	must(t, "register again", s.CreateWebAuthnCredential(ctx, key("k-1", "acc-2", 0)))
}

// WebAuthn ceremonies.

func ceremony(id, accountID string, expires time.Duration) store.WebAuthnCeremony {
	return store.WebAuthnCeremony{
		ID:        id,
		AccountID: accountID,
		Kind:      store.CeremonyLogin,
		Data:      []byte(`{"challenge":"` + id + `"}`),
		CreatedAt: t0,
		ExpiresAt: at(expires),
	}
}

func testCeremonyTake(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	_, err := s.TakeWebAuthnCeremony(ctx, "c-1")
	is(t, "unknown ceremony", err, store.ErrNotFound)

	c := ceremony("c-1", "acc-1", 5*time.Minute)
	c.CreatedAt, c.ExpiresAt = c.CreatedAt.In(elsewhere), c.ExpiresAt.In(elsewhere)
	must(t, "CreateWebAuthnCeremony", s.CreateWebAuthnCeremony(ctx, c))
	is(t, "duplicate", s.CreateWebAuthnCeremony(ctx, ceremony("c-1", "acc-1", time.Hour)), store.ErrAlreadyExists)
	// A passwordless sign-in has no account yet: no account is needed.
	passkey := store.WebAuthnCeremony{ID: "c-2", Kind: store.CeremonyPasskey, Data: []byte("{}")}
	must(t, "CreateWebAuthnCeremony without account", s.CreateWebAuthnCeremony(ctx, passkey))

	got, err := s.TakeWebAuthnCeremony(ctx, "c-1")
	must(t, "TakeWebAuthnCeremony", err)
	equal(t, "ceremony", got, ceremony("c-1", "acc-1", 5*time.Minute))
	_, err = s.TakeWebAuthnCeremony(ctx, "c-1")
	is(t, "taken twice", err, store.ErrNotFound)
	got, err = s.TakeWebAuthnCeremony(ctx, "c-2")
	must(t, "TakeWebAuthnCeremony c-2", err)
	equal(t, "passkey ceremony", got, passkey)

	// Expired ceremonies are returned too; the caller checks.
	must(t, "CreateWebAuthnCeremony", s.CreateWebAuthnCeremony(ctx, ceremony("c-3", "", -time.Hour)))
	got, err = s.TakeWebAuthnCeremony(ctx, "c-3")
	must(t, "take expired", err)
	equal(t, "expired ceremony", got, ceremony("c-3", "", -time.Hour))

	// A take in a transaction that rolls back leaves the ceremony.
	must(t, "CreateWebAuthnCeremony", s.CreateWebAuthnCeremony(ctx, ceremony("c-4", "acc-1", time.Hour)))
	boom := errors.New("boom")
	if err := s.InTx(ctx, func(tx store.Queries) error {
		_, err := tx.TakeWebAuthnCeremony(ctx, "c-4")
		must(t, "take in tx", err)
		_, err = tx.TakeWebAuthnCeremony(ctx, "c-4")
		is(t, "take twice in tx", err, store.ErrNotFound)
		return boom
	}); err != boom {
		t.Fatalf("InTx: %v", err)
	}
	_, err = s.TakeWebAuthnCeremony(ctx, "c-4")
	must(t, "take after rollback", err)
}

// testCeremonyTakeConcurrent: a ceremony is finished at most once, however
// many requests race for it.
func testCeremonyTakeConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, "CreateWebAuthnCeremony", s.CreateWebAuthnCeremony(ctx, ceremony("c-1", "", time.Hour)))
	errs := race(concurrency, func(int) error {
		_, err := s.TakeWebAuthnCeremony(ctx, "c-1")
		return err
	})
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, store.ErrNotFound):
		default:
			t.Errorf("taker %d: %v", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent takes got the ceremony, want exactly 1", wins, concurrency)
	}
}

func testCeremonyDeleteExpired(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := at(time.Hour)
	noExpiry := ceremony("c-none", "", 0)
	noExpiry.ExpiresAt = time.Time{}
	for _, c := range []store.WebAuthnCeremony{
		ceremony("c-old", "", 0),                           // expired
		ceremony("c-just", "", time.Hour-time.Microsecond), // expired a microsecond ago
		ceremony("c-now", "", time.Hour),                   // expires now: kept
		ceremony("c-live", "", 2*time.Hour),                // live
		noExpiry,                                           // no expiry: counts as expired
	} {
		must(t, "CreateWebAuthnCeremony "+c.ID, s.CreateWebAuthnCeremony(ctx, c))
	}
	n, err := s.DeleteExpiredWebAuthnCeremonies(ctx, now.In(elsewhere))
	must(t, "DeleteExpiredWebAuthnCeremonies", err)
	if n != 3 {
		t.Errorf("deleted %d, want 3", n)
	}
	for _, id := range []string{"c-old", "c-just", "c-none"} {
		_, err := s.TakeWebAuthnCeremony(ctx, id)
		is(t, "expired "+id, err, store.ErrNotFound)
	}
	for _, id := range []string{"c-now", "c-live"} {
		_, err := s.TakeWebAuthnCeremony(ctx, id)
		must(t, "live "+id, err)
	}
	n, err = s.DeleteExpiredWebAuthnCeremonies(ctx, now)
	must(t, "DeleteExpiredWebAuthnCeremonies again", err)
	if n != 0 {
		t.Errorf("deleted %d with nothing left, want 0", n)
	}
}

// Settings.

func testSettingsCreate(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	_, err := s.GetMFASettings(ctx, "acc-1")
	is(t, "never saved", err, store.ErrNotFound)

	var seen store.MFASettings
	got, err := s.UpdateMFASettings(ctx, "acc-1", func(st *store.MFASettings) error {
		seen = *st
		st.SignIn, st.Trading = true, true
		st.UpdatedAt = at(time.Minute).In(elsewhere)
		return nil
	})
	must(t, "UpdateMFASettings (create)", err)
	equal(t, "fn's view of a missing row", seen, store.MFASettings{AccountID: "acc-1"})
	want := store.MFASettings{AccountID: "acc-1", SignIn: true, Trading: true, UpdatedAt: at(time.Minute)}
	equal(t, "returned", got, want)
	stored, err := s.GetMFASettings(ctx, "acc-1")
	must(t, "GetMFASettings", err)
	equal(t, "stored", stored, want)

	got, err = s.UpdateMFASettings(ctx, "acc-1", func(st *store.MFASettings) error {
		seen = *st
		st.SignIn, st.Funding = false, true
		st.FactorsChangedAt = at(2 * time.Minute)
		return nil
	})
	must(t, "UpdateMFASettings (update)", err)
	equal(t, "fn's view of the saved row", seen, want)
	want.SignIn, want.Funding, want.FactorsChangedAt = false, true, at(2*time.Minute)
	equal(t, "returned", got, want)
	stored, err = s.GetMFASettings(ctx, "acc-1")
	must(t, "GetMFASettings", err)
	equal(t, "stored", stored, want)

	_, err = s.UpdateMFASettings(ctx, "acc-1", func(st *store.MFASettings) error {
		st.AccountID = "acc-2"
		return nil
	})
	if err == nil {
		t.Fatal("UpdateMFASettings moved the settings to another account")
	}
	_, err = s.UpdateMFASettings(ctx, "acc-1", func(st *store.MFASettings) error {
		st.Trading = false
		return errStop
	})
	if err != errStop {
		t.Fatalf("UpdateMFASettings returned %v, want fn's error", err)
	}
	stored, err = s.GetMFASettings(ctx, "acc-1")
	must(t, "GetMFASettings", err)
	equal(t, "after refused updates", stored, want)
}

// testSettingsFailedCreate: an update that fails on an account without
// settings leaves none, also inside a transaction that goes on to commit.
func testSettingsFailedCreate(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	refuse := func(st *store.MFASettings) error { st.SignIn = true; return errStop }
	move := func(st *store.MFASettings) error { st.AccountID = "acc-2"; return nil }
	for name, fn := range map[string]func(*store.MFASettings) error{"fn error": refuse, "ID change": move} {
		if _, err := s.UpdateMFASettings(ctx, "acc-1", fn); err == nil {
			t.Fatalf("%s: UpdateMFASettings succeeded", name)
		}
		_, err := s.GetMFASettings(ctx, "acc-1")
		is(t, name+": settings after a failed first update", err, store.ErrNotFound)
		must(t, "InTx", s.InTx(ctx, func(tx store.Queries) error {
			if _, err := tx.UpdateMFASettings(ctx, "acc-1", fn); err == nil {
				t.Fatalf("%s: UpdateMFASettings succeeded in tx", name)
			}
			_, err := tx.GetMFASettings(ctx, "acc-1")
			is(t, name+": settings in tx after a failed first update", err, store.ErrNotFound)
			return nil
		}))
		_, err = s.GetMFASettings(ctx, "acc-1")
		is(t, name+": settings after the committed transaction", err, store.ErrNotFound)
	}
}

// testSettingsConcurrent: many first updates of an account without settings
// at once: the row is created once and no update is lost.
func testSettingsConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	for i, err := range race(concurrency, func(int) error {
		_, err := s.UpdateMFASettings(ctx, "acc-1", func(st *store.MFASettings) error {
			if st.FactorsChangedAt.IsZero() {
				st.FactorsChangedAt = t0
			}
			st.FactorsChangedAt = st.FactorsChangedAt.Add(time.Second)
			return nil
		})
		return err
	}) {
		if err != nil {
			t.Errorf("updater %d: %v", i, err)
		}
	}
	got, err := s.GetMFASettings(ctx, "acc-1")
	must(t, "GetMFASettings", err)
	if want := at(concurrency * time.Second); !got.FactorsChangedAt.Equal(want) {
		t.Fatalf("FactorsChangedAt = %v after %d concurrent updates, want %v", got.FactorsChangedAt, concurrency, want)
	}
}

// testSettingsSerialise: the settings row is the per-account lock for
// factor changes. Transactions that take it, count the account's keys and
// add one below a limit cannot together go over the limit, whatever the
// interleaving (this is how internal/mfa enforces "at most five keys").
func testSettingsSerialise(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	const limit = 3
	errLimit := errors.New("limit reached")
	errs := race(concurrency, func(i int) error {
		return s.InTx(ctx, func(tx store.Queries) error {
			if _, err := tx.UpdateMFASettings(ctx, "acc-1", func(st *store.MFASettings) error {
				st.FactorsChangedAt = at(time.Duration(i) * time.Second)
				return nil
			}); err != nil {
				return err
			}
			ks, err := tx.ListWebAuthnCredentials(ctx, "acc-1")
			if err != nil {
				return err
			}
			if len(ks) >= limit {
				return errLimit
			}
			return tx.CreateWebAuthnCredential(ctx, key(fmt.Sprint("k-", i), "acc-1", 0))
		})
	})
	added := 0
	for i, err := range errs {
		switch {
		case err == nil:
			added++
		case err == errLimit:
		default:
			t.Errorf("transaction %d: %v", i, err)
		}
	}
	ks, err := s.ListWebAuthnCredentials(ctx, "acc-1")
	must(t, "ListWebAuthnCredentials", err)
	if len(ks) != limit || added != limit {
		t.Fatalf("%d keys stored (%d transactions added one), want exactly %d", len(ks), added, limit)
	}
}

// Across records.

// testMFANeedsAccount: every second-factor record but a ceremony belongs
// to an account that must exist when the write commits.
func testMFANeedsAccount(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		create func(q store.Queries, accountID string) error
	}{
		{"totp", func(q store.Queries, id string) error {
			return q.CreateTOTP(ctx, store.TOTPCredential{AccountID: id, Secret: []byte("s")})
		}},
		{"backup codes", func(q store.Queries, id string) error {
			return q.ReplaceBackupCodes(ctx, id, codeSet(id, 2))
		}},
		{"phone", func(q store.Queries, id string) error {
			return q.CreateSMSPhone(ctx, store.SMSPhone{AccountID: id, Number: "+15555550100"})
		}},
		{"sms code", func(q store.Queries, id string) error {
			return q.PutSMSCode(ctx, store.SMSCode{AccountID: id, CodeHash: hash(id)})
		}},
		{"security key", func(q store.Queries, id string) error {
			return q.CreateWebAuthnCredential(ctx, key("k"+id, id, 0))
		}},
		{"settings", func(q store.Queries, id string) error {
			_, err := q.UpdateMFASettings(ctx, id, func(st *store.MFASettings) error { st.SignIn = true; return nil })
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ghost := "ghost-" + tc.name
			if err := tc.create(s, ghost); err == nil {
				t.Errorf("created %s for a missing account", tc.name)
			}
			if err := s.InTx(ctx, func(tx store.Queries) error { return tc.create(tx, ghost) }); err == nil {
				t.Errorf("committed %s for a missing account", tc.name)
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

// testMFARollback: second-factor writes in a transaction that fails are
// all undone.
func testMFARollback(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	totp := fullTOTP("acc-1")
	must(t, "CreateTOTP", s.CreateTOTP(ctx, totp))
	must(t, "ReplaceBackupCodes", s.ReplaceBackupCodes(ctx, "acc-1", codeSet("a", 3)))
	must(t, "CreateWebAuthnCeremony", s.CreateWebAuthnCeremony(ctx, ceremony("c-1", "acc-1", time.Hour)))
	must(t, "CreateWebAuthnCredential", s.CreateWebAuthnCredential(ctx, key("k-1", "acc-1", 0)))

	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx store.Queries) error {
		_, err := tx.UpdateTOTP(ctx, "acc-1", acceptStep(totp.LastUsedStep+1))
		must(t, "UpdateTOTP", err)
		must(t, "SpendBackupCode", tx.SpendBackupCode(ctx, "acc-1", hash("a-0"), t0))
		_, err = tx.TakeWebAuthnCeremony(ctx, "c-1")
		must(t, "TakeWebAuthnCeremony", err)
		must(t, "DeleteWebAuthnCredential", tx.DeleteWebAuthnCredential(ctx, "acc-1", "k-1"))
		must(t, "CreateSMSPhone", tx.CreateSMSPhone(ctx, fullPhone("acc-1")))
		must(t, "PutSMSCode", tx.PutSMSCode(ctx, fullSMSCode("acc-1")))
		_, err = tx.UpdateMFASettings(ctx, "acc-1", func(st *store.MFASettings) error { st.SignIn = true; return nil })
		must(t, "UpdateMFASettings", err)
		return boom
	})
	if err != boom {
		t.Fatalf("InTx returned %v, want fn's error unchanged", err)
	}
	equal(t, "TOTP after rollback", getTOTP(t, s, "acc-1"), totp)
	if n := countCodes(t, s, "acc-1"); n != 3 {
		t.Errorf("%d backup codes after rollback, want 3", n)
	}
	_, err = s.TakeWebAuthnCeremony(ctx, "c-1")
	must(t, "ceremony after rollback", err)
	getKey(t, s, "k-1")
	_, err = s.GetSMSPhone(ctx, "acc-1")
	is(t, "phone after rollback", err, store.ErrNotFound)
	_, err = getSMSCode(t, s, "acc-1")
	is(t, "sms code after rollback", err, store.ErrNotFound)
	_, err = s.GetMFASettings(ctx, "acc-1")
	is(t, "settings after rollback", err, store.ErrNotFound)
	// The replayed step is still usable: the transaction that took it
	// failed.
	if _, err := s.UpdateTOTP(ctx, "acc-1", acceptStep(totp.LastUsedStep+1)); err != nil {
		t.Errorf("step after rollback: %v", err)
	}
}
