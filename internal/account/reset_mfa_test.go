package account_test

// Password reset with the real second factors (internal/mfa): a TOTP code
// works once, across sign-in and reset alike; a backup code works once; a
// security key answers the reset's own challenge.

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/mfa"
	"github.com/moat-dev/moat/internal/mfa/totp"
	"github.com/moat-dev/moat/internal/store"
)

var resetLinkRe = regexp.MustCompile(regexp.QuoteMeta(origin+account.PathResetPassword+"?token=") + `([A-Za-z0-9_-]+)`)

// resetLink asks for a reset link and returns its token (from the newest
// reset e-mail in the outbox).
func (w *world) resetLink(email string) string {
	w.t.Helper()
	if err := w.acct.RequestPasswordReset(w.ctx, email, w.web); err != nil {
		w.t.Fatalf("RequestPasswordReset: %v", err)
	}
	msgs, err := w.st.ListOutbox(w.ctx, "email", 1000)
	if err != nil {
		w.t.Fatal(err)
	}
	var newest store.OutboxMessage
	for _, m := range msgs {
		if m.To == email && strings.Contains(m.Subject, "Reset your") && (newest.ID == "" || m.CreatedAt.After(newest.CreatedAt)) {
			newest = m
		}
	}
	// Links made at one fake instant: the newest link voids the others,
	// so any that still checks out is the one.
	for _, m := range msgs {
		if m.To != email || !strings.Contains(m.Subject, "Reset your") || !m.CreatedAt.Equal(newest.CreatedAt) {
			continue
		}
		if sub := resetLinkRe.FindStringSubmatch(m.Body); sub != nil {
			if _, err := w.acct.CheckResetLink(w.ctx, sub[1]); err == nil {
				return sub[1]
			}
		}
	}
	w.t.Fatalf("no working reset link for %s", email)
	return ""
}

// enrolTOTPWithCodes is enrolTOTP that also returns the backup codes.
func (w *world) enrolTOTPWithCodes(p account.Principal) (func() string, []string) {
	w.t.Helper()
	en, err := w.mfa.BeginTOTP(w.ctx, p)
	if err != nil {
		w.t.Fatal(err)
	}
	seed, err := totp.ParseSecret(en.ManualKey)
	if err != nil {
		w.t.Fatal(err)
	}
	app := func() string { return totp.Code(seed, totp.Step(w.clk.Now())) }
	codes, err := w.mfa.ConfirmTOTP(w.ctx, p, app(), w.web)
	if err != nil || len(codes) == 0 {
		w.t.Fatalf("ConfirmTOTP: %v, %v", codes, err)
	}
	w.clk.Advance(totp.Period)
	return app, codes
}

func (w *world) passwordWorks(email, pw string) bool {
	w.t.Helper()
	_, err := w.acct.SignIn(w.ctx, email, pw, w.web)
	switch apperr.CodeOf(err) {
	case "":
		return true
	case apperr.BadCredential:
		return false
	}
	w.t.Fatalf("SignIn: %v", err)
	return false
}

func TestMFAResetWithTOTP(t *testing.T) {
	w := newWorld(t, mfa.DefaultConfig().Policy)
	a := w.user("jane@example.com", store.RoleUser)
	_, p := w.signIn(a.Email, password1)
	app := w.enrolTOTP(p)

	tok := w.resetLink(a.Email)
	link, err := w.acct.CheckResetLink(w.ctx, tok)
	if err != nil || strings.Join(link.Factors, ",") != "totp,backup_code" {
		t.Fatalf("%+v, %v", link, err)
	}
	_, err = w.acct.ResetPassword(w.ctx, tok, password2, "", "", w.web)
	wantCode(t, err, apperr.Invalid)
	_, err = w.acct.ResetPassword(w.ctx, tok, password2, mfa.MethodTOTP, w.wrongCode(app), w.web)
	wantCode(t, err, apperr.TokenInvalid)
	_, err = w.acct.ResetPassword(w.ctx, tok, password2, mfa.MethodWebAuthn, "{}", w.web)
	wantCode(t, err, apperr.Invalid) // no key enrolled

	// A code spent on a sign-in does not reset the password.
	code := app()
	res, err := w.acct.SignIn(w.ctx, a.Email, password1, w.web)
	if err != nil || res.Step != account.StepSecondFactor {
		t.Fatalf("%+v, %v", res, err)
	}
	if _, err := w.acct.VerifySecondFactor(w.ctx, res.PendingToken, mfa.MethodTOTP, code, w.web); err != nil {
		t.Fatal(err)
	}
	_, err = w.acct.ResetPassword(w.ctx, tok, password2, mfa.MethodTOTP, code, w.web)
	wantCode(t, err, apperr.TokenUsed)
	if !w.passwordWorks(a.Email, password1) {
		t.Fatal("the password changed with a replayed code")
	}

	w.clk.Advance(totp.Period)
	done, err := w.acct.ResetPassword(w.ctx, tok, password2, mfa.MethodTOTP, app(), w.web)
	if err != nil || !done.HoldUntil.After(w.clk.Now()) {
		t.Fatalf("reset: %+v, %v", done, err)
	}
	if d := w.audit(a.ID, "password.reset"); d["factor"] != mfa.MethodTOTP {
		t.Errorf("audit %v", d)
	}
	if w.passwordWorks(a.Email, password1) || !w.passwordWorks(a.Email, password2) {
		t.Fatal("the new password is not the one")
	}
}

func TestMFAResetWithBackupCode(t *testing.T) {
	w := newWorld(t, mfa.DefaultConfig().Policy)
	a := w.user("jane@example.com", store.RoleUser)
	_, p := w.signIn(a.Email, password1)
	_, codes := w.enrolTOTPWithCodes(p)

	if _, err := w.acct.ResetPassword(w.ctx, w.resetLink(a.Email), password2, mfa.MethodBackupCode, codes[0], w.web); err != nil {
		t.Fatalf("backup code: %v", err)
	}
	if n, _ := w.mfa.BackupCodesRemaining(w.ctx, a.ID); n != len(codes)-1 {
		t.Errorf("%d codes left", n)
	}
	// The same code again, on a new link: spent.
	tok := w.resetLink(a.Email)
	_, err := w.acct.ResetPassword(w.ctx, tok, password3, mfa.MethodBackupCode, codes[0], w.web)
	wantCode(t, err, apperr.TokenUsed)
	if !w.passwordWorks(a.Email, password2) {
		t.Fatal("a spent backup code reset the password")
	}
	if _, err := w.acct.ResetPassword(w.ctx, tok, password3, mfa.MethodBackupCode, codes[1], w.web); err != nil {
		t.Fatalf("next code: %v", err)
	}
}

func TestMFAResetWithSecurityKey(t *testing.T) {
	w := newWorld(t, mfa.DefaultConfig().Policy)
	a := w.user("jane@example.com", store.RoleUser)
	_, p := w.signIn(a.Email, password1)
	w.addKey(p, false)

	tok := w.resetLink(a.Email)
	ch, err := w.acct.StartResetFactor(w.ctx, tok, mfa.MethodWebAuthn, w.web)
	c, ok := ch.(mfa.Challenge)
	if err != nil || !ok || c.Ceremony == "" {
		t.Fatalf("challenge %#v, %v", ch, err)
	}
	cred, err := w.key.Get(c.Options)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := json.Marshal(mfa.KeyResponse{Ceremony: c.Ceremony, Credential: cred})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.acct.ResetPassword(w.ctx, tok, password2, mfa.MethodWebAuthn, string(answer), w.web); err != nil {
		t.Fatalf("key: %v", err)
	}
	// The answer again, on a new link: its ceremony is spent.
	_, err = w.acct.ResetPassword(w.ctx, w.resetLink(a.Email), password3, mfa.MethodWebAuthn, string(answer), w.web)
	if apperr.CodeOf(err) == "" {
		t.Fatal("a replayed key answer reset the password")
	}
	if !w.passwordWorks(a.Email, password2) {
		t.Fatal("wrong password")
	}
}
