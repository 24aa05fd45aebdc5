package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/httpx"
	"github.com/moat-dev/moat/internal/mfa"
)

// Step-up: a signed-in person confirms it's them with a second factor
// before a security change (adding or removing a method, new backup codes,
// 2FA settings, the password, API keys). The page at PathStepUp offers the
// account's methods, security key first; a verified answer is recorded on
// the session (account.RecordStepUp) and the browser goes back to ?next=,
// where the change can now be made for the next few minutes.

func (h *Handler) registerStepUp(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathStepUp, h.auth(h.stepUpPage))
	mux.HandleFunc("POST "+PathStepUp, h.form(h.auth(h.stepUpCode)))
	mux.HandleFunc("POST "+PathStepUp+"/sms", h.form(h.auth(h.stepUpSMS)))
	mux.HandleFunc("POST "+PathStepUp+"/key", h.form(h.auth(h.stepUpNoScript)))
	mux.HandleFunc("POST "+PathStepUp+"/key/begin", h.jsonAuth(h.stepUpKeyBegin))
	mux.HandleFunc("POST "+PathStepUp+"/key/finish", h.jsonAuth(h.stepUpKeyFinish))
}

// safeNext returns next when it is a path on this site under the signed-in
// pages, else the Security page: the step-up page must not become an open
// redirect.
func safeNext(next string) string {
	if next == "" || len(next) > 512 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsAny(next, "\\\r\n\t") {
		return PathSecurity
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Fragment != "" {
		return PathSecurity
	}
	if strings.Contains(u.Path, "/.") || strings.Contains(u.Path, "//") {
		return PathSecurity // dot segments or empty ones: not a page of ours
	}
	if u.Path != "/account" && !strings.HasPrefix(u.Path, "/account/") && !strings.HasPrefix(u.Path, "/security/") {
		return PathSecurity
	}
	if strings.HasPrefix(u.Path, PathStepUp) {
		return PathSecurity
	}
	return u.RequestURI()
}

// pick returns want when it is one of methods, else the first method.
func pick(methods []string, want string) string {
	if slices.Contains(methods, want) {
		return want
	}
	if len(methods) > 0 {
		return methods[0]
	}
	return ""
}

func (h *Handler) stepUpPage(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	q := r.URL.Query()
	h.showStepUp(w, r, pr, http.StatusOK, &page{}, safeNext(q.Get("next")), q.Get("method"), "")
}

func (h *Handler) showStepUp(w http.ResponseWriter, r *http.Request, pr account.Principal, status int, p *page, next, method, sentTo string) {
	methods, err := h.mfa.EnrolledMethods(r.Context(), pr.Account.ID)
	if err != nil {
		h.fail(w, r, "Confirm it's you", err)
		return
	}
	if len(methods) == 0 {
		// Nothing to confirm with: changes need no step-up.
		see(w, r, next)
		return
	}
	p.Title, p.Account, p.Nav = "Confirm it's you", &pr.Account, "security"
	v := newFactorView(methods, method, PathStepUp, "method", next)
	v.SentTo = sentTo
	v.Heading = "Confirm it's you"
	v.Lead = "This change protects your account, so we ask for your second factor again. You will not be asked again for a few minutes."
	p.Data = v
	h.render(w, r, status, "stepup", p)
}

// stepUpCode verifies a typed code (app, SMS or backup code).
func (h *Handler) stepUpCode(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	next := safeNext(r.PostForm.Get("next"))
	method := r.PostForm.Get("method")
	code := strings.TrimSpace(r.PostForm.Get("response"))
	sentTo := maskedOrEmpty(r.PostForm.Get("sent_to"))
	p := &page{Values: map[string]string{}}
	if code == "" {
		p.fieldErr("response", "Enter the code.", "response")
		h.showStepUp(w, r, pr, http.StatusBadRequest, p, next, method, sentTo)
		return
	}
	at, err := h.mfa.StepUp(r.Context(), pr, method, code, h.client(r))
	if err == nil {
		err = h.accounts.RecordStepUp(r.Context(), pr, at)
	}
	if err != nil {
		if httpx.Status(err) >= 500 {
			h.internal(w, r, err)
			return
		}
		e, _ := apperr.As(err)
		p.fieldErr(responseField(e.Field), e.Message, "response")
		h.retryAfter(w, err)
		h.showStepUp(w, r, pr, httpx.Status(err), p, next, method, sentTo)
		return
	}
	see(w, r, withNotice(next, "stepped-up"))
}

// responseField maps the service's field for a typed answer to the form's.
func responseField(f string) string {
	if f == "" || f == "code" || f == "response" {
		return "response"
	}
	return f
}

func maskedOrEmpty(s string) string {
	if s == "" {
		return ""
	}
	return maskedOrSome(s)
}

// withNotice adds ?n=notice to a local path that has no notice yet.
func withNotice(path, notice string) string {
	u, err := url.Parse(path)
	if err != nil {
		return path
	}
	q := u.Query()
	if q.Has("n") {
		return path
	}
	q.Set("n", notice)
	u.RawQuery = q.Encode()
	return u.RequestURI()
}

// retryAfter sets Retry-After from a rate-limit error.
func (h *Handler) retryAfter(w http.ResponseWriter, err error) {
	if e, ok := apperr.As(err); ok && e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter.Seconds()+0.999)))
	}
}

// stepUpSMS sends a code to the account's phone.
func (h *Handler) stepUpSMS(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	next := safeNext(r.PostForm.Get("next"))
	ch, err := h.mfa.StepUpChallenge(r.Context(), pr, mfa.MethodSMS)
	if err != nil {
		if httpx.Status(err) >= 500 {
			h.internal(w, r, err)
			return
		}
		h.retryAfter(w, err)
		h.showStepUp(w, r, pr, httpx.Status(err), &page{Alert: apperr.MessageOf(err)}, next, mfa.MethodSMS, "")
		return
	}
	h.showStepUp(w, r, pr, http.StatusOK, &page{Notice: "We sent a code to " + ch.SentTo + ". It works for a few minutes."}, next, mfa.MethodSMS, ch.SentTo)
}

func (h *Handler) stepUpNoScript(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	h.render(w, r, http.StatusBadRequest, "message", &page{Title: "JavaScript needed", Account: &pr.Account, Nav: "security", Data: messageData{
		Heading: "Security keys need JavaScript", Problem: true,
		Text:    "Your browser talks to a security key or passkey through JavaScript, which is off or did not load. Turn it on for this site, or confirm with another method.",
		NextURL: PathStepUp + "?method=" + mfa.MethodBackupCode + "&next=" + url.QueryEscape(safeNext(r.PostForm.Get("next"))), NextText: "Use another method",
	}})
}

func (h *Handler) stepUpKeyBegin(w http.ResponseWriter, r *http.Request, pr account.Principal, _ []byte) {
	ch, err := h.mfa.StepUpChallenge(r.Context(), pr, mfa.MethodWebAuthn)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, ch)
}

func (h *Handler) stepUpKeyFinish(w http.ResponseWriter, r *http.Request, pr account.Principal, body []byte) {
	var in struct {
		Next string `json:"next"`
	}
	_ = json.Unmarshal(body, &in) // next is optional; a bad one means the Security page
	at, err := h.mfa.StepUp(r.Context(), pr, mfa.MethodWebAuthn, string(body), h.client(r))
	if err == nil {
		err = h.accounts.RecordStepUp(r.Context(), pr, at)
	}
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"redirect": withNotice(safeNext(in.Next), "stepped-up")})
}
