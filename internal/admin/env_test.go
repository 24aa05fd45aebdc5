package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/mfa/webauthn/webauthntest"
	"github.com/moat-dev/moat/internal/recovery"
	"github.com/moat-dev/moat/internal/recovery/recoverytest"
	"github.com/moat-dev/moat/internal/server"
	"github.com/moat-dev/moat/internal/store"
)

// The console's HTTP tests run the whole server (server.New: what
// production runs) in development mode on a temporary SQLite file, with a
// fake clock, and talk to its handler in-process. Staff sign in over the
// JSON API with a software security key (webauthntest), and the session
// token goes into the web session cookie, which is all the console reads.

const (
	origin       = "http://localhost:8080"
	testPassword = "lantern-quarry-velvet-42"
	cookieName   = "moat_session" // web.SessionCookieName(false)
)

type env struct {
	t     *testing.T
	srv   *server.Server
	h     http.Handler
	clock *clock.Fake
	// caseIP is where openCase's requests come from: a fresh address per
	// test, since the per-IP limit of a shared Redis outlives a run.
	caseIP string
}

func newEnv(t *testing.T, mutate ...func(*config.Config)) *env {
	t.Helper()
	return newEnvClock(t, clock.NewFake(time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)), mutate...)
}

// newEnvClock is newEnv on clk: two nodes of one deployment share it.
func newEnvClock(t *testing.T, clk *clock.Fake, mutate ...func(*config.Config)) *env {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Dev = true
	cfg.PublicOrigin = origin
	// The minimum argon2id cost OWASP allows: the tests sign in often.
	cfg.Security.Argon2MemoryKiB, cfg.Security.Argon2Time = 7168, 5
	// Device approval is tested elsewhere; here every sign-in is from a
	// known device.
	cfg.Security.DeviceApproval = false
	for _, m := range mutate {
		m(&cfg)
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler), server.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ip := fmt.Sprintf("2001:db8:%x:%x::7", rand.Uint32N(1<<16), rand.Uint32N(1<<16))
	return &env{t: t, srv: s, h: s.Handler(), clock: clk, caseIP: ip}
}

// resp is a recorded response.
type resp struct {
	status int
	header http.Header
	body   string
}

// page requests path as a browser with the session cookie (empty: none);
// form, when not nil, is posted.
func (e *env) page(method, path, session string, form url.Values) resp {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, origin+path, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Origin", origin)
		r.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	if session != "" {
		r.AddCookie(&http.Cookie{Name: cookieName, Value: session})
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return resp{w.Code, w.Header(), w.Body.String()}
}

func (e *env) get(path, session string) resp { return e.page("GET", path, session, nil) }
func (e *env) post(path, session string, form url.Values) resp {
	if form == nil {
		form = url.Values{}
	}
	return e.page("POST", path, session, form)
}

// api calls the JSON API and decodes the answer into a map.
func (e *env) api(path string, body any, bearer string) (int, map[string]any) {
	e.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := httptest.NewRequest("POST", origin+path, bytes.NewReader(b))
	r.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		r.Header.Set("Authorization", "Bearer "+bearer)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	var m map[string]any
	if w.Body.Len() > 0 {
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			e.t.Fatalf("%s: not JSON (%d): %s", path, w.Code, w.Body)
		}
	}
	return w.Code, m
}

// person is an account and the security key it registered (if any).
type person struct {
	acct store.Account
	key  *webauthntest.Authenticator
}

// create makes a confirmed account with role, as `moat admin create` and
// `moat user create` do.
func (e *env) create(email string, role store.Role) *person {
	e.t.Helper()
	a, err := e.srv.Accounts().CreateConfirmedUser(e.t.Context(), email, testPassword, role, "cli")
	if err != nil {
		e.t.Fatal(err)
	}
	return &person{acct: a}
}

// passwordSession signs in with the password alone (the account has no
// second factor yet) and returns the session token.
func (e *env) passwordSession(p *person) string {
	e.t.Helper()
	st, m := e.api("/api/v1/signin", map[string]string{"email": p.acct.Email, "password": testPassword}, "")
	if st != 200 || m["step"] != "done" {
		e.t.Fatalf("password sign-in: %d %v", st, m)
	}
	return m["session_token"].(string)
}

// addKey registers a security key for p in the session.
func (e *env) addKey(p *person, session string) {
	e.t.Helper()
	p.key = webauthntest.New(origin)
	st, m := e.api("/api/v1/mfa/webauthn/register/begin", map[string]any{"name": "Desk key"}, session)
	if st != 200 {
		e.t.Fatalf("register begin: %d %v", st, m)
	}
	opts, _ := json.Marshal(m["options"])
	cred, err := p.key.Create(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	if st, m := e.api("/api/v1/mfa/webauthn/register/finish", map[string]any{"ceremony": m["ceremony"], "credential": json.RawMessage(cred)}, session); st != 201 {
		e.t.Fatalf("register finish: %d %v", st, m)
	}
}

// pending signs in with the password and returns the pending sign-in
// waiting for the second factor.
func (e *env) pending(p *person) string {
	e.t.Helper()
	st, m := e.api("/api/v1/signin", map[string]string{"email": p.acct.Email, "password": testPassword}, "")
	if st != 200 || m["step"] != "second_factor" {
		e.t.Fatalf("sign-in not waiting for a second factor: %d %v", st, m)
	}
	return m["pending_token"].(string)
}

// keySession signs in with the password and the security key.
func (e *env) keySession(p *person) string {
	e.t.Helper()
	pending := e.pending(p)
	st, m := e.api("/api/v1/signin/factor/challenge", map[string]string{"pending_token": pending, "factor": "webauthn"}, "")
	if st != 200 {
		e.t.Fatalf("key challenge: %d %v", st, m)
	}
	opts, _ := json.Marshal(m["options"])
	cred, err := p.key.Get(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	st, m = e.api("/api/v1/signin/factor", map[string]any{"pending_token": pending, "factor": "webauthn",
		"response": map[string]any{"ceremony": m["ceremony"], "credential": json.RawMessage(cred)}}, "")
	if st != 200 || m["step"] != "done" {
		e.t.Fatalf("key sign-in: %d %v", st, m)
	}
	return m["session_token"].(string)
}

// staff creates a staff member with a key and returns their key session.
func (e *env) staff(email string, role store.Role) (*person, string) {
	e.t.Helper()
	p := e.create(email, role)
	e.addKey(p, e.passwordSession(p))
	return p, e.keySession(p)
}

// tinyPNG is the identity document every test case carries.
var tinyPNG = recoverytest.PNG()

// openCase gives p a security key (the factor they then lose) and opens
// a recovery case from the second-factor prompt.
func (e *env) openCase(p *person) recovery.Opened {
	e.t.Helper()
	if p.key == nil {
		e.addKey(p, e.passwordSession(p))
	}
	o, err := e.srv.Recovery().Open(e.t.Context(), recovery.Proof{PendingToken: e.pending(p)},
		recovery.Answers{AccountCreated: "2026-03", Devices: "Firefox on Linux", Note: "Lost my key on a train."},
		tinyPNG, account.Client{IP: e.caseIP, UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", Kind: "web"})
	if err != nil {
		e.t.Fatalf("open case: %v", err)
	}
	return o
}

// audit returns the account's audit events of typ, oldest first.
func (e *env) audit(accountID, typ string) []store.AuditEvent {
	e.t.Helper()
	evs, err := e.srv.Store().ListAudit(e.t.Context(), store.AuditFilter{AccountID: accountID, Types: []string{typ}})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func (e *env) account(id string) store.Account {
	e.t.Helper()
	a, err := e.srv.Store().GetAccount(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *env) caseOf(id string) store.RecoveryCase {
	e.t.Helper()
	c, err := e.srv.Store().GetRecoveryCase(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func expect(t *testing.T, r resp, status int, contains ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body:\n%s", r.status, status, r.body)
	}
	for _, s := range contains {
		if !strings.Contains(r.body, s) {
			t.Errorf("body lacks %q:\n%s", s, r.body)
		}
	}
}

func expectRedirect(t *testing.T, r resp, to string) {
	t.Helper()
	if r.status != http.StatusSeeOther || r.header.Get("Location") != to {
		t.Fatalf("got %d to %q, want 303 to %q; body:\n%s", r.status, r.header.Get("Location"), to, r.body)
	}
}
