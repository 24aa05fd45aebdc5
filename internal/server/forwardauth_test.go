package server

import (
	"context"
	"net/http"
	"testing"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/store"
)

// The forward-auth 200 is for the reverse proxy: the identity headers and
// no-store, none of the browser headers. A 401, which a proxy may show to
// the browser, keeps every security header.
func TestForwardAuthHeaders(t *testing.T) {
	ts := start(t, testConfig(t, func(c *config.Config) {
		c.Security.DeviceApproval = false
		c.PublicOrigin = "https://moat.example"
	}))
	ctx := context.Background()
	if _, err := ts.Accounts().CreateConfirmedUser(ctx, "proxy@example.com", testPassword, store.RoleUser, "test"); err != nil {
		t.Fatal(err)
	}
	res, err := ts.Accounts().SignIn(ctx, "proxy@example.com", testPassword, account.Client{IP: "127.0.0.1", Kind: "api"})
	if err != nil || res.Session == nil {
		t.Fatalf("sign in: %v", err)
	}
	browserOnly := []string{"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy",
		"Cross-Origin-Opener-Policy", "Permissions-Policy", "X-Frame-Options", "Strict-Transport-Security"}

	ok := ts.do(t, "GET", "/auth/verify", "", map[string]string{"Authorization": "Bearer " + res.Session.Token})
	if ok.StatusCode != http.StatusOK {
		t.Fatalf("verify: %d", ok.StatusCode)
	}
	want := map[string]string{
		"Cache-Control":  "no-store",
		HeaderAccountID:  res.Session.Session.AccountID,
		HeaderRole:       "user",
		HeaderSessionID:  res.Session.Session.ID,
		"Content-Length": "0",
	}
	for k, v := range want {
		if got := ok.Header.Get(k); got != v {
			t.Errorf("200: %s = %q, want %q", k, got, v)
		}
	}
	for _, k := range browserOnly {
		if v := ok.Header.Get(k); v != "" {
			t.Errorf("200 for the proxy carries the browser header %s: %q", k, v)
		}
	}

	refused := ts.do(t, "GET", "/auth/verify", "", map[string]string{"Authorization": "Bearer nope"})
	if refused.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", refused.StatusCode)
	}
	if refused.Header.Get("Cache-Control") != "no-store" || refused.Header.Get(HeaderAccountID) != "" {
		t.Errorf("401: %v", refused.Header)
	}
	for _, k := range browserOnly {
		if refused.Header.Get(k) == "" {
			t.Errorf("401, which a proxy may show the browser, lacks %s", k)
		}
	}
}
