package web_test

import (
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/server/servertest"
	"github.com/moat-dev/moat/internal/testenv/chrome"
)

// TestBrowserResetWithSecurityKey: an account with a security key forgets
// its password; the e-mailed link's page asks for the new password and the
// key (through the WebAuthn script), and the done page says what changed;
// the new password and the key sign in.
func TestBrowserResetWithSecurityKey(t *testing.T) {
	clk := clock.NewFake(time.Now())
	base, _ := servertest.Start(t, clk)
	ctx := chrome.Start(t, 3*time.Minute)
	chrome.EnableWebAuthn(t, ctx)
	u := &user{t: t, base: base, email: "ada@example.com", password: "lantern-quarry-velvet-42"}
	addAuthenticator(t, ctx, webauthn.AuthenticatorTransportUsb)
	u.signUpAndIn(ctx)
	u.open(ctx, "/account/security")
	u.submit(ctx, "#add-key-link", "/account/security/keys/new")
	u.do(ctx, "name the key", chromedp.SetValue(chromedp.CSS("#name"), "Desk key"))
	u.click(ctx, "#add-key button[type=submit]", "/account/security/backup-codes")
	u.submit(ctx, "#codes-saved", "/account/security")
	u.signOut(ctx)

	u.open(ctx, "/login")
	u.submit(ctx, "#forgot-link a", "/forgot")
	u.fill(ctx, "email", u.email)
	u.submit(ctx, `form[action="/forgot"] button[type=submit]`, "/forgot")
	u.sees(ctx, "Check your e-mail")
	// The link is written just after the answer (the server's background
	// work), so the mailbox may need a second look.
	var link string
	for deadline := time.Now().Add(5 * time.Second); link == ""; {
		u.open(ctx, "/dev/mailbox")
		link = u.eval(ctx, `(document.querySelector('a[href*="/reset?token="]') || {href: ""}).href`)
		if link == "" && time.Now().After(deadline) {
			t.Fatal("no reset link in the dev mailbox")
		}
	}
	u.open(ctx, link[len(base):])
	u.sees(ctx, "Choose a new password", "a•••@example.com", "Confirm with your security key or passkey", "Open a recovery case")
	u.screenshots(ctx, "reset")

	u.password = "copper-meadow-harbour-77"
	u.fill(ctx, "new_password", u.password)
	u.click(ctx, "#reset-form button[type=submit]", "/reset/done")
	u.sees(ctx, "Your password is reset", "Withdrawals are paused until", "Review your two-factor methods")
	u.screenshots(ctx, "reset-done")

	// Signed out everywhere; the new password and the key sign in.
	u.open(ctx, "/account")
	u.at(ctx, "/login")
	u.passwordStep(ctx)
	u.click(ctx, "#factor-key button[type=submit]", "/account")
	u.sees(ctx, "Password reset with an e-mailed link")
}
