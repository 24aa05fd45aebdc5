package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
)

// TestJourney walks the API: sign-up, confirmation, sign-in with device
// approval, activity, sessions, revocation and sign-out.
func TestJourney(t *testing.T) {
	e := newEnv(t)
	const addr = "ada@example.com"

	r := e.call("POST", "/api/v1/signup", map[string]string{"email": addr, "password": testPassword})
	expect(t, r, 202)
	if r.str(t, "status") != "confirmation_sent" {
		t.Fatalf("signup: %s", r.raw)
	}
	tok := e.link(e.lastMail(addr), "/confirm")
	expect(t, e.call("POST", "/api/v1/confirm", map[string]string{"token": tok}), 200)
	expectError(t, e.call("POST", "/api/v1/confirm", map[string]string{"token": tok}), 400, apperr.TokenUsed, "")

	// First sign-in from this app: device approval.
	r = e.call("POST", "/api/v1/signin", map[string]string{"email": addr, "password": testPassword})
	expect(t, r, 200)
	m := r.json(t)
	pending, _ := m["pending_token"].(string)
	if m["step"] != "device_approval" || pending == "" || m["session_token"] != nil {
		t.Fatalf("signin: %s", r.raw)
	}
	if f, ok := m["factors"].([]any); !ok || len(f) != 0 {
		t.Errorf("factors = %v, want []", m["factors"])
	}
	r = e.call("POST", "/api/v1/signin/status", map[string]string{"pending_token": pending})
	expect(t, r, 200)
	if r.str(t, "step") != "device_approval" {
		t.Fatalf("status: %s", r.raw)
	}
	expectError(t, e.call("POST", "/api/v1/signin/device", map[string]string{"pending_token": pending, "code": "000000"}), 400, apperr.TokenInvalid, "code")
	r = e.call("POST", "/api/v1/signin/device", map[string]string{"pending_token": pending, "code": e.code(e.lastMail(addr))})
	expect(t, r, 200)
	m = r.json(t)
	session, _ := m["session_token"].(string)
	device, _ := m["device_token"].(string)
	if m["step"] != "done" || session == "" || device == "" || m["new_device"] != true {
		t.Fatalf("device: %s", r.raw)
	}
	if exp, err := time.Parse(time.RFC3339, r.str(t, "expires_at")); err != nil || !exp.After(e.clock.Now()) {
		t.Errorf("expires_at %q: %v", r.str(t, "expires_at"), err)
	}
	// The pending token is spent.
	expectError(t, e.call("POST", "/api/v1/signin/status", map[string]string{"pending_token": pending}), 400, apperr.TokenUsed, "")

	r = e.call("GET", "/api/v1/me", nil, bearer(session)...)
	expect(t, r, 200)
	m = r.json(t)
	if m["email"] != addr || m["role"] != "user" || m["session"].(map[string]any)["current"] != true {
		t.Fatalf("me: %s", r.raw)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("me Cache-Control %q", r.header.Get("Cache-Control"))
	}

	r = e.call("GET", "/api/v1/activity?limit=5", nil, bearer(session)...)
	expect(t, r, 200)
	acts := r.json(t)["activity"].([]any)
	first := acts[0].(map[string]any)
	if len(acts) == 0 || len(acts) > 5 || first["type"] != "signin.success" || first["new_device"] != true || first["ip"] != "127.0.0.1" {
		t.Fatalf("activity: %s", r.raw)
	}
	expectError(t, e.call("GET", "/api/v1/activity?limit=0", nil, bearer(session)...), 400, apperr.Invalid, "limit")

	// The same app signs in again with its device token (in the header this
	// time): a known device, no approval.
	r = e.call("POST", "/api/v1/signin", map[string]string{"email": addr, "password": testPassword}, "X-Moat-Device", device)
	expect(t, r, 200)
	m = r.json(t)
	second, _ := m["session_token"].(string)
	if m["step"] != "done" || second == "" || second == session || m["new_device"] != nil {
		t.Fatalf("known-device signin: %s", r.raw)
	}

	r = e.call("GET", "/api/v1/sessions", nil, bearer(session)...)
	expect(t, r, 200)
	list := r.json(t)["sessions"].([]any)
	if len(list) != 2 {
		t.Fatalf("sessions: %s", r.raw)
	}
	var otherID string
	for _, s := range list {
		s := s.(map[string]any)
		if s["current"] != true {
			otherID = s["id"].(string)
		}
		if s["client"] != "api" {
			t.Errorf("session client %v, want api", s["client"])
		}
	}
	r = e.call("DELETE", "/api/v1/sessions/"+otherID, nil, bearer(session)...)
	expect(t, r, 204)
	expectError(t, e.call("GET", "/api/v1/me", nil, bearer(second)...), 401, apperr.Unauthorized, "")
	expectError(t, e.call("DELETE", "/api/v1/sessions/"+otherID, nil, bearer(session)...), 404, apperr.NotFound, "")

	// revoke-others, then sign out.
	third, _ := e.signIn(addr, device)
	r = e.call("POST", "/api/v1/sessions/revoke-others", nil, bearer(session)...)
	expect(t, r, 200)
	if n, _ := r.json(t)["revoked"].(float64); n != 1 {
		t.Errorf("revoked %s, want 1", r.raw)
	}
	expectError(t, e.call("GET", "/api/v1/me", nil, bearer(third)...), 401, apperr.Unauthorized, "")
	expect(t, e.call("POST", "/api/v1/signout", nil, bearer(session)...), 204)
	r = e.call("GET", "/api/v1/me", nil, bearer(session)...)
	expectError(t, r, 401, apperr.Unauthorized, "")
	if !strings.Contains(r.header.Get("WWW-Authenticate"), "invalid_token") {
		t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
	}
	// Signing out again is harmless.
	expect(t, e.call("POST", "/api/v1/signout", nil, bearer(session)...), 204)
}

// TestLinkApproval: the owner approves the device with the e-mailed link
// (the web page calls ApproveDeviceLink), and the app's status poll then
// completes the sign-in, once.
func TestLinkApproval(t *testing.T) {
	e := newEnv(t)
	const addr = "link@example.com"
	e.signUp(addr)
	r := e.call("POST", "/api/v1/signin", map[string]string{"email": addr, "password": testPassword})
	pending := r.str(t, "pending_token")
	if err := e.svc.ApproveDeviceLink(t.Context(), e.link(e.lastMail(addr), "/login/approve"), account.Client{Kind: "web"}); err != nil {
		t.Fatal(err)
	}
	r = e.call("POST", "/api/v1/signin/status", map[string]string{"pending_token": pending})
	expect(t, r, 200)
	if r.str(t, "step") != "done" || r.str(t, "session_token") == "" || r.str(t, "device_token") == "" {
		t.Fatalf("status after approval: %s", r.raw)
	}
	expectError(t, e.call("POST", "/api/v1/signin/status", map[string]string{"pending_token": pending}), 400, apperr.TokenUsed, "")
}

// TestEnumeration: the API answers the same for addresses with and without
// an account.
func TestEnumeration(t *testing.T) {
	e := newEnv(t)
	const known, unknown = "known@example.com", "nobody@example.com"
	e.signUp(known)
	same := func(name string, a, b *resp) {
		t.Helper()
		if a.status != b.status || string(a.raw) != string(b.raw) {
			t.Errorf("%s differs: %d %s vs %d %s", name, a.status, a.raw, b.status, b.raw)
		}
	}
	wrong := e.call("POST", "/api/v1/signin", map[string]string{"email": known, "password": "not-the-password-1"})
	expectError(t, wrong, 401, apperr.BadCredential, "")
	same("signin", wrong, e.call("POST", "/api/v1/signin", map[string]string{"email": unknown, "password": "not-the-password-1"}))
	same("signup",
		e.call("POST", "/api/v1/signup", map[string]string{"email": known, "password": testPassword}),
		e.call("POST", "/api/v1/signup", map[string]string{"email": "fresh@example.com", "password": testPassword}))
	r := e.call("POST", "/api/v1/resend-confirmation", map[string]string{"email": known})
	expect(t, r, 202)
	same("resend", r, e.call("POST", "/api/v1/resend-confirmation", map[string]string{"email": unknown}))
}

// TestErrors: bad requests get 4xx with stable codes, never 500.
func TestErrors(t *testing.T) {
	e := newEnv(t)
	const addr = "err@example.com"
	e.signUp(addr)
	session, _ := e.signIn(addr, "")
	big := `{"email":"a@example.com","password":"` + strings.Repeat("x", 2<<20) + `"}`
	for _, tc := range []struct {
		name, method, path string
		body               any
		hdr                []string
		status             int
		code               apperr.Code
		field              string
	}{
		{"malformed JSON", "POST", "/api/v1/signin", `{"email":`, nil, 400, apperr.Invalid, ""},
		{"unknown field", "POST", "/api/v1/signup", `{"email":"a@example.com","password":"x","role":"admin"}`, nil, 400, apperr.Invalid, "role"},
		{"wrong type", "POST", "/api/v1/signin", `{"email":["a"],"password":"x"}`, nil, 400, apperr.Invalid, "email"},
		{"missing field", "POST", "/api/v1/confirm", `{}`, nil, 400, apperr.Invalid, "token"},
		{"not JSON content type", "POST", "/api/v1/signin", `email=a&password=b`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 400, apperr.Invalid, ""},
		{"no content type on DELETE", "DELETE", "/api/v1/sessions/x", nil, append(bearer(session), "Content-Type", ""), 400, apperr.Invalid, ""},
		{"oversized", "POST", "/api/v1/signin", big, nil, 413, apperr.TooLarge, ""},
		{"weak password", "POST", "/api/v1/signup", map[string]string{"email": "w@example.com", "password": "password123"}, nil, 400, apperr.WeakPassword, "password"},
		{"bad e-mail", "POST", "/api/v1/signup", map[string]string{"email": "nope", "password": testPassword}, nil, 400, apperr.Invalid, "email"},
		{"bad pending token", "POST", "/api/v1/signin/factor", map[string]string{"pending_token": "x", "factor": "totp", "response": "1"}, nil, 401, apperr.Unauthorized, ""},
		{"no bearer", "GET", "/api/v1/me", nil, nil, 401, apperr.Unauthorized, ""},
		{"basic auth", "GET", "/api/v1/sessions", nil, []string{"Authorization", "Basic YTpi"}, 401, apperr.Unauthorized, ""},
		{"bad bearer", "GET", "/api/v1/me", nil, bearer("nonsense"), 401, apperr.Unauthorized, ""},
		{"cookie is not auth", "GET", "/api/v1/me", nil, []string{"Cookie", "moat_session=" + session}, 401, apperr.Unauthorized, ""},
		{"unknown endpoint", "GET", "/api/v1/nope", nil, nil, 404, apperr.NotFound, ""},
		{"wrong method", "GET", "/api/v1/signin", nil, nil, 404, apperr.NotFound, ""},
		{"anti-phishing missing code", "PUT", "/api/v1/settings/anti-phishing", `{}`, bearer(session), 400, apperr.Invalid, "code"},
		{"anti-phishing bad code", "PUT", "/api/v1/settings/anti-phishing", map[string]string{"code": "<script>"}, bearer(session), 400, apperr.Invalid, "anti_phishing_code"},
		{"wrong current password", "POST", "/api/v1/settings/password", map[string]string{"current_password": "wrong-one-123", "new_password": "orchid-tundra-saddle-19"}, bearer(session), 400, apperr.Invalid, "current_password"},
		{"weak new password", "POST", "/api/v1/settings/password", map[string]string{"current_password": testPassword, "new_password": "password1234"}, bearer(session), 400, apperr.WeakPassword, "new_password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectError(t, e.call(tc.method, tc.path, tc.body, tc.hdr...), tc.status, tc.code, tc.field)
		})
	}
}

// TestSettings: anti-phishing code and password change.
func TestSettings(t *testing.T) {
	e := newEnv(t)
	const addr = "set@example.com"
	e.signUp(addr)
	session, device := e.signIn(addr, "")
	other, _ := e.signIn(addr, device)

	expect(t, e.call("PUT", "/api/v1/settings/anti-phishing", map[string]string{"code": "blue heron"}, bearer(session)...), 204)
	if got := e.call("GET", "/api/v1/me", nil, bearer(session)...).str(t, "anti_phishing_code"); got != "blue heron" {
		t.Errorf("anti_phishing_code %q", got)
	}
	expect(t, e.call("PUT", "/api/v1/settings/anti-phishing", map[string]string{"code": ""}, bearer(session)...), 204)
	if got := e.call("GET", "/api/v1/me", nil, bearer(session)...).str(t, "anti_phishing_code"); got != "" {
		t.Errorf("anti_phishing_code %q after clearing", got)
	}

	expect(t, e.call("POST", "/api/v1/settings/password", map[string]string{"current_password": testPassword, "new_password": "orchid-tundra-saddle-19"}, bearer(session)...), 204)
	r := e.call("GET", "/api/v1/me", nil, bearer(session)...)
	expect(t, r, 200)
	if r.str(t, "security_hold_until") == "" {
		t.Errorf("no security hold after a password change: %s", r.raw)
	}
	expectError(t, e.call("GET", "/api/v1/me", nil, bearer(other)...), 401, apperr.Unauthorized, "")
	expectError(t, e.call("POST", "/api/v1/signin", map[string]string{"email": addr, "password": testPassword, "device_token": device}), 401, apperr.BadCredential, "")
}

// TestSecondFactor: after device approval the API asks for a second factor,
// listing the enrolled ones in the service's order.
func TestSecondFactor(t *testing.T) {
	e := newEnv(t, fakeFactor{"backup_code", "bk-1111"}, fakeFactor{"totp", "424242"})
	const addr = "two@example.com"
	e.signUp(addr)
	r := e.call("POST", "/api/v1/signin", map[string]string{"email": addr, "password": testPassword})
	pending := r.str(t, "pending_token")
	r = e.call("POST", "/api/v1/signin/device", map[string]string{"pending_token": pending, "code": e.code(e.lastMail(addr))})
	expect(t, r, 200)
	m := r.json(t)
	if m["step"] != "second_factor" || m["pending_token"] != pending || m["session_token"] != nil {
		t.Fatalf("after device approval: %s", r.raw)
	}
	if f := m["factors"].([]any); len(f) != 2 || f[0] != "totp" || f[1] != "backup_code" {
		t.Fatalf("factors %v, want [totp backup_code]", f)
	}
	expectError(t, e.call("POST", "/api/v1/signin/factor", map[string]string{"pending_token": pending, "factor": "totp", "response": "000000"}), 400, apperr.TokenInvalid, "response")
	expectError(t, e.call("POST", "/api/v1/signin/factor", map[string]string{"pending_token": pending, "factor": "sms", "response": "424242"}), 400, apperr.Invalid, "factor")
	r = e.call("POST", "/api/v1/signin/factor", map[string]string{"pending_token": pending, "factor": "totp", "response": "424242"})
	expect(t, r, 200)
	if r.str(t, "step") != "done" || r.str(t, "session_token") == "" {
		t.Fatalf("after the factor: %s", r.raw)
	}
	me := e.call("GET", "/api/v1/me", nil, bearer(r.str(t, "session_token"))...)
	expect(t, me, 200)
	if me.json(t)["session"].(map[string]any)["second_factor_at"] == nil {
		t.Errorf("session does not record the second factor: %s", me.raw)
	}
}
