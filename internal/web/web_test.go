package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestSignUpToRevoke walks the whole web journey: sign-up, confirmation,
// sign-in with device approval (code and link), activity, sessions,
// revocation and sign-out.
func TestSignUpToRevoke(t *testing.T) {
	e := newEnv(t, false)
	const addr = "ada@example.com"
	b1 := e.browser()

	contains(t, b1.get("/signup"), "10 to 256 characters", "passphrase", `autocomplete="new-password"`)
	expect(t, b1.post("/signup", url.Values{"email": {addr}, "password": {testPassword}}), 303, "/signup/check-email")
	contains(t, b1.get("/signup/check-email"), "Check your e-mail")

	// The confirmation link: GET only shows a button (mail scanners fetch
	// links), POST confirms, once.
	tok := e.link(e.lastMail(addr).Body, "/confirm")
	for range 2 {
		r := b1.get("/confirm?token=" + url.QueryEscape(tok))
		expect(t, r, 200, "")
		contains(t, r, `<form method="post" action="/confirm"`, `value="`+tok+`"`)
	}
	r := b1.post("/confirm", url.Values{"token": {tok}})
	expect(t, r, 200, "")
	contains(t, r, "Your e-mail address is confirmed", `href="/login"`)
	r = b1.post("/confirm", url.Values{"token": {tok}})
	expect(t, r, 400, "")
	contains(t, r, "already used", `href="/resend-confirmation"`)

	// Sign-in from a new browser waits for device approval.
	r = b1.post("/login", url.Values{"email": {addr}, "password": {testPassword}})
	expect(t, r, 303, "/login/device")
	if c := r.cookies[e.cookieName("pending")]; c == nil || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" {
		t.Fatalf("pending cookie %+v, want HttpOnly, SameSite=Lax, Path=/", c)
	}
	if r.cookies[e.cookieName("session")] != nil {
		t.Fatal("a session cookie was set before the device was approved")
	}
	contains(t, b1.get("/login/device"), `autocomplete="one-time-code"`, `action="/login/device/status"`)
	r = b1.post("/login/device/status", nil)
	expect(t, r, 200, "")
	contains(t, r, "Not approved yet")
	r = b1.post("/login/device", url.Values{"code": {"000000"}})
	expect(t, r, 400, "")
	contains(t, r, `id="code-error" role="alert"`, `aria-describedby="code-hint code-error"`, `aria-invalid="true"`, "tries left")
	r = b1.post("/login/device", url.Values{"code": {e.code(e.lastMail(addr).Body)}})
	expect(t, r, 303, "/account")
	sess := r.cookies[e.cookieName("session")]
	if sess == nil || sess.Value == "" || !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode || sess.Path != "/" || sess.Secure {
		t.Fatalf("session cookie %+v, want HttpOnly, SameSite=Lax, Path=/ (not Secure over plain http)", sess)
	}
	if d := r.cookies[e.cookieName("device")]; d == nil || d.Value == "" || !d.HttpOnly || d.MaxAge != 400*24*3600 {
		t.Fatalf("device cookie %+v, want HttpOnly and 400 days", d)
	}
	if p := r.cookies[e.cookieName("pending")]; p == nil || p.MaxAge >= 0 {
		t.Fatalf("pending cookie not cleared: %+v", p)
	}

	// The account page lists this sign-in, this device flagged new.
	r = b1.get("/account")
	expect(t, r, 200, "")
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("account page Cache-Control %q, want no-store", r.header.Get("Cache-Control"))
	}
	contains(t, r, "Recent activity", "Signed in", "New device", "this device", "127.0.0.1", `href="/account/sessions"`, `href="/account/settings"`)

	// A second browser signs in; its device is approved by the e-mailed link
	// (the GET only asks; the POST approves), then it checks again.
	b2 := e.browser()
	expect(t, b2.post("/login", url.Values{"email": {addr}, "password": {testPassword}}), 303, "/login/device")
	link := e.link(e.lastMail(addr).Body, "/login/approve")
	contains(t, b1.get("/login/approve?token="+link), "Approve a new sign-in?", `action="/login/approve"`)
	contains(t, b1.post("/login/approve", url.Values{"token": {link}}), "The new device is approved")
	expect(t, b2.post("/login/device/status", nil), 303, "/account")
	expect(t, b2.get("/account"), 200, "")

	// b1 sees both sessions and signs out b2's.
	r = b1.get("/account/sessions")
	expect(t, r, 200, "")
	contains(t, r, "this session")
	ids := sessionIDRe.FindAllStringSubmatch(r.body, -1)
	if len(ids) != 1 {
		t.Fatalf("want one other session to revoke, found %d:\n%s", len(ids), r.body)
	}
	expect(t, b1.post("/account/sessions/revoke", url.Values{"id": {ids[0][1]}}), 303, "/account/sessions?n=revoked")
	contains(t, b1.get("/account/sessions?n=revoked"), "That session is signed out")

	// b2's cookie no longer opens the account.
	r = b2.get("/account")
	expect(t, r, 303, "/login?n=session-ended")
	contains(t, b2.get("/login?n=session-ended"), "Your session has ended")

	// Sign out; the cookie is cleared and no longer works.
	old := b1.cookie(e.cookieName("session"))
	expect(t, b1.post("/logout", nil), 303, "/login?n=signed-out")
	expect(t, b1.get("/account"), 303, "/login?n=signin-required")
	b1.setCookie(e.cookieName("session"), old)
	expect(t, b1.get("/account"), 303, "/login?n=session-ended")

	// The device cookie survives sign-out: the next sign-in from b1 is from
	// a known device and needs no approval.
	expect(t, b1.post("/login", url.Values{"email": {addr}, "password": {testPassword}}), 303, "/account")
	contains(t, b1.get("/account"), "Known device")
}

// TestEnumeration: the pages answer the same for an address with an account
// and one without.
func TestEnumeration(t *testing.T) {
	e := newEnv(t, false)
	const known, unknown = "known@example.com", "nobody@example.com"
	b := e.browser()
	e.signUp(b, known)
	const unconfirmed = "later@example.com"
	expect(t, b.post("/signup", url.Values{"email": {unconfirmed}, "password": {testPassword}}), 303, "/signup/check-email")

	same := func(name string, a, z *resp, addrA, addrZ string) {
		t.Helper()
		if a.status != z.status || a.location() != z.location() {
			t.Errorf("%s: %d %q vs %d %q", name, a.status, a.location(), z.status, z.location())
		}
		if strings.ReplaceAll(a.body, addrA, "ADDR") != strings.ReplaceAll(z.body, addrZ, "ADDR") {
			t.Errorf("%s: bodies differ:\n%s\n----\n%s", name, a.body, z.body)
		}
	}

	// Sign-in: wrong password for a real account vs an unknown address.
	wrong := b.post("/login", url.Values{"email": {known}, "password": {"not-the-password-1"}})
	missing := b.post("/login", url.Values{"email": {unknown}, "password": {"not-the-password-1"}})
	expect(t, wrong, 401, "")
	contains(t, wrong, `role="alert"`, "Invalid username or password")
	same("sign-in", wrong, missing, known, unknown)

	// Sign-up of an existing address vs a new one.
	same("sign-up",
		b.post("/signup", url.Values{"email": {known}, "password": {testPassword}}),
		b.post("/signup", url.Values{"email": {"fresh@example.com"}, "password": {testPassword}}),
		known, "fresh@example.com")

	// Resend for an unconfirmed account, a confirmed one and no account.
	r1 := b.post("/resend-confirmation", url.Values{"email": {unconfirmed}})
	r2 := b.post("/resend-confirmation", url.Values{"email": {known}})
	r3 := b.post("/resend-confirmation", url.Values{"email": {unknown}})
	expect(t, r1, 200, "")
	same("resend (confirmed)", r1, r2, unconfirmed, known)
	same("resend (unknown)", r1, r3, unconfirmed, unknown)
}

// TestCrossSiteFormsRefused: a form on another site cannot sign someone in
// or revoke their sessions (the server's CrossOriginProtection).
func TestCrossSiteFormsRefused(t *testing.T) {
	e := newEnv(t, false)
	const addr = "grace@example.com"
	b1, b2 := e.browser(), e.browser()
	e.signUp(b1, addr)
	e.signIn(b1, addr)
	e.signIn(b2, addr)
	ids := sessionIDRe.FindAllStringSubmatch(b1.get("/account/sessions").body, -1)
	if len(ids) != 1 {
		t.Fatalf("want one other session, got %d", len(ids))
	}
	for _, tc := range []struct {
		name string
		hdr  []string
	}{
		{"Sec-Fetch-Site cross-site", []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}},
		{"Origin of another site", []string{"Sec-Fetch-Site", "", "Origin", "https://evil.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b1.post("/login", url.Values{"email": {addr}, "password": {testPassword}}, tc.hdr...)
			expect(t, r, 403, "")
			if r.cookies[e.cookieName("session")] != nil || r.cookies[e.cookieName("pending")] != nil {
				t.Error("a refused cross-site sign-in set a cookie")
			}
			expect(t, b1.post("/account/sessions/revoke", url.Values{"id": {ids[0][1]}}, tc.hdr...), 403, "")
			expect(t, b1.post("/logout", nil, tc.hdr...), 403, "")
		})
	}
	// Nothing was revoked.
	expect(t, b2.get("/account"), 200, "")
	expect(t, b1.get("/account"), 200, "")
}

// TestSessionFixation: sign-in always sets a new session token; a cookie
// planted beforehand is neither adopted nor left alive.
func TestSessionFixation(t *testing.T) {
	e := newEnv(t, false)
	const victim, attacker = "victim@example.com", "mallory@example.com"
	name := e.cookieName("session")

	// A made-up value.
	b := e.browser()
	e.signUp(b, victim)
	b.setCookie(name, "planted-session-value")
	expect(t, b.get("/account"), 303, "/login?n=session-ended")
	b.setCookie(name, "planted-session-value")
	e.signIn(b, victim)
	if got := b.cookie(name); got == "" || got == "planted-session-value" {
		t.Fatalf("session cookie after sign-in = %q", got)
	}

	// The attacker's own valid session, planted in the victim's browser.
	m := e.browser()
	e.signUp(m, attacker)
	e.signIn(m, attacker)
	planted := m.cookie(name)
	v := e.browser()
	v.setCookie(name, planted)
	e.signIn(v, victim)
	if got := v.cookie(name); got == planted {
		t.Fatal("sign-in kept the planted session token")
	}
	r := v.get("/account")
	contains(t, r, victim)
	if strings.Contains(r.body, attacker) {
		t.Error("the victim's page shows the attacker's account")
	}
	// The planted session was signed out by the victim's sign-in.
	expect(t, m.get("/account"), 303, "/login?n=session-ended")
}

// TestSecureCookies: over https the cookies are __Host- prefixed and Secure.
func TestSecureCookies(t *testing.T) {
	e := newEnv(t, true)
	const addr = "tls@example.com"
	b := e.browser()
	e.signUp(b, addr)
	r := b.post("/login", url.Values{"email": {addr}, "password": {testPassword}})
	expect(t, r, 303, "/login/device")
	if c := r.cookies["__Host-moat_pending"]; c == nil || !c.Secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" {
		t.Fatalf("pending cookie %+v", c)
	}
	r = b.post("/login/device", url.Values{"code": {e.code(e.lastMail(addr).Body)}})
	expect(t, r, 303, "/account")
	for _, n := range []string{"__Host-moat_session", "__Host-moat_device"} {
		if c := r.cookies[n]; c == nil || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
			t.Errorf("cookie %s = %+v, want Secure, HttpOnly, SameSite=Lax, Path=/, no Domain", n, c)
		}
	}
	expect(t, b.get("/account"), 200, "")
	if hsts := b.get("/account").header.Get("Strict-Transport-Security"); hsts == "" {
		t.Error("no HSTS over https")
	}
}

// TestFormErrors: bad input gets a readable message next to the field and a
// 4xx, never a 500.
func TestFormErrors(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	e.signUp(b, "lin@example.com")
	for _, tc := range []struct {
		name   string
		path   string
		form   url.Values
		status int
		want   []string
	}{
		{"weak password", "/signup", url.Values{"email": {"new@example.com"}, "password": {"password123"}}, 400,
			[]string{`id="password-error" role="alert"`, `aria-describedby="password-hint password-error"`, `value="new@example.com"`}},
		{"short password", "/signup", url.Values{"email": {"new@example.com"}, "password": {"short"}}, 400,
			[]string{`id="password-error"`}},
		{"bad e-mail", "/signup", url.Values{"email": {"not an address"}, "password": {testPassword}}, 400,
			[]string{`id="email-error" role="alert"`, `aria-invalid="true" autofocus`}},
		{"empty sign-up", "/signup", url.Values{}, 400, []string{`id="email-error"`, `id="password-error"`}},
		{"empty sign-in", "/login", url.Values{}, 400, []string{"Enter your e-mail address."}},
		{"unconfirmed sign-in", "/login", nil, 403, []string{"Confirm your e-mail address first", `href="/resend-confirmation"`}},
		{"bad confirm token", "/confirm", url.Values{"token": {"nonsense"}}, 400, []string{"not valid"}},
		{"bad approve token", "/login/approve", url.Values{"token": {"nonsense"}}, 400, []string{"not valid"}},
		{"bad secure token", "/secure", url.Values{"token": {"nonsense"}}, 400, []string{"not valid"}},
		{"no pending sign-in", "/login/device", url.Values{"code": {"123456"}}, 303, nil},
		{"no pending factor", "/login/factor", url.Values{"response": {"123456"}}, 303, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := tc.form
			if form == nil { // an account that signed up but did not confirm
				const addr = "unconfirmed@example.com"
				b.post("/signup", url.Values{"email": {addr}, "password": {testPassword}})
				form = url.Values{"email": {addr}, "password": {testPassword}}
			}
			r := b.post(tc.path, form)
			expect(t, r, tc.status, "")
			contains(t, r, tc.want...)
			if strings.Contains(r.body, testPassword) {
				t.Error("the page echoes the password")
			}
		})
	}

	t.Run("oversized form", func(t *testing.T) {
		r := b.post("/login", url.Values{"email": {"a@example.com"}, "password": {strings.Repeat("x", 64<<10)}})
		expect(t, r, 413, "")
		contains(t, r, "too large")
	})
	t.Run("malformed form", func(t *testing.T) {
		req, _ := http.NewRequest("POST", e.srv.URL+"/login", strings.NewReader("email=%zz"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		expect(t, b.do(req), 400, "")
	})
	t.Run("unknown page", func(t *testing.T) {
		expect(t, b.get("/no-such-page"), 404, "")
	})
}

// TestSettings: anti-phishing code and password change from the settings
// page.
func TestSettings(t *testing.T) {
	e := newEnv(t, false)
	const addr = "kay@example.com"
	b, other := e.browser(), e.browser()
	e.signUp(b, addr)
	e.signIn(b, addr)
	e.signIn(other, addr)

	r := b.get("/account/settings")
	expect(t, r, 200, "")
	contains(t, r, "Anti-phishing code", "Change password", `autocomplete="current-password"`)

	r = b.post("/account/settings/anti-phishing", url.Values{"anti_phishing_code": {"<b>hi</b>"}})
	expect(t, r, 400, "")
	contains(t, r, `id="anti_phishing_code-error" role="alert"`)
	expect(t, b.post("/account/settings/anti-phishing", url.Values{"anti_phishing_code": {"blue heron"}}), 303, "/account/settings?n=anti-phishing-set")
	r = b.get("/account/settings?n=anti-phishing-set")
	contains(t, r, "Your anti-phishing code is saved", `value="blue heron"`, `value="clear"`)
	if !strings.Contains(e.lastMail(addr).Body, "blue heron") {
		t.Error("the confirmation e-mail does not show the new code")
	}
	expect(t, b.post("/account/settings/anti-phishing", url.Values{"anti_phishing_code": {"blue heron"}, "action": {"clear"}}), 303, "/account/settings?n=anti-phishing-cleared")

	r = b.post("/account/settings/password", url.Values{"current_password": {"wrong-password-77"}, "new_password": {"orchid-tundra-saddle-19"}})
	expect(t, r, 401, "")
	contains(t, r, `id="current_password-error"`, "not your current password")
	r = b.post("/account/settings/password", url.Values{"current_password": {testPassword}, "new_password": {"password1234"}})
	expect(t, r, 400, "")
	contains(t, r, `id="new_password-error"`)
	expect(t, b.post("/account/settings/password", url.Values{"current_password": {testPassword}, "new_password": {"orchid-tundra-saddle-19"}}), 303, "/account/settings?n=password-changed")
	r = b.get("/account/settings?n=password-changed")
	contains(t, r, "Your password is changed", "Withdrawals are paused until")
	// The other session was signed out by the change; this one was not.
	expect(t, other.get("/account"), 303, "/login?n=session-ended")
	expect(t, b.get("/account"), 200, "")
}

// TestSecureAccountLink: "this wasn't me" signs out everywhere and locks the
// account; the GET only asks.
func TestSecureAccountLink(t *testing.T) {
	e := newEnv(t, false)
	const addr = "sam@example.com"
	b := e.browser()
	e.signUp(b, addr)
	e.signIn(b, addr)
	tok := e.link(e.lastMail(addr).Body, "/secure")
	contains(t, b.get("/secure?token="+tok), "Sign out everywhere and lock my account")
	expect(t, b.get("/account"), 200, "") // the GET changed nothing
	r := b.post("/secure", url.Values{"token": {tok}})
	expect(t, r, 200, "")
	contains(t, r, "All sessions are signed out and the account is locked", "Contact support")
	expect(t, b.get("/account"), 303, "")
	r = b.post("/login", url.Values{"email": {addr}, "password": {testPassword}})
	if r.status < 400 || r.status >= 500 {
		t.Fatalf("sign-in to a locked account: %d", r.status)
	}
	contains(t, r, "locked")
}

func TestStaticAssets(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	for _, tc := range []struct{ path, ctype string }{{"/static/moat.css", "text/css"}, {"/static/moat.js", "text/javascript"}} {
		r := b.get(tc.path)
		expect(t, r, 200, "")
		if !strings.HasPrefix(r.header.Get("Content-Type"), tc.ctype) || !strings.Contains(r.header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s: Content-Type %q, Cache-Control %q", tc.path, r.header.Get("Content-Type"), r.header.Get("Cache-Control"))
		}
	}
	expect(t, b.get("/static/"), 404, "")
	// The pages link them with a content hash, so a changed file gets a new URL.
	contains(t, b.get("/login"), `href="/static/moat.css?v=`, `src="/static/moat.js?v=`)
}

// TestSecondFactor: after device approval the factor step offers the
// account's factors in the service's order and completes with a right code.
func TestSecondFactor(t *testing.T) {
	e := newEnv(t, false, fakeFactor{"backup_code", "bk-1111"}, fakeFactor{"totp", "424242"})
	const addr = "two@example.com"
	b := e.browser()
	e.signUp(b, addr)
	expect(t, b.post("/login", url.Values{"email": {addr}, "password": {testPassword}}), 303, "/login/device")
	r := b.post("/login/device", url.Values{"code": {e.code(e.lastMail(addr).Body)}})
	expect(t, r, 303, "/login/factor")
	if r.cookies[e.cookieName("session")] != nil {
		t.Fatal("a session cookie was set before the second factor")
	}
	r = b.get("/login/factor")
	expect(t, r, 200, "")
	// The first factor in the service's order is offered, the others
	// linked.
	contains(t, r, `name="factor" value="totp"`, "Code from your authenticator app", `href="/login/factor?method=backup_code"`)
	r = b.get("/login/factor?method=backup_code")
	contains(t, r, `name="factor" value="backup_code"`, `href="/login/factor?method=totp"`)
	r = b.get("/login/factor?method=sms") // not enrolled: the first one
	contains(t, r, `name="factor" value="totp"`)
	expect(t, b.get("/account"), 303, "/login?n=signin-required")

	r = b.post("/login/factor", url.Values{"factor": {"totp"}, "response": {"000000"}})
	expect(t, r, 400, "")
	contains(t, r, `id="response-error" role="alert"`, "tries left")
	r = b.post("/login/factor", url.Values{"factor": {"sms"}, "response": {"424242"}})
	expect(t, r, 400, "")
	contains(t, r, "Choose one of the ways")
	expect(t, b.post("/login/factor", url.Values{"factor": {"totp"}, "response": {"424242"}}), 303, "/account")
	expect(t, b.get("/account"), 200, "")
}

// TestWrongCodesEndSignIn: the fifth wrong device code stops the sign-in;
// the page says so and the pending cookie is cleared.
func TestWrongCodesEndSignIn(t *testing.T) {
	e := newEnv(t, false)
	const addr = "typo@example.com"
	b := e.browser()
	e.signUp(b, addr)
	expect(t, b.post("/login", url.Values{"email": {addr}, "password": {testPassword}}), 303, "/login/device")
	for range 4 {
		expect(t, b.post("/login/device", url.Values{"code": {"000000"}}), 400, "")
	}
	r := b.post("/login/device", url.Values{"code": {"000000"}})
	expect(t, r, 400, "")
	contains(t, r, "last try", `action="/login"`)
	if c := r.cookies[e.cookieName("pending")]; c == nil || c.MaxAge >= 0 {
		t.Errorf("pending cookie not cleared: %+v", c)
	}
	expect(t, b.get("/login/device"), 303, "/login?n=pending-expired")
}
