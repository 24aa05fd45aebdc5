// Package api is moat's JSON API under /api/v1 for mobile apps and
// single-page clients: the same sign-up, sign-in and account flows as the
// web pages, described by the OpenAPI document at /api/v1/openapi.json.
//
// Authentication is by bearer token only (Authorization: Bearer
// <session_token>); the API never reads cookies, so a browser's ambient
// credentials cannot be ridden cross-site and CSRF does not apply. Bodies
// must still be Content-Type: application/json (DecodeJSON), and
// internal/server mounts the API behind httpx.RequireJSON, which asks that
// of every POST, PUT and DELETE, bodiless ones too.
//
// The long-lived device token that tells moat a phone has signed in before
// travels in the X-Moat-Device header on any request, or in the sign-in
// body's device_token field (which wins when both are sent).
//
// Errors are {"error":{"code","message","field"}} with the stable codes of
// internal/apperr, written by httpx.WriteError.
package api

import (
	_ "embed"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apikey"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/httpx"
	"github.com/moat-dev/moat/internal/mfa"
	"github.com/moat-dev/moat/internal/recovery"
)

//go:embed openapi.json
var openapiDoc []byte

// DeviceHeader carries the app's device token.
const DeviceHeader = "X-Moat-Device"

// Deps is what the API needs.
type Deps struct {
	// Accounts is the account service every endpoint calls.
	Accounts *account.Service
	// MFA is the 2FA service of the /api/v1/mfa, /api/v1/stepup and
	// passkey endpoints (mfa.go); nil makes them answer 404 not_found.
	MFA *mfa.Service
	// APIKeys serves /api/v1/apikeys (apikeys.go) with KeyStepUp
	// confirming every change; nil makes them answer 404 not_found.
	APIKeys   *apikey.Service
	KeyStepUp KeyStepUp
	// Recovery serves /api/v1/recovery (recovery.go); nil makes those
	// endpoints answer 404 not_found.
	Recovery *recovery.Service
	// TrustedProxies are the proxies whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// Logger receives internal errors (httpx's request logger is used when
	// the request passed httpx.Stack); nil discards.
	Logger *slog.Logger
}

// Handler serves the JSON API. Create it with New and mount it with
// Register.
type Handler struct {
	accounts  *account.Service
	mfa       *mfa.Service
	apiKeys   *apikey.Service
	keyStepUp KeyStepUp
	recovery  *recovery.Service
	trusted   []netip.Prefix
	log       *slog.Logger
}

// New returns the API handler.
func New(d Deps) *Handler {
	h := &Handler{accounts: d.Accounts, mfa: d.MFA, trusted: d.TrustedProxies, log: d.Logger,
		apiKeys: d.APIKeys, keyStepUp: d.KeyStepUp, recovery: d.Recovery}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h
}

// route is one endpoint; the table is the source of truth that Register
// mounts and the tests hold the OpenAPI document against.
type route struct {
	method, path string
	handler      http.HandlerFunc
}

func (h *Handler) routes() []route {
	rs := []route{
		{"GET", "/api/v1/openapi.json", h.openapi},

		{"POST", "/api/v1/signup", h.signup},
		{"POST", "/api/v1/confirm", h.confirm},
		{"POST", "/api/v1/resend-confirmation", h.resend},
		{"POST", "/api/v1/signin", h.signin},
		{"POST", "/api/v1/signin/device", h.signinDevice},
		{"POST", "/api/v1/signin/status", h.signinStatus},
		{"POST", "/api/v1/signin/factor", h.signinFactor},

		{"GET", "/api/v1/me", h.auth(h.me)},
		{"GET", "/api/v1/activity", h.auth(h.activity)},
		{"GET", "/api/v1/sessions", h.auth(h.sessions)},
		{"DELETE", "/api/v1/sessions/{id}", h.auth(h.revokeSession)},
		{"POST", "/api/v1/sessions/revoke-others", h.auth(h.revokeOthers)},
		{"POST", "/api/v1/signout", h.signout},
		{"PUT", "/api/v1/settings/anti-phishing", h.auth(h.antiPhishing)},
		{"POST", "/api/v1/settings/password", h.auth(h.changePassword)},
	}
	rs = append(rs, h.apiKeyRoutes()...)
	rs = append(rs, h.recoveryRoutes()...)
	rs = append(rs, h.resetRoutes()...)
	return append(rs, h.mfaRoutes()...)
}

// Register mounts the API on mux. Unknown paths under /api/v1/ get a JSON
// 404 rather than the web pages' HTML one.
func (h *Handler) Register(mux *http.ServeMux) {
	for _, rt := range h.routes() {
		mux.HandleFunc(rt.method+" "+rt.path, rt.handler)
	}
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteError(w, r, apperr.New(apperr.NotFound, "There is no such API endpoint (or it does not take "+r.Method+"). See /api/v1/openapi.json."))
	})
}

func (h *Handler) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(openapiDoc)
}

// client describes the requester to the service.
func (h *Handler) client(r *http.Request) account.Client {
	return account.Client{
		IP:          httpx.ClientIP(r, h.trusted),
		UserAgent:   r.UserAgent(),
		DeviceToken: r.Header.Get(DeviceHeader),
		Kind:        "api",
	}
}

// fail writes err; a status >= 500 is also logged here in case the request
// did not pass httpx's logger.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if httpx.Status(err) >= 500 {
		h.log.ErrorContext(r.Context(), "api: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	httpx.WriteError(w, r, err)
}

// field names a required string field of a request.
type field struct {
	name string
	v    *string
}

// decode reads the JSON body into dst (see httpx.DecodeJSON) and checks
// that the required fields are present, reporting the first missing one.
func decode(w http.ResponseWriter, r *http.Request, dst any, required ...field) error {
	if err := httpx.DecodeJSON(w, r, dst); err != nil {
		return err
	}
	for _, f := range required {
		if strings.TrimSpace(*f.v) == "" {
			return apperr.Field(apperr.Invalid, f.name, "The field \""+f.name+"\" is required.")
		}
	}
	return nil
}

// Bearer authentication.

type authedFunc func(w http.ResponseWriter, r *http.Request, p account.Principal, token string)

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func (h *Handler) auth(next authedFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="moat"`)
			h.fail(w, r, apperr.New(apperr.Unauthorized, "Sign in and send the session token as Authorization: Bearer <token>."))
			return
		}
		p, err := h.accounts.Authenticate(r.Context(), tok, h.client(r))
		if err != nil {
			if apperr.CodeOf(err) == apperr.Unauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="moat", error="invalid_token"`)
			}
			h.fail(w, r, err)
			return
		}
		next(w, r, p, tok)
	}
}

// Sign-up and confirmation.

type signupRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type statusResponse struct {
	Status string `json:"status"`
}

func (h *Handler) signup(w http.ResponseWriter, r *http.Request) {
	var req signupRequest
	if err := decode(w, r, &req, field{"email", &req.Email}, field{"password", &req.Password}); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.accounts.SignUp(r.Context(), req.Email, req.Password, h.client(r)); err != nil {
		h.fail(w, r, err)
		return
	}
	// The same answer for a new and an existing address.
	httpx.WriteJSON(w, http.StatusAccepted, statusResponse{"confirmation_sent"})
}

type tokenRequest struct {
	Token string `json:"token"`
}

func (h *Handler) confirm(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	if err := decode(w, r, &req, field{"token", &req.Token}); err != nil {
		h.fail(w, r, err)
		return
	}
	if _, err := h.accounts.ConfirmEmail(r.Context(), req.Token, h.client(r)); err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, statusResponse{"confirmed"})
}

type emailRequest struct {
	Email string `json:"email"`
}

func (h *Handler) resend(w http.ResponseWriter, r *http.Request) {
	var req emailRequest
	if err := decode(w, r, &req, field{"email", &req.Email}); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.accounts.ResendConfirmation(r.Context(), req.Email, h.client(r)); err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusAccepted, statusResponse{"confirmation_sent"})
}

// Sign-in.

type signinRequest struct {
	Email       string `json:"email"`
	Password    string `json:"password"`
	DeviceToken string `json:"device_token,omitempty"`
}

// decodeSignin is the signin endpoint's parser of untrusted input (fuzzed).
func decodeSignin(w http.ResponseWriter, r *http.Request) (signinRequest, error) {
	var req signinRequest
	err := decode(w, r, &req, field{"email", &req.Email}, field{"password", &req.Password})
	return req, err
}

// signinResponse is every sign-in step's answer.
type signinResponse struct {
	Step         account.Step `json:"step"`
	SessionToken string       `json:"session_token,omitempty"`
	DeviceToken  string       `json:"device_token,omitempty"`
	ExpiresAt    time.Time    `json:"expires_at,omitzero"`
	NewDevice    bool         `json:"new_device,omitempty"`
	PendingToken string       `json:"pending_token,omitempty"`
	Factors      []string     `json:"factors,omitzero"`
	// MustEnrol (step done): enrol a second factor (EnrolMethod, "" for
	// any) before anything else; the platform requires one.
	MustEnrol   bool   `json:"must_enrol,omitempty"`
	EnrolMethod string `json:"enrol_method,omitempty"`
	// SignInFactor (step done) is the factor that completed the sign-in;
	// after "backup_code", BackupCodesRemaining says how many are left
	// (tell the person, and invite them to set up a new method).
	SignInFactor         string `json:"sign_in_factor,omitempty"`
	BackupCodesRemaining *int   `json:"backup_codes_remaining,omitempty"`
}

func (h *Handler) writeStep(w http.ResponseWriter, r *http.Request, res *account.SignInResult) {
	out := signinResponse{Step: res.Step}
	switch res.Step {
	case account.StepDone:
		if res.Session == nil {
			h.fail(w, r, &apperr.Error{Code: apperr.Internal, Message: "sign-in done without a session"})
			return
		}
		out.SessionToken = res.Session.Token
		out.DeviceToken = res.Session.DeviceToken
		out.ExpiresAt = res.Session.Session.ExpiresAt.UTC()
		out.NewDevice = res.Session.NewDevice
		out.MustEnrol, out.EnrolMethod = res.MustEnrol, res.EnrolMethod
		out.SignInFactor, out.BackupCodesRemaining = res.SignInFactor, h.backupCodesLeft(r, res)
	default:
		out.PendingToken = res.PendingToken
		out.Factors = res.Factors
		if out.Factors == nil {
			out.Factors = []string{}
		}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (h *Handler) signin(w http.ResponseWriter, r *http.Request) {
	req, err := decodeSignin(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	c := h.client(r)
	if req.DeviceToken != "" {
		c.DeviceToken = req.DeviceToken
	}
	res, err := h.accounts.SignIn(r.Context(), req.Email, req.Password, c)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeStep(w, r, res)
}

type deviceRequest struct {
	PendingToken string `json:"pending_token"`
	Code         string `json:"code"`
}

func (h *Handler) signinDevice(w http.ResponseWriter, r *http.Request) {
	var req deviceRequest
	if err := decode(w, r, &req, field{"pending_token", &req.PendingToken}, field{"code", &req.Code}); err != nil {
		h.fail(w, r, err)
		return
	}
	res, err := h.accounts.ApproveDevice(r.Context(), req.PendingToken, strings.TrimSpace(req.Code), h.client(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeStep(w, r, res)
}

type pendingRequest struct {
	PendingToken string `json:"pending_token"`
}

func (h *Handler) signinStatus(w http.ResponseWriter, r *http.Request) {
	var req pendingRequest
	if err := decode(w, r, &req, field{"pending_token", &req.PendingToken}); err != nil {
		h.fail(w, r, err)
		return
	}
	res, err := h.accounts.PendingStatus(r.Context(), req.PendingToken, h.client(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeStep(w, r, res)
}

// signinFactor answers the second factor (decodeAnswer: a code, or a
// security key's {"ceremony","credential"}).
func (h *Handler) signinFactor(w http.ResponseWriter, r *http.Request) {
	req, err := decodeAnswer(w, r, true)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	res, err := h.accounts.VerifySecondFactor(r.Context(), req.PendingToken, req.Factor, req.Response, h.client(r))
	if err != nil {
		h.fail(w, r, answerField(err))
		return
	}
	h.writeStep(w, r, res)
}

// signout revokes the bearer token's session. It needs no valid session
// beyond the token itself, and answers 204 for a token already gone, so a
// client can always clear its state.
func (h *Handler) signout(w http.ResponseWriter, r *http.Request) {
	tok, ok := bearer(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="moat"`)
		h.fail(w, r, apperr.New(apperr.Unauthorized, "Send the session token to sign out as Authorization: Bearer <token>."))
		return
	}
	if err := h.accounts.SignOut(r.Context(), tok, h.client(r)); err != nil && httpx.Status(err) >= 500 {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// Account.

type meResponse struct {
	ID                string    `json:"id"`
	Email             string    `json:"email"`
	Role              string    `json:"role"`
	EmailConfirmedAt  time.Time `json:"email_confirmed_at,omitzero"`
	AntiPhishingCode  string    `json:"anti_phishing_code"`
	SecurityHoldUntil time.Time `json:"security_hold_until,omitzero"`
	CreatedAt         time.Time `json:"created_at,omitzero"`
	Session           session   `json:"session"`
}

type session struct {
	ID             string    `json:"id"`
	Device         string    `json:"device,omitempty"`
	DeviceID       string    `json:"device_id,omitempty"`
	Client         string    `json:"client"`
	IP             string    `json:"ip,omitempty"`
	UserAgent      string    `json:"user_agent,omitempty"`
	CreatedAt      time.Time `json:"created_at,omitzero"`
	LastSeenAt     time.Time `json:"last_seen_at,omitzero"`
	ExpiresAt      time.Time `json:"expires_at,omitzero"`
	SecondFactorAt time.Time `json:"second_factor_at,omitzero"`
	Current        bool      `json:"current"`
}

func sessionOut(v account.SessionView) session {
	s := v.Session
	return session{
		ID: s.ID, Device: v.DeviceName, DeviceID: s.DeviceID, Client: s.Client, IP: s.IP, UserAgent: s.UserAgent,
		CreatedAt: s.CreatedAt.UTC(), LastSeenAt: s.LastSeenAt.UTC(), ExpiresAt: s.ExpiresAt.UTC(),
		SecondFactorAt: s.SecondFactorAt.UTC(), Current: v.Current,
	}
}

func (h *Handler) me(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	a := p.Account
	httpx.WriteJSON(w, http.StatusOK, meResponse{
		ID: a.ID, Email: a.Email, Role: string(a.Role), EmailConfirmedAt: a.EmailConfirmedAt.UTC(),
		AntiPhishingCode: a.AntiPhishingCode, SecurityHoldUntil: a.SecurityHoldUntil.UTC(), CreatedAt: a.CreatedAt.UTC(),
		Session: sessionOut(account.SessionView{Session: p.Session, Current: true}),
	})
}

type activityEntry struct {
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	IP        string    `json:"ip,omitempty"`
	Device    string    `json:"device,omitempty"`
	DeviceID  string    `json:"device_id,omitempty"`
	NewDevice bool      `json:"new_device"`
}

type activityResponse struct {
	Activity []activityEntry `json:"activity"`
}

// Activity page sizes.
const (
	defaultActivity = 20
	maxActivity     = 100
)

func (h *Handler) activity(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	limit := defaultActivity
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxActivity {
			h.fail(w, r, apperr.Field(apperr.Invalid, "limit", "limit must be a whole number from 1 to "+strconv.Itoa(maxActivity)+"."))
			return
		}
		limit = n
	}
	acts, err := h.accounts.RecentActivity(r.Context(), p, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := activityResponse{Activity: make([]activityEntry, 0, len(acts))}
	for _, a := range acts {
		out.Activity = append(out.Activity, activityEntry{
			Time: a.Time.UTC(), Type: a.Type, IP: a.IP, Device: a.Device, DeviceID: a.DeviceID, NewDevice: a.NewDevice,
		})
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

type sessionsResponse struct {
	Sessions []session `json:"sessions"`
}

func (h *Handler) sessions(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	list, err := h.accounts.Sessions(r.Context(), p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := sessionsResponse{Sessions: make([]session, 0, len(list))}
	for _, v := range list {
		out.Sessions = append(out.Sessions, sessionOut(v))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (h *Handler) revokeSession(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	if err := h.accounts.RevokeSession(r.Context(), p, r.PathValue("id"), h.client(r)); err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

type revokedResponse struct {
	Revoked int `json:"revoked"`
}

func (h *Handler) revokeOthers(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	n, err := h.accounts.RevokeOtherSessions(r.Context(), p, h.client(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, revokedResponse{n})
}

type antiPhishingRequest struct {
	// Code is a pointer so that a missing field differs from "" (clear).
	Code *string `json:"code"`
}

func (h *Handler) antiPhishing(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	var req antiPhishingRequest
	if err := decode(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	if req.Code == nil {
		h.fail(w, r, apperr.Field(apperr.Invalid, "code", `The field "code" is required; send "" to remove the code.`))
		return
	}
	if err := h.accounts.SetAntiPhishingCode(r.Context(), p, strings.TrimSpace(*req.Code), h.client(r)); err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

type passwordRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	var req passwordRequest
	if err := decode(w, r, &req, field{"current_password", &req.CurrentPassword}, field{"new_password", &req.NewPassword}); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.accounts.ChangePassword(r.Context(), p, req.CurrentPassword, req.NewPassword, h.client(r)); err != nil {
		if apperr.CodeOf(err) == apperr.BadCredential {
			// Not 401: the session is fine, and apps read 401 as "signed out".
			err = &apperr.Error{Code: apperr.Invalid, Field: "current_password", Message: "The current password is not correct.", Err: err}
		}
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}
