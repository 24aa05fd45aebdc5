package mfa_test

import (
	"bytes"
	"context"
	"crypto/rand"
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
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

const origin = "http://localhost:8080"

// start is the fake clock's start: a step boundary, as oathtool's --now
// below pins it.
var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var ctx = context.Background()

type env struct {
	t       *testing.T
	clk     *clock.Fake
	st      *mfatest.Store
	ctr     *mfatest.Counter
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
		t: t, clk: clk, st: mfatest.NewStore(), ctr: mfatest.NewCounter(clk), rec: &mfatest.Recorder{},
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

func (e *env) principal(id, email string, role store.Role, fresh bool) account.Principal {
	p := account.Principal{
		Account: store.Account{ID: id, Email: email, Role: role},
		Session: store.Session{ID: "sess-" + id, AccountID: id},
	}
	if fresh {
		p.Session.SecondFactorAt = e.clk.Now()
	}
	return p
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
