package mfa_test

import (
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/mfa"
	"github.com/moat-dev/moat/internal/mfa/totp"
	"github.com/moat-dev/moat/internal/store"
)

func TestFresh(t *testing.T) {
	now := start
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{time.Time{}, false},
		{now, true},
		{now.Add(-5 * time.Minute), true},
		{now.Add(-5*time.Minute - time.Second), false},
		{now.Add(-24 * time.Hour), false},
	} {
		if got := mfa.Fresh(store.Session{SecondFactorAt: tc.at}, now, 5*time.Minute); got != tc.want {
			t.Errorf("Fresh(%v) = %v", tc.at, got)
		}
	}
}

// TestStepUpExpiry: a step-up is good for 5 minutes of the injected clock.
func TestStepUpExpiry(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	secret, _ := e.enrolTOTP(p)
	wantCode(t, e.svc.CheckStepUp(ctx, p), apperr.StepUpNeeded)

	at, err := e.svc.StepUp(ctx, p, mfa.MethodTOTP, totp.Code(secret, totp.Step(e.clk.Now())), e.client)
	if err != nil {
		t.Fatal(err)
	}
	if !at.Equal(e.clk.Now()) {
		t.Errorf("SecondFactorAt %v, want now", at)
	}
	p.Session.SecondFactorAt = at // what the caller stores on the session
	if err := e.svc.CheckStepUp(ctx, p); err != nil {
		t.Errorf("fresh: %v", err)
	}
	e.clk.Advance(5 * time.Minute)
	if err := e.svc.CheckStepUp(ctx, p); err != nil {
		t.Errorf("at 5 minutes: %v", err)
	}
	e.clk.Advance(time.Second)
	wantCode(t, e.svc.CheckStepUp(ctx, p), apperr.StepUpNeeded)
	wantCode(t, e.svc.RemoveTOTP(ctx, p, e.client), apperr.StepUpNeeded)
	if !contains(e.eventTypes(), mfa.EventStepUp) {
		t.Error("step-up not audited")
	}

	// A wrong or reused code does not step up.
	_, err = e.svc.StepUp(ctx, p, mfa.MethodTOTP, totp.Code(secret, totp.Step(at)), e.client)
	wantCode(t, err, apperr.TokenUsed)
	_, err = e.svc.StepUp(ctx, p, "password", "x", e.client)
	wantCode(t, err, apperr.Invalid)
	// Without any factor there is nothing to step up with.
	bob := e.principal("acct-bob", "bob@example.com", store.RoleUser, false)
	if err := e.svc.CheckStepUp(ctx, bob); err != nil {
		t.Errorf("account without factors: %v", err)
	}
}

// TestStepUpWithEachMethod: any enrolled factor can step up.
func TestStepUpWithEachMethod(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	secret, codes := e.enrolTOTP(p)
	e.addKey(e.user(true), "key", false)
	e.addPhone(e.user(true))
	ms, _ := e.svc.EnrolledMethods(ctx, p.Account.ID)
	if strings.Join(ms, ",") != "webauthn,totp,sms,backup_code" {
		t.Fatalf("preference order %v", ms)
	}
	// Factors are registered in the same order.
	var names []string
	for _, f := range e.svc.Factors() {
		names = append(names, f.Name())
	}
	if strings.Join(names, ",") != "webauthn,totp,sms,backup_code" {
		t.Errorf("factors %v", names)
	}

	step := func(method, response string) {
		t.Helper()
		if _, err := e.svc.StepUp(ctx, p, method, response, e.client); err != nil {
			t.Errorf("step-up with %s: %v", method, err)
		}
	}
	e.clk.Advance(totp.Period)
	step(mfa.MethodTOTP, totp.Code(secret, totp.Step(e.clk.Now())))
	step(mfa.MethodBackupCode, codes[0])
	ch, err := e.svc.StepUpChallenge(ctx, p, mfa.MethodWebAuthn)
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := e.key.Get(ch.Options)
	step(mfa.MethodWebAuthn, envelope(ch.Ceremony, resp))
	e.clk.Advance(time.Hour) // past the SMS send window
	ch, err = e.svc.StepUpChallenge(ctx, p, mfa.MethodSMS)
	if err != nil || ch.SentTo == "" {
		t.Fatalf("sms challenge %+v %v", ch, err)
	}
	step(mfa.MethodSMS, e.lastCode(phone))
}

func TestSettings(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	st, err := e.svc.Settings(ctx, p.Account.ID)
	if err != nil || st != (mfa.Settings{SignIn: true, Funding: true}) {
		t.Fatalf("defaults %+v %v", st, err)
	}
	acct := p.Account
	if req, _ := e.svc.Required(ctx, acct, mfa.FunctionSignIn); req {
		t.Error("2FA required at sign-in without a factor")
	}
	e.enrolTOTP(p)
	for fn, want := range map[mfa.Function]bool{mfa.FunctionSignIn: true, mfa.FunctionFunding: true, mfa.FunctionTrading: false} {
		if got, err := e.svc.Required(ctx, acct, fn); err != nil || got != want {
			t.Errorf("Required(%s) = %v, %v", fn, got, err)
		}
	}
	next := mfa.Settings{SignIn: false, Funding: true, Trading: true}
	_, err = e.svc.UpdateSettings(ctx, p, next, e.client)
	wantCode(t, err, apperr.StepUpNeeded)
	if _, err := e.svc.UpdateSettings(ctx, e.user(true), next, e.client); err != nil {
		t.Fatal(err)
	}
	for fn, want := range map[mfa.Function]bool{mfa.FunctionSignIn: false, mfa.FunctionFunding: true, mfa.FunctionTrading: true} {
		if got, _ := e.svc.Required(ctx, acct, fn); got != want {
			t.Errorf("after update Required(%s) = %v", fn, got)
		}
	}
	types := e.eventTypes()
	if types[len(types)-1] != mfa.EventSettingsChanged {
		t.Errorf("events %v", types)
	}
	// Saving the same settings records nothing new.
	n := len(types)
	if _, err := e.svc.UpdateSettings(ctx, e.user(true), next, e.client); err != nil {
		t.Fatal(err)
	}
	if len(e.eventTypes()) != n {
		t.Error("unchanged settings recorded")
	}
	// Factor changes keep the owner's settings.
	e.addKey(e.user(true), "key", false)
	if st, _ := e.svc.Settings(ctx, p.Account.ID); st != next {
		t.Errorf("settings after adding a key: %+v", st)
	}
}

func TestMandatoryPolicy(t *testing.T) {
	e := newEnv(t, func(c *mfa.Config) { c.Policy = mfa.Policy{MandatoryForAll: true, StaffSecurityKey: true} })
	p := e.user(false)
	if need, method, _ := e.svc.NeedsEnrolment(ctx, p.Account); !need || method != "" {
		t.Errorf("NeedsEnrolment = %v %q", need, method)
	}
	e.enrolTOTP(p)
	if need, _, _ := e.svc.NeedsEnrolment(ctx, p.Account); need {
		t.Error("still needs enrolment")
	}
	wantCode(t, e.svc.RemoveTOTP(ctx, e.user(true), e.client), apperr.Forbidden)
	_, err := e.svc.UpdateSettings(ctx, e.user(true), mfa.Settings{SignIn: false}, e.client)
	wantCode(t, err, apperr.Forbidden)
	// Saved settings cannot switch sign-in 2FA off under the policy.
	if req, _ := e.svc.Required(ctx, p.Account, mfa.FunctionSignIn); !req {
		t.Error("sign-in 2FA not required under a mandatory policy")
	}
	// With a second factor, one may go.
	e.addKey(e.user(true), "key", false)
	if err := e.svc.RemoveTOTP(ctx, e.user(true), e.client); err != nil {
		t.Errorf("removing one of two: %v", err)
	}
}

func TestStaffPolicy(t *testing.T) {
	e := newEnv(t, func(c *mfa.Config) { c.Policy = mfa.Policy{MandatoryForStaff: true, StaffSecurityKey: true} })
	staff := e.principal("acct-staff", "staff@example.com", store.RoleSupport, false)
	user := e.user(false)
	if need, _, _ := e.svc.NeedsEnrolment(ctx, user.Account); need {
		t.Error("a user must enrol under a staff-only policy")
	}
	if need, method, _ := e.svc.NeedsEnrolment(ctx, staff.Account); !need || method != mfa.MethodWebAuthn {
		t.Errorf("staff NeedsEnrolment = %v %q", need, method)
	}
	e.enrolTOTP(staff)
	if need, method, _ := e.svc.NeedsEnrolment(ctx, staff.Account); !need || method != mfa.MethodWebAuthn {
		t.Errorf("staff with only an app: NeedsEnrolment = %v %q", need, method)
	}
	fresh := e.principal("acct-staff", "staff@example.com", store.RoleSupport, true)
	k, _ := e.addKey(fresh, "key", false)
	if need, _, _ := e.svc.NeedsEnrolment(ctx, staff.Account); need {
		t.Error("staff with a key still needs enrolment")
	}
	// Staff keep their last key even though they have an app.
	wantCode(t, e.svc.RemoveSecurityKey(ctx, fresh, k.ID, e.client), apperr.Forbidden)
}

// TestFirstFactorNeedsNoStepUpButSecondDoes covers every way to add a
// factor.
func TestAddingFactorsNeedsStepUp(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	e.addKey(p, "first", false) // first factor: the session is enough
	_, err := e.svc.BeginTOTP(ctx, p)
	wantCode(t, err, apperr.StepUpNeeded)
	_, err = e.svc.AddPhone(ctx, p, phone)
	wantCode(t, err, apperr.StepUpNeeded)
	_, err = e.svc.BeginSecurityKey(ctx, p, "second", false)
	wantCode(t, err, apperr.StepUpNeeded)

	// The step-up must still be fresh when the change is made, not only
	// when it began.
	fresh := e.user(true)
	en, err := e.svc.BeginTOTP(ctx, fresh)
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(6 * time.Minute)
	secret, _ := totp.ParseSecret(en.ManualKey)
	_, err = e.svc.ConfirmTOTP(ctx, fresh, totp.Code(secret, totp.Step(e.clk.Now())), e.client)
	wantCode(t, err, apperr.StepUpNeeded)
}
