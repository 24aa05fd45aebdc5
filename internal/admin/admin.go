// Package admin serves the support console at /admin: server-rendered
// pages where support staff and admins work recovery cases (answers next
// to the account's real history, the identity document, four-eyes
// approval), look up accounts, lock and unlock them, revoke their
// sessions and read their audit trail.
//
// The console is an adapter: it calls the account and recovery services
// and nothing underneath them. It authenticates with the web session
// cookie and lets in only staff (role support or admin) whose session was
// opened with a security key or passkey (store.Session.SignInFactor
// "webauthn" or "passkey"); ordinary accounts get 404, as if the console
// did not exist. What each role may do is one table (matrix); a refused
// action answers 403 and changes nothing. Every action passes the staff
// member's account ID to the service as the actor, so the audit log
// records who did it.
//
// Like the public pages, every page works without JavaScript, the site
// stylesheet is reused, and cross-site form posts are refused by the
// server's middleware (http.CrossOriginProtection), so no form carries a
// token.
package admin

import (
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/httpx"
	"github.com/moat-dev/moat/internal/recovery"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/web"
)

// Path is where the console is mounted.
const Path = "/admin"

// Deps is what the console needs.
type Deps struct {
	Accounts *account.Service
	Recovery *recovery.Service
	// Brand is the product name shown in titles and the header.
	Brand string
	// Secure selects the session cookie's name (web.SessionCookieName).
	Secure bool
	// TrustedProxies decide the client address (as in internal/web).
	TrustedProxies []netip.Prefix
	// Logger receives internal errors; nil discards them.
	Logger *slog.Logger
	// Clock tells the time (whether a withdrawal hold is still on); nil
	// means the system clock.
	Clock clock.Clock
	// AssetURL returns the cache-busting URL of one of the site's static
	// files (web.Handler.AssetURL), so the console uses the site
	// stylesheet; nil links /static/<name> as it is.
	AssetURL func(name string) (string, error)
}

// Handler serves the console. Create it with New; it is an http.Handler
// for everything under Path.
type Handler struct {
	accounts *account.Service
	recovery *recovery.Service
	brand    string
	cookie   string
	trusted  []netip.Prefix
	log      *slog.Logger
	clock    clock.Clock
	css, js  string
	pages    pages
	mux      *http.ServeMux
}

// New parses the templates and returns the console.
func New(d Deps) (*Handler, error) {
	if d.Accounts == nil || d.Recovery == nil {
		return nil, errors.New("admin: Deps.Accounts and Deps.Recovery are required")
	}
	h := &Handler{
		accounts: d.Accounts,
		recovery: d.Recovery,
		brand:    d.Brand,
		cookie:   web.SessionCookieName(d.Secure),
		trusted:  d.TrustedProxies,
		log:      d.Logger,
		clock:    d.Clock,
	}
	if h.brand == "" {
		h.brand = "moat"
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.clock == nil {
		h.clock = clock.System{}
	}
	asset := d.AssetURL
	if asset == nil {
		asset = func(name string) (string, error) { return "/static/" + name, nil }
	}
	var err error
	if h.css, err = asset("moat.css"); err != nil {
		return nil, err
	}
	if h.js, err = asset("moat.js"); err != nil {
		return nil, err
	}
	if h.pages, err = parsePages(); err != nil {
		return nil, err
	}
	h.mux = http.NewServeMux()
	h.routes(h.mux)
	return h, nil
}

// Register mounts the console on mux at Path and under it.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle(Path, h)
	mux.Handle(Path+"/", h)
}

// ServeHTTP serves every console route.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+Path, h.staff(ActView, h.queuePage))
	mux.HandleFunc("GET "+Path+"/{$}", h.staff(ActView, h.queuePage))
	mux.HandleFunc("GET "+Path+"/cases/{id}", h.staff(ActView, h.casePage))
	mux.HandleFunc("GET "+Path+"/cases/{id}/document", h.staff(ActDocument, h.document))
	mux.HandleFunc("POST "+Path+"/cases/{id}/approve", h.staff(ActApprove, h.approve))
	mux.HandleFunc("POST "+Path+"/cases/{id}/reject", h.staff(ActReject, h.reject))
	mux.HandleFunc("POST "+Path+"/cases/{id}/stop", h.staff(ActStop, h.stop))
	mux.HandleFunc("GET "+Path+"/accounts", h.staff(ActView, h.searchPage))
	mux.HandleFunc("GET "+Path+"/accounts/{id}", h.staff(ActView, h.accountPage))
	mux.HandleFunc("POST "+Path+"/accounts/{id}/lock", h.staff(ActLock, h.lock))
	mux.HandleFunc("POST "+Path+"/accounts/{id}/unlock", h.staff(ActUnlock, h.unlock))
	mux.HandleFunc("POST "+Path+"/accounts/{id}/revoke-sessions", h.staff(ActRevokeSessions, h.revokeSessions))
	// Anything else under /admin: the same 404 for everyone.
	mux.HandleFunc(Path+"/", http.NotFound)
}

// Authorisation.

// Action is something a staff member does in the console.
type Action string

const (
	// ActView: the case queue, a case's review, account search and an
	// account's page (with its cases and audit trail).
	ActView Action = "view"
	// ActDocument: download a case's identity document (every view is
	// audited by the recovery service).
	ActDocument Action = "document"
	// ActApprove and ActReject: review a recovery case (four-eyes: the
	// recovery service refuses a second approval by the same person).
	ActApprove Action = "approve"
	ActReject  Action = "reject"
	// ActStop stops an open or approved (waiting) case: the owner reached
	// support another way and it is not theirs. The safe direction, so one
	// staff member suffices.
	ActStop Action = "stop"
	// ActLock locks an account and revokes its sessions.
	ActLock Action = "lock"
	// ActRevokeSessions signs an account out everywhere.
	ActRevokeSessions Action = "revoke_sessions"
	// ActUnlock unlocks an account: the dangerous direction, so admins
	// only.
	ActUnlock Action = "unlock"
)

// matrix is who may do what: the one place the console's authorisation is
// written down. A role missing from an action's list is refused with 403.
// Locking is open to support (stopping harm fast is the safe direction);
// unlocking is for admins (it gives access back).
var matrix = map[Action][]store.Role{
	ActView:           {store.RoleSupport, store.RoleAdmin},
	ActDocument:       {store.RoleSupport, store.RoleAdmin},
	ActApprove:        {store.RoleSupport, store.RoleAdmin},
	ActReject:         {store.RoleSupport, store.RoleAdmin},
	ActStop:           {store.RoleSupport, store.RoleAdmin},
	ActLock:           {store.RoleSupport, store.RoleAdmin},
	ActRevokeSessions: {store.RoleSupport, store.RoleAdmin},
	ActUnlock:         {store.RoleAdmin},
}

// Allowed reports whether role may do a. Unknown actions and roles are
// refused.
func Allowed(role store.Role, a Action) bool {
	for _, r := range matrix[a] {
		if r == role {
			return true
		}
	}
	return false
}

// isStaff reports whether the role may open the console at all.
func isStaff(role store.Role) bool { return role == store.RoleSupport || role == store.RoleAdmin }

// keyFactors are the sign-in factors that open the console: a security
// key as second factor, or a passkey.
var keyFactors = map[string]bool{"webauthn": true, "passkey": true}

// staffFunc is a console handler for an authenticated, authorised staff
// member.
type staffFunc func(w http.ResponseWriter, r *http.Request, staff account.Principal)

// maxFormBytes bounds a console form (a reason is short).
const maxFormBytes = 16 << 10

// staff authenticates the request and checks the matrix for a before next
// runs: no session, redirect to sign-in; not staff, 404 (the console does
// not reveal itself); staff signed in without a key, 403 with what to do;
// an action the role may not do, 403. POST forms are parsed here, after
// the checks, so nothing of a refused request is read.
func (h *Handler) staff(a Action, next staffFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := cookieValue(r, h.cookie)
		if tok == "" {
			http.Redirect(w, r, "/login?n=signin-required", http.StatusSeeOther)
			return
		}
		p, err := h.accounts.Authenticate(r.Context(), tok, h.client(r))
		if err != nil {
			if httpx.Status(err) >= 500 {
				h.internal(w, r, err)
				return
			}
			http.Redirect(w, r, "/login?n=session-ended", http.StatusSeeOther)
			return
		}
		if !isStaff(p.Account.Role) {
			http.NotFound(w, r)
			return
		}
		if !keyFactors[p.Session.SignInFactor] {
			h.render(w, r, http.StatusForbidden, "needkey", &page{Title: "Sign in with your security key"})
			return
		}
		if !Allowed(p.Account.Role, a) {
			h.log.WarnContext(r.Context(), "admin: action refused by the role matrix",
				"staff", p.Account.ID, "role", p.Account.Role, "action", a, "path", r.URL.Path)
			h.render(w, r, http.StatusForbidden, "message", &page{Title: "Not allowed", Staff: &p.Account, Data: messageData{
				Heading: "Your role cannot do this", Problem: true,
				Text: "Only " + rolesOf(a) + " can do this. Nothing was changed. Ask an admin if it needs doing.",
			}})
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				h.render(w, r, http.StatusBadRequest, "message", &page{Title: "Form not readable", Staff: &p.Account, Data: messageData{
					Heading: "We could not read that form", Problem: true,
					Text: "Go back, reload the page and try again.",
				}})
				return
			}
		}
		next(w, r, p)
	}
}

// rolesOf names the roles allowed to do a, for the refusal page.
func rolesOf(a Action) string {
	var names []string
	for _, r := range matrix[a] {
		names = append(names, string(r)+"s")
	}
	if len(names) == 0 {
		return "nobody"
	}
	return strings.Join(names, " and ")
}

func (h *Handler) client(r *http.Request) account.Client {
	return account.Client{IP: httpx.ClientIP(r, h.trusted), UserAgent: r.UserAgent(), Kind: "web"}
}

func cookieValue(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}
