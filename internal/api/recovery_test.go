package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/recovery"
	"github.com/moat-dev/moat/internal/recovery/recoverytest"
	"github.com/moat-dev/moat/internal/store"
)

const lostAddr = "lost@example.com"

var apiAnswers = map[string]string{"account_created": "2026-10", "devices": "Pixel 8", "last_deposit_asset": "BTC"}

// pendingSecondFactor signs addr up, gives it an authenticator app in the
// store (the factor a case recovers) and returns a sign-in waiting for the
// second factor.
func (e *env) pendingSecondFactor(addr string) (store.Account, string) {
	e.t.Helper()
	e.signUp(addr)
	a, err := e.store.GetAccountByEmail(e.t.Context(), addr)
	if err != nil {
		e.t.Fatal(err)
	}
	now := e.clock.Now()
	if err := e.store.CreateTOTP(e.t.Context(), store.TOTPCredential{AccountID: a.ID, Secret: []byte("sealed seed"), ConfirmedAt: now, CreatedAt: now}); err != nil {
		e.t.Fatal(err)
	}
	r := e.call("POST", "/api/v1/signin", map[string]string{"email": addr, "password": testPassword})
	expect(e.t, r, 200)
	if r.str(e.t, "step") == "device_approval" {
		r = e.call("POST", "/api/v1/signin/device", map[string]string{"pending_token": r.str(e.t, "pending_token"), "code": e.code(e.lastMail(addr))})
		expect(e.t, r, 200)
	}
	if r.str(e.t, "step") != "second_factor" {
		e.t.Fatalf("sign-in at %s", r.raw)
	}
	return a, r.str(e.t, "pending_token")
}

func (e *env) cases(accountID string) []store.RecoveryCase {
	e.t.Helper()
	cs, err := e.store.ListRecoveryCases(e.t.Context(), store.RecoveryCaseFilter{AccountID: accountID})
	if err != nil {
		e.t.Fatal(err)
	}
	return cs
}

func caseBody(pending string, doc []byte) map[string]any {
	return map[string]any{"pending_token": pending, "answers": apiAnswers, "document_base64": base64.StdEncoding.EncodeToString(doc)}
}

func TestRecoveryCaseFlow(t *testing.T) {
	e := newEnv(t, fakeFactor{"totp", "424242"})
	a, pending := e.pendingSecondFactor(lostAddr)

	r := e.call("POST", "/api/v1/recovery/cases", caseBody(pending, recoverytest.PNG()))
	expect(t, r, 201)
	m := r.json(t)
	status := r.str(t, "status_token")
	if status == "" || !strings.HasPrefix(r.str(t, "reference"), "RC-") || m["state"] != "open" || m["approvals"] != 0.0 ||
		r.str(t, "status_path") != recovery.PathStatus+"?token="+status || r.str(t, "next_step") == "" {
		t.Fatalf("opened: %s", r.raw)
	}
	cs := e.cases(a.ID)
	if len(cs) != 1 || cs[0].Reference != r.str(t, "reference") || cs[0].DocumentType != "image/png" || cs[0].Via != recovery.ViaPassword {
		t.Fatalf("stored %+v", cs)
	}
	var stored recovery.Answers
	if err := json.Unmarshal([]byte(cs[0].Answers), &stored); err != nil || stored.Devices != "Pixel 8" || stored.LastDepositAsset != "BTC" {
		t.Errorf("answers stored %q (%v)", cs[0].Answers, err)
	}

	r = e.call("POST", "/api/v1/recovery/status", map[string]string{"token": status})
	expect(t, r, 200)
	if r.str(t, "reference") != cs[0].Reference || r.str(t, "state") != "open" {
		t.Errorf("status: %s", r.raw)
	}
	if strings.Contains(string(r.raw), "status_token") || strings.Contains(string(r.raw), a.ID) {
		t.Errorf("status shows more than the case: %s", r.raw)
	}

	// A second case while one is open.
	_, pending2 := e.signInAgain(lostAddr)
	expectError(t, e.call("POST", "/api/v1/recovery/cases", caseBody(pending2, recoverytest.PNG())), 409, apperr.Conflict, "")

	cancel := e.link(e.lastMailAbout(lostAddr, "recover"), recovery.PathCancel)
	r = e.call("POST", "/api/v1/recovery/cancel", map[string]string{"token": cancel})
	expect(t, r, 200)
	if r.str(t, "state") != "cancelled" || r.str(t, "cancelled_at") == "" {
		t.Errorf("cancel: %s", r.raw)
	}
	expectError(t, e.call("POST", "/api/v1/recovery/cancel", map[string]string{"token": cancel}), 400, apperr.TokenUsed, "")
	expectError(t, e.call("POST", "/api/v1/recovery/cancel", map[string]string{"token": "nope"}), 400, apperr.TokenInvalid, "")
	expectError(t, e.call("POST", "/api/v1/recovery/status", map[string]string{"token": "nope"}), 400, apperr.TokenInvalid, "")
	expectError(t, e.call("POST", "/api/v1/recovery/status", map[string]string{}), 400, apperr.Invalid, "token")
	r = e.call("POST", "/api/v1/recovery/status", map[string]string{"token": status})
	if r.str(t, "state") != "cancelled" {
		t.Errorf("status after cancel: %s", r.raw)
	}
}

// signInAgain starts another sign-in of addr from a known device.
func (e *env) signInAgain(addr string) (*resp, string) {
	e.t.Helper()
	r := e.call("POST", "/api/v1/signin", map[string]string{"email": addr, "password": testPassword})
	expect(e.t, r, 200)
	if r.str(e.t, "step") == "device_approval" {
		r = e.call("POST", "/api/v1/signin/device", map[string]string{"pending_token": r.str(e.t, "pending_token"), "code": e.code(e.lastMail(addr))})
		expect(e.t, r, 200)
	}
	return r, r.str(e.t, "pending_token")
}

// lastMailAbout is the newest e-mail to addr whose subject contains s.
func (e *env) lastMailAbout(addr, s string) string {
	e.t.Helper()
	msgs, err := e.store.ListOutbox(e.t.Context(), "email", 100)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range msgs {
		if m.To == addr && strings.Contains(m.Subject, s) {
			return m.Body
		}
	}
	e.t.Fatalf("no e-mail about %q to %s", s, addr)
	return ""
}

func TestRecoveryCaseRejectedStatus(t *testing.T) {
	e := newEnv(t, fakeFactor{"totp", "424242"})
	_, pending := e.pendingSecondFactor(lostAddr)
	r := e.call("POST", "/api/v1/recovery/cases", caseBody(pending, recoverytest.PNG()))
	expect(t, r, 201)
	status := r.str(t, "status_token")
	c, err := e.rec.Status(t.Context(), status)
	if err != nil {
		t.Fatal(err)
	}
	staff, err := e.svc.CreateConfirmedUser(t.Context(), "support@example.com", testPassword, store.RoleSupport, "test")
	if err != nil {
		t.Fatal(err)
	}
	const reason = "The document photo is too blurry to read."
	if _, err := e.rec.Reject(t.Context(), account.Principal{Account: staff}, c.ID, reason, account.Client{}); err != nil {
		t.Fatal(err)
	}
	r = e.call("POST", "/api/v1/recovery/status", map[string]string{"token": status})
	expect(t, r, 200)
	if r.str(t, "state") != "rejected" || r.str(t, "reject_reason") != reason || !strings.Contains(r.str(t, "next_step"), "new request") {
		t.Errorf("rejected status: %s", r.raw)
	}
}

func TestRecoveryCaseRefused(t *testing.T) {
	e := newEnv(t, fakeFactor{"totp", "424242"})
	a, pending := e.pendingSecondFactor(lostAddr)
	png := recoverytest.PNG()
	b64 := base64.StdEncoding.EncodeToString(png)
	big := bytes.Repeat([]byte{0x89}, recovery.MaxDocumentBytes+1)
	copy(big, png)

	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   apperr.Code
		field  string
	}{
		{"executable renamed", caseBody(pending, recoverytest.Executable()), 400, apperr.Invalid, "document_base64"},
		{"10 MiB and one byte", caseBody(pending, big), 413, apperr.TooLarge, "document_base64"},
		{"empty document", map[string]any{"pending_token": pending, "answers": apiAnswers, "document_base64": ""}, 400, apperr.Invalid, "document_base64"},
		{"not base64", map[string]any{"pending_token": pending, "answers": apiAnswers, "document_base64": "not*base64!"}, 400, apperr.Invalid, "document_base64"},
		{"no proof", map[string]any{"answers": apiAnswers, "document_base64": b64}, 400, apperr.Invalid, "pending_token"},
		{"two proofs", map[string]any{"pending_token": pending, "reset_token": "x", "answers": apiAnswers, "document_base64": b64}, 400, apperr.Invalid, "reset_token"},
		{"unknown pending sign-in", caseBody("nope", png), 400, apperr.TokenInvalid, ""},
		{"unknown reset link", map[string]any{"reset_token": "nope", "answers": apiAnswers, "document_base64": b64}, 400, apperr.TokenInvalid, ""},
		{"no answers", map[string]any{"pending_token": pending, "document_base64": b64}, 400, apperr.Invalid, "answers"},
		{"no month", map[string]any{"pending_token": pending, "answers": map[string]string{"devices": "x"}, "document_base64": b64}, 400, apperr.Invalid, "account_created"},
		{"unknown answer", map[string]any{"pending_token": pending, "answers": map[string]string{"account_created": "2026-10", "pet": "cat"}, "document_base64": b64}, 400, apperr.Invalid, "pet"},
		{"answers not an object", map[string]any{"pending_token": pending, "answers": []int{1}, "document_base64": b64}, 400, apperr.Invalid, "answers"},
		{"unknown field", map[string]any{"pending_token": pending, "answers": apiAnswers, "document_base64": b64, "account_id": "x"}, 400, apperr.Invalid, "account_id"},
		{"malformed", `{"pending_token":`, 400, apperr.Invalid, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectError(t, e.call("POST", "/api/v1/recovery/cases", tc.body), tc.status, tc.code, tc.field)
			if n := len(e.cases(a.ID)); n != 0 {
				t.Fatalf("%d cases stored", n)
			}
		})
	}
	// Unpadded and line-wrapped base64 are fine.
	wrapped := strings.TrimRight(b64, "=")
	wrapped = wrapped[:40] + "\r\n" + wrapped[40:]
	r := e.call("POST", "/api/v1/recovery/cases", map[string]any{"pending_token": pending, "answers": apiAnswers, "document_base64": wrapped})
	expect(t, r, 201)
}

// TestRecoveryCaseBodyLimits: the cases endpoint takes a 10 MB document in
// base64, but no more than its own limit, and every other endpoint keeps
// the global limit.
func TestRecoveryCaseBodyLimits(t *testing.T) {
	e := newEnv(t)
	serve := func(path string, size int) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", path, bytes.NewReader(bytes.Repeat([]byte{' '}, size)))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.srv.Config.Handler.ServeHTTP(rec, req)
		return rec
	}
	for _, tc := range []struct {
		path string
		size int
		want int
	}{
		{"/api/v1/recovery/cases", api.MaxRecoveryCaseBytes + 1, 413},
		{"/api/v1/recovery/status", 2 << 20, 413},
		{"/api/v1/signin", 2 << 20, 413},
		// Under the endpoint's limit: read, and refused for what it is.
		{"/api/v1/recovery/cases", 2 << 20, 400},
	} {
		rec := serve(tc.path, tc.size)
		if rec.Code != tc.want {
			t.Errorf("%s with %d bytes: %d, want %d: %.200s", tc.path, tc.size, rec.Code, tc.want, rec.Body)
		}
		if tc.want == 413 && !strings.Contains(rec.Body.String(), `"too_large"`) {
			t.Errorf("%s with %d bytes: %.200s", tc.path, tc.size, rec.Body)
		}
	}
	// The base64 of the largest document fits.
	if n := base64.StdEncoding.EncodedLen(recovery.MaxDocumentBytes) + 4096; n > api.MaxRecoveryCaseBytes {
		t.Errorf("a 10 MB document needs %d bytes, the limit is %d", n, api.MaxRecoveryCaseBytes)
	}
}

func TestRecoveryOffWithoutService(t *testing.T) {
	mux := http.NewServeMux()
	api.New(api.Deps{}).Register(mux)
	for _, p := range []string{"/api/v1/recovery/cases", "/api/v1/recovery/status", "/api/v1/recovery/cancel"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", p, strings.NewReader(`{"token":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		mux.ServeHTTP(rec, req)
		if rec.Code != 404 || !strings.Contains(rec.Body.String(), `"not_found"`) {
			t.Errorf("%s without recovery: %d %s", p, rec.Code, rec.Body)
		}
	}
}
