package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"image/png"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/server/servertest"
	"github.com/moat-dev/moat/internal/testenv"
	"github.com/moat-dev/moat/internal/testenv/chrome"
)

// The two-factor browser tests: real headless Chromium through the full
// server (development mode, a temp data dir), with the DevTools virtual
// authenticator standing in for security keys and passkeys, and oathtool
// for the authenticator app. The server's clock is a fake that starts now
// (so the browser's cookies are valid) and is moved past the step-up
// window where the test needs it.

// addAuthenticator plugs in a virtual authenticator: CTAP2.1 with resident
// keys and user verification, which answers by itself.
func addAuthenticator(t *testing.T, ctx context.Context, transport webauthn.AuthenticatorTransport) webauthn.AuthenticatorID {
	t.Helper()
	res, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
			Transport: transport, HasResidentKey: true, HasUserVerification: true,
			IsUserVerified: true, AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		t.Fatalf("addVirtualAuthenticator: %v", err)
	}
	return res.AuthenticatorID
}

// credentials lists what an authenticator holds.
func credentials(t *testing.T, ctx context.Context, id webauthn.AuthenticatorID) []*webauthn.Credential {
	t.Helper()
	res, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
	if err != nil {
		t.Fatalf("getCredentials: %v", err)
	}
	return res.Credentials
}

// click presses a button that starts a WebAuthn ceremony (or anything
// that navigates by script) and waits until the page is at path.
func (u *user) click(ctx context.Context, button, path string) {
	u.t.Helper()
	u.do(ctx, "click "+button, chromedp.WaitVisible(chromedp.CSS(button)), chromedp.Click(chromedp.CSS(button)))
	u.waitAt(ctx, path)
}

// waitAt waits for the browser to arrive at path (the query is ignored).
func (u *user) waitAt(ctx context.Context, path string) {
	u.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err == nil {
			got := strings.TrimPrefix(loc, u.base)
			if p, _, _ := strings.Cut(got, "?"); p == path {
				if err := chromedp.Do(ctx, chromedp.WaitReady(chromedp.CSS("body"))); err == nil {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			u.t.Fatalf("not at %s but %s (%v); page says:\n%s", path, loc, err, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signUpAndIn creates the account through the pages, confirms it from the
// dev mailbox and signs in, approving the new browser with the e-mailed
// code.
func (u *user) signUpAndIn(ctx context.Context) {
	u.t.Helper()
	u.open(ctx, "/signup")
	u.fill(ctx, "email", u.email)
	u.fill(ctx, "password", u.password)
	u.submit(ctx, "form.form button[type=submit]", "/signup/check-email")
	u.open(ctx, "/dev/mailbox")
	confirm := u.eval(ctx, `document.querySelector('a[href*="/confirm?token="]').href`)
	u.open(ctx, strings.TrimPrefix(confirm, u.base))
	u.submit(ctx, "form button[type=submit]", "/confirm")
	u.signIn(ctx)
	code := u.mailedCode(ctx)
	u.open(ctx, "/login/device")
	u.fill(ctx, "code", code)
	u.submit(ctx, `form[action="/login/device"] button[type=submit]`, "/account")
}

// passwordStep types the e-mail address and password on /login and
// expects to be asked for the second factor.
func (u *user) passwordStep(ctx context.Context) {
	u.t.Helper()
	u.open(ctx, "/login")
	u.fill(ctx, "email", u.email)
	u.fill(ctx, "password", u.password)
	u.submit(ctx, `form[action="/login"] button[type=submit]`, "/login/factor")
}

func (u *user) signOut(ctx context.Context) {
	u.t.Helper()
	u.submit(ctx, `form[action="/logout"] button[type=submit]`, "/login")
}

// TestBrowserSecurityKeys: register a security key on the Security page,
// sign out, sign in with password and key; once the step-up window has
// passed, confirm with the key to add a passkey; sign out and sign in from
// /login with the passkey alone.
func TestBrowserSecurityKeys(t *testing.T) {
	clk := clock.NewFake(time.Now())
	base, _ := servertest.Start(t, clk)
	ctx := chrome.Start(t, 3*time.Minute)
	chrome.EnableWebAuthn(t, ctx)
	u := &user{t: t, base: base, email: "grace@example.com", password: "lantern-quarry-velvet-42"}
	usbKey := addAuthenticator(t, ctx, webauthn.AuthenticatorTransportUsb)

	u.signUpAndIn(ctx)

	// The Security page: nothing set up yet, so no step-up is asked.
	u.open(ctx, "/account/security")
	u.sees(ctx, "Security keys and passkeys", "protected by your password alone", "SMS is the weakest option")
	u.submit(ctx, "#add-key-link", "/account/security/keys/new")
	u.do(ctx, "name the key", chromedp.SetValue(chromedp.CSS("#name"), "Desk key"))
	u.click(ctx, "#add-key button[type=submit]", "/account/security/backup-codes")
	// The first factor comes with backup codes, shown once.
	if n := u.eval(ctx, `String(document.querySelectorAll('#backup-codes li').length)`); n != "10" {
		t.Fatalf("%s backup codes shown", n)
	}
	u.submit(ctx, "#codes-saved", "/account/security")
	u.sees(ctx, "Desk key", "Security key", "1 of 5 keys", "Withdrawals are paused until")
	if got := len(credentials(t, ctx, usbKey)); got != 1 {
		t.Fatalf("the authenticator holds %d credentials", got)
	}
	// The owner was told by e-mail.
	u.open(ctx, "/dev/mailbox")
	u.sees(ctx, "Two-factor authentication on your moat account changed", "A security key named “Desk key” was added to your account.")

	// Sign out; signing in now takes the password and the key.
	u.open(ctx, "/account")
	u.signOut(ctx)
	u.passwordStep(ctx)
	u.sees(ctx, "Use your security key or passkey", "Other ways to confirm it's you", "Backup code")
	u.click(ctx, "#factor-key button[type=submit]", "/account")
	u.open(ctx, "/account/security")
	if last := u.eval(ctx, `document.querySelector('#keys tbody td[data-label="Last used"]').innerText`); last == "Never" {
		t.Error("the key's last use is not shown")
	}

	// Later the sign-in's second factor is no longer fresh: adding a
	// passkey asks for the key again first, then comes back.
	clk.Advance(6 * time.Minute)
	u.open(ctx, "/account/security")
	u.sees(ctx, "Changes on this page need a fresh confirmation")
	u.submit(ctx, "#add-passkey-link", "/account/step-up")
	u.sees(ctx, "Confirm it's you", "Use your security key or passkey")
	u.screenshots(ctx, "step-up")
	u.click(ctx, "#factor-key button[type=submit]", "/account/security/keys/new")
	u.sees(ctx, "Add a passkey")
	if checked := u.eval(ctx, `String(document.getElementById('passkey').checked)`); checked != "true" {
		t.Error("the passkey box is not ticked after the step-up")
	}

	// The passkey goes on the laptop's own authenticator; the USB key is
	// unplugged.
	if _, err := chromedp.Call(ctx, webauthn.RemoveVirtualAuthenticator,
		webauthn.RemoveVirtualAuthenticatorParams{AuthenticatorID: usbKey}); err != nil {
		t.Fatal(err)
	}
	laptop := addAuthenticator(t, ctx, webauthn.AuthenticatorTransportInternal)
	u.do(ctx, "name the passkey", chromedp.SetValue(chromedp.CSS("#name"), "Laptop passkey"))
	u.click(ctx, "#add-key button[type=submit]", "/account/security")
	u.sees(ctx, "Laptop passkey", "Passkey", "2 of 5 keys")
	u.screenshots(ctx, "security")
	if cs := credentials(t, ctx, laptop); len(cs) != 1 || !cs[0].IsResidentCredential {
		t.Fatalf("the laptop holds %+v, want one resident credential", cs)
	}

	// Sign out and back in with the passkey alone: no password, no code.
	u.signOut(ctx)
	u.sees(ctx, "Sign in with a passkey")
	u.click(ctx, "#passkey-signin button[type=submit]", "/account")
	u.sees(ctx, "Recent activity", "Signed in")
	// A passkey counts as both factors: security changes need no step-up
	// right after.
	u.open(ctx, "/account/security")
	u.sees(ctx, "You confirmed it's you recently")
}

// TestBrowserAuthenticatorApp: enrol an authenticator app from the QR code
// the page shows (decoded here, and checked against the manual key), finish
// with oathtool's code, keep the backup codes (download), sign in with
// password and an oathtool code, see a reused code refused in plain words,
// and sign in with a backup code, which tells how many are left.
func TestBrowserAuthenticatorApp(t *testing.T) {
	oathtool := testenv.Oathtool(t)
	// A step boundary, so that "the next code" is one step on.
	clk := clock.NewFake(time.Now().Truncate(30 * time.Second))
	base, _ := servertest.Start(t, clk)
	ctx := chrome.Start(t, 3*time.Minute)
	chrome.EnableWebAuthn(t, ctx)
	u := &user{t: t, base: base, email: "katherine@example.com", password: "lantern-quarry-velvet-42"}
	u.signUpAndIn(ctx)

	u.open(ctx, "/account/security")
	u.submit(ctx, `form[action="/account/security/app/begin"] button[type=submit]`, "/account/security/app")
	u.sees(ctx, "Scan this QR code", "Cannot scan it? Type this key")
	u.screenshots(ctx, "totp")

	// The QR code the page shows: fetched as the page fetched it, decoded.
	if w := u.eval(ctx, `String(document.getElementById('totp-qr').naturalWidth)`); w == "0" {
		t.Fatal("the QR image did not load")
	}
	var img struct {
		Type, Cache, Data string
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`(async () => {
		const r = await fetch(document.getElementById('totp-qr').src);
		const b = new Uint8Array(await r.arrayBuffer());
		let s = ""; for (const x of b) s += String.fromCharCode(x);
		return {type: r.headers.get("content-type"), cache: r.headers.get("cache-control"), data: btoa(s)};
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	img.Type, img.Cache, img.Data = out["type"], out["cache"], out["data"]
	if img.Type != "image/png" || img.Cache != "no-store" {
		t.Errorf("QR code served as %q with Cache-Control %q; want image/png, no-store", img.Type, img.Cache)
	}
	uri := decodeQR(t, img.Data)
	ou, err := url.Parse(uri)
	if err != nil || ou.Scheme != "otpauth" || ou.Host != "totp" {
		t.Fatalf("QR code carries %q", uri)
	}
	secret := ou.Query().Get("secret")
	manual := strings.ReplaceAll(u.eval(ctx, `document.getElementById('totp-key').innerText`), " ", "")
	if secret == "" || secret != manual {
		t.Fatalf("QR secret %q, manual key %q", secret, manual)
	}
	if ou.Query().Get("issuer") != "moat" || !strings.Contains(ou.Path, u.email) {
		t.Errorf("otpauth URI without issuer and account: %s", uri)
	}

	oath := func() string {
		t.Helper()
		out, err := exec.Command(oathtool, "--totp", "-b", secret, "--now", clk.Now().Format("2006-01-02 15:04:05 UTC")).Output()
		if err != nil {
			t.Fatalf("oathtool: %v", err)
		}
		return strings.TrimSpace(string(out))
	}

	// A wrong code does not finish the enrolment.
	u.fill(ctx, "code", "000000")
	u.submit(ctx, "#totp-confirm button[type=submit]", "/account/security/app")
	u.sees(ctx, "That code is not right")
	u.fill(ctx, "code", oath())
	u.submit(ctx, "#totp-confirm button[type=submit]", "/account/security/backup-codes")
	u.sees(ctx, "Save these codes now: we show them only this once.")
	u.screenshots(ctx, "backup-codes")
	codes := strings.Fields(u.eval(ctx, `Array.from(document.querySelectorAll('#backup-codes code')).map(c => c.innerText).join(" ")`))
	if len(codes) != 10 {
		t.Fatalf("backup codes %q", codes)
	}
	// Download: a text file with the codes.
	dl, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`(async () => {
		const f = document.getElementById('download-codes');
		const r = await fetch(f.action, {method: "POST", body: new URLSearchParams(new FormData(f))});
		return {type: r.headers.get("content-type"), disposition: r.headers.get("content-disposition"), body: await r.text()};
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dl["type"], "text/plain") || !strings.HasPrefix(dl["disposition"], "attachment;") || !strings.Contains(dl["body"], codes[9]) {
		t.Errorf("download: %q", dl)
	}
	u.submit(ctx, "#codes-saved", "/account/security")
	u.sees(ctx, "An authenticator app is set up")
	if n := u.eval(ctx, `document.getElementById('backup-remaining').innerText`); n != "10" {
		t.Errorf("%s backup codes remaining", n)
	}
	// Shown once: the codes page does not show them again.
	u.open(ctx, "/account/security/backup-codes")
	u.sees(ctx, "Backup codes are shown only once")
	if strings.Contains(u.eval(ctx, `document.body.innerText`), codes[0]) {
		t.Error("backup codes shown a second time")
	}

	// Sign out; sign in with the password and the app's next code.
	u.open(ctx, "/account")
	u.signOut(ctx)
	clk.Advance(30 * time.Second)
	u.passwordStep(ctx)
	u.sees(ctx, "Code from your authenticator app")
	code := oath()
	u.fill(ctx, "response", code)
	u.submit(ctx, "#factor-code button[type=submit]", "/account")

	// The same code again, in the same 30 seconds: refused, in plain words.
	u.signOut(ctx)
	u.passwordStep(ctx)
	u.fill(ctx, "response", code)
	u.submit(ctx, "#factor-code button[type=submit]", "/login/factor")
	u.sees(ctx, "That code was already used — wait for the next one")
	u.screenshots(ctx, "factor-reused")

	// A backup code instead: signs in, and says how many are left.
	u.submit(ctx, `a[href="/login/factor?method=backup_code"]`, "/login/factor")
	u.fill(ctx, "response", codes[0])
	u.submit(ctx, "#factor-code button[type=submit]", "/account/security")
	u.sees(ctx, "You signed in with a backup code", "You have 9 backup codes left", "set up a new method")
	if n := u.eval(ctx, `document.getElementById('backup-remaining').innerText`); n != "9" {
		t.Errorf("%s backup codes remaining after one was used", n)
	}
}

// decodeQR reads the text of a base64 PNG QR code.
func decodeQR(t *testing.T, b64 string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("QR image is not a PNG: %v", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	// A phone camera app retries harder when a first look fails; so does
	// the test, rather than failing on a decoder heuristic.
	var lastErr error
	for _, hints := range []map[gozxing.DecodeHintType]any{nil, {gozxing.DecodeHintType_TRY_HARDER: true}} {
		res, err := qrcode.NewQRCodeReader().Decode(bmp, hints)
		if err == nil {
			return res.GetText()
		}
		lastErr = err
	}
	t.Fatalf("QR code does not decode: %v", lastErr)
	return ""
}
