// Package web serves moat's server-rendered HTML pages: sign-up, e-mail
// confirmation, sign-in (with device approval and the second-factor step),
// and the signed-in account pages (activity, sessions, settings).
//
// The pages call the account service and nothing underneath it. Every page
// works without JavaScript; the small script in static/ only improves them
// (local times, no double submits). Templates, the stylesheet and the script
// are embedded, so the binary serves them with no CDN and the Content
// Security Policy can forbid inline scripts and styles.
//
// Cross-site request forgery is refused by the server's middleware
// (http.CrossOriginProtection in internal/httpx), which is why no form here
// carries a token: every state-changing request is a POST, and cookies are
// SameSite=Lax on top.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apikey"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/mfa"
	"github.com/moat-dev/moat/internal/recovery"
	"github.com/moat-dev/moat/internal/secrets"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Deps is what the pages need.
type Deps struct {
	// Accounts is the account service every page calls.
	Accounts *account.Service
	// Brand is the product name shown in titles and the header.
	Brand string
	// Secure is true when moat is reached over https (PublicOrigin). Cookies
	// are then Secure and __Host- prefixed. It must be false for plain-http
	// development on localhost: browsers refuse to store Secure cookies (and
	// therefore any __Host- cookie) set over http, so nobody could sign in.
	Secure bool
	// TrustedProxies are the proxies whose X-Forwarded-For is believed when
	// deciding the client address.
	TrustedProxies []netip.Prefix
	// Logger receives internal errors; nil discards them.
	Logger *slog.Logger
	// Dev shows a development-mode notice that points at /dev/mailbox.
	Dev bool
	// Clock tells the time (whether a withdrawal hold is still on); nil
	// means the system clock.
	Clock clock.Clock
	// APIKeys, when set, serves the API key pages (apikeys.go); KeyStepUp
	// then confirms every key change.
	APIKeys   *apikey.Service
	KeyStepUp KeyStepUp
	// MFA, when set, serves the Security pages, step-up and the
	// second-factor and passkey sign-in (security.go). FlashKey (32 bytes,
	// the same on every node) seals what one of those pages hands to the
	// next through the browser; empty means a random key of this process.
	MFA      *mfa.Service
	FlashKey []byte
	// PublicOrigin ("https://id.example.com") is where people reach moat;
	// full links shown on pages (a recovery case's status link) use it.
	// Empty falls back to the scheme and Host of the request.
	PublicOrigin string
	// Recovery, when set, serves the recovery-case pages (recovery.go) and
	// the second-factor page links to them.
	Recovery *recovery.Service
}

// Handler serves the pages. Create it with New and mount it with Register.
type Handler struct {
	accounts *account.Service
	brand    string
	secure   bool
	trusted  []netip.Prefix
	log      *slog.Logger
	dev      bool
	clock    clock.Clock
	cookies  cookieNames

	pages     map[string]*template.Template
	static    http.Handler
	assetTags map[string]string // file name -> content hash for cache busting

	apiKeys   *apikey.Service // nil: no API key pages
	keyStepUp KeyStepUp

	mfa   *mfa.Service // nil: no 2FA pages
	flash *secrets.Box

	publicOrigin string

	recovery *recovery.Service // nil: no recovery-case pages
}

// New parses the embedded templates and returns the handler.
func New(d Deps) (*Handler, error) {
	if d.Accounts == nil {
		return nil, errors.New("web: Deps.Accounts is required")
	}
	h := &Handler{
		accounts: d.Accounts,
		brand:    d.Brand,
		secure:   d.Secure,
		trusted:  d.TrustedProxies,
		log:      d.Logger,
		dev:      d.Dev,
		clock:    d.Clock,
		cookies:  newCookieNames(d.Secure),
		recovery: d.Recovery,

		publicOrigin: strings.TrimSuffix(d.PublicOrigin, "/"),
	}
	if h.brand == "" {
		h.brand = "moat"
	}
	if h.clock == nil {
		h.clock = clock.System{}
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if err := h.useAPIKeys(d); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	if h.assetTags, err = hashAssets(sub); err != nil {
		return nil, err
	}
	if err := h.useMFA(d); err != nil {
		return nil, err
	}
	h.static = http.StripPrefix("/static/", http.FileServerFS(sub))
	if h.pages, err = parsePages(h.funcs()); err != nil {
		return nil, err
	}
	return h, nil
}

// Register mounts every page on mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", h.home)
	mux.HandleFunc("GET /static/", h.serveStatic)

	mux.HandleFunc("GET /signup", h.signupPage)
	mux.HandleFunc("POST /signup", h.form(h.signup))
	mux.HandleFunc("GET /signup/check-email", h.checkEmailPage)
	mux.HandleFunc("GET /confirm", h.confirmPage)
	mux.HandleFunc("POST /confirm", h.form(h.confirm))
	mux.HandleFunc("GET /resend-confirmation", h.resendPage)
	mux.HandleFunc("POST /resend-confirmation", h.form(h.resend))

	mux.HandleFunc("GET /login", h.loginPage)
	mux.HandleFunc("POST /login", h.form(h.login))
	mux.HandleFunc("GET /login/device", h.devicePage)
	mux.HandleFunc("POST /login/device", h.form(h.deviceCode))
	mux.HandleFunc("POST /login/device/status", h.form(h.deviceStatus))
	mux.HandleFunc("GET /login/approve", h.approvePage)
	mux.HandleFunc("POST /login/approve", h.form(h.approve))
	mux.HandleFunc("GET /login/factor", h.factorPage)
	mux.HandleFunc("POST /login/factor", h.form(h.factor))
	mux.HandleFunc("POST /logout", h.form(h.logout))
	mux.HandleFunc("GET /secure", h.securePage)
	mux.HandleFunc("POST /secure", h.form(h.secureAccount))

	mux.HandleFunc("GET /account", h.auth(h.accountPage))
	mux.HandleFunc("GET /account/sessions", h.auth(h.sessionsPage))
	mux.HandleFunc("POST /account/sessions/revoke", h.form(h.auth(h.revokeSession)))
	mux.HandleFunc("POST /account/sessions/revoke-others", h.form(h.auth(h.revokeOthers)))
	mux.HandleFunc("GET /account/settings", h.auth(h.settingsPage))
	mux.HandleFunc("POST /account/settings/anti-phishing", h.form(h.auth(h.antiPhishing)))
	mux.HandleFunc("POST /account/settings/password", h.form(h.auth(h.changePassword)))
	h.registerAPIKeys(mux)
	h.registerMFA(mux)
	h.registerReset(mux)
	if h.recovery != nil {
		h.registerRecovery(mux)
	}
}

// serveStatic serves the embedded stylesheet and script. URLs carry a content
// hash (?v=...), so they may be cached for a year.
func (h *Handler) serveStatic(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/") { // no directory listings
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	h.static.ServeHTTP(w, r)
}

// hashAssets returns a short content hash per static file.
func hashAssets(fsys fs.FS) (map[string]string, error) {
	tags := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		tags[path] = hex.EncodeToString(sum[:6])
		return nil
	})
	return tags, err
}

// assetURL is the cache-busting URL of a static file.
func (h *Handler) assetURL(name string) (string, error) {
	tag, ok := h.assetTags[name]
	if !ok {
		return "", fmt.Errorf("web: no static file %q", name)
	}
	return "/static/" + name + "?v=" + tag, nil
}

// Cookies.

// cookieNames are the three cookies the pages use. With Secure they carry
// the __Host- prefix, which makes the browser insist on Secure, Path=/ and
// no Domain, so a sibling subdomain cannot plant or overwrite them.
type cookieNames struct {
	session, pending, device string
}

// SessionCookieName is the name of the session cookie the pages set:
// "__Host-moat_session" when secure, else "moat_session". Other handlers
// that read web sessions (forward-auth) use it so the name lives in one
// place.
func SessionCookieName(secure bool) string { return newCookieNames(secure).session }

func newCookieNames(secure bool) cookieNames {
	prefix := ""
	if secure {
		prefix = "__Host-"
	}
	return cookieNames{
		session: prefix + "moat_session",
		pending: prefix + "moat_pending",
		device:  prefix + "moat_device",
	}
}

const (
	// pendingCookieTTL bounds the pending sign-in cookie; the service
	// enforces its own (shorter or equal) expiry.
	pendingCookieTTL = 30 * time.Minute
	// deviceCookieTTL is the longest lifetime browsers allow (400 days).
	deviceCookieTTL = 400 * 24 * time.Hour
)

// setCookie sets an HttpOnly, SameSite=Lax cookie for the whole site that
// lasts maxAge, or until expires when maxAge is zero.
func (h *Handler) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration, expires ...time.Time) {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		Secure:   h.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
	if maxAge > 0 {
		c.MaxAge = int(maxAge / time.Second)
	}
	if len(expires) > 0 && !expires[0].IsZero() {
		c.Expires = expires[0]
	}
	http.SetCookie(w, c)
}

func (h *Handler) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    "",
		Path:     "/",
		Secure:   h.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		MaxAge:   -1,
	})
}

func cookieValue(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}
