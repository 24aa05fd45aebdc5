package web_test

import (
	"bytes"
	"fmt"
	"html"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/recovery"
	"github.com/moat-dev/moat/internal/recovery/recoverytest"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/web"
)

// The recovery-case pages: a person who lost their second factor opens a
// case from the sign-in's second step (or a password-reset link), follows
// it on the status page and cancels it with the e-mailed link.

// answers as the form sends them.
var formAnswers = [][2]string{
	{"account_created", "2026-10"},
	{"devices", "Firefox on Linux"},
	{"last_deposit_amount", "0.5"},
	{"last_deposit_asset", "BTC"},
	{"note", "I dropped my phone in the sea."},
}

// multipartForm encodes fields and, unless filename is "-", a document
// part.
func multipartForm(t *testing.T, fields [][2]string, filename, ctype string, doc []byte) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if filename != "-" {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="document"; filename=%q`, filename))
		h.Set("Content-Type", ctype)
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(doc)
	}
	mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

// postMultipart submits the recovery form as a browser would.
func (b *browser) postMultipart(path string, body []byte, ctype string) *resp {
	b.e.t.Helper()
	req, _ := http.NewRequest("POST", b.e.srv.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", b.e.origin)
	return b.do(req)
}

// addApp gives the account an authenticator app in the store: the lost
// factor a case recovers (the sign-in itself asks the test's fake factor).
func (e *env) addApp(addr string) store.Account {
	e.t.Helper()
	a, err := e.store.GetAccountByEmail(e.t.Context(), addr)
	if err != nil {
		e.t.Fatal(err)
	}
	now := e.clock.Now()
	if err := e.store.CreateTOTP(e.t.Context(), store.TOTPCredential{AccountID: a.ID, Secret: []byte("sealed seed"), ConfirmedAt: now, CreatedAt: now}); err != nil {
		e.t.Fatal(err)
	}
	return a
}

// atSecondFactor signs up addr and stops its sign-in at the second step.
func (e *env) atSecondFactor(b *browser, addr string) store.Account {
	e.t.Helper()
	e.signUp(b, addr)
	a := e.addApp(addr)
	r := b.post("/login", url.Values{"email": {addr}, "password": {testPassword}})
	if r.location() == "/login/device" {
		r = b.post("/login/device", url.Values{"code": {e.code(e.lastMail(addr).Body)}})
	}
	expect(e.t, r, 303, "/login/factor")
	return a
}

func (e *env) cases(accountID string) []store.RecoveryCase {
	e.t.Helper()
	cs, err := e.store.ListRecoveryCases(e.t.Context(), store.RecoveryCaseFilter{AccountID: accountID})
	if err != nil {
		e.t.Fatal(err)
	}
	return cs
}

var statusTokenRe = regexp.MustCompile(`^/recovery/status\?token=([A-Za-z0-9_\-]+)&n=opened$`)

// openCase sends the form with a real PNG and returns the status token.
func (e *env) openCase(b *browser) string {
	e.t.Helper()
	body, ct := multipartForm(e.t, formAnswers, "passport.png", "image/png", recoverytest.PNG())
	r := b.postMultipart("/recovery/new", body, ct)
	expect(e.t, r, 303, "")
	m := statusTokenRe.FindStringSubmatch(r.location())
	if m == nil {
		e.t.Fatalf("redirect to %q, want the status page", r.location())
	}
	return m[1]
}

const recoveryAddr = "lost@example.com"

func TestRecoveryOpenFromSecondFactor(t *testing.T) {
	e := newEnv(t, false, fakeFactor{"totp", "424242"})
	b := e.browser()
	a := e.atSecondFactor(b, recoveryAddr)

	r := b.get("/login/factor")
	expect(t, r, 200, "")
	contains(t, r, `Lost your second factor?`, `href="/recovery/new"`)

	r = b.get("/recovery/new")
	expect(t, r, 200, "")
	contains(t, r, `enctype="multipart/form-data"`, `type="month"`, `name="account_created"`,
		`accept="image/jpeg,image/png,application/pdf"`, "JPEG, PNG or PDF, at most 10 MB", "72-hour waiting period", "7 days")
	if strings.Contains(r.body, `name="token"`) {
		t.Error("the form from the sign-in carries a token field")
	}

	tok := e.openCase(b)
	r = b.get("/recovery/status?token=" + tok + "&n=opened")
	expect(t, r, 200, "")
	cs := e.cases(a.ID)
	if len(cs) != 1 || cs[0].State != store.RecoveryOpen || cs[0].Via != recovery.ViaPassword || cs[0].DocumentType != "image/png" {
		t.Fatalf("cases %+v", cs)
	}
	contains(t, r, cs[0].Reference, "Keep this page", "Waiting for review", "0 of 2",
		html.EscapeString(e.srv.URL+"/recovery/status?token="+tok))
	if strings.Contains(r.body, "passport.png") || strings.Contains(r.body, "sea") {
		t.Error("the status page shows what was uploaded or answered")
	}
	// Later visits (a bookmark) show the case without the "keep this page" box.
	r = b.get("/recovery/status?token=" + tok)
	expect(t, r, 200, "")
	contains(t, r, cs[0].Reference, "Waiting for review")
	if strings.Contains(r.body, "Keep this page") {
		t.Error("the bookmark box shows on a later visit")
	}
	// The owner's address heard at once, with a cancel link.
	mail := e.lastMail(recoveryAddr)
	if !strings.Contains(mail.Body, cs[0].Reference) {
		t.Errorf("no reference in the e-mail:\n%s", mail.Body)
	}
	e.link(mail.Body, recovery.PathCancel)

	// A second case while this one is open: refused on the form, readably.
	body, ct := multipartForm(t, formAnswers, "passport.png", "image/png", recoverytest.PNG())
	r = b.postMultipart("/recovery/new", body, ct)
	expect(t, r, 409, "")
	contains(t, r, "already has a recovery request", cs[0].Reference, `value="Firefox on Linux"`)
}

func TestRecoveryCancelByLink(t *testing.T) {
	e := newEnv(t, false, fakeFactor{"totp", "424242"})
	b := e.browser()
	a := e.atSecondFactor(b, recoveryAddr)
	status := e.openCase(b)
	cancel := e.link(e.lastMail(recoveryAddr).Body, recovery.PathCancel)

	// The owner opens the link in another browser (their mail app).
	o := e.browser()
	r := o.get("/recovery/cancel?token=" + cancel)
	expect(t, r, 200, "")
	contains(t, r, "Cancel the recovery request?", `action="/recovery/cancel"`, `name="token" value="`+cancel+`"`)
	if cs := e.cases(a.ID); cs[0].State != store.RecoveryOpen {
		t.Fatalf("opening the link changed the case: %s", cs[0].State)
	}
	r = o.post("/recovery/cancel", url.Values{"token": {cancel}})
	expect(t, r, 200, "")
	contains(t, r, "Recovery request cancelled", e.cases(a.ID)[0].Reference)
	if cs := e.cases(a.ID); cs[0].State != store.RecoveryCancelled {
		t.Fatalf("state %s after cancelling", cs[0].State)
	}
	if m := e.lastMail(recoveryAddr); !strings.Contains(strings.ToLower(m.Subject), "cancel") {
		t.Errorf("last e-mail %q, want the cancellation", m.Subject)
	}
	// The status page says so.
	r = b.get("/recovery/status?token=" + status)
	expect(t, r, 200, "")
	contains(t, r, "Cancelled", "with the link in our e-mail")

	// The link again, and bad links: readable pages that say what to do.
	for _, tc := range []struct {
		name string
		do   func() *resp
		want int
		text string
	}{
		{"used link, GET", func() *resp { return o.get("/recovery/cancel?token=" + cancel) }, 400, "This cancel link does not work"},
		{"used link, POST", func() *resp { return o.post("/recovery/cancel", url.Values{"token": {cancel}}) }, 400, "This cancel link does not work"},
		{"unknown link", func() *resp { return o.get("/recovery/cancel?token=nope") }, 400, "contact support"},
		{"no token", func() *resp { return o.get("/recovery/cancel") }, 400, "This cancel link does not work"},
		{"no token, POST", func() *resp { return o.post("/recovery/cancel", url.Values{}) }, 400, "This cancel link does not work"},
		{"unknown status link", func() *resp { return o.get("/recovery/status?token=nope") }, 400, "We do not know this status link"},
		{"no status token", func() *resp { return o.get("/recovery/status") }, 400, "incomplete"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.do()
			expect(t, r, tc.want, "")
			contains(t, r, tc.text, `href="/login"`)
		})
	}
}

func TestRecoveryRejectedStatus(t *testing.T) {
	e := newEnv(t, false, fakeFactor{"totp", "424242"})
	b := e.browser()
	e.atSecondFactor(b, recoveryAddr)
	tok := e.openCase(b)
	c, err := e.rec.Status(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	staff, err := e.svc.CreateConfirmedUser(t.Context(), "support@example.com", testPassword, store.RoleSupport, "test")
	if err != nil {
		t.Fatal(err)
	}
	const reason = "The photo of the document is too blurry to read."
	if _, err := e.rec.Reject(t.Context(), account.Principal{Account: staff}, c.ID, reason, account.Client{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	r := b.get("/recovery/status?token=" + tok)
	expect(t, r, 200, "")
	contains(t, r, "Not approved", html.EscapeString(reason), "What to do next:", "open a new request")

	// A new case may be opened now; the form is there again.
	r = b.get("/recovery/new")
	expect(t, r, 200, "")
}

func TestRecoveryDocumentRefused(t *testing.T) {
	e := newEnv(t, false, fakeFactor{"totp", "424242"})
	b := e.browser()
	a := e.atSecondFactor(b, recoveryAddr)

	big := bytes.Repeat([]byte{0x89}, recovery.MaxDocumentBytes+1)
	copy(big, recoverytest.PNG())
	for _, tc := range []struct {
		name, filename, ctype string
		doc                   []byte
		status                int
		text                  string
	}{
		{"executable renamed .png", "passport.png", "image/png", recoverytest.Executable(), 400, "not a JPEG, PNG or PDF"},
		{"text file", "passport.pdf", "application/pdf", []byte("%PDF-1.7 but not really"), 400, "not a JPEG, PNG or PDF"},
		{"no file chosen", "", "application/octet-stream", nil, 400, "Choose a photo or scan"},
		{"10 MiB and one byte", "passport.png", "image/png", big, 413, "larger than 10 MB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, ct := multipartForm(t, formAnswers, tc.filename, tc.ctype, tc.doc)
			r := b.postMultipart("/recovery/new", body, ct)
			expect(t, r, tc.status, "")
			if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
				t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
			}
			contains(t, r, tc.text, `id="document-error"`, `aria-invalid="true"`,
				"Choose your document again", `value="2026-10"`, `value="Firefox on Linux"`, "I dropped my phone in the sea.")
			if n := len(e.cases(a.ID)); n != 0 {
				t.Fatalf("%d cases stored", n)
			}
		})
	}
}

func TestRecoveryAnswersChecked(t *testing.T) {
	e := newEnv(t, false, fakeFactor{"totp", "424242"})
	b := e.browser()
	a := e.atSecondFactor(b, recoveryAddr)
	for _, tc := range []struct {
		name   string
		fields [][2]string
		field  string
	}{
		{"no month", [][2]string{{"devices", "iPhone"}}, "account_created"},
		{"month in the future", [][2]string{{"account_created", "2099-01"}}, "account_created"},
		{"not a month", [][2]string{{"account_created", "last spring"}}, "account_created"},
		{"a control character", [][2]string{{"account_created", "2026-10"}, {"devices", "iPhone\x00"}}, "devices"},
		{"an answer over the form's limit", [][2]string{{"account_created", "2026-10"}, {"withdrawal_address", strings.Repeat("x", 5000)}}, "withdrawal_address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, ct := multipartForm(t, tc.fields, "passport.png", "image/png", recoverytest.PNG())
			r := b.postMultipart("/recovery/new", body, ct)
			expect(t, r, 400, "")
			contains(t, r, `id="`+tc.field+`-error"`, "Choose your document again")
			if n := len(e.cases(a.ID)); n != 0 {
				t.Fatalf("%d cases stored", n)
			}
		})
	}
}

// TestRecoveryMalformedForms: whatever arrives, a readable 4xx page, never
// a 500, and nothing stored.
func TestRecoveryMalformedForms(t *testing.T) {
	e := newEnv(t, false, fakeFactor{"totp", "424242"})
	b := e.browser()
	a := e.atSecondFactor(b, recoveryAddr)
	doc := recoverytest.PNG()
	good, goodCT := multipartForm(t, formAnswers, "passport.png", "image/png", doc)
	many := make([][2]string, 40)
	for i := range many {
		many[i] = [2]string{"note", "x"}
	}
	manyBody, manyCT := multipartForm(t, many, "passport.png", "image/png", doc)
	twoDocs := func() ([]byte, string) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		mw.WriteField("account_created", "2026-10")
		for range 2 {
			w, _ := mw.CreateFormFile("document", "p.png")
			w.Write(doc)
		}
		mw.Close()
		return buf.Bytes(), mw.FormDataContentType()
	}
	twoBody, twoCT := twoDocs()
	for _, tc := range []struct {
		name, ctype string
		body        []byte
		want        int
	}{
		{"url-encoded", "application/x-www-form-urlencoded", []byte("account_created=2026-10"), 400},
		{"no boundary", "multipart/form-data", good, 400},
		{"wrong boundary", "multipart/form-data; boundary=nothing-like-it", good, 400},
		{"cut short", goodCT, good[:len(good)/2], 400},
		{"garbage", goodCT, []byte("\x00\x01\x02--\r\n\r\n"), 400},
		{"empty", goodCT, nil, 400},
		{"too many parts", manyCT, manyBody, 400},
		{"two documents", twoCT, twoBody, 400},
		{"JSON", "application/json", []byte(`{"account_created":"2026-10"}`), 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.postMultipart("/recovery/new", tc.body, tc.ctype)
			expect(t, r, tc.want, "")
			contains(t, r, "<h1>Recover your account</h1>")
			if n := len(e.cases(a.ID)); n != 0 {
				t.Fatalf("%d cases stored", n)
			}
		})
	}
	// Unknown fields are ignored.
	extra, extraCT := multipartForm(t, append([][2]string{{"admin", "true"}, {"account_id", "someone-else"}}, formAnswers...), "passport.png", "image/png", doc)
	expect(t, b.postMultipart("/recovery/new", extra, extraCT), 303, "")
}

// TestRecoveryBodyLimits: the form may carry a 10 MB document, but a body
// over its own limit, and a large body to any other page, are refused
// before anything reads it.
func TestRecoveryBodyLimits(t *testing.T) {
	e := newEnv(t, false, fakeFactor{"totp", "424242"})
	b := e.browser()
	a := e.atSecondFactor(b, recoveryAddr)
	// In-process: a client still sending a body the server refused may see
	// the connection reset before it reads the answer.
	serve := func(path, ctype, accept string, size int) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", path, bytes.NewReader(make([]byte, size)))
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		for _, c := range b.jar.Cookies(mustURL(e.srv.URL)) {
			req.AddCookie(c)
		}
		rec := httptest.NewRecorder()
		e.srv.Config.Handler.ServeHTTP(rec, req)
		return rec
	}
	rec := serve("/recovery/new", "multipart/form-data; boundary=x", "text/html", web.MaxRecoveryFormBytes+1)
	if rec.Code != 413 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") || !strings.Contains(rec.Body.String(), "too large") {
		t.Errorf("form over its limit: %d %q %.300s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	rec = serve("/login", "application/x-www-form-urlencoded", "", 2<<20)
	if rec.Code != 413 || !strings.Contains(rec.Body.String(), `"too_large"`) {
		t.Errorf("sign-in form over the global limit: %d %.300s", rec.Code, rec.Body)
	}
	rec = serve("/recovery/cancel", "application/x-www-form-urlencoded", "text/html", 2<<20)
	if rec.Code != 413 {
		t.Errorf("cancel form over the global limit: %d %.300s", rec.Code, rec.Body)
	}
	rec = serve("/api/v1/signin", "application/json", "", 2<<20)
	if rec.Code != 413 || !strings.Contains(rec.Body.String(), `"too_large"`) {
		t.Errorf("API over the global limit: %d %.300s", rec.Code, rec.Body)
	}
	if n := len(e.cases(a.ID)); n != 0 {
		t.Fatalf("%d cases stored", n)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func TestRecoveryNeedsProof(t *testing.T) {
	e := newEnv(t, false, fakeFactor{"totp", "424242"})
	b := e.browser()

	// Nobody signed in: how to get here.
	r := b.get("/recovery/new")
	expect(t, r, 200, "")
	contains(t, r, "Lost your second factor?", `href="/login"`, `href="`+account.PathForgotPassword+`"`)
	if strings.Contains(r.body, "<form") && strings.Contains(r.body, `action="/recovery/new"`) {
		t.Error("the form is offered without a proof")
	}
	body, ct := multipartForm(t, formAnswers, "passport.png", "image/png", recoverytest.PNG())
	r = b.postMultipart("/recovery/new", body, ct)
	expect(t, r, 400, "")
	contains(t, r, `href="/login"`)

	// A pending sign-in that is gone, and a reset link that does not work.
	b.setCookie(e.cookieName("pending"), "not-a-sign-in")
	r = b.get("/recovery/new")
	expect(t, r, 400, "")
	contains(t, r, "Your sign-in has expired", `href="/login"`)
	r = b.postMultipart("/recovery/new", body, ct)
	expect(t, r, 400, "")
	contains(t, r, `href="/login"`)

	r = e.browser().get("/recovery/new?token=not-a-reset-link")
	expect(t, r, 400, "")
	contains(t, r, "This password-reset link no longer works", `href="`+account.PathForgotPassword+`"`)
	withToken, ct2 := multipartForm(t, append([][2]string{{"token", "not-a-reset-link"}}, formAnswers...), "passport.png", "image/png", recoverytest.PNG())
	r = e.browser().postMultipart("/recovery/new", withToken, ct2)
	expect(t, r, 400, "")
	contains(t, r, "This password-reset link no longer works")
}

// TestRecoveryFromResetLink: someone who lost the password too opens a
// case from the password-reset link.
func TestRecoveryFromResetLink(t *testing.T) {
	e := newEnv(t, false, fakeFactor{"totp", "424242"})
	b := e.browser()
	e.signUp(b, recoveryAddr)
	a := e.addApp(recoveryAddr)
	if err := e.svc.RequestPasswordReset(t.Context(), recoveryAddr, account.Client{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	reset := e.link(e.lastMail(recoveryAddr).Body, account.PathResetPassword)

	o := e.browser() // another browser: no pending sign-in
	r := o.get("/recovery/new?token=" + reset)
	expect(t, r, 200, "")
	contains(t, r, `<input type="hidden" name="token" value="`+reset+`">`)
	body, ct := multipartForm(t, append([][2]string{{"token", reset}}, formAnswers...), "id.png", "image/png", recoverytest.PNG())
	r = o.postMultipart("/recovery/new", body, ct)
	expect(t, r, 303, "")
	if !statusTokenRe.MatchString(r.location()) {
		t.Fatalf("redirect to %q", r.location())
	}
	cs := e.cases(a.ID)
	if len(cs) != 1 || cs[0].Via != recovery.ViaEmail {
		t.Fatalf("cases %+v", cs)
	}
	// The reset link itself is not used up.
	if _, err := e.svc.CheckResetLink(t.Context(), reset); err != nil {
		t.Errorf("reset link after opening a case: %v", err)
	}
}

// TestFactorPageLostFactorLinks: the second step offers a backup code (when
// the account has them) and a recovery case.
func TestFactorPageLostFactorLinks(t *testing.T) {
	e := newEnv(t, false, fakeFactor{"totp", "424242"}, fakeFactor{"backup_code", "bk-1111"})
	b := e.browser()
	e.atSecondFactor(b, recoveryAddr)
	r := b.get("/login/factor")
	expect(t, r, 200, "")
	contains(t, r, `Lost your second factor? <a href="/login/factor?method=backup_code">Use a backup code</a>, or <a href="/recovery/new">open a recovery case</a>.`)
}

// TestRecoveryStatusLinkUsesPublicOrigin: the full status link the person
// is told to keep is built from the configured public origin, not from the
// request's Host header (which a proxy may rewrite or a client may forge).
func TestRecoveryStatusLinkUsesPublicOrigin(t *testing.T) {
	e := newEnv(t, false, fakeFactor{"totp", "424242"})
	b := e.browser()
	e.atSecondFactor(b, recoveryAddr)
	tok := e.openCase(b)
	req, _ := http.NewRequest("GET", e.srv.URL+"/recovery/status?token="+tok+"&n=opened", nil)
	req.Host = "evil.example"
	r := b.do(req)
	expect(t, r, 200, "")
	contains(t, r, html.EscapeString(e.origin+"/recovery/status?token="+tok))
	if strings.Contains(r.body, "evil.example") {
		t.Error("the status link uses the request's Host")
	}
}
