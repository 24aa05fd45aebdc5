package account

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/store"
)

const (
	subjReset     = "Reset your"
	subjResetDone = "password was reset"
	newPassword   = "quiet harbour copper meadow"
)

// requestLink asks for a reset link for addr and returns its token.
func (e *env) requestLink(addr string) string {
	e.t.Helper()
	e.markSeen(addr)
	if err := e.svc.RequestPasswordReset(e.ctx, addr, client("192.0.2.50", "")); err != nil {
		e.t.Fatalf("RequestPasswordReset: %v", err)
	}
	return linkToken(e.t, e.lastMail(addr, subjReset).Body, PathResetPassword)
}

// passwordIs reports whether pw is the account's password now.
func (e *env) passwordIs(accountID, pw string) bool {
	e.t.Helper()
	a, err := e.st.GetAccount(e.ctx, accountID)
	if err != nil {
		e.t.Fatal(err)
	}
	ok, _, err := e.svc.hasher.Verify(pw, a.PasswordHash)
	if err != nil {
		e.t.Fatal(err)
	}
	return ok
}

// Known and unknown addresses get the same answer, the same counting and
// no e-mail sent inline: only the known one leaves a message in the
// outbox, unsent.
func TestResetRequestEnumeration(t *testing.T) {
	run := func(addr string) ([]string, *env) {
		e := newEnv(t, func(c *Config) { c.IPLimit = 8 })
		e.signUpConfirmed(e.email, goodPassword)
		e.markSeen(e.email)
		var out []string
		for i := range 10 { // past mailLimit and the IP limit
			err := e.svc.RequestPasswordReset(e.ctx, addr, client("198.51.100.7", ""))
			out = append(out, fmt.Sprintf("%d %s|%s|%v", i, apperr.CodeOf(err), apperr.MessageOf(err), retryAfter(err)))
		}
		return out, e
	}
	known, ek := run("Jane@Example.com ")
	unknown, eu := run("nobody@example.com")
	if !strings.HasPrefix(known[0], "0 |") {
		t.Fatalf("first answer %q", known[0])
	}
	for i := range known {
		if known[i] != unknown[i] {
			t.Errorf("request %d differs:\n  existing: %s\n  unknown:  %s", i, known[i], unknown[i])
		}
	}
	if !strings.HasPrefix(known[8], "8 rate_limited|") {
		t.Errorf("the IP limit did not apply: %q", known[8])
	}
	// mailLimit e-mails to the owner at most, all waiting in the outbox.
	got := ek.mails(ek.email)
	n := 0
	for _, m := range got {
		if strings.Contains(m.Subject, subjReset) {
			n++
			if !m.SentAt.IsZero() || m.Attempts != 0 {
				t.Errorf("reset e-mail sent inline: %+v", m)
			}
		}
	}
	if n != mailLimit-1 { // the sign-up's confirmation counted too
		t.Errorf("%d reset e-mails, want %d (the per-address limit)", n, mailLimit-1)
	}
	all, err := eu.st.ListOutbox(eu.ctx, "email", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		if strings.Contains(m.Subject, subjReset) {
			t.Errorf("a reset e-mail for an unknown address: %+v", m)
		}
	}
	// Malformed addresses are refused alike, before anything is counted
	// against an address.
	err = ek.svc.RequestPasswordReset(ek.ctx, "not an address", client("198.51.100.8", ""))
	if ae := wantCode(t, err, apperr.Invalid); ae.Field != "email" {
		t.Errorf("field %q", ae.Field)
	}
}

func retryAfter(err error) time.Duration {
	if e, ok := apperr.As(err); ok {
		return e.RetryAfter
	}
	return 0
}

// The whole path: link, form check, reset; single use; the hold, the
// e-mail, the audit and the new password.
func TestResetPassword(t *testing.T) {
	e := newEnv(t)
	a := e.signUpConfirmed(e.email, goodPassword)
	e.clk.Advance(time.Hour)
	tok := e.requestLink(e.email)
	e.wantAudit(a.ID, "password.reset_requested")

	link, err := e.svc.CheckResetLink(e.ctx, tok)
	if err != nil || link.Email != "j•••@example.com" || len(link.Factors) != 0 {
		t.Fatalf("CheckResetLink = %+v, %v", link, err)
	}
	// A weak password is refused on its field and leaves the link usable.
	_, err = e.svc.ResetPassword(e.ctx, tok, "password123", "", "", client("192.0.2.51", ""))
	if ae := wantCode(t, err, apperr.WeakPassword); ae.Field != "new_password" {
		t.Errorf("field %q", ae.Field)
	}
	_, err = e.svc.ResetPassword(e.ctx, tok, strings.Repeat("x", 5000), "", "", client("192.0.2.51", ""))
	if ae, _ := apperr.As(err); ae == nil || ae.Field != "new_password" {
		t.Errorf("a huge password: %v", err)
	}

	e.clk.Advance(time.Minute)
	now := e.clk.Now()
	done, err := e.svc.ResetPassword(e.ctx, tok, newPassword, "", "", client("192.0.2.51", ""))
	if err != nil {
		t.Fatalf("ResetPassword: %v", err)
	}
	if want := now.Add(24 * time.Hour); !done.HoldUntil.Equal(want) {
		t.Errorf("HoldUntil %v, want %v", done.HoldUntil, want)
	}
	got, _ := e.st.GetAccount(e.ctx, a.ID)
	if !got.SecurityHoldUntil.Equal(done.HoldUntil) || !got.PasswordChangedAt.Equal(now) {
		t.Errorf("account after reset: %+v", got)
	}
	if !e.passwordIs(a.ID, newPassword) {
		t.Fatal("the password did not change")
	}
	body := e.lastMail(e.email, subjResetDone).Body
	for _, want := range []string{"192.0.2.51", notify.Time(done.HoldUntil), "https://moat.test/secure?token="} {
		if !strings.Contains(body, want) {
			t.Errorf("reset-done e-mail lacks %q:\n%s", want, body)
		}
	}
	if d := e.auditData(a.ID, "password.reset"); d["sessions_revoked"] != float64(0) || d["factor"] != nil {
		t.Errorf("audit %v", d)
	}

	// Single use.
	_, err = e.svc.ResetPassword(e.ctx, tok, "amber lighthouse gravel tulip", "", "", client("192.0.2.51", ""))
	wantCode(t, err, apperr.TokenUsed)
	_, err = e.svc.CheckResetLink(e.ctx, tok)
	wantCode(t, err, apperr.TokenUsed)
	if !e.passwordIs(a.ID, newPassword) {
		t.Fatal("a used link changed the password")
	}

	// The new password signs in, the old one does not.
	_, err = e.svc.SignIn(e.ctx, e.email, goodPassword, client("192.0.2.51", ""))
	wantCode(t, err, apperr.BadCredential)
	e.signIn(e.email, newPassword, client("192.0.2.51", ""))

	// A hold that ends later is kept.
	far := e.clk.Now().Add(7 * 24 * time.Hour)
	if _, err := e.st.UpdateAccount(e.ctx, a.ID, func(x *store.Account) error { x.SecurityHoldUntil = far; return nil }); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(time.Minute)
	done, err = e.svc.ResetPassword(e.ctx, e.requestLink(e.email), goodPassword, "", "", client("192.0.2.51", ""))
	if err != nil || !done.HoldUntil.Equal(far) {
		t.Fatalf("longer hold: %+v, %v", done, err)
	}

	// Garbage tokens.
	for _, bad := range []string{"", "nope", strings.Repeat("a", 500)} {
		_, err = e.svc.CheckResetLink(e.ctx, bad)
		wantCode(t, err, apperr.TokenInvalid)
		_, err = e.svc.ResetPassword(e.ctx, bad, newPassword, "", "", client("192.0.2.51", ""))
		wantCode(t, err, apperr.TokenInvalid)
	}
}

// Two resets with one link at once: exactly one changes the password.
func TestResetConcurrentUse(t *testing.T) {
	e := newEnv(t)
	a := e.signUpConfirmed(e.email, goodPassword)
	tok := e.requestLink(e.email)
	pws := []string{newPassword, "amber lighthouse gravel tulip", "silver canyon walnut harp", "mossy anchor violet drum"}
	var wg sync.WaitGroup
	errs := make([]error, len(pws))
	gun := make(chan struct{})
	for i, pw := range pws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gun
			_, errs[i] = e.svc.ResetPassword(e.ctx, tok, pw, "", "", client("192.0.2.51", ""))
		}()
	}
	close(gun)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch apperr.CodeOf(err) {
		case "":
			if winner >= 0 {
				t.Fatalf("resets %d and %d both succeeded", winner, i)
			}
			winner = i
		case apperr.TokenUsed, apperr.TokenInvalid:
		default:
			t.Errorf("reset %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no reset succeeded")
	}
	if !e.passwordIs(a.ID, pws[winner]) {
		t.Fatal("the password is not the winner's")
	}
	if n := e.mailsWith(e.email, subjResetDone); n != 1 {
		t.Errorf("%d reset-done e-mails, want 1", n)
	}
}

func TestResetLinkExpires(t *testing.T) {
	e := newEnv(t)
	a := e.signUpConfirmed(e.email, goodPassword)
	tok := e.requestLink(e.email)
	e.clk.Advance(29 * time.Minute)
	if _, err := e.svc.CheckResetLink(e.ctx, tok); err != nil {
		t.Fatalf("29 minutes: %v", err)
	}
	e.clk.Advance(2 * time.Minute)
	_, err := e.svc.CheckResetLink(e.ctx, tok)
	wantCode(t, err, apperr.TokenExpired)
	_, err = e.svc.ResetPassword(e.ctx, tok, newPassword, "", "", client("192.0.2.51", ""))
	wantCode(t, err, apperr.TokenExpired)
	if !e.passwordIs(a.ID, goodPassword) {
		t.Fatal("an expired link changed the password")
	}
}

// A password change voids outstanding links, and so does anything that
// changed the password after a link was made.
func TestResetLinkVoidedByPasswordChange(t *testing.T) {
	e := newEnv(t)
	a := e.signUpConfirmed(e.email, goodPassword)
	tok := e.requestLink(e.email)
	s := e.signIn(e.email, goodPassword, client("192.0.2.51", ""))
	p, err := e.svc.Authenticate(e.ctx, s.Token, client("192.0.2.51", ""))
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(time.Minute)
	if err := e.svc.ChangePassword(e.ctx, p, goodPassword, newPassword, client("192.0.2.51", "")); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.CheckResetLink(e.ctx, tok)
	wantCode(t, err, apperr.TokenInvalid)
	_, err = e.svc.ResetPassword(e.ctx, tok, "amber lighthouse gravel tulip", "", "", client("192.0.2.51", ""))
	wantCode(t, err, apperr.TokenInvalid)
	if !e.passwordIs(a.ID, newPassword) {
		t.Fatal("a voided link changed the password")
	}

	// A link that survived a change (a race with it) is refused by the
	// change's time.
	tok = e.requestLink(e.email)
	e.clk.Advance(time.Minute)
	if _, err := e.st.UpdateAccount(e.ctx, a.ID, func(x *store.Account) error { x.PasswordChangedAt = e.clk.Now(); return nil }); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.ResetPassword(e.ctx, tok, "amber lighthouse gravel tulip", "", "", client("192.0.2.51", ""))
	if ae := wantCode(t, err, apperr.TokenInvalid); !strings.Contains(ae.Message, "changed after") {
		t.Errorf("message %q", ae.Message)
	}
}

func TestResetLinkVoidedByNewerLink(t *testing.T) {
	e := newEnv(t)
	a := e.signUpConfirmed(e.email, goodPassword)
	first := e.requestLink(e.email)
	e.clk.Advance(time.Minute)
	second := e.requestLink(e.email)
	_, err := e.svc.CheckResetLink(e.ctx, first)
	wantCode(t, err, apperr.TokenInvalid)
	_, err = e.svc.ResetPassword(e.ctx, first, newPassword, "", "", client("192.0.2.51", ""))
	wantCode(t, err, apperr.TokenInvalid)
	if _, err := e.svc.ResetPassword(e.ctx, second, newPassword, "", "", client("192.0.2.51", "")); err != nil {
		t.Fatal(err)
	}
	if !e.passwordIs(a.ID, newPassword) {
		t.Fatal("not reset")
	}
}

// Every session is signed out, on this node at once; a sign-in that began
// with the old password cannot finish.
func TestResetRevokesSessions(t *testing.T) {
	f := newFakeFactor("totp")
	e := newEnvWith(t, func(d *Deps) {}, func(c *Config) { c.DeviceApproval = false })
	e.svc.RegisterFactor(f)
	a := e.signUpConfirmed(e.email, goodPassword)
	s1 := e.signIn(e.email, goodPassword, client("192.0.2.51", ""))
	s2 := e.signIn(e.email, goodPassword, client("192.0.2.52", ""))
	for _, s := range []*IssuedSession{s1, s2} { // cached on this node
		if _, err := e.svc.Authenticate(e.ctx, s.Token, client("192.0.2.51", "")); err != nil {
			t.Fatal(err)
		}
	}
	f.enroll(a.ID)
	stale, err := e.svc.SignIn(e.ctx, e.email, goodPassword, client("203.0.113.9", ""))
	if err != nil || stale.Step != StepSecondFactor {
		t.Fatalf("%+v, %v", stale, err)
	}

	e.clk.Advance(time.Second)
	tok := e.requestLink(e.email)
	if _, err := e.svc.ResetPassword(e.ctx, tok, newPassword, "totp", "right", client("192.0.2.53", "")); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*IssuedSession{s1, s2} {
		_, err := e.svc.Authenticate(e.ctx, s.Token, client("192.0.2.51", ""))
		wantCode(t, err, apperr.Unauthorized)
	}
	if n := len(e.liveSessions(a.ID)); n != 0 {
		t.Errorf("%d live sessions after the reset", n)
	}
	if d := e.auditData(a.ID, "password.reset"); d["sessions_revoked"] != float64(2) || d["factor"] != "totp" {
		t.Errorf("audit %v", d)
	}
	_, err = e.svc.VerifySecondFactor(e.ctx, stale.PendingToken, "totp", "right", client("203.0.113.9", ""))
	wantCode(t, err, apperr.TokenExpired)
	_, err = e.svc.StartSecondFactor(e.ctx, stale.PendingToken, "totp", client("203.0.113.9", ""))
	wantCode(t, err, apperr.TokenExpired)
	_, err = e.svc.PendingSecondFactorAccount(e.ctx, stale.PendingToken)
	wantCode(t, err, apperr.TokenInvalid)
}

// A reset cannot go around the second factor: no factor, a factor the
// account lacks, a wrong code all leave the password as it was; the fifth
// wrong code voids the link.
func TestResetNeedsSecondFactor(t *testing.T) {
	app, sms := newFakeFactor("totp"), newFakeFactor("sms")
	e := newEnvWith(t, func(d *Deps) {}, func(c *Config) { c.DeviceApproval = false })
	e.svc.RegisterFactor(app)
	e.svc.RegisterFactor(sms)
	a := e.signUpConfirmed(e.email, goodPassword)
	app.enroll(a.ID)
	tok := e.requestLink(e.email)
	link, err := e.svc.CheckResetLink(e.ctx, tok)
	if err != nil || strings.Join(link.Factors, ",") != "totp" {
		t.Fatalf("%+v, %v", link, err)
	}
	c := client("203.0.113.9", "")
	for _, tc := range []struct{ factor, response, field string }{
		{"", "", "factor"},
		{"", "right", "factor"},
		{"sms", "right", "factor"},      // registered, not enrolled
		{"webauthn", "right", "factor"}, // not registered
		{"backup_code", "right", "factor"},
		{"totp", "", "response"},
		{"totp", "   ", "response"},
	} {
		_, err := e.svc.ResetPassword(e.ctx, tok, newPassword, tc.factor, tc.response, c)
		if ae := wantCode(t, err, apperr.Invalid); ae.Field != tc.field {
			t.Errorf("%+v: field %q", tc, ae.Field)
		}
	}
	if app.calls.Load() != 0 || sms.calls.Load() != 0 {
		t.Fatal("a factor was asked before the request named one the account has")
	}
	// A weak password is refused before the factor is asked (and spent).
	_, err = e.svc.ResetPassword(e.ctx, tok, "password123", "totp", "right", c)
	wantCode(t, err, apperr.WeakPassword)
	if app.calls.Load() != 0 {
		t.Fatal("the factor was asked for a password that cannot be used")
	}
	for i := 1; i <= 4; i++ {
		_, err = e.svc.ResetPassword(e.ctx, tok, newPassword, "totp", "wrong", c)
		ae := wantCode(t, err, apperr.TokenInvalid)
		if ae.Field != "response" || !strings.Contains(ae.Message, fmt.Sprint(maxCodeAttempts-i, " tr")) {
			t.Errorf("try %d: %+v", i, ae)
		}
	}
	if !e.passwordIs(a.ID, goodPassword) {
		t.Fatal("the password changed without the factor")
	}
	_, err = e.svc.ResetPassword(e.ctx, tok, newPassword, "totp", "wrong", c)
	if ae := wantCode(t, err, apperr.TokenExpired); ae.Field != "" {
		t.Errorf("last try: %+v", ae)
	}
	e.wantAudit(a.ID, "password.reset_failed", "password.reset_voided")
	// Voided: even the right code does nothing now.
	_, err = e.svc.ResetPassword(e.ctx, tok, newPassword, "totp", "right", c)
	if ae := wantCode(t, err, apperr.TokenUsed); !strings.Contains(ae.Message, "too many wrong codes") {
		t.Errorf("message %q", ae.Message)
	}
	_, err = e.svc.CheckResetLink(e.ctx, tok)
	wantCode(t, err, apperr.TokenUsed)
	if !e.passwordIs(a.ID, goodPassword) {
		t.Fatal("the password changed with a voided link")
	}

	// A factor's refusal that is not a wrong answer is not counted.
	tok = e.requestLink(e.email)
	app.mu.Lock()
	app.refuse = apperr.New(apperr.RateLimited, "Too many codes. Wait a minute.")
	app.mu.Unlock()
	for range 7 {
		_, err = e.svc.ResetPassword(e.ctx, tok, newPassword, "totp", "right", c)
		wantCode(t, err, apperr.RateLimited)
	}
	app.mu.Lock()
	app.refuse = nil
	app.mu.Unlock()
	if _, err := e.svc.ResetPassword(e.ctx, tok, newPassword, "totp", "right", c); err != nil {
		t.Fatalf("right code: %v", err)
	}
	if !e.passwordIs(a.ID, newPassword) {
		t.Fatal("not reset")
	}
}

// The 2FA policy that makes a factor mandatory while no registered factor
// is enrolled refuses the reset instead of skipping the factor.
func TestResetFailsClosed(t *testing.T) {
	pol := newFakePolicy()
	pol.all = true
	e := newEnvWith(t, func(d *Deps) { d.SignInPolicy = pol })
	e.svc.RegisterFactor(newFakeFactor("totp"))
	a := e.signUpConfirmed(e.email, goodPassword)
	tok := e.requestLink(e.email)
	_, err := e.svc.ResetPassword(e.ctx, tok, newPassword, "", "", client("192.0.2.51", ""))
	wantCode(t, err, apperr.Forbidden)
	if !e.passwordIs(a.ID, goodPassword) {
		t.Fatal("reset without the factor the policy asks for")
	}
}

// An unconfirmed account gets a link too; using it confirms the address.
func TestResetConfirmsAddress(t *testing.T) {
	e := newEnv(t)
	if err := e.svc.SignUp(e.ctx, e.email, goodPassword, client("192.0.2.1", "")); err != nil {
		t.Fatal(err)
	}
	tok := e.requestLink(e.email)
	if _, err := e.svc.ResetPassword(e.ctx, tok, newPassword, "", "", client("192.0.2.51", "")); err != nil {
		t.Fatal(err)
	}
	a, _ := e.st.GetAccountByEmail(e.ctx, e.email)
	if a.EmailConfirmedAt.IsZero() {
		t.Fatal("the address is still unconfirmed")
	}
	if d := e.auditData(a.ID, "password.reset"); d["email_confirmed"] != true {
		t.Errorf("audit %v", d)
	}
	e.signIn(e.email, newPassword, client("192.0.2.51", ""))
}

// A reset neither works on a locked account nor unlocks it.
func TestResetLockedAccount(t *testing.T) {
	e := newEnv(t)
	a := e.signUpConfirmed(e.email, goodPassword)
	tok := e.requestLink(e.email)
	if err := e.svc.Lock(e.ctx, e.email, "fraud check", "staff:1"); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.CheckResetLink(e.ctx, tok)
	if ae := wantCode(t, err, apperr.AccountLocked); !strings.Contains(ae.Message, "Contact support") {
		t.Errorf("message %q", ae.Message)
	}
	_, err = e.svc.ResetPassword(e.ctx, tok, newPassword, "", "", client("192.0.2.51", ""))
	wantCode(t, err, apperr.AccountLocked)
	_, err = e.svc.ResetLinkAccount(e.ctx, tok)
	wantCode(t, err, apperr.AccountLocked)
	e.markSeen(e.email)
	if err := e.svc.RequestPasswordReset(e.ctx, e.email, client("192.0.2.50", "")); err != nil {
		t.Fatal(err)
	}
	if e.mailsWith(e.email, subjReset) != 1 {
		t.Fatal("a locked account got a new reset link")
	}
	got, _ := e.st.GetAccount(e.ctx, a.ID)
	if got.LockedAt.IsZero() || !e.passwordIs(a.ID, goodPassword) {
		t.Fatalf("locked account changed: %+v", got)
	}
	// Unlocked by staff, the owner asks for a new link.
	if err := e.svc.Unlock(e.ctx, e.email, "staff:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ResetPassword(e.ctx, e.requestLink(e.email), newPassword, "", "", client("192.0.2.51", "")); err != nil {
		t.Fatal(err)
	}
}

func TestStartResetFactor(t *testing.T) {
	e := newEnvWith(t, func(d *Deps) { d.Challenges = ChallengesOf[fakeChallenge]() })
	key, app := newChallengeFactor("webauthn"), newFakeFactor("totp")
	e.svc.RegisterFactor(key)
	e.svc.RegisterFactor(app)
	a := e.signUpConfirmed(e.email, goodPassword)
	key.enroll(a.ID)
	tok := e.requestLink(e.email)
	c := client("192.0.2.51", "")

	ch, err := e.svc.StartResetFactor(e.ctx, tok, "webauthn", c)
	if got, ok := ch.(fakeChallenge); err != nil || !ok || got != (fakeChallenge{"webauthn", a.ID, 1}) {
		t.Fatalf("challenge %#v, %v", ch, err)
	}
	if d := e.auditData(a.ID, "password.reset_challenge"); d["factor"] != "webauthn" {
		t.Errorf("audit %v", d)
	}
	for _, f := range []string{"totp", "sms", ""} {
		_, err = e.svc.StartResetFactor(e.ctx, tok, f, c)
		if ae := wantCode(t, err, apperr.Invalid); ae.Field != "factor" {
			t.Errorf("%q: %+v", f, ae)
		}
	}
	for range maxChallenges - 1 {
		if _, err := e.svc.StartResetFactor(e.ctx, tok, "webauthn", c); err != nil {
			t.Fatal(err)
		}
	}
	_, err = e.svc.StartResetFactor(e.ctx, tok, "webauthn", c)
	wantCode(t, err, apperr.RateLimited)
	if key.sentCount() != maxChallenges {
		t.Errorf("%d challenges sent, want %d", key.sentCount(), maxChallenges)
	}
	_, err = e.svc.StartResetFactor(e.ctx, "nope", "webauthn", c)
	wantCode(t, err, apperr.TokenInvalid)
	if _, err := e.svc.ResetPassword(e.ctx, tok, newPassword, "webauthn", "right", c); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.StartResetFactor(e.ctx, tok, "webauthn", c)
	wantCode(t, err, apperr.TokenUsed)
}

// The counters of a link live in one window from its creation to its
// expiry, wherever the creation falls.
func TestResetLinkWindow(t *testing.T) {
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5000 {
		created := base.Add(time.Duration(i) * 7919 * time.Millisecond * 13)
		l := resetLink{token: store.Token{CreatedAt: created, ExpiresAt: created.Add(ResetLinkTTL)}}
		w := l.window()
		if created.UnixNano()/int64(w) != created.Add(ResetLinkTTL).UnixNano()/int64(w) {
			t.Fatalf("link made at %v: window %v splits its life", created, w)
		}
		if w > 3*ResetLinkTTL {
			t.Fatalf("window %v", w)
		}
	}
}

func TestResetLinkAccount(t *testing.T) {
	e := newEnv(t)
	a := e.signUpConfirmed(e.email, goodPassword)
	tok := e.requestLink(e.email)
	got, err := e.svc.ResetLinkAccount(e.ctx, tok)
	if err != nil || got.ID != a.ID {
		t.Fatalf("%+v, %v", got, err)
	}
	// Not used up by the look.
	if _, err := e.svc.ResetPassword(e.ctx, tok, newPassword, "", "", client("192.0.2.51", "")); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.ResetLinkAccount(e.ctx, tok)
	wantCode(t, err, apperr.TokenUsed)
}

func TestPendingSecondFactorAccount(t *testing.T) {
	f := newFakeFactor("totp")
	e := newEnv(t)
	e.svc.RegisterFactor(f)
	a := e.signUpConfirmed(e.email, goodPassword)
	f.enroll(a.ID)
	c := client("192.0.2.51", "")
	e.markSeen(e.email)
	res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	if err != nil || res.Step != StepDeviceApproval {
		t.Fatalf("%+v, %v", res, err)
	}
	// Waiting for the device, not the factor.
	_, err = e.svc.PendingSecondFactorAccount(e.ctx, res.PendingToken)
	wantCode(t, err, apperr.TokenInvalid)
	code := mailCode(t, e.lastMail(e.email, subjDeviceCode).Body)
	if res, err = e.svc.ApproveDevice(e.ctx, res.PendingToken, code, c); err != nil || res.Step != StepSecondFactor {
		t.Fatalf("%+v, %v", res, err)
	}
	got, err := e.svc.PendingSecondFactorAccount(e.ctx, res.PendingToken)
	if err != nil || got.ID != a.ID {
		t.Fatalf("%+v, %v", got, err)
	}
	for _, bad := range []string{"", "nope"} {
		_, err = e.svc.PendingSecondFactorAccount(e.ctx, bad)
		wantCode(t, err, apperr.TokenInvalid)
	}
	e.clk.Advance(e.svc.cfg.DeviceCodeTTL)
	_, err = e.svc.PendingSecondFactorAccount(e.ctx, res.PendingToken)
	wantCode(t, err, apperr.TokenInvalid)
}

// The factor that completed a sign-in is on the session and the result,
// and the OnSignedIn hooks hear of it after the commit.
func TestSignInFactorAndHooks(t *testing.T) {
	e := newEnvWith(t, func(d *Deps) {}, func(c *Config) { c.DeviceApproval = false })
	app, codes := newFakeFactor("totp"), newFakeFactor("backup_code")
	e.svc.RegisterFactor(app)
	e.svc.RegisterFactor(codes)
	type call struct{ account, factor string }
	var mu sync.Mutex
	var calls []call
	e.svc.OnSignedIn(func(ctx context.Context, accountID, factor string) {
		// After the commit: the session is there to read.
		if n := len(e.liveSessions(accountID)); n == 0 {
			t.Error("hook ran before the session was committed")
		}
		if ctx.Err() != nil {
			t.Error("hook context cancelled")
		}
		mu.Lock()
		calls = append(calls, call{accountID, factor})
		mu.Unlock()
	})
	a := e.signUpConfirmed(e.email, goodPassword)
	c := client("192.0.2.51", "")

	s := e.signIn(e.email, goodPassword, c)
	if s.Session.SignInFactor != "" || len(calls) != 0 {
		t.Fatalf("password only: factor %q, hooks %v", s.Session.SignInFactor, calls)
	}
	app.enroll(a.ID)
	codes.enroll(a.ID)
	for _, f := range []string{"totp", "backup_code"} {
		res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, c)
		if err != nil || res.Step != StepSecondFactor {
			t.Fatalf("%+v, %v", res, err)
		}
		ctx, cancel := context.WithCancel(e.ctx)
		done, err := e.svc.VerifySecondFactor(ctx, res.PendingToken, f, "right", c)
		cancel()
		if err != nil || done.SignInFactor != f || done.Session.Session.SignInFactor != f {
			t.Fatalf("%s: %+v, %v", f, done, err)
		}
		stored, err := e.st.GetSessionByTokenHash(e.ctx, done.Session.Session.TokenHash)
		if err != nil || stored.SignInFactor != f {
			t.Fatalf("stored session %+v, %v", stored, err)
		}
		if last := calls[len(calls)-1]; last != (call{a.ID, f}) {
			t.Errorf("hook %+v", last)
		}
	}
	res, err := e.svc.SignInWithPasskey(e.ctx, a.ID, c)
	if err != nil || res.Step != StepDone || res.SignInFactor != "passkey" || res.Session.Session.SignInFactor != "passkey" {
		t.Fatalf("passkey: %+v, %v", res, err)
	}
	if last := calls[len(calls)-1]; last != (call{a.ID, "passkey"}) || len(calls) != 3 {
		t.Errorf("hooks %+v", calls)
	}
	// A wrong answer calls nothing.
	res, _ = e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	if _, err := e.svc.VerifySecondFactor(e.ctx, res.PendingToken, "totp", "wrong", c); err == nil {
		t.Fatal("wrong code accepted")
	}
	if len(calls) != 3 {
		t.Errorf("hooks after a wrong code: %+v", calls)
	}
}

// A passkey sign-in that waited for device approval is still a passkey
// sign-in.
func TestSignInFactorPasskeyAfterApproval(t *testing.T) {
	e := newEnv(t)
	var got []string
	e.svc.OnSignedIn(func(_ context.Context, _, factor string) { got = append(got, factor) })
	a := e.signUpConfirmed(e.email, goodPassword)
	c := client("192.0.2.51", "")
	e.markSeen(e.email)
	res, err := e.svc.SignInWithPasskey(e.ctx, a.ID, c)
	if err != nil || res.Step != StepDeviceApproval {
		t.Fatalf("%+v, %v", res, err)
	}
	if len(got) != 0 {
		t.Fatal("hook before the sign-in completed")
	}
	code := mailCode(t, e.lastMail(e.email, subjDeviceCode).Body)
	done, err := e.svc.ApproveDevice(e.ctx, res.PendingToken, code, c)
	if err != nil || done.Step != StepDone || done.Session.Session.SignInFactor != "passkey" {
		t.Fatalf("%+v, %v", done, err)
	}
	if strings.Join(got, ",") != "passkey" {
		t.Errorf("hooks %v", got)
	}
}

func TestStaffAccountTools(t *testing.T) {
	e := newEnv(t)
	a := e.signUpConfirmed(e.email, goodPassword)
	s1 := e.signIn(e.email, goodPassword, client("192.0.2.51", ""))
	s2 := e.signIn(e.email, goodPassword, client("192.0.2.52", ""))
	if _, err := e.svc.Authenticate(e.ctx, s1.Token, client("192.0.2.51", "")); err != nil {
		t.Fatal(err)
	}
	n, err := e.svc.RevokeAllSessions(e.ctx, a.ID, "staff:42")
	if err != nil || n != 2 {
		t.Fatalf("RevokeAllSessions = %d, %v", n, err)
	}
	for _, s := range []*IssuedSession{s1, s2} {
		_, err := e.svc.Authenticate(e.ctx, s.Token, client("192.0.2.51", ""))
		wantCode(t, err, apperr.Unauthorized)
	}
	_, err = e.svc.RevokeAllSessions(e.ctx, "no-such-account", "staff:42")
	wantCode(t, err, apperr.NotFound)

	got, err := e.svc.GetUser(e.ctx, a.ID)
	if err != nil || got.Email != e.email {
		t.Fatalf("GetUser = %+v, %v", got, err)
	}
	for _, id := range []string{"", "nope"} {
		_, err = e.svc.GetUser(e.ctx, id)
		wantCode(t, err, apperr.NotFound)
	}

	// Reading the trail is itself on it, first, with who read it; then
	// the staff revocation.
	trail, err := e.svc.AuditTrail(e.ctx, a.ID, "staff:43", 0)
	if err != nil || len(trail) < 2 || trail[0].Type != "staff.viewed_account" || trail[0].ActorID != "staff:43" ||
		trail[1].Type != "session.revoked_all" || trail[1].ActorID != "staff:42" {
		t.Fatalf("AuditTrail = %+v, %v", trail, err)
	}
	if acts, err := e.svc.RecentActivity(e.ctx, Principal{Account: a}, 50); err != nil {
		t.Fatal(err)
	} else {
		for _, act := range acts {
			if act.Type == "staff.viewed_account" {
				t.Error("the owner's activity lists a staff view")
			}
		}
	}
	for i := 1; i < len(trail); i++ {
		if trail[i].Seq >= trail[i-1].Seq {
			t.Fatal("not newest first")
		}
	}
	if trail, _ := e.svc.AuditTrail(e.ctx, a.ID, "staff:43", 2); len(trail) != 2 {
		t.Errorf("limit 2: %d events", len(trail))
	}
	_, err = e.svc.AuditTrail(e.ctx, "", "staff:43", 0)
	wantCode(t, err, apperr.NotFound)

	// DropSessions: a revocation made elsewhere is seen at once.
	s3 := e.signIn(e.email, goodPassword, client("192.0.2.51", ""))
	if _, err := e.svc.Authenticate(e.ctx, s3.Token, client("192.0.2.51", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.RevokeSessions(e.ctx, a.ID, "", e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	e.svc.DropSessions(a.ID)
	_, err = e.svc.Authenticate(e.ctx, s3.Token, client("192.0.2.51", ""))
	wantCode(t, err, apperr.Unauthorized)
}

// TestResetRequestInBackground: with Deps.Background set (as the server
// sets it), a reset request answers before any database work for the
// address: nothing is written when it returns, for an address with an
// account or without, so the answer's timing cannot tell them apart. The
// queued work then writes the link for the account only.
func TestResetRequestInBackground(t *testing.T) {
	var queued []func(context.Context)
	e := newEnvWith(t, func(d *Deps) {
		d.Background = func(task func(context.Context)) { queued = append(queued, task) }
	})
	e.signUpConfirmed(e.email, goodPassword)
	before := e.mailsWith(e.email, subjReset)
	c := client("198.51.100.7", "")
	for _, addr := range []string{e.email, "nobody@example.com"} {
		if err := e.svc.RequestPasswordReset(e.ctx, addr, c); err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
	}
	if len(queued) != 2 {
		t.Fatalf("%d tasks queued, want 2", len(queued))
	}
	if n := e.mailsWith(e.email, subjReset); n != before {
		t.Fatal("the link was written before the answer")
	}
	// Input that is wrong whoever owns it is still answered at once.
	wantCode(t, e.svc.RequestPasswordReset(e.ctx, "not an address", c), apperr.Invalid)
	if len(queued) != 2 {
		t.Fatal("an invalid address queued work")
	}
	for _, task := range queued {
		task(context.Background()) // the request's context has ended by now
	}
	if n := e.mailsWith(e.email, subjReset); n != before+1 {
		t.Fatalf("%d reset e-mails after the work ran, want %d", n, before+1)
	}
}
