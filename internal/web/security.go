package web

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/httpx"
	"github.com/moat-dev/moat/internal/mfa"
	"github.com/moat-dev/moat/internal/mfa/backup"
	"github.com/moat-dev/moat/internal/mfa/sms"
	"github.com/moat-dev/moat/internal/mfa/webauthn"
)

// The Security pages (two-factor authentication) under /account/security:
// the overview of the methods and the 2FA settings, enrolling an
// authenticator app (QR code served as a PNG), security keys and passkeys
// (WebAuthn, the one part that needs JavaScript), a phone for SMS codes,
// and backup codes shown once. Every change that needs a fresh second
// factor sends the person to the step-up page first (stepup.go), which
// brings them back.

// Paths linked from e-mails and other pages.
const (
	// PathSecurity is the Security page.
	PathSecurity = "/account/security"
	// PathStepUp asks for a second factor and returns to ?next=.
	PathStepUp = "/account/step-up"
)

const (
	pathApp         = PathSecurity + "/app"
	pathKeyNew      = PathSecurity + "/keys/new"
	pathPhone       = PathSecurity + "/phone"
	pathBackupCodes = PathSecurity + "/backup-codes"
)

// flashBackupCodes is the flash kind of backup codes to show once.
const flashBackupCodes = "backup-codes"

// maxJSONBytes bounds the bodies the WebAuthn script posts (an attestation
// is a few kilobytes).
const maxJSONBytes = 64 << 10

// useMFA takes the 2FA dependencies from d. Call it after the asset tags
// exist: the WebAuthn script gets one too.
func (h *Handler) useMFA(d Deps) error {
	h.mfa = d.MFA
	if h.mfa == nil {
		return nil
	}
	box, err := newFlashBox(d.FlashKey)
	if err != nil {
		return err
	}
	h.flash = box
	sum := sha256.Sum256([]byte(webauthn.Script))
	h.assetTags["webauthn.js"] = hex.EncodeToString(sum[:6])
	return nil
}

// registerMFA mounts the 2FA pages when the service is there.
func (h *Handler) registerMFA(mux *http.ServeMux) {
	if h.mfa == nil {
		return
	}
	mux.HandleFunc("GET /static/webauthn.js", h.webauthnScript)

	mux.HandleFunc("GET "+PathSecurity, h.auth(h.securityPage))
	mux.HandleFunc("POST "+PathSecurity+"/settings", h.form(h.auth(h.securitySettings)))

	mux.HandleFunc("POST "+pathApp+"/begin", h.form(h.auth(h.appBegin)))
	mux.HandleFunc("GET "+pathApp, h.auth(h.appPage))
	mux.HandleFunc("GET "+pathApp+"/qr.png", h.auth(h.appQR))
	mux.HandleFunc("POST "+pathApp, h.form(h.auth(h.appConfirm)))
	mux.HandleFunc("POST "+pathApp+"/remove", h.form(h.auth(h.appRemove)))

	mux.HandleFunc("GET "+pathKeyNew, h.auth(h.keyNewPage))
	mux.HandleFunc("POST "+pathKeyNew, h.form(h.auth(h.keyNoScript)))
	mux.HandleFunc("POST "+PathSecurity+"/keys/begin", h.jsonAuth(h.keyBegin))
	mux.HandleFunc("POST "+PathSecurity+"/keys/finish", h.jsonAuth(h.keyFinish))
	mux.HandleFunc("POST "+PathSecurity+"/keys/rename", h.form(h.auth(h.keyRename)))
	mux.HandleFunc("POST "+PathSecurity+"/keys/remove", h.form(h.auth(h.keyRemove)))

	mux.HandleFunc("GET "+pathPhone, h.auth(h.phonePage))
	mux.HandleFunc("POST "+pathPhone, h.form(h.auth(h.phoneAdd)))
	mux.HandleFunc("POST "+pathPhone+"/confirm", h.form(h.auth(h.phoneConfirm)))
	mux.HandleFunc("POST "+pathPhone+"/resend", h.form(h.auth(h.phoneResend)))
	mux.HandleFunc("POST "+pathPhone+"/remove", h.form(h.auth(h.phoneRemove)))

	mux.HandleFunc("GET "+pathBackupCodes, h.auth(h.backupCodesPage))
	mux.HandleFunc("POST "+pathBackupCodes, h.form(h.auth(h.backupRegenerate)))
	mux.HandleFunc("POST "+pathBackupCodes+"/download", h.form(h.auth(h.backupDownload)))

	h.registerStepUp(mux)
	h.registerSignInFactors(mux)
}

// webauthnScript serves the WebAuthn ceremony script (internal/mfa's).
func (h *Handler) webauthnScript(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Type", "text/javascript; charset=utf-8")
	hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	io.WriteString(w, webauthn.Script)
}

// mustEnrolFirst sends a signed-in person whom the platform requires to
// enrol a second factor (mandatory 2FA, or staff without a security key)
// to the Security page before any other account page. It reports whether
// it answered the request.
func (h *Handler) mustEnrolFirst(w http.ResponseWriter, r *http.Request, p account.Principal) bool {
	if h.mfa == nil || strings.HasPrefix(r.URL.Path, PathSecurity) || strings.HasPrefix(r.URL.Path, PathStepUp) {
		return false
	}
	must, _, err := h.accounts.NeedsEnrolment(r.Context(), p.Account)
	if err != nil || !must {
		// An error here must not lock the owner out of their pages; the
		// sign-in already asked the same question.
		return false
	}
	see(w, r, PathSecurity+"?n=must-enrol")
	return true
}

// Security overview.

// securityData is the Security page's content.
type securityData struct {
	Methods mfa.Methods
	// HasFactor: at least one method (key, app or phone) is set up.
	HasFactor bool
	// Fresh: changes need no step-up now (a recent second factor, or no
	// factor yet); FreshUntil is when that ends.
	Fresh      bool
	FreshUntil time.Time
	// MustEnrol: the platform requires a method (EnrolKey: a security
	// key) before anything else.
	MustEnrol bool
	EnrolKey  bool
	Hold      time.Time
	SMSNotice string
}

var securityNotices = map[string]string{
	"must-enrol":    "This platform requires two-factor authentication. Set up a method below before you continue; a security key or an authenticator app protects you best.",
	"stepped-up":    "Thanks, that's confirmed. You can make security changes for the next few minutes.",
	"app-added":     "Your authenticator app is set up. From now on we ask for its code when you sign in.",
	"app-removed":   "The authenticator app is removed from your account.",
	"key-added":     "Your security key is registered.",
	"key-renamed":   "The key is renamed.",
	"key-removed":   "The security key is removed from your account.",
	"phone-added":   "Your phone is set up for text-message codes.",
	"phone-removed": "The phone is removed from your account.",
	"settings":      "Your two-factor settings are saved.",
	"codes-saved":   "Keep your backup codes somewhere safe, away from your phone and security key.",
}

func (h *Handler) securityPage(w http.ResponseWriter, r *http.Request, p account.Principal) {
	h.showSecurity(w, r, p, http.StatusOK, &page{Notice: h.securityNotice(r, p)})
}

// securityNotice is the notice a redirect asked for (?n=), with the one
// that needs data: after a backup-code sign-in, how many codes are left.
func (h *Handler) securityNotice(r *http.Request, p account.Principal) string {
	n := r.URL.Query().Get("n")
	if n == "backup-code-used" {
		left, err := h.mfa.BackupCodesRemaining(r.Context(), p.Account.ID)
		if err != nil {
			return ""
		}
		msg := "You signed in with a backup code, which now no longer works. You have " + plural(left, "backup code") + " left."
		if left <= 3 {
			msg += " Make new ones below soon."
		}
		return msg + " If you lost your phone or security key, remove it and set up a new method below."
	}
	if msg, ok := securityNotices[n]; ok {
		return msg
	}
	return noticeFrom(r)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

func (h *Handler) showSecurity(w http.ResponseWriter, r *http.Request, pr account.Principal, status int, p *page) {
	ctx := r.Context()
	m, err := h.mfa.Methods(ctx, pr.Account.ID)
	if err != nil {
		h.fail(w, r, "Security", err)
		return
	}
	d := securityData{Methods: m, SMSNotice: mfa.SMSNotice}
	d.HasFactor = len(m.SecurityKeys) > 0 || m.TOTP != nil || m.Phone != nil
	switch err := h.mfa.CheckStepUp(ctx, pr); {
	case err == nil:
		d.Fresh = true
		if d.HasFactor && !pr.Session.SecondFactorAt.IsZero() {
			d.FreshUntil = pr.Session.SecondFactorAt.Add(h.mfa.StepUpWithin())
		}
	case apperr.CodeOf(err) != apperr.StepUpNeeded:
		h.fail(w, r, "Security", err)
		return
	}
	must, method, err := h.accounts.NeedsEnrolment(ctx, pr.Account)
	if err != nil {
		h.fail(w, r, "Security", err)
		return
	}
	d.MustEnrol, d.EnrolKey = must, method == mfa.MethodWebAuthn
	if hold := pr.Account.SecurityHoldUntil; hold.After(h.clock.Now()) {
		d.Hold = hold
	}
	p.Title, p.Account, p.Nav, p.Data = "Security", &pr.Account, "security", d
	h.render(w, r, status, "security", p)
}

// stepUpFirst sends the browser to the step-up page when err asks for a
// fresh second factor, to come back to next. It reports whether it did.
func (h *Handler) stepUpFirst(w http.ResponseWriter, r *http.Request, err error, next string) bool {
	if apperr.CodeOf(err) != apperr.StepUpNeeded {
		return false
	}
	see(w, r, PathStepUp+"?next="+url.QueryEscape(next))
	return true
}

// securityChanged finishes a change made from the Security page: back to
// it with notice, or to the step-up page, or the error shown on the page.
func (h *Handler) securityChanged(w http.ResponseWriter, r *http.Request, pr account.Principal, err error, notice string) {
	switch {
	case err == nil:
		see(w, r, PathSecurity+"?n="+notice)
	case h.stepUpFirst(w, r, err, PathSecurity):
	case httpx.Status(err) >= 500:
		h.internal(w, r, err)
	default:
		h.showSecurity(w, r, pr, httpx.Status(err), &page{Alert: apperr.MessageOf(err)})
	}
}

func (h *Handler) securitySettings(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	on := func(name string) bool { v := r.PostForm.Get(name); return v == "on" || v == "true" || v == "1" }
	_, err := h.mfa.UpdateSettings(r.Context(), pr, mfa.Settings{
		SignIn: on("signin"), Funding: on("funding"), Trading: on("trading"),
	}, h.client(r))
	h.securityChanged(w, r, pr, err, "settings")
}

// Authenticator app (TOTP).

// appData is the app enrolment page's content.
type appData struct {
	ManualKey string
	Issuer    string
	Email     string
}

func (h *Handler) appBegin(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	_, err := h.mfa.BeginTOTP(r.Context(), pr)
	switch {
	case err == nil:
		see(w, r, pathApp)
	default:
		h.securityChanged(w, r, pr, err, "")
	}
}

func (h *Handler) appPage(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	h.showApp(w, r, pr, http.StatusOK, &page{})
}

func (h *Handler) showApp(w http.ResponseWriter, r *http.Request, pr account.Principal, status int, p *page) {
	en, err := h.mfa.PendingTOTP(r.Context(), pr)
	if err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			// Nothing in progress: start from the Security page.
			see(w, r, PathSecurity)
			return
		}
		h.fail(w, r, "Set up an authenticator app", err)
		return
	}
	p.Title, p.Account, p.Nav = "Set up an authenticator app", &pr.Account, "security"
	p.Data = appData{ManualKey: en.ManualKey, Issuer: h.brand, Email: pr.Account.Email}
	h.render(w, r, status, "security_app", p)
}

// appQR serves the pending enrolment's QR code. It carries the seed, so it
// must not be cached anywhere.
func (h *Handler) appQR(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	en, err := h.mfa.PendingTOTP(r.Context(), pr)
	if err != nil {
		if httpx.Status(err) >= 500 {
			h.internal(w, r, err)
			return
		}
		http.Error(w, apperr.MessageOf(err), httpx.Status(err))
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "image/png")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Length", strconv.Itoa(len(en.QRCodePNG)))
	w.Write(en.QRCodePNG)
}

func (h *Handler) appConfirm(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	code := strings.TrimSpace(r.PostForm.Get("code"))
	p := &page{Values: map[string]string{"code": code}}
	if !p.required(map[string]string{"code": "Enter the 6-digit code your app shows."}) {
		h.showApp(w, r, pr, http.StatusBadRequest, p)
		return
	}
	codes, err := h.mfa.ConfirmTOTP(r.Context(), pr, code, h.client(r))
	if err != nil {
		if h.stepUpFirst(w, r, err, pathApp) {
			return
		}
		if httpx.Status(err) >= 500 {
			h.internal(w, r, err)
			return
		}
		e, _ := apperr.As(err)
		if e.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter.Seconds()+0.999)))
		}
		p.Values["code"] = ""
		p.fieldErr(e.Field, e.Message, "code")
		h.showApp(w, r, pr, httpx.Status(err), p)
		return
	}
	h.afterEnrol(w, r, pr, codes, "app-added")
}

// afterEnrol shows new backup codes (the first factor's) once, or goes back
// to the Security page with notice.
func (h *Handler) afterEnrol(w http.ResponseWriter, r *http.Request, pr account.Principal, codes []string, notice string) {
	see(w, r, h.enrolledNext(w, r, pr, codes, notice))
}

// enrolledNext stores codes for the backup-codes page and returns where to
// go next.
func (h *Handler) enrolledNext(w http.ResponseWriter, r *http.Request, pr account.Principal, codes []string, notice string) string {
	if len(codes) == 0 {
		return PathSecurity + "?n=" + notice
	}
	if err := h.setFlash(w, pr.Session.ID, flashValue{Kind: flashBackupCodes, Codes: codes}); err != nil {
		h.log.ErrorContext(r.Context(), "web: sealing backup codes for display", "err", err)
		return PathSecurity + "?n=" + notice
	}
	return pathBackupCodes + "?new=1"
}

func (h *Handler) appRemove(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	h.securityChanged(w, r, pr, h.mfa.RemoveTOTP(r.Context(), pr, h.client(r)), "app-removed")
}

// Security keys and passkeys.

// keyNewData is the key registration page's content.
type keyNewData struct {
	Methods mfa.Methods
	Passkey bool
}

func (h *Handler) keyNewPage(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	if err := h.mfa.CheckStepUp(r.Context(), pr); err != nil {
		if !h.stepUpFirst(w, r, err, r.URL.RequestURI()) {
			h.fail(w, r, "Add a security key", err)
		}
		return
	}
	m, err := h.mfa.Methods(r.Context(), pr.Account.ID)
	if err != nil {
		h.fail(w, r, "Add a security key", err)
		return
	}
	d := keyNewData{Methods: m, Passkey: r.URL.Query().Get("passkey") == "1"}
	h.render(w, r, http.StatusOK, "security_key", &page{Title: "Add a security key or passkey", Account: &pr.Account, Nav: "security", Data: d})
}

// keyNoScript answers the key form submitted without JavaScript.
func (h *Handler) keyNoScript(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	h.render(w, r, http.StatusBadRequest, "message", &page{Title: "JavaScript needed", Account: &pr.Account, Nav: "security", Data: messageData{
		Heading: "Security keys need JavaScript", Problem: true,
		Text:    "Your browser talks to a security key or passkey through JavaScript, which is off or did not load. Turn it on for this site and try again, or set up an authenticator app instead.",
		NextURL: PathSecurity, NextText: "Back to Security",
	}})
}

func (h *Handler) keyBegin(w http.ResponseWriter, r *http.Request, pr account.Principal, body []byte) {
	var in struct {
		Name    string `json:"name"`
		Passkey bool   `json:"passkey"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		httpx.WriteError(w, r, apperr.New(apperr.Invalid, "The form could not be read. Reload the page and try again."))
		return
	}
	ch, err := h.mfa.BeginSecurityKey(r.Context(), pr, in.Name, in.Passkey)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, ch)
}

func (h *Handler) keyFinish(w http.ResponseWriter, r *http.Request, pr account.Principal, body []byte) {
	kr, err := mfa.ParseKeyResponse(string(body))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	_, codes, err := h.mfa.FinishSecurityKey(r.Context(), pr, kr.Ceremony, kr.Credential, h.client(r))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"redirect": h.enrolledNext(w, r, pr, codes, "key-added")})
}

func (h *Handler) keyRename(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	err := h.mfa.RenameSecurityKey(r.Context(), pr, r.PostForm.Get("id"), r.PostForm.Get("name"), h.client(r))
	h.securityChanged(w, r, pr, err, "key-renamed")
}

func (h *Handler) keyRemove(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	err := h.mfa.RemoveSecurityKey(r.Context(), pr, r.PostForm.Get("id"), h.client(r))
	h.securityChanged(w, r, pr, err, "key-removed")
}

// jsonFunc handles a JSON request of a signed-in browser (the WebAuthn
// script's calls); body is the request body.
type jsonFunc func(w http.ResponseWriter, r *http.Request, p account.Principal, body []byte)

// jsonAuth admits the WebAuthn script's calls: JSON bodies from a signed-in
// browser. Failures are JSON, which the script shows next to its form.
func (h *Handler) jsonAuth(next jsonFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := readJSON(w, r)
		if err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		tok := cookieValue(r, h.cookies.session)
		if tok == "" {
			httpx.WriteError(w, r, apperr.New(apperr.Unauthorized, "You are signed out. Reload the page and sign in again."))
			return
		}
		p, err := h.accounts.Authenticate(r.Context(), tok, h.client(r))
		if err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		next(w, r, p, body)
	}
}

// readJSON reads a JSON request body of the WebAuthn script. Requiring
// the JSON content type keeps plain HTML forms (of any site) out.
func readJSON(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, apperr.New(apperr.Invalid, "Send the request with the header Content-Type: application/json.")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, apperr.New(apperr.TooLarge, "The request was too large.")
		}
		return nil, apperr.New(apperr.Invalid, "The request could not be read. Try again.")
	}
	return body, nil
}

// Phone (SMS codes).

// phoneData is the phone page's content.
type phoneData struct {
	Available bool
	Notice    string
	// SentTo is set once a code went to the number being added (the
	// confirm step).
	SentTo string
	Hint   string
}

func (h *Handler) phonePage(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	if err := h.mfa.CheckStepUp(r.Context(), pr); err != nil {
		if !h.stepUpFirst(w, r, err, pathPhone) {
			h.fail(w, r, "Add a phone", err)
		}
		return
	}
	h.showPhone(w, r, pr, http.StatusOK, &page{}, "")
}

func (h *Handler) showPhone(w http.ResponseWriter, r *http.Request, pr account.Principal, status int, p *page, sentTo string) {
	m, err := h.mfa.Methods(r.Context(), pr.Account.ID)
	if err != nil {
		h.fail(w, r, "Add a phone", err)
		return
	}
	p.Title, p.Account, p.Nav = "Add a phone for text-message codes", &pr.Account, "security"
	p.Data = phoneData{Available: m.SMSAvailable, Notice: mfa.SMSNotice, SentTo: sentTo, Hint: sms.PhoneHint}
	h.render(w, r, status, "security_phone", p)
}

func (h *Handler) phoneAdd(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	number := strings.TrimSpace(r.PostForm.Get("phone"))
	p := &page{Values: map[string]string{"phone": number}}
	if !p.required(map[string]string{"phone": "Enter your mobile number."}) {
		h.showPhone(w, r, pr, http.StatusBadRequest, p, "")
		return
	}
	masked, err := h.mfa.AddPhone(r.Context(), pr, number)
	if err != nil {
		h.phoneError(w, r, pr, p, err, "", "phone")
		return
	}
	h.showPhone(w, r, pr, http.StatusOK, &page{Notice: "We sent a 6-digit code to " + masked + ". Type it below to finish."}, masked)
}

func (h *Handler) phoneResend(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	masked, err := h.mfa.ResendPhoneCode(r.Context(), pr)
	if err != nil {
		h.phoneError(w, r, pr, &page{}, err, r.PostForm.Get("sent_to"), "code")
		return
	}
	h.showPhone(w, r, pr, http.StatusOK, &page{Notice: "We sent a new code to " + masked + ". The previous code no longer works."}, masked)
}

func (h *Handler) phoneConfirm(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	code := strings.TrimSpace(r.PostForm.Get("code"))
	sentTo := r.PostForm.Get("sent_to")
	p := &page{Values: map[string]string{}}
	if code == "" {
		p.fieldErr("code", "Enter the 6-digit code from the text message.", "code")
		h.showPhone(w, r, pr, http.StatusBadRequest, p, maskedOrSome(sentTo))
		return
	}
	codes, err := h.mfa.ConfirmPhone(r.Context(), pr, code, h.client(r))
	if err != nil {
		h.phoneError(w, r, pr, p, err, sentTo, "code")
		return
	}
	h.afterEnrol(w, r, pr, codes, "phone-added")
}

// phoneError shows err on the phone page: at the number (adding) or at the
// code (confirming, with the masked number the form carried).
func (h *Handler) phoneError(w http.ResponseWriter, r *http.Request, pr account.Principal, p *page, err error, sentTo, field string) {
	if h.stepUpFirst(w, r, err, pathPhone) {
		return
	}
	if httpx.Status(err) >= 500 {
		h.internal(w, r, err)
		return
	}
	e, _ := apperr.As(err)
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter.Seconds()+0.999)))
	}
	f := e.Field
	if f == "" {
		f = field
	}
	p.fieldErr(f, e.Message, field)
	if field == "code" && apperr.CodeOf(err) != apperr.NotFound {
		h.showPhone(w, r, pr, httpx.Status(err), p, maskedOrSome(sentTo))
		return
	}
	h.showPhone(w, r, pr, httpx.Status(err), p, "")
}

// maskedOrSome keeps a masked number the form carried back if it looks
// like one (it is only ever shown to the person who posted it).
func maskedOrSome(s string) string {
	if s == "" || len(s) > 32 || strings.ContainsFunc(s, func(r rune) bool {
		return !(r == '+' || r == ' ' || r == '•' || r == '*' || (r >= '0' && r <= '9'))
	}) {
		return "your phone"
	}
	return s
}

func (h *Handler) phoneRemove(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	h.securityChanged(w, r, pr, h.mfa.RemovePhone(r.Context(), pr, h.client(r)), "phone-removed")
}

// Backup codes.

// backupData is the backup codes page's content.
type backupData struct {
	// Codes are the new codes, shown this once; nil when the page is
	// opened again.
	Codes     []string
	Remaining int
	HasFactor bool
}

func (h *Handler) backupCodesPage(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	d := backupData{}
	if v, ok := h.takeFlash(w, r, pr.Session.ID, flashBackupCodes); ok {
		d.Codes = v.Codes
	} else {
		m, err := h.mfa.Methods(r.Context(), pr.Account.ID)
		if err != nil {
			h.fail(w, r, "Backup codes", err)
			return
		}
		d.Remaining = m.BackupCodesRemaining
		d.HasFactor = len(m.SecurityKeys) > 0 || m.TOTP != nil || m.Phone != nil
	}
	h.render(w, r, http.StatusOK, "backup_codes", &page{Title: "Backup codes", Account: &pr.Account, Nav: "security", Data: d})
}

func (h *Handler) backupRegenerate(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	codes, err := h.mfa.RegenerateBackupCodes(r.Context(), pr, h.client(r))
	if err != nil {
		h.securityChanged(w, r, pr, err, "")
		return
	}
	h.afterEnrol(w, r, pr, codes, "codes-saved")
}

// backupDownload returns the codes the page showed as a text file. The
// codes come from the page's own form (nothing on the server can show them
// again); only well-formed codes are written.
func (h *Handler) backupDownload(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	var b strings.Builder
	b.WriteString(h.brand + " backup codes for " + pr.Account.Email + "\n")
	b.WriteString("Made " + h.clock.Now().UTC().Format("2 Jan 2006 15:04 UTC") + ". Each code works once.\n")
	b.WriteString("Keep them somewhere safe, away from your phone and security key.\n\n")
	n := 0
	for _, c := range r.PostForm["code"] {
		norm, err := backup.Normalize(c)
		if err != nil || n >= backup.Count*2 {
			continue
		}
		b.WriteString(backup.Format(norm) + "\n")
		n++
	}
	if n == 0 {
		h.render(w, r, http.StatusBadRequest, "message", &page{Title: "Backup codes", Account: &pr.Account, Nav: "security", Data: messageData{
			Heading: "Nothing to download", Problem: true,
			Text:    "Backup codes can be downloaded only from the page that shows them, right after they are made. Make new ones if you did not save them.",
			NextURL: PathSecurity, NextText: "Back to Security",
		}})
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	hd.Set("Content-Disposition", `attachment; filename="`+strings.ToLower(safeFileName(h.brand))+`-backup-codes.txt"`)
	hd.Set("Cache-Control", "no-store")
	io.WriteString(w, b.String())
}

// safeFileName keeps letters and digits of s for a download's name.
func safeFileName(s string) string {
	out := strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return -1
	}, s)
	if out == "" {
		return "moat"
	}
	return out
}
