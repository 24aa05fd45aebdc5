package account

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/store"
)

// Wrong password and unknown address must be indistinguishable: the same
// code and message, and the same throttling answers after that.
func TestSignInEnumeration(t *testing.T) {
	run := func(addr string) []string {
		e := newEnv(t)
		e.signUpConfirmed(e.email, goodPassword)
		var out []string
		for i := range 14 {
			_, err := e.svc.SignIn(e.ctx, addr, "not the password at all", client("198.51.100.7", ""))
			ae, ok := apperr.As(err)
			if !ok {
				t.Fatalf("attempt %d: %v", i, err)
			}
			out = append(out, fmt.Sprintf("%s|%s|%s", ae.Code, ae.Message, ae.RetryAfter))
			if ae.RetryAfter > 0 && ae.Code == apperr.RateLimited {
				e.clk.Advance(ae.RetryAfter)
			}
		}
		return out
	}
	known, unknown := run("jane@example.com"), run("nobody@example.com")
	if known[0] != "invalid_credentials|Invalid username or password|0s" {
		t.Fatalf("first answer = %q", known[0])
	}
	for i := range known {
		if known[i] != unknown[i] {
			t.Errorf("attempt %d differs:\n  existing: %s\n  unknown:  %s", i, known[i], unknown[i])
		}
	}
}

func TestThrottlingDelayThenTemporaryLock(t *testing.T) {
	e := newEnv(t)
	a := e.signUpConfirmed(e.email, goodPassword)
	stranger := client("198.51.100.7", "")
	fail := func() error {
		_, err := e.svc.SignIn(e.ctx, e.email, "not the password at all", stranger)
		return err
	}

	// Three free failures.
	for i := range 3 {
		wantCode(t, fail(), apperr.BadCredential)
		_ = i
	}
	// Then each failure makes the next attempt wait twice as long.
	wantCode(t, fail(), apperr.BadCredential) // 4th
	for n, wait := 4, 2*time.Second; n < 10; n, wait = n+1, wait*2 {
		ae := wantCode(t, fail(), apperr.RateLimited)
		if ae.RetryAfter != wait {
			t.Fatalf("after %d failures RetryAfter = %v, want %v", n, ae.RetryAfter, wait)
		}
		// Even the right password waits: the delay is checked first.
		_, err := e.svc.SignIn(e.ctx, e.email, goodPassword, stranger)
		wantCode(t, err, apperr.RateLimited)
		e.clk.Advance(wait - time.Second)
		wantCode(t, fail(), apperr.RateLimited)
		e.clk.Advance(time.Second)
		wantCode(t, fail(), apperr.BadCredential) // failure n+1
	}

	// The 10th failure paused the account for 15 minutes; the owner got
	// exactly one e-mail however often the stranger tries.
	for range 5 {
		ae := wantCode(t, fail(), apperr.AccountLocked)
		if ae.RetryAfter != 15*time.Minute {
			t.Fatalf("lock RetryAfter = %v, want 15m", ae.RetryAfter)
		}
	}
	_, err := e.svc.SignIn(e.ctx, e.email, goodPassword, stranger)
	wantCode(t, err, apperr.AccountLocked)
	if n := e.mailsWith(e.email, subjLocked); n != 1 {
		t.Fatalf("%d sign-in-paused e-mails, want exactly 1", n)
	}
	body := e.lastMail(e.email, subjLocked).Body
	if !strings.Contains(body, "198.51.100.7") {
		t.Errorf("paused e-mail does not name the IP:\n%s", body)
	}
	e.wantAudit(a.ID, "signin.failed", "signin.locked")

	// Never permanent: the pause ends after LockFor.
	e.clk.Advance(15*time.Minute - time.Second)
	_, err = e.svc.SignIn(e.ctx, e.email, goodPassword, stranger)
	wantCode(t, err, apperr.AccountLocked)
	e.clk.Advance(time.Second)
	res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, stranger)
	if err != nil {
		t.Fatalf("after the pause: %v", err)
	}
	if res.Step != StepDeviceApproval {
		t.Fatalf("after the pause: step %s", res.Step)
	}
	// A new window: three free attempts again.
	for range 3 {
		wantCode(t, fail(), apperr.BadCredential)
	}
	if n := e.mailsWith(e.email, subjLocked); n != 1 {
		t.Fatalf("%d sign-in-paused e-mails after the pause, want 1", n)
	}
}

// A correct password alone does not wipe the failures: only a completed
// sign-in does. Otherwise an attacker who has the password could guess
// device codes or second factors forever, five at a time.
func TestOnlyCompletedSignInClearsFailures(t *testing.T) {
	e := newEnv(t)
	e.signUpConfirmed(e.email, goodPassword)
	c := client("198.51.100.7", "")
	for range 3 {
		_, err := e.svc.SignIn(e.ctx, e.email, "not the password at all", c)
		wantCode(t, err, apperr.BadCredential)
	}
	res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	if err != nil || res.Step != StepDeviceApproval {
		t.Fatalf("right password: %+v, %v", res, err)
	}
	_, err = e.svc.SignIn(e.ctx, e.email, "not the password at all", c)
	wantCode(t, err, apperr.BadCredential) // the 4th failure
	_, err = e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	wantCode(t, err, apperr.RateLimited)

	// Completing a sign-in clears them.
	e.clk.Advance(2 * time.Second)
	e.signIn(e.email, goodPassword, c)
	for range 3 {
		_, err := e.svc.SignIn(e.ctx, e.email, "not the password at all", c)
		wantCode(t, err, apperr.BadCredential)
	}
	_, err = e.svc.SignIn(e.ctx, e.email, "not the password at all", c)
	wantCode(t, err, apperr.BadCredential)
}

// A stranger hammering the address pauses it for strangers only: the
// owner's approved device still gets in.
func TestOwnerDeviceNotLockedOut(t *testing.T) {
	e := newEnv(t)
	e.signUpConfirmed(e.email, goodPassword)
	owner := client("192.0.2.10", "")
	own := e.signIn(e.email, goodPassword, owner)
	owner.DeviceToken = own.DeviceToken

	stranger := client("198.51.100.7", "")
	for failures := 0; failures < 10; {
		_, err := e.svc.SignIn(e.ctx, e.email, "not the password at all", stranger)
		switch ae, _ := apperr.As(err); ae.Code {
		case apperr.BadCredential:
			failures++
		case apperr.RateLimited:
			e.clk.Advance(ae.RetryAfter)
		default:
			t.Fatalf("stranger attempt: %v", err)
		}
	}
	_, err := e.svc.SignIn(e.ctx, e.email, goodPassword, stranger)
	wantCode(t, err, apperr.AccountLocked)

	// A device token the account does not know is no way around it.
	_, err = e.svc.SignIn(e.ctx, e.email, goodPassword, client("198.51.100.7", "forged-device-token"))
	wantCode(t, err, apperr.AccountLocked)

	// The owner's device: a typo is just a typo, the password works.
	_, err = e.svc.SignIn(e.ctx, e.email, "typo in the password", owner)
	wantCode(t, err, apperr.BadCredential)
	res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, owner)
	if err != nil || res.Step != StepDone {
		t.Fatalf("owner on an approved device during the pause: %+v, %v", res, err)
	}
	// And the owner's success does not lift the stranger's pause.
	_, err = e.svc.SignIn(e.ctx, e.email, goodPassword, stranger)
	wantCode(t, err, apperr.AccountLocked)
}

func TestPerIPLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.IPLimit = 5 })
	e.signUpConfirmed(e.email, goodPassword)
	botnet := client("203.0.113.50", "")
	for i := range 5 {
		_, err := e.svc.SignIn(e.ctx, fmt.Sprintf("victim%d@example.com", i), "guess guess guess", botnet)
		wantCode(t, err, apperr.BadCredential)
	}
	_, err := e.svc.SignIn(e.ctx, e.email, goodPassword, botnet)
	ae := wantCode(t, err, apperr.RateLimited)
	if ae.RetryAfter <= 0 || ae.RetryAfter > 15*time.Minute {
		t.Errorf("RetryAfter = %v", ae.RetryAfter)
	}
	// Another address is not affected, and the limit ends with the window.
	if _, err := e.svc.SignIn(e.ctx, e.email, goodPassword, client("192.0.2.10", "")); err != nil {
		t.Fatalf("other IP: %v", err)
	}
	e.clk.Advance(ae.RetryAfter)
	if _, err := e.svc.SignIn(e.ctx, e.email, goodPassword, botnet); err != nil {
		t.Fatalf("next window: %v", err)
	}
}

func TestDeviceApprovalCode(t *testing.T) {
	e := newEnv(t)
	a := e.signUpConfirmed(e.email, goodPassword)
	c := client("192.0.2.10", "")

	res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	if err != nil {
		t.Fatal(err)
	}
	code := mailCode(t, e.lastMail(e.email, subjDeviceCode).Body)
	wrong := fmt.Sprintf("%06d", (atoi(code)+1)%1000000)
	for i := 1; i <= 4; i++ {
		_, err := e.svc.ApproveDevice(e.ctx, res.PendingToken, wrong, c)
		ae := wantCode(t, err, apperr.TokenInvalid)
		if ae.Field != "code" || !strings.Contains(ae.Message, fmt.Sprintf("%d tr", 5-i)) {
			t.Errorf("wrong code %d: field %q message %q", i, ae.Field, ae.Message)
		}
	}
	_, err = e.svc.ApproveDevice(e.ctx, res.PendingToken, wrong, c)
	wantCode(t, err, apperr.TokenExpired)
	// Voided: the right code no longer helps, nor does polling.
	_, err = e.svc.ApproveDevice(e.ctx, res.PendingToken, code, c)
	wantCode(t, err, apperr.TokenExpired)
	_, err = e.svc.PendingStatus(e.ctx, res.PendingToken, c)
	wantCode(t, err, apperr.TokenExpired)
	if n := len(e.liveSessions(a.ID)); n != 0 {
		t.Fatalf("%d sessions after a voided sign-in", n)
	}
	e.wantAudit(a.ID, "signin.voided")

	// The wrong codes count as failed sign-ins of the address: knowing the
	// password does not buy unlimited guesses at codes.
	_, err = e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	ae := wantCode(t, err, apperr.RateLimited)
	e.clk.Advance(ae.RetryAfter)

	// A new sign-in gets a new code; the old code is bound to the old one.
	res, err = e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	if err != nil {
		t.Fatal(err)
	}
	code2 := mailCode(t, e.lastMail(e.email, subjDeviceCode).Body)
	if code2 != code {
		_, err = e.svc.ApproveDevice(e.ctx, res.PendingToken, code, c)
		wantCode(t, err, apperr.TokenInvalid)
	}
	done, err := e.svc.ApproveDevice(e.ctx, res.PendingToken, code2[:3]+" "+code2[3:], c)
	if err != nil {
		t.Fatalf("right code (typed with a space): %v", err)
	}
	if done.Step != StepDone || !done.Session.NewDevice {
		t.Fatalf("right code: %+v", done)
	}
	// The device is now known and approved.
	res, err = e.svc.SignIn(e.ctx, e.email, goodPassword, client("192.0.2.10", done.Session.DeviceToken))
	if err != nil || res.Step != StepDone {
		t.Fatalf("sign-in from the approved device: %+v, %v", res, err)
	}

	// A pending sign-in expires after DeviceCodeTTL.
	res, err = e.svc.SignIn(e.ctx, e.email, goodPassword, client("192.0.2.99", ""))
	if err != nil {
		t.Fatal(err)
	}
	code3 := mailCode(t, e.lastMail(e.email, subjDeviceCode).Body)
	e.clk.Advance(15 * time.Minute)
	_, err = e.svc.ApproveDevice(e.ctx, res.PendingToken, code3, c)
	wantCode(t, err, apperr.TokenExpired)

	_, err = e.svc.ApproveDevice(e.ctx, "no-such-pending", code3, c)
	wantCode(t, err, apperr.Unauthorized)
}

func atoi(s string) int {
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}

func TestDeviceApprovalLink(t *testing.T) {
	e := newEnv(t)
	a := e.signUpConfirmed(e.email, goodPassword)
	c := client("192.0.2.10", "")
	res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, c)
	if err != nil {
		t.Fatal(err)
	}
	link := linkToken(t, e.lastMail(e.email, subjDeviceCode).Body, PathApproveDevice)

	st, err := e.svc.PendingStatus(e.ctx, res.PendingToken, c)
	if err != nil || st.Step != StepDeviceApproval {
		t.Fatalf("before the link: %+v, %v", st, err)
	}
	phone := Client{IP: "192.0.2.77", UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1", Kind: "web"}
	if err := e.svc.ApproveDeviceLink(e.ctx, link, phone); err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.svc.ApproveDeviceLink(e.ctx, link, phone), apperr.TokenUsed)
	wantCode(t, e.svc.ApproveDeviceLink(e.ctx, "made-up", phone), apperr.TokenInvalid)
	if n := len(e.liveSessions(a.ID)); n != 0 {
		t.Fatal("following the link issued a session (it must go to the browser that signed in)")
	}

	st, err = e.svc.PendingStatus(e.ctx, res.PendingToken, c)
	if err != nil {
		t.Fatal(err)
	}
	if st.Step != StepDone || st.Session == nil || st.Session.DeviceToken == "" {
		t.Fatalf("after the link: %+v", st)
	}
	if _, err := e.svc.Authenticate(e.ctx, st.Session.Token, c); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.PendingStatus(e.ctx, res.PendingToken, c)
	wantCode(t, err, apperr.TokenUsed)
	e.wantAudit(a.ID, "device.approved", "signin.success")

	// An expired link.
	if _, err := e.svc.SignIn(e.ctx, e.email, goodPassword, client("192.0.2.11", "")); err != nil {
		t.Fatal(err)
	}
	link = linkToken(t, e.lastMail(e.email, subjDeviceCode).Body, PathApproveDevice)
	e.clk.Advance(16 * time.Minute)
	wantCode(t, e.svc.ApproveDeviceLink(e.ctx, link, phone), apperr.TokenExpired)
}

// The flow with device approval and a second factor, driven in every order
// of up to three calls (then finished), against a model of what may
// happen. Whatever the order, a session is issued only by a successful
// VerifySecondFactor after the device was approved, exactly once, and the
// factor is not even asked before the device is approved. It holds whether
// the factor is asked because it is enrolled or because the sign-in policy
// says so.
func TestStateMachineCannotBeSkipped(t *testing.T) {
	t.Run("enrolled factor", func(t *testing.T) { stateMachineCannotBeSkipped(t, nil) })
	t.Run("sign-in policy", func(t *testing.T) {
		pol := newFakePolicy()
		pol.all = true
		stateMachineCannotBeSkipped(t, func(d *Deps) { d.SignInPolicy = pol })
	})
}

func stateMachineCannotBeSkipped(t *testing.T, deps func(*Deps)) {
	ops := []string{"status", "code", "link", "factor_right", "factor_wrong"}
	var seqs [][]string
	var gen func(prefix []string)
	gen = func(prefix []string) {
		if len(prefix) > 0 {
			seqs = append(seqs, append([]string(nil), prefix...))
		}
		if len(prefix) == 3 {
			return
		}
		for _, op := range ops {
			gen(append(prefix, op))
		}
	}
	gen(nil)

	e := newEnvWith(t, deps, func(c *Config) { c.IPLimit = 100000 })
	f := newFakeFactor("totp")
	e.svc.RegisterFactor(f)
	a := e.signUpConfirmed(e.email, goodPassword)
	f.enroll(a.ID)

	for i, seq := range seqs {
		c := client(fmt.Sprintf("10.0.%d.%d", i/250, i%250), "")
		res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, c)
		if err != nil {
			t.Fatal(err)
		}
		if res.Step != StepDeviceApproval || res.Session != nil {
			t.Fatalf("new device with a factor: first step %s", res.Step)
		}
		pending := res.PendingToken
		body := e.lastMail(e.email, subjDeviceCode).Body
		code, link := mailCode(t, body), linkToken(t, body, PathApproveDevice)
		sessionsBefore := len(e.liveSessions(a.ID))

		// The model: approved (device), moved (the stored state reached
		// second_factor), done, linkUsed.
		var approved, moved, done, linkUsed bool
		full := append(append([]string(nil), seq...), "code", "link", "status", "factor_right")
		for j, op := range full {
			calls := f.calls.Load()
			asked := false
			var got *SignInResult
			var err error
			var want apperr.Code // "" means success
			var wantStep Step
			switch op {
			case "status":
				got, err = e.svc.PendingStatus(e.ctx, pending, c)
				switch {
				case done:
					want = apperr.TokenUsed
				default:
					moved = moved || approved
					wantStep = StepDeviceApproval
					if moved {
						wantStep = StepSecondFactor
					}
				}
			case "code":
				got, err = e.svc.ApproveDevice(e.ctx, pending, code, c)
				switch {
				case done:
					want = apperr.TokenUsed
				case moved:
					want = apperr.Conflict
				default:
					approved, moved, wantStep = true, true, StepSecondFactor
				}
			case "link":
				err = e.svc.ApproveDeviceLink(e.ctx, link, c)
				switch {
				case linkUsed, done:
					want = apperr.TokenUsed
				case moved:
					want = apperr.Conflict
				default:
					approved, linkUsed = true, true
				}
			case "factor_right", "factor_wrong":
				resp := strings.TrimPrefix(op, "factor_")
				got, err = e.svc.VerifySecondFactor(e.ctx, pending, "totp", resp, c)
				switch {
				case done:
					want = apperr.TokenUsed
				case !moved:
					want = apperr.Conflict
				case resp == "wrong":
					asked, want = true, apperr.TokenInvalid
				default:
					asked, done, wantStep = true, true, StepDone
				}
			}
			where := fmt.Sprintf("sequence %v, call %d (%s)", full, j, op)
			if want != "" {
				if apperr.CodeOf(err) != want || got != nil {
					t.Fatalf("%s: got %+v, %v; want error %s", where, got, err, want)
				}
			} else {
				if err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				if op != "link" && (got.Step != wantStep || (got.Session != nil) != (wantStep == StepDone)) {
					t.Fatalf("%s: step %s (session %v), want %s", where, got.Step, got.Session != nil, wantStep)
				}
			}
			if n := f.calls.Load() - calls; (n == 1) != asked || n > 1 {
				t.Fatalf("%s: factor asked %d times, want asked=%v", where, n, asked)
			}
		}
		if n := len(e.liveSessions(a.ID)) - sessionsBefore; n != 1 {
			t.Fatalf("sequence %v issued %d sessions, want 1", full, n)
		}
	}
}

// Concurrent completions of one pending sign-in issue exactly one session.
func TestConcurrentCompletionIssuesOneSession(t *testing.T) {
	const n = 8
	t.Run("second factor", func(t *testing.T) {
		e := newEnv(t)
		f := newFakeFactor("totp")
		e.svc.RegisterFactor(f)
		a := e.signUpConfirmed(e.email, goodPassword)
		dev := e.signIn(e.email, goodPassword, client("192.0.2.10", "")).DeviceToken
		f.enroll(a.ID)
		res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, client("192.0.2.10", dev))
		if err != nil {
			t.Fatal(err)
		}
		if res.Step != StepSecondFactor || len(res.Factors) != 1 || res.Factors[0] != "totp" {
			t.Fatalf("known device with a factor: %+v", res)
		}
		before := len(e.liveSessions(a.ID))
		wins := race(n, func() (*SignInResult, error) {
			return e.svc.VerifySecondFactor(e.ctx, res.PendingToken, "totp", "right", client("192.0.2.10", dev))
		})
		if wins != 1 || len(e.liveSessions(a.ID))-before != 1 {
			t.Fatalf("%d completions succeeded, %d sessions issued; want 1 and 1", wins, len(e.liveSessions(a.ID))-before)
		}
	})
	t.Run("device code", func(t *testing.T) {
		e := newEnv(t)
		a := e.signUpConfirmed(e.email, goodPassword)
		res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, client("192.0.2.10", ""))
		if err != nil {
			t.Fatal(err)
		}
		code := mailCode(t, e.lastMail(e.email, subjDeviceCode).Body)
		wins := race(n, func() (*SignInResult, error) {
			return e.svc.ApproveDevice(e.ctx, res.PendingToken, code, client("192.0.2.10", ""))
		})
		if wins != 1 || len(e.liveSessions(a.ID)) != 1 {
			t.Fatalf("%d completions succeeded, %d sessions; want 1 and 1", wins, len(e.liveSessions(a.ID)))
		}
	})
	t.Run("link then polls", func(t *testing.T) {
		e := newEnv(t)
		a := e.signUpConfirmed(e.email, goodPassword)
		res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, client("192.0.2.10", ""))
		if err != nil {
			t.Fatal(err)
		}
		link := linkToken(t, e.lastMail(e.email, subjDeviceCode).Body, PathApproveDevice)
		if err := e.svc.ApproveDeviceLink(e.ctx, link, client("192.0.2.77", "")); err != nil {
			t.Fatal(err)
		}
		wins := race(n, func() (*SignInResult, error) {
			r, err := e.svc.PendingStatus(e.ctx, res.PendingToken, client("192.0.2.10", ""))
			if err == nil && r.Step != StepDone {
				return nil, fmt.Errorf("step %s", r.Step)
			}
			return r, err
		})
		if wins != 1 || len(e.liveSessions(a.ID)) != 1 {
			t.Fatalf("%d completions succeeded, %d sessions; want 1 and 1", wins, len(e.liveSessions(a.ID)))
		}
	})
}

// race runs fn n times at once and counts the calls that issued a session.
// Losers must fail with TokenUsed.
func race(n int, fn func() (*SignInResult, error)) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	var bad error
	startGun := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGun
			r, err := fn()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && r.Session != nil:
				wins++
			case apperr.CodeOf(err) == apperr.TokenUsed:
			default:
				bad = fmt.Errorf("unexpected outcome %+v, %v", r, err)
			}
		}()
	}
	close(startGun)
	wg.Wait()
	if bad != nil {
		return -1
	}
	return wins
}

func TestRehashOnSignIn(t *testing.T) {
	e := newEnv(t)
	imported, err := bcrypt.GenerateFromPassword([]byte(goodPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	now := e.clk.Now()
	a := store.Account{ID: "imported-1", Email: e.email, PasswordHash: string(imported), Role: store.RoleUser,
		EmailConfirmedAt: now, CreatedAt: now, UpdatedAt: now}
	if err := e.st.CreateAccount(e.ctx, a); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.SignIn(e.ctx, e.email, "wrong password for import", client("192.0.2.10", ""))
	wantCode(t, err, apperr.BadCredential)
	if got, _ := e.st.GetAccount(e.ctx, a.ID); got.PasswordHash != a.PasswordHash {
		t.Fatal("a failed sign-in replaced the hash")
	}
	e.signIn(e.email, goodPassword, client("192.0.2.10", ""))
	got, _ := e.st.GetAccount(e.ctx, a.ID)
	if !strings.HasPrefix(got.PasswordHash, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("imported bcrypt hash not replaced: %q", got.PasswordHash)
	}
	e.signIn(e.email, goodPassword, client("192.0.2.10", ""))
}

func TestSignInLockedAndUnconfirmed(t *testing.T) {
	e := newEnv(t)
	e.signUpConfirmed(e.email, goodPassword)
	if err := e.svc.Lock(e.ctx, e.email, "fraud check", "admin@example.com"); err != nil {
		t.Fatal(err)
	}
	// The lock is only revealed to someone who knows the password.
	_, err := e.svc.SignIn(e.ctx, e.email, "wrong password here", client("192.0.2.10", ""))
	wantCode(t, err, apperr.BadCredential)
	_, err = e.svc.SignIn(e.ctx, e.email, goodPassword, client("192.0.2.10", ""))
	wantCode(t, err, apperr.AccountLocked)
	if err := e.svc.Unlock(e.ctx, e.email, "admin@example.com"); err != nil {
		t.Fatal(err)
	}
	e.signIn(e.email, goodPassword, client("192.0.2.10", ""))

	_, err = e.svc.SignIn(e.ctx, "Not An Address", goodPassword, client("192.0.2.10", ""))
	wantCode(t, err, apperr.Invalid)
	_, err = e.svc.SignIn(e.ctx, e.email, strings.Repeat("x", 5000), client("192.0.2.10", ""))
	wantCode(t, err, apperr.BadCredential)
}

func TestDeviceApprovalOff(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DeviceApproval = false })
	a := e.signUpConfirmed(e.email, goodPassword)
	res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, client("192.0.2.10", ""))
	if err != nil {
		t.Fatal(err)
	}
	if res.Step != StepDone || !res.Session.NewDevice || res.Session.DeviceToken == "" {
		t.Fatalf("without device approval: %+v", res)
	}
	if e.mailsWith(e.email, subjNewSignIn) != 1 || e.mailsWith(e.email, subjDeviceCode) != 0 {
		t.Error("want a new-sign-in alert and no device code")
	}
	// A factor still applies.
	f := newFakeFactor("totp")
	e.svc.RegisterFactor(f)
	f.enroll(a.ID)
	res, err = e.svc.SignIn(e.ctx, e.email, goodPassword, client("192.0.2.11", ""))
	if err != nil || res.Step != StepSecondFactor {
		t.Fatalf("with a factor: %+v, %v", res, err)
	}
	done, err := e.svc.VerifySecondFactor(e.ctx, res.PendingToken, "totp", "right", client("192.0.2.11", ""))
	if err != nil || done.Step != StepDone || done.Session.Session.SecondFactorAt.IsZero() {
		t.Fatalf("second factor: %+v, %v", done, err)
	}
	_, err = e.svc.VerifySecondFactor(e.ctx, res.PendingToken, "sms", "right", client("192.0.2.11", ""))
	wantCode(t, err, apperr.TokenUsed)
}

func TestFactorPreferenceAndWrongAnswers(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DeviceApproval = false })
	a := e.signUpConfirmed(e.email, goodPassword)
	for _, name := range []string{"backup_code", "sms", "totp", "webauthn"} {
		f := newFakeFactor(name)
		e.svc.RegisterFactor(f)
		f.enroll(a.ID)
	}
	res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, client("192.0.2.10", ""))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(res.Factors, ","); got != "webauthn,totp,sms,backup_code" {
		t.Fatalf("factors in order %s", got)
	}
	_, err = e.svc.VerifySecondFactor(e.ctx, res.PendingToken, "carrier_pigeon", "right", client("192.0.2.10", ""))
	wantCode(t, err, apperr.Invalid)
	for i := 1; i < 5; i++ {
		_, err = e.svc.VerifySecondFactor(e.ctx, res.PendingToken, "totp", "wrong", client("192.0.2.10", ""))
		if ae := wantCode(t, err, apperr.TokenInvalid); ae.Field != "response" {
			t.Errorf("field %q", ae.Field)
		}
	}
	_, err = e.svc.VerifySecondFactor(e.ctx, res.PendingToken, "totp", "wrong", client("192.0.2.10", ""))
	wantCode(t, err, apperr.TokenExpired)
	_, err = e.svc.VerifySecondFactor(e.ctx, res.PendingToken, "totp", "right", client("192.0.2.10", ""))
	wantCode(t, err, apperr.TokenExpired)
	if n := len(e.liveSessions(a.ID)); n != 0 {
		t.Fatalf("%d sessions", n)
	}
	_, err = e.svc.SignIn(e.ctx, e.email, goodPassword, client("192.0.2.10", ""))
	wantCode(t, err, apperr.RateLimited)
	e.wantAudit(a.ID, "signin.failed", "signin.voided")
}
