package web_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/moat-dev/moat/internal/server/servertest"
	"github.com/moat-dev/moat/internal/testenv/chrome"
)

// TestBrowser drives real headless Chromium through the full server in
// development mode: sign up with the form, confirm from the dev mailbox,
// sign in and approve the device with the e-mailed code, see the sign-in
// on the account page flagged as a new device, sign in from a second
// browser profile (another device) approved by the e-mailed link, revoke
// that session from the first, and see the second signed out.
//
// Set MOAT_TEST_CHROMIUM to the chromium binary (e.g. /usr/bin/chromium).
// Set MOAT_TEST_SCREENSHOT to a directory to get PNG screenshots of the
// account page (desktop and phone width) for a look at the design.
func TestBrowser(t *testing.T) {
	base, _ := servertest.Start(t, nil)
	first := chrome.Start(t, 2*time.Minute)
	u := &user{t: t, base: base, email: "ada@example.com", password: "lantern-quarry-velvet-42"}

	// Sign up through the form.
	u.open(first, "/signup")
	u.fill(first, "email", u.email)
	u.fill(first, "password", u.password)
	u.submit(first, "form.form button[type=submit]", "/signup/check-email")
	u.sees(first, "Check your e-mail")

	// The confirmation link from the dev mailbox shows a button; pressing
	// it confirms.
	u.open(first, "/dev/mailbox")
	confirm := u.eval(first, `document.querySelector('a[href*="/confirm?token="]').href`)
	u.open(first, strings.TrimPrefix(confirm, base))
	u.sees(first, "Confirm your e-mail address")
	u.submit(first, "form button[type=submit]", "/confirm")
	u.sees(first, "Your e-mail address is confirmed")

	// Sign in: a new browser waits for device approval; the code comes by
	// e-mail.
	u.signIn(first)
	u.sees(first, "Approve this device")
	u.screenshots(first, "device")
	code := u.mailedCode(first)
	u.open(first, "/login/device")
	u.fill(first, "code", code)
	u.submit(first, `form[action="/login/device"] button[type=submit]`, "/account")

	// The account page lists this sign-in and flags the device as new.
	u.sees(first, "Recent activity", "Signed in", "New device", "this device")
	if got := u.eval(first, `document.querySelector('#this-device').parentElement.innerText`); !strings.Contains(got, "New device") {
		t.Errorf("this-device panel does not flag a new device: %q", got)
	}
	u.screenshots(first, "account")

	// A second device: a separate browser profile with its own cookies.
	second, cancelSecond := chromedp.NewContext(first, chromedp.WithNewBrowserContext())
	defer cancelSecond()
	u.signIn(second)
	u.sees(second, "Approve this device")
	// The owner approves it from the e-mail's link, opened in the first
	// browser; the second then checks again.
	u.open(first, "/dev/mailbox")
	approve := u.eval(first, `document.querySelector('a[href*="/login/approve?token="]').href`)
	u.open(first, strings.TrimPrefix(approve, base))
	u.sees(first, "Approve a new sign-in?")
	u.submit(first, "form button[type=submit]", "/login/approve")
	u.sees(first, "The new device is approved")
	u.submit(second, `form[action="/login/device/status"] button[type=submit]`, "/account")
	u.sees(second, "Recent activity")

	// The first browser sees both sessions and signs out the other.
	u.open(first, "/account/sessions")
	u.sees(first, "this session")
	if n := u.eval(first, `String(document.querySelectorAll('form[action="/account/sessions/revoke"]').length)`); n != "1" {
		t.Fatalf("want one other session to sign out, found %s", n)
	}
	u.submit(first, `form[action="/account/sessions/revoke"] button[type=submit]`, "/account/sessions")
	u.sees(first, "That session is signed out")
	u.screenshots(first, "sessions")

	// The second browser's next page load finds itself signed out.
	u.open(second, "/account")
	u.at(second, "/login")
	u.sees(second, "Your session has ended")

	// The first is still signed in.
	u.open(first, "/account")
	u.at(first, "/account")
}

// user drives one person's browsers.
type user struct {
	t               *testing.T
	base            string
	email, password string
}

func (u *user) do(ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	u.t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		u.t.Fatalf("%s: %v", what, err)
	}
}

func (u *user) open(ctx context.Context, path string) {
	u.t.Helper()
	u.do(ctx, "open "+path, chromedp.Navigate(u.base+path))
}

func (u *user) fill(ctx context.Context, id, value string) {
	u.t.Helper()
	u.do(ctx, "fill "+id, chromedp.SendKeys(chromedp.ID(id), value))
}

// submit presses a form's button, waits for the page that answers, and
// checks it is at path.
func (u *user) submit(ctx context.Context, button, path string) {
	u.t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(button)))); err != nil {
		u.t.Fatalf("submit %s: %v", button, err)
	}
	u.at(ctx, path)
}

func (u *user) at(ctx context.Context, path string) {
	u.t.Helper()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		u.t.Fatal(err)
	}
	got := strings.TrimPrefix(loc, u.base)
	if p, _, _ := strings.Cut(got, "?"); p != path {
		u.t.Fatalf("at %s, want %s; page says:\n%s", got, path, u.eval(ctx, `document.body.innerText`))
	}
}

func (u *user) eval(ctx context.Context, js string) string {
	u.t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		u.t.Fatalf("evaluate %s: %v", js, err)
	}
	return s
}

// sees checks the page's visible text.
func (u *user) sees(ctx context.Context, want ...string) {
	u.t.Helper()
	text := u.eval(ctx, `document.body.innerText`)
	for _, w := range want {
		if !strings.Contains(text, w) {
			u.t.Errorf("page lacks %q; it says:\n%s", w, text)
		}
	}
}

func (u *user) signIn(ctx context.Context) {
	u.t.Helper()
	u.open(ctx, "/login")
	u.fill(ctx, "email", u.email)
	u.fill(ctx, "password", u.password)
	u.submit(ctx, "form.form button[type=submit]", "/login/device")
}

var mailedCodeRe = regexp.MustCompile(`enter this code on the sign-in page:\s+(\d{6})`)

// mailedCode reads the newest device-approval code from the dev mailbox.
func (u *user) mailedCode(ctx context.Context) string {
	u.t.Helper()
	u.open(ctx, "/dev/mailbox")
	m := mailedCodeRe.FindStringSubmatch(u.eval(ctx, `document.body.innerText`))
	if m == nil {
		u.t.Fatal("no device code in the dev mailbox")
	}
	return m[1]
}

// screenshots saves the current page as <name>-desktop.png and
// <name>-phone.png when MOAT_TEST_SCREENSHOT names a directory.
func (u *user) screenshots(ctx context.Context, name string) {
	u.t.Helper()
	dir := os.Getenv("MOAT_TEST_SCREENSHOT")
	if dir == "" {
		return
	}
	for _, v := range []struct {
		name string
		w, h int64
	}{{name + "-desktop.png", 1280, 900}, {name + "-phone.png", 390, 844}} {
		u.do(ctx, "viewport", chromedp.EmulateViewport(v.w, v.h))
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			u.t.Fatal(err)
		}
		if err := os.WriteFile(dir+"/"+v.name, png, 0o644); err != nil {
			u.t.Fatal(err)
		}
	}
	u.do(ctx, "viewport", chromedp.ResetViewport())
}
