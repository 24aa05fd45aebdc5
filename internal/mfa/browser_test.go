package mfa_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/mfa"
	mfawebauthn "github.com/moat-dev/moat/internal/mfa/webauthn"
	"github.com/moat-dev/moat/internal/testenv"
	"github.com/moat-dev/moat/internal/testenv/chrome"
)

// This is a spike of the browser test the web adapter will have: real
// headless Chromium with the DevTools virtual authenticator (CTAP2, resident
// keys, user verification) drives the bundled script against a tiny adapter
// over the Service. It registers a security key through a form, signs in
// with it as a second factor, registers a passkey and signs in without a
// password.

const page = `<!doctype html>
<meta charset="utf-8"><title>keys</title>
<form id="add" data-webauthn="register" data-begin="/register/begin" data-finish="/register/finish" data-redirect="/done">
  <label>Name <input name="name" value="Desk key"></label>
  <p data-webauthn-error role="alert" hidden></p>
  <button type="submit">Add security key</button>
</form>
<script src="/webauthn.js" defer></script>`

// testAdapter is the smallest web adapter over the Service: JSON in, JSON
// out, errors as {"error": {"code", "message"}}.
func testAdapter(e *env) http.Handler {
	mux := http.NewServeMux()
	alice := func() string { return e.user(true).Account.ID }
	reply := func(w http.ResponseWriter, v any, err error) {
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			v = map[string]any{"error": map[string]any{"code": apperr.CodeOf(err), "message": apperr.MessageOf(err)}}
		}
		_ = json.NewEncoder(w).Encode(v)
	}
	body := func(r *http.Request) []byte {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		return b
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page)
	})
	mux.HandleFunc("GET /done", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "done") })
	mux.HandleFunc("GET /webauthn.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, mfawebauthn.Script)
	})
	mux.HandleFunc("POST /register/begin", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Name    string `json:"name"`
			Passkey bool   `json:"passkey"`
		}
		_ = json.Unmarshal(body(r), &in)
		ch, err := e.svc.BeginSecurityKey(r.Context(), e.user(true), in.Name, in.Passkey)
		reply(w, ch, err)
	})
	mux.HandleFunc("POST /register/finish", func(w http.ResponseWriter, r *http.Request) {
		kr, err := mfa.ParseKeyResponse(string(body(r)))
		if err != nil {
			reply(w, nil, err)
			return
		}
		k, _, err := e.svc.FinishSecurityKey(r.Context(), e.user(true), kr.Ceremony, kr.Credential, e.client)
		reply(w, k, err)
	})
	mux.HandleFunc("POST /login/begin", func(w http.ResponseWriter, r *http.Request) {
		ch, err := e.factor(mfa.MethodWebAuthn).(mfa.Challenger).Challenge(r.Context(), alice())
		reply(w, ch, err)
	})
	mux.HandleFunc("POST /login/finish", func(w http.ResponseWriter, r *http.Request) {
		err := e.factor(mfa.MethodWebAuthn).Verify(r.Context(), alice(), string(body(r)))
		reply(w, map[string]bool{"ok": true}, err)
	})
	mux.HandleFunc("POST /passkey/begin", func(w http.ResponseWriter, r *http.Request) {
		ch, err := e.svc.BeginPasskeySignIn(r.Context(), "")
		reply(w, ch, err)
	})
	mux.HandleFunc("POST /passkey/finish", func(w http.ResponseWriter, r *http.Request) {
		kr, err := mfa.ParseKeyResponse(string(body(r)))
		if err != nil {
			reply(w, nil, err)
			return
		}
		id, err := e.svc.FinishPasskeySignIn(r.Context(), kr.Ceremony, kr.Credential)
		reply(w, map[string]string{"account": id}, err)
	})
	return mux
}

func TestBrowserWebAuthn(t *testing.T) {
	testenv.Chromium(t) // skip before starting anything

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// WebAuthn needs a secure context: http://localhost is one,
	// http://127.0.0.1 is not.
	base := fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port)
	e := newEnv(t, func(c *mfa.Config) { c.WebAuthn.Origins = []string{base} })
	srv := &http.Server{Handler: testAdapter(e), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	// The virtual authenticator goes on the tab, before any navigation.
	bctx := chrome.Start(t, 90*time.Second)
	chrome.EnableWebAuthn(t, bctx)
	// A USB security key (CTAP2.1, resident keys, user verification).
	usbKey := addAuthenticator(t, bctx, webauthn.AuthenticatorTransportUsb)

	// 1. Register a security key through the form (the script's submit path).
	if err := chromedp.Do(bctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible("#add button"),
		chromedp.Click("#add button"),
	); err != nil {
		t.Fatal(err)
	}
	waitLocation(t, bctx, base+"/done")
	m, err := e.svc.Methods(ctx, "acct-alice")
	if err != nil || len(m.SecurityKeys) != 1 || m.SecurityKeys[0].Name != "Desk key" || m.SecurityKeys[0].Passkey {
		t.Fatalf("after registration: %+v %v", m.SecurityKeys, err)
	}

	// 2. The same key again: the browser refuses (excludeCredentials) and the
	// form shows why.
	if err := chromedp.Do(bctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible("#add button"),
		chromedp.Click("#add button"),
		chromedp.WaitVisible("#add [data-webauthn-error]"),
	); err != nil {
		t.Fatal(err)
	}
	msg, err := chromedp.Run(bctx, chromedp.Text("#add [data-webauthn-error]"))
	if err != nil || !strings.Contains(msg, "already registered") {
		t.Errorf("duplicate key message %q, %v", msg, err)
	}

	// 3. Sign in with the key as the second factor.
	run := func(kind, begin, finish, extra string) (map[string]any, error) {
		return chromedp.Run(bctx, chromedp.Evaluate[map[string]any](
			fmt.Sprintf(`moatWebAuthn.run(%q, %q, %q, %s)`, kind, begin, finish, extra), chromedp.EvalAwaitPromise))
	}
	if out, err := run("login", "/login/begin", "/login/finish", "{}"); err != nil || out["ok"] != true {
		t.Fatalf("second factor: %v %v", out, err)
	}
	m, _ = e.svc.Methods(ctx, "acct-alice")
	if m.SecurityKeys[0].LastUsedAt.IsZero() {
		t.Error("last-used time not recorded")
	}
	// Again without the browser's JSON helpers (older browsers): the
	// script's own base64url conversions.
	had, err := chromedp.Run(bctx, chromedp.Evaluate[string](`typeof PublicKeyCredential.prototype.toJSON`))
	if err != nil || had != "function" {
		t.Logf("this Chromium has no toJSON (%q, %v): the step above already used the fallback", had, err)
	}
	if gone, err := chromedp.Run(bctx, chromedp.Evaluate[string](`delete PublicKeyCredential.prototype.toJSON;
		PublicKeyCredential.parseRequestOptionsFromJSON = undefined;
		PublicKeyCredential.parseCreationOptionsFromJSON = undefined;
		typeof PublicKeyCredential.prototype.toJSON`)); err != nil || gone != "undefined" {
		t.Fatalf("could not remove toJSON: %q %v", gone, err)
	}
	if out, err := run("login", "/login/begin", "/login/finish", "{}"); err != nil || out["ok"] != true {
		t.Fatalf("second factor without toJSON: %v %v", out, err)
	}

	// 4. Register a passkey on another authenticator (the phone's or the
	// laptop's) and sign in with it alone.
	if _, err := chromedp.Call(bctx, webauthn.RemoveVirtualAuthenticator,
		webauthn.RemoveVirtualAuthenticatorParams{AuthenticatorID: usbKey}); err != nil {
		t.Fatal(err)
	}
	addAuthenticator(t, bctx, webauthn.AuthenticatorTransportInternal)
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible("#add button")); err != nil {
		t.Fatal(err) // a fresh page: the browser's JSON helpers are back
	}
	if out, err := run("register", "/register/begin", "/register/finish", `{"name":"Laptop passkey","passkey":true}`); err != nil || out["Passkey"] != true {
		t.Fatalf("passkey registration: %v %v", out, err)
	}
	out, err := run("passkey", "/passkey/begin", "/passkey/finish", "{}")
	if err != nil || out["account"] != "acct-alice" {
		t.Fatalf("passwordless sign-in: %v %v", out, err)
	}

	// 5. A failing server answer surfaces as the promise's error message.
	_, err = run("passkey", "/passkey/begin", "/login/finish", "{}")
	if err == nil || !strings.Contains(err.Error(), "expired or was already used") {
		t.Errorf("mismatched ceremony: %v", err)
	}
}

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

func waitLocation(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err == nil && loc == want {
			return
		}
		if time.Now().After(deadline) {
			txt, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector("[data-webauthn-error]")||{}).textContent||""`))
			t.Fatalf("location %q (%v), want %q; page error %q", loc, err, want, txt)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
