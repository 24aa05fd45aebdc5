package recovery_test

// The recovery service over the real store, with the real account and 2FA
// services wired as the server wires them (mfatest.NewServices): a person
// signs in with a password and an authenticator app, loses the app, opens a
// case; staff review it; the fake clock runs the waiting period.

import (
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/audit"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/mfa"
	"github.com/moat-dev/moat/internal/mfa/mfatest"
	"github.com/moat-dev/moat/internal/mfa/totp"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/notify/mailtest"
	"github.com/moat-dev/moat/internal/ratelimit"
	"github.com/moat-dev/moat/internal/recovery"
	"github.com/moat-dev/moat/internal/recovery/recoverytest"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/postgres/pgtest"
	"github.com/moat-dev/moat/internal/store/sqlite"
	"github.com/moat-dev/moat/internal/testenv"
)

const (
	origin    = mfatest.Origin
	password1 = "tangerine velvet octopus lantern"
)

// epoch is a TOTP step boundary, mid-month (so "this month" is plain).
var epoch = time.Date(2030, 3, 14, 12, 0, 0, 0, time.UTC)

// backends makes the store and counter of a world; nil means a SQLite file
// and in-memory counters (TestOnPostgresAndRedis sets it).
var backends func(t *testing.T, clk clock.Clock) (store.Store, ratelimit.Counter)

type world struct {
	t      *testing.T
	ctx    context.Context
	clk    *clock.Fake
	st     store.Store
	ctr    ratelimit.Counter
	acct   *account.Service
	mfa    *mfa.Service
	mailer *notify.Mailer
	box    *secrets.Box
	rec    *recovery.Service
	web    account.Client
	// dbPath is the SQLite file (empty on PostgreSQL).
	dbPath string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	clk := clock.NewFake(epoch)
	w := &world{t: t, ctx: context.Background(), clk: clk,
		web: account.Client{IP: "192.0.2.10", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", Kind: "web"}}
	if backends != nil {
		w.st, w.ctr = backends(t, clk)
	} else {
		w.dbPath = filepath.Join(t.TempDir(), "moat.db")
		sq, err := sqlite.OpenAndMigrate(w.ctx, w.dbPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sq.Close() })
		w.st, w.ctr = sq, ratelimit.NewMemory(clk)
	}
	sv := mfatest.NewServices(t, w.st, w.ctr, clk, mfa.DefaultConfig().Policy)
	w.acct, w.mfa, w.mailer, w.box = sv.Accounts, sv.MFA, sv.Mailer, sv.Box
	w.rec = w.newService()
	return w
}

// newService builds a recovery service over the world's store (a second
// one is another node, or the same node after a restart).
func (w *world) newService() *recovery.Service {
	return recovery.New(recovery.Deps{
		Store: w.st, Clock: w.clk, Rand: rand.Reader, Box: w.box, Mailer: w.mailer,
		Audit: audit.New(w.clk), Counter: w.ctr, Accounts: w.acct,
	})
}

// person is an account holder with an authenticator app.
type person struct {
	acct store.Account
	app  func() string
}

// user creates a confirmed account with an authenticator app and a
// signed-in session.
func (w *world) user(email string, role store.Role) person {
	w.t.Helper()
	a, err := w.acct.CreateConfirmedUser(w.ctx, email, password1, role, "test")
	if err != nil {
		w.t.Fatal(err)
	}
	res, err := w.acct.SignIn(w.ctx, email, password1, w.web)
	if err != nil || res.Step != account.StepDone {
		w.t.Fatalf("SignIn: %+v, %v", res, err)
	}
	p := w.auth(res.Session.Token)
	en, err := w.mfa.BeginTOTP(w.ctx, p)
	if err != nil {
		w.t.Fatalf("BeginTOTP: %v", err)
	}
	seed, err := totp.ParseSecret(en.ManualKey)
	if err != nil {
		w.t.Fatal(err)
	}
	app := func() string { return totp.Code(seed, totp.Step(w.clk.Now())) }
	if _, err := w.mfa.ConfirmTOTP(w.ctx, p, app(), w.web); err != nil {
		w.t.Fatalf("ConfirmTOTP: %v", err)
	}
	w.clk.Advance(totp.Period)
	return person{acct: a, app: app}
}

// session stores a live session of p as a sign-in would have left it and
// returns its token.
func (w *world) session(p person) string {
	w.t.Helper()
	devs, err := w.st.ListDevices(w.ctx, p.acct.ID)
	if err != nil || len(devs) == 0 {
		w.t.Fatalf("devices: %v, %v", devs, err)
	}
	tok, err := secrets.NewToken(rand.Reader)
	if err != nil {
		w.t.Fatal(err)
	}
	id, _ := secrets.NewID(rand.Reader)
	now := w.clk.Now()
	if err := w.st.CreateSession(w.ctx, store.Session{
		ID: id, TokenHash: secrets.HashToken(tok), AccountID: p.acct.ID, DeviceID: devs[0].ID, Client: "web",
		IP: w.web.IP, UserAgent: w.web.UserAgent, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(12 * time.Hour),
		SecondFactorAt: now, SignInFactor: "totp",
	}); err != nil {
		w.t.Fatal(err)
	}
	return tok
}

// staff creates a staff account and returns its principal.
func (w *world) staff(email string, role store.Role) account.Principal {
	w.t.Helper()
	a, err := w.acct.CreateConfirmedUser(w.ctx, email, password1, role, "test")
	if err != nil {
		w.t.Fatal(err)
	}
	return account.Principal{Account: a}
}

func (w *world) auth(token string) account.Principal {
	w.t.Helper()
	p, err := w.acct.Authenticate(w.ctx, token, w.web)
	if err != nil {
		w.t.Fatalf("Authenticate: %v", err)
	}
	return p
}

// pending signs in with the password and returns the pending sign-in
// waiting for the second factor: the proof of a case opened from the
// second-factor prompt.
func (w *world) pending(p person) string {
	w.t.Helper()
	res, err := w.acct.SignIn(w.ctx, p.acct.Email, password1, w.web)
	if err != nil || res.Step != account.StepSecondFactor {
		w.t.Fatalf("SignIn: %+v, %v", res, err)
	}
	return res.PendingToken
}

// resetToken asks for a password-reset link and returns its token.
func (w *world) resetToken(p person) string {
	w.t.Helper()
	if err := w.acct.RequestPasswordReset(w.ctx, p.acct.Email, w.web); err != nil {
		w.t.Fatalf("RequestPasswordReset: %v", err)
	}
	return linkToken(w.t, w.lastMail(p.acct.Email, "Reset your").Body, account.PathResetPassword)
}

var answers = recovery.Answers{AccountCreated: "2030-03", Devices: "Firefox on Linux"}

// open opens a case for p from the second-factor prompt.
func (w *world) open(p person) recovery.Opened {
	w.t.Helper()
	o, err := w.rec.Open(w.ctx, recovery.Proof{PendingToken: w.pending(p)}, answers, recoverytest.PNG(), w.web)
	if err != nil {
		w.t.Fatalf("Open: %v", err)
	}
	return o
}

// waiting opens a case for p and has two staff members approve it.
func (w *world) waiting(p person) recovery.Opened {
	w.t.Helper()
	o := w.open(p)
	for _, s := range []account.Principal{w.staffOnce("s1@moat.test"), w.staffOnce("s2@moat.test")} {
		if _, err := w.rec.Approve(w.ctx, s, o.Case.ID, w.web); err != nil {
			w.t.Fatalf("Approve: %v", err)
		}
	}
	return o
}

// staffOnce returns the support account with this address, creating it
// the first time.
func (w *world) staffOnce(email string) account.Principal {
	w.t.Helper()
	a, err := w.st.GetAccountByEmail(w.ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		return w.staff(email, store.RoleSupport)
	}
	if err != nil {
		w.t.Fatal(err)
	}
	return account.Principal{Account: a}
}

func (w *world) getCase(id string) store.RecoveryCase {
	w.t.Helper()
	rc, err := w.st.GetRecoveryCase(w.ctx, id)
	if err != nil {
		w.t.Fatal(err)
	}
	return rc
}

func (w *world) tick() int {
	w.t.Helper()
	n, err := w.rec.Tick(w.ctx)
	if err != nil {
		w.t.Fatalf("Tick: %v", err)
	}
	return n
}

// mails returns the e-mails to addr whose subject contains s, newest first.
func (w *world) mails(addr, s string) []store.OutboxMessage {
	w.t.Helper()
	all, err := w.st.ListOutbox(w.ctx, "email", 1000)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []store.OutboxMessage
	for _, m := range all {
		if m.To == addr && strings.Contains(m.Subject, s) {
			out = append(out, m)
		}
	}
	return out
}

func (w *world) lastMail(addr, s string) store.OutboxMessage {
	w.t.Helper()
	ms := w.mails(addr, s)
	if len(ms) == 0 {
		w.t.Fatalf("no e-mail to %s with subject containing %q", addr, s)
	}
	return ms[0]
}

// auditTypes returns the account's audit event types of the recovery,
// oldest first.
func (w *world) auditEvents(accountID, typ string) []store.AuditEvent {
	w.t.Helper()
	evs, err := w.st.ListAudit(w.ctx, store.AuditFilter{AccountID: accountID, Types: []string{typ}})
	if err != nil {
		w.t.Fatal(err)
	}
	return evs
}

// Subjects of the recovery e-mails.
const (
	subjRequested = "asked to recover"
	subjApproved  = "will be recovered on"
	subjReminder  = "Reminder:"
	subjCancelled = "was cancelled"
	subjRejected  = "could not approve"
	subjCompleted = "account was recovered"
)

// linkToken extracts the token of the link to path in body.
func linkToken(t testing.TB, body, path string) string {
	t.Helper()
	return mailtest.LinkToken(t, body, origin+path)
}

func wantCode(t *testing.T, err error, code apperr.Code) *apperr.Error {
	t.Helper()
	if apperr.CodeOf(err) != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
	ae, _ := apperr.As(err)
	return ae
}

// TestOnPostgresAndRedis runs the tests again on the many-node backends.
func TestOnPostgresAndRedis(t *testing.T) {
	testenv.PostgresDSN(t)
	db := pgtest.NewDB(t)
	rdb := testenv.Redis(t)
	backends = func(t *testing.T, clk clock.Clock) (store.Store, ratelimit.Counter) {
		return db.Open(t), ratelimit.NewRedis(rdb, clk, testenv.RedisKeyPrefix(t))
	}
	t.Cleanup(func() { backends = nil })
	for _, tc := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"OpenWithPassword", TestOpenWithPassword},
		{"OpenWithResetLink", TestOpenWithResetLink},
		{"OpenBadProof", TestOpenBadProof},
		{"OpenRefusesDocuments", TestOpenRefusesDocuments},
		{"Answers", TestAnswers},
		{"OneCasePerAccount", TestOneCasePerAccount},
		{"PerIPLimit", TestPerIPLimit},
		{"PerAccountLimit", TestPerAccountLimit},
		{"FourEyes", TestFourEyes},
		{"ConcurrentApprovals", TestConcurrentApprovals},
		{"Reject", TestReject},
		{"RemindersAndCompletion", TestRemindersAndCompletion},
		{"ReminderCatchesUpOnce", TestReminderCatchesUpOnce},
		{"CancelByLink", TestCancelByLink},
		{"CancelBySignIn", TestCancelBySignIn},
		{"CancelRacesCompletion", TestCancelRacesCompletion},
		{"Restart", TestRestart},
		{"Review", TestReview},
		{"DocumentSealed", TestDocumentSealed},
		{"Stop", TestStop},
		{"StaffAccountCase", TestStaffAccountCase},
	} {
		t.Run(tc.name, tc.fn)
	}
}
