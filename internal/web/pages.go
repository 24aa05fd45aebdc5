package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/httpx"
)

// maxFormBytes bounds every form body; the largest form holds two passwords
// of at most 256 characters.
const maxFormBytes = 16 << 10

// client describes the requester to the service.
func (h *Handler) client(r *http.Request) account.Client {
	return account.Client{
		IP:          httpx.ClientIP(r, h.trusted),
		UserAgent:   r.UserAgent(),
		DeviceToken: cookieValue(r, h.cookies.device),
		Kind:        "web",
	}
}

// form limits the request body and parses the form before next runs.
func (h *Handler) form(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				h.render(w, r, http.StatusRequestEntityTooLarge, "message", &page{Title: "Form too large", Data: messageData{
					Heading: "That form was too large", Problem: true,
					Text: "We could not read what you sent because it was too long. Go back, shorten it and try again.",
				}})
				return
			}
			h.render(w, r, http.StatusBadRequest, "message", &page{Title: "Form not readable", Data: messageData{
				Heading: "We could not read that form", Problem: true,
				Text: "Go back, reload the page and try again.",
			}})
			return
		}
		next(w, r)
	}
}

type authedFunc func(w http.ResponseWriter, r *http.Request, p account.Principal)

// auth admits requests with a valid session cookie and sends everyone else to
// the sign-in page.
func (h *Handler) auth(next authedFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := cookieValue(r, h.cookies.session)
		if tok == "" {
			h.toLogin(w, r, "signin-required")
			return
		}
		p, err := h.accounts.Authenticate(r.Context(), tok, h.client(r))
		if err != nil {
			if httpx.Status(err) >= 500 {
				h.internal(w, r, err)
				return
			}
			h.clearCookie(w, h.cookies.session)
			h.toLogin(w, r, "session-ended")
			return
		}
		if h.mustEnrolFirst(w, r, p) {
			return
		}
		next(w, r, p)
	}
}

func (h *Handler) toLogin(w http.ResponseWriter, r *http.Request, notice string) {
	see(w, r, "/login?n="+notice)
}

// see redirects after a POST (or to another page) with 303 See Other.
func see(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// notices are the fixed messages a redirect may ask a page to show (?n=).
// Only these keys are accepted, so a crafted link cannot put words on a page.
var notices = map[string]string{
	"signin-required":       "Please sign in to see your account.",
	"session-ended":         "Your session has ended: it timed out or was signed out. Please sign in again.",
	"signed-out":            "You are signed out. Sign in again whenever you need to.",
	"pending-expired":       "That sign-in attempt has expired or was cancelled. Please sign in again.",
	"revoked":               "That session is signed out. Whoever used it will have to sign in again.",
	"anti-phishing-set":     "Your anti-phishing code is saved. Every e-mail from us will show it; if an e-mail does not, it is not from us.",
	"anti-phishing-cleared": "Your anti-phishing code is removed. E-mails from us will no longer show one.",
	"password-changed":      "Your password is changed and your other sessions are signed out. Use the new password next time you sign in.",
}

func noticeFrom(r *http.Request) string {
	q := r.URL.Query()
	if q.Get("n") == "revoked-others" {
		n, _ := strconv.Atoi(q.Get("c"))
		switch {
		case n == 1:
			return "Your other session is signed out. Only this browser is still signed in."
		case n > 1:
			return "Your " + strconv.Itoa(n) + " other sessions are signed out. Only this browser is still signed in."
		}
		return "There were no other sessions to sign out. Only this browser is signed in."
	}
	return notices[q.Get("n")]
}

// formError shows err on form page name: a client error next to its field
// (or above the form) with its 4xx status; anything else as internal.
func (h *Handler) formError(w http.ResponseWriter, r *http.Request, name string, p *page, err error, fields ...string) {
	status := httpx.Status(err)
	if status >= 500 {
		h.internal(w, r, err)
		return
	}
	e, _ := apperr.As(err)
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter.Seconds()+0.999)))
	}
	p.fieldErr(e.Field, e.Message, fields...)
	h.render(w, r, status, name, p)
}

// required records a "fill this in" error for each empty field.
func (p *page) required(msgs map[string]string) bool {
	ok := true
	for field, msg := range msgs {
		if strings.TrimSpace(p.Values[field]) == "" {
			p.fieldErr(field, msg, field)
			ok = false
		}
	}
	return ok
}

// Home.

func (h *Handler) home(w http.ResponseWriter, r *http.Request) {
	if h.signedIn(r) {
		see(w, r, "/account")
		return
	}
	see(w, r, "/login")
}

func (h *Handler) signedIn(r *http.Request) bool {
	tok := cookieValue(r, h.cookies.session)
	if tok == "" {
		return false
	}
	_, err := h.accounts.Authenticate(r.Context(), tok, h.client(r))
	return err == nil
}

// Sign-up and e-mail confirmation.

func (h *Handler) signupPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "signup", &page{Title: "Create your account"})
}

func (h *Handler) signup(w http.ResponseWriter, r *http.Request) {
	email := strings.TrimSpace(r.PostForm.Get("email"))
	password := r.PostForm.Get("password")
	p := &page{Title: "Create your account", Values: map[string]string{"email": email, "password": password}}
	if !p.required(map[string]string{"email": "Enter your e-mail address.", "password": "Choose a password."}) {
		h.render(w, r, http.StatusBadRequest, "signup", p)
		return
	}
	if err := h.accounts.SignUp(r.Context(), email, password, h.client(r)); err != nil {
		h.formError(w, r, "signup", p, err, "email", "password")
		return
	}
	see(w, r, "/signup/check-email")
}

func (h *Handler) checkEmailPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "check_email", &page{Title: "Check your e-mail"})
}

func (h *Handler) confirmPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if token == "" {
		h.render(w, r, http.StatusBadRequest, "message", &page{Title: "Link incomplete", Data: messageData{
			Heading: "This confirmation link is incomplete", Problem: true,
			Text:    "Open the link from the e-mail again, or copy the whole address into your browser. You can also ask for a new link.",
			NextURL: "/resend-confirmation", NextText: "Send a new confirmation link",
		}})
		return
	}
	// Showing a button instead of confirming here keeps link scanners that
	// prefetch e-mail links from using up the single-use token.
	h.render(w, r, http.StatusOK, "confirm", &page{Title: "Confirm your e-mail address", Data: token})
}

func (h *Handler) confirm(w http.ResponseWriter, r *http.Request) {
	_, err := h.accounts.ConfirmEmail(r.Context(), r.PostForm.Get("token"), h.client(r))
	if err != nil {
		if httpx.Status(err) >= 500 {
			h.internal(w, r, err)
			return
		}
		h.render(w, r, httpx.Status(err), "message", &page{Title: "Link not valid", Data: messageData{
			Heading: "This confirmation link does not work", Problem: true,
			Text:    apperr.MessageOf(err),
			NextURL: "/resend-confirmation", NextText: "Send a new confirmation link",
		}})
		return
	}
	h.render(w, r, http.StatusOK, "message", &page{Title: "E-mail confirmed", Data: messageData{
		Heading: "Your e-mail address is confirmed",
		Text:    "Your account is ready. Sign in with your e-mail address and password.",
		NextURL: "/login", NextText: "Sign in",
	}})
}

func (h *Handler) resendPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "resend", &page{Title: "Send a new confirmation link"})
}

func (h *Handler) resend(w http.ResponseWriter, r *http.Request) {
	email := strings.TrimSpace(r.PostForm.Get("email"))
	p := &page{Title: "Send a new confirmation link", Values: map[string]string{"email": email}}
	if !p.required(map[string]string{"email": "Enter the e-mail address you signed up with."}) {
		h.render(w, r, http.StatusBadRequest, "resend", p)
		return
	}
	if err := h.accounts.ResendConfirmation(r.Context(), email, h.client(r)); err != nil {
		h.formError(w, r, "resend", p, err, "email")
		return
	}
	// The same answer whether or not the address has an account.
	p.Values = nil
	p.Notice = "If an account with an unconfirmed address " + email + " exists, we have sent it a new confirmation link. Older links no longer work. The e-mail can take a few minutes; check your spam folder too."
	h.render(w, r, http.StatusOK, "resend", p)
}

// Sign-in.

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("n") == "" && h.signedIn(r) {
		see(w, r, "/account")
		return
	}
	h.render(w, r, http.StatusOK, "login", &page{Title: "Sign in", Notice: noticeFrom(r)})
}

// loginData tells the sign-in page to offer a new confirmation link.
type loginData struct{ OfferResend bool }

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	email := strings.TrimSpace(r.PostForm.Get("email"))
	password := r.PostForm.Get("password")
	p := &page{Title: "Sign in", Values: map[string]string{"email": email, "password": password}}
	if !p.required(map[string]string{"email": "Enter your e-mail address.", "password": "Enter your password."}) {
		h.render(w, r, http.StatusBadRequest, "login", p)
		return
	}
	res, err := h.accounts.SignIn(r.Context(), email, password, h.client(r))
	if err != nil {
		switch apperr.CodeOf(err) {
		case apperr.BadCredential:
			// Verbatim, and the same for an unknown address and a wrong
			// password, so the page does not reveal who has an account.
			err = &apperr.Error{Code: apperr.BadCredential, Message: "Invalid username or password"}
		case apperr.Unconfirmed:
			p.Data = loginData{OfferResend: true}
		}
		h.formError(w, r, "login", p, err)
		return
	}
	h.advance(w, r, res)
}

// advance sends the browser to the next step of a sign-in.
func (h *Handler) advance(w http.ResponseWriter, r *http.Request, res *account.SignInResult) {
	switch res.Step {
	case account.StepDone:
		if res.Session == nil {
			h.internal(w, r, errors.New("web: sign-in done without a session"))
			return
		}
		h.startSession(w, r, res.Session)
		see(w, r, afterSignIn(res))
	case account.StepDeviceApproval:
		h.setCookie(w, h.cookies.pending, res.PendingToken, pendingCookieTTL)
		see(w, r, "/login/device")
	case account.StepSecondFactor:
		h.setCookie(w, h.cookies.pending, res.PendingToken, pendingCookieTTL)
		see(w, r, "/login/factor")
	default:
		h.internal(w, r, errors.New("web: unknown sign-in step "+string(res.Step)))
	}
}

// startSession sets the cookies of a completed sign-in. The session cookie
// always gets the new token the service issued (never a value the browser
// brought along), and a session the browser already had is signed out, so
// a planted or stale cookie cannot survive a sign-in.
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, s *account.IssuedSession) {
	if old := cookieValue(r, h.cookies.session); old != "" && old != s.Token {
		_ = h.accounts.SignOut(r.Context(), old, h.client(r))
	}
	h.setCookie(w, h.cookies.session, s.Token, 0, s.Session.ExpiresAt)
	if s.DeviceToken != "" {
		h.setCookie(w, h.cookies.device, s.DeviceToken, deviceCookieTTL)
	}
	h.clearCookie(w, h.cookies.pending)
}

// pendingGone reports whether err means the pending sign-in cannot go on
// (unknown, expired, voided by wrong codes, already complete, or the
// account locked), so the user must start again.
func pendingGone(err error) bool {
	switch apperr.CodeOf(err) {
	case apperr.Unauthorized, apperr.TokenExpired, apperr.TokenUsed, apperr.AccountLocked:
		return true
	}
	return false
}

// restart forgets this browser's pending sign-in and shows the sign-in form,
// saying why when err does.
func (h *Handler) restart(w http.ResponseWriter, r *http.Request, err error) {
	h.clearCookie(w, h.cookies.pending)
	if err == nil {
		h.toLogin(w, r, "pending-expired")
		return
	}
	h.render(w, r, httpx.Status(err), "login", &page{Title: "Sign in", Alert: apperr.MessageOf(err)})
}

func (h *Handler) devicePage(w http.ResponseWriter, r *http.Request) {
	if cookieValue(r, h.cookies.pending) == "" {
		h.restart(w, r, nil)
		return
	}
	h.render(w, r, http.StatusOK, "device", &page{Title: "Approve this device"})
}

func (h *Handler) deviceCode(w http.ResponseWriter, r *http.Request) {
	pending := cookieValue(r, h.cookies.pending)
	if pending == "" {
		h.restart(w, r, nil)
		return
	}
	code := strings.TrimSpace(r.PostForm.Get("code"))
	p := &page{Title: "Approve this device", Values: map[string]string{"code": code}}
	if !p.required(map[string]string{"code": "Enter the code from the e-mail."}) {
		h.render(w, r, http.StatusBadRequest, "device", p)
		return
	}
	res, err := h.accounts.ApproveDevice(r.Context(), pending, code, h.client(r))
	switch {
	case err == nil:
		h.advance(w, r, res)
	case apperr.CodeOf(err) == apperr.Conflict:
		// Approved already (by the link); the next step is the factor.
		see(w, r, "/login/factor")
	case pendingGone(err):
		h.restart(w, r, err)
	default:
		h.formError(w, r, "device", p, err, "code")
	}
}

func (h *Handler) deviceStatus(w http.ResponseWriter, r *http.Request) {
	pending := cookieValue(r, h.cookies.pending)
	if pending == "" {
		h.restart(w, r, nil)
		return
	}
	res, err := h.accounts.PendingStatus(r.Context(), pending, h.client(r))
	switch {
	case err == nil && res.Step == account.StepDeviceApproval:
		h.render(w, r, http.StatusOK, "device", &page{Title: "Approve this device",
			Notice: "Not approved yet. Open the link in the e-mail we sent and choose Approve, then check again here; or type the code from the e-mail below."})
	case err == nil:
		h.advance(w, r, res)
	case pendingGone(err):
		h.restart(w, r, err)
	default:
		h.formError(w, r, "device", &page{Title: "Approve this device"}, err)
	}
}

func (h *Handler) approvePage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if token == "" {
		h.render(w, r, http.StatusBadRequest, "message", &page{Title: "Link incomplete", Data: messageData{
			Heading: "This approval link is incomplete", Problem: true,
			Text: "Open the link from the e-mail again, or type the code from the e-mail in the browser where you are signing in.",
		}})
		return
	}
	h.render(w, r, http.StatusOK, "approve", &page{Title: "Approve a new sign-in", Data: token})
}

func (h *Handler) approve(w http.ResponseWriter, r *http.Request) {
	if err := h.accounts.ApproveDeviceLink(r.Context(), r.PostForm.Get("token"), h.client(r)); err != nil {
		if httpx.Status(err) >= 500 {
			h.internal(w, r, err)
			return
		}
		h.render(w, r, httpx.Status(err), "message", &page{Title: "Link not valid", Data: messageData{
			Heading: "This approval link does not work", Problem: true,
			Text:    apperr.MessageOf(err) + " You can also type the code from the e-mail in the browser where you are signing in.",
			NextURL: "/login", NextText: "Sign in again",
		}})
		return
	}
	h.render(w, r, http.StatusOK, "message", &page{Title: "Sign-in approved", Data: messageData{
		Heading: "The new device is approved",
		Text:    "Go back to the browser where you are signing in and choose Check again (an app continues by itself). If you did not start this sign-in, someone knows your password: change it now.",
	}})
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if tok := cookieValue(r, h.cookies.session); tok != "" {
		if err := h.accounts.SignOut(r.Context(), tok, h.client(r)); err != nil && httpx.Status(err) >= 500 {
			h.internal(w, r, err)
			return
		}
	}
	h.clearCookie(w, h.cookies.session)
	h.toLogin(w, r, "signed-out")
}

// "This wasn't me": secure the account.

func (h *Handler) securePage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if token == "" {
		h.render(w, r, http.StatusBadRequest, "message", &page{Title: "Link incomplete", Data: messageData{
			Heading: "This link is incomplete", Problem: true,
			Text: "Open the link from the e-mail again. If you cannot, contact support: they can lock your account for you.",
		}})
		return
	}
	h.render(w, r, http.StatusOK, "secure", &page{Title: "Secure your account", Data: token})
}

func (h *Handler) secureAccount(w http.ResponseWriter, r *http.Request) {
	if err := h.accounts.SecureAccount(r.Context(), r.PostForm.Get("token"), h.client(r)); err != nil {
		if httpx.Status(err) >= 500 {
			h.internal(w, r, err)
			return
		}
		h.render(w, r, httpx.Status(err), "message", &page{Title: "Link not valid", Data: messageData{
			Heading: "This link does not work", Problem: true,
			Text: apperr.MessageOf(err) + " If you think someone else is using your account, contact support now: they can lock it for you.",
		}})
		return
	}
	h.clearCookie(w, h.cookies.session)
	h.render(w, r, http.StatusOK, "message", &page{Title: "Account secured", Data: messageData{
		Heading: "Your account is secured",
		Text:    "All sessions are signed out and the account is locked, so nobody can sign in or withdraw. Contact support to unlock it: they will check that it is you, and you will then choose a new password.",
	}})
}

// Signed-in pages.

// accountData is the account page's content.
type accountData struct {
	Activity []account.Activity
	Device   *account.DeviceView
	// DeviceNew: this browser was unknown when this session signed in.
	DeviceNew     bool
	CurrentDevice string
}

func (h *Handler) accountPage(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	acts, err := h.accounts.RecentActivity(r.Context(), pr, 20)
	if err != nil {
		h.fail(w, r, "Your account", err)
		return
	}
	devs, err := h.accounts.Devices(r.Context(), pr)
	if err != nil {
		h.fail(w, r, "Your account", err)
		return
	}
	d := accountData{Activity: acts, CurrentDevice: pr.Session.DeviceID}
	for i := range devs {
		if devs[i].Current || devs[i].ID == pr.Session.DeviceID {
			d.Device = &devs[i]
			break
		}
	}
	// The newest sign-in on this device says whether it was new then.
	for _, a := range acts {
		if a.DeviceID == pr.Session.DeviceID && a.Type == "signin.success" {
			d.DeviceNew = a.NewDevice
			break
		}
	}
	h.render(w, r, http.StatusOK, "account", &page{Title: "Your account", Account: &pr.Account, Nav: "activity", Notice: noticeFrom(r), Data: d})
}

func (h *Handler) sessionsPage(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	h.showSessions(w, r, pr, http.StatusOK, &page{Notice: noticeFrom(r)})
}

func (h *Handler) showSessions(w http.ResponseWriter, r *http.Request, pr account.Principal, status int, p *page) {
	list, err := h.accounts.Sessions(r.Context(), pr)
	if err != nil {
		h.fail(w, r, "Sessions", err)
		return
	}
	p.Title, p.Account, p.Nav, p.Data = "Sessions", &pr.Account, "sessions", list
	h.render(w, r, status, "sessions", p)
}

func (h *Handler) revokeSession(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	id := r.PostForm.Get("id")
	if id == "" {
		h.showSessions(w, r, pr, http.StatusBadRequest, &page{Alert: "Choose a session to sign out."})
		return
	}
	if err := h.accounts.RevokeSession(r.Context(), pr, id, h.client(r)); err != nil {
		if httpx.Status(err) >= 500 {
			h.internal(w, r, err)
			return
		}
		h.showSessions(w, r, pr, httpx.Status(err), &page{Alert: "That session could not be signed out: " + apperr.MessageOf(err) + " It may have ended already; the list below is up to date."})
		return
	}
	if id == pr.Session.ID {
		h.clearCookie(w, h.cookies.session)
		h.toLogin(w, r, "signed-out")
		return
	}
	see(w, r, "/account/sessions?n=revoked")
}

func (h *Handler) revokeOthers(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	n, err := h.accounts.RevokeOtherSessions(r.Context(), pr, h.client(r))
	if err != nil {
		if httpx.Status(err) >= 500 {
			h.internal(w, r, err)
			return
		}
		h.showSessions(w, r, pr, httpx.Status(err), &page{Alert: apperr.MessageOf(err)})
		return
	}
	see(w, r, "/account/sessions?n=revoked-others&c="+url.QueryEscape(strconv.Itoa(n)))
}

func (h *Handler) settingsPage(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	h.showSettings(w, r, pr, http.StatusOK, &page{Notice: noticeFrom(r)})
}

func (h *Handler) showSettings(w http.ResponseWriter, r *http.Request, pr account.Principal, status int, p *page) {
	p.Title, p.Account, p.Nav = "Settings", &pr.Account, "settings"
	if hold := pr.Account.SecurityHoldUntil; hold.After(h.clock.Now()) {
		p.Data = hold
	}
	if p.Values == nil {
		p.Values = map[string]string{}
	}
	if _, ok := p.Values["anti_phishing_code"]; !ok {
		p.Values["anti_phishing_code"] = pr.Account.AntiPhishingCode
	}
	h.render(w, r, status, "settings", p)
}

func (h *Handler) antiPhishing(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	code := strings.TrimSpace(r.PostForm.Get("anti_phishing_code"))
	if r.PostForm.Get("action") == "clear" {
		code = ""
	}
	if err := h.accounts.SetAntiPhishingCode(r.Context(), pr, code, h.client(r)); err != nil {
		p := &page{Values: map[string]string{"anti_phishing_code": code}}
		status := httpx.Status(err)
		if status >= 500 {
			h.internal(w, r, err)
			return
		}
		p.fieldErr("anti_phishing_code", apperr.MessageOf(err), "anti_phishing_code")
		h.showSettings(w, r, pr, status, p)
		return
	}
	if code == "" {
		see(w, r, "/account/settings?n=anti-phishing-cleared")
		return
	}
	see(w, r, "/account/settings?n=anti-phishing-set")
}

func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	current := r.PostForm.Get("current_password")
	next := r.PostForm.Get("new_password")
	p := &page{Values: map[string]string{"current_password": current, "new_password": next}}
	if !p.required(map[string]string{"current_password": "Enter your current password.", "new_password": "Choose a new password."}) {
		h.showSettings(w, r, pr, http.StatusBadRequest, p)
		return
	}
	err := h.accounts.ChangePassword(r.Context(), pr, current, next, h.client(r))
	if h.stepUpFirst(w, r, err, "/account/settings") {
		return
	}
	if err != nil {
		status := httpx.Status(err)
		if status >= 500 {
			h.internal(w, r, err)
			return
		}
		e, _ := apperr.As(err)
		switch {
		case e.Code == apperr.BadCredential || e.Field == "current" || e.Field == "current_password":
			p.fieldErr("current_password", "That is not your current password. Check it and try again.", "current_password")
		case e.Code == apperr.WeakPassword || e.Field == "password" || e.Field == "new_password" || e.Field == "next":
			p.fieldErr("new_password", e.Message, "new_password")
		default:
			p.Alert = e.Message
		}
		if e.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter.Seconds()+0.999)))
		}
		h.showSettings(w, r, pr, status, p)
		return
	}
	see(w, r, "/account/settings?n=password-changed")
}
