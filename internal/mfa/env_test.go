package mfa_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/mfa"
	"github.com/moat-dev/moat/internal/mfa/mfatest"
	"github.com/moat-dev/moat/internal/mfa/sms"
	"github.com/moat-dev/moat/internal/mfa/totp"
	"github.com/moat-dev/moat/internal/mfa/webauthn"
	"github.com/moat-dev/moat/internal/mfa/webauthn/webauthntest"
	"github.com/moat-dev/moat/internal/ratelimit"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

const origin = "http://localhost:8080"

// start is the fake clock's start: a step boundary, as oathtool's --now
// below pins it.
var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var ctx = context.Background()

// backend makes the store and the counter of each env: by default a SQLite
// file and an in-memory counter; TestOnPostgresAndRedis swaps in the
// many-node backends.
var backend struct {
	store   func(t testing.TB) store.Store
	counter func(t testing.TB, clk clock.Clock) ratelimit.Counter
}

func newStore(t testing.TB) store.Store {
	if backend.store != nil {
		return backend.store(t)
	}
	return mfatest.OpenStore(t)
}

func newCounter(t testing.TB, clk clock.Clock) ratelimit.Counter {
	if backend.counter != nil {
		return backend.counter(t, clk)
	}
	return ratelimit.NewMemory(clk)
}

type env struct {
	t       *testing.T
	clk     *clock.Fake
	st      store.Store
	ctr     ratelimit.Counter
	rec     *mfatest.Recorder
	outbox  *sms.DevOutbox
	svc     *mfa.Service
	key     *webauthntest.Authenticator
	hashKey []byte
	client  account.Client
}

func newEnv(t *testing.T, muts ...func(*mfa.Config)) *env {
	t.Helper()
	clk := clock.NewFake(start)
	e := &env{
		t: t, clk: clk, st: newStore(t), ctr: newCounter(t, clk), rec: mfatest.NewRecorder(clk),
		outbox: sms.NewDevOutbox(50), key: webauthntest.New(origin), hashKey: bytes.Repeat([]byte{9}, 32),
		client: account.Client{IP: "192.0.2.7", UserAgent: "test", Kind: "web"},
	}
	box := mustBox(t)
	var err error
	cfg := mfa.DefaultConfig()
	cfg.WebAuthn = webauthn.Config{RPID: "localhost", Origins: []string{origin}}
	for _, m := range muts {
		m(&cfg)
	}
	e.svc, err = mfa.New(cfg, mfa.Deps{
		Store: e.st, Clock: clk, Rand: rand.Reader, Box: box, HashKey: e.hashKey,
		Counter: e.ctr, SMS: e.outbox, Recorder: e.rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// user returns alice's principal; fresh sets a second factor verified now.
func (e *env) user(fresh bool) account.Principal {
	return e.principal("acct-alice", "alice@example.com", store.RoleUser, fresh)
}

// principal returns the principal of account id, creating the account in
// the store the first time (the factors' rows need it).
func (e *env) principal(id, email string, role store.Role, fresh bool) account.Principal {
	e.t.Helper()
	p := account.Principal{
		Account: store.Account{ID: id, Email: email, Role: role, CreatedAt: start},
		Session: store.Session{ID: "sess-" + id, AccountID: id},
	}
	if err := e.st.CreateAccount(ctx, p.Account); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		e.t.Fatal(err)
	}
	if fresh {
		p.Session.SecondFactorAt = e.clk.Now()
	}
	return p
}

// events returns the recorded events whose change committed, oldest first.
func (e *env) events() []mfa.Event {
	e.t.Helper()
	evs, err := e.rec.Events(ctx, e.st)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// eventTypes returns the types of events(), in order.
func (e *env) eventTypes() []string {
	var out []string
	for _, ev := range e.events() {
		out = append(out, ev.Type)
	}
	return out
}

// enrolTOTP enrols an app for p and returns its seed and the backup codes.
func (e *env) enrolTOTP(p account.Principal) ([]byte, []string) {
	e.t.Helper()
	en, err := e.svc.BeginTOTP(ctx, p)
	if err != nil {
		e.t.Fatalf("BeginTOTP: %v", err)
	}
	secret, err := totp.ParseSecret(en.ManualKey)
	if err != nil {
		e.t.Fatal(err)
	}
	codes, err := e.svc.ConfirmTOTP(ctx, p, totp.Code(secret, totp.Step(e.clk.Now())), e.client)
	if err != nil {
		e.t.Fatalf("ConfirmTOTP: %v", err)
	}
	// Move to the next step so tests start with an unused one.
	e.clk.Advance(totp.Period)
	return secret, codes
}

// addKey registers a security key (or passkey) for p with e.key.
func (e *env) addKey(p account.Principal, name string, passkey bool) (mfa.KeyView, []string) {
	e.t.Helper()
	ch, err := e.svc.BeginSecurityKey(ctx, p, name, passkey)
	if err != nil {
		e.t.Fatalf("BeginSecurityKey: %v", err)
	}
	resp, err := e.key.Create(ch.Options)
	if err != nil {
		e.t.Fatal(err)
	}
	k, codes, err := e.svc.FinishSecurityKey(ctx, p, ch.Ceremony, resp, e.client)
	if err != nil {
		e.t.Fatalf("FinishSecurityKey: %v", err)
	}
	return k, codes
}

// keyAnswer runs a key login ceremony for accountID and returns the
// Verify response envelope.
func (e *env) keyAnswer(accountID string) string {
	e.t.Helper()
	ch, err := e.factor(mfa.MethodWebAuthn).(mfa.Challenger).Challenge(ctx, accountID)
	if err != nil {
		e.t.Fatalf("challenge: %v", err)
	}
	resp, err := e.key.Get(ch.Options)
	if err != nil {
		e.t.Fatal(err)
	}
	return envelope(ch.Ceremony, resp)
}

func envelope(ceremony string, credential []byte) string {
	var b bytes.Buffer
	b.WriteString(`{"ceremony":"` + ceremony + `","credential":`)
	b.Write(credential)
	b.WriteString(`}`)
	return b.String()
}

// factor returns the registered account.Factor named name.
func (e *env) factor(name string) account.Factor {
	for _, f := range e.svc.Factors() {
		if f.Name() == name {
			return f
		}
	}
	e.t.Fatalf("no factor %q", name)
	return nil
}

func wantCode(t *testing.T, err error, code apperr.Code) *apperr.Error {
	t.Helper()
	if apperr.CodeOf(err) != code {
		t.Fatalf("error %v: code %q, want %q", err, apperr.CodeOf(err), code)
	}
	ae, _ := apperr.As(err)
	return ae
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func mustBox(t *testing.T) *secrets.Box {
	t.Helper()
	box, err := secrets.NewBox(bytes.Repeat([]byte{1}, 32), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return box
}
