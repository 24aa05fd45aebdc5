package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/httpx"
	"github.com/moat-dev/moat/internal/mfa"
)

// Password reset.
//
//	GET  /forgot        the form: an e-mail address.
//	POST /forgot        the same "check your e-mail" page for every address
//	                    (account.RequestPasswordReset sends through the
//	                    outbox, so the timing says nothing either).
//	GET  /reset?token=  the e-mailed link: checks it, asks for the new
//	                    password and, for an account with a second factor,
//	                    one of its methods (a code field; a security key
//	                    through the WebAuthn script; SMS after "Send a
//	                    code"), with links to the others and to a recovery
//	                    case for someone who has none of them.
//	POST /reset         sets the password; the next page says what
//	                    happened and what to check.
//
// account.ResetPassword holds every rule (single use, expiry, the factor,
// the tries): nothing here changes a password by itself. The link opens a
// form and only its POST uses the token, so mail scanners that fetch links
// change nothing.

const (
	pathForgot = account.PathForgotPassword
	pathReset  = account.PathResetPassword
)

// flashResetDone is the flash kind that carries a reset's result from the
// security-key script's call to the page it then opens.
const flashResetDone = "reset-done"

// resetFlashContext binds that flash to resets (there is no session).
const resetFlashContext = "password-reset"

func (h *Handler) registerReset(mux *http.ServeMux) {
	mux.HandleFunc("GET "+pathForgot, h.forgotPage)
	mux.HandleFunc("POST "+pathForgot, h.form(h.forgot))
	mux.HandleFunc("GET "+pathReset, h.resetPage)
	mux.HandleFunc("POST "+pathReset, h.form(h.reset))
	mux.HandleFunc("POST "+pathReset+"/sms", h.form(h.resetSMS))
	if h.mfa != nil {
		mux.HandleFunc("POST "+pathReset+"/key", h.form(h.resetKeyNoScript))
		mux.HandleFunc("POST "+pathReset+"/key/begin", h.resetKeyBegin)
		mux.HandleFunc("POST "+pathReset+"/key/finish", h.resetKeyFinish)
		mux.HandleFunc("GET "+pathReset+"/done", h.resetDonePage)
	}
}

// Asking for a link.

func (h *Handler) forgotPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "forgot", &page{Title: "Reset your password"})
}

func (h *Handler) forgot(w http.ResponseWriter, r *http.Request) {
	email := strings.TrimSpace(r.PostForm.Get("email"))
	p := &page{Title: "Reset your password", Values: map[string]string{"email": email}}
	if !p.required(map[string]string{"email": "Enter the e-mail address of your account."}) {
		h.render(w, r, http.StatusBadRequest, "forgot", p)
		return
	}
	// Errors depend on the input and the network only (a malformed
	// address, too many requests), never on who has an account.
	if err := h.accounts.RequestPasswordReset(r.Context(), email, h.client(r)); err != nil {
		h.formError(w, r, "forgot", p, err, "email")
		return
	}
	// Not even the address is repeated: the page is byte for byte the
	// same for every request that got this far.
	h.render(w, r, http.StatusOK, "forgot_sent", &page{Title: "Check your e-mail"})
}

// The reset form.

// resetData is the reset page's content: the factor form of the selected
// method (for an account with a second factor) plus the link's own.
type resetData struct {
	factorView
	Token string
	// Email is the account's address, masked.
	Email string
	// RecoveryURL opens a recovery case with this link as the proof of
	// the address (set for an account with a second factor).
	RecoveryURL string
}

func (h *Handler) resetPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	h.showReset(w, r, &page{}, q.Get("token"), q.Get("method"), "", nil)
}

// showReset renders the reset form of token with method selected, and
// fail (if any) next to its field. A link that does not work gets the
// page that says so.
func (h *Handler) showReset(w http.ResponseWriter, r *http.Request, p *page, token, method, sentTo string, fail error) {
	if token == "" {
		h.render(w, r, http.StatusBadRequest, "message", &page{Title: "Link incomplete", Data: messageData{
			Heading: "This password-reset link is incomplete", Problem: true,
			Text:    "Open the link from the e-mail again, or copy the whole address into your browser. You can also ask for a new link.",
			NextURL: pathForgot, NextText: "Ask for a new link",
		}})
		return
	}
	link, err := h.accounts.CheckResetLink(r.Context(), token)
	if err != nil {
		h.resetLinkFailed(w, r, err)
		return
	}
	d := resetData{Token: token, Email: link.Email}
	if len(link.Factors) > 0 {
		d.factorView = newFactorView(link.Factors, method, pathReset, "factor", "")
		d.Others = nil
		for _, m := range link.Factors {
			if m != d.Selected {
				d.Others = append(d.Others, methodLink{Name: m, URL: resetURL(token, m)})
			}
		}
		d.SentTo = sentTo
		if h.recovery != nil {
			d.RecoveryURL = PathRecoveryNew + "?" + url.Values{"token": {token}}.Encode()
		}
	}
	p.Title, p.Data = "Choose a new password", d
	if fail != nil {
		h.formError(w, r, "reset", p, fail, "new_password", "response")
		return
	}
	status := http.StatusOK
	if len(p.Errors) > 0 || p.Alert != "" {
		status = http.StatusBadRequest
	}
	h.render(w, r, status, "reset", p)
}

// resetURL is the reset page of token with method selected.
func resetURL(token, method string) string {
	q := url.Values{"token": {token}}
	if method != "" {
		q.Set("method", method)
	}
	return pathReset + "?" + q.Encode()
}

// linkGone reports whether err is about the link or the account rather
// than a field of the form: the form cannot help, the message page can.
func linkGone(err error) bool {
	e, ok := apperr.As(err)
	if !ok || e.Field != "" {
		return false
	}
	switch e.Code {
	case apperr.TokenInvalid, apperr.TokenExpired, apperr.TokenUsed, apperr.AccountLocked, apperr.Forbidden:
		return true
	}
	return false
}

// resetLinkFailed shows why a link does not work and what to do next.
func (h *Handler) resetLinkFailed(w http.ResponseWriter, r *http.Request, err error) {
	status := httpx.Status(err)
	if status >= 500 {
		h.internal(w, r, err)
		return
	}
	d := messageData{
		Heading: "This password-reset link does not work", Problem: true, Text: apperr.MessageOf(err),
		NextURL: pathForgot, NextText: "Ask for a new link",
	}
	switch apperr.CodeOf(err) {
	case apperr.AccountLocked:
		d.Heading, d.NextURL, d.NextText = "This account is locked", "", ""
	case apperr.Forbidden:
		d.Heading, d.NextURL, d.NextText = "The password cannot be reset here", "", ""
	}
	h.render(w, r, status, "message", &page{Title: "Link not valid", Data: d})
}

func (h *Handler) reset(w http.ResponseWriter, r *http.Request) {
	token := r.PostForm.Get("token")
	next := r.PostForm.Get("new_password")
	factor := r.PostForm.Get("factor")
	response := strings.TrimSpace(r.PostForm.Get("response"))
	sentTo := maskedOrEmpty(r.PostForm.Get("sent_to"))
	p := &page{}
	if next == "" {
		p.fieldErr("new_password", "Choose a new password.", "new_password")
		h.showReset(w, r, p, token, factor, sentTo, nil)
		return
	}
	done, err := h.accounts.ResetPassword(r.Context(), token, next, factor, response, h.client(r))
	switch {
	case err == nil:
		h.resetDone(w, r, done.HoldUntil)
	case linkGone(err):
		h.resetLinkFailed(w, r, err)
	default:
		h.showReset(w, r, p, token, factor, sentTo, answerError(err))
	}
}

// resetDone shows what the reset did and what to check next. The
// browser's session, if it had one, was revoked with all the others.
func (h *Handler) resetDone(w http.ResponseWriter, r *http.Request, holdUntil time.Time) {
	h.clearCookie(w, h.cookies.session)
	h.clearCookie(w, h.cookies.pending)
	h.render(w, r, http.StatusOK, "reset_done", &page{Title: "Password reset", Data: holdUntil})
}

// resetSMS sends a code to the account's phone.
func (h *Handler) resetSMS(w http.ResponseWriter, r *http.Request) {
	token := r.PostForm.Get("token")
	ch, err := h.accounts.StartResetFactor(r.Context(), token, methodSMS, h.client(r))
	switch {
	case err == nil:
		sentTo := "your phone"
		if c, ok := ch.(mfa.Challenge); ok && c.SentTo != "" {
			sentTo = c.SentTo
		}
		h.showReset(w, r, &page{Notice: "We sent a 6-digit code to " + sentTo + ". It works for 5 minutes."}, token, methodSMS, sentTo, nil)
	case linkGone(err):
		h.resetLinkFailed(w, r, err)
	default:
		h.showReset(w, r, &page{}, token, methodSMS, "", err)
	}
}

// The security key (the WebAuthn script posts JSON: the form's fields,
// then those with the ceremony and the key's answer).

type resetKeyRequest struct {
	Token       string          `json:"token"`
	NewPassword string          `json:"new_password"`
	Ceremony    string          `json:"ceremony"`
	Credential  json.RawMessage `json:"credential"`
}

func decodeResetKey(w http.ResponseWriter, r *http.Request) (resetKeyRequest, error) {
	var req resetKeyRequest
	body, err := readJSON(w, r)
	if err != nil {
		return req, err
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return req, apperr.New(apperr.Invalid, "The request could not be read. Reload the page and try again.")
	}
	return req, nil
}

func (h *Handler) resetKeyNoScript(w http.ResponseWriter, r *http.Request) {
	d := messageData{
		Heading: "Security keys need JavaScript", Problem: true,
		Text: "Your browser talks to a security key or passkey through JavaScript, which is off or did not load. Turn it on for this site and try again, or use another of your methods.",
	}
	if tok := r.PostForm.Get("token"); tok != "" {
		d.NextURL, d.NextText = resetURL(tok, methodBackup), "Use another method"
	}
	h.render(w, r, http.StatusBadRequest, "message", &page{Title: "JavaScript needed", Data: d})
}

func (h *Handler) resetKeyBegin(w http.ResponseWriter, r *http.Request) {
	req, err := decodeResetKey(w, r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	ch, err := h.accounts.StartResetFactor(r.Context(), req.Token, methodWebAuthn, h.client(r))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if ch == nil {
		httpx.WriteError(w, r, errors.New("web: no WebAuthn challenge from the account service"))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, ch)
}

func (h *Handler) resetKeyFinish(w http.ResponseWriter, r *http.Request) {
	req, err := decodeResetKey(w, r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	// The factor gets the key's answer only, not the password.
	answer, err := json.Marshal(mfa.KeyResponse{Ceremony: req.Ceremony, Credential: req.Credential})
	if err != nil || req.Ceremony == "" || len(req.Credential) == 0 {
		httpx.WriteError(w, r, apperr.New(apperr.Invalid, "Your browser's security key answer was incomplete. Try again."))
		return
	}
	done, err := h.accounts.ResetPassword(r.Context(), req.Token, req.NewPassword, methodWebAuthn, string(answer), h.client(r))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if err := h.setFlash(w, resetFlashContext, flashValue{Kind: flashResetDone, Until: done.HoldUntil}); err != nil {
		h.log.WarnContext(r.Context(), "web: reset flash", "err", err)
	}
	h.clearCookie(w, h.cookies.session)
	h.clearCookie(w, h.cookies.pending)
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"redirect": pathReset + "/done"})
}

// resetDonePage is where the script goes after a reset with a security
// key. Without its flash (opened twice, or typed in) there is nothing to
// report: the sign-in page.
func (h *Handler) resetDonePage(w http.ResponseWriter, r *http.Request) {
	v, ok := h.takeFlash(w, r, resetFlashContext, flashResetDone)
	if !ok {
		see(w, r, "/login")
		return
	}
	h.render(w, r, http.StatusOK, "reset_done", &page{Title: "Password reset", Data: v.Until})
}
