package web_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/httpx"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/notify/mailtest"
	"github.com/moat-dev/moat/internal/recovery"
	"github.com/moat-dev/moat/internal/recovery/recoverytest"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/sqlite"
	"github.com/moat-dev/moat/internal/web"
)

// env is the web pages (and the API, mounted as the server mounts it)
// behind the server's middleware stack, over a real account service on a
// SQLite file.
type env struct {
	t      *testing.T
	store  *sqlite.Store
	svc    *account.Service
	rec    *recovery.Service
	clock  *clock.Fake
	srv    *httptest.Server
	origin string
	secure bool
}

const testPassword = "lantern-quarry-velvet-42"

func newEnv(t *testing.T, secure bool, factors ...account.Factor) *env {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	origin := "http://" + srv.Listener.Addr().String()
	if secure {
		origin = "https://" + srv.Listener.Addr().String()
	}
	sv := recoverytest.NewServices(t, origin, factors...)
	st, clk, svc, rec := sv.Store, sv.Clock, sv.Accounts, sv.Recovery
	pages, err := web.New(web.Deps{Accounts: svc, Brand: "moat", Secure: secure, Dev: true, Clock: clk, Recovery: rec, PublicOrigin: origin})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	pages.Register(mux)
	apiMux := http.NewServeMux()
	api.New(api.Deps{Accounts: svc, Recovery: rec}).Register(apiMux)
	mux.Handle("/api/", httpx.RequireJSON(apiMux))
	h, err := httpx.Stack(mux, httpx.Options{
		Logger: slog.New(slog.DiscardHandler), Rand: rand.Reader, PublicOrigin: origin, MaxBodyBytes: 1 << 20,
		BodyLimits: map[string]int64{web.PathRecoveryNew: web.MaxRecoveryFormBytes, api.PathRecoveryCases: api.MaxRecoveryCaseBytes},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	if secure {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return &env{t: t, store: st, svc: svc, rec: rec, clock: clk, srv: srv, origin: origin, secure: secure}
}

// cookie names as the pages set them.
func (e *env) cookieName(base string) string {
	if e.secure {
		return "__Host-moat_" + base
	}
	return "moat_" + base
}

// browser is one cookie jar: one browser, one device.
type browser struct {
	e   *env
	jar *cookiejar.Jar
	c   *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	c := new(http.Client)
	*c = *e.srv.Client() // a copy: the server's client is shared
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{e: e, jar: jar, c: c}
}

type resp struct {
	status int
	header http.Header
	body   string
	// cookies set by this response, by name.
	cookies map[string]*http.Cookie
}

func (r *resp) location() string { return r.header.Get("Location") }

// do sends req. The clock moves a second first, so that e-mails (listed
// newest first) have distinct times.
func (b *browser) do(req *http.Request) *resp {
	b.e.t.Helper()
	b.e.clock.Advance(time.Second)
	res, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	out := &resp{status: res.StatusCode, header: res.Header, body: string(body), cookies: map[string]*http.Cookie{}}
	for _, c := range res.Cookies() {
		out.cookies[c.Name] = c
	}
	return out
}

func (b *browser) get(path string) *resp {
	b.e.t.Helper()
	req, _ := http.NewRequest("GET", b.e.srv.URL+path, nil)
	req.Header.Set("Sec-Fetch-Site", "none")
	return b.do(req)
}

// post submits a form as a same-origin page would. Extra header pairs
// override.
func (b *browser) post(path string, form url.Values, hdr ...string) *resp {
	b.e.t.Helper()
	req, _ := http.NewRequest("POST", b.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", b.e.origin)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	return b.do(req)
}

// cookie returns the jar's value of a cookie ("" if none).
func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.e.srv.URL)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func (b *browser) setCookie(name, value string) {
	u, _ := url.Parse(b.e.srv.URL)
	b.jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/", Secure: b.e.secure}})
}

// expect checks a response's status and, when loc is set, its redirect.
func expect(t *testing.T, r *resp, status int, loc string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body:\n%s", r.status, status, r.body)
	}
	if loc != "" && r.location() != loc {
		t.Fatalf("Location %q, want %q", r.location(), loc)
	}
}

func contains(t *testing.T, r *resp, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(r.body, w) {
			t.Errorf("page lacks %q; body:\n%s", w, r.body)
		}
	}
}

// lastMail returns the newest e-mail to addr.
func (e *env) lastMail(addr string) store.OutboxMessage {
	e.t.Helper()
	msgs, err := e.store.ListOutbox(e.t.Context(), notify.ChannelEmail, 100)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range msgs {
		if m.To == addr {
			return m
		}
	}
	e.t.Fatalf("no e-mail to %s", addr)
	return store.OutboxMessage{}
}

// link finds the token of the link to path in an e-mail body.
func (e *env) link(body, path string) string {
	e.t.Helper()
	return mailtest.LinkToken(e.t, body, e.origin+path)
}

func (e *env) code(body string) string {
	e.t.Helper()
	return mailtest.Code(e.t, body)
}

// signUp creates and confirms an account through the pages.
func (e *env) signUp(b *browser, addr string) {
	e.t.Helper()
	expect(e.t, b.post("/signup", url.Values{"email": {addr}, "password": {testPassword}}), 303, "/signup/check-email")
	tok := e.link(e.lastMail(addr).Body, "/confirm")
	expect(e.t, b.post("/confirm", url.Values{"token": {tok}}), 200, "")
}

// signIn signs b in, approving a new device with the e-mailed code.
func (e *env) signIn(b *browser, addr string) {
	e.t.Helper()
	r := b.post("/login", url.Values{"email": {addr}, "password": {testPassword}})
	if r.location() == "/login/device" {
		r = b.post("/login/device", url.Values{"code": {e.code(e.lastMail(addr).Body)}})
	}
	expect(e.t, r, 303, "/account")
}

var sessionIDRe = regexp.MustCompile(`name="id" value="([^"]+)"`)

// fakeFactor is a second factor every account has, answered by one code.
type fakeFactor struct{ name, code string }

func (f fakeFactor) Name() string                                   { return f.name }
func (f fakeFactor) Enrolled(context.Context, string) (bool, error) { return true, nil }
func (f fakeFactor) Verify(_ context.Context, _, response string) error {
	if response != f.code {
		return apperr.Field(apperr.TokenInvalid, "", "That code is not right.")
	}
	return nil
}
