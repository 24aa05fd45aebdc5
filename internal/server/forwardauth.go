package server

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/httpx"
)

// Identity headers /auth/verify answers with. A reverse proxy copies them
// to the upstream request (nginx: auth_request_set $id
// $upstream_http_x_moat_account_id; proxy_set_header X-Moat-Account-Id $id)
// and must strip any the client sent itself.
const (
	HeaderAccountID = "X-Moat-Account-Id"
	HeaderRole      = "X-Moat-Role"
	HeaderSessionID = "X-Moat-Session-Id"
)

// noStore is the Cache-Control value of every /auth/verify answer, shared
// (header values are never written into, only replaced).
var noStore = []string{"no-store"}

// forwardAuth is GET /auth/verify for reverse proxies (nginx auth_request,
// Traefik forwardAuth, Envoy ext_authz): 200 with the identity headers when
// the request carries a valid session — the web session cookie or an
// "Authorization: Bearer" API session token — and 401 otherwise.
//
// Every answer is Cache-Control: no-store, so no cache between moat and the
// proxy can replay an authorisation. The 200 is for the proxy alone and
// carries only that and the identity headers (see httpx.DropBrowserHeaders);
// a 401 may be shown to the browser by the proxy, so it keeps every
// security header.
//
// The client address is taken from X-Forwarded-For when the proxy is in
// security.trusted_proxies, so the session's last-seen IP is the user's.
// Any method is accepted, since some proxies forward the original one; the
// cross-origin check still refuses a cross-site POST, which protects the
// upstream from CSRF as well.
func forwardAuth(accounts *account.Service, trusted []netip.Prefix, cookieName string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Cache-Control"] = noStore
		c := account.Client{IP: httpx.ClientIP(r, trusted), UserAgent: r.UserAgent(), Kind: "web"}
		token := ""
		if ck, err := r.Cookie(cookieName); err == nil && ck.Value != "" {
			token = ck.Value
		} else if scheme, t, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
			token, c.Kind = strings.TrimSpace(t), "api"
		}
		if token == "" {
			httpx.WriteError(w, r, apperr.New(apperr.Unauthorized, "Sign in first."))
			return
		}
		p, err := accounts.Authenticate(r.Context(), token, c)
		if err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		httpx.DropBrowserHeaders(h)
		// One allocation for the three values; the keys are canonical.
		v := &[3]string{p.Account.ID, string(p.Account.Role), p.Session.ID}
		h[HeaderAccountID] = v[0:1:1]
		h[HeaderRole] = v[1:2:2]
		h[HeaderSessionID] = v[2:3:3]
		w.WriteHeader(http.StatusOK)
	})
}
