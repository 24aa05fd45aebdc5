package account_test

// The account service with the real 2FA service (internal/mfa) on the real
// store, wired as the server wires them: what the two packages promise each
// other. Codes come from mfa/totp (an authenticator app), keys from the
// software authenticator; the clock is fake and shared.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/mfa"
	"github.com/moat-dev/moat/internal/mfa/mfatest"
	"github.com/moat-dev/moat/internal/mfa/totp"
	"github.com/moat-dev/moat/internal/mfa/webauthn/webauthntest"
	"github.com/moat-dev/moat/internal/ratelimit"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/postgres/pgtest"
	"github.com/moat-dev/moat/internal/testenv"
)

const (
	origin    = mfatest.Origin
	password1 = "tangerine velvet octopus lantern"
	password2 = "quiet harbour copper meadow"
	password3 = "amber lighthouse gravel tulip"
)

// epoch is a TOTP step boundary.
var epoch = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

// world is the two services over one store.
type world struct {
	t    *testing.T
	ctx  context.Context
	clk  *clock.Fake
	st   store.Store
	acct *account.Service
	mfa  *mfa.Service
	key  *webauthntest.Authenticator
	web  account.Client
}

// backends makes the store and counter of a world; nil means SQLite and
// in-memory counters (TestMFAOnPostgresAndRedis sets it).
var backends func(t *testing.T, clk clock.Clock) (store.Store, ratelimit.Counter)

func newWorld(t *testing.T, policy mfa.Policy) *world {
	t.Helper()
	clk := clock.NewFake(epoch)
	var st store.Store
	var ctr ratelimit.Counter
	if backends != nil {
		st, ctr = backends(t, clk)
	} else {
		st, ctr = mfatest.OpenStore(t), ratelimit.NewMemory(clk)
	}
	sv := mfatest.NewServices(t, st, ctr, clk, policy)
	return &world{
		t: t, ctx: context.Background(), clk: clk, st: st, acct: sv.Accounts, mfa: sv.MFA,
		key: webauthntest.New(origin), web: account.Client{IP: "192.0.2.10", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", Kind: "web"},
	}
}

// user creates a confirmed account.
func (w *world) user(email string, role store.Role) store.Account {
	w.t.Helper()
	a, err := w.acct.CreateConfirmedUser(w.ctx, email, password1, role, "test")
	if err != nil {
		w.t.Fatal(err)
	}
	return a
}

// signIn signs in with the password and wants it done without a factor.
func (w *world) signIn(email, pw string) (*account.SignInResult, account.Principal) {
	w.t.Helper()
	res, err := w.acct.SignIn(w.ctx, email, pw, w.web)
	if err != nil || res.Step != account.StepDone {
		w.t.Fatalf("SignIn: %+v, %v", res, err)
	}
	return res, w.auth(res.Session.Token)
}

func (w *world) auth(token string) account.Principal {
	w.t.Helper()
	p, err := w.acct.Authenticate(w.ctx, token, w.web)
	if err != nil {
		w.t.Fatalf("Authenticate: %v", err)
	}
	return p
}

// enrolTOTP adds an authenticator app for p and returns the app: a
// function giving the code it shows now.
func (w *world) enrolTOTP(p account.Principal) func() string {
	w.t.Helper()
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
	w.clk.Advance(totp.Period) // the confirming code's step is spent
	return app
}

// wrongCode is a code the app shows at no step near now.
func (w *world) wrongCode(app func() string) string {
	near := map[string]bool{}
	saved := w.clk.Now()
	for k := -20; k <= 20; k++ {
		w.clk.Set(saved.Add(time.Duration(k) * totp.Period))
		near[app()] = true
	}
	w.clk.Set(saved)
	for i := 0; ; i++ {
		if c := fmt.Sprintf("%06d", i*7919%1000000); !near[c] {
			return c
		}
	}
}

// audit returns the data of the account's newest audit event of type typ.
func (w *world) audit(accountID, typ string) map[string]any {
	w.t.Helper()
	evs, err := w.st.ListAudit(w.ctx, store.AuditFilter{AccountID: accountID, Desc: true})
	if err != nil {
		w.t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Type == typ {
			m := map[string]any{}
			if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
				w.t.Fatal(err)
			}
			return m
		}
	}
	w.t.Fatalf("no audit event %q", typ)
	return nil
}

func wantCode(t *testing.T, err error, code apperr.Code) *apperr.Error {
	t.Helper()
	if apperr.CodeOf(err) != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
	ae, _ := apperr.As(err)
	return ae
}

// An authenticator app as the second factor: asked at sign-in, a wrong
// code and a replayed one refused, the right one completing the sign-in.
func TestMFASignInWithTOTP(t *testing.T) {
	w := newWorld(t, mfa.DefaultConfig().Policy)
	a := w.user("jane@example.com", store.RoleUser)
	_, p := w.signIn(a.Email, password1)
	app := w.enrolTOTP(p)

	res, err := w.acct.SignIn(w.ctx, a.Email, password1, w.web)
	if err != nil || res.Step != account.StepSecondFactor || strings.Join(res.Factors, ",") != "totp,backup_code" {
		t.Fatalf("with an app: %+v, %v", res, err)
	}
	if ch, err := w.acct.StartSecondFactor(w.ctx, res.PendingToken, "totp", w.web); err != nil || ch != nil {
		t.Fatalf("an app needs no challenge: %#v, %v", ch, err)
	}
	_, err = w.acct.VerifySecondFactor(w.ctx, res.PendingToken, "totp", w.wrongCode(app), w.web)
	wantCode(t, err, apperr.TokenInvalid)
	code := app()
	done, err := w.acct.VerifySecondFactor(w.ctx, res.PendingToken, "totp", code, w.web)
	if err != nil || done.Step != account.StepDone || !done.Session.Session.SecondFactorAt.Equal(w.clk.Now()) {
		t.Fatalf("right code: %+v, %v", done, err)
	}
	if d := w.audit(a.ID, "signin.success"); d["method"] != "password" || d["factor"] != "totp" {
		t.Errorf("audit %v", d)
	}

	// The same code again, on a new sign-in within its step: refused as
	// used, and the sign-in goes on with the next one.
	res, err = w.acct.SignIn(w.ctx, a.Email, password1, w.web)
	if err != nil || res.Step != account.StepSecondFactor {
		t.Fatalf("%+v, %v", res, err)
	}
	_, err = w.acct.VerifySecondFactor(w.ctx, res.PendingToken, "totp", code, w.web)
	if ae := wantCode(t, err, apperr.TokenUsed); !strings.Contains(ae.Message, "already used") {
		t.Errorf("message %q", ae.Message)
	}
	w.clk.Advance(totp.Period)
	if done, err = w.acct.VerifySecondFactor(w.ctx, res.PendingToken, "totp", app(), w.web); err != nil || done.Step != account.StepDone {
		t.Fatalf("next code: %+v, %v", done, err)
	}
}

// One code, typed into several sign-ins at once (an attacker who watched
// it typed, racing the owner): exactly one of them gets in.
func TestMFASameCodeConcurrently(t *testing.T) {
	const n = 5 // within mfa's code attempts per window
	w := newWorld(t, mfa.DefaultConfig().Policy)
	a := w.user("jane@example.com", store.RoleUser)
	_, p := w.signIn(a.Email, password1)
	app := w.enrolTOTP(p)
	var pending []string
	for range n {
		res, err := w.acct.SignIn(w.ctx, a.Email, password1, w.web)
		if err != nil || res.Step != account.StepSecondFactor {
			t.Fatalf("%+v, %v", res, err)
		}
		pending = append(pending, res.PendingToken)
	}
	code := app()
	var wg sync.WaitGroup
	results := make(chan error, n)
	startGun := make(chan struct{})
	for _, tok := range pending {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGun
			res, err := w.acct.VerifySecondFactor(w.ctx, tok, "totp", code, w.web)
			if err == nil && res.Session == nil {
				err = fmt.Errorf("step %s without a session", res.Step)
			}
			results <- err
		}()
	}
	close(startGun)
	wg.Wait()
	close(results)
	wins := 0
	for err := range results {
		switch apperr.CodeOf(err) {
		case "":
			wins++
		case apperr.TokenUsed:
		default:
			t.Errorf("unexpected outcome: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d sign-ins got in with one code, want 1", wins)
	}
}

// The owner turns 2FA at sign-in off: the password alone signs in, and
// security changes still ask for the factor.
func TestMFASignInPolicyOff(t *testing.T) {
	w := newWorld(t, mfa.DefaultConfig().Policy)
	a := w.user("jane@example.com", store.RoleUser)
	first, p := w.signIn(a.Email, password1)
	app := w.enrolTOTP(p)
	at, err := w.mfa.StepUp(w.ctx, p, mfa.MethodTOTP, app(), w.web)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.acct.RecordStepUp(w.ctx, p, at); err != nil {
		t.Fatal(err)
	}
	p = w.auth(first.Session.Token)
	if _, err := w.mfa.UpdateSettings(w.ctx, p, mfa.Settings{SignIn: false, Funding: true}, w.web); err != nil {
		t.Fatal(err)
	}

	res, p2 := w.signIn(a.Email, password1)
	if !res.Session.Session.SecondFactorAt.IsZero() {
		t.Fatal("no factor was verified")
	}
	wantCode(t, w.acct.ChangePassword(w.ctx, p2, password1, password2, w.web), apperr.StepUpNeeded)
	w.clk.Advance(totp.Period)
	at, err = w.mfa.StepUp(w.ctx, p2, mfa.MethodTOTP, app(), w.web)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.acct.RecordStepUp(w.ctx, p2, at); err != nil {
		t.Fatal(err)
	}
	if err := w.acct.ChangePassword(w.ctx, w.auth(res.Session.Token), password1, password2, w.web); err != nil {
		t.Fatal(err)
	}
}

// Mandatory 2FA: a sign-in without a factor is told to enrol; staff must
// have a security key even with an app.
func TestMFAMandatoryEnrolment(t *testing.T) {
	w := newWorld(t, mfa.Policy{MandatoryForAll: true, StaffSecurityKey: true})
	a := w.user("jane@example.com", store.RoleUser)
	res, p := w.signIn(a.Email, password1)
	if !res.MustEnrol || res.EnrolMethod != "" {
		t.Fatalf("no factor under mandatory 2FA: %+v", res)
	}
	app := w.enrolTOTP(p)
	res, err := w.acct.SignIn(w.ctx, a.Email, password1, w.web)
	if err != nil || res.Step != account.StepSecondFactor {
		t.Fatalf("%+v, %v", res, err)
	}
	if res, err = w.acct.VerifySecondFactor(w.ctx, res.PendingToken, "totp", app(), w.web); err != nil || res.MustEnrol {
		t.Fatalf("enrolled: %+v, %v", res, err)
	}

	admin := w.user("ops@example.com", store.RoleAdmin)
	_, p = w.signIn(admin.Email, password1)
	app = w.enrolTOTP(p)
	res, err = w.acct.SignIn(w.ctx, admin.Email, password1, w.web)
	if err != nil || res.Step != account.StepSecondFactor {
		t.Fatalf("%+v, %v", res, err)
	}
	res, err = w.acct.VerifySecondFactor(w.ctx, res.PendingToken, "totp", app(), w.web)
	if err != nil || !res.MustEnrol || res.EnrolMethod != mfa.MethodWebAuthn {
		t.Fatalf("staff with an app only: %+v, %v", res, err)
	}
}

// A security key as the second factor: StartSecondFactor gives the
// browser its request, the answer completes the sign-in once.
func TestMFASecurityKeyAsSecondFactor(t *testing.T) {
	w := newWorld(t, mfa.DefaultConfig().Policy)
	a := w.user("jane@example.com", store.RoleUser)
	_, p := w.signIn(a.Email, password1)
	w.addKey(p, false)

	res, err := w.acct.SignIn(w.ctx, a.Email, password1, w.web)
	if err != nil || res.Step != account.StepSecondFactor || res.Factors[0] != mfa.MethodWebAuthn {
		t.Fatalf("%+v, %v", res, err)
	}
	ch, err := w.acct.StartSecondFactor(w.ctx, res.PendingToken, mfa.MethodWebAuthn, w.web)
	c, ok := ch.(mfa.Challenge)
	if err != nil || !ok || c.Ceremony == "" || len(c.Options) == 0 {
		t.Fatalf("challenge %#v, %v", ch, err)
	}
	cred, err := w.key.Get(c.Options)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := json.Marshal(mfa.KeyResponse{Ceremony: c.Ceremony, Credential: cred})
	if err != nil {
		t.Fatal(err)
	}
	done, err := w.acct.VerifySecondFactor(w.ctx, res.PendingToken, mfa.MethodWebAuthn, string(answer), w.web)
	if err != nil || done.Step != account.StepDone || done.Session.Session.SecondFactorAt.IsZero() {
		t.Fatalf("key answer: %+v, %v", done, err)
	}

	// The same answer on another sign-in: its ceremony is spent.
	res, err = w.acct.SignIn(w.ctx, a.Email, password1, w.web)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.acct.VerifySecondFactor(w.ctx, res.PendingToken, mfa.MethodWebAuthn, string(answer), w.web)
	wantCode(t, err, apperr.TokenExpired)
}

// addKey registers a security key (or passkey) for p, which must be fresh
// or have no factor yet.
func (w *world) addKey(p account.Principal, passkey bool) {
	w.t.Helper()
	ch, err := w.mfa.BeginSecurityKey(w.ctx, p, "", passkey)
	if err != nil {
		w.t.Fatalf("BeginSecurityKey: %v", err)
	}
	resp, err := w.key.Create(ch.Options)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, _, err := w.mfa.FinishSecurityKey(w.ctx, p, ch.Ceremony, resp, w.web); err != nil {
		w.t.Fatalf("FinishSecurityKey: %v", err)
	}
}

// Passwordless: mfa checks the passkey, account issues a session whose
// second factor is fresh.
func TestMFAPasskeySignIn(t *testing.T) {
	w := newWorld(t, mfa.DefaultConfig().Policy)
	a := w.user("jane@example.com", store.RoleUser)
	first, p := w.signIn(a.Email, password1)
	w.addKey(p, true)
	if err := w.acct.SignOut(w.ctx, first.Session.Token, w.web); err != nil {
		t.Fatal(err)
	}

	w.clk.Advance(time.Hour)
	ch, err := w.mfa.BeginPasskeySignIn(w.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := w.key.Get(ch.Options)
	if err != nil {
		t.Fatal(err)
	}
	id, err := w.mfa.FinishPasskeySignIn(w.ctx, ch.Ceremony, resp)
	if err != nil || id != a.ID {
		t.Fatalf("FinishPasskeySignIn = %q, %v", id, err)
	}
	res, err := w.acct.SignInWithPasskey(w.ctx, id, w.web)
	if err != nil || res.Step != account.StepDone || !res.Session.Session.SecondFactorAt.Equal(w.clk.Now()) {
		t.Fatalf("SignInWithPasskey: %+v, %v", res, err)
	}
	if d := w.audit(a.ID, "signin.success"); d["method"] != "passkey" || d["second_factor"] != true {
		t.Errorf("audit %v", d)
	}
	// Fresh: a security change goes through without another step-up.
	if err := w.acct.ChangePassword(w.ctx, w.auth(res.Session.Token), password1, password2, w.web); err != nil {
		t.Fatal(err)
	}
}

// Step-up for the password change: required once the account has a factor,
// satisfied by mfa.StepUp plus RecordStepUp, gone five minutes later.
func TestMFAStepUpForPasswordChange(t *testing.T) {
	w := newWorld(t, mfa.DefaultConfig().Policy)
	a := w.user("jane@example.com", store.RoleUser)
	res, p := w.signIn(a.Email, password1)
	app := w.enrolTOTP(p)
	p = w.auth(res.Session.Token)

	wantCode(t, w.acct.ChangePassword(w.ctx, p, password1, password2, w.web), apperr.StepUpNeeded)
	code := app()
	at, err := w.mfa.StepUp(w.ctx, p, mfa.MethodTOTP, code, w.web)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.acct.RecordStepUp(w.ctx, p, at); err != nil {
		t.Fatal(err)
	}
	_, err = w.mfa.StepUp(w.ctx, p, mfa.MethodTOTP, code, w.web)
	wantCode(t, err, apperr.TokenUsed) // a step-up code works once too

	w.clk.Advance(4 * time.Minute)
	if err := w.acct.ChangePassword(w.ctx, w.auth(res.Session.Token), password1, password2, w.web); err != nil {
		t.Fatalf("fresh step-up: %v", err)
	}
	w.clk.Advance(time.Minute + time.Second)
	wantCode(t, w.acct.ChangePassword(w.ctx, w.auth(res.Session.Token), password2, password3, w.web), apperr.StepUpNeeded)
}

// TestMFAOnPostgresAndRedis runs the integration again on the many-node
// backends, where the replay protection rests on PostgreSQL's row locks.
func TestMFAOnPostgresAndRedis(t *testing.T) {
	testenv.PostgresDSN(t)
	db := pgtest.NewDB(t)
	rdb := testenv.Redis(t)
	backends = func(t *testing.T, clk clock.Clock) (store.Store, ratelimit.Counter) {
		return db.Open(t), ratelimit.NewRedis(rdb, clk, testenv.RedisKeyPrefix(t))
	}
	t.Cleanup(func() { backends = nil })
	for name, fn := range map[string]func(*testing.T){
		"SignInWithTOTP":            TestMFASignInWithTOTP,
		"SignInPolicyOff":           TestMFASignInPolicyOff,
		"MandatoryEnrolment":        TestMFAMandatoryEnrolment,
		"SecurityKeyAsSecondFactor": TestMFASecurityKeyAsSecondFactor,
		"PasskeySignIn":             TestMFAPasskeySignIn,
		"StepUpForPasswordChange":   TestMFAStepUpForPasswordChange,
		"SameCodeConcurrently":      TestMFASameCodeConcurrently,
		"ResetWithTOTP":             TestMFAResetWithTOTP,
		"ResetWithBackupCode":       TestMFAResetWithBackupCode,
		"ResetWithSecurityKey":      TestMFAResetWithSecurityKey,
	} {
		t.Run(name, fn)
	}
}
