package account

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/store"
)

// The doubles of the 2FA service (internal/mfa has the real one; the
// external integration test runs it).

// fakeChallenge stands in for mfa.Challenge: a type this package does not
// know.
type fakeChallenge struct {
	Factor    string
	AccountID string
	N         int
}

// challengeFactor is a fakeFactor that must send something before it can be
// answered: a Challenger[fakeChallenge].
type challengeFactor struct {
	*fakeFactor
	cmu  sync.Mutex
	sent int
	fail error
}

func newChallengeFactor(name string) *challengeFactor {
	return &challengeFactor{fakeFactor: newFakeFactor(name)}
}

func (f *challengeFactor) Challenge(_ context.Context, accountID string) (fakeChallenge, error) {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	if f.fail != nil {
		return fakeChallenge{}, f.fail
	}
	f.sent++
	return fakeChallenge{Factor: f.name, AccountID: accountID, N: f.sent}, nil
}

func (f *challengeFactor) sentCount() int {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	return f.sent
}

// fakePolicy is a SignInPolicy: 2FA at sign-in is required for the accounts
// in required, or for all with all.
type fakePolicy struct {
	mu       sync.Mutex
	required map[string]bool
	all      bool
	err      error
}

func newFakePolicy() *fakePolicy { return &fakePolicy{required: map[string]bool{}} }

func (p *fakePolicy) set(accountID string, on bool) {
	p.mu.Lock()
	p.required[accountID] = on
	p.mu.Unlock()
}

func (p *fakePolicy) fail(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
}

func (p *fakePolicy) RequiredAtSignIn(_ context.Context, a store.Account) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.all || p.required[a.ID], p.err
}

// fakeEnrolment is an EnrolmentPolicy: the accounts in must have to enrol
// the method given ("" any).
type fakeEnrolment struct {
	mu   sync.Mutex
	must map[string]string
	err  error
}

func (f *fakeEnrolment) set(accountID, method string, must bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if must {
		f.must[accountID] = method
	} else {
		delete(f.must, accountID)
	}
}

func (f *fakeEnrolment) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeEnrolment) NeedsEnrolment(_ context.Context, a store.Account) (bool, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return false, "", f.err
	}
	m, ok := f.must[a.ID]
	return ok, m, nil
}

// fakeStepUp is a StepUp that answers err and remembers whom it was asked
// about.
type fakeStepUp struct {
	err   error
	asked []Principal
}

func (f *fakeStepUp) CheckStepUp(_ context.Context, p Principal) error {
	f.asked = append(f.asked, p)
	return f.err
}

// auditData returns the data of the account's newest audit event of type
// typ.
func (e *env) auditData(accountID, typ string) map[string]any {
	e.t.Helper()
	evs, err := e.st.ListAudit(e.ctx, store.AuditFilter{AccountID: accountID, Desc: true})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Type != typ {
			continue
		}
		m := map[string]any{}
		if ev.Data != "" {
			if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
				e.t.Fatal(err)
			}
		}
		return m
	}
	e.t.Fatalf("no audit event %q for %s", typ, accountID)
	return nil
}

// The account's 2FA settings decide whether sign-in asks for the factor.
func TestSignInPolicy(t *testing.T) {
	pol := newFakePolicy()
	e := newEnvWith(t, func(d *Deps) { d.SignInPolicy = pol }, func(c *Config) { c.DeviceApproval = false })
	f := newFakeFactor("totp")
	e.svc.RegisterFactor(f)
	a := e.signUpConfirmed(e.email, goodPassword)
	f.enroll(a.ID)
	c := client("192.0.2.10", "")

	// Enrolled, but the owner turned 2FA at sign-in off: no prompt.
	res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	if err != nil || res.Step != StepDone || !res.Session.Session.SecondFactorAt.IsZero() {
		t.Fatalf("policy off: %+v, %v", res, err)
	}
	if f.calls.Load() != 0 {
		t.Fatal("the factor was asked")
	}
	if d := e.auditData(a.ID, "signin.success"); d["method"] != "password" || d["second_factor"] != false {
		t.Errorf("audit %v", d)
	}

	// On: asked, and only the factor completes the sign-in.
	pol.set(a.ID, true)
	res, err = e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	if err != nil || res.Step != StepSecondFactor || strings.Join(res.Factors, ",") != "totp" {
		t.Fatalf("policy on: %+v, %v", res, err)
	}
	if st, err := e.svc.PendingStatus(e.ctx, res.PendingToken, c); err != nil || st.Step != StepSecondFactor {
		t.Fatalf("status: %+v, %v", st, err)
	}
	done, err := e.svc.VerifySecondFactor(e.ctx, res.PendingToken, "totp", "right", c)
	if err != nil || done.Step != StepDone || !done.Session.Session.SecondFactorAt.Equal(e.clk.Now()) {
		t.Fatalf("verified: %+v, %v", done, err)
	}
	if d := e.auditData(a.ID, "signin.success"); d["method"] != "password" || d["factor"] != "totp" || d["second_factor"] != true {
		t.Errorf("audit %v", d)
	}

	// Required, but no factor the sign-in could ask for: refused, not
	// skipped.
	b := e.signUpConfirmed("bob@example.com", goodPassword)
	pol.set(b.ID, true)
	_, err = e.svc.SignIn(e.ctx, "bob@example.com", goodPassword, c)
	wantCode(t, err, apperr.Forbidden)
	if n := len(e.liveSessions(b.ID)); n != 0 {
		t.Fatalf("%d sessions issued", n)
	}

	// A policy that cannot answer refuses too.
	pol.fail(errors.New("settings unreadable"))
	before := len(e.liveSessions(a.ID))
	_, err = e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	wantCode(t, err, apperr.Internal)
	if n := len(e.liveSessions(a.ID)); n != before {
		t.Fatal("a session was issued without the policy's answer")
	}
}

// The policy is asked again at every step: turned on while a sign-in waits
// for device approval, it is asked for after the approval.
func TestSignInPolicyDecidedAtEveryStep(t *testing.T) {
	pol := newFakePolicy()
	e := newEnvWith(t, func(d *Deps) { d.SignInPolicy = pol })
	f := newFakeFactor("totp")
	e.svc.RegisterFactor(f)
	a := e.signUpConfirmed(e.email, goodPassword)
	f.enroll(a.ID)
	c := client("192.0.2.10", "")
	e.markSeen(e.email)
	res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	if err != nil || res.Step != StepDeviceApproval {
		t.Fatalf("%+v, %v", res, err)
	}
	pol.set(a.ID, true)
	code := mailCode(t, e.lastMail(e.email, subjDeviceCode).Body)
	res, err = e.svc.ApproveDevice(e.ctx, res.PendingToken, code, c)
	if err != nil || res.Step != StepSecondFactor || res.Session != nil {
		t.Fatalf("after approval: %+v, %v", res, err)
	}
}

func TestSignInPolicyOf(t *testing.T) {
	p := &functionPolicyDouble{}
	pol := SignInPolicyOf(p, testFunction("signin"))
	got, err := pol.RequiredAtSignIn(context.Background(), store.Account{ID: "acct-1"})
	if err != nil || !got || len(p.asked) != 1 || p.asked[0] != "signin" {
		t.Fatalf("RequiredAtSignIn = %v, %v; asked %v", got, err, p.asked)
	}
}

// testFunction stands in for mfa.Function.
type testFunction string

type functionPolicyDouble struct{ asked []testFunction }

func (p *functionPolicyDouble) Required(_ context.Context, a store.Account, fn testFunction) (bool, error) {
	p.asked = append(p.asked, fn)
	return fn == "signin" && a.ID == "acct-1", nil
}

// Mandatory enrolment: a completed sign-in tells the adapter to send the
// person to enrolment; nothing is issued when the policy cannot answer.
func TestMustEnrol(t *testing.T) {
	en := &fakeEnrolment{must: map[string]string{}}
	e := newEnvWith(t, func(d *Deps) { d.Enrolment = en })
	a := e.signUpConfirmed(e.email, goodPassword)
	en.set(a.ID, "webauthn", true)
	c := client("192.0.2.10", "")

	// Through device approval.
	e.markSeen(e.email)
	res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	if err != nil || res.Step != StepDeviceApproval || res.MustEnrol {
		t.Fatalf("%+v, %v", res, err)
	}
	code := mailCode(t, e.lastMail(e.email, subjDeviceCode).Body)
	done, err := e.svc.ApproveDevice(e.ctx, res.PendingToken, code, c)
	if err != nil || done.Step != StepDone || !done.MustEnrol || done.EnrolMethod != "webauthn" {
		t.Fatalf("approved: %+v, %v", done, err)
	}
	c.DeviceToken = done.Session.DeviceToken

	// At once, from the approved device.
	res, err = e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	if err != nil || res.Step != StepDone || !res.MustEnrol || res.EnrolMethod != "webauthn" {
		t.Fatalf("approved device: %+v, %v", res, err)
	}

	// Enrolled: no more.
	en.set(a.ID, "", false)
	res, err = e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	if err != nil || res.Step != StepDone || res.MustEnrol || res.EnrolMethod != "" {
		t.Fatalf("enrolled: %+v, %v", res, err)
	}

	// No answer, no session; the pending sign-in is left as it was.
	en.fail(errors.New("factors unreadable"))
	before := len(e.liveSessions(a.ID))
	_, err = e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	wantCode(t, err, apperr.Internal)
	e.markSeen(e.email)
	res, err = e.svc.SignIn(e.ctx, e.email, goodPassword, client("192.0.2.11", ""))
	if err != nil || res.Step != StepDeviceApproval {
		t.Fatalf("%+v, %v", res, err)
	}
	code = mailCode(t, e.lastMail(e.email, subjDeviceCode).Body)
	_, err = e.svc.ApproveDevice(e.ctx, res.PendingToken, code, client("192.0.2.11", ""))
	wantCode(t, err, apperr.Internal)
	if n := len(e.liveSessions(a.ID)); n != before {
		t.Fatalf("%d sessions issued without the policy's answer", n-before)
	}
	en.fail(nil)
	if done, err := e.svc.ApproveDevice(e.ctx, res.PendingToken, code, client("192.0.2.11", "")); err != nil || done.Step != StepDone {
		t.Fatalf("retry: %+v, %v", done, err)
	}
}

func TestStartSecondFactor(t *testing.T) {
	e := newEnvWith(t, func(d *Deps) { d.Challenges = ChallengesOf[fakeChallenge]() })
	key, app, sms := newChallengeFactor("webauthn"), newFakeFactor("totp"), newChallengeFactor("sms")
	e.svc.RegisterFactor(key)
	e.svc.RegisterFactor(app)
	e.svc.RegisterFactor(sms)
	a := e.signUpConfirmed(e.email, goodPassword)
	key.enroll(a.ID)
	app.enroll(a.ID)
	c := client("192.0.2.10", "")

	e.markSeen(e.email)
	res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	if err != nil || res.Step != StepDeviceApproval {
		t.Fatalf("%+v, %v", res, err)
	}
	pending := res.PendingToken
	// Nothing is sent before the device is approved.
	_, err = e.svc.StartSecondFactor(e.ctx, pending, "webauthn", c)
	wantCode(t, err, apperr.Conflict)
	if key.sentCount() != 0 {
		t.Fatal("challenge sent before device approval")
	}
	code := mailCode(t, e.lastMail(e.email, subjDeviceCode).Body)
	if res, err = e.svc.ApproveDevice(e.ctx, pending, code, c); err != nil || res.Step != StepSecondFactor {
		t.Fatalf("%+v, %v", res, err)
	}

	ch, err := e.svc.StartSecondFactor(e.ctx, pending, "webauthn", c)
	if got, ok := ch.(fakeChallenge); err != nil || !ok || got != (fakeChallenge{"webauthn", a.ID, 1}) {
		t.Fatalf("webauthn challenge %#v, %v", ch, err)
	}
	if d := e.auditData(a.ID, "signin.second_factor_challenge"); d["factor"] != "webauthn" {
		t.Errorf("audit %v", d)
	}
	if ch, err := e.svc.StartSecondFactor(e.ctx, pending, "totp", c); err != nil || ch != nil {
		t.Fatalf("a typed code needs no challenge: %#v, %v", ch, err)
	}
	for _, f := range []string{"sms", "carrier_pigeon", ""} { // sms: registered, not enrolled
		_, err = e.svc.StartSecondFactor(e.ctx, pending, f, c)
		if ae := wantCode(t, err, apperr.Invalid); ae.Field != "factor" {
			t.Errorf("%q: field %q", f, ae.Field)
		}
	}
	if sms.sentCount() != 0 {
		t.Fatal("SMS sent for a factor the account does not have")
	}
	_, err = e.svc.StartSecondFactor(e.ctx, "made-up", "webauthn", c)
	wantCode(t, err, apperr.Unauthorized)

	// The factor's refusal passes through and is not a wrong answer.
	key.cmu.Lock()
	key.fail = &apperr.Error{Code: apperr.RateLimited, Message: "wait", RetryAfter: time.Minute}
	key.cmu.Unlock()
	_, err = e.svc.StartSecondFactor(e.ctx, pending, "webauthn", c)
	wantCode(t, err, apperr.RateLimited)
	key.cmu.Lock()
	key.fail = nil
	key.cmu.Unlock()
	_, err = e.svc.VerifySecondFactor(e.ctx, pending, "totp", "wrong", c)
	if ae := wantCode(t, err, apperr.TokenInvalid); !strings.Contains(ae.Message, "4 tries left") {
		t.Errorf("a challenge counted as a try: %q", ae.Message)
	}

	// At most maxChallenges per sign-in (3 so far reached the limit).
	for n := 3; n < maxChallenges; n++ {
		if _, err := e.svc.StartSecondFactor(e.ctx, pending, "webauthn", c); err != nil {
			t.Fatalf("challenge %d: %v", n+1, err)
		}
	}
	_, err = e.svc.StartSecondFactor(e.ctx, pending, "webauthn", c)
	if ae := wantCode(t, err, apperr.RateLimited); ae.RetryAfter <= 0 {
		t.Errorf("RetryAfter %v", ae.RetryAfter)
	}

	// Done: no more challenges.
	if res, err = e.svc.VerifySecondFactor(e.ctx, pending, "webauthn", "right", c); err != nil || res.Step != StepDone {
		t.Fatalf("%+v, %v", res, err)
	}
	_, err = e.svc.StartSecondFactor(e.ctx, pending, "webauthn", c)
	wantCode(t, err, apperr.TokenUsed)

	// A locked account gets nothing sent.
	c.DeviceToken = res.Session.DeviceToken
	res, err = e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	if err != nil || res.Step != StepSecondFactor {
		t.Fatalf("%+v, %v", res, err)
	}
	if err := e.svc.Lock(e.ctx, e.email, "fraud check", "admin@example.com"); err != nil {
		t.Fatal(err)
	}
	sent := key.sentCount()
	_, err = e.svc.StartSecondFactor(e.ctx, res.PendingToken, "webauthn", c)
	wantCode(t, err, apperr.AccountLocked)
	if key.sentCount() != sent {
		t.Fatal("challenge sent for a locked account")
	}
}

// Without Deps.Challenges, StartSecondFactor checks everything and sends
// nothing.
func TestStartSecondFactorWithoutChallenges(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DeviceApproval = false })
	key := newChallengeFactor("webauthn")
	e.svc.RegisterFactor(key)
	a := e.signUpConfirmed(e.email, goodPassword)
	key.enroll(a.ID)
	res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, client("192.0.2.10", ""))
	if err != nil || res.Step != StepSecondFactor {
		t.Fatalf("%+v, %v", res, err)
	}
	ch, err := e.svc.StartSecondFactor(e.ctx, res.PendingToken, "webauthn", client("192.0.2.10", ""))
	if err != nil || ch != nil || key.sentCount() != 0 {
		t.Fatalf("%#v, %v, sent %d", ch, err, key.sentCount())
	}
}

// A factor's refusals that are not wrong answers (a security key whose
// counter went back, a throttle) pass through without using up the tries.
func TestVerifySecondFactorRefusalsAreNotTries(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DeviceApproval = false })
	f := newFakeFactor("webauthn")
	e.svc.RegisterFactor(f)
	a := e.signUpConfirmed(e.email, goodPassword)
	f.enroll(a.ID)
	c := client("192.0.2.10", "")
	res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	if err != nil || res.Step != StepSecondFactor {
		t.Fatalf("%+v, %v", res, err)
	}
	for _, refusal := range []*apperr.Error{
		apperr.New(apperr.Forbidden, "This security key may have been copied."),
		{Code: apperr.RateLimited, Message: "Too many codes tried.", RetryAfter: time.Minute},
	} {
		f.mu.Lock()
		f.refuse = refusal
		f.mu.Unlock()
		for range 2 * maxCodeAttempts {
			_, err := e.svc.VerifySecondFactor(e.ctx, res.PendingToken, "webauthn", "right", c)
			if ae := wantCode(t, err, refusal.Code); ae.Message != refusal.Message {
				t.Errorf("message %q", ae.Message)
			}
		}
	}
	f.mu.Lock()
	f.refuse = nil
	f.mu.Unlock()
	if done, err := e.svc.VerifySecondFactor(e.ctx, res.PendingToken, "webauthn", "right", c); err != nil || done.Step != StepDone {
		t.Fatalf("after the refusals: %+v, %v", done, err)
	}
}

func TestSignInWithPasskey(t *testing.T) {
	pol := newFakePolicy()
	pol.all = true // 2FA required at sign-in: the passkey satisfies it
	e := newEnvWith(t, func(d *Deps) { d.SignInPolicy = pol })
	key := newFakeFactor("webauthn")
	e.svc.RegisterFactor(key)
	a := e.signUpConfirmed(e.email, goodPassword)
	key.enroll(a.ID)
	c := client("192.0.2.10", "")

	// From a new device: approval still applies, then no other factor.
	e.markSeen(e.email)
	t0 := e.clk.Now()
	res, err := e.svc.SignInWithPasskey(e.ctx, a.ID, c)
	if err != nil || res.Step != StepDeviceApproval || res.Session != nil {
		t.Fatalf("new device: %+v, %v", res, err)
	}
	if d := e.auditData(a.ID, "signin.device_approval_sent"); d["method"] != "passkey" {
		t.Errorf("audit %v", d)
	}
	e.clk.Advance(time.Minute)
	_, err = e.svc.VerifySecondFactor(e.ctx, res.PendingToken, "webauthn", "right", c)
	wantCode(t, err, apperr.Conflict)
	code := mailCode(t, e.lastMail(e.email, subjDeviceCode).Body)
	done, err := e.svc.ApproveDevice(e.ctx, res.PendingToken, code, c)
	if err != nil || done.Step != StepDone || !done.Session.NewDevice {
		t.Fatalf("approved: %+v, %v", done, err)
	}
	if got := done.Session.Session.SecondFactorAt; !got.Equal(t0) {
		t.Errorf("SecondFactorAt %v, want the passkey's time %v", got, t0)
	}
	if key.calls.Load() != 0 {
		t.Error("a second factor was asked after a passkey")
	}
	if d := e.auditData(a.ID, "signin.success"); d["method"] != "passkey" || d["second_factor"] != true || d["factor"] != nil {
		t.Errorf("audit %v", d)
	}

	// From the approved device: at once.
	e.clk.Advance(time.Minute)
	c.DeviceToken = done.Session.DeviceToken
	res, err = e.svc.SignInWithPasskey(e.ctx, a.ID, c)
	if err != nil || res.Step != StepDone || res.Session.NewDevice || !res.Session.Session.SecondFactorAt.Equal(e.clk.Now()) {
		t.Fatalf("approved device: %+v, %v", res, err)
	}
	if _, err := e.svc.Authenticate(e.ctx, res.Session.Token, c); err != nil {
		t.Fatal(err)
	}
	if d := e.auditData(a.ID, "signin.success"); d["method"] != "passkey" {
		t.Errorf("audit %v", d)
	}

	// A stranger's wrong passwords do not keep the passkey out.
	stranger := client("203.0.113.9", "")
	for i := 0; apperr.CodeOf(err) == apperr.BadCredential || i == 0; i++ {
		if i > 50 {
			t.Fatal("the failures never throttled the address")
		}
		_, err = e.svc.SignIn(e.ctx, e.email, "not the password at all", stranger)
	}
	_, err = e.svc.SignIn(e.ctx, e.email, goodPassword, stranger)
	if code := apperr.CodeOf(err); code != apperr.RateLimited && code != apperr.AccountLocked {
		t.Fatalf("the password is not throttled: %v", err)
	}
	if res, err = e.svc.SignInWithPasskey(e.ctx, a.ID, client("192.0.2.12", "")); err != nil || res.Step != StepDeviceApproval {
		t.Fatalf("paused by failures: %+v, %v", res, err)
	}

	// Refused like a password.
	_, err = e.svc.SignInWithPasskey(e.ctx, "", c)
	wantCode(t, err, apperr.Unauthorized)
	_, err = e.svc.SignInWithPasskey(e.ctx, "no-such-account", c)
	wantCode(t, err, apperr.Unauthorized)
	if err := e.svc.SignUp(e.ctx, "new@example.com", goodPassword, c); err != nil {
		t.Fatal(err)
	}
	unconfirmed, err := e.st.GetAccountByEmail(e.ctx, "new@example.com")
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.SignInWithPasskey(e.ctx, unconfirmed.ID, c)
	wantCode(t, err, apperr.Unconfirmed)
	if err := e.svc.Lock(e.ctx, e.email, "fraud check", "admin@example.com"); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.SignInWithPasskey(e.ctx, a.ID, c)
	wantCode(t, err, apperr.AccountLocked)
}

// With device approval off, a passkey from a new device signs in at once.
func TestSignInWithPasskeyApprovalOff(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DeviceApproval = false })
	a := e.signUpConfirmed(e.email, goodPassword)
	res, err := e.svc.SignInWithPasskey(e.ctx, a.ID, client("192.0.2.10", ""))
	if err != nil || res.Step != StepDone || !res.Session.NewDevice || res.Session.DeviceToken == "" ||
		!res.Session.Session.SecondFactorAt.Equal(e.clk.Now()) {
		t.Fatalf("%+v, %v", res, err)
	}
	if e.mailsWith(e.email, subjNewSignIn) != 1 {
		t.Error("no new-sign-in alert")
	}
}

// Changing the password needs a fresh second factor once the account has
// one; the step-up lasts StepUpWithin.
func TestStepUpForPasswordChange(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DeviceApproval = false })
	f := newFakeFactor("totp")
	e.svc.RegisterFactor(f)
	a := e.signUpConfirmed(e.email, goodPassword)
	c := client("192.0.2.10", "")
	s := e.signIn(e.email, goodPassword, c)
	passwords := []string{goodPassword, "quiet harbour copper meadow", "amber lighthouse gravel tulip", "violet canyon pepper orbit"}

	// No factor: nothing to step up with.
	if err := e.svc.ChangePassword(e.ctx, mustAuth(t, e, s.Token), passwords[0], passwords[1], c); err != nil {
		t.Fatal(err)
	}

	// With one, a session that did not verify it is refused before the
	// current password is looked at: wrong guesses are not even counted.
	f.enroll(a.ID)
	p := mustAuth(t, e, s.Token)
	for range passwordChangeLimit + 1 {
		wantCode(t, e.svc.ChangePassword(e.ctx, p, "guess", passwords[2], c), apperr.StepUpNeeded)
	}

	e.clk.Advance(time.Minute)
	p = mustAuth(t, e, s.Token) // cached anew
	if err := e.svc.RecordStepUp(e.ctx, p, e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	p = mustAuth(t, e, s.Token) // this node's cache shows it at once
	if !p.Session.SecondFactorAt.Equal(e.clk.Now()) {
		t.Fatalf("SecondFactorAt %v", p.Session.SecondFactorAt)
	}
	e.clk.Advance(StepUpWithin)
	if err := e.svc.ChangePassword(e.ctx, mustAuth(t, e, s.Token), passwords[1], passwords[2], c); err != nil {
		t.Fatalf("within %v: %v", StepUpWithin, err)
	}
	e.clk.Advance(time.Second)
	wantCode(t, e.svc.ChangePassword(e.ctx, mustAuth(t, e, s.Token), passwords[2], passwords[3], c), apperr.StepUpNeeded)

	// A sign-in that verified the factor counts as a step-up.
	res, err := e.svc.SignIn(e.ctx, e.email, passwords[2], c)
	if err != nil || res.Step != StepSecondFactor {
		t.Fatalf("%+v, %v", res, err)
	}
	done, err := e.svc.VerifySecondFactor(e.ctx, res.PendingToken, "totp", "right", c)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ChangePassword(e.ctx, mustAuth(t, e, done.Session.Token), passwords[2], passwords[3], c); err != nil {
		t.Fatal(err)
	}
}

// With Deps.StepUp, the 2FA service decides.
func TestStepUpInjected(t *testing.T) {
	su := &fakeStepUp{err: apperr.New(apperr.StepUpNeeded, "Confirm it's you first.")}
	e := newEnvWith(t, func(d *Deps) { d.StepUp = su }, func(c *Config) { c.DeviceApproval = false })
	e.signUpConfirmed(e.email, goodPassword)
	c := client("192.0.2.10", "")
	s := e.signIn(e.email, goodPassword, c)
	p := mustAuth(t, e, s.Token)
	const next = "quiet harbour copper meadow"
	wantCode(t, e.svc.ChangePassword(e.ctx, p, goodPassword, next, c), apperr.StepUpNeeded)
	if len(su.asked) != 1 || su.asked[0].Session.ID != p.Session.ID {
		t.Fatalf("asked about %+v", su.asked)
	}
	su.err = errors.New("factors unreadable")
	wantCode(t, e.svc.ChangePassword(e.ctx, p, goodPassword, next, c), apperr.Internal)
	su.err = nil
	if err := e.svc.ChangePassword(e.ctx, p, goodPassword, next, c); err != nil {
		t.Fatal(err)
	}
}

func TestRecordStepUp(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DeviceApproval = false })
	e.signUpConfirmed(e.email, goodPassword)
	e.signUpConfirmed("bob@example.com", goodPassword)
	c := client("192.0.2.10", "")
	mine := mustAuth(t, e, e.signIn(e.email, goodPassword, c).Token)
	bobs := mustAuth(t, e, e.signIn("bob@example.com", goodPassword, c).Token)
	stored := func(id string) time.Time {
		t.Helper()
		for _, s := range e.liveSessions(mine.Account.ID) {
			if s.ID == id {
				return s.SecondFactorAt
			}
		}
		t.Fatalf("session %s not live", id)
		return time.Time{}
	}

	// Never past now, never back.
	now := e.clk.Now()
	if err := e.svc.RecordStepUp(e.ctx, mine, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := stored(mine.Session.ID); !got.Equal(now) {
		t.Fatalf("a future step-up stored as %v, want now %v", got, now)
	}
	if err := e.svc.RecordStepUp(e.ctx, mine, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := stored(mine.Session.ID); !got.Equal(now) {
		t.Fatalf("moved back to %v", got)
	}

	// Only on one's own live session.
	forged := mine
	forged.Session = bobs.Session
	wantCode(t, e.svc.RecordStepUp(e.ctx, forged, now), apperr.Unauthorized)
	wantCode(t, e.svc.RecordStepUp(e.ctx, Principal{Account: mine.Account, Session: store.Session{ID: "no-such-session"}}, now), apperr.Unauthorized)
	if err := e.svc.RevokeSession(e.ctx, bobs, bobs.Session.ID, c); err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.svc.RecordStepUp(e.ctx, bobs, now), apperr.Unauthorized)
	wantCode(t, e.svc.RecordStepUp(e.ctx, mine, time.Time{}), apperr.Internal)
}

// Another node sees a step-up within SessionCacheTTL.
func TestRecordStepUpOnAnotherNode(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DeviceApproval = false })
	e.signUpConfirmed(e.email, goodPassword)
	c := client("192.0.2.10", "")
	s := e.signIn(e.email, goodPassword, c)
	other := otherNode(t, e)
	p, err := other.Authenticate(e.ctx, s.Token, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RecordStepUp(e.ctx, mustAuth(t, e, s.Token), e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(e.svc.cfg.SessionCacheTTL + time.Millisecond)
	if p, err = other.Authenticate(e.ctx, s.Token, c); err != nil || !p.Session.SecondFactorAt.Equal(e.clk.Now().Add(-e.svc.cfg.SessionCacheTTL-time.Millisecond)) {
		t.Fatalf("other node: %v, %v", p.Session.SecondFactorAt, err)
	}
}

// A refused answer keeps the factor's code and message (a reused code says
// so, not just "wrong"), with the tries left, and counts as a try.
func TestVerifySecondFactorKeepsTheFactorsCode(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DeviceApproval = false })
	f := newFakeFactor("totp")
	e.svc.RegisterFactor(f)
	a := e.signUpConfirmed(e.email, goodPassword)
	f.enroll(a.ID)
	c := client("192.0.2.10", "")
	res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	if err != nil || res.Step != StepSecondFactor {
		t.Fatalf("%+v, %v", res, err)
	}
	for i, refusal := range []*apperr.Error{
		apperr.Field(apperr.TokenUsed, "code", "That code was already used \u2014 wait for the next one and type it."),
		apperr.Field(apperr.TokenExpired, "code", "That code has expired."),
		apperr.New(apperr.Invalid, "Your browser's security key answer was incomplete."),
	} {
		f.mu.Lock()
		f.refuse = refusal
		f.mu.Unlock()
		_, err := e.svc.VerifySecondFactor(e.ctx, res.PendingToken, "totp", "right", c)
		ae := wantCode(t, err, refusal.Code)
		if want := fmt.Sprintf("%s You have %d tries left.", refusal.Message, maxCodeAttempts-1-i); ae.Message != want {
			t.Errorf("message %q, want %q", ae.Message, want)
		}
		if refusal.Field != "" && ae.Field != refusal.Field || refusal.Field == "" && ae.Field != "response" {
			t.Errorf("field %q", ae.Field)
		}
	}
}
