package server_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/mfa/totp"
	"github.com/moat-dev/moat/internal/recovery/recoverytest"
	"github.com/moat-dev/moat/internal/server"
	"github.com/moat-dev/moat/internal/server/servertest"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/testenv/chrome"
)

// TestBrowserRecoveryFullPath is the whole recovery of a lost second
// factor in real Chromium, through the full server:
//
//  1. Ursula has an authenticator app. She signs in with her password, and
//     at the second-factor prompt follows "open a recovery case", answers
//     the questions, uploads a PNG and sees her case's reference.
//  2. Two staff members, created as `moat admin create` does, register a
//     security key (the platform makes staff do that first; until they
//     sign in with it the console stays closed), sign in with it and
//     approve the case in the console. The first one's second approval,
//     from a page opened before the first, is refused.
//  3. The fake clock moves past the 72-hour waiting period and the
//     recovery timer runs.
//  4. Ursula signs in with the password alone and is sent to set up a new
//     second factor; she enrols an authenticator app (oathtool when
//     MOAT_TEST_OATHTOOL is set, else moat's own TOTP code), and her next
//     sign-in asks for it.
//
// Each person has their own browser profile (cookies) and their own
// DevTools virtual authenticator (security key).
func TestBrowserRecoveryFullPath(t *testing.T) {
	// A TOTP step boundary, so that "the next code" is one step on.
	clk := clock.NewFake(time.Now().Truncate(30 * time.Second))
	// New-device approval has its own browser test.
	base, srv := servertest.Start(t, clk, func(c *config.Config) { c.Security.DeviceApproval = false })
	ctx := chrome.Start(t, 4*time.Minute)
	code := totpCoder(t, clk)

	// Ursula: an account with an authenticator app.
	const pw = "lantern-quarry-velvet-42"
	if _, err := srv.Accounts().CreateConfirmedUser(t.Context(), "ursula@example.com", pw, store.RoleUser, "cli"); err != nil {
		t.Fatal(err)
	}
	ursula := &browserUser{t: t, base: base, email: "ursula@example.com", password: pw, ctx: chrome.Profile(t, ctx)}
	ursula.signInTo("/account")
	secret := ursula.enrolApp(code)
	ursula.signOut()

	// She lost the phone with the app. Password, then the recovery case
	// from the second-factor prompt.
	clk.Advance(30 * time.Second)
	ursula.signInTo("/login/factor")
	ursula.sees("Code from your authenticator app", "open a recovery case")
	ursula.submit(`a[href="/recovery/new"]`, "/recovery/new")
	ursula.sees("Recover your account")
	ursula.setValue("account_created", clk.Now().UTC().Format("2006-01"))
	ursula.fill("devices", "Chrome on Linux")
	ursula.fill("note", "My phone was stolen with the authenticator app on it.")
	doc := filepath.Join(t.TempDir(), "passport.png")
	if err := os.WriteFile(doc, recoverytest.PNG(), 0o600); err != nil {
		t.Fatal(err)
	}
	ursula.do("choose the document", chromedp.SetUploadFiles(chromedp.CSS("#document"), []string{doc}))
	ursula.submit("#recovery-form button[type=submit]", "/recovery/status")
	ursula.sees("Keep this page", "Staff approvals", "0 of 2")
	reference := regexp.MustCompile(`RC-[0-9A-Z-]+`).FindString(ursula.eval(`document.querySelector('h1').innerText`))
	if reference == "" {
		t.Fatalf("no reference on the status page: %s", ursula.eval(`document.body.innerText`))
	}
	statusPath := strings.TrimPrefix(ursula.eval(`document.getElementById('status-link').href`), base)
	ursula.screenshots("recovery-status")

	// Two staff members, each with a security key.
	sam := newStaff(t, srv, base, ctx, "sam@example.com", store.RoleSupport)
	ada := newStaff(t, srv, base, ctx, "ada@example.com", store.RoleAdmin)

	// Sam finds the case in the queue and opens it; he also has it open
	// in another tab, opened before he approves.
	sam.open("/admin")
	sam.sees("Recovery cases", reference, "0 of 2")
	sam.screenshots("admin-queue")
	sam.submit(`#cases a`, "")
	casePath := strings.TrimPrefix(sam.location(), base)
	if !strings.HasPrefix(casePath, "/admin/cases/") {
		t.Fatalf("the queue's link goes to %s", casePath)
	}
	sam.sees(reference, "ursula@example.com", "Answers and the account's history", "Matches", "PNG image", "Approve")
	if n := sam.eval(`String(document.querySelectorAll('#answers .badge--known').length)`); n == "0" {
		t.Error("no answer is highlighted as a match")
	}
	sam.screenshots("admin-case")
	// The document downloads as it was uploaded.
	got := sam.eval(`(async () => {
		const r = await fetch(document.getElementById('document-link').href);
		return r.status + " " + r.headers.get("content-type") + " " + r.headers.get("content-disposition").split(";")[0] + " " + (await r.arrayBuffer()).byteLength;
	})()`)
	if want := fmt.Sprintf("200 image/png attachment %d", len(recoverytest.PNG())); got != want {
		t.Errorf("document download: %q, want %q", got, want)
	}
	stale := sam.newTab()
	stale.open(casePath)
	sam.submit("#approve button[type=submit]", casePath)
	sam.sees("Your approval is recorded", "You approved this case already", "1 of 2")
	// The stale tab's Approve button: refused.
	stale.submit("#approve button[type=submit]", casePath+"/approve")
	stale.sees("You approved this case already. A second approval must come from a different staff member.")
	if c := caseByReference(t, srv, reference); c.State != store.RecoveryOpen || c.SecondApproverID != "" {
		t.Fatalf("after Sam's second click: %s, second approver %q", c.State, c.SecondApproverID)
	}

	// Ada gives the second approval: the waiting period starts.
	ada.open(casePath)
	ada.sees("Your approval is the second")
	ada.submit("#approve button[type=submit]", casePath)
	ada.sees("approved by two staff members", "Waiting period ends")
	ursula.open(statusPath)
	ursula.sees("Waiting period ends")
	// The account page in the console shows the case and the audit trail.
	ada.submit(`a[href^="/admin/accounts/"]`, "")
	ada.sees("ursula@example.com", reference, "Audit trail", "recovery.approved")
	ada.screenshots("admin-account")

	// The waiting period passes without Ursula cancelling; the timer runs.
	clk.Advance(72*time.Hour + time.Minute)
	if _, err := srv.Recovery().Tick(t.Context()); err != nil {
		t.Fatal(err)
	}
	if c := caseByReference(t, srv, reference); c.State != store.RecoveryCompleted {
		t.Fatalf("after the waiting period: %s", c.State)
	}

	// Ursula signs in with the password alone and must set up a new
	// second factor first.
	ursula.signInTo("/account/security")
	ursula.sees("Set up a method below before you continue")
	// Every other page sends her back until she has one.
	for _, path := range []string{"/account", "/account/sessions", "/security/apikeys"} {
		ursula.open(path)
		ursula.at("/account/security")
	}
	newSecret := ursula.enrolApp(code)
	if newSecret == secret {
		t.Error("the new authenticator app has the lost one's secret")
	}
	ursula.sees("Withdrawals are paused until")
	ursula.signOut()
	clk.Advance(30 * time.Second)
	ursula.signInTo("/login/factor")
	ursula.fill("response", code(newSecret))
	ursula.submit("#factor-code button[type=submit]", "/account")
	ursula.open(statusPath)
	ursula.sees(reference)
}

// newStaff creates a staff account as `moat admin create` does and walks
// the steps it prints: sign in with the password (the console is still
// closed), register a security key in Security settings, sign out and
// sign in again with the key.
func newStaff(t *testing.T, srv *server.Server, base string, browser context.Context, email string, role store.Role) *browserUser {
	t.Helper()
	const pw = "harbour-juniper-copper-77"
	if _, err := srv.Accounts().CreateConfirmedUser(t.Context(), email, pw, role, "cli"); err != nil {
		t.Fatal(err)
	}
	u := &browserUser{t: t, base: base, email: email, password: pw, ctx: chrome.Profile(t, browser)}
	res, err := chromedp.Call(u.ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
			Transport: webauthn.AuthenticatorTransportUsb, HasResidentKey: true, HasUserVerification: true,
			IsUserVerified: true, AutomaticPresenceSimulation: true,
		},
	})
	if err != nil || res.AuthenticatorID == "" {
		t.Fatalf("addVirtualAuthenticator: %v", err)
	}

	// Staff must have a security key: the first sign-in goes to enrolment.
	u.signInTo("/account/security")
	u.open("/admin")
	u.sees("Sign in with your security key", "The support console opens only when you signed in with a security key")
	u.open("/account/security")
	u.submit("#add-key-link", "/account/security/keys/new")
	u.do("name the key", chromedp.SetValue(chromedp.CSS("#name"), "Desk key"))
	u.clickTo("#add-key button[type=submit]", "/account/security/backup-codes")
	u.submit("#codes-saved", "/account/security")
	u.signOut()

	u.signInTo("/login/factor")
	u.clickTo("#factor-key button[type=submit]", "/account")
	return u
}

// caseByReference finds a recovery case in the store.
func caseByReference(t *testing.T, srv *server.Server, ref string) store.RecoveryCase {
	t.Helper()
	cases, err := srv.Store().ListRecoveryCases(t.Context(), store.RecoveryCaseFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if c.Reference == ref {
			return c
		}
	}
	t.Fatalf("no case %s", ref)
	return store.RecoveryCase{}
}

// totpCoder returns what an authenticator app with a secret shows at the
// server's time: oathtool's code when MOAT_TEST_OATHTOOL is set, else
// moat's own.
func totpCoder(t *testing.T, clk clock.Clock) func(secret string) string {
	oathtool := os.Getenv("MOAT_TEST_OATHTOOL")
	return func(secret string) string {
		t.Helper()
		if oathtool != "" {
			out, err := exec.Command(oathtool, "--totp", "-b", secret, "--now", clk.Now().UTC().Format("2006-01-02 15:04:05 UTC")).Output()
			if err != nil {
				t.Fatalf("oathtool: %v", err)
			}
			return strings.TrimSpace(string(out))
		}
		seed, err := totp.ParseSecret(secret)
		if err != nil {
			t.Fatal(err)
		}
		return totp.Code(seed, totp.Step(clk.Now()))
	}
}

// browserUser drives one person's browser profile.
type browserUser struct {
	t               *testing.T
	base            string
	email, password string
	ctx             context.Context
}

func (u *browserUser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	u.t.Helper()
	if err := chromedp.Do(u.ctx, steps...); err != nil {
		u.t.Fatalf("%s (%s): %v", what, u.email, err)
	}
}

// newTab opens another tab in the same profile (same cookies).
func (u *browserUser) newTab() *browserUser {
	u.t.Helper()
	tab, cancel := chromedp.NewContext(u.ctx)
	u.t.Cleanup(cancel)
	v := *u
	v.ctx = tab
	return &v
}

func (u *browserUser) open(path string) {
	u.t.Helper()
	u.do("open "+path, chromedp.Navigate(u.base+path))
}

func (u *browserUser) fill(id, value string) {
	u.t.Helper()
	u.do("fill "+id, chromedp.SendKeys(chromedp.ID(id), value))
}

func (u *browserUser) setValue(id, value string) {
	u.t.Helper()
	u.do("set "+id, chromedp.SetValue(chromedp.ID(id), value))
}

// submit presses a button or link, waits for the page that answers and
// checks it is at path ("" for anywhere).
func (u *browserUser) submit(sel, path string) {
	u.t.Helper()
	if _, err := chromedp.Run(u.ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel)))); err != nil {
		u.t.Fatalf("submit %s (%s): %v", sel, u.email, err)
	}
	if path != "" {
		u.at(path)
	}
}

// clickTo presses a button that starts a WebAuthn ceremony (the page's
// script navigates when it ends) and waits until the page is at path.
func (u *browserUser) clickTo(sel, path string) {
	u.t.Helper()
	u.do("click "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
	deadline := time.Now().Add(30 * time.Second)
	for {
		loc, err := chromedp.Run(u.ctx, chromedp.Location())
		if err == nil {
			if p, _, _ := strings.Cut(strings.TrimPrefix(loc, u.base), "?"); p == path {
				if err := chromedp.Do(u.ctx, chromedp.WaitReady(chromedp.CSS("body"))); err == nil {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("%s: not at %s but %s (%v); page says:\n%s", u.email, path, loc, err, u.eval(`document.body ? document.body.innerText : ""`))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (u *browserUser) location() string {
	u.t.Helper()
	loc, err := chromedp.Run(u.ctx, chromedp.Location())
	if err != nil {
		u.t.Fatal(err)
	}
	return loc
}

func (u *browserUser) at(path string) {
	u.t.Helper()
	got := strings.TrimPrefix(u.location(), u.base)
	if p, _, _ := strings.Cut(got, "?"); p != path {
		u.t.Fatalf("%s: at %s, want %s; page says:\n%s", u.email, got, path, u.eval(`document.body.innerText`))
	}
}

func (u *browserUser) eval(js string) string {
	u.t.Helper()
	s, err := chromedp.Run(u.ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		u.t.Fatalf("evaluate %s: %v", js, err)
	}
	return s
}

// sees checks the page's visible text.
func (u *browserUser) sees(want ...string) {
	u.t.Helper()
	text := u.eval(`document.body.innerText`)
	for _, w := range want {
		if !strings.Contains(text, w) {
			u.t.Errorf("%s: page lacks %q; it says:\n%s", u.email, w, text)
		}
	}
}

// signInTo types the e-mail address and password on /login and expects
// to land at path.
func (u *browserUser) signInTo(path string) {
	u.t.Helper()
	u.open("/login")
	u.fill("email", u.email)
	u.fill("password", u.password)
	u.submit(`form[action="/login"] button[type=submit]`, path)
}

func (u *browserUser) signOut() {
	u.t.Helper()
	u.submit(`form[action="/logout"] button[type=submit]`, "/login")
}

// enrolApp sets up an authenticator app on the Security page with code
// and returns its secret.
func (u *browserUser) enrolApp(code func(string) string) string {
	u.t.Helper()
	u.open("/account/security")
	u.submit(`form[action="/account/security/app/begin"] button[type=submit]`, "/account/security/app")
	secret := strings.ReplaceAll(u.eval(`document.getElementById('totp-key').innerText`), " ", "")
	u.fill("code", code(secret))
	u.submit("#totp-confirm button[type=submit]", "/account/security/backup-codes")
	u.submit("#codes-saved", "/account/security")
	u.sees("An authenticator app is set up")
	return secret
}

// screenshots saves the current page as <name>-desktop.png and
// <name>-phone.png when MOAT_TEST_SCREENSHOT names a directory.
func (u *browserUser) screenshots(name string) {
	u.t.Helper()
	dir := os.Getenv("MOAT_TEST_SCREENSHOT")
	if dir == "" {
		return
	}
	for _, v := range []struct {
		name string
		w, h int64
	}{{name + "-desktop.png", 1280, 900}, {name + "-phone.png", 390, 844}} {
		u.do("viewport", chromedp.EmulateViewport(v.w, v.h))
		png, err := chromedp.Run(u.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			u.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, v.name), png, 0o644); err != nil {
			u.t.Fatal(err)
		}
	}
	u.do("viewport", chromedp.ResetViewport())
}
