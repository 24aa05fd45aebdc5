package account

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

func TestSignUpConfirmSignIn(t *testing.T) {
	e := newEnv(t)
	c := client("192.0.2.10", "")
	if err := e.svc.SignUp(e.ctx, "  Jane@Example.COM ", goodPassword, c); err != nil {
		t.Fatal(err)
	}
	a, err := e.st.GetAccountByEmail(e.ctx, "jane@example.com")
	if err != nil {
		t.Fatalf("account not stored under the normalised address: %v", err)
	}
	if !strings.HasPrefix(a.PasswordHash, "$argon2id$") || strings.Contains(a.PasswordHash, goodPassword) {
		t.Fatalf("password stored as %q", a.PasswordHash)
	}
	if !a.EmailConfirmedAt.IsZero() {
		t.Fatal("confirmed before the link was followed")
	}

	// Signing in before confirming: a correct password learns it must
	// confirm; a wrong one learns nothing.
	_, err = e.svc.SignIn(e.ctx, e.email, "wrong password here", c)
	wantCode(t, err, apperr.BadCredential)
	_, err = e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	if ae := wantCode(t, err, apperr.Unconfirmed); !strings.Contains(ae.Message, "link") {
		t.Errorf("unconfirmed message %q does not point to the link", ae.Message)
	}

	tok := linkToken(t, e.lastMail(e.email, subjConfirm).Body, PathConfirmEmail)
	// Only the hash of the link's token is stored.
	if _, err := e.st.ConsumeToken(e.ctx, store.TokenEmailConfirm, []byte(tok), e.clk.Now()); err == nil {
		t.Fatal("the raw token was stored")
	}
	got, err := e.svc.ConfirmEmail(e.ctx, tok, c)
	if err != nil {
		t.Fatal(err)
	}
	if got.EmailConfirmedAt.IsZero() {
		t.Fatal("ConfirmEmail did not confirm")
	}

	// First sign-in: a new device, so a code goes to the owner.
	res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Step != StepDeviceApproval || res.PendingToken == "" || res.Session != nil {
		t.Fatalf("first sign-in = %+v, want device approval", res)
	}
	body := e.lastMail(e.email, subjDeviceCode).Body
	for _, want := range []string{"192.0.2.10", "Firefox on Linux", "https://moat.test" + PathApproveDevice, "https://moat.test" + PathSecureAccount} {
		if !strings.Contains(body, want) {
			t.Errorf("device e-mail lacks %q:\n%s", want, body)
		}
	}
	res, err = e.svc.ApproveDevice(e.ctx, res.PendingToken, mailCode(t, body), c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Step != StepDone || res.Session == nil || !res.Session.NewDevice || res.Session.DeviceToken == "" {
		t.Fatalf("after the code: %+v", res)
	}
	s1 := res.Session
	if s1.Session.ExpiresAt != e.clk.Now().Add(12*time.Hour) {
		t.Errorf("ExpiresAt = %v, want sign-in + 12h", s1.Session.ExpiresAt)
	}
	if e.mailsWith(e.email, subjNewSignIn) != 1 {
		t.Error("no new sign-in alert for a new device")
	}
	p, err := e.svc.Authenticate(e.ctx, s1.Token, c)
	if err != nil {
		t.Fatal(err)
	}
	if p.Account.ID != a.ID || p.Session.ID != s1.Session.ID {
		t.Fatalf("Authenticate = %+v", p)
	}

	// Second sign-in from the same browser: known and approved, no e-mail.
	before := len(e.mails(e.email))
	res, err = e.svc.SignIn(e.ctx, e.email, goodPassword, client("192.0.2.10", s1.DeviceToken))
	if err != nil {
		t.Fatal(err)
	}
	if res.Step != StepDone || res.Session.NewDevice {
		t.Fatalf("known device sign-in = %+v", res)
	}
	if res.Session.DeviceToken != "" {
		t.Errorf("known device got a new device token")
	}
	if n := len(e.mails(e.email)); n != before {
		t.Errorf("%d e-mails sent for a known device", n-before)
	}
	e.wantAudit(a.ID, "signup", "email.confirmed", "signin.failed", "signin.device_approval_sent",
		"device.approved", "signin.success")

	acts, err := e.svc.RecentActivity(e.ctx, p, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(acts) == 0 || acts[0].Type != "signin.success" || acts[0].NewDevice || acts[0].Device != "Firefox on Linux" || acts[0].IP != "192.0.2.10" {
		t.Fatalf("newest activity = %+v", acts)
	}
	sawNew := false
	for _, act := range acts {
		if act.Type == "signin.success" && act.NewDevice {
			sawNew = true
		}
		if act.Type == "signup" {
			t.Errorf("activity shows %q", act.Type)
		}
	}
	if !sawNew {
		t.Error("activity does not show the new-device sign-in")
	}
}

func TestSignUpValidation(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		email, pw string
		code      apperr.Code
		field     string
	}{
		{"not-an-address", goodPassword, apperr.Invalid, "email"},
		{"Jane <jane@example.com>", goodPassword, apperr.Invalid, "email"},
		{"", goodPassword, apperr.Invalid, "email"},
		{strings.Repeat("a", 250) + "@example.com", goodPassword, apperr.Invalid, "email"},
		{"jane@example.com", "short", apperr.WeakPassword, "password"},
		{"jane@example.com", "password1234", apperr.WeakPassword, "password"},
		{"jane@example.com", "jane@example.com", apperr.WeakPassword, "password"},
		{"jane@example.com", "moatmoatmoat", apperr.WeakPassword, "password"},
	}
	for _, tc := range tests {
		err := e.svc.SignUp(e.ctx, tc.email, tc.pw, client("192.0.2.1", ""))
		if ae := wantCode(t, err, tc.code); ae.Field != tc.field {
			t.Errorf("SignUp(%q, %q) field = %q, want %q", tc.email, tc.pw, ae.Field, tc.field)
		}
	}
	if n := len(e.mails("jane@example.com")); n != 0 {
		t.Errorf("%d e-mails sent for refused sign-ups", n)
	}
}

// An attacker must not learn from SignUp or ResendConfirmation whether an
// address has an account.
func TestSignUpEnumeration(t *testing.T) {
	e := newEnv(t)
	owner := e.signUpConfirmed("owner@example.com", goodPassword)
	pending := "pending@example.com"
	if err := e.svc.SignUp(e.ctx, pending, goodPassword, client("192.0.2.1", "")); err != nil {
		t.Fatal(err)
	}

	c := client("203.0.113.9", "")
	for _, addr := range []string{"owner@example.com", pending, "nobody@example.com"} {
		if err := e.svc.SignUp(e.ctx, addr, "another fine passphrase here", c); err != nil {
			t.Errorf("SignUp(%s) = %v, want nil whoever owns it", addr, err)
		}
		// Validation errors are the same too: they depend on input only.
		err := e.svc.SignUp(e.ctx, addr, "password1", c)
		wantCode(t, err, apperr.WeakPassword)
		if err := e.svc.ResendConfirmation(e.ctx, addr, c); err != nil {
			t.Errorf("ResendConfirmation(%s) = %v, want nil", addr, err)
		}
	}
	// The existing owner was told, and the password was not changed.
	m := e.lastMail("owner@example.com", subjExists)
	if !strings.Contains(m.Body, "https://moat.test"+PathSignIn) {
		t.Errorf("account-exists e-mail has no reset link:\n%s", m.Body)
	}
	if e.mailsWith("owner@example.com", subjConfirm) != 1 {
		t.Error("a confirmed account was sent a new confirmation link")
	}
	a, _ := e.st.GetAccount(e.ctx, owner.ID)
	if a.PasswordHash != owner.PasswordHash {
		t.Error("sign-up of an existing address changed its password")
	}
	e.wantAudit(owner.ID, "signup.existing")
	// The pending account got a fresh link; the new address a first one.
	if n := e.mailsWith(pending, subjConfirm); n != 2 {
		t.Errorf("pending account got %d confirmation e-mails, want 2", n)
	}
	if n := e.mailsWith("nobody@example.com", subjConfirm); n != 2 {
		t.Errorf("new address got %d confirmation e-mails, want 2 (sign-up and resend)", n)
	}

	// Unsolicited e-mail to one address is limited per window.
	for range 10 {
		_ = e.svc.ResendConfirmation(e.ctx, pending, c)
	}
	if n := e.mailsWith(pending, subjConfirm); n > 2+mailLimit {
		t.Errorf("%d confirmation e-mails: resend is not limited", n)
	}
}

func TestConfirmationLinks(t *testing.T) {
	e := newEnv(t)
	c := client("192.0.2.1", "")
	if err := e.svc.SignUp(e.ctx, e.email, goodPassword, c); err != nil {
		t.Fatal(err)
	}
	first := linkToken(t, e.lastMail(e.email, subjConfirm).Body, PathConfirmEmail)
	if err := e.svc.ResendConfirmation(e.ctx, e.email, c); err != nil {
		t.Fatal(err)
	}
	second := linkToken(t, e.lastMail(e.email, subjConfirm).Body, PathConfirmEmail)
	if first == second {
		t.Fatal("resend reused the link")
	}

	_, err := e.svc.ConfirmEmail(e.ctx, first, c)
	wantCode(t, err, apperr.TokenInvalid) // voided by the resend
	_, err = e.svc.ConfirmEmail(e.ctx, "made-up-token", c)
	wantCode(t, err, apperr.TokenInvalid)
	_, err = e.svc.ConfirmEmail(e.ctx, "", c)
	wantCode(t, err, apperr.TokenInvalid)
	_, err = e.svc.ConfirmEmail(e.ctx, strings.Repeat("x", 10000), c)
	wantCode(t, err, apperr.TokenInvalid)

	// Expired: 24 h later.
	e.clk.Advance(24 * time.Hour)
	_, err = e.svc.ConfirmEmail(e.ctx, second, c)
	if ae := wantCode(t, err, apperr.TokenExpired); !strings.Contains(ae.Message, "new") {
		t.Errorf("expired-link message %q does not say how to get a new one", ae.Message)
	}
	if err := e.svc.ResendConfirmation(e.ctx, e.email, c); err != nil {
		t.Fatal(err)
	}
	third := linkToken(t, e.lastMail(e.email, subjConfirm).Body, PathConfirmEmail)
	if _, err := e.svc.ConfirmEmail(e.ctx, third, c); err != nil {
		t.Fatal(err)
	}
	// Reused.
	_, err = e.svc.ConfirmEmail(e.ctx, third, c)
	wantCode(t, err, apperr.TokenUsed)
	// A confirmation token is not a secure-account token or vice versa.
	_, err = e.svc.ConfirmEmail(e.ctx, third+"x", c)
	wantCode(t, err, apperr.TokenInvalid)
}

func TestSessionFixation(t *testing.T) {
	e := newEnv(t)
	e.signUpConfirmed(e.email, goodPassword)
	// The client arrives with a device token an attacker planted.
	planted, _ := secrets.NewToken(strings.NewReader(strings.Repeat("p", 64)))
	c := client("192.0.2.10", planted)
	s1 := e.signIn(e.email, goodPassword, c)
	s2 := e.signIn(e.email, goodPassword, client("192.0.2.10", s1.DeviceToken))
	if s1.Token == s2.Token || s1.Session.ID == s2.Session.ID {
		t.Fatal("two sign-ins share a session")
	}
	for _, tok := range []string{s1.Token, s2.Token, s1.DeviceToken} {
		if tok == planted {
			t.Fatal("a token the client supplied was used")
		}
	}
	if _, err := e.svc.Authenticate(e.ctx, planted, c); apperr.CodeOf(err) != apperr.Unauthorized {
		t.Fatalf("the planted token authenticates: %v", err)
	}
	// Only hashes are stored.
	for _, s := range e.liveSessions(s1.Session.AccountID) {
		if string(s.TokenHash) == s1.Token || string(s.TokenHash) == s2.Token {
			t.Fatal("a session token is stored in the clear")
		}
	}
}

func TestNormalizeEmail(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"jane@example.com", "jane@example.com", true},
		{"  Jane.Doe+tag@Example.COM\t", "jane.doe+tag@example.com", true},
		{"jane@localhost", "jane@localhost", true},
		{"Jane <jane@example.com>", "", false},
		{"jane@example.com (comment)", "", false},
		{"jane", "", false},
		{"@example.com", "", false},
		{"jane@", "", false},
		{"a@b@c", "", false},
		{"jane@example.com\r\nBcc: x@y.z", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		got, err := NormalizeEmail(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("NormalizeEmail(%q) = %q, %v", tc.in, got, err)
		}
		if err != nil && apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("NormalizeEmail(%q) error code %s", tc.in, apperr.CodeOf(err))
		}
	}
}

// FuzzNormalizeEmail: whatever a client sends, the result is either an
// Invalid error or an address that is already normal (idempotent), short
// enough, and free of line breaks.
func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{"jane@example.com", " A@B.C ", "Jane <j@x.y>", "\"a b\"@x.y", "a@[127.0.0.1]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := NormalizeEmail(s)
		if err != nil {
			if apperr.CodeOf(err) != apperr.Invalid {
				t.Fatalf("error %v is not Invalid", err)
			}
			return
		}
		if len(got) > maxEmailLen || strings.ContainsAny(got, "\r\n<>") {
			t.Fatalf("accepted %q", got)
		}
		again, err := NormalizeEmail(got)
		if err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q, %v", got, again, err)
		}
	})
}

// TestSignUpPerIPLimit: one network cannot make the server hash passwords
// without bound through the sign-up form; the limit says when to retry,
// is the same whether the address has an account or not, and spares
// other networks.
func TestSignUpPerIPLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.IPLimit = 3 })
	e.signUpConfirmed("owner@example.com", goodPassword)
	farm := client("203.0.113.77", "")
	for i := range 3 {
		if err := e.svc.SignUp(e.ctx, fmt.Sprintf("bot%d@example.com", i), goodPassword, farm); err != nil {
			t.Fatalf("sign-up %d: %v", i, err)
		}
	}
	for _, addr := range []string{"bot9@example.com", "owner@example.com"} {
		err := e.svc.SignUp(e.ctx, addr, goodPassword, farm)
		if ae := wantCode(t, err, apperr.RateLimited); ae.RetryAfter <= 0 || ae.RetryAfter > 15*time.Minute {
			t.Errorf("%s: RetryAfter = %v", addr, ae.RetryAfter)
		}
	}
	if _, err := e.st.GetAccountByEmail(e.ctx, "bot9@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused sign-up created an account: %v", err)
	}
	if err := e.svc.SignUp(e.ctx, "neighbour@example.com", goodPassword, client("192.0.2.44", "")); err != nil {
		t.Errorf("another network: %v", err)
	}
}
