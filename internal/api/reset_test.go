package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/mfa"
	"github.com/moat-dev/moat/internal/store"
)

// resetToken asks for a reset link over the API and returns its token.
func (e *env) resetToken(addr string) string {
	e.t.Helper()
	expect(e.t, e.call("POST", "/api/v1/password/forgot", map[string]string{"email": addr}), 202)
	return e.link(e.lastMail(addr), "/reset")
}

func headerLines(h http.Header) []string {
	var out []string
	for k, v := range h {
		if k != "Date" {
			out = append(out, k+": "+strings.Join(v, ", "))
		}
	}
	slices.Sort(out)
	return out
}

// Known and unknown addresses: the same status, body and headers; only the
// known one gets an e-mail, queued in the outbox.
func TestPasswordForgotEnumeration(t *testing.T) {
	e := newEnv(t)
	e.signUp("jane@example.com")
	known := e.call("POST", "/api/v1/password/forgot", map[string]string{"email": "jane@example.com"})
	unknown := e.call("POST", "/api/v1/password/forgot", map[string]string{"email": "nobody@example.com"})
	expect(t, known, 202)
	if string(known.raw) != string(unknown.raw) || known.status != unknown.status {
		t.Errorf("answers differ: %d %s / %d %s", known.status, known.raw, unknown.status, unknown.raw)
	}
	if a, b := headerLines(known.header), headerLines(unknown.header); !slices.Equal(a, b) {
		t.Errorf("headers differ:\n%q\n%q", a, b)
	}
	if known.str(t, "status") != "reset_link_sent" {
		t.Errorf("body %s", known.raw)
	}
	msgs, err := e.store.ListOutbox(t.Context(), "email", 100)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range msgs {
		if strings.HasPrefix(m.Subject, "Reset your") {
			n++
			if m.To != "jane@example.com" || !m.SentAt.IsZero() {
				t.Errorf("reset e-mail %+v", m)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d reset e-mails, want 1", n)
	}
	expectError(t, e.call("POST", "/api/v1/password/forgot", map[string]string{"email": "not an address"}), 400, apperr.Invalid, "email")
	expectError(t, e.call("POST", "/api/v1/password/forgot", map[string]string{}), 400, apperr.Invalid, "email")
}

func TestPasswordResetAPI(t *testing.T) {
	e := newEnv(t)
	e.signUp("jane@example.com")
	session, _ := e.signIn("jane@example.com", "")
	tok := e.resetToken("jane@example.com")

	r := e.call("POST", "/api/v1/password/reset/check", map[string]string{"token": tok})
	expect(t, r, 200)
	if m := r.json(t); m["email"] != "j•••@example.com" || len(m["factors"].([]any)) != 0 {
		t.Errorf("check: %s", r.raw)
	}
	expectError(t, e.call("POST", "/api/v1/password/reset/check", map[string]string{"token": "nope"}), 400, apperr.TokenInvalid, "")
	expectError(t, e.call("POST", "/api/v1/password/reset", map[string]string{"token": tok, "new_password": "password123"}), 400, apperr.WeakPassword, "new_password")
	expectError(t, e.call("POST", "/api/v1/password/reset", map[string]string{"token": tok}), 400, apperr.Invalid, "new_password")
	expectError(t, e.call("POST", "/api/v1/password/reset", map[string]any{"token": tok, "new_password": "copper-meadow-harbour-77", "response": "1"}), 400, apperr.Invalid, "factor")

	r = e.call("POST", "/api/v1/password/reset", map[string]string{"token": tok, "new_password": "copper-meadow-harbour-77"})
	expect(t, r, 200)
	var out struct {
		HoldUntil time.Time `json:"hold_until"`
	}
	if err := json.Unmarshal(r.raw, &out); err != nil || !out.HoldUntil.After(e.clock.Now()) {
		t.Fatalf("reset: %s", r.raw)
	}
	// Signed out; the link is spent.
	expectError(t, e.call("GET", "/api/v1/me", nil, bearer(session)...), 401, apperr.Unauthorized, "")
	expectError(t, e.call("POST", "/api/v1/password/reset", map[string]string{"token": tok, "new_password": "amber-lighthouse-gravel-3"}), 400, apperr.TokenUsed, "")
	r = e.call("POST", "/api/v1/signin", map[string]string{"email": "jane@example.com", "password": "copper-meadow-harbour-77"})
	expect(t, r, 200)

	// Expiry.
	tok = e.resetToken("jane@example.com")
	e.clock.Advance(31 * time.Minute)
	expectError(t, e.call("POST", "/api/v1/password/reset/check", map[string]string{"token": tok}), 400, apperr.TokenExpired, "")
}

// With 2FA over the API: the factors to choose from, no reset without
// one, a backup code working once, and a sign-in with a backup code that
// says how many are left.
func TestPasswordResetAPIWithSecondFactor(t *testing.T) {
	e := newMFAEnv(t, mfa.DefaultConfig().Policy)
	const addr = "reset@example.com"
	session := e.user(addr)
	a, codes := e.enrolTOTP(session)
	tok := e.resetToken(addr)

	r := e.call("POST", "/api/v1/password/reset/check", map[string]string{"token": tok})
	expect(t, r, 200)
	if got := r.json(t)["factors"]; len(got.([]any)) != 2 || got.([]any)[0] != "totp" {
		t.Errorf("factors %v", got)
	}
	r = e.call("POST", "/api/v1/password/reset/challenge", map[string]string{"token": tok, "factor": "totp"})
	expect(t, r, 200)
	if r.str(t, "method") != "totp" {
		t.Errorf("challenge %s", r.raw)
	}
	expectError(t, e.call("POST", "/api/v1/password/reset/challenge", map[string]string{"token": tok, "factor": "sms"}), 400, apperr.Invalid, "factor")

	const fresh = "copper-meadow-harbour-77"
	expectError(t, e.call("POST", "/api/v1/password/reset", map[string]string{"token": tok, "new_password": fresh}), 400, apperr.Invalid, "factor")
	expectError(t, e.call("POST", "/api/v1/password/reset", map[string]any{"token": tok, "new_password": fresh, "factor": "totp", "response": a.wrongCode()}), 400, apperr.TokenInvalid, "response")
	expectError(t, e.call("POST", "/api/v1/password/reset", map[string]any{"token": tok, "new_password": fresh, "factor": "webauthn", "response": map[string]any{"ceremony": "c", "credential": map[string]any{}}}), 400, apperr.Invalid, "factor")
	r = e.call("POST", "/api/v1/password/reset", map[string]any{"token": tok, "new_password": fresh, "factor": "backup_code", "response": codes[0]})
	expect(t, r, 200)
	tok = e.resetToken(addr)
	expectError(t, e.call("POST", "/api/v1/password/reset", map[string]any{"token": tok, "new_password": testPassword, "factor": "backup_code", "response": codes[0]}), 400, apperr.TokenUsed, "response")

	// Signing in with a backup code tells how many are left.
	r = e.call("POST", "/api/v1/signin", map[string]string{"email": addr, "password": fresh, "device_token": e.devices[addr]})
	expect(t, r, 200)
	pending := r.str(t, "pending_token")
	e.pendingOf[pending] = addr
	r = e.answer(pending, "backup_code", codes[1])
	expect(t, r, 200)
	m := r.json(t)
	if m["step"] != "done" || m["sign_in_factor"] != "backup_code" || m["backup_codes_remaining"] != 8.0 {
		t.Errorf("backup-code sign-in: %s", r.raw)
	}
	r = e.call("POST", "/api/v1/signin", map[string]string{"email": addr, "password": fresh, "device_token": e.devices[addr]})
	pending = r.str(t, "pending_token")
	e.pendingOf[pending] = addr
	r = e.answer(pending, "totp", a.code())
	expect(t, r, 200)
	if m := r.json(t); m["sign_in_factor"] != "totp" || m["backup_codes_remaining"] != nil {
		t.Errorf("totp sign-in: %s", r.raw)
	}

	acct, err := e.store.GetAccountByEmail(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	evs, _ := e.store.ListAudit(t.Context(), store.AuditFilter{AccountID: acct.ID, Types: []string{"password.reset"}})
	if len(evs) != 1 || !strings.Contains(evs[0].Data, `"factor":"backup_code"`) {
		t.Errorf("audit %+v", evs)
	}
}

// A security key answers the reset's own challenge.
func TestPasswordResetAPIWithSecurityKey(t *testing.T) {
	e := newMFAEnv(t, mfa.DefaultConfig().Policy)
	const addr = "key@example.com"
	session := e.user(addr)
	r := e.call("POST", "/api/v1/mfa/webauthn/register/begin", map[string]any{"name": "Key"}, bearer(session)...)
	expect(t, r, 200)
	var ch struct {
		Ceremony string          `json:"ceremony"`
		Options  json.RawMessage `json:"options"`
	}
	mustJSON(t, r, &ch)
	cred, err := e.key.Create(ch.Options)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, e.call("POST", "/api/v1/mfa/webauthn/register/finish", map[string]any{"ceremony": ch.Ceremony, "credential": json.RawMessage(cred)}, bearer(session)...), 201)

	tok := e.resetToken(addr)
	r = e.call("POST", "/api/v1/password/reset/challenge", map[string]string{"token": tok, "factor": "webauthn"})
	expect(t, r, 200)
	mustJSON(t, r, &ch)
	if ch.Ceremony == "" {
		t.Fatalf("challenge %s", r.raw)
	}
	cred, err = e.key.Get(ch.Options)
	if err != nil {
		t.Fatal(err)
	}
	r = e.call("POST", "/api/v1/password/reset", map[string]any{"token": tok, "new_password": "copper-meadow-harbour-77", "factor": "webauthn",
		"response": map[string]any{"ceremony": ch.Ceremony, "credential": json.RawMessage(cred)}})
	expect(t, r, 200)
}
