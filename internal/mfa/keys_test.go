package mfa_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/mfa"
	"github.com/moat-dev/moat/internal/mfa/webauthn"
	"github.com/moat-dev/moat/internal/mfa/webauthn/webauthntest"
	"github.com/moat-dev/moat/internal/store"
)

func TestSecurityKeyLifecycle(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	k, codes := e.addKey(p, "  YubiKey 5  ", false)
	if k.Name != "YubiKey 5" || k.Passkey || k.ID == "" || !k.CreatedAt.Equal(start) {
		t.Errorf("key %+v", k)
	}
	if len(codes) != 10 {
		t.Errorf("first factor: %d backup codes", len(codes))
	}
	f := e.factor(mfa.MethodWebAuthn)
	if ok, _ := f.Enrolled(ctx, p.Account.ID); !ok {
		t.Fatal("not enrolled")
	}

	// Second factor at sign-in.
	e.clk.Advance(time.Hour)
	if err := f.Verify(ctx, p.Account.ID, e.keyAnswer(p.Account.ID)); err != nil {
		t.Fatalf("verify: %v", err)
	}
	m, _ := e.svc.Methods(ctx, p.Account.ID)
	if len(m.SecurityKeys) != 1 || !m.SecurityKeys[0].LastUsedAt.Equal(start.Add(time.Hour)) {
		t.Errorf("keys %+v", m.SecurityKeys)
	}
	if strings.Join(m.Enrolled, ",") != "webauthn,backup_code" || m.MaxSecurityKeys != 5 {
		t.Errorf("methods %+v", m)
	}

	// Adding a second key needs step-up; with it, no new backup codes.
	_, err := e.svc.BeginSecurityKey(ctx, p, "Backup key", false)
	wantCode(t, err, apperr.StepUpNeeded)
	e.key = webauthntest.New(origin) // another physical key
	k2, codes := e.addKey(e.user(true), "Backup key", false)
	if codes != nil {
		t.Error("second factor regenerated backup codes")
	}

	if err := e.svc.RenameSecurityKey(ctx, p, k2.ID, "Spare", e.client); err != nil {
		t.Fatal(err)
	}
	bob := e.principal("acct-bob", "bob@example.com", "user", true)
	wantCode(t, e.svc.RenameSecurityKey(ctx, bob, k2.ID, "mine", e.client), apperr.NotFound)
	wantCode(t, e.svc.RenameSecurityKey(ctx, p, k2.ID, strings.Repeat("x", 65), e.client), apperr.Invalid)
	wantCode(t, e.svc.RenameSecurityKey(ctx, p, k2.ID, "a\x00b", e.client), apperr.Invalid)

	// Removing: step-up; someone else's key is not found.
	wantCode(t, e.svc.RemoveSecurityKey(ctx, p, k.ID, e.client), apperr.StepUpNeeded)
	wantCode(t, e.svc.RemoveSecurityKey(ctx, bob, k.ID, e.client), apperr.NotFound)
	if err := e.svc.RemoveSecurityKey(ctx, e.user(true), k.ID, e.client); err != nil {
		t.Fatal(err)
	}
	evs := e.events()
	if last := evs[len(evs)-1]; last.Type != mfa.EventKeyRemoved || last.LastFactorRemoved || !last.Notify {
		t.Errorf("event %+v", last)
	}
	m, _ = e.svc.Methods(ctx, p.Account.ID)
	if len(m.SecurityKeys) != 1 || m.SecurityKeys[0].Name != "Spare" {
		t.Errorf("keys %+v", m.SecurityKeys)
	}
	if err := e.svc.RemoveSecurityKey(ctx, e.user(true), k2.ID, e.client); err != nil {
		t.Fatal(err)
	}
	evs = e.events()
	if last := evs[len(evs)-1]; !last.LastFactorRemoved {
		t.Errorf("last key removal not flagged: %+v", last)
	}
}

// TestCeremonySingleUse: an assertion cannot be replayed, sequentially or
// concurrently, and a ceremony expires.
func TestCeremonySingleUse(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	e.addKey(p, "key", false)
	f := e.factor(mfa.MethodWebAuthn)
	answer := e.keyAnswer(p.Account.ID)
	if err := f.Verify(ctx, p.Account.ID, answer); err != nil {
		t.Fatal(err)
	}
	wantCode(t, f.Verify(ctx, p.Account.ID, answer), apperr.TokenExpired)

	answer = e.keyAnswer(p.Account.ID)
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() { errs[i] = f.Verify(ctx, p.Account.ID, answer) })
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
		}
	}
	if wins != 1 {
		t.Errorf("%d concurrent replays succeeded, want 1", wins)
	}

	answer = e.keyAnswer(p.Account.ID)
	e.clk.Advance(5 * time.Minute)
	wantCode(t, f.Verify(ctx, p.Account.ID, answer), apperr.TokenExpired)

	// A ceremony begun for alice cannot finish for bob (bob has a key too).
	bob := e.principal("acct-bob", "bob@example.com", "user", false)
	e.addKey(bob, "bob's", false)
	wantCode(t, f.Verify(ctx, bob.Account.ID, e.keyAnswer(p.Account.ID)), apperr.TokenExpired)

	// Junk.
	wantCode(t, f.Verify(ctx, p.Account.ID, `{"ceremony":"x"}`), apperr.Invalid)
	wantCode(t, f.Verify(ctx, p.Account.ID, `not json`), apperr.Invalid)
}

// TestSignCountRegression: an assertion from a cloned key (its counter
// behind the stored one) is refused and reported to the owner.
func TestSignCountRegression(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	e.addKey(p, "YubiKey", false)
	f := e.factor(mfa.MethodWebAuthn)
	for range 3 {
		if err := f.Verify(ctx, p.Account.ID, e.keyAnswer(p.Account.ID)); err != nil {
			t.Fatal(err)
		}
	}
	cred := e.key.Creds()[0]
	e.key.SetCounter(cred.ID, 1) // the clone signs with 2; the server has seen 3
	err := f.Verify(ctx, p.Account.ID, e.keyAnswer(p.Account.ID))
	ae := wantCode(t, err, apperr.Forbidden)
	if !strings.Contains(ae.Message, "copied") {
		t.Errorf("message %q", ae.Message)
	}
	evs := e.events()
	last := evs[len(evs)-1]
	if last.Type != mfa.EventSignCountRegress || !last.Notify || last.Data["stored_count"] != int64(3) || last.Data["presented_count"] != uint32(2) {
		t.Errorf("event %+v", last)
	}
	recs, _ := e.st.ListWebAuthnCredentials(ctx, p.Account.ID)
	if recs[0].SignCount != 3 {
		t.Errorf("stored counter moved to %d", recs[0].SignCount)
	}
	// Equal counter is a regression too.
	e.key.SetCounter(cred.ID, 2)
	wantCode(t, f.Verify(ctx, p.Account.ID, e.keyAnswer(p.Account.ID)), apperr.Forbidden)
	// The genuine key, ahead, still works.
	e.key.SetCounter(cred.ID, 10)
	if err := f.Verify(ctx, p.Account.ID, e.keyAnswer(p.Account.ID)); err != nil {
		t.Errorf("genuine key: %v", err)
	}
}

func TestSecurityKeyLimit(t *testing.T) {
	e := newEnv(t, func(c *mfa.Config) { c.MaxSecurityKeys = 2 })
	p := e.user(true)
	e.addKey(p, "one", false)
	e.key = webauthntest.New(origin)
	e.addKey(e.user(true), "two", false)
	_, err := e.svc.BeginSecurityKey(ctx, e.user(true), "three", false)
	ae := wantCode(t, err, apperr.Conflict)
	if !strings.Contains(ae.Message, "2 security keys") {
		t.Errorf("message %q", ae.Message)
	}
}

// TestSecurityKeyLimitConcurrent: with one slot left, several registrations
// finishing at once add exactly one key.
func TestSecurityKeyLimitConcurrent(t *testing.T) {
	e := newEnv(t, func(c *mfa.Config) { c.MaxSecurityKeys = 2 })
	e.addKey(e.user(true), "one", false)
	p := e.user(true)
	type reg struct {
		ceremony string
		resp     []byte
	}
	var regs []reg
	for range 8 {
		ch, err := e.svc.BeginSecurityKey(ctx, p, "racer", false)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := webauthntest.New(origin).Create(ch.Options)
		if err != nil {
			t.Fatal(err)
		}
		regs = append(regs, reg{ch.Ceremony, resp})
	}
	var wg sync.WaitGroup
	errs := make([]error, len(regs))
	for i, r := range regs {
		wg.Go(func() { _, _, errs[i] = e.svc.FinishSecurityKey(ctx, p, r.ceremony, r.resp, e.client) })
	}
	wg.Wait()
	recs, _ := e.st.ListWebAuthnCredentials(ctx, p.Account.ID)
	if len(recs) != 2 {
		t.Fatalf("%d keys registered, limit 2 (errors %v)", len(recs), errs)
	}
}

func TestSameKeyTwice(t *testing.T) {
	e := newEnv(t)
	p := e.user(true)
	e.addKey(p, "one", false)
	// The browser refuses an excluded key; a forged finish with the same
	// credential ID is refused by the server.
	ch, _ := e.svc.BeginSecurityKey(ctx, p, "again", false)
	if _, err := e.key.Create(ch.Options); err == nil {
		t.Fatal("excluded key registered in the browser")
	}
	// Another account cannot register a credential ID that is taken.
	rec, _ := e.st.ListWebAuthnCredentials(ctx, p.Account.ID)
	dup := rec[0]
	dup.ID, dup.AccountID = "other", "acct-bob"
	if err := e.st.CreateWebAuthnCredential(ctx, dup); err != store.ErrAlreadyExists {
		t.Errorf("duplicate credential ID: %v", err)
	}
}

func TestPasskeySignIn(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	k, _ := e.addKey(p, "", true)
	if !k.Passkey || k.Name != "Passkey" {
		t.Fatalf("passkey %+v", k)
	}
	ch, err := e.svc.BeginPasskeySignIn(ctx, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.key.Get(ch.Options)
	if err != nil {
		t.Fatal(err)
	}
	id, err := e.svc.FinishPasskeySignIn(ctx, ch.Ceremony, resp)
	if err != nil || id != p.Account.ID {
		t.Fatalf("FinishPasskeySignIn = %q, %v", id, err)
	}
	// Replay.
	_, err = e.svc.FinishPasskeySignIn(ctx, ch.Ceremony, resp)
	wantCode(t, err, apperr.TokenExpired)
	// A passkey also works as the second factor.
	if err := e.factor(mfa.MethodWebAuthn).Verify(ctx, p.Account.ID, e.keyAnswer(p.Account.ID)); err != nil {
		t.Errorf("passkey as second factor: %v", err)
	}
	// A second-factor ceremony cannot be finished as a passwordless one.
	ch2, _ := e.factor(mfa.MethodWebAuthn).(mfa.Challenger).Challenge(ctx, p.Account.ID)
	resp, _ = e.key.Get(ch2.Options)
	_, err = e.svc.FinishPasskeySignIn(ctx, ch2.Ceremony, resp)
	wantCode(t, err, apperr.TokenExpired)
}

// TestSecurityKeyCannotSignInAlone: a non-discoverable key answers no
// passwordless request, and a forged user handle does not help.
func TestSecurityKeyCannotSignInAlone(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	e.addKey(p, "key", false)
	ch, _ := e.svc.BeginPasskeySignIn(ctx, "192.0.2.1")
	if _, err := e.key.Get(ch.Options); err == nil {
		t.Fatal("a security key answered a passkey request")
	}
	// Forge: answer a second-factor request, then present it with a user
	// handle to the passwordless ceremony.
	lch, _ := e.factor(mfa.MethodWebAuthn).(mfa.Challenger).Challenge(ctx, p.Account.ID)
	resp, _ := e.key.Get(lch.Options)
	forged := strings.Replace(string(resp), `"signature"`, `"userHandle":"`+webauthn.EncodeID([]byte(p.Account.ID))+`","signature"`, 1)
	_, err := e.svc.FinishPasskeySignIn(ctx, ch.Ceremony, []byte(forged))
	wantCode(t, err, apperr.Invalid)
}

func TestCeremonyCleanup(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		if _, err := e.svc.BeginPasskeySignIn(ctx, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := e.svc.DeleteExpiredCeremonies(ctx); n != 0 {
		t.Errorf("deleted %d live ceremonies", n)
	}
	e.clk.Advance(6 * time.Minute)
	if n, _ := e.svc.DeleteExpiredCeremonies(ctx); n != 3 {
		t.Errorf("deleted %d expired ceremonies, want 3", n)
	}
}

// TestPasskeyBeginPerIPLimit: starting passwordless sign-ins needs no
// account, and each start stores a ceremony, so one network gets
// PasskeyBeginLimit per window; other networks are not affected and the
// limit ends with the window.
func TestPasskeyBeginPerIPLimit(t *testing.T) {
	e := newEnv(t)
	const script = "203.0.113.66"
	for i := range mfa.PasskeyBeginLimit {
		if _, err := e.svc.BeginPasskeySignIn(ctx, script); err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
	}
	_, err := e.svc.BeginPasskeySignIn(ctx, script)
	ae := wantCode(t, err, apperr.RateLimited)
	if ae.RetryAfter <= 0 || ae.RetryAfter > mfa.PasskeyBeginWindow {
		t.Errorf("RetryAfter = %v", ae.RetryAfter)
	}
	if _, err := e.svc.BeginPasskeySignIn(ctx, "192.0.2.9"); err != nil {
		t.Errorf("another network: %v", err)
	}
	e.clk.Advance(ae.RetryAfter)
	if _, err := e.svc.BeginPasskeySignIn(ctx, script); err != nil {
		t.Errorf("next window: %v", err)
	}
}
