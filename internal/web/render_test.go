package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/account"
)

// TestPublicPagesRender renders every page that needs no service call and
// checks the accessibility basics each must have.
func TestPublicPagesRender(t *testing.T) {
	h, err := New(Deps{Accounts: &account.Service{}, Brand: "Acme", Dev: true})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	for _, tc := range []struct {
		path   string
		status int
		want   []string
	}{
		{"/signup", 200, []string{`<label for="email">`, `aria-describedby="password-hint"`, `minlength="10"`, `maxlength="256"`, "passphrase"}},
		{"/signup/check-email", 200, []string{"Check your e-mail", `href="/resend-confirmation"`}},
		{"/confirm?token=abc", 200, []string{`name="token" value="abc"`, `method="post" action="/confirm"`}},
		{"/confirm", 400, []string{"incomplete"}},
		{"/resend-confirmation", 200, []string{`action="/resend-confirmation"`}},
		{"/login/approve?token=xyz", 200, []string{`value="xyz"`, `action="/login/approve"`}},
		{"/secure?token=s3", 200, []string{`value="s3"`, `action="/secure"`}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			body := rec.Body.String()
			for _, w := range append(tc.want, `<html lang="en">`, `name="viewport"`, "Acme", `href="/dev/mailbox"`) {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			if strings.Contains(body, "<script>") || strings.Contains(body, "style=") {
				t.Error("page has inline script or style; the CSP forbids them")
			}
			if got := rec.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", got)
			}
		})
	}
}
