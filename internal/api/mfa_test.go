package api_test

// The 2FA endpoints over the real account and mfa services on a SQLite
// file, mounted as internal/server mounts the API. Codes come from
// mfa/totp.Code at the fake clock's time (and, in one test, from the real
// oathtool), security keys from the software authenticator, text messages
// from the SMS dev outbox.

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/audit"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/httpx"
	"github.com/moat-dev/moat/internal/mfa"
	"github.com/moat-dev/moat/internal/mfa/mfatest"
	"github.com/moat-dev/moat/internal/mfa/sms"
	"github.com/moat-dev/moat/internal/mfa/totp"
	"github.com/moat-dev/moat/internal/mfa/webauthn"
	"github.com/moat-dev/moat/internal/mfa/webauthn/webauthntest"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/password"
	"github.com/moat-dev/moat/internal/ratelimit"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/testenv"
)

// keyOrigin is the origin the software authenticator reports and the
// relying party accepts (WebAuthn checks it in the signed client data; the
// test server's own address does not matter to it).
const keyOrigin = "http://localhost:8080"

// mfaEnv is env with the 2FA service wired as internal/server wires it.
type mfaEnv struct {
	*env
	mfa    *mfa.Service
	outbox *sms.DevOutbox
	key    *webauthntest.Authenticator
	// devices holds each address's current device token: every sign-in
	// that completes through a pending step hands out a new one.
	devices map[string]string
	// pendingOf maps a pending token to its address.
	pendingOf map[string]string
}

func newMFAEnv(t *testing.T, policy mfa.Policy) *mfaEnv {
	t.Helper()
	st := mfatest.OpenStore(t)
	// A TOTP step boundary.
	clk := clock.NewFake(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC))
	ctr := ratelimit.NewMemory(clk)
	srv := httptest.NewUnstartedServer(nil)
	origin := "http://" + srv.Listener.Addr().String()

	box, err := secrets.NewBox(bytes.Repeat([]byte{1}, 32), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	outbox := sms.NewDevOutbox(50)
	cfg := mfa.DefaultConfig()
	cfg.WebAuthn = webauthn.Config{RPID: "localhost", Origins: []string{keyOrigin}}
	cfg.Policy = policy
	m, err := mfa.New(cfg, mfa.Deps{
		Store: st, Clock: clk, Rand: rand.Reader, Box: box, HashKey: bytes.Repeat([]byte{2}, 32),
		Counter: ctr, SMS: outbox, Recorder: mfatest.NewRecorder(clk),
	})
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := password.NewHasher(password.Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mailer, err := notify.NewMailer(notify.MailerConfig{Brand: "moat", PublicOrigin: origin}, clk, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	svc := account.New(account.Deps{
		Store: st, Clock: clk, Rand: rand.Reader, Hasher: hasher, Policy: password.DefaultPolicy("moat"),
		Mailer: mailer, Audit: audit.New(clk), Counter: ctr,
		Config: account.ConfigFrom(config.Default()), CodeKey: bytes.Repeat([]byte{7}, 32),
		SignInPolicy: account.SignInPolicyOf(m, mfa.FunctionSignIn),
		Enrolment:    m,
		StepUp:       m,
		Challenges:   account.ChallengesOf[mfa.Challenge](),
	})
	for _, f := range m.Factors() {
		svc.RegisterFactor(f)
	}
	apiMux := http.NewServeMux()
	api.New(api.Deps{Accounts: svc, MFA: m}).Register(apiMux)
	mux := http.NewServeMux()
	mux.Handle("/api/", httpx.RequireJSON(apiMux))
	h, err := httpx.Stack(mux, httpx.Options{
		Logger: slog.New(slog.DiscardHandler), Rand: rand.Reader, PublicOrigin: origin, MaxBodyBytes: 1 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	return &mfaEnv{
		env:     &env{t: t, store: st, svc: svc, clock: clk, srv: srv, origin: origin},
		mfa:     m,
		outbox:  outbox,
		key:     webauthntest.New(keyOrigin),
		devices: map[string]string{}, pendingOf: map[string]string{},
	}
}

// user signs up addr and signs in (no factor yet, approving the device),
// returning the session.
func (e *mfaEnv) user(addr string) string {
	e.t.Helper()
	e.signUp(addr)
	session, device := e.signIn(addr, "")
	e.devices[addr] = device
	return session
}

// app is an authenticator app: code returns the code it shows at the time
// the server will see (each call advances the fake clock by a second).
type app struct {
	e    *mfaEnv
	seed []byte
}

func (a app) code() string {
	return totp.Code(a.seed, totp.Step(a.e.clock.Now().Add(time.Second)))
}

// enrolTOTP adds an authenticator app over the API and returns it and the
// backup codes the confirmation showed.
func (e *mfaEnv) enrolTOTP(session string) (app, []string) {
	e.t.Helper()
	r := e.call("POST", "/api/v1/mfa/totp", nil, bearer(session)...)
	expect(e.t, r, 200)
	seed, err := totp.ParseSecret(r.str(e.t, "secret"))
	if err != nil {
		e.t.Fatal(err)
	}
	a := app{e, seed}
	r = e.call("POST", "/api/v1/mfa/totp/confirm", map[string]string{"code": a.code()}, bearer(session)...)
	expect(e.t, r, 200)
	var out struct {
		BackupCodes []string `json:"backup_codes"`
	}
	mustJSON(e.t, r, &out)
	e.clock.Advance(totp.Period) // the confirming code's step is spent
	return a, out.BackupCodes
}

// stepUp confirms the session with the app.
func (e *mfaEnv) stepUp(session string, a app) {
	e.t.Helper()
	expect(e.t, e.call("POST", "/api/v1/stepup", map[string]string{"factor": "totp", "response": a.code()}, bearer(session)...), 200)
	e.clock.Advance(totp.Period)
}

// pending starts a sign-in from addr's approved device and wants it
// waiting for a second factor (factors, when given).
func (e *mfaEnv) pending(addr string, factors ...string) string {
	e.t.Helper()
	r := e.call("POST", "/api/v1/signin", map[string]string{"email": addr, "password": testPassword, "device_token": e.devices[addr]})
	expect(e.t, r, 200)
	m := r.json(e.t)
	if m["step"] != "second_factor" || m["session_token"] != nil || m["pending_token"] == "" {
		e.t.Fatalf("sign-in not waiting for a second factor: %s", r.raw)
	}
	if got := fmt.Sprint(m["factors"]); len(factors) > 0 && got != fmt.Sprint(toAny(factors)) {
		e.t.Errorf("factors %s, want %v", got, factors)
	}
	e.pendingOf[m["pending_token"].(string)] = addr
	return m["pending_token"].(string)
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// answer posts a second factor for a pending sign-in, keeping the device
// token a completed sign-in hands out.
func (e *mfaEnv) answer(pending, factor string, response any) *resp {
	e.t.Helper()
	r := e.call("POST", "/api/v1/signin/factor", map[string]any{"pending_token": pending, "factor": factor, "response": response})
	e.keepDevice(e.pendingOf[pending], r)
	return r
}

func (e *mfaEnv) keepDevice(addr string, r *resp) {
	e.t.Helper()
	if r.status != 200 || addr == "" {
		return
	}
	if d := r.str(e.t, "device_token"); d != "" {
		e.devices[addr] = d
	}
}

// sessions counts the account's live sessions in the store.
func (e *mfaEnv) sessions(addr string) int {
	e.t.Helper()
	a, err := e.store.GetAccountByEmail(e.t.Context(), addr)
	if err != nil {
		e.t.Fatal(err)
	}
	list, err := e.store.ListSessions(e.t.Context(), a.ID, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return len(list)
}

func (e *mfaEnv) methods(session string) map[string]any {
	e.t.Helper()
	r := e.call("GET", "/api/v1/mfa", nil, bearer(session)...)
	expect(e.t, r, 200)
	return r.json(e.t)
}

func mustJSON(t *testing.T, r *resp, v any) {
	t.Helper()
	if err := json.Unmarshal(r.raw, v); err != nil {
		t.Fatalf("%v: %s", err, r.raw)
	}
}

// wrongCode is a 6-digit code the app shows at no step near now.
func (a app) wrongCode() string {
	near := map[string]bool{}
	now := totp.Step(a.e.clock.Now())
	for k := int64(-40); k <= 40; k++ {
		near[totp.Code(a.seed, now+k)] = true
	}
	for i := 1; ; i++ {
		if c := fmt.Sprintf("%06d", i*7919%1000000); !near[c] {
			return c
		}
	}
}

// errorOf decodes an error body.
func errorOf(t *testing.T, r *resp) (code apperr.Code, field, message string) {
	t.Helper()
	var b struct {
		Error struct {
			Code    apperr.Code `json:"code"`
			Field   string      `json:"field"`
			Message string      `json:"message"`
		} `json:"error"`
	}
	mustJSON(t, r, &b)
	return b.Error.Code, b.Error.Field, b.Error.Message
}

// TestMFATOTP enrols an authenticator app over the API, then signs in
// with it: the sign-in stops at the second factor, a replayed code is
// refused as already used, the next code completes it.
func TestMFATOTP(t *testing.T) {
	e := newMFAEnv(t, mfa.DefaultConfig().Policy)
	const addr = "totp@example.com"
	session := e.user(addr)

	m := e.methods(session)
	if fmt.Sprint(m["enrolled"]) != "[]" || m["totp"] != nil || m["phone"] != nil || m["step_up_required"] != false ||
		m["sms_available"] != true || m["sms_notice"] != mfa.SMSNotice || m["backup_codes_remaining"] != 0.0 ||
		m["must_enrol"] != false || fmt.Sprint(m["settings"]) != "map[funding:true signin:true trading:false]" {
		t.Fatalf("before enrolment: %v", m)
	}

	// Begin: the secret three ways, all the same.
	r := e.call("POST", "/api/v1/mfa/totp", nil, bearer(session)...)
	expect(t, r, 200)
	var en struct {
		Secret    string `json:"secret"`
		ManualKey string `json:"manual_key"`
		URI       string `json:"otpauth_uri"`
		QRCode    string `json:"qr_code"`
	}
	mustJSON(t, r, &en)
	if strings.ReplaceAll(en.ManualKey, " ", "") != en.Secret || !strings.Contains(en.URI, "secret="+en.Secret) ||
		!strings.HasPrefix(en.URI, "otpauth://totp/moat:totp@example.com?") || !strings.Contains(en.URI, "issuer=moat") {
		t.Fatalf("enrolment: %+v", en)
	}
	png, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(en.QRCode, "data:image/png;base64,"))
	if err != nil || !strings.HasPrefix(en.QRCode, "data:image/png;base64,") || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("qr_code is not a PNG data URI: %.60s… (%v)", en.QRCode, err)
	}
	qr := e.call("GET", "/api/v1/mfa/totp/qr", nil, bearer(session)...)
	expect(t, qr, 200)
	if qr.header.Get("Content-Type") != "image/png" || qr.header.Get("Cache-Control") != "no-store" || !bytes.Equal(qr.raw, png) {
		t.Errorf("QR image: %q %q, %d bytes, same as the data URI: %v", qr.header.Get("Content-Type"), qr.header.Get("Cache-Control"), len(qr.raw), bytes.Equal(qr.raw, png))
	}
	seed, err := totp.ParseSecret(en.Secret)
	if err != nil {
		t.Fatal(err)
	}
	a := app{e, seed}

	// A wrong code does not enrol; the right one does, once, with backup codes.
	expectError(t, e.call("POST", "/api/v1/mfa/totp/confirm", map[string]string{"code": a.wrongCode()}, bearer(session)...), 400, apperr.TokenInvalid, "code")
	expectError(t, e.call("POST", "/api/v1/mfa/totp/confirm", map[string]string{"code": "12345"}, bearer(session)...), 400, apperr.TokenInvalid, "code")
	r = e.call("POST", "/api/v1/mfa/totp/confirm", map[string]string{"code": a.code()}, bearer(session)...)
	expect(t, r, 200)
	var done struct {
		Method      string   `json:"method"`
		BackupCodes []string `json:"backup_codes"`
	}
	mustJSON(t, r, &done)
	if done.Method != "totp" || len(done.BackupCodes) != 10 {
		t.Fatalf("confirm: %s", r.raw)
	}
	e.clock.Advance(totp.Period)
	m = e.methods(session)
	if fmt.Sprint(m["enrolled"]) != "[totp backup_code]" || m["totp"] == nil || m["backup_codes_remaining"] != 10.0 || m["step_up_required"] != true {
		t.Fatalf("after enrolment: %v", m)
	}
	// A second app: the change needs a step-up first, then one app is the limit.
	expectError(t, e.call("POST", "/api/v1/mfa/totp", nil, bearer(session)...), 403, apperr.StepUpNeeded, "")
	e.stepUp(session, a)
	expectError(t, e.call("POST", "/api/v1/mfa/totp", nil, bearer(session)...), 409, apperr.Conflict, "")
	expectError(t, e.call("GET", "/api/v1/mfa/totp/qr", nil, bearer(session)...), 404, apperr.NotFound, "")

	// Sign-in now asks for the app, even on a known device.
	pending := e.pending(addr, "totp", "backup_code")
	r = e.call("POST", "/api/v1/signin/factor/challenge", map[string]string{"pending_token": pending, "factor": "totp"})
	expect(t, r, 200)
	if string(bytes.TrimSpace(r.raw)) != `{"method":"totp"}` {
		t.Errorf("an app needs no challenge: %s", r.raw)
	}
	expectError(t, e.answer(pending, "totp", a.wrongCode()), 400, apperr.TokenInvalid, "response")
	code := a.code()
	r = e.answer(pending, "totp", code)
	expect(t, r, 200)
	sess := r.str(t, "session_token")
	if r.str(t, "step") != "done" || sess == "" {
		t.Fatalf("right code: %s", r.raw)
	}
	me := e.call("GET", "/api/v1/me", nil, bearer(sess)...)
	if me.json(t)["session"].(map[string]any)["second_factor_at"] == nil {
		t.Errorf("the session does not record its second factor: %s", me.raw)
	}
	// The factor-verified session may make changes at once.
	if e.methods(sess)["step_up_required"] != false {
		t.Error("a session that just verified its factor is asked to step up")
	}

	// The same code on another sign-in within its step: already used.
	pending = e.pending(addr)
	r = e.answer(pending, "totp", code)
	c, f, msg := errorOf(t, r)
	if r.status != 400 || c != apperr.TokenUsed || f != "response" || !strings.Contains(msg, "already used") {
		t.Fatalf("replayed code: %d %s", r.status, r.raw)
	}
	e.clock.Advance(totp.Period)
	r = e.answer(pending, "totp", a.code())
	expect(t, r, 200)
	if r.str(t, "step") != "done" {
		t.Fatalf("next code: %s", r.raw)
	}
}

// TestMFAOathtool: the reference TOTP client, given the secret the API
// returned, produces the codes that enrol and sign in.
func TestMFAOathtool(t *testing.T) {
	bin := testenv.Oathtool(t)
	e := newMFAEnv(t, mfa.DefaultConfig().Policy)
	const addr = "oath@example.com"
	session := e.user(addr)
	oathtool := func(secret string) string {
		t.Helper()
		// The time the server will see (call advances the clock a second).
		at := e.clock.Now().Add(time.Second).Format("2006-01-02 15:04:05 UTC")
		out, err := exec.Command(bin, "--totp", "-b", secret, "--now", at).Output()
		if err != nil {
			t.Fatalf("oathtool: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	r := e.call("POST", "/api/v1/mfa/totp", nil, bearer(session)...)
	expect(t, r, 200)
	// The manual key as a person copies it (spaces and all) does for oathtool
	// what the ungrouped secret does.
	secret := strings.ReplaceAll(r.str(t, "manual_key"), " ", "")
	if secret != r.str(t, "secret") {
		t.Fatalf("manual key %q, secret %q", r.str(t, "manual_key"), r.str(t, "secret"))
	}
	expect(t, e.call("POST", "/api/v1/mfa/totp/confirm", map[string]string{"code": oathtool(secret)}, bearer(session)...), 200)
	e.clock.Advance(totp.Period)
	pending := e.pending(addr, "totp", "backup_code")
	r = e.answer(pending, "totp", oathtool(secret))
	expect(t, r, 200)
	if r.str(t, "step") != "done" || r.str(t, "session_token") == "" {
		t.Fatalf("sign-in with oathtool's code: %s", r.raw)
	}
}

// TestMFAWrongCodeThrottling: wrong codes are throttled per account,
// across step-up and sign-in; the limit refuses even the right code until
// the window ends, and a rate limit does not spend the sign-in's tries.
func TestMFAWrongCodeThrottling(t *testing.T) {
	e := newMFAEnv(t, mfa.DefaultConfig().Policy)
	const addr = "throttle@example.com"
	session := e.user(addr)
	a, _ := e.enrolTOTP(session)

	for i := range 5 {
		r := e.call("POST", "/api/v1/stepup", map[string]string{"factor": "totp", "response": a.wrongCode()}, bearer(session)...)
		if c, f, _ := errorOf(t, r); r.status != 400 || c != apperr.TokenInvalid || f != "response" {
			t.Fatalf("wrong code %d: %d %s", i+1, r.status, r.raw)
		}
	}
	r := e.call("POST", "/api/v1/stepup", map[string]string{"factor": "totp", "response": a.code()}, bearer(session)...)
	expectError(t, r, 429, apperr.RateLimited, "")
	if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q", ra)
	}
	if e.methods(session)["step_up_required"] != true {
		t.Fatal("a refused step-up counted")
	}
	// The same account at sign-in: throttled too; the sign-in survives.
	pending := e.pending(addr)
	r = e.answer(pending, "totp", a.code())
	expectError(t, r, 429, apperr.RateLimited, "")
	if n := e.sessions(addr); n != 1 {
		t.Fatalf("%d sessions, want only the first", n)
	}
	wait, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || wait < 1 || wait > 15*60 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	e.clock.Advance(time.Duration(wait) * time.Second)
	r = e.answer(pending, "totp", a.code())
	expect(t, r, 200)
	if r.str(t, "step") != "done" {
		t.Fatalf("after the window: %s", r.raw)
	}

	// Five wrong answers void a pending sign-in.
	e.clock.Advance(totp.Period)
	pending = e.pending(addr)
	for i := range 4 {
		r := e.answer(pending, "totp", a.wrongCode())
		expectError(t, r, 400, apperr.TokenInvalid, "response")
		if _, _, msg := errorOf(t, r); !strings.Contains(msg, fmt.Sprintf("%d tr", 4-i)) || !strings.Contains(msg, "left") {
			t.Errorf("message %q does not count the tries left", msg)
		}
	}
	expectError(t, e.answer(pending, "totp", a.wrongCode()), 400, apperr.TokenExpired, "response")
	r = e.answer(pending, "totp", a.code())
	if r.status == 200 || r.json(t)["session_token"] != nil {
		t.Fatalf("a voided sign-in completed: %s", r.raw)
	}
}

// TestMFABackupCodes: a backup code signs in once; regenerating needs a
// fresh factor and voids the old set.
func TestMFABackupCodes(t *testing.T) {
	e := newMFAEnv(t, mfa.DefaultConfig().Policy)
	const addr = "backup@example.com"
	session := e.user(addr)
	_, codes := e.enrolTOTP(session)
	if len(codes) != 10 {
		t.Fatalf("%d backup codes", len(codes))
	}
	// Regenerating is a security change: this session has no fresh factor.
	expectError(t, e.call("POST", "/api/v1/mfa/backup-codes", nil, bearer(session)...), 403, apperr.StepUpNeeded, "")

	pending := e.pending(addr, "totp", "backup_code")
	r := e.answer(pending, "backup_code", strings.ToLower(codes[0]))
	expect(t, r, 200)
	fresh := r.str(t, "session_token")
	if r.str(t, "step") != "done" || fresh == "" {
		t.Fatalf("backup code: %s", r.raw)
	}
	if n := e.methods(fresh)["backup_codes_remaining"]; n != 9.0 {
		t.Errorf("remaining %v, want 9", n)
	}
	pending = e.pending(addr)
	c, f, msg := errorOf(t, e.answer(pending, "backup_code", codes[0]))
	if c != apperr.TokenUsed || f != "response" || !strings.Contains(msg, "already used") {
		t.Fatalf("spent backup code: %s %s %q", c, f, msg)
	}
	expect(t, e.answer(pending, "backup_code", codes[1]), 200)

	// The backup-code session is fresh: it may regenerate, once shown.
	r = e.call("POST", "/api/v1/mfa/backup-codes", nil, bearer(fresh)...)
	expect(t, r, 200)
	var out struct {
		BackupCodes []string `json:"backup_codes"`
	}
	mustJSON(t, r, &out)
	if len(out.BackupCodes) != 10 || out.BackupCodes[0] == codes[2] {
		t.Fatalf("regenerated: %s", r.raw)
	}
	if n := e.methods(fresh)["backup_codes_remaining"]; n != 10.0 {
		t.Errorf("remaining %v, want 10", n)
	}
	pending = e.pending(addr)
	expectError(t, e.answer(pending, "backup_code", codes[2]), 400, apperr.TokenInvalid, "response")
	expect(t, e.answer(pending, "backup_code", out.BackupCodes[9]), 200)
}

// TestMFAStepUp: removing a factor needs a second factor within the last
// five minutes; /stepup provides it, and it lapses on time.
func TestMFAStepUp(t *testing.T) {
	e := newMFAEnv(t, mfa.DefaultConfig().Policy)
	const addr = "stepup@example.com"
	session := e.user(addr)
	a, _ := e.enrolTOTP(session)

	expectError(t, e.call("DELETE", "/api/v1/mfa/totp", nil, bearer(session)...), 403, apperr.StepUpNeeded, "")
	expectError(t, e.call("POST", "/api/v1/settings/password", map[string]string{"current_password": testPassword, "new_password": "orchid-tundra-saddle-19"}, bearer(session)...), 403, apperr.StepUpNeeded, "")
	expectError(t, e.call("PUT", "/api/v1/mfa/settings", map[string]bool{"signin": true, "funding": true, "trading": true}, bearer(session)...), 403, apperr.StepUpNeeded, "")

	// Factors the account does not have, and malformed answers, are refused
	// before anything is counted.
	expectError(t, e.call("POST", "/api/v1/stepup", map[string]string{"factor": "sms", "response": "123456"}, bearer(session)...), 400, apperr.Invalid, "factor")
	expectError(t, e.call("POST", "/api/v1/stepup/challenge", map[string]string{"factor": "webauthn"}, bearer(session)...), 400, apperr.Invalid, "factor")
	expectError(t, e.call("POST", "/api/v1/stepup", map[string]any{"factor": "totp", "response": 123456}, bearer(session)...), 400, apperr.Invalid, "response")
	r := e.call("POST", "/api/v1/stepup/challenge", map[string]string{"factor": "totp"}, bearer(session)...)
	expect(t, r, 200)
	if r.str(t, "method") != "totp" || r.json(t)["options"] != nil {
		t.Errorf("totp challenge: %s", r.raw)
	}

	r = e.call("POST", "/api/v1/stepup", map[string]string{"factor": "totp", "response": a.code()}, bearer(session)...)
	expect(t, r, 200)
	at, err1 := time.Parse(time.RFC3339Nano, r.str(t, "second_factor_at"))
	until, err2 := time.Parse(time.RFC3339Nano, r.str(t, "valid_until"))
	if err1 != nil || err2 != nil || !at.Equal(e.clock.Now()) || until.Sub(at) != 5*time.Minute {
		t.Fatalf("step-up: %s (now %v)", r.raw, e.clock.Now())
	}
	if e.methods(session)["step_up_required"] != false {
		t.Fatal("still asked to step up")
	}
	// Settings change within the window.
	r = e.call("PUT", "/api/v1/mfa/settings", map[string]bool{"signin": true, "funding": true, "trading": true}, bearer(session)...)
	expect(t, r, 200)
	if fmt.Sprint(r.json(t)) != "map[funding:true signin:true trading:true]" {
		t.Errorf("settings: %s", r.raw)
	}
	// Five minutes later the step-up has lapsed.
	e.clock.Set(at.Add(5*time.Minute + time.Second))
	expectError(t, e.call("DELETE", "/api/v1/mfa/totp", nil, bearer(session)...), 403, apperr.StepUpNeeded, "")
	if e.methods(session)["step_up_required"] != true {
		t.Fatal("the step-up did not lapse")
	}
	// A new step-up, and the removal goes through.
	e.stepUp(session, a)
	expect(t, e.call("DELETE", "/api/v1/mfa/totp", nil, bearer(session)...), 204)
	m := e.methods(session)
	if fmt.Sprint(m["enrolled"]) != "[]" || m["totp"] != nil || m["backup_codes_remaining"] != 0.0 {
		t.Fatalf("after removing the last factor: %v", m)
	}
	expectError(t, e.call("DELETE", "/api/v1/mfa/totp", nil, bearer(session)...), 404, apperr.NotFound, "")
}

// TestMFASMS: adding a phone, the send limits, SMS at sign-in.
func TestMFASMS(t *testing.T) {
	e := newMFAEnv(t, mfa.DefaultConfig().Policy)
	const addr = "sms@example.com"
	const number = "+442079460958"
	session := e.user(addr)
	codeRe := regexp.MustCompile(`code is (\d{6})\.`)
	lastCode := func() string {
		t.Helper()
		msg, ok := e.outbox.Last(number)
		m := codeRe.FindStringSubmatch(msg.Body)
		if !ok || m == nil {
			t.Fatalf("no code texted to %s: %q", number, msg.Body)
		}
		return m[1]
	}

	expectError(t, e.call("POST", "/api/v1/mfa/sms", map[string]string{"phone": "020 7946 0958"}, bearer(session)...), 400, apperr.Invalid, "phone")
	r := e.call("POST", "/api/v1/mfa/sms", map[string]string{"phone": "+44 20 7946 0958"}, bearer(session)...)
	expect(t, r, 202)
	if sent := r.str(t, "sent_to"); sent == "" || strings.Contains(sent, "7946") || r.str(t, "notice") != mfa.SMSNotice {
		t.Errorf("add phone: %s", r.raw)
	}
	first := lastCode()
	expect(t, e.call("POST", "/api/v1/mfa/sms/resend", nil, bearer(session)...), 202)
	second := lastCode()
	expect(t, e.call("POST", "/api/v1/mfa/sms/resend", nil, bearer(session)...), 202)
	third := lastCode()
	// Three texts per 15 minutes.
	r = e.call("POST", "/api/v1/mfa/sms/resend", nil, bearer(session)...)
	expectError(t, r, 429, apperr.RateLimited, "")
	if r.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	if n := len(e.outbox.Messages()); n != 3 {
		t.Fatalf("%d texts sent, want 3", n)
	}
	// Only the newest code counts.
	if first != third {
		expectError(t, e.call("POST", "/api/v1/mfa/sms/confirm", map[string]string{"code": first}, bearer(session)...), 400, apperr.TokenInvalid, "code")
	}
	_ = second
	r = e.call("POST", "/api/v1/mfa/sms/confirm", map[string]string{"code": third}, bearer(session)...)
	expect(t, r, 200)
	var done struct {
		Method      string   `json:"method"`
		BackupCodes []string `json:"backup_codes"`
	}
	mustJSON(t, r, &done)
	if done.Method != "sms" || len(done.BackupCodes) != 10 {
		t.Fatalf("confirm phone: %s", r.raw)
	}
	m := e.methods(session)
	if fmt.Sprint(m["enrolled"]) != "[sms backup_code]" || m["phone"] == nil {
		t.Fatalf("after adding the phone: %v", m)
	}

	// Sign-in by SMS: the challenge texts a code, under the same limits.
	pending := e.pending(addr, "sms", "backup_code")
	expectError(t, e.call("POST", "/api/v1/signin/factor/challenge", map[string]string{"pending_token": pending, "factor": "sms"}), 429, apperr.RateLimited, "")
	e.clock.Advance(15 * time.Minute)
	pending = e.pending(addr)
	r = e.call("POST", "/api/v1/signin/factor/challenge", map[string]string{"pending_token": pending, "factor": "sms"})
	expect(t, r, 200)
	if r.str(t, "method") != "sms" || r.str(t, "sent_to") == "" || r.str(t, "expires_at") == "" {
		t.Fatalf("sms challenge: %s", r.raw)
	}
	code := lastCode()
	r = e.answer(pending, "sms", code)
	expect(t, r, 200)
	if r.str(t, "step") != "done" {
		t.Fatalf("sms sign-in: %s", r.raw)
	}
	// A code works once.
	pending = e.pending(addr)
	expectError(t, e.answer(pending, "sms", code), 400, apperr.TokenUsed, "response")

	// Removing the phone: step-up by SMS first.
	expectError(t, e.call("DELETE", "/api/v1/mfa/sms", nil, bearer(session)...), 403, apperr.StepUpNeeded, "")
	expect(t, e.call("POST", "/api/v1/stepup/challenge", map[string]string{"factor": "sms"}, bearer(session)...), 200)
	expect(t, e.call("POST", "/api/v1/stepup", map[string]string{"factor": "sms", "response": lastCode()}, bearer(session)...), 200)
	expect(t, e.call("DELETE", "/api/v1/mfa/sms", nil, bearer(session)...), 204)
	if m := e.methods(session); m["phone"] != nil || fmt.Sprint(m["enrolled"]) != "[]" {
		t.Fatalf("after removing the phone: %v", m)
	}
}

// TestMFASecurityKeys: a security key and a passkey registered over the
// API, used as the second factor, for step-up and for passwordless
// sign-in; renamed and removed.
func TestMFASecurityKeys(t *testing.T) {
	e := newMFAEnv(t, mfa.DefaultConfig().Policy)
	const addr = "keys@example.com"
	session := e.user(addr)

	register := func(key *webauthntest.Authenticator, session, name string, passkey bool) map[string]any {
		t.Helper()
		r := e.call("POST", "/api/v1/mfa/webauthn/register/begin", map[string]any{"name": name, "passkey": passkey}, bearer(session)...)
		expect(t, r, 200)
		var ch struct {
			Method   string          `json:"method"`
			Ceremony string          `json:"ceremony"`
			Options  json.RawMessage `json:"options"`
		}
		mustJSON(t, r, &ch)
		if ch.Method != "webauthn" || ch.Ceremony == "" || !bytes.Contains(ch.Options, []byte(`"publicKey"`)) {
			t.Fatalf("register begin: %s", r.raw)
		}
		cred, err := key.Create(ch.Options)
		if err != nil {
			t.Fatal(err)
		}
		r = e.call("POST", "/api/v1/mfa/webauthn/register/finish", map[string]any{"ceremony": ch.Ceremony, "credential": json.RawMessage(cred)}, bearer(session)...)
		expect(t, r, 201)
		// The ceremony is single use.
		expectError(t, e.call("POST", "/api/v1/mfa/webauthn/register/finish", map[string]any{"ceremony": ch.Ceremony, "credential": json.RawMessage(cred)}, bearer(session)...), 400, apperr.TokenExpired, "")
		return r.json(t)
	}
	// assert answers a webauthn challenge with the authenticator.
	assert := func(key *webauthntest.Authenticator, r *resp) map[string]any {
		t.Helper()
		expect(t, r, 200)
		var ch struct {
			Ceremony string          `json:"ceremony"`
			Options  json.RawMessage `json:"options"`
		}
		mustJSON(t, r, &ch)
		cred, err := key.Get(ch.Options)
		if err != nil {
			t.Fatal(err)
		}
		return map[string]any{"ceremony": ch.Ceremony, "credential": json.RawMessage(cred)}
	}

	// A security key, and a phone that holds a passkey.
	yubikey, phone := e.key, webauthntest.New(keyOrigin)
	out := register(yubikey, session, "YubiKey", false)
	key := out["key"].(map[string]any)
	if out["method"] != "webauthn" || key["name"] != "YubiKey" || key["passkey"] != false || len(out["backup_codes"].([]any)) != 10 {
		t.Fatalf("register finish: %v", out)
	}
	keyID := key["id"].(string)

	// Sign-in with the key as the second factor; the response may be the
	// object or a string holding it (as the web page's script posts it).
	for _, asString := range []bool{false, true} {
		pending := e.pending(addr, "webauthn", "backup_code")
		ans := assert(yubikey, e.call("POST", "/api/v1/signin/factor/challenge", map[string]string{"pending_token": pending, "factor": "webauthn"}))
		var response any = ans
		if asString {
			b, _ := json.Marshal(ans)
			response = string(b)
		}
		r := e.answer(pending, "webauthn", response)
		expect(t, r, 200)
		if r.str(t, "step") != "done" {
			t.Fatalf("key sign-in: %s", r.raw)
		}
		// The same assertion again: its ceremony is spent.
		pending = e.pending(addr)
		expectError(t, e.answer(pending, "webauthn", ans), 400, apperr.TokenExpired, "response")
	}

	// A second key, a passkey: needs a step-up with the first.
	expectError(t, e.call("POST", "/api/v1/mfa/webauthn/register/begin", map[string]any{"passkey": true}, bearer(session)...), 403, apperr.StepUpNeeded, "")
	ans := assert(yubikey, e.call("POST", "/api/v1/stepup/challenge", map[string]string{"factor": "webauthn"}, bearer(session)...))
	expect(t, e.call("POST", "/api/v1/stepup", map[string]any{"factor": "webauthn", "response": ans}, bearer(session)...), 200)
	out = register(phone, session, "", true)
	pk := out["key"].(map[string]any)
	if pk["name"] != "Passkey" || pk["passkey"] != true || out["backup_codes"] != nil {
		t.Fatalf("passkey: %v", out)
	}

	// Passwordless: begin and finish need no session, and answer as /signin.
	r := e.call("POST", "/api/v1/signin/passkey/begin", nil)
	expect(t, r, 200)
	var ch struct {
		Ceremony string          `json:"ceremony"`
		Options  json.RawMessage `json:"options"`
	}
	mustJSON(t, r, &ch)
	cred, err := phone.Get(ch.Options)
	if err != nil {
		t.Fatal(err)
	}
	r = e.call("POST", "/api/v1/signin/passkey/finish", map[string]any{"ceremony": ch.Ceremony, "credential": json.RawMessage(cred), "device_token": e.devices[addr]})
	expect(t, r, 200)
	e.keepDevice(addr, r)
	pass := r.str(t, "session_token")
	if r.str(t, "step") != "done" || pass == "" {
		t.Fatalf("passkey sign-in: %s", r.raw)
	}
	if e.methods(pass)["step_up_required"] != false {
		t.Error("a passkey sign-in is not a verified second factor")
	}
	expectError(t, e.call("POST", "/api/v1/signin/passkey/finish", map[string]any{"ceremony": ch.Ceremony, "credential": json.RawMessage(cred)}), 400, apperr.TokenExpired, "")

	// Rename, then remove (the passkey session is fresh).
	expect(t, e.call("PATCH", "/api/v1/mfa/webauthn/"+keyID, map[string]string{"name": "Blue key"}, bearer(pass)...), 204)
	expectError(t, e.call("PATCH", "/api/v1/mfa/webauthn/"+keyID, map[string]string{"name": "bad\x00name"}, bearer(pass)...), 400, apperr.Invalid, "name")
	expectError(t, e.call("PATCH", "/api/v1/mfa/webauthn/nope", map[string]string{"name": "x"}, bearer(pass)...), 404, apperr.NotFound, "")
	keys := e.methods(pass)["security_keys"].([]any)
	if len(keys) != 2 || keys[0].(map[string]any)["name"] != "Blue key" || keys[0].(map[string]any)["last_used_at"] == nil {
		t.Fatalf("keys: %v", keys)
	}
	// Once the step-ups have lapsed, removing a key needs a new one: the
	// passkey answers it as well as the key would.
	e.clock.Advance(5*time.Minute + time.Second)
	expectError(t, e.call("DELETE", "/api/v1/mfa/webauthn/"+keyID, nil, bearer(session)...), 403, apperr.StepUpNeeded, "")
	expectError(t, e.call("DELETE", "/api/v1/mfa/webauthn/"+keyID, nil, bearer(pass)...), 403, apperr.StepUpNeeded, "")
	ans = assert(phone, e.call("POST", "/api/v1/stepup/challenge", map[string]string{"factor": "webauthn"}, bearer(pass)...))
	expect(t, e.call("POST", "/api/v1/stepup", map[string]any{"factor": "webauthn", "response": ans}, bearer(pass)...), 200)
	expect(t, e.call("DELETE", "/api/v1/mfa/webauthn/"+keyID, nil, bearer(pass)...), 204)
	expectError(t, e.call("DELETE", "/api/v1/mfa/webauthn/"+keyID, nil, bearer(pass)...), 404, apperr.NotFound, "")
	if keys := e.methods(pass)["security_keys"].([]any); len(keys) != 1 {
		t.Fatalf("keys after removal: %v", keys)
	}
}

// TestMFASignInOrder: whatever order a client calls the sign-in endpoints
// in, a session is issued only by the right second factor after the device
// was approved; every other call, before or after, issues nothing.
func TestMFASignInOrder(t *testing.T) {
	e := newMFAEnv(t, mfa.DefaultConfig().Policy)
	const addr = "order@example.com"
	session := e.user(addr)
	a, _ := e.enrolTOTP(session)
	before := e.sessions(addr)

	type action struct {
		name string
		call func(pending string) *resp
	}
	actions := []action{
		{"factor", func(p string) *resp { return e.answer(p, "totp", a.code()) }},
		{"device", func(p string) *resp {
			return e.call("POST", "/api/v1/signin/device", map[string]string{"pending_token": p, "code": e.code(e.lastMail(addr))})
		}},
		{"challenge", func(p string) *resp {
			return e.call("POST", "/api/v1/signin/factor/challenge", map[string]string{"pending_token": p, "factor": "totp"})
		}},
		{"status", func(p string) *resp {
			return e.call("POST", "/api/v1/signin/status", map[string]string{"pending_token": p})
		}},
		{"wrong-factor", func(p string) *resp { return e.answer(p, "backup_code", "AAAAA-BBBBB") }},
		{"passkey", func(p string) *resp {
			return e.call("POST", "/api/v1/signin/passkey/finish", map[string]any{"ceremony": p, "credential": map[string]any{"id": "x"}})
		}},
	}
	// Every order of the first four, each followed by the last two.
	var perms [][]int
	var permute func(prefix []int, rest []int)
	permute = func(prefix, rest []int) {
		if len(rest) == 0 {
			perms = append(perms, append(append([]int(nil), prefix...), 4, 5))
			return
		}
		for i := range rest {
			next := append(append([]int(nil), rest[:i]...), rest[i+1:]...)
			permute(append(prefix, rest[i]), next)
		}
	}
	permute(nil, []int{0, 1, 2, 3})
	issued := 0
	for _, order := range perms {
		// A fresh code step and throttle window for every run.
		e.clock.Advance(15 * time.Minute)
		r := e.call("POST", "/api/v1/signin", map[string]string{"email": addr, "password": testPassword})
		expect(t, r, 200)
		pending := r.str(t, "pending_token")
		if r.str(t, "step") != "device_approval" || pending == "" {
			t.Fatalf("sign-in from a new device: %s", r.raw)
		}
		approved, verified := false, false
		var names []string
		for _, i := range order {
			act := actions[i]
			names = append(names, act.name)
			r := act.call(pending)
			if r.status >= 500 {
				t.Fatalf("%v: %d %s", names, r.status, r.raw)
			}
			tok, _ := r.json(t)["session_token"].(string)
			want := act.name == "factor" && approved && !verified
			if (tok != "") != want {
				t.Fatalf("%v: session issued %v, want %v: %d %s", names, tok != "", want, r.status, r.raw)
			}
			if bearerOK := tok != "" && e.call("GET", "/api/v1/me", nil, bearer(tok)...).status == 200; bearerOK != want {
				t.Fatalf("%v: session usable %v", names, bearerOK)
			}
			if e.call("GET", "/api/v1/me", nil, bearer(pending)...).status != 401 {
				t.Fatalf("%v: the pending token works as a session", names)
			}
			switch {
			case act.name == "device" && !verified && r.status == 200:
				approved = true
			case want:
				verified = true
				issued++
			}
		}
		if !approved {
			t.Fatalf("%v: the device code never approved the device", names)
		}
		if got := e.sessions(addr) - before; got != issued {
			t.Fatalf("%v: %d sessions issued, want %d", names, got, issued)
		}
	}
	if issued != 12 {
		// The factor comes after the device code in half of the 24 orders.
		t.Errorf("%d sign-ins completed, want 12", issued)
	}
}

// TestMFAMustEnrol: with 2FA mandatory, a sign-in without a factor says so,
// and the account's 2FA page too.
func TestMFAMustEnrol(t *testing.T) {
	e := newMFAEnv(t, mfa.Policy{MandatoryForAll: true, StaffSecurityKey: true})
	const addr = "must@example.com"
	e.signUp(addr)
	r := e.call("POST", "/api/v1/signin", map[string]string{"email": addr, "password": testPassword})
	r = e.call("POST", "/api/v1/signin/device", map[string]string{"pending_token": r.str(t, "pending_token"), "code": e.code(e.lastMail(addr))})
	expect(t, r, 200)
	m := r.json(t)
	session := m["session_token"].(string)
	e.devices[addr] = m["device_token"].(string)
	if m["step"] != "done" || m["must_enrol"] != true || m["enrol_method"] != nil {
		t.Fatalf("sign-in: %s", r.raw)
	}
	if m := e.methods(session); m["must_enrol"] != true {
		t.Fatalf("methods: %v", m)
	}
	a, _ := e.enrolTOTP(session)
	pending := e.pending(addr)
	r = e.answer(pending, "totp", a.code())
	expect(t, r, 200)
	if r.json(t)["must_enrol"] != nil {
		t.Errorf("must_enrol after enrolment: %s", r.raw)
	}
	// Sign-in protection cannot be turned off here.
	expectError(t, e.call("PUT", "/api/v1/mfa/settings", map[string]bool{"signin": false, "funding": true, "trading": false}, bearer(r.str(t, "session_token"))...), 403, apperr.Forbidden, "signin")
}

// mfaEndpoints are the 2FA endpoints, for the tests that try each.
var mfaEndpoints = []struct{ method, path string }{
	{"GET", "/api/v1/mfa"},
	{"POST", "/api/v1/mfa/totp"},
	{"GET", "/api/v1/mfa/totp/qr"},
	{"POST", "/api/v1/mfa/totp/confirm"},
	{"DELETE", "/api/v1/mfa/totp"},
	{"POST", "/api/v1/mfa/webauthn/register/begin"},
	{"POST", "/api/v1/mfa/webauthn/register/finish"},
	{"PATCH", "/api/v1/mfa/webauthn/x"},
	{"DELETE", "/api/v1/mfa/webauthn/x"},
	{"POST", "/api/v1/mfa/sms"},
	{"POST", "/api/v1/mfa/sms/confirm"},
	{"POST", "/api/v1/mfa/sms/resend"},
	{"DELETE", "/api/v1/mfa/sms"},
	{"POST", "/api/v1/mfa/backup-codes"},
	{"PUT", "/api/v1/mfa/settings"},
	{"POST", "/api/v1/stepup/challenge"},
	{"POST", "/api/v1/stepup"},
	{"POST", "/api/v1/signin/factor/challenge"},
	{"POST", "/api/v1/signin/factor"},
	{"POST", "/api/v1/signin/passkey/begin"},
	{"POST", "/api/v1/signin/passkey/finish"},
}

// TestMFABadRequests: malformed bodies on every 2FA endpoint get a 4xx
// with a stable code, never a 500, signed in and fresh or not.
func TestMFABadRequests(t *testing.T) {
	e := newMFAEnv(t, mfa.DefaultConfig().Policy)
	session := e.user("bad@example.com")
	a, _ := e.enrolTOTP(session)
	pending := e.pending("bad@example.com")
	fresh := e.answer(pending, "totp", a.code()).str(t, "session_token")
	bodies := []string{
		``, `{`, `null`, `[]`, `"x"`, `1`, `{}`, `{"x":1}`, `{} {}`,
		`{"code":1}`, `{"code":"` + strings.Repeat("9", 100) + `"}`, `{"code":"12a456"}`,
		`{"name":{"a":1},"passkey":"yes"}`, `{"name":"` + strings.Repeat("n", 500) + `"}`,
		`{"ceremony":"x","credential":"not an object"}`, `{"ceremony":"x","credential":{"id":"x","response":{}}}`,
		`{"ceremony":"` + strings.Repeat("c", 500) + `","credential":{}}`, `{"ceremony":"x","credential":[1]}`,
		`{"phone":"+1"}`, `{"phone":"+999999999999999999999"}`,
		`{"signin":"yes","funding":true,"trading":false}`, `{"signin":true}`,
		`{"factor":"nope"}`, `{"factor":"totp","response":null}`, `{"factor":"webauthn","response":{"ceremony":1}}`,
		`{"factor":"webauthn","response":"{\"ceremony\":\"x\",\"credential\":{}}"}`, `{"factor":"backup_code","response":"!!!!!"}`,
		`{"pending_token":"x","factor":"totp","response":"123456"}`, `{"pending_token":"","factor":"totp"}`,
		`{"factor":"totp","response":"` + strings.Repeat("1", 70<<10) + `"}`,
		"{\"code\":\"\xff\xfe\"}",
	}
	for _, tok := range []string{session, fresh, ""} {
		for _, ep := range mfaEndpoints {
			for _, b := range bodies {
				var hdr []string
				if tok != "" {
					hdr = bearer(tok)
				}
				var body any = b
				if ep.method == "GET" {
					if b != "" {
						continue
					}
					body = nil
				}
				r := e.call(ep.method, ep.path, body, hdr...)
				if r.status < 400 && r.status != 200 && r.status != 201 && r.status != 202 && r.status != 204 {
					t.Errorf("%s %s %.40q: status %d", ep.method, ep.path, b, r.status)
				}
				if r.status >= 500 {
					t.Fatalf("%s %s %.60q: %d %s", ep.method, ep.path, b, r.status, r.raw)
				}
				if r.status >= 400 {
					if c, _, msg := errorOf(t, r); c == "" || c == apperr.Internal || msg == "" {
						t.Errorf("%s %s %.40q: error %s %q", ep.method, ep.path, b, c, msg)
					}
				}
			}
		}
	}
}

// TestMFADisabled: without the 2FA service every 2FA endpoint is 404.
func TestMFADisabled(t *testing.T) {
	e := newEnv(t)
	e.signUp("nomfa@example.com")
	session, _ := e.signIn("nomfa@example.com", "")
	for _, ep := range mfaEndpoints {
		if ep.path == "/api/v1/signin/factor" {
			continue // the account service's own endpoint
		}
		t.Run(ep.method+" "+ep.path, func(t *testing.T) {
			var body any
			if ep.method != "GET" {
				body = `{}`
			}
			expectError(t, e.call(ep.method, ep.path, body, bearer(session)...), 404, apperr.NotFound, "")
		})
	}
}

// TestMFASameCodeConcurrently: one code typed into several sign-ins at
// once (someone who watched it typed, racing the owner): exactly one
// sign-in gets a session, the others are told the code was used.
func TestMFASameCodeConcurrently(t *testing.T) {
	const n = 5 // within the code attempts per window
	e := newMFAEnv(t, mfa.DefaultConfig().Policy)
	const addr = "race@example.com"
	session := e.user(addr)
	a, _ := e.enrolTOTP(session)
	var pending []string
	for range n {
		pending = append(pending, e.pending(addr))
	}
	// Start of a step, so that the requests' clock ticks stay within it.
	e.clock.Set(totp.StepTime(totp.Step(e.clock.Now()) + 1))
	code := a.code()
	results := make(chan *resp, n)
	start := make(chan struct{})
	for _, p := range pending {
		go func() {
			<-start
			results <- e.answer(p, "totp", code)
		}()
	}
	close(start)
	wins := 0
	for range n {
		r := <-results
		switch c, _, _ := errorOf(t, r); {
		case r.status == 200 && r.str(t, "session_token") != "":
			wins++
		case r.status == 400 && c == apperr.TokenUsed:
		default:
			t.Errorf("unexpected answer: %d %s", r.status, r.raw)
		}
	}
	if wins != 1 {
		t.Fatalf("%d sign-ins got in with one code, want 1", wins)
	}
}
