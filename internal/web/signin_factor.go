package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/httpx"
	"github.com/moat-dev/moat/internal/mfa"
)

// The second step of signing in (/login/factor) and passwordless sign-in
// with a passkey (/login/passkey).
//
// The factor page offers the account's methods in the service's order —
// security key, app, SMS, backup code — one at a time, with links to the
// others. A security key runs the WebAuthn ceremony in the browser (the
// one step that needs JavaScript); SMS sends a code when the person asks
// for it; the others take a typed code. Every answer goes through
// account.VerifySecondFactor, which holds the state machine: nothing here
// can issue a session by itself.

// Method names as the account service and internal/mfa spell them.
const (
	methodWebAuthn = "webauthn"
	methodSMS      = "sms"
	methodBackup   = "backup_code"
)

const pathFactor = "/login/factor"

func (h *Handler) registerSignInFactors(mux *http.ServeMux) {
	mux.HandleFunc("POST "+pathFactor+"/sms", h.form(h.factorSMS))
	mux.HandleFunc("POST "+pathFactor+"/key", h.form(h.factorNoScript))
	mux.HandleFunc("POST "+pathFactor+"/key/begin", h.factorKeyBegin)
	mux.HandleFunc("POST "+pathFactor+"/key/finish", h.factorKeyFinish)
	mux.HandleFunc("POST /login/passkey", h.form(h.passkeyNoScript))
	mux.HandleFunc("POST /login/passkey/begin", h.passkeyBegin)
	mux.HandleFunc("POST /login/passkey/finish", h.passkeyFinish)
}

// factorView is a second-factor form: the selected method's form and
// links to the others. Sign-in and step-up share the template
// (_factor.html).
type factorView struct {
	Methods  []string
	Selected string
	// Base is the form's action; Field names the method field; Next
	// (step-up) is where to go afterwards.
	Base, Field, Next string
	// SentTo is the masked number an SMS code went to.
	SentTo string
	// Label, Hint and Numeric describe the code field of the selected
	// method.
	Label, Hint string
	Numeric     bool
	// Others links the other methods.
	Others []methodLink
	// Heading and Lead introduce the step.
	Heading, Lead string
}

type methodLink struct{ Name, URL string }

// newFactorView builds the form for methods with want selected (the first
// method when want is not one of them).
func newFactorView(methods []string, want, base, field, next string) factorView {
	v := factorView{Methods: methods, Selected: pick(methods, want), Base: base, Field: field, Next: next}
	for _, m := range methods {
		if m == v.Selected {
			continue
		}
		q := url.Values{"method": {m}}
		if next != "" {
			q.Set("next", next)
		}
		v.Others = append(v.Others, methodLink{Name: m, URL: base + "?" + q.Encode()})
	}
	switch v.Selected {
	case mfa.MethodTOTP:
		v.Label, v.Hint, v.Numeric = "Code from your authenticator app", "The 6-digit code your app shows for this account now. It changes every 30 seconds.", true
	case methodSMS:
		v.Label, v.Hint, v.Numeric = "Code from the text message", "The 6 digits in the text message we sent. It works for 5 minutes.", true
	case methodBackup:
		v.Label, v.Hint = "Backup code", "One of the codes you saved when you set up two-factor authentication, like ABCDE-12345. Each works once."
	default:
		v.Label, v.Hint = "Code", "Type the code without spaces."
	}
	return v
}

func (h *Handler) factorPage(w http.ResponseWriter, r *http.Request) {
	h.showFactor(w, r, &page{}, nil, r.URL.Query().Get("method"), "")
}

// showFactor renders the second-factor step for the pending sign-in with
// method selected, and fail (if any) next to the code field.
func (h *Handler) showFactor(w http.ResponseWriter, r *http.Request, p *page, fail error, method, sentTo string) {
	pending := cookieValue(r, h.cookies.pending)
	if pending == "" {
		h.restart(w, r, nil)
		return
	}
	res, err := h.accounts.PendingStatus(r.Context(), pending, h.client(r))
	switch {
	case err != nil && pendingGone(err):
		h.restart(w, r, err)
		return
	case err != nil:
		h.fail(w, r, "Sign-in", err)
		return
	case res.Step == account.StepDeviceApproval:
		see(w, r, "/login/device")
		return
	case res.Step != account.StepSecondFactor:
		h.advance(w, r, res)
		return
	}
	v := newFactorView(res.Factors, method, pathFactor, "factor", "")
	v.SentTo = sentTo
	v.Heading = "Confirm it's you"
	v.Lead = "Your password is right. Your account is also protected by a second step: use one of the ways you set up."
	p.Title, p.Data = "Confirm it's you", v
	if fail != nil {
		h.formError(w, r, "factor", p, fail, "response")
		return
	}
	status := http.StatusOK
	if len(p.Errors) > 0 || p.Alert != "" {
		status = http.StatusBadRequest
	}
	h.render(w, r, status, "factor", p)
}

// factor checks a typed code (app, SMS, backup code).
func (h *Handler) factor(w http.ResponseWriter, r *http.Request) {
	pending := cookieValue(r, h.cookies.pending)
	if pending == "" {
		h.restart(w, r, nil)
		return
	}
	factor := r.PostForm.Get("factor")
	response := strings.TrimSpace(r.PostForm.Get("response"))
	sentTo := maskedOrEmpty(r.PostForm.Get("sent_to"))
	p := &page{}
	if response == "" {
		p.fieldErr("response", "Enter the code.", "response")
		h.showFactor(w, r, p, nil, factor, sentTo)
		return
	}
	res, err := h.accounts.VerifySecondFactor(r.Context(), pending, factor, response, h.client(r))
	switch {
	case err == nil && res.SignInFactor == methodBackup && res.Step == account.StepDone && res.Session != nil && !res.MustEnrol && h.mfa != nil:
		// Say how many codes are left and invite a new method: a backup
		// code usually means a lost phone or key.
		h.startSession(w, r, res.Session)
		see(w, r, PathSecurity+"?n=backup-code-used")
	case err == nil:
		h.advance(w, r, res)
	case apperr.CodeOf(err) == apperr.Conflict:
		see(w, r, "/login/device")
	case signInGone(err):
		h.restart(w, r, err)
	default:
		// A refused answer (wrong, reused, expired code): shown at the
		// code field. If it was the last try, the page finds the sign-in
		// stopped and starts again.
		h.showFactor(w, r, p, answerError(err), factor, sentTo)
	}
}

// signInGone reports whether err ends the pending sign-in itself (unknown,
// expired, complete, locked). A refused answer carries the field it is
// about, even when its code is TokenUsed or TokenExpired (a reused or
// expired code), and leaves the sign-in going.
func signInGone(err error) bool {
	e, ok := apperr.As(err)
	return pendingGone(err) && (!ok || e.Field == "")
}

// answerError puts a factor's error on the page's code field.
func answerError(err error) error {
	e, ok := apperr.As(err)
	if !ok || e.Field != "code" {
		return err
	}
	c := *e
	c.Field = "response"
	return &c
}

// afterSignIn is where a completed sign-in goes: the account page, or
// enrolment when the platform requires a second factor first.
func afterSignIn(res *account.SignInResult) string {
	if res.MustEnrol {
		return PathSecurity + "?n=must-enrol"
	}
	return "/account"
}

// factorSMS sends a code to the account's phone.
func (h *Handler) factorSMS(w http.ResponseWriter, r *http.Request) {
	pending := cookieValue(r, h.cookies.pending)
	if pending == "" {
		h.restart(w, r, nil)
		return
	}
	ch, err := h.accounts.StartSecondFactor(r.Context(), pending, methodSMS, h.client(r))
	switch {
	case err == nil:
		sentTo := "your phone"
		if c, ok := ch.(mfa.Challenge); ok && c.SentTo != "" {
			sentTo = c.SentTo
		}
		h.showFactor(w, r, &page{Notice: "We sent a 6-digit code to " + sentTo + ". It works for 5 minutes."}, nil, methodSMS, sentTo)
	case apperr.CodeOf(err) == apperr.Conflict:
		see(w, r, "/login/device")
	case signInGone(err):
		h.restart(w, r, err)
	default:
		h.retryAfter(w, err)
		h.showFactor(w, r, &page{}, err, methodSMS, "")
	}
}

func (h *Handler) factorNoScript(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusBadRequest, "message", &page{Title: "JavaScript needed", Data: messageData{
		Heading: "Security keys need JavaScript", Problem: true,
		Text:    "Your browser talks to a security key or passkey through JavaScript, which is off or did not load. Turn it on for this site and try again, or use another of your methods.",
		NextURL: pathFactor + "?method=" + methodBackup, NextText: "Use another method",
	}})
}

// factorKeyBegin starts the security key's assertion for the pending
// sign-in (JSON, for the WebAuthn script).
func (h *Handler) factorKeyBegin(w http.ResponseWriter, r *http.Request) {
	if _, err := readJSON(w, r); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	pending := cookieValue(r, h.cookies.pending)
	ch, err := h.accounts.StartSecondFactor(r.Context(), pending, methodWebAuthn, h.client(r))
	if err != nil {
		h.pendingJSONError(w, r, err)
		return
	}
	if ch == nil {
		httpx.WriteError(w, r, errors.New("web: no WebAuthn challenge from the account service"))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, ch)
}

// factorKeyFinish verifies the key's answer and completes the sign-in.
func (h *Handler) factorKeyFinish(w http.ResponseWriter, r *http.Request) {
	body, err := readJSON(w, r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	pending := cookieValue(r, h.cookies.pending)
	res, err := h.accounts.VerifySecondFactor(r.Context(), pending, methodWebAuthn, string(body), h.client(r))
	if err != nil {
		h.pendingJSONError(w, r, err)
		return
	}
	h.signInJSON(w, r, res)
}

// pendingJSONError answers a failed factor call of the script; a sign-in
// that cannot go on also loses its cookie, so the next page starts again.
func (h *Handler) pendingJSONError(w http.ResponseWriter, r *http.Request, err error) {
	if cookieValue(r, h.cookies.pending) == "" {
		err = apperr.New(apperr.Unauthorized, "This sign-in has expired or was cancelled. Reload the page and sign in again.")
	}
	if signInGone(err) {
		h.clearCookie(w, h.cookies.pending)
	}
	httpx.WriteError(w, r, err)
}

// signInJSON is advance for the script: the cookies of the next step and
// where to go.
func (h *Handler) signInJSON(w http.ResponseWriter, r *http.Request, res *account.SignInResult) {
	to := ""
	switch res.Step {
	case account.StepDone:
		if res.Session == nil {
			httpx.WriteError(w, r, errors.New("web: sign-in done without a session"))
			return
		}
		h.startSession(w, r, res.Session)
		to = afterSignIn(res)
	case account.StepDeviceApproval:
		h.setCookie(w, h.cookies.pending, res.PendingToken, pendingCookieTTL)
		to = "/login/device"
	case account.StepSecondFactor:
		h.setCookie(w, h.cookies.pending, res.PendingToken, pendingCookieTTL)
		to = pathFactor
	default:
		httpx.WriteError(w, r, errors.New("web: unknown sign-in step "+string(res.Step)))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"redirect": to})
}

// Passwordless sign-in with a passkey.

func (h *Handler) passkeyNoScript(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusBadRequest, "message", &page{Title: "JavaScript needed", Data: messageData{
		Heading: "Passkeys need JavaScript", Problem: true,
		Text:    "Your browser talks to your passkey through JavaScript, which is off or did not load. Turn it on for this site, or sign in with your e-mail address and password.",
		NextURL: "/login", NextText: "Sign in with a password",
	}})
}

func (h *Handler) passkeyBegin(w http.ResponseWriter, r *http.Request) {
	if _, err := readJSON(w, r); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	ch, err := h.mfa.BeginPasskeySignIn(r.Context(), h.client(r).IP)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, ch)
}

func (h *Handler) passkeyFinish(w http.ResponseWriter, r *http.Request) {
	body, err := readJSON(w, r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	kr, err := mfa.ParseKeyResponse(string(body))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	accountID, err := h.mfa.FinishPasskeySignIn(r.Context(), kr.Ceremony, kr.Credential)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	res, err := h.accounts.SignInWithPasskey(r.Context(), accountID, h.client(r))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	h.signInJSON(w, r, res)
}
