package web

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/clock"
)

// TestSafeNext: the step-up page goes back only to the site's own account
// pages, however the next parameter is dressed up.
func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"":                                          PathSecurity,
		"/account":                                  "/account",
		"/account/security/keys/new?passkey=1":      "/account/security/keys/new?passkey=1",
		"/security/apikeys/new":                     "/security/apikeys/new",
		"https://evil.example/account":              PathSecurity,
		"//evil.example/account":                    PathSecurity,
		"/\\evil.example":                           PathSecurity,
		"/account\r\nLocation: https://evil":        PathSecurity,
		"/login":                                    PathSecurity,
		"/accountant":                               PathSecurity,
		"/account/step-up?next=https://evil":        PathSecurity,
		"/account/../login":                         PathSecurity,
		"/account/%2e%2e/login":                     PathSecurity,
		"javascript:alert(1)":                       PathSecurity,
		"/account#frag":                             PathSecurity,
		"/account/security?n=x&next=//evil.example": "/account/security?n=x&next=//evil.example",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzSafeNext: whatever comes in, the result is a path on this site that
// a browser cannot read as another host.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/account", "//x", "/\\x", "https://x", "/account/%2F%2Fx", "/security/apikeys", "/account?x=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := safeNext(in)
		if out == PathSecurity {
			return
		}
		u, err := url.Parse(out)
		if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(out, "/") || strings.HasPrefix(out, "//") ||
			strings.ContainsAny(out, "\\\r\n\t") || !(u.Path == "/account" || strings.HasPrefix(u.Path, "/account/") || strings.HasPrefix(u.Path, "/security/")) {
			t.Fatalf("safeNext(%q) = %q", in, out)
		}
		// The browser resolves it against the site: it must stay there.
		base, _ := url.Parse("https://moat.example/account/step-up")
		if r := base.ResolveReference(u); r.Host != "moat.example" {
			t.Fatalf("safeNext(%q) = %q leaves the site: %s", in, out, r)
		}
	})
}

func flashHandler(t testing.TB) (*Handler, *clock.Fake) {
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	h, err := New(Deps{Accounts: &account.Service{}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if h.flash, err = newFlashBox(nil); err != nil {
		t.Fatal(err)
	}
	return h, clk
}

// TestFlash: a sealed hand-over opens once, for its session and kind, and
// not after it expired.
func TestFlash(t *testing.T) {
	h, clk := flashHandler(t)
	seal := func() string {
		rec := httptest.NewRecorder()
		if err := h.setFlash(rec, "sess-1", flashValue{Kind: "backup-codes", Codes: []string{"AAAAA-BBBBB"}}); err != nil {
			t.Fatal(err)
		}
		c := rec.Result().Cookies()
		if len(c) != 1 || !c[0].HttpOnly || c[0].SameSite != http.SameSiteLaxMode {
			t.Fatalf("flash cookie %+v", c)
		}
		return c[0].Value
	}
	open := func(value, session, kind string) bool {
		req := httptest.NewRequest("GET", "/", nil)
		req.AddCookie(&http.Cookie{Name: h.flashName(), Value: value})
		rec := httptest.NewRecorder()
		v, ok := h.takeFlash(rec, req, session, kind)
		if c := rec.Result().Cookies(); len(c) != 1 || c[0].MaxAge >= 0 {
			t.Errorf("the flash cookie was not cleared: %+v", c)
		}
		return ok && len(v.Codes) == 1 && v.Codes[0] == "AAAAA-BBBBB"
	}
	v := seal()
	if !open(v, "sess-1", "backup-codes") {
		t.Error("a fresh flash does not open")
	}
	if open(v, "sess-2", "backup-codes") {
		t.Error("a flash opened in another session")
	}
	if open(v, "sess-1", "other") {
		t.Error("a flash opened as another kind")
	}
	raw, _ := base64.RawURLEncoding.DecodeString(v)
	raw[len(raw)-1] ^= 1
	if open(base64.RawURLEncoding.EncodeToString(raw), "sess-1", "backup-codes") {
		t.Error("a tampered flash opened")
	}
	v = seal()
	clk.Advance(flashTTL)
	if open(v, "sess-1", "backup-codes") {
		t.Error("an expired flash opened")
	}
}

// FuzzFlashCookie: any cookie value is refused without a panic.
func FuzzFlashCookie(f *testing.F) {
	h, _ := flashHandler(f)
	f.Add("")
	f.Add("AQIDBA")
	f.Add(strings.Repeat("A", 6000))
	f.Fuzz(func(t *testing.T, value string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Cookie", h.flashName()+"="+value)
		if _, ok := h.takeFlash(httptest.NewRecorder(), req, "sess-1", "backup-codes"); ok {
			t.Fatalf("cookie %q opened", value)
		}
	})
}
