package mfa_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/mfa"
)

func TestBackupCodesSingleUse(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	_, codes := e.enrolTOTP(p)
	f := e.factor(mfa.MethodBackupCode)
	if ok, _ := f.Enrolled(ctx, p.Account.ID); !ok {
		t.Fatal("backup codes not enrolled with the first factor")
	}
	// Typed lower case without the dash: still the code.
	typed := strings.ToLower(strings.ReplaceAll(codes[0], "-", ""))
	if err := f.Verify(ctx, p.Account.ID, typed); err != nil {
		t.Fatalf("first use: %v", err)
	}
	ae := wantCode(t, f.Verify(ctx, p.Account.ID, codes[0]), apperr.TokenUsed)
	if !strings.Contains(ae.Message, "already used") {
		t.Errorf("message %q", ae.Message)
	}
	wantCode(t, f.Verify(ctx, p.Account.ID, "ABCDE-FGHJK"), apperr.TokenInvalid)
	wantCode(t, f.Verify(ctx, p.Account.ID, "not a code"), apperr.TokenInvalid)
	if n, _ := e.svc.BackupCodesRemaining(ctx, p.Account.ID); n != 9 {
		t.Errorf("remaining %d, want 9", n)
	}
	var used *mfa.Event
	for _, ev := range e.events() {
		if ev.Type == mfa.EventBackupCodeUsed {
			used = &ev
		}
	}
	if used == nil || !used.Notify || used.Data["remaining"] != 9 || !strings.Contains(used.Summary, "9 left") {
		t.Errorf("backup-code-used event %+v", used)
	}
	// Another account cannot use alice's codes.
	bob := e.principal("acct-bob", "bob@example.com", "user", false)
	e.enrolTOTP(bob)
	wantCode(t, f.Verify(ctx, bob.Account.ID, codes[1]), apperr.TokenInvalid)
}

func TestBackupCodesStoredHashed(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	_, codes := e.enrolTOTP(p)
	for _, ev := range e.events() {
		for _, c := range codes {
			if strings.Contains(ev.Summary, c) {
				t.Fatal("a backup code appears in an event")
			}
		}
	}
	// The store holds what the service gave it; spending with the raw code
	// as "hash" must not work (TestSecretsNotInDatabaseFile reads the file).
	if err := e.st.SpendBackupCode(ctx, p.Account.ID, []byte(strings.ReplaceAll(codes[0], "-", "")), start); err == nil {
		t.Fatal("the store knows a raw code")
	}
}

// TestBackupCodeConcurrentSpend: 20 simultaneous uses of one code, one wins.
func TestBackupCodeConcurrentSpend(t *testing.T) {
	e := newEnv(t, func(c *mfa.Config) { c.CodeAttempts = 100 })
	p := e.user(false)
	_, codes := e.enrolTOTP(p)
	f := e.factor(mfa.MethodBackupCode)
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() { errs[i] = f.Verify(ctx, p.Account.ID, codes[3]) })
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
		} else if apperr.CodeOf(err) != apperr.TokenUsed {
			t.Errorf("unexpected %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d wins, want 1", wins)
	}
}

func TestRegenerateBackupCodes(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	_, old := e.enrolTOTP(p)
	f := e.factor(mfa.MethodBackupCode)
	if err := f.Verify(ctx, p.Account.ID, old[0]); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.RegenerateBackupCodes(ctx, p, e.client)
	wantCode(t, err, apperr.StepUpNeeded)
	fresh, err := e.svc.RegenerateBackupCodes(ctx, e.user(true), e.client)
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh) != 10 {
		t.Fatalf("%d codes", len(fresh))
	}
	if n, _ := e.svc.BackupCodesRemaining(ctx, p.Account.ID); n != 10 {
		t.Errorf("remaining %d after regenerating", n)
	}
	// The old set is void, used or not.
	wantCode(t, f.Verify(ctx, p.Account.ID, old[1]), apperr.TokenInvalid)
	if err := f.Verify(ctx, p.Account.ID, fresh[9]); err != nil {
		t.Errorf("new code: %v", err)
	}
	types := e.eventTypes()
	if types[len(types)-2] != mfa.EventBackupGenerated {
		t.Errorf("events %v", types)
	}
	// Without a factor there is nothing to back up.
	bob := e.principal("acct-bob", "bob@example.com", "user", true)
	_, err = e.svc.RegenerateBackupCodes(ctx, bob, e.client)
	wantCode(t, err, apperr.Conflict)
}

// TestBackupCodesThrottled: guessing backup codes counts against the same
// per-account limit as app codes.
func TestBackupCodesThrottled(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	_, codes := e.enrolTOTP(p)
	f := e.factor(mfa.MethodBackupCode)
	for range 5 {
		wantCode(t, f.Verify(ctx, p.Account.ID, "ZZZZZ-ZZZZZ"), apperr.TokenInvalid)
	}
	wantCode(t, f.Verify(ctx, p.Account.ID, codes[0]), apperr.RateLimited)
	if n, _ := e.svc.BackupCodesRemaining(ctx, p.Account.ID); n != 10 {
		t.Errorf("a throttled attempt spent a code: %d left", n)
	}
}
