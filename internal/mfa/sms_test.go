package mfa_test

import (
	"crypto/rand"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/mfa"
	"github.com/moat-dev/moat/internal/mfa/sms"
	"github.com/moat-dev/moat/internal/store"
)

var codeRE = regexp.MustCompile(`\b(\d{6})\b`)

// lastCode reads the code of the newest text to number.
func (e *env) lastCode(number string) string {
	e.t.Helper()
	m, ok := e.outbox.Last(number)
	if !ok {
		e.t.Fatalf("no text to %s", number)
	}
	c := codeRE.FindStringSubmatch(m.Body)
	if c == nil {
		e.t.Fatalf("no code in %q", m.Body)
	}
	return c[1]
}

const phone = "+442079460958"

func (e *env) addPhone(p account.Principal) []string {
	e.t.Helper()
	if _, err := e.svc.AddPhone(ctx, p, "+44 20 7946 0958"); err != nil {
		e.t.Fatalf("AddPhone: %v", err)
	}
	codes, err := e.svc.ConfirmPhone(ctx, p, e.lastCode(phone), e.client)
	if err != nil {
		e.t.Fatalf("ConfirmPhone: %v", err)
	}
	return codes
}

func TestSMSEnrolment(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	_, err := e.svc.AddPhone(ctx, p, "020 7946 0958")
	ae := wantCode(t, err, apperr.Invalid)
	if ae.Field != "phone" || !strings.Contains(ae.Message, "country code") {
		t.Errorf("bad number error %+v", ae)
	}
	masked, err := e.svc.AddPhone(ctx, p, "+44 20 7946 0958")
	if err != nil {
		t.Fatal(err)
	}
	if masked != sms.MaskPhone(phone) || strings.Contains(masked, "7946") {
		t.Errorf("masked %q", masked)
	}
	msg, _ := e.outbox.Last(phone)
	if !strings.Contains(msg.Body, "moat") || !strings.Contains(msg.Body, "5 minutes") {
		t.Errorf("text %q", msg.Body)
	}
	if ok, _ := e.factor(mfa.MethodSMS).Enrolled(ctx, p.Account.ID); ok {
		t.Error("unverified phone counts")
	}
	// The code is stored only as a hash.
	code := e.lastCode(phone)
	if err := e.st.InTx(ctx, func(q store.Queries) error {
		_, err := q.UpdateSMSCode(ctx, p.Account.ID, func(c *store.SMSCode) error {
			if strings.Contains(string(c.CodeHash), code) || len(c.CodeHash) != 32 {
				t.Errorf("code stored as %q", c.CodeHash)
			}
			return errStop
		})
		if err == errStop {
			return nil
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	codes, err := e.svc.ConfirmPhone(ctx, p, code, e.client)
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != 10 {
		t.Errorf("first factor: %d backup codes", len(codes))
	}
	if ok, _ := e.factor(mfa.MethodSMS).Enrolled(ctx, p.Account.ID); !ok {
		t.Error("verified phone not enrolled")
	}
	m, _ := e.svc.Methods(ctx, p.Account.ID)
	if m.Phone == nil || m.Phone.Masked != masked || !m.SMSAvailable {
		t.Errorf("methods %+v", m)
	}
	// A second phone: refused (after step-up).
	_, err = e.svc.AddPhone(ctx, e.user(true), "+14155552671")
	wantCode(t, err, apperr.Conflict)
}

type stopErr struct{}

func (stopErr) Error() string { return "stop" }

var errStop error = stopErr{}

func TestSMSSignIn(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	e.addPhone(p)
	f := e.factor(mfa.MethodSMS)
	ch, err := f.(mfa.Challenger).Challenge(ctx, p.Account.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ch.SentTo != sms.MaskPhone(phone) || !ch.ExpiresAt.Equal(e.clk.Now().Add(5*time.Minute)) {
		t.Errorf("challenge %+v", ch)
	}
	code := e.lastCode(phone)
	if err := f.Verify(ctx, p.Account.ID, code); err != nil {
		t.Fatalf("verify: %v", err)
	}
	wantCode(t, f.Verify(ctx, p.Account.ID, code), apperr.TokenUsed)

	// Expiry: 5 minutes.
	if _, err := f.(mfa.Challenger).Challenge(ctx, p.Account.ID); err != nil {
		t.Fatal(err)
	}
	code = e.lastCode(phone)
	e.clk.Advance(5 * time.Minute)
	wantCode(t, f.Verify(ctx, p.Account.ID, code), apperr.TokenExpired)
}

func TestSMSCodeTries(t *testing.T) {
	e := newEnv(t, func(c *mfa.Config) { c.CodeAttempts = 100 })
	p := e.user(false)
	e.addPhone(p)
	f := e.factor(mfa.MethodSMS)
	if _, err := f.(mfa.Challenger).Challenge(ctx, p.Account.ID); err != nil {
		t.Fatal(err)
	}
	code := e.lastCode(phone)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	for i := 1; i <= 4; i++ {
		wantCode(t, f.Verify(ctx, p.Account.ID, wrong), apperr.TokenInvalid)
	}
	// The fifth wrong try voids the code; the right one no longer works.
	ae := wantCode(t, f.Verify(ctx, p.Account.ID, wrong), apperr.TokenInvalid)
	if !strings.Contains(ae.Message, "Too many wrong tries") {
		t.Errorf("fifth try: %q", ae.Message)
	}
	ae = wantCode(t, f.Verify(ctx, p.Account.ID, code), apperr.TokenInvalid)
	if !strings.Contains(ae.Message, "new text message") {
		t.Errorf("after void: %q", ae.Message)
	}
	// A new code replaces the old one.
	e.clk.Advance(time.Minute)
	if _, err := f.(mfa.Challenger).Challenge(ctx, p.Account.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.Verify(ctx, p.Account.ID, e.lastCode(phone)); err != nil {
		t.Errorf("new code: %v", err)
	}
}

func TestSMSSendLimit(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	e.clk.Set(start.Add(15 * time.Minute))
	e.addPhone(p) // send 1
	ch := e.factor(mfa.MethodSMS).(mfa.Challenger)
	for i := 2; i <= 3; i++ {
		if _, err := ch.Challenge(ctx, p.Account.ID); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	_, err := ch.Challenge(ctx, p.Account.ID)
	ae := wantCode(t, err, apperr.RateLimited)
	if ae.RetryAfter <= 0 || ae.RetryAfter > 15*time.Minute {
		t.Errorf("RetryAfter %v", ae.RetryAfter)
	}
	if n := len(e.outbox.Messages()); n != 3 {
		t.Errorf("%d texts sent, want 3", n)
	}
	e.clk.Advance(15 * time.Minute)
	if _, err := ch.Challenge(ctx, p.Account.ID); err != nil {
		t.Errorf("after the window: %v", err)
	}
}

// TestSMSNumberLimit: many accounts cannot flood one (stranger's) number.
func TestSMSNumberLimit(t *testing.T) {
	e := newEnv(t)
	e.clk.Set(start.Add(15 * time.Minute))
	for i, id := range []string{"a1", "a2", "a3", "a4"} {
		_, err := e.svc.AddPhone(ctx, e.principal(id, id+"@example.com", "user", false), phone)
		if i < 3 && err != nil {
			t.Fatalf("account %d: %v", i, err)
		}
		if i == 3 {
			wantCode(t, err, apperr.RateLimited)
		}
	}
}

// TestSMSPurposes: the code sent to confirm a number cannot complete a
// sign-in, and a sign-in code cannot confirm a number.
func TestSMSPurposes(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	e.enrolTOTP(p)
	fresh := e.user(true)
	if _, err := e.svc.AddPhone(ctx, fresh, phone); err != nil {
		t.Fatal(err)
	}
	code := e.lastCode(phone)
	// The sign-in path does not know an unverified phone at all.
	wantCode(t, e.factor(mfa.MethodSMS).Verify(ctx, p.Account.ID, code), apperr.NotFound)
	if _, err := e.svc.ConfirmPhone(ctx, fresh, code, e.client); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(time.Minute)
	if _, err := e.svc.ResendPhoneCode(ctx, fresh); err == nil {
		t.Fatal("resend for a verified phone")
	}
	// A sign-in code whose stored purpose is "enrol" does not sign in.
	if _, err := e.factor(mfa.MethodSMS).(mfa.Challenger).Challenge(ctx, p.Account.ID); err != nil {
		t.Fatal(err)
	}
	verifyCode := e.lastCode(phone)
	_ = e.st.InTx(ctx, func(q store.Queries) error {
		_, err := q.UpdateSMSCode(ctx, p.Account.ID, func(c *store.SMSCode) error { c.Purpose = store.SMSPurposeEnrol; return nil })
		return err
	})
	wantCode(t, e.factor(mfa.MethodSMS).Verify(ctx, p.Account.ID, verifyCode), apperr.TokenInvalid)
}

func TestRemovePhone(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	e.addPhone(p)
	wantCode(t, e.svc.RemovePhone(ctx, p, e.client), apperr.StepUpNeeded)
	if err := e.svc.RemovePhone(ctx, e.user(true), e.client); err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.factor(mfa.MethodSMS).Enrolled(ctx, p.Account.ID); ok {
		t.Error("still enrolled")
	}
	evs := e.events()
	if last := evs[len(evs)-1]; last.Type != mfa.EventPhoneRemoved || !last.LastFactorRemoved {
		t.Errorf("event %+v", last)
	}
}

func TestNoSMSSender(t *testing.T) {
	e := newEnv(t)
	cfg := mfa.DefaultConfig()
	cfg.WebAuthn.RPID, cfg.WebAuthn.Origins = "localhost", []string{origin}
	// Rebuild without a sender.
	svc, err := mfa.New(cfg, mfa.Deps{Store: e.st, Clock: e.clk, Rand: rand.Reader, Box: mustBox(t), HashKey: e.hashKey, Counter: e.ctr, Recorder: e.rec})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range svc.Factors() {
		if f.Name() == mfa.MethodSMS {
			t.Error("SMS offered without a sender")
		}
	}
	_, err = svc.AddPhone(ctx, e.user(false), phone)
	wantCode(t, err, apperr.NotFound)
}
