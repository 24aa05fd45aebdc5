package web

import (
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/httpx"
	"github.com/moat-dev/moat/internal/recovery"
	"github.com/moat-dev/moat/internal/store"
)

// The recovery-case pages for someone who lost their second factor and has
// no backup code (internal/recovery holds the rules):
//
//	GET  /recovery/new      the form: account-history answers and an identity
//	                        document. The person proves the first factor with
//	                        the pending sign-in cookie (they passed the
//	                        password and stand at the second-factor prompt)
//	                        or with a password-reset link's token (?token=,
//	                        carried on in a hidden field) when they lost both.
//	POST /recovery/new      multipart; streamed, the document read into
//	                        memory up to recovery.MaxDocumentBytes+1 (no
//	                        temporary files). Success redirects to the status
//	                        page, whose link the person should bookmark.
//	GET  /recovery/status   ?token= : where the case stands, in words.
//	GET  /recovery/cancel   ?token= (the e-mailed link): a confirmation page.
//	POST /recovery/cancel   cancels.
//
// The server must let POST /recovery/new through with a body of up to
// MaxRecoveryFormBytes (httpx.Options.BodyLimits); the handler also caps
// it itself.

const (
	pathRecoveryNew    = "/recovery/new"
	pathRecoveryStatus = recovery.PathStatus
	pathRecoveryCancel = recovery.PathCancel
)

// MaxRecoveryFormBytes bounds the body of POST /recovery/new: the largest
// document plus the answers and the multipart framing.
const MaxRecoveryFormBytes = recovery.MaxDocumentBytes + 1<<20

// PathRecoveryNew is the path of the recovery form, for
// httpx.Options.BodyLimits.
const PathRecoveryNew = pathRecoveryNew

const (
	// maxRecoveryField bounds each typed answer; the note is the longest.
	maxRecoveryField = 4 << 10
	// maxRecoveryParts bounds the parts of the form (it has ten).
	maxRecoveryParts = 32
)

// recoveryFields are the form's text inputs: the answers (named as their
// JSON names in recovery.Answers, which is also how the service's errors
// name them) and the reset token.
var recoveryFields = []string{
	"account_created", "devices", "last_deposit_amount", "last_deposit_asset",
	"withdrawal_address", "api_key_name", "note", "token",
}

// recoveryErrFields are the fields an error may be shown next to.
var recoveryErrFields = []string{
	"account_created", "devices", "last_deposit_amount", "last_deposit_asset",
	"withdrawal_address", "api_key_name", "note", "document",
}

func (h *Handler) registerRecovery(mux *http.ServeMux) {
	mux.HandleFunc("GET "+pathRecoveryNew, h.recoveryNewPage)
	mux.HandleFunc("POST "+pathRecoveryNew, h.recoveryNew)
	mux.HandleFunc("GET "+pathRecoveryStatus, h.recoveryStatusPage)
	mux.HandleFunc("GET "+pathRecoveryCancel, h.recoveryCancelPage)
	mux.HandleFunc("POST "+pathRecoveryCancel, h.form(h.recoveryCancel))
}

// recoveryFormData is the content of the form page.
type recoveryFormData struct {
	// ResetToken is the password-reset link's token when the person came
	// from the reset page (hidden field); empty when they came from the
	// second-factor prompt.
	ResetToken string
	// Again: the form is shown after an error, so the file must be chosen
	// again.
	Again     bool
	MaxSize   string
	Accept    string
	NoteLimit int
}

const documentAccept = "image/jpeg,image/png,application/pdf"

// recoveryStartData is the page for someone who has not proved the first
// factor (or whose proof no longer works): how to get to the form.
type recoveryStartData struct {
	Heading, Text string
	Problem       bool
	ViaReset      bool
	ForgotURL     string
}

func (h *Handler) recoveryNewPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if !h.recoveryProofOK(w, r, token) {
		return
	}
	h.render(w, r, http.StatusOK, "recovery_new", &page{Title: "Recover your account", Data: h.recoveryFormData(token, false)})
}

func (h *Handler) recoveryFormData(token string, again bool) recoveryFormData {
	return recoveryFormData{ResetToken: token, Again: again, MaxSize: "10 MB", Accept: documentAccept, NoteLimit: 2000}
}

// recoveryProofOK checks the person's proof of the first factor before the
// form is shown, and shows the start page when there is none or it no
// longer works.
func (h *Handler) recoveryProofOK(w http.ResponseWriter, r *http.Request, resetToken string) bool {
	err := h.checkRecoveryProof(r, resetToken)
	if err == errNoProof {
		h.recoveryStart(w, r, http.StatusOK, false, nil)
		return false
	}
	if err != nil {
		h.recoveryStart(w, r, httpx.Status(err), resetToken != "", err)
		return false
	}
	return true
}

// recoveryStart shows how to reach the form: with err, why the proof the
// person brought does not work.
func (h *Handler) recoveryStart(w http.ResponseWriter, r *http.Request, status int, viaReset bool, err error) {
	if status >= 500 {
		h.internal(w, r, err)
		return
	}
	d := recoveryStartData{Heading: "Lost your second factor?", ViaReset: viaReset, ForgotURL: account.PathForgotPassword}
	switch {
	case err != nil && viaReset:
		d.Heading, d.Problem = "This password-reset link no longer works", true
		d.Text = "Links work for 30 minutes and only until they are used or a newer one is sent. Ask for a new link below, then open the recovery form from the reset page."
	case err != nil && isTokenError(err):
		d.Heading, d.Problem = "Your sign-in has expired", true
		d.Text = "The recovery form needs a sign-in that has just passed the password step. Sign in again with your e-mail address and password, then choose \"open a recovery case\" on the second step."
	case err != nil:
		d.Heading, d.Problem, d.Text = "We cannot open the recovery form now", true, apperr.MessageOf(err)
		if e, ok := apperr.As(err); ok && e.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter.Seconds()+0.999)))
		}
	}
	h.render(w, r, status, "recovery_start", &page{Title: d.Heading, Data: d})
}

// recoveryInput is what the multipart form carried.
type recoveryInput struct {
	values   map[string]string
	document []byte
	// hasFile: a document part with a file name or content was sent.
	hasFile bool
	// docTooBig: the document was over recovery.MaxDocumentBytes.
	docTooBig bool
	// fieldTooLong names a text field over maxRecoveryField.
	fieldTooLong string
	// admit decides whether to keep the document; asked is set once it was
	// asked, refused when it said no.
	admit          func(map[string]string) bool
	asked, refused bool
}

// errNotMultipart is the form error for a body that is not the form.
var errNotMultipart = apperr.New(apperr.Invalid, "We could not read that form. Reload the page and try again.")

// readRecoveryForm streams the multipart body: each text field up to
// maxRecoveryField bytes, the document up to MaxDocumentBytes+1 (the rest
// of a longer one is read and dropped, within the body limit, so that the
// browser receives the answer). When the document part starts, admit is
// asked with the fields read so far (the form puts the reset token first)
// whether to keep it; if not, it is read and dropped, so that nobody
// without a proof makes the server hold 10 MB. It returns what it read so
// far with any error: *http.MaxBytesError for a body over the limit,
// errNotMultipart for a malformed one.
func readRecoveryForm(r *http.Request, admit func(values map[string]string) bool) (recoveryInput, error) {
	in := recoveryInput{values: map[string]string{}, admit: admit}
	mr, err := r.MultipartReader()
	if err != nil {
		return in, errNotMultipart
	}
	for n := 0; ; n++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return in, nil
		}
		if err != nil {
			return in, formReadError(err)
		}
		if n >= maxRecoveryParts {
			return in, errNotMultipart
		}
		if err := in.readPart(part); err != nil {
			return in, formReadError(err)
		}
	}
}

func (in *recoveryInput) readPart(part *multipart.Part) error {
	defer part.Close()
	name := part.FormName()
	switch {
	case name == "document":
		if in.asked {
			return errNotMultipart // one document only
		}
		in.asked = true
		if !in.admit(in.values) {
			in.refused = true
			_, err := io.Copy(io.Discard, part)
			return err
		}
		data, err := io.ReadAll(io.LimitReader(part, recovery.MaxDocumentBytes+1))
		if err != nil {
			return err
		}
		in.hasFile = part.FileName() != "" || len(data) > 0
		if len(data) > recovery.MaxDocumentBytes {
			in.docTooBig = true
			_, err := io.Copy(io.Discard, part)
			return err
		}
		in.document = data
		return nil
	case isRecoveryField(name):
		b, err := io.ReadAll(io.LimitReader(part, maxRecoveryField+1))
		if err != nil {
			return err
		}
		if len(b) > maxRecoveryField {
			in.fieldTooLong = name
			b = b[:maxRecoveryField]
			if _, err := io.Copy(io.Discard, part); err != nil {
				return err
			}
		}
		in.values[name] = strings.ToValidUTF8(string(b), "")
		return nil
	}
	// Unknown parts are read and dropped (the body limit bounds them).
	_, err := io.Copy(io.Discard, part)
	return err
}

func isRecoveryField(name string) bool {
	for _, f := range recoveryFields {
		if f == name {
			return true
		}
	}
	return false
}

// formReadError keeps a body-limit error as it is and turns any other
// read failure into errNotMultipart.
func formReadError(err error) error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return err
	}
	return errNotMultipart
}

func (in recoveryInput) answers() recovery.Answers {
	v := func(k string) string { return strings.TrimSpace(in.values[k]) }
	return recovery.Answers{
		AccountCreated:    v("account_created"),
		Devices:           v("devices"),
		LastDepositAmount: v("last_deposit_amount"),
		LastDepositAsset:  v("last_deposit_asset"),
		WithdrawalAddress: v("withdrawal_address"),
		APIKeyName:        v("api_key_name"),
		Note:              v("note"),
	}
}

func (h *Handler) recoveryNew(w http.ResponseWriter, r *http.Request) {
	// The server's limit for this path should be the same; this holds even
	// when it is configured larger.
	r.Body = http.MaxBytesReader(w, r.Body, MaxRecoveryFormBytes)
	var proofErr error
	in, err := readRecoveryForm(r, func(v map[string]string) bool {
		proofErr = h.checkRecoveryProof(r, strings.TrimSpace(v["token"]))
		return proofErr == nil
	})
	token := strings.TrimSpace(in.values["token"])
	delete(in.values, "token")
	if err == nil && !in.asked {
		proofErr = h.checkRecoveryProof(r, token) // no document part
	}
	p := &page{Title: "Recover your account", Values: in.values, Data: h.recoveryFormData(token, true)}
	var mb *http.MaxBytesError
	switch {
	case proofErr != nil:
		h.recoveryStart(w, r, httpx.Status(proofErr), token != "", proofErr)
		return
	case errors.As(err, &mb):
		h.formError(w, r, "recovery_new", p, apperr.Field(apperr.TooLarge, "document",
			"The file is larger than 10 MB. Choose a smaller photo or scan (JPEG, PNG or PDF) and send the form again."), recoveryErrFields...)
		return
	case err != nil:
		h.formError(w, r, "recovery_new", p, err, recoveryErrFields...)
		return
	}
	proof := h.recoveryProof(r, token)
	// Problems the form can tell at once, before the service is asked.
	switch {
	case in.fieldTooLong != "":
		h.formError(w, r, "recovery_new", p, apperr.Field(apperr.Invalid, in.fieldTooLong,
			"This answer is too long. Shorten it and send the form again."), recoveryErrFields...)
		return
	case in.docTooBig:
		h.formError(w, r, "recovery_new", p, apperr.Field(apperr.TooLarge, "document",
			"The file is larger than 10 MB. Choose a smaller photo or scan (JPEG, PNG or PDF) and send the form again."), recoveryErrFields...)
		return
	case !in.hasFile:
		h.formError(w, r, "recovery_new", p, apperr.Field(apperr.Invalid, "document",
			"Choose a photo or scan of your identity document (JPEG, PNG or PDF)."), recoveryErrFields...)
		return
	}
	opened, err := h.recovery.Open(r.Context(), proof, in.answers(), in.document, h.client(r))
	switch {
	case err == nil:
		see(w, r, statusLink(opened.StatusToken)+"&n=opened")
	case isTokenError(err):
		h.recoveryStart(w, r, httpx.Status(err), proof.ResetToken != "", err)
	default:
		h.formError(w, r, "recovery_new", p, err, recoveryErrFields...)
	}
}

// recoveryProof is the proof a form submission brings: the reset token
// it carries, else the pending sign-in cookie.
func (h *Handler) recoveryProof(r *http.Request, resetToken string) recovery.Proof {
	if resetToken != "" {
		return recovery.Proof{ResetToken: resetToken}
	}
	return recovery.Proof{PendingToken: cookieValue(r, h.cookies.pending)}
}

// errNoProof: neither a pending sign-in nor a reset link.
var errNoProof = apperr.New(apperr.TokenInvalid, "Start from the sign-in page or a password-reset link.")

// checkRecoveryProof checks the proof before the document is read (the
// service checks it again when it opens the case).
func (h *Handler) checkRecoveryProof(r *http.Request, resetToken string) error {
	var err error
	switch proof := h.recoveryProof(r, resetToken); {
	case proof.ResetToken != "":
		_, err = h.accounts.ResetLinkAccount(r.Context(), proof.ResetToken)
	case proof.PendingToken != "":
		_, err = h.accounts.PendingSecondFactorAccount(r.Context(), proof.PendingToken)
	default:
		err = errNoProof
	}
	return err
}

// isTokenError reports whether err is about a link or sign-in token
// (unknown, expired or used) rather than the input.
func isTokenError(err error) bool {
	switch apperr.CodeOf(err) {
	case apperr.TokenInvalid, apperr.TokenExpired, apperr.TokenUsed:
		return true
	}
	return false
}

// statusLink is the path of a case's status page.
func statusLink(token string) string {
	return pathRecoveryStatus + "?" + url.Values{"token": {token}}.Encode()
}

// origin is the public origin, for showing a full link to copy; without
// one configured, the scheme and host this request reached.
func (h *Handler) origin(r *http.Request) string {
	if h.publicOrigin != "" {
		return h.publicOrigin
	}
	scheme := "http"
	if h.secure || r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// recoveryStatusData is the content of the status page.
type recoveryStatusData struct {
	Case recovery.CaseView
	// Opened: the person has just opened the case.
	Opened bool
	// Path is the status page's path with its token; Link the same as a
	// full URL to bookmark or copy.
	Path, Link string
	// State and Explain put the state in words; NextStep is what to do.
	State, Explain, NextStep string
	Tone                     string // "ok", "warn" or "bad"
}

func (h *Handler) recoveryStatusPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if token == "" {
		h.recoveryLinkProblem(w, r, "This status link is incomplete",
			"Open the link exactly as it was shown when you sent the recovery request. If you no longer have it, contact support and quote the reference number from our e-mail.")
		return
	}
	c, err := h.recovery.Status(r.Context(), token)
	if err != nil {
		if httpx.Status(err) >= 500 {
			h.internal(w, r, err)
			return
		}
		h.recoveryLinkProblem(w, r, "We do not know this status link",
			"Check that you opened or copied the whole link. If you no longer have it, contact support and quote the reference number from our e-mail.")
		return
	}
	d := recoveryStatusData{Case: c, Opened: r.URL.Query().Get("n") == "opened", Path: statusLink(token)}
	d.Link = h.origin(r) + d.Path
	d.State, d.Explain, d.Tone = stateWords(c)
	d.NextStep = c.NextStep
	p := &page{Title: "Recovery request " + c.Reference, Data: d}
	if d.Opened {
		p.Notice = "Your recovery request is sent. Its reference is " + c.Reference + "."
	}
	h.render(w, r, http.StatusOK, "recovery_status", p)
}

// stateWords says where a case stands.
func stateWords(c recovery.CaseView) (state, explain, tone string) {
	switch c.State {
	case store.RecoveryOpen:
		explain = "Support staff have not finished checking your request. Two different staff members must approve it."
		if c.Approvals == 1 {
			explain = "One staff member has approved your request; a second, different staff member must approve it too."
		}
		return "Waiting for review", explain, "warn"
	case store.RecoveryWaiting:
		return "Approved: waiting period running",
			"Two staff members approved your request. For your protection, nothing changes until the waiting period ends on " +
				c.WaitUntil.UTC().Format("2 Jan 2006, 15:04 UTC") + ". The account's e-mail address is told every day and can cancel the request until then.", "warn"
	case store.RecoveryCompleted:
		return "Completed", "The waiting period ended and the account's two-factor methods were removed. Sign in with your password and set up a new second factor; withdrawals stay paused for 7 days.", "ok"
	case store.RecoveryRejected:
		return "Not approved", "Support staff could not approve this request. Nothing about the account changed.", "bad"
	case store.RecoveryCancelled:
		how := "It was cancelled with the link in our e-mail."
		if c.CancelledBy == "signin" {
			how = "It was cancelled because someone signed in with the account's second factor."
		} else if c.CancelledBy != "link" && c.CancelledBy != "" {
			how = "It was cancelled by support staff."
		}
		return "Cancelled", how + " Nothing about the account changed.", "bad"
	}
	return string(c.State), "", "warn"
}

// recoveryLinkProblem shows a readable page for a recovery link that does
// not work, with what to do next.
func (h *Handler) recoveryLinkProblem(w http.ResponseWriter, r *http.Request, heading, text string) {
	h.render(w, r, http.StatusBadRequest, "message", &page{Title: heading, Data: messageData{
		Heading: heading, Text: text, Problem: true, NextURL: "/login", NextText: "Go to sign-in",
	}})
}

// recoveryCancelData is the content of the cancel pages.
type recoveryCancelData struct {
	Case  recovery.CaseView
	Token string
	Done  bool
}

func (h *Handler) recoveryCancelPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if token == "" {
		h.cancelLinkProblem(w, r, apperr.New(apperr.TokenInvalid, "link incomplete"))
		return
	}
	c, err := h.recovery.CheckCancelLink(r.Context(), token)
	if err != nil {
		h.cancelLinkProblem(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "recovery_cancel", &page{Title: "Cancel the recovery request", Data: recoveryCancelData{Case: c, Token: token}})
}

func (h *Handler) recoveryCancel(w http.ResponseWriter, r *http.Request) {
	token := r.PostForm.Get("token")
	if token == "" {
		h.cancelLinkProblem(w, r, apperr.New(apperr.TokenInvalid, "link incomplete"))
		return
	}
	c, err := h.recovery.CancelByLink(r.Context(), token, h.client(r))
	if err != nil {
		h.cancelLinkProblem(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "recovery_cancel", &page{Title: "Recovery request cancelled", Data: recoveryCancelData{Case: c, Done: true}})
}

// cancelLinkProblem explains a cancel link that does not work.
func (h *Handler) cancelLinkProblem(w http.ResponseWriter, r *http.Request, err error) {
	if httpx.Status(err) >= 500 {
		h.internal(w, r, err)
		return
	}
	switch apperr.CodeOf(err) {
	case apperr.Conflict:
		h.render(w, r, http.StatusConflict, "message", &page{Title: "This recovery request has ended", Data: messageData{
			Heading: "This recovery request has already ended", Problem: true,
			Text: "It was cancelled, rejected or completed, so there is nothing left to cancel. If you did not ask to recover your account and it was completed, " +
				"someone may have your password: contact support at once and change your password.",
			NextURL: "/login", NextText: "Go to sign-in",
		}})
	case apperr.RateLimited:
		h.fail(w, r, "Too many attempts", err)
	default:
		h.recoveryLinkProblem(w, r, "This cancel link does not work",
			"It may be incomplete, or it was already used. If you still want to stop a recovery of your account, sign in with your password and your second factor "+
				"(that cancels any recovery request too), or contact support and quote the reference number from our e-mail.")
	}
}
