package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

// resetMails lists the password-reset e-mails to addr.
func (e *env) resetMails(addr string) []store.OutboxMessage {
	e.t.Helper()
	msgs, err := e.store.ListOutbox(e.t.Context(), "email", 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []store.OutboxMessage
	for _, m := range msgs {
		if (addr == "" || m.To == addr) && strings.HasPrefix(m.Subject, "Reset your") {
			out = append(out, m)
		}
	}
	return out
}

// forgot asks for a link on the page and returns its token.
func (e *env) forgot(b *browser, addr string) string {
	e.t.Helper()
	expect(e.t, b.post("/forgot", url.Values{"email": {addr}}), 200, "")
	ms := e.resetMails(addr)
	if len(ms) == 0 {
		e.t.Fatalf("no reset e-mail to %s", addr)
	}
	return e.link(ms[0].Body, "/reset")
}

// sameAnswer fails unless two responses have the same status, body and
// headers (but Date).
func sameAnswer(t *testing.T, what string, a, b *resp) {
	t.Helper()
	if a.status != b.status || a.body != b.body {
		t.Errorf("%s: known and unknown addresses answer differently:\n%d %s\n---\n%d %s", what, a.status, a.body, b.status, b.body)
	}
	keys := func(h http.Header) []string {
		var ks []string
		for k, v := range h {
			if k != "Date" {
				ks = append(ks, k+": "+strings.Join(v, ", "))
			}
		}
		slices.Sort(ks)
		return ks
	}
	if ka, kb := keys(a.header), keys(b.header); !slices.Equal(ka, kb) {
		t.Errorf("%s: headers differ:\n%q\n%q", what, ka, kb)
	}
}

// The page and the API answer the same for an address with an account
// and one without; only the first leaves an e-mail, in the outbox, unsent.
func TestForgotEnumeration(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	e.signUp(b, "jane@example.com")

	known := e.browser().post("/forgot", url.Values{"email": {"jane@example.com"}})
	unknown := e.browser().post("/forgot", url.Values{"email": {"nobody@example.com"}})
	expect(t, known, 200, "")
	contains(t, known, "Check your e-mail", "30 minutes")
	sameAnswer(t, "page", known, unknown)

	call := func(addr string) *resp {
		req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/password/forgot", strings.NewReader(fmt.Sprintf(`{"email":%q}`, addr)))
		req.Header.Set("Content-Type", "application/json")
		return e.browser().do(req)
	}
	ak, au := call("jane@example.com"), call("nobody@example.com")
	expect(t, ak, 202, "")
	if !strings.Contains(ak.body, `"reset_link_sent"`) {
		t.Errorf("body %s", ak.body)
	}
	sameAnswer(t, "api", ak, au)

	if n := len(e.resetMails("jane@example.com")); n != 2 {
		t.Errorf("%d reset e-mails to the account, want 2", n)
	}
	for _, m := range e.resetMails("") {
		if m.To != "jane@example.com" {
			t.Errorf("reset e-mail to %s", m.To)
		}
		if !m.SentAt.IsZero() || m.Attempts != 0 {
			t.Errorf("sent inline, not from the outbox: %+v", m)
		}
	}

	// A malformed address is refused at the field (the same for anybody).
	r := e.browser().post("/forgot", url.Values{"email": {"not an address"}})
	expect(t, r, 400, "")
	contains(t, r, `class="field__error"`, "plain e-mail address")
	expect(t, e.browser().post("/forgot", url.Values{"email": {""}}), 400, "")
}

func TestLoginOffersReset(t *testing.T) {
	e := newEnv(t, false)
	r := e.browser().get("/login")
	contains(t, r, `href="/forgot"`, "Forgot your password?")
	r = e.browser().get("/forgot")
	expect(t, r, 200, "")
	contains(t, r, `action="/forgot"`, `name="email"`)
}

// The whole path without 2FA: link, form, new password; every session
// signed out; the page says what happened and what to check.
func TestResetPasswordPages(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	e.signUp(b, "jane@example.com")
	e.signIn(b, "jane@example.com")
	expect(t, b.get("/account"), 200, "")

	other := e.browser()
	tok := e.forgot(other, "jane@example.com")
	r := other.get("/reset?token=" + url.QueryEscape(tok))
	expect(t, r, 200, "")
	contains(t, r, "Choose a new password", "j•••@example.com", `name="new_password"`, `autocomplete="new-password"`, `action="/reset"`)
	if strings.Contains(r.body, "recovery case") || strings.Contains(r.body, `name="response"`) {
		t.Error("a factor asked of an account without one")
	}

	// Errors next to the field.
	r = other.post("/reset", url.Values{"token": {tok}, "new_password": {""}})
	expect(t, r, 400, "")
	contains(t, r, `id="new_password-error"`, "Choose a new password.")
	r = other.post("/reset", url.Values{"token": {tok}, "new_password": {"password123"}})
	expect(t, r, 400, "")
	contains(t, r, `id="new_password-error"`, `aria-invalid="true"`)

	const fresh = "copper-meadow-harbour-77"
	r = other.post("/reset", url.Values{"token": {tok}, "new_password": {fresh}})
	expect(t, r, 200, "")
	contains(t, r, "Your password is reset", "Every session was signed out", "Withdrawals are paused until",
		`href="/account"`, "recent activity", `href="/account/sessions"`, `href="/login"`)

	// The old session is gone; the new password signs in.
	expect(t, b.get("/account"), 303, "/login?n=session-ended")
	r = e.browser().post("/login", url.Values{"email": {"jane@example.com"}, "password": {testPassword}})
	expect(t, r, 401, "")
	r = b.post("/login", url.Values{"email": {"jane@example.com"}, "password": {fresh}})
	if r.location() == "/login/device" {
		r = b.post("/login/device", url.Values{"code": {e.code(e.lastMail("jane@example.com").Body)}})
	}
	expect(t, r, 303, "/account")
	contains(t, b.get("/account"), "Password reset with an e-mailed link")
	if !strings.Contains(e.lastMailWith("jane@example.com", "password was reset").Body, "/secure?token=") {
		t.Error("the reset e-mail has no secure-account link")
	}

	// Used: a page that says so and what to do.
	r = other.get("/reset?token=" + url.QueryEscape(tok))
	expect(t, r, 400, "")
	contains(t, r, "This password-reset link does not work", "already used", `href="/forgot"`)
	r = other.post("/reset", url.Values{"token": {tok}, "new_password": {"amber-lighthouse-gravel-3"}})
	expect(t, r, 400, "")
	contains(t, r, "already used")
}

func (e *env) lastMailWith(addr, subject string) store.OutboxMessage {
	e.t.Helper()
	msgs, err := e.store.ListOutbox(e.t.Context(), "email", 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range msgs {
		if m.To == addr && strings.Contains(m.Subject, subject) {
			return m
		}
	}
	e.t.Fatalf("no e-mail %q to %s", subject, addr)
	return store.OutboxMessage{}
}

func TestResetBadLinks(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	e.signUp(b, "jane@example.com")

	r := b.get("/reset")
	expect(t, r, 400, "")
	contains(t, r, "incomplete", `href="/forgot"`)
	r = b.get("/reset?token=garbage")
	expect(t, r, 400, "")
	contains(t, r, "not valid", `href="/forgot"`)
	r = b.post("/reset", url.Values{"token": {"garbage"}, "new_password": {"copper-meadow-harbour-77"}})
	expect(t, r, 400, "")

	// Expired after 30 minutes.
	tok := e.forgot(b, "jane@example.com")
	e.clock.Advance(31 * time.Minute)
	r = b.get("/reset?token=" + url.QueryEscape(tok))
	expect(t, r, 400, "")
	contains(t, r, "expired", `href="/forgot"`)

	// Voided by a newer link.
	first := e.forgot(b, "jane@example.com")
	second := e.forgot(b, "jane@example.com")
	if first == second {
		t.Fatal("the same link twice")
	}
	expect(t, b.get("/reset?token="+url.QueryEscape(first)), 400, "")
	expect(t, b.get("/reset?token="+url.QueryEscape(second)), 200, "")

	// A locked account: no reset, and the page says whom to ask.
	if err := e.svc.Lock(t.Context(), "jane@example.com", "", "staff"); err != nil {
		t.Fatal(err)
	}
	r = b.get("/reset?token=" + url.QueryEscape(second))
	expect(t, r, 429, "")
	contains(t, r, "This account is locked", "Contact support")
}

// A 2FA account: the form asks for the factor too, links a recovery case,
// and refuses a reset without the right code.
func TestResetPagesWithSecondFactor(t *testing.T) {
	e := newEnv(t, false, fakeFactor{"totp", "246810"}, fakeFactor{"backup_code", "ABCDE-12345"})
	b := e.browser()
	e.signUp(b, "jane@example.com")
	tok := e.forgot(b, "jane@example.com")

	r := b.get("/reset?token=" + url.QueryEscape(tok))
	expect(t, r, 200, "")
	contains(t, r, "two-factor authentication", `name="factor" value="totp"`, `name="response"`, `inputmode="numeric"`,
		"Other ways to confirm it", "method=backup_code",
		`href="/recovery/new?token=`+url.QueryEscape(tok)+`"`, "Open a recovery case")
	r = b.get("/reset?token=" + url.QueryEscape(tok) + "&method=backup_code")
	contains(t, r, `name="factor" value="backup_code"`, "Backup code")

	const fresh = "copper-meadow-harbour-77"
	// No code: refused at the code field.
	r = b.post("/reset", url.Values{"token": {tok}, "new_password": {fresh}, "factor": {"totp"}})
	expect(t, r, 400, "")
	contains(t, r, `id="response-error"`, "Enter the code.")
	// No factor at all (a hand-made form): refused above the form.
	r = b.post("/reset", url.Values{"token": {tok}, "new_password": {fresh}})
	expect(t, r, 400, "")
	contains(t, r, `role="alert"`, "two-factor authentication")
	// A factor the account does not have.
	r = b.post("/reset", url.Values{"token": {tok}, "new_password": {fresh}, "factor": {"sms"}, "response": {"123456"}})
	expect(t, r, 400, "")
	// Wrong codes: next to the field, with the tries left; the fifth voids
	// the link.
	for i := 1; i <= 4; i++ {
		r = b.post("/reset", url.Values{"token": {tok}, "new_password": {fresh}, "factor": {"totp"}, "response": {"000000"}})
		expect(t, r, 400, "")
		contains(t, r, `id="response-error"`, fmt.Sprintf("%d tr", 5-i))
	}
	r = b.post("/reset", url.Values{"token": {tok}, "new_password": {fresh}, "factor": {"totp"}, "response": {"000000"}})
	expect(t, r, 400, "")
	contains(t, r, "This password-reset link does not work", "last try", `href="/forgot"`)
	r = b.post("/reset", url.Values{"token": {tok}, "new_password": {fresh}, "factor": {"totp"}, "response": {"246810"}})
	expect(t, r, 400, "")
	contains(t, r, "too many wrong codes")
	expect(t, e.browser().post("/login", url.Values{"email": {"jane@example.com"}, "password": {fresh}}), 401, "")

	// A new link and the right code.
	tok = e.forgot(b, "jane@example.com")
	r = b.post("/reset", url.Values{"token": {tok}, "new_password": {fresh}, "factor": {"totp"}, "response": {"246810"}})
	expect(t, r, 200, "")
	contains(t, r, "Your password is reset")
	expect(t, e.browser().post("/login", url.Values{"email": {"jane@example.com"}, "password": {fresh}}), 303, "")
}

var resetLinkRe = regexp.MustCompile(`/reset\?token=([A-Za-z0-9_\-]+)`)

// Through the full server with the real 2FA service: an account whose
// second factor is a phone gets the code sent from the reset page, and the
// signed-in browser is signed out by the reset.
func TestResetWithTextMessage(t *testing.T) {
	s := newSite(t)
	a := s.agent()
	const email = "hedy@example.com"
	s.signUp(a, email)
	expect(t, a.post("/account/security/phone", url.Values{"phone": {"+44 20 7946 0958"}}), 200, "")
	expect(t, a.post("/account/security/phone/confirm", url.Values{"code": {s.lastText(a)}}), 303, "/account/security/backup-codes?new=1")
	s.shownCodes(a)

	b := s.agent()
	expect(t, b.post("/forgot", url.Values{"email": {email}}), 200, "")
	m := resetLinkRe.FindStringSubmatch(s.mail(email, "Reset your moat password").Body)
	if m == nil {
		t.Fatal("no reset link")
	}
	tok := m[1]
	r := b.get("/reset?token=" + tok)
	expect(t, r, 200, "")
	contains(t, r, "Get a code by text message", `action="/reset/sms"`, "method=backup_code", "/recovery/new?token="+tok)
	if strings.Contains(r.body, `name="new_password"`) {
		t.Error("the password field comes before the code is sent")
	}
	r = b.post("/reset/sms", url.Values{"token": {tok}})
	expect(t, r, 200, "")
	contains(t, r, "We sent a 6-digit code to", `name="new_password"`, `name="factor" value="sms"`, `name="sent_to"`, "Send a new code")
	code := s.lastText(b)

	const fresh = "copper-meadow-harbour-77"
	r = b.post("/reset", url.Values{"token": {tok}, "new_password": {fresh}, "factor": {"sms"}, "response": {wrongDigits(code)}, "sent_to": {"+44 •••• 0958"}})
	expect(t, r, 400, "")
	contains(t, r, `id="response-error"`, "4 tries left", `name="sent_to"`)
	r = b.post("/reset", url.Values{"token": {tok}, "new_password": {fresh}, "factor": {"sms"}, "response": {code}})
	expect(t, r, 200, "")
	contains(t, r, "Your password is reset", "Review your two-factor methods")

	expect(t, a.get("/account"), 303, "/login?n=session-ended")
	expect(t, a.post("/login", url.Values{"email": {email}, "password": {fresh}}), 303, "/login/factor")
	if d := s.mail(email, "Your moat password was reset"); !strings.Contains(d.Body, "withdrawals are paused until") {
		t.Errorf("reset-done e-mail:\n%s", d.Body)
	}
}
