package account

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/audit"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/notify/mailtest"
	"github.com/moat-dev/moat/internal/password"
	"github.com/moat-dev/moat/internal/ratelimit"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/sqlite"
)

// start is aligned to a 15-minute counter window, so throttling tests know
// where windows end.
var start = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

const goodPassword = "tangerine velvet octopus lantern"

// env is a service over a real SQLite file, a fake clock, a fast hasher and
// the real mailer and audit log.
type env struct {
	t     testing.TB
	ctx   context.Context
	st    store.Store
	clk   *clock.Fake
	svc   *Service
	ctr   ratelimit.Counter
	email string // the default test account
	// seen holds the outbox IDs lastMail returned: messages written at the
	// same fake instant have no order, so "newest" means "not seen yet".
	seen map[string]bool
}

// backend, when set, replaces the default SQLite file and in-memory
// counter (TestOnPostgresAndRedis runs tests again on the many-node
// backends).
var backend struct {
	store   func(testing.TB) store.Store
	counter func(testing.TB, clock.Clock) ratelimit.Counter
}

// fastParams keep hashing cheap in tests; production uses the defaults.
var fastParams = password.Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func newEnv(t testing.TB, tweak ...func(*Config)) *env {
	t.Helper()
	return newEnvWith(t, nil, tweak...)
}

// newEnvWith is newEnv with deps applied to the dependencies before New
// (the 2FA interfaces).
func newEnvWith(t testing.TB, deps func(*Deps), tweak ...func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	clk := clock.NewFake(start)
	var st store.Store
	var ctr ratelimit.Counter
	if backend.store != nil {
		st, ctr = backend.store(t), backend.counter(t, clk)
	} else {
		sq, err := sqlite.OpenAndMigrate(ctx, filepath.Join(t.TempDir(), "moat.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sq.Close() })
		st, ctr = sq, ratelimit.NewMemory(clk)
	}
	h, err := password.NewHasher(fastParams, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	m, err := notify.NewMailer(notify.MailerConfig{Brand: "moat", PublicOrigin: "https://moat.test"}, clk, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ConfigFrom(config.Default())
	for _, f := range tweak {
		f(&cfg)
	}
	d := Deps{
		Store: st, Clock: clk, Rand: rand.Reader, Hasher: h, Policy: password.DefaultPolicy(),
		Mailer: m, Audit: audit.New(clk), Counter: ctr, Config: cfg,
		CodeKey: []byte("0123456789abcdef0123456789abcdef"),
	}
	if deps != nil {
		deps(&d)
	}
	svc := New(d)
	return &env{t: t, ctx: ctx, st: st, clk: clk, svc: svc, ctr: ctr, email: "jane@example.com", seen: map[string]bool{}}
}

// client returns a web client at ip with a browser user agent.
func client(ip, deviceToken string) Client {
	return Client{IP: ip, UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", DeviceToken: deviceToken, Kind: "web"}
}

// mails returns the e-mails to addr, newest first.
func (e *env) mails(addr string) []store.OutboxMessage {
	e.t.Helper()
	all, err := e.st.ListOutbox(e.ctx, "email", 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []store.OutboxMessage
	for _, m := range all {
		if m.To == addr {
			out = append(out, m)
		}
	}
	return out
}

// mailsWith counts the e-mails to addr whose subject contains s.
func (e *env) mailsWith(addr, s string) int {
	n := 0
	for _, m := range e.mails(addr) {
		if strings.Contains(m.Subject, s) {
			n++
		}
	}
	return n
}

// lastMail returns the newest e-mail to addr whose subject contains s:
// the one lastMail has not returned before (it fails if that is
// ambiguous), else the newest of those it has.
func (e *env) lastMail(addr, s string) store.OutboxMessage {
	e.t.Helper()
	var unseen, all []store.OutboxMessage
	for _, m := range e.mails(addr) {
		if strings.Contains(m.Subject, s) {
			all = append(all, m)
			if !e.seen[m.ID] {
				unseen = append(unseen, m)
			}
		}
	}
	for _, m := range all {
		e.seen[m.ID] = true
	}
	switch {
	case len(unseen) == 1 || len(unseen) > 1 && unseen[0].CreatedAt.After(unseen[1].CreatedAt):
		return unseen[0]
	case len(unseen) > 1:
		e.t.Fatalf("%d new e-mails to %s with subject containing %q: which is newest?", len(unseen), addr, s)
	case len(all) > 0:
		return all[0]
	}
	e.t.Fatalf("no e-mail to %s with subject containing %q", addr, s)
	return store.OutboxMessage{}
}

// markSeen makes lastMail ignore every e-mail to addr sent so far.
func (e *env) markSeen(addr string) {
	for _, m := range e.mails(addr) {
		e.seen[m.ID] = true
	}
}

// Subjects of the templates, as the tests find them.
const (
	subjConfirm    = "Confirm your e-mail"
	subjExists     = "tried to sign up"
	subjDeviceCode = "new device"
	subjNewSignIn  = "New sign-in"
	subjLocked     = "is paused"
	subjAcctLocked = "account is locked"
	subjPassword   = "password was changed"
	subjAntiPhish  = "anti-phishing"
)

// linkToken extracts the token of the link to path in body.
func linkToken(t testing.TB, body, path string) string {
	t.Helper()
	return mailtest.LinkToken(t, body, "https://moat.test"+path)
}

func mailCode(t testing.TB, body string) string {
	t.Helper()
	return mailtest.Code(t, body)
}

// signUpConfirmed makes a confirmed account through the public flow.
func (e *env) signUpConfirmed(addr, pw string) store.Account {
	e.t.Helper()
	if err := e.svc.SignUp(e.ctx, addr, pw, client("192.0.2.1", "")); err != nil {
		e.t.Fatalf("SignUp: %v", err)
	}
	tok := linkToken(e.t, e.lastMail(addr, subjConfirm).Body, PathConfirmEmail)
	a, err := e.svc.ConfirmEmail(e.ctx, tok, client("192.0.2.1", ""))
	if err != nil {
		e.t.Fatalf("ConfirmEmail: %v", err)
	}
	return a
}

// signIn runs a whole sign-in, approving a new device with the e-mailed
// code, and returns the issued session.
func (e *env) signIn(addr, pw string, c Client) *IssuedSession {
	e.t.Helper()
	e.markSeen(addr)
	res, err := e.svc.SignIn(e.ctx, addr, pw, c)
	if err != nil {
		e.t.Fatalf("SignIn: %v", err)
	}
	if res.Step == StepDeviceApproval {
		code := mailCode(e.t, e.lastMail(addr, subjDeviceCode).Body)
		if res, err = e.svc.ApproveDevice(e.ctx, res.PendingToken, code, c); err != nil {
			e.t.Fatalf("ApproveDevice: %v", err)
		}
	}
	if res.Step != StepDone || res.Session == nil {
		e.t.Fatalf("sign-in stopped at step %q", res.Step)
	}
	return res.Session
}

// auditTypes returns the account's audit event types in order.
func (e *env) auditTypes(accountID string) []string {
	e.t.Helper()
	evs, err := e.st.ListAudit(e.ctx, store.AuditFilter{AccountID: accountID})
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

// wantAudit fails unless every type in want was recorded for the account.
func (e *env) wantAudit(accountID string, want ...string) {
	e.t.Helper()
	got := e.auditTypes(accountID)
	for _, w := range want {
		found := false
		for _, g := range got {
			if g == w {
				found = true
				break
			}
		}
		if !found {
			e.t.Errorf("audit event %q missing; have %v", w, got)
		}
	}
}

func (e *env) liveSessions(accountID string) []store.Session {
	e.t.Helper()
	l, err := e.st.ListSessions(e.ctx, accountID, e.clk.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

// wantCode fails unless err carries code.
func wantCode(t testing.TB, err error, code apperr.Code) *apperr.Error {
	t.Helper()
	if apperr.CodeOf(err) != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
	ae, _ := apperr.As(err)
	return ae
}

// fakeFactor is a second factor for tests: enrolled for the accounts in
// enrolled; the answer "right" verifies (every time: replay protection is
// the real factors' job, and the tests here attack the flow itself).
type fakeFactor struct {
	name     string
	mu       sync.Mutex
	enrolled map[string]bool
	// refuse, when set, is what Verify returns for every answer.
	refuse error
	calls  atomic.Int32
}

func newFakeFactor(name string) *fakeFactor {
	return &fakeFactor{name: name, enrolled: map[string]bool{}}
}

func (f *fakeFactor) Name() string { return f.name }

func (f *fakeFactor) Enrolled(_ context.Context, accountID string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.enrolled[accountID], nil
}

func (f *fakeFactor) enroll(accountID string) {
	f.mu.Lock()
	f.enrolled[accountID] = true
	f.mu.Unlock()
}

func (f *fakeFactor) Verify(_ context.Context, _ string, response string) error {
	f.calls.Add(1)
	f.mu.Lock()
	refuse := f.refuse
	f.mu.Unlock()
	if refuse != nil {
		return refuse
	}
	if response == "right" {
		return nil
	}
	return apperr.New(apperr.TokenInvalid, "That code is not right.")
}
