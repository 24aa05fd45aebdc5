package web_test

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/mfa/totp"
	"github.com/moat-dev/moat/internal/server"
	"github.com/moat-dev/moat/internal/server/servertest"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/postgres/pgtest"
	"github.com/moat-dev/moat/internal/testenv"
)

// HTTP-level tests of the 2FA pages through the full server (server.New in
// development mode, with an injected clock): what a browser without
// JavaScript can do, and what a client that sends requests in any order
// cannot.

// site is a running server with its fake clock.
type site struct {
	t    *testing.T
	base string
	clk  *clock.Fake
	srv  *server.Server
}

func newSite(t *testing.T, mutate ...func(*config.Config)) *site {
	t.Helper()
	return newSiteAt(t, clock.NewFake(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)), mutate...)
}

func newSiteAt(t *testing.T, clk *clock.Fake, mutate ...func(*config.Config)) *site {
	t.Helper()
	mutate = append([]func(*config.Config){func(c *config.Config) { c.Security.DeviceApproval = false }}, mutate...)
	base, srv := servertest.Start(t, clk, mutate...)
	return &site{t: t, base: base, clk: clk, srv: srv}
}

// agent is one browser without JavaScript (its own cookies).
type agent struct {
	s   *site
	jar *cookiejar.Jar
	c   *http.Client
}

func (s *site) agent() *agent {
	jar, _ := cookiejar.New(nil)
	return &agent{s: s, jar: jar, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// on returns the same browser talking to another node (cookies are not
// kept per port, so it carries its cookies there).
func (a *agent) on(s *site) *agent { return &agent{s: s, jar: a.jar, c: a.c} }

func (a *agent) do(req *http.Request) *resp {
	a.s.t.Helper()
	res, err := a.c.Do(req)
	if err != nil {
		a.s.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	out := &resp{status: res.StatusCode, header: res.Header, body: string(body), cookies: map[string]*http.Cookie{}}
	for _, c := range res.Cookies() {
		out.cookies[c.Name] = c
	}
	return out
}

func (a *agent) get(path string) *resp {
	a.s.t.Helper()
	req, _ := http.NewRequest("GET", a.s.base+path, nil)
	return a.do(req)
}

// post sends a form as a page of the site would.
func (a *agent) post(path string, form url.Values) *resp {
	a.s.t.Helper()
	req, _ := http.NewRequest("POST", a.s.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", a.s.base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return a.do(req)
}

// postJSON sends what the WebAuthn script sends.
func (a *agent) postJSON(path, body string) *resp {
	a.s.t.Helper()
	req, _ := http.NewRequest("POST", a.s.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", a.s.base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return a.do(req)
}

func (a *agent) cookie(name string) string {
	u, _ := url.Parse(a.s.base)
	for _, c := range a.jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func (a *agent) setCookie(name, value string) {
	u, _ := url.Parse(a.s.base)
	a.jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

func (s *site) mails(to string) []store.OutboxMessage {
	s.t.Helper()
	msgs, err := s.srv.Mail(s.t.Context(), 200)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []store.OutboxMessage
	for _, m := range msgs {
		if m.To == to {
			out = append(out, m)
		}
	}
	return out
}

// mail returns the newest e-mail to addr with subject. Some e-mails (a
// password-reset link) are written by the server's background work just
// after the answer, so it waits a little for one to appear.
func (s *site) mail(to, subject string) store.OutboxMessage {
	s.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		for _, m := range s.mails(to) {
			if m.Subject == subject {
				return m
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no e-mail %q to %s", subject, to)
			return store.OutboxMessage{}
		}
	}
}

var confirmLinkRe = regexp.MustCompile(`/confirm\?token=([A-Za-z0-9_\-]+)`)

// signUp creates and confirms an account and signs a in.
func (s *site) signUp(a *agent, email string) {
	s.t.Helper()
	expect(s.t, a.post("/signup", url.Values{"email": {email}, "password": {testPassword}}), 303, "/signup/check-email")
	ms := s.mails(email)
	if len(ms) == 0 {
		s.t.Fatal("no confirmation e-mail")
	}
	m := confirmLinkRe.FindStringSubmatch(ms[0].Body)
	if m == nil {
		s.t.Fatalf("no confirmation link:\n%s", ms[0].Body)
	}
	expect(s.t, a.post("/confirm", url.Values{"token": {m[1]}}), 200, "")
	expect(s.t, a.post("/login", url.Values{"email": {email}, "password": {testPassword}}), 303, "/account")
}

var (
	totpKeyRe = regexp.MustCompile(`id="totp-key">([A-Z2-7 ]+)<`)
	codeItem  = regexp.MustCompile(`<li><code>([0-9A-Z\-]+)</code></li>`)
)

// app is an authenticator app: it computes the codes of its seed.
type app struct {
	s      *site
	secret []byte
}

func (p app) code() string { return totp.Code(p.secret, totp.Step(p.s.clk.Now())) }

// enrolApp sets up an authenticator app for a's account (its first factor)
// and returns it with the backup codes shown.
func (s *site) enrolApp(a *agent) (app, []string) {
	s.t.Helper()
	expect(s.t, a.post("/account/security/app/begin", nil), 303, "/account/security/app")
	r := a.get("/account/security/app")
	expect(s.t, r, 200, "")
	m := totpKeyRe.FindStringSubmatch(r.body)
	if m == nil {
		s.t.Fatalf("no manual key on the page:\n%s", r.body)
	}
	secret, err := totp.ParseSecret(strings.ReplaceAll(m[1], " ", ""))
	if err != nil {
		s.t.Fatal(err)
	}
	p := app{s: s, secret: secret}
	expect(s.t, a.post("/account/security/app", url.Values{"code": {p.code()}}), 303, "/account/security/backup-codes?new=1")
	return p, s.shownCodes(a)
}

func (s *site) shownCodes(a *agent) []string {
	s.t.Helper()
	r := a.get("/account/security/backup-codes")
	expect(s.t, r, 200, "")
	var codes []string
	for _, m := range codeItem.FindAllStringSubmatch(r.body, -1) {
		codes = append(codes, m[1])
	}
	if len(codes) != 10 {
		s.t.Fatalf("%d backup codes shown:\n%s", len(codes), r.body)
	}
	return codes
}

// nextStep moves the clock to the next TOTP step (a code works once).
func (s *site) nextStep() { s.clk.Advance(30 * time.Second) }

const sessionCookie, pendingCookie = "moat_session", "moat_pending"

// TestStepUpExpiresForAddingFactor: with one factor, adding another needs
// a second factor verified within the step-up window (5 minutes): the
// pages send the browser to the step-up page, the key registration call
// refuses, a code on the step-up page opens the window, and the injected
// clock closes it again.
func TestStepUpExpiresForAddingFactor(t *testing.T) {
	s := newSite(t)
	a := s.agent()
	s.signUp(a, "ada@example.com")
	p, _ := s.enrolApp(a)

	const keyPage = "/account/security/keys/new"
	stepUp := "/account/step-up?next=" + url.QueryEscape(keyPage)
	expect(t, a.get(keyPage), 303, stepUp)
	expect(t, a.get("/account/security/phone"), 303, "/account/step-up?next="+url.QueryEscape("/account/security/phone"))
	r := a.postJSON("/account/security/keys/begin", `{"name":"Desk key"}`)
	expect(t, r, 403, "")
	contains(t, r, `"code":"step_up_required"`)
	r = a.get("/account/security")
	contains(t, r, "Changes on this page need a fresh confirmation")
	// The password change asks for the same confirmation.
	expect(t, a.post("/account/settings/password", url.Values{"current_password": {testPassword}, "new_password": {"a-new-passphrase-for-ada"}}),
		303, "/account/step-up?next="+url.QueryEscape("/account/settings"))

	// The step-up page asks for the app (the only method besides backup
	// codes); a wrong code is refused and opens nothing.
	r = a.get(stepUp)
	expect(t, r, 200, "")
	contains(t, r, `name="method" value="totp"`, `name="next" value="/account/security/keys/new"`, `href="/account/step-up?method=backup_code`)
	s.nextStep()
	r = a.post("/account/step-up", url.Values{"method": {"totp"}, "response": {"000000"}, "next": {keyPage}})
	expect(t, r, 400, "")
	contains(t, r, `id="response-error"`, "That code is not right")
	expect(t, a.get(keyPage), 303, stepUp)

	// The right code: back to the page, which now opens.
	expect(t, a.post("/account/step-up", url.Values{"method": {"totp"}, "response": {p.code()}, "next": {keyPage}}), 303, keyPage+"?n=stepped-up")
	expect(t, a.get(keyPage), 200, "")
	r = a.postJSON("/account/security/keys/begin", `{"name":"Desk key"}`)
	expect(t, r, 200, "")
	var ch struct {
		Ceremony string          `json:"ceremony"`
		Options  json.RawMessage `json:"options"`
	}
	if err := json.Unmarshal([]byte(r.body), &ch); err != nil || ch.Ceremony == "" || !strings.Contains(string(ch.Options), `"publicKey"`) {
		t.Fatalf("registration options %s (%v)", r.body, err)
	}

	// Still fresh at the end of the window, stale just after it.
	s.clk.Advance(5*time.Minute - time.Second)
	expect(t, a.get(keyPage), 200, "")
	s.clk.Advance(2 * time.Second)
	expect(t, a.get(keyPage), 303, stepUp)
	expect(t, a.postJSON("/account/security/keys/begin", `{"name":"Desk key"}`), 403, "")

	// The step-up page only ever sends the browser back into the site's
	// account pages.
	s.nextStep()
	for _, next := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "/login", "/account/step-up?next=/x"} {
		r := a.post("/account/step-up", url.Values{"method": {"totp"}, "response": {p.code()}, "next": {next}})
		expect(t, r, 303, "/account/security?n=stepped-up")
		s.nextStep()
	}
}

// TestSignInCannotSkipTheFactor: whatever order the requests come in,
// the web routes never issue a session without the second factor.
func TestSignInCannotSkipTheFactor(t *testing.T) {
	s := newSite(t)
	owner := s.agent()
	const email = "grace@example.com"
	s.signUp(owner, email)
	p, codes := s.enrolApp(owner)
	s.nextStep()

	noSession := func(a *agent, what string, r *resp) {
		t.Helper()
		if c := r.cookies[sessionCookie]; c != nil && c.MaxAge >= 0 && c.Value != "" {
			t.Errorf("%s set a session cookie", what)
		}
		if a.cookie(sessionCookie) != "" {
			t.Errorf("%s: the browser holds a session", what)
		}
		expect(t, a.get("/account"), 303, "/login?n=signin-required")
	}

	// Without any sign-in: the factor routes know nothing to complete.
	x := s.agent()
	noSession(x, "factor without sign-in", x.post("/login/factor", url.Values{"factor": {"totp"}, "response": {p.code()}}))
	noSession(x, "backup code without sign-in", x.post("/login/factor", url.Values{"factor": {"backup_code"}, "response": {codes[0]}}))
	noSession(x, "key finish without sign-in", x.postJSON("/login/factor/key/finish", `{"ceremony":"x","credential":{"id":"x"}}`))
	noSession(x, "SMS without sign-in", x.post("/login/factor/sms", nil))
	noSession(x, "passkey finish with junk", x.postJSON("/login/passkey/finish", `{"ceremony":"x","credential":{"id":"x"}}`))
	noSession(x, "device status without sign-in", x.post("/login/device/status", nil))
	noSession(x, "POST /account", x.post("/account", url.Values{"factor": {"totp"}, "response": {p.code()}}))
	x.setCookie(pendingCookie, strings.Repeat("A", 43))
	noSession(x, "forged pending cookie", x.post("/login/factor", url.Values{"factor": {"totp"}, "response": {p.code()}}))

	// The password alone: a pending sign-in, no session.
	b := s.agent()
	r := b.post("/login", url.Values{"email": {email}, "password": {testPassword}})
	expect(t, r, 303, "/login/factor")
	pending := b.cookie(pendingCookie)
	if pending == "" {
		t.Fatal("no pending sign-in cookie")
	}
	noSession(b, "password only", r)
	noSession(b, "device approval instead of the factor", b.post("/login/device", url.Values{"code": {"123456"}}))
	noSession(b, "device status", b.post("/login/device/status", nil))
	noSession(b, "account pages", b.get("/account/security"))
	noSession(b, "factor not enrolled", b.post("/login/factor", url.Values{"factor": {"sms"}, "response": {"123456"}}))
	noSession(b, "unknown factor", b.post("/login/factor", url.Values{"factor": {"password"}, "response": {testPassword}}))
	noSession(b, "empty answer", b.post("/login/factor", url.Values{"factor": {"totp"}}))
	noSession(b, "key without a ceremony", b.postJSON("/login/factor/key/finish", `{"ceremony":"nope","credential":{"id":"x"}}`))
	noSession(b, "key begin (no key enrolled)", b.postJSON("/login/factor/key/begin", `{}`))
	noSession(b, "SMS (not enrolled)", b.post("/login/factor/sms", nil))
	noSession(b, "a form post to the JSON route", b.post("/login/factor/key/finish", url.Values{"ceremony": {"x"}}))

	// The right code completes it, once.
	r = b.post("/login/factor", url.Values{"factor": {"totp"}, "response": {p.code()}})
	expect(t, r, 303, "/account")
	expect(t, b.get("/account"), 200, "")

	// The used pending sign-in cannot be completed again, by anyone.
	c := s.agent()
	c.setCookie(pendingCookie, pending)
	s.nextStep()
	noSession(c, "replayed pending sign-in", c.post("/login/factor", url.Values{"factor": {"totp"}, "response": {p.code()}}))

	// Five wrong answers stop a sign-in; the right code after that does
	// not revive it.
	d := s.agent()
	expect(t, d.post("/login", url.Values{"email": {email}, "password": {testPassword}}), 303, "/login/factor")
	for i := range 5 {
		r := d.post("/login/factor", url.Values{"factor": {"backup_code"}, "response": {"AAAAA-AAAA" + string(rune('A'+i))}})
		if r.status != 400 {
			t.Fatalf("wrong backup code %d: %d", i, r.status)
		}
	}
	s.nextStep()
	noSession(d, "right code after five wrong ones", d.post("/login/factor", url.Values{"factor": {"totp"}, "response": {p.code()}}))
}

// TestSMSCodesInDevelopment: in development mode text messages go to the
// dev mailbox, clearly marked; a phone is added with the code sent to it,
// signs in, and the send limit (3 per 15 minutes) holds.
func TestSMSCodesInDevelopment(t *testing.T) {
	s := newSite(t)
	a := s.agent()
	const email = "hedy@example.com"
	s.signUp(a, email)

	r := a.get("/account/security/phone")
	expect(t, r, 200, "")
	contains(t, r, "SMS is the weakest option", "SIM swap", "Use an authenticator app or a security key")
	r = a.post("/account/security/phone", url.Values{"phone": {"020 7946 0958"}})
	expect(t, r, 400, "")
	contains(t, r, `id="phone-error"`, "starting with &#43; and the country code")
	r = a.post("/account/security/phone", url.Values{"phone": {"+44 20 7946 0958"}})
	expect(t, r, 200, "")
	contains(t, r, "We sent a 6-digit code to", `action="/account/security/phone/confirm"`)
	code := s.lastText(a)
	r = a.post("/account/security/phone/confirm", url.Values{"code": {wrongDigits(code)}, "sent_to": {"+44 •••• 0958"}})
	expect(t, r, 400, "")
	contains(t, r, "That code is not right")
	expect(t, a.post("/account/security/phone/confirm", url.Values{"code": {code}}), 303, "/account/security/backup-codes?new=1")
	s.shownCodes(a)
	r = a.get("/account/security")
	contains(t, r, "Codes go to", "•58", "SMS is the weakest option")

	// Sign in with a text message.
	expect(t, a.post("/logout", nil), 303, "/login?n=signed-out")
	expect(t, a.post("/login", url.Values{"email": {email}, "password": {testPassword}}), 303, "/login/factor")
	r = a.get("/login/factor")
	contains(t, r, "Get a code by text message", `action="/login/factor/sms"`)
	r = a.post("/login/factor/sms", nil)
	expect(t, r, 200, "")
	contains(t, r, "We sent a 6-digit code to", `name="factor" value="sms"`)
	code = s.lastText(a)
	expect(t, a.post("/login/factor", url.Values{"factor": {"sms"}, "response": {code}}), 303, "/account")

	// Two texts went out (enrolment, sign-in); one more is allowed in the
	// window, the next is refused with when to try again.
	expect(t, a.post("/logout", nil), 303, "/login?n=signed-out")
	expect(t, a.post("/login", url.Values{"email": {email}, "password": {testPassword}}), 303, "/login/factor")
	expect(t, a.post("/login/factor/sms", nil), 200, "")
	r = a.post("/login/factor/sms", nil)
	expect(t, r, 429, "")
	contains(t, r, "We have sent several text messages already")
	if r.header.Get("Retry-After") == "" {
		t.Error("no Retry-After on the send limit")
	}
}

var textCodeRe = regexp.MustCompile(`Your moat code is (\d{6})`)

// lastText reads the newest SMS code from the dev mailbox.
func (s *site) lastText(a *agent) string {
	s.t.Helper()
	r := a.get("/dev/mailbox")
	if !strings.Contains(r.body, "Text messages (SMS) — development only, not sent") {
		s.t.Fatalf("the dev mailbox does not show text messages apart:\n%s", r.body)
	}
	m := textCodeRe.FindStringSubmatch(r.body)
	if m == nil {
		s.t.Fatalf("no text message in the dev mailbox:\n%s", r.body)
	}
	return m[1]
}

func wrongDigits(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

// TestFactorChangesAreMailedAndHoldWithdrawals: every factor change is
// e-mailed to the owner and pauses withdrawals; removing the last factor
// needs step-up and sends the stronger e-mail.
func TestFactorChangesAreMailedAndHoldWithdrawals(t *testing.T) {
	s := newSite(t)
	a := s.agent()
	const email = "barbara@example.com"
	s.signUp(a, email)
	start := s.clk.Now()
	p, codes := s.enrolApp(a)

	m := s.mail(email, "Two-factor authentication on your moat account changed")
	for _, want := range []string{"An authenticator app was added to your account.", "withdrawals are paused until", "/account/security", "/secure?token="} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("2FA e-mail lacks %q:\n%s", want, m.Body)
		}
	}
	acct, err := s.srv.Store().GetAccountByEmail(t.Context(), email)
	if err != nil {
		t.Fatal(err)
	}
	if !acct.SecurityHoldUntil.Equal(start.Add(24 * time.Hour)) {
		t.Errorf("withdrawals held until %v, want %v", acct.SecurityHoldUntil, start.Add(24*time.Hour))
	}
	contains(t, a.get("/account/security"), "Withdrawals are paused until")

	// Removing the app (the last factor) needs a step-up: a backup code.
	s.clk.Advance(10 * time.Minute)
	expect(t, a.post("/account/security/app/remove", nil), 303, "/account/step-up?next="+url.QueryEscape("/account/security"))
	r := a.get("/account/step-up?next=%2Faccount%2Fsecurity&method=backup_code")
	contains(t, r, `name="method" value="backup_code"`, `href="/account/step-up?method=totp&amp;next=%2Faccount%2Fsecurity"`)
	expect(t, a.post("/account/step-up", url.Values{"method": {"backup_code"}, "response": {strings.ToLower(codes[3])}, "next": {"/account/security"}}),
		303, "/account/security?n=stepped-up")
	r = a.post("/account/step-up", url.Values{"method": {"backup_code"}, "response": {codes[3]}, "next": {"/account/security"}})
	expect(t, r, 400, "")
	contains(t, r, "That backup code was already used")
	expect(t, a.post("/account/security/app/remove", nil), 303, "/account/security?n=app-removed")
	_ = p

	m = s.mail(email, "Two-factor authentication is now OFF on your moat account")
	for _, want := range []string{"The authenticator app was removed from your account. That was the last one", "your password alone is enough to sign in", "/secure?token="} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("last-factor e-mail lacks %q:\n%s", want, m.Body)
		}
	}
	evs, err := s.srv.Store().ListAudit(t.Context(), store.AuditFilter{AccountID: acct.ID, Types: []string{"mfa.totp.removed"}})
	if err != nil || len(evs) != 1 || !strings.Contains(evs[0].Data, `"last_factor_removed":true`) {
		t.Errorf("audit of the removal: %+v %v", evs, err)
	}
	r = a.get("/account/security")
	contains(t, r, "protected by your password alone", "Backup codes are made when you set up your first method")
}

// TestBackupCodesShownOnce: the codes page shows a set once (sealed for
// this session), the download writes only well-formed codes, and the page
// cannot be replayed from another session.
func TestBackupCodesShownOnce(t *testing.T) {
	s := newSite(t)
	a := s.agent()
	s.signUp(a, "joan@example.com")
	expect(t, a.post("/account/security/app/begin", nil), 303, "/account/security/app")
	r := a.get("/account/security/app/qr.png")
	expect(t, r, 200, "")
	if r.header.Get("Content-Type") != "image/png" || r.header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(r.body, "\x89PNG") {
		t.Errorf("QR code: %v", r.header)
	}
	expect(t, s.agent().get("/account/security/app/qr.png"), 303, "/login?n=signin-required")
	secret, _ := totp.ParseSecret(strings.ReplaceAll(totpKeyRe.FindStringSubmatch(a.get("/account/security/app").body)[1], " ", ""))
	p := app{s: s, secret: secret}
	expect(t, a.post("/account/security/app", url.Values{"code": {p.code()}}), 303, "/account/security/backup-codes?new=1")
	flash := a.cookie("moat_flash")
	codes := s.shownCodes(a)
	r = a.get("/account/security/backup-codes")
	contains(t, r, "Backup codes are shown only once", "<strong>10</strong> unused codes")
	if strings.Contains(r.body, codes[0]) {
		t.Error("codes shown twice")
	}
	// The sealed cookie, replayed in another session of the account,
	// shows nothing.
	b := s.agent()
	expect(t, b.post("/login", url.Values{"email": {"joan@example.com"}, "password": {testPassword}}), 303, "/login/factor")
	s.nextStep()
	expect(t, b.post("/login/factor", url.Values{"factor": {"totp"}, "response": {p.code()}}), 303, "/account")
	b.setCookie("moat_flash", flash)
	if r := b.get("/account/security/backup-codes"); strings.Contains(r.body, codes[0]) {
		t.Error("a sealed set of codes opened in another session")
	}

	r = a.post("/account/security/backup-codes/download", url.Values{"code": append([]string{"<script>", "../../etc"}, codes...)})
	expect(t, r, 200, "")
	if !strings.HasPrefix(r.header.Get("Content-Disposition"), `attachment; filename="moat-backup-codes.txt"`) ||
		!strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Errorf("download headers %v", r.header)
	}
	if strings.Contains(r.body, "script") || strings.Contains(r.body, "etc") || strings.Count(r.body, "-") < 10 || !strings.Contains(r.body, codes[9]) {
		t.Errorf("download body:\n%s", r.body)
	}
	expect(t, a.post("/account/security/backup-codes/download", nil), 400, "")

	// Regenerating needs a step-up, then shows a new set once.
	expect(t, a.post("/account/security/backup-codes", nil), 303, "/account/step-up?next="+url.QueryEscape("/account/security"))
	s.nextStep()
	expect(t, a.post("/account/step-up", url.Values{"method": {"totp"}, "response": {p.code()}, "next": {"/account/security"}}), 303, "/account/security?n=stepped-up")
	expect(t, a.post("/account/security/backup-codes", nil), 303, "/account/security/backup-codes?new=1")
	fresh := s.shownCodes(a)
	if fresh[0] == codes[0] {
		t.Error("the new set repeats the old")
	}
}

// TestTwoFactorSettingsAndMandatoryEnrolment: turning sign-in 2FA off
// needs a step-up and then signs in with the password alone; a platform
// that makes 2FA mandatory sends a new account to enrolment first.
func TestTwoFactorSettingsAndMandatoryEnrolment(t *testing.T) {
	s := newSite(t)
	a := s.agent()
	const email = "radia@example.com"
	s.signUp(a, email)
	p, _ := s.enrolApp(a)
	r := a.get("/account/security")
	contains(t, r, `id="set-signin" name="signin" checked`, `id="set-funding" name="funding" checked`)

	form := url.Values{"funding": {"on"}} // sign-in off, trading off
	expect(t, a.post("/account/security/settings", form), 303, "/account/step-up?next="+url.QueryEscape("/account/security"))
	s.nextStep()
	expect(t, a.post("/account/step-up", url.Values{"method": {"totp"}, "response": {p.code()}, "next": {"/account/security"}}), 303, "/account/security?n=stepped-up")
	expect(t, a.post("/account/security/settings", form), 303, "/account/security?n=settings")
	r = a.get("/account/security")
	contains(t, r, `id="set-signin" name="signin">`, `id="set-funding" name="funding" checked`)
	b := s.agent()
	expect(t, b.post("/login", url.Values{"email": {email}, "password": {testPassword}}), 303, "/account")

	m := newSite(t, func(c *config.Config) { c.MFA.MandatoryForAll = true })
	c := m.agent()
	expect(t, c.post("/signup", url.Values{"email": {"new@example.com"}, "password": {testPassword}}), 303, "/signup/check-email")
	tok := confirmLinkRe.FindStringSubmatch(m.mails("new@example.com")[0].Body)[1]
	expect(t, c.post("/confirm", url.Values{"token": {tok}}), 200, "")
	expect(t, c.post("/login", url.Values{"email": {"new@example.com"}, "password": {testPassword}}), 303, "/account/security?n=must-enrol")
	expect(t, c.get("/account"), 303, "/account/security?n=must-enrol")
	expect(t, c.get("/account/settings"), 303, "/account/security?n=must-enrol")
	r = c.get("/account/security?n=must-enrol")
	expect(t, r, 200, "")
	contains(t, r, "Set up two-factor authentication to continue")
	m.enrolApp(c)
	expect(t, c.get("/account"), 200, "")
	if strings.Contains(html.UnescapeString(c.get("/account/security").body), "Set up two-factor authentication to continue") {
		t.Error("still asked to enrol after enrolling")
	}
}

// TestTwoFactorOnTwoNodes: two servers on PostgreSQL and Redis, sharing
// the master key, are interchangeable for 2FA: an enrolment begun on one
// is finished on the other, the backup codes sealed by one are shown by
// the other, a code used on one is refused on the other.
func TestTwoFactorOnTwoNodes(t *testing.T) {
	testenv.PostgresDSN(t)
	redisAddr := testenv.RedisAddr(t)
	redisPrefix := testenv.RedisKeyPrefix(t)
	dsn := pgtest.NewDB(t).DSN(t)
	shared := func(c *config.Config) {
		c.Database.Driver, c.Database.DSN = "postgres", dsn
		c.Redis.Addr, c.Redis.KeyPrefix = redisAddr, redisPrefix
		c.Secrets.EncryptionKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
		c.Dev = true
	}
	// A clock of its own: Redis keeps the code counters of every run.
	clk := clock.NewFake(time.Now().Truncate(time.Hour))
	nodeA, nodeB := newSiteAt(t, clk, shared), newSiteAt(t, clk, shared)
	a := nodeA.agent()
	b := a.on(nodeB)
	const email = "two-nodes-2fa@example.com"
	nodeA.signUp(a, email)

	expect(t, a.post("/account/security/app/begin", nil), 303, "/account/security/app")
	m := totpKeyRe.FindStringSubmatch(b.get("/account/security/app").body)
	if m == nil {
		t.Fatal("node B does not show the enrolment begun on node A")
	}
	secret, _ := totp.ParseSecret(strings.ReplaceAll(m[1], " ", ""))
	p := app{s: nodeA, secret: secret}
	expect(t, a.post("/account/security/app", url.Values{"code": {p.code()}}), 303, "/account/security/backup-codes?new=1")
	codes := nodeB.shownCodes(b)

	expect(t, a.post("/logout", nil), 303, "/login?n=signed-out")
	nodeA.nextStep()
	expect(t, a.post("/login", url.Values{"email": {email}, "password": {testPassword}}), 303, "/login/factor")
	code := p.code()
	expect(t, b.post("/login/factor", url.Values{"factor": {"totp"}, "response": {code}}), 303, "/account")
	expect(t, a.get("/account"), 200, "")

	// The same code on the other node, in the same 30 seconds: refused.
	d := nodeB.agent()
	expect(t, d.post("/login", url.Values{"email": {email}, "password": {testPassword}}), 303, "/login/factor")
	r := d.on(nodeA).post("/login/factor", url.Values{"factor": {"totp"}, "response": {code}})
	expect(t, r, 400, "")
	contains(t, r, "That code was already used")
	expect(t, d.post("/login/factor", url.Values{"factor": {"backup_code"}, "response": {codes[0]}}), 303, "/account/security?n=backup-code-used")
	contains(t, d.on(nodeA).get("/account/security?n=backup-code-used"), "You have 9 backup codes left")
}
