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

// forwardAuth is GET /auth/verify for reverse proxies (nginx auth_request,
// Traefik forwardAuth, Envoy ext_authz): 200 with the identity headers when
// the request carries a valid session — the web session cookie or an
// "Authorization: Bearer" API session token — and 401 otherwise.
//
// The client address is taken from X-Forwarded-For when the proxy is in
// security.trusted_proxies, so the session's last-seen IP is the user's.
// Any method is accepted, since some proxies forward the original one; the
// cross-origin check still refuses a cross-site POST, which protects the
// upstream from CSRF as well.
func forwardAuth(accounts *account.Service, trusted []netip.Prefix, cookieName string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Vary", "Cookie, Authorization")
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
		h := w.Header()
		h.Set(HeaderAccountID, p.Account.ID)
		h.Set(HeaderRole, string(p.Account.Role))
		h.Set(HeaderSessionID, p.Session.ID)
		w.WriteHeader(http.StatusOK)
	})
}
