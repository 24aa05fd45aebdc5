package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

func testTxCommit(t *testing.T, s store.Store) {
	ctx := context.Background()
	acc := fullAccount("acc-1", "one@example.com")
	ss := session("s-1", "acc-1", 0)
	msg := message("m-1", 0)
	var ev store.AuditEvent
	err := s.InTx(ctx, func(tx store.Queries) error {
		must(t, "CreateAccount", tx.CreateAccount(ctx, acc))
		must(t, "CreateSession", tx.CreateSession(ctx, ss))
		must(t, "EnqueueOutbox", tx.EnqueueOutbox(ctx, msg))
		ev = appendEvent(t, tx, event("signup", "acc-1", 1))
		// The transaction reads its own writes.
		got, err := tx.GetAccount(ctx, "acc-1")
		must(t, "tx.GetAccount", err)
		equal(t, "tx.GetAccount", got, acc)
		equal(t, "tx.GetSessionByTokenHash", getSession(t, tx, "s-1"), ss)
		equal(t, "tx.ListAudit", listAudit(t, tx, store.AuditFilter{}), []store.AuditEvent{ev})
		equal(t, "tx.ListOutbox", ids(claim(t, tx, at(time.Minute), 10, time.Minute)), []string{"m-1"})
		return nil
	})
	must(t, "InTx", err)

	got, err := s.GetAccount(ctx, "acc-1")
	must(t, "GetAccount", err)
	equal(t, "committed account", got, acc)
	equal(t, "committed session", getSession(t, s, "s-1"), ss)
	equal(t, "committed audit", listAudit(t, s, store.AuditFilter{}), []store.AuditEvent{ev})
	msg.NextAttemptAt = at(2 * time.Minute) // leased in the transaction
	equal(t, "committed outbox", outbox(t, s, "email")["m-1"], msg)
}

// testTxRollback: when fn fails, none of its writes happen, including
// updates, token use, revocations and audit appends.
func testTxRollback(t *testing.T, s store.Store) {
	ctx := context.Background()
	existing := fullAccount("acc-0", "zero@example.com")
	must(t, "CreateAccount", s.CreateAccount(ctx, existing))
	tok := token("tok", "acc-0", store.TokenPasswordReset)
	must(t, "CreateToken", s.CreateToken(ctx, tok))
	live := session("s-0", "acc-0", 0)
	mkSession(t, s, live)
	first := appendEvent(t, s, event("before", "acc-0", 0))
	enqueue(t, s, message("m-0", 0))

	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx store.Queries) error {
		must(t, "CreateAccount", tx.CreateAccount(ctx, account("acc-1", "one@example.com")))
		mkSession(t, tx, session("s-1", "acc-1", 0))
		must(t, "CreateDevice", tx.CreateDevice(ctx, fullDevice("d-1", "acc-1")))
		must(t, "CreatePendingSignIn", tx.CreatePendingSignIn(ctx, signIn("p-1", "acc-1", time.Hour)))
		enqueue(t, tx, message("m-1", 0))
		appendEvent(t, tx, event("signup", "acc-1", 1))
		_, err := tx.UpdateAccount(ctx, "acc-0", func(a *store.Account) error {
			a.LockedAt, a.LockReason = at(time.Hour), "rolled back"
			return nil
		})
		must(t, "UpdateAccount", err)
		_, err = tx.ConsumeToken(ctx, tok.Kind, tok.Hash, t0)
		must(t, "ConsumeToken", err)
		_, err = tx.RevokeSessions(ctx, "acc-0", "", at(time.Hour))
		must(t, "RevokeSessions", err)
		_, err = tx.ClaimOutbox(ctx, at(time.Minute), 10, time.Hour)
		must(t, "ClaimOutbox", err)
		return boom
	})
	if err != boom {
		t.Fatalf("InTx returned %v, want fn's error unchanged", err)
	}

	_, err = s.GetAccount(ctx, "acc-1")
	is(t, "rolled-back account", err, store.ErrNotFound)
	_, err = s.GetAccountByEmail(ctx, "one@example.com")
	is(t, "rolled-back account by e-mail", err, store.ErrNotFound)
	_, err = s.GetSessionByTokenHash(ctx, hash("session s-1"))
	is(t, "rolled-back session", err, store.ErrNotFound)
	_, err = s.GetDevice(ctx, "d-1")
	is(t, "rolled-back device", err, store.ErrNotFound)
	_, err = s.GetPendingSignIn(ctx, hash("pending p-1"))
	is(t, "rolled-back pending sign-in", err, store.ErrNotFound)
	if _, ok := outbox(t, s, "email")["m-1"]; ok {
		t.Error("rolled-back outbox message is stored")
	}
	equal(t, "audit log", listAudit(t, s, store.AuditFilter{}), []store.AuditEvent{first})

	got, err := s.GetAccount(ctx, "acc-0")
	must(t, "GetAccount", err)
	equal(t, "rolled-back update", got, existing)
	equal(t, "rolled-back revocation", getSession(t, s, "s-0"), live)
	// The claim's lease was rolled back: the message is due again.
	equal(t, "rolled-back claim", ids(claim(t, s, at(time.Minute), 10, time.Minute)), []string{"m-0"})
	_, err = s.ConsumeToken(ctx, tok.Kind, tok.Hash, t0)
	must(t, "token use was rolled back", err)

	// The chain continues from the last committed event, without a gap.
	appendEvent(t, s, event("after", "acc-0", 2))
	checkChain(t, listAudit(t, s, store.AuditFilter{}))
}

// testTxPanic: a panic in fn rolls back and leaves the store usable.
func testTxPanic(t *testing.T, s store.Store) {
	ctx := context.Background()
	func() {
		defer func() {
			if recover() == nil {
				t.Error("InTx swallowed fn's panic")
			}
		}()
		s.InTx(ctx, func(tx store.Queries) error {
			must(t, "CreateAccount", tx.CreateAccount(ctx, account("acc-1", "one@example.com")))
			panic("fn panicked")
		})
	}()
	_, err := s.GetAccount(ctx, "acc-1")
	is(t, "account written before the panic", err, store.ErrNotFound)
	mkAccount(t, s, "acc-2", "two@example.com")
	must(t, "InTx after a panic", s.InTx(ctx, func(tx store.Queries) error {
		return tx.CreateAccount(ctx, account("acc-3", "three@example.com"))
	}))
}

// testTxNestedUpdates: UpdateX and AppendAudit on the transaction's Queries
// join it (no deadlock, no separate commit).
func testTxNestedUpdates(t *testing.T, s store.Store) {
	ctx := context.Background()
	refuse := errors.New("refused")
	err := s.InTx(ctx, func(tx store.Queries) error {
		mkAccount(t, tx, "acc-1", "one@example.com")
		must(t, "CreateDevice", tx.CreateDevice(ctx, fullDevice("d-1", "acc-1")))
		mkSession(t, tx, session("s-1", "acc-1", 0))
		must(t, "CreatePendingSignIn", tx.CreatePendingSignIn(ctx, signIn("p-1", "acc-1", time.Hour)))
		for i := range 3 {
			_, err := tx.UpdateAccount(ctx, "acc-1", func(a *store.Account) error {
				a.LockReason += "x"
				return nil
			})
			must(t, fmt.Sprint("UpdateAccount ", i), err)
		}
		// A refused update inside the transaction writes nothing and does
		// not spoil the transaction.
		_, err := tx.UpdateAccount(ctx, "acc-1", func(a *store.Account) error {
			a.LockReason = "refused"
			return refuse
		})
		if err != refuse {
			t.Errorf("UpdateAccount in tx returned %v, want fn's error", err)
		}
		_, err = tx.UpdateDevice(ctx, "d-1", func(d *store.Device) error { d.Name = "renamed"; return nil })
		must(t, "UpdateDevice", err)
		_, err = tx.UpdateSession(ctx, "s-1", func(ss *store.Session) error { ss.SecondFactorAt = at(time.Minute); return nil })
		must(t, "UpdateSession", err)
		_, err = tx.UpdatePendingSignIn(ctx, "p-1", func(p *store.PendingSignIn) error { p.Attempts = 4; return nil })
		must(t, "UpdatePendingSignIn", err)
		appendEvent(t, tx, event("a", "acc-1", 1))
		appendEvent(t, tx, event("b", "acc-1", 2))
		return nil
	})
	must(t, "InTx", err)

	got, err := s.GetAccount(ctx, "acc-1")
	must(t, "GetAccount", err)
	if got.LockReason != "xxx" {
		t.Errorf("LockReason = %q, want %q", got.LockReason, "xxx")
	}
	d, err := s.GetDevice(ctx, "d-1")
	must(t, "GetDevice", err)
	if d.Name != "renamed" {
		t.Errorf("device name = %q", d.Name)
	}
	if ss := getSession(t, s, "s-1"); !ss.SecondFactorAt.Equal(at(time.Minute)) {
		t.Errorf("SecondFactorAt = %v", ss.SecondFactorAt)
	}
	if p := getSignIn(t, s, "p-1"); p.Attempts != 4 {
		t.Errorf("Attempts = %d", p.Attempts)
	}
	evs := listAudit(t, s, store.AuditFilter{})
	checkChain(t, evs)
	if len(evs) != 2 {
		t.Errorf("%d audit events, want 2", len(evs))
	}
}

// testTxContinuesAfterConflict: a conflict reported inside a transaction
// is an answer, not a failure of the transaction: the caller may go on and
// commit (PostgreSQL would otherwise abort the whole transaction).
func testTxContinuesAfterConflict(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	mkSession(t, s, session("s-1", "acc-1", 0))
	must(t, "CreateToken", s.CreateToken(ctx, token("tok", "acc-1", store.TokenEmailConfirm)))
	enqueue(t, s, message("m-1", 0))
	err := s.InTx(ctx, func(tx store.Queries) error {
		is(t, "CreateAccount (taken e-mail)", tx.CreateAccount(ctx, account("acc-3", "one@example.com")), store.ErrAlreadyExists)
		is(t, "CreateAccount (taken ID)", tx.CreateAccount(ctx, account("acc-1", "three@example.com")), store.ErrAlreadyExists)
		_, err := tx.UpdateAccount(ctx, "acc-2", func(a *store.Account) error {
			a.Email = "one@example.com"
			return nil
		})
		is(t, "UpdateAccount (taken e-mail)", err, store.ErrAlreadyExists)
		is(t, "CreateSession (taken ID)", tx.CreateSession(ctx, session("s-1", "acc-1", time.Second)), store.ErrAlreadyExists)
		is(t, "CreateToken (taken hash)", tx.CreateToken(ctx, token("tok", "acc-1", store.TokenEmailConfirm)), store.ErrAlreadyExists)
		is(t, "EnqueueOutbox (taken ID)", tx.EnqueueOutbox(ctx, message("m-1", 0)), store.ErrAlreadyExists)
		_, err = tx.GetAccount(ctx, "acc-9")
		is(t, "GetAccount (missing)", err, store.ErrNotFound)
		is(t, "RevokeSession (missing)", tx.RevokeSession(ctx, "acc-1", "s-9", t0), store.ErrNotFound)
		_, err = tx.ConsumeToken(ctx, store.TokenEmailConfirm, hash("nope"), t0)
		is(t, "ConsumeToken (missing)", err, store.ErrNotFound)

		mkAccount(t, tx, "acc-3", "three@example.com")
		_, err = tx.UpdateAccount(ctx, "acc-2", func(a *store.Account) error {
			a.Email = "two-new@example.com"
			return nil
		})
		must(t, "UpdateAccount", err)
		return nil
	})
	must(t, "InTx", err)
	_, err = s.GetAccount(ctx, "acc-3")
	must(t, "account created after the conflicts", err)
	got, err := s.GetAccount(ctx, "acc-2")
	must(t, "GetAccount", err)
	if got.Email != "two-new@example.com" {
		t.Errorf("acc-2 e-mail = %q", got.Email)
	}
}

// testTxConcurrent: many transactions each update one account, append to the
// audit log and enqueue a message, at once. All commit, nothing is lost, and
// the chain stays whole.
func testTxConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	errs := race(concurrency, func(i int) error {
		return s.InTx(ctx, func(tx store.Queries) error {
			if _, err := tx.UpdateAccount(ctx, "acc-1", func(a *store.Account) error {
				a.LockReason += "x"
				return nil
			}); err != nil {
				return err
			}
			if err := tx.EnqueueOutbox(ctx, message(fmt.Sprint("m-", i), 0)); err != nil {
				return err
			}
			_, err := tx.AppendAudit(ctx, link(event("account.locked", "acc-1", i)))
			return err
		})
	})
	for i, err := range errs {
		must(t, fmt.Sprint("transaction ", i), err)
	}
	got, err := s.GetAccount(ctx, "acc-1")
	must(t, "GetAccount", err)
	if len(got.LockReason) != concurrency {
		t.Errorf("LockReason = %q after %d transactions", got.LockReason, concurrency)
	}
	if n := len(outbox(t, s, "email")); n != concurrency {
		t.Errorf("%d outbox messages after %d transactions", n, concurrency)
	}
	evs := listAudit(t, s, store.AuditFilter{})
	if len(evs) != concurrency {
		t.Errorf("%d audit events after %d transactions", len(evs), concurrency)
	}
	checkChain(t, evs)
}
