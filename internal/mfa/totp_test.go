package mfa_test

import (
	"bytes"
	"errors"
	"image/png"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/mfa"
	"github.com/moat-dev/moat/internal/mfa/totp"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/testenv"
)

func TestTOTPEnrolment(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	en, err := e.svc.BeginTOTP(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(en.URI)
	if err != nil || u.Scheme != "otpauth" || u.Query().Get("issuer") != "moat" || !strings.HasSuffix(u.Path, ":alice@example.com") {
		t.Fatalf("URI %q: %v", en.URI, err)
	}
	if u.Query().Get("secret") != strings.ReplaceAll(en.ManualKey, " ", "") {
		t.Errorf("URI secret %q differs from manual key %q", u.Query().Get("secret"), en.ManualKey)
	}
	if img, err := png.Decode(bytes.NewReader(en.QRCodePNG)); err != nil || img.Bounds().Dx() != 256 {
		t.Errorf("QR code: %v", err)
	}
	secret, _ := totp.ParseSecret(en.ManualKey)
	if len(secret) != totp.SecretSize {
		t.Fatalf("seed is %d bytes", len(secret))
	}

	// Not a factor until confirmed.
	if ok, _ := e.factor(mfa.MethodTOTP).Enrolled(ctx, p.Account.ID); ok {
		t.Error("pending app counts as enrolled")
	}
	again, err := e.svc.PendingTOTP(ctx, p)
	if err != nil || again.URI != en.URI {
		t.Errorf("PendingTOTP = %q, %v", again.URI, err)
	}

	// A wrong code does not confirm.
	wrong := totp.Code(secret, totp.Step(e.clk.Now())+5)
	_, err = e.svc.ConfirmTOTP(ctx, p, wrong, e.client)
	wantCode(t, err, apperr.TokenInvalid)

	codes, err := e.svc.ConfirmTOTP(ctx, p, totp.Code(secret, totp.Step(e.clk.Now())), e.client)
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != 10 {
		t.Errorf("first factor gave %d backup codes, want 10", len(codes))
	}
	if ok, _ := e.factor(mfa.MethodTOTP).Enrolled(ctx, p.Account.ID); !ok {
		t.Error("confirmed app not enrolled")
	}
	ms, _ := e.svc.EnrolledMethods(ctx, p.Account.ID)
	if strings.Join(ms, ",") != "totp,backup_code" {
		t.Errorf("methods %v", ms)
	}
	evs := e.events()
	if len(evs) != 1 || evs[0].Type != mfa.EventTOTPAdded || !evs[0].Notify || evs[0].Client.IP != "192.0.2.7" {
		t.Errorf("events %+v", evs)
	}

	// The confirming code's step is used: it cannot sign in.
	err = e.factor(mfa.MethodTOTP).Verify(ctx, p.Account.ID, totp.Code(secret, totp.Step(e.clk.Now())))
	wantCode(t, err, apperr.TokenUsed)

	// One app per account.
	_, err = e.svc.BeginTOTP(ctx, e.user(true))
	wantCode(t, err, apperr.Conflict)
	// And a second enrolment attempt needed step-up in the first place.
	_, err = e.svc.BeginTOTP(ctx, p)
	wantCode(t, err, apperr.StepUpNeeded)
}

// TestTOTPSeedSealed: the store holds the seed encrypted and bound to the
// account: copied to another account's row it does not open.
func TestTOTPSeedSealed(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	secret, _ := e.enrolTOTP(p)
	rec, err := e.st.GetTOTP(ctx, p.Account.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(rec.Secret, secret) || strings.Contains(string(rec.Secret), totp.Key{Secret: secret}.Base32()) {
		t.Fatal("seed stored in clear")
	}
	bob := e.principal("acct-bob", "bob@example.com", "user", false)
	if err := e.st.CreateTOTP(ctx, store.TOTPCredential{AccountID: bob.Account.ID, Secret: rec.Secret, ConfirmedAt: start}); err != nil {
		t.Fatal(err)
	}
	err = e.factor(mfa.MethodTOTP).Verify(ctx, bob.Account.ID, totp.Code(secret, totp.Step(e.clk.Now())))
	wantCode(t, err, apperr.Internal)
}

func TestTOTPVerify(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	secret, _ := e.enrolTOTP(p)
	f := e.factor(mfa.MethodTOTP)
	step := func() int64 { return totp.Step(e.clk.Now()) }

	if err := f.Verify(ctx, p.Account.ID, totp.Code(secret, step())); err != nil {
		t.Fatalf("current code: %v", err)
	}
	// Replay of the same code, sequentially.
	ae := wantCode(t, f.Verify(ctx, p.Account.ID, totp.Code(secret, step())), apperr.TokenUsed)
	if !strings.Contains(ae.Message, "already used") || !strings.Contains(ae.Message, "wait for the next one") || ae.Field != "code" {
		t.Errorf("reused-code message %q", ae.Message)
	}
	// The previous step's code is older than the one used: refused too.
	wantCode(t, f.Verify(ctx, p.Account.ID, totp.Code(secret, step()-1)), apperr.TokenUsed)
	// The next step (phone 30 s ahead) is accepted once.
	if err := f.Verify(ctx, p.Account.ID, totp.Code(secret, step()+1)); err != nil {
		t.Fatalf("next step: %v", err)
	}
	// Now even the current step is behind the last used one.
	wantCode(t, f.Verify(ctx, p.Account.ID, totp.Code(secret, step())), apperr.TokenUsed)

	e.clk.Advance(3 * totp.Period)
	// The previous step is still within the window when not used yet.
	if err := f.Verify(ctx, p.Account.ID, totp.Code(secret, step()-1)); err != nil {
		t.Fatalf("previous step: %v", err)
	}
	if err := f.Verify(ctx, p.Account.ID, totp.Code(secret, step())); err != nil {
		t.Fatalf("current after previous: %v", err)
	}

	// Formatting is forgiven, junk is not.
	e.clk.Advance(totp.Period)
	c := totp.Code(secret, step())
	if err := f.Verify(ctx, p.Account.ID, c[:3]+" "+c[3:]); err != nil {
		t.Errorf("spaced code: %v", err)
	}
	wantCode(t, f.Verify(ctx, p.Account.ID, "12345"), apperr.TokenInvalid)
	wantCode(t, f.Verify(ctx, p.Account.ID, "abcdef"), apperr.TokenInvalid)

	// Not enrolled.
	wantCode(t, f.Verify(ctx, "acct-nobody", "123456"), apperr.NotFound)
}

// TestTOTPDrift: a code 2..10 steps off is refused with advice about the
// phone's clock; one further away is just wrong.
func TestTOTPDrift(t *testing.T) {
	e := newEnv(t, func(c *mfa.Config) { c.CodeAttempts = 100 })
	p := e.user(false)
	secret, _ := e.enrolTOTP(p)
	e.clk.Advance(20 * totp.Period) // the enrolment's step is far behind
	f := e.factor(mfa.MethodTOTP)
	now := totp.Step(e.clk.Now())
	for _, tc := range []struct {
		off  int64
		want string
	}{
		{-4, "about 2 minutes behind"},
		{-2, "about a minute behind"},
		{6, "about 3 minutes ahead"},
		{10, "about 5 minutes ahead"},
	} {
		err := f.Verify(ctx, p.Account.ID, totp.Code(secret, now+tc.off))
		ae := wantCode(t, err, apperr.TokenInvalid)
		if !strings.Contains(ae.Message, "clock") || !strings.Contains(ae.Message, tc.want) {
			t.Errorf("offset %d: %q, want clock advice %q", tc.off, ae.Message, tc.want)
		}
	}
	ae := wantCode(t, f.Verify(ctx, p.Account.ID, totp.Code(secret, now+11)), apperr.TokenInvalid)
	if strings.Contains(ae.Message, "clock") {
		t.Errorf("11 steps away: %q should be a plain wrong code", ae.Message)
	}
	// A drifted code never signs in, and does not burn a step.
	if err := f.Verify(ctx, p.Account.ID, totp.Code(secret, now)); err != nil {
		t.Errorf("current code after drifted ones: %v", err)
	}
	// An old code that was used is "already used", not a clock problem.
	e.clk.Advance(5 * totp.Period)
	wantCode(t, f.Verify(ctx, p.Account.ID, totp.Code(secret, now)), apperr.TokenUsed)
}

// TestTOTPConcurrentReplay: 20 requests with the same code at once, exactly
// one wins (the check-and-set of the time step is atomic).
func TestTOTPConcurrentReplay(t *testing.T) {
	for _, attempts := range []int{100, 5} { // without and with the throttle in play
		e := newEnv(t, func(c *mfa.Config) { c.CodeAttempts = attempts })
		p := e.user(false)
		secret, _ := e.enrolTOTP(p)
		code := totp.Code(secret, totp.Step(e.clk.Now()))
		f := e.factor(mfa.MethodTOTP)
		var wg sync.WaitGroup
		errs := make([]error, 20)
		for i := range errs {
			wg.Go(func() { errs[i] = f.Verify(ctx, p.Account.ID, code) })
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch apperr.CodeOf(err) {
			case "":
				wins++
			case apperr.TokenUsed, apperr.RateLimited:
			default:
				t.Errorf("unexpected error %v", err)
			}
		}
		if wins != 1 {
			t.Errorf("attempts=%d: %d of 20 concurrent requests with one code succeeded, want exactly 1", attempts, wins)
		}
	}
}

// TestTOTPThrottle: after 5 attempts in 15 minutes even the right code
// waits; the pause ends by itself and a success clears the count.
func TestTOTPThrottle(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	secret, _ := e.enrolTOTP(p)
	f := e.factor(mfa.MethodTOTP)
	e.clk.Set(start.Add(15 * time.Minute)) // start of a fresh 15-minute window
	wrong := func() string { return totp.Code(secret, totp.Step(e.clk.Now())+20) }
	for i := range 5 {
		wantCode(t, f.Verify(ctx, p.Account.ID, wrong()), apperr.TokenInvalid)
		_ = i
	}
	right := totp.Code(secret, totp.Step(e.clk.Now()))
	ae := wantCode(t, f.Verify(ctx, p.Account.ID, right), apperr.RateLimited)
	if ae.RetryAfter != 15*time.Minute {
		t.Errorf("RetryAfter = %v, want 15m (a fresh window)", ae.RetryAfter)
	}
	wantCode(t, f.Verify(ctx, p.Account.ID, right), apperr.RateLimited)
	if n := strings.Count(strings.Join(e.eventTypes(), " "), mfa.EventCodesThrottled); n != 1 {
		t.Errorf("%d throttle events, want 1", n)
	}
	// Throttling is per account.
	bob := e.principal("acct-bob", "bob@example.com", "user", false)
	bobSecret, _ := e.enrolTOTP(bob)
	if err := f.Verify(ctx, bob.Account.ID, totp.Code(bobSecret, totp.Step(e.clk.Now()))); err != nil {
		t.Errorf("bob throttled by alice's attempts: %v", err)
	}

	e.clk.Advance(15 * time.Minute)
	if err := f.Verify(ctx, p.Account.ID, totp.Code(secret, totp.Step(e.clk.Now()))); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	// The success reset the count: four wrong codes and a right one pass.
	for range 4 {
		wantCode(t, f.Verify(ctx, p.Account.ID, wrong()), apperr.TokenInvalid)
	}
	e.clk.Advance(totp.Period)
	if err := f.Verify(ctx, p.Account.ID, totp.Code(secret, totp.Step(e.clk.Now()))); err != nil {
		t.Errorf("after reset: %v", err)
	}
}

// TestTOTPWithOathtool: the reference client, given the manual key from the
// enrolment page, produces the codes that enrol and then sign in.
func TestTOTPWithOathtool(t *testing.T) {
	bin := testenv.Oathtool(t)
	e := newEnv(t)
	p := e.user(false)
	en, err := e.svc.BeginTOTP(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	oath := func() string {
		out, err := exec.Command(bin, "--totp", "-b", strings.ReplaceAll(en.ManualKey, " ", ""),
			"--now", e.clk.Now().Format("2006-01-02 15:04:05 UTC")).Output()
		if err != nil {
			t.Fatalf("oathtool: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	if _, err := e.svc.ConfirmTOTP(ctx, p, oath(), e.client); err != nil {
		t.Fatalf("enrol with oathtool's code: %v", err)
	}
	f := e.factor(mfa.MethodTOTP)
	wantCode(t, f.Verify(ctx, p.Account.ID, oath()), apperr.TokenUsed)
	e.clk.Advance(time.Minute)
	code := oath()
	if err := f.Verify(ctx, p.Account.ID, code); err != nil {
		t.Fatalf("sign in with oathtool's code: %v", err)
	}
	wantCode(t, f.Verify(ctx, p.Account.ID, code), apperr.TokenUsed)
}

// TestConfirmRollsBack: when the audit write fails, enrolment does not
// happen (the event and the change commit together).
func TestConfirmRollsBack(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	en, _ := e.svc.BeginTOTP(ctx, p)
	secret, _ := totp.ParseSecret(en.ManualKey)
	e.rec.Fail = errors.New("audit log down")
	_, err := e.svc.ConfirmTOTP(ctx, p, totp.Code(secret, totp.Step(e.clk.Now())), e.client)
	wantCode(t, err, apperr.Internal)
	if ok, _ := e.factor(mfa.MethodTOTP).Enrolled(ctx, p.Account.ID); ok {
		t.Error("enrolled although the audit write failed")
	}
	if n, _ := e.svc.BackupCodesRemaining(ctx, p.Account.ID); n != 0 {
		t.Errorf("%d backup codes kept from a rolled-back enrolment", n)
	}
	e.rec.Fail = nil
	if _, err := e.svc.ConfirmTOTP(ctx, p, totp.Code(secret, totp.Step(e.clk.Now())), e.client); err != nil {
		t.Errorf("retry: %v", err)
	}
}

func TestRemoveTOTP(t *testing.T) {
	e := newEnv(t)
	p := e.user(false)
	e.enrolTOTP(p)
	wantCode(t, e.svc.RemoveTOTP(ctx, p, e.client), apperr.StepUpNeeded)
	if err := e.svc.RemoveTOTP(ctx, e.user(true), e.client); err != nil {
		t.Fatal(err)
	}
	evs := e.events()
	last := evs[len(evs)-1]
	if last.Type != mfa.EventTOTPRemoved || !last.Notify || !last.LastFactorRemoved || !strings.Contains(last.Summary, "no longer has two-factor") {
		t.Errorf("removal event %+v", last)
	}
	if n, _ := e.svc.BackupCodesRemaining(ctx, p.Account.ID); n != 0 {
		t.Errorf("backup codes survive the last factor: %d", n)
	}
	if ms, _ := e.svc.EnrolledMethods(ctx, p.Account.ID); len(ms) != 0 {
		t.Errorf("methods %v", ms)
	}
	wantCode(t, e.svc.RemoveTOTP(ctx, e.user(true), e.client), apperr.NotFound)
	// The first factor again needs no step-up: there is nothing to step up with.
	e.enrolTOTP(e.user(false))
}
