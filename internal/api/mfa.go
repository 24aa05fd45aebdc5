package api

// The two-factor endpoints: enrolling and removing authenticator apps,
// security keys and passkeys, phones and backup codes; the per-function 2FA
// settings; step-up; and the sign-in steps that involve a factor (the
// factor's challenge, and passwordless sign-in with a passkey).
//
// Everything here calls internal/mfa and internal/account and nothing else:
// the rules (step-up, limits, single use, throttling) live in those
// services, and their apperr codes reach the client unchanged. Without an
// mfa.Service (Deps.MFA nil) every endpoint here answers 404 not_found.
//
// WebAuthn over JSON: a "begin" or "challenge" call returns a Challenge
// whose options go, as they are, to the platform's WebAuthn API
// (navigator.credentials.create/get on the web, ASAuthorization on iOS,
// Credential Manager on Android; binary values are base64url). The client
// then posts the ceremony ID and the resulting PublicKeyCredential JSON
// together: {"ceremony": "...", "credential": {...}}. That one shape is the
// registration body and the "response" of a security-key sign-in or step-up.

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/httpx"
	"github.com/moat-dev/moat/internal/mfa"
)

// mfaRoutes are the 2FA endpoints (see routes).
func (h *Handler) mfaRoutes() []route {
	return []route{
		{"GET", "/api/v1/mfa", h.mfaAuth(h.mfaMethods)},
		{"POST", "/api/v1/mfa/totp", h.mfaAuth(h.totpBegin)},
		{"GET", "/api/v1/mfa/totp/qr", h.mfaAuth(h.totpQR)},
		{"POST", "/api/v1/mfa/totp/confirm", h.mfaAuth(h.totpConfirm)},
		{"DELETE", "/api/v1/mfa/totp", h.mfaAuth(h.totpRemove)},
		{"POST", "/api/v1/mfa/webauthn/register/begin", h.mfaAuth(h.keyBegin)},
		{"POST", "/api/v1/mfa/webauthn/register/finish", h.mfaAuth(h.keyFinish)},
		{"PATCH", "/api/v1/mfa/webauthn/{id}", h.mfaAuth(h.keyRename)},
		{"DELETE", "/api/v1/mfa/webauthn/{id}", h.mfaAuth(h.keyRemove)},
		{"POST", "/api/v1/mfa/sms", h.mfaAuth(h.phoneAdd)},
		{"POST", "/api/v1/mfa/sms/confirm", h.mfaAuth(h.phoneConfirm)},
		{"POST", "/api/v1/mfa/sms/resend", h.mfaAuth(h.phoneResend)},
		{"DELETE", "/api/v1/mfa/sms", h.mfaAuth(h.phoneRemove)},
		{"POST", "/api/v1/mfa/backup-codes", h.mfaAuth(h.backupRegenerate)},
		{"PUT", "/api/v1/mfa/settings", h.mfaAuth(h.mfaSettings)},

		{"POST", "/api/v1/stepup/challenge", h.mfaAuth(h.stepUpChallenge)},
		{"POST", "/api/v1/stepup", h.mfaAuth(h.stepUp)},

		{"POST", "/api/v1/signin/factor/challenge", h.mfaOnly(h.signinFactorChallenge)},
		{"POST", "/api/v1/signin/passkey/begin", h.mfaOnly(h.passkeyBegin)},
		{"POST", "/api/v1/signin/passkey/finish", h.mfaOnly(h.passkeyFinish)},
	}
}

func errNoMFA() error {
	return apperr.New(apperr.NotFound, "Two-factor authentication is not available on this server.")
}

// mfaOnly answers 404 when the server runs without the 2FA service.
func (h *Handler) mfaOnly(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h.mfa == nil {
			h.fail(w, r, errNoMFA())
			return
		}
		next(w, r)
	}
}

// mfaAuth is mfaOnly and bearer authentication.
func (h *Handler) mfaAuth(next authedFunc) http.HandlerFunc {
	return h.mfaOnly(h.auth(next))
}

func noContent(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// Request bodies. Each has a decoder (fuzzed in mfa_fuzz_test.go) that
// returns the request or a 4xx *apperr.Error.

// codeRequest is a typed code: TOTP and phone confirmation.
type codeRequest struct {
	Code string `json:"code"`
}

func decodeCode(w http.ResponseWriter, r *http.Request) (codeRequest, error) {
	var req codeRequest
	err := decode(w, r, &req, field{"code", &req.Code})
	return req, err
}

// keyBeginRequest starts registering a security key or passkey.
type keyBeginRequest struct {
	// Name is optional: "Security key" or "Passkey" when empty.
	Name    string `json:"name"`
	Passkey bool   `json:"passkey"`
}

func decodeKeyBegin(w http.ResponseWriter, r *http.Request) (keyBeginRequest, error) {
	var req keyBeginRequest
	err := decode(w, r, &req)
	return req, err
}

// keyResponseRequest is a finished WebAuthn ceremony (registration): the
// ceremony from the challenge and the platform's PublicKeyCredential.
type keyResponseRequest struct {
	Ceremony   string          `json:"ceremony"`
	Credential json.RawMessage `json:"credential"`
}

// passkeyRequest finishes a passkey sign-in, with the optional device token
// as /signin takes it.
type passkeyRequest struct {
	keyResponseRequest
	DeviceToken string `json:"device_token,omitempty"`
}

// maxCredential bounds a PublicKeyCredential's JSON (mfa.ParseKeyResponse
// takes the same 64 KiB).
const maxCredential = 64 << 10

func decodeKeyResponse(w http.ResponseWriter, r *http.Request) (keyResponseRequest, error) {
	var req keyResponseRequest
	if err := decode(w, r, &req, field{"ceremony", &req.Ceremony}); err != nil {
		return req, err
	}
	return req, checkCredential(req.Credential)
}

func decodePasskey(w http.ResponseWriter, r *http.Request) (passkeyRequest, error) {
	var req passkeyRequest
	if err := decode(w, r, &req, field{"ceremony", &req.Ceremony}); err != nil {
		return req, err
	}
	return req, checkCredential(req.Credential)
}

// checkCredential requires a JSON object (what the platform's WebAuthn API
// returns, serialised).
func checkCredential(c json.RawMessage) error {
	if len(c) == 0 || c[0] != '{' {
		return apperr.Field(apperr.Invalid, "credential",
			`The field "credential" is required: the PublicKeyCredential as a JSON object.`)
	}
	if len(c) > maxCredential {
		return apperr.Field(apperr.Invalid, "credential", "The credential is larger than a security key's answer can be.")
	}
	return nil
}

type renameRequest struct {
	Name string `json:"name"`
}

func decodeRename(w http.ResponseWriter, r *http.Request) (renameRequest, error) {
	var req renameRequest
	err := decode(w, r, &req, field{"name", &req.Name})
	return req, err
}

type phoneRequest struct {
	Phone string `json:"phone"`
}

func decodePhone(w http.ResponseWriter, r *http.Request) (phoneRequest, error) {
	var req phoneRequest
	err := decode(w, r, &req, field{"phone", &req.Phone})
	return req, err
}

// settingsRequest is the whole set of per-function settings; each is
// required, so that a client that forgot one does not turn it off.
type settingsRequest struct {
	SignIn  *bool `json:"signin"`
	Funding *bool `json:"funding"`
	Trading *bool `json:"trading"`
}

func decodeSettings(w http.ResponseWriter, r *http.Request) (mfa.Settings, error) {
	var req settingsRequest
	if err := decode(w, r, &req); err != nil {
		return mfa.Settings{}, err
	}
	for _, f := range []struct {
		name string
		v    *bool
	}{{"signin", req.SignIn}, {"funding", req.Funding}, {"trading", req.Trading}} {
		if f.v == nil {
			return mfa.Settings{}, apperr.Field(apperr.Invalid, f.name, `The field "`+f.name+`" is required: true or false.`)
		}
	}
	return mfa.Settings{SignIn: *req.SignIn, Funding: *req.Funding, Trading: *req.Trading}, nil
}

// factorRequest names a factor, for a challenge: pending_token is set for a
// sign-in, absent for a step-up.
type factorRequest struct {
	PendingToken string `json:"pending_token,omitempty"`
	Factor       string `json:"factor"`
}

func decodeFactor(w http.ResponseWriter, r *http.Request, signin bool) (factorRequest, error) {
	var req factorRequest
	required := []field{{"factor", &req.Factor}}
	if signin {
		required = append([]field{{"pending_token", &req.PendingToken}}, required...)
	}
	if err := decode(w, r, &req, required...); err != nil {
		return req, err
	}
	if !signin && req.PendingToken != "" {
		return req, apperr.Field(apperr.Invalid, "pending_token", `The field "pending_token" is not part of this request.`)
	}
	return req, nil
}

// answerRequest answers a factor: at sign-in (with pending_token) or for a
// step-up. Response is a typed code as a JSON string, or for "webauthn" the
// object {"ceremony","credential"} (also accepted as a string holding that
// JSON, as the web page's script posts it).
type answerRequest struct {
	PendingToken string          `json:"pending_token,omitempty"`
	Factor       string          `json:"factor"`
	Response     json.RawMessage `json:"response"`
}

// answer is a decoded answerRequest.
type answer struct {
	PendingToken, Factor, Response string
}

func decodeAnswer(w http.ResponseWriter, r *http.Request, signin bool) (answer, error) {
	var req answerRequest
	required := []field{{"factor", &req.Factor}}
	if signin {
		required = append([]field{{"pending_token", &req.PendingToken}}, required...)
	}
	if err := decode(w, r, &req, required...); err != nil {
		return answer{}, err
	}
	if !signin && req.PendingToken != "" {
		return answer{}, apperr.Field(apperr.Invalid, "pending_token", `The field "pending_token" is not part of this request.`)
	}
	resp, err := responseText(req.Response)
	if err != nil {
		return answer{}, err
	}
	return answer{PendingToken: req.PendingToken, Factor: req.Factor, Response: resp}, nil
}

// responseText turns the "response" field into what account.Factor.Verify
// and mfa.Service.StepUp take: the code, or the security key's JSON.
func responseText(raw json.RawMessage) (string, error) {
	missing := apperr.Field(apperr.Invalid, "response",
		`The field "response" is required: the code, or for a security key {"ceremony","credential"}.`)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return "", missing
	case raw[0] == '{':
		if len(raw) > maxCredential {
			return "", apperr.Field(apperr.Invalid, "response", "The response is larger than a security key's answer can be.")
		}
		return string(raw), nil
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", apperr.Field(apperr.Invalid, "response", `The field "response" is not a valid JSON string.`)
		}
		if strings.TrimSpace(s) == "" {
			return "", missing
		}
		return s, nil
	}
	return "", apperr.Field(apperr.Invalid, "response",
		`The field "response" must be a string (a code) or an object (a security key's answer).`)
}

// answerField points a factor's refusal at the request's "response" field:
// the services name the code box "code".
func answerField(err error) error {
	e, ok := apperr.As(err)
	if !ok || (e.Field != "code" && e.Field != "method") {
		return err
	}
	c := *e
	if c.Field == "code" {
		c.Field = "response"
	} else {
		c.Field = "factor"
	}
	return &c
}

// Responses.

type keyOut struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Passkey    bool      `json:"passkey"`
	CreatedAt  time.Time `json:"created_at,omitzero"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
}

func keyOutOf(k mfa.KeyView) keyOut {
	return keyOut{ID: k.ID, Name: k.Name, Passkey: k.Passkey, CreatedAt: k.CreatedAt.UTC(), LastUsedAt: k.LastUsedAt.UTC()}
}

type appOut struct {
	CreatedAt  time.Time `json:"created_at,omitzero"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
}

type phoneOut struct {
	Masked     string    `json:"masked"`
	CreatedAt  time.Time `json:"created_at,omitzero"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
}

type settingsOut struct {
	SignIn  bool `json:"signin"`
	Funding bool `json:"funding"`
	Trading bool `json:"trading"`
}

func settingsOutOf(s mfa.Settings) settingsOut {
	return settingsOut{SignIn: s.SignIn, Funding: s.Funding, Trading: s.Trading}
}

type methodsResponse struct {
	// Enrolled lists the usable methods in sign-in preference order.
	Enrolled             []string    `json:"enrolled"`
	TOTP                 *appOut     `json:"totp"`
	SecurityKeys         []keyOut    `json:"security_keys"`
	MaxSecurityKeys      int         `json:"max_security_keys"`
	Phone                *phoneOut   `json:"phone"`
	SMSAvailable         bool        `json:"sms_available"`
	SMSNotice            string      `json:"sms_notice"`
	BackupCodesRemaining int         `json:"backup_codes_remaining"`
	Settings             settingsOut `json:"settings"`
	// StepUpRequired: a security change made now would answer
	// step_up_required (call /api/v1/stepup first).
	StepUpRequired bool `json:"step_up_required"`
	// MustEnrol: the platform requires a second factor (EnrolMethod, ""
	// for any) before anything else.
	MustEnrol   bool   `json:"must_enrol"`
	EnrolMethod string `json:"enrol_method,omitempty"`
}

func (h *Handler) mfaMethods(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	ctx := r.Context()
	m, err := h.mfa.Methods(ctx, p.Account.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	stepUp := h.mfa.CheckStepUp(ctx, p)
	if stepUp != nil && apperr.CodeOf(stepUp) != apperr.StepUpNeeded {
		h.fail(w, r, stepUp)
		return
	}
	must, method, err := h.accounts.NeedsEnrolment(ctx, p.Account)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := methodsResponse{
		Enrolled: m.Enrolled, SecurityKeys: make([]keyOut, 0, len(m.SecurityKeys)), MaxSecurityKeys: m.MaxSecurityKeys,
		SMSAvailable: m.SMSAvailable, SMSNotice: mfa.SMSNotice, BackupCodesRemaining: m.BackupCodesRemaining,
		Settings: settingsOutOf(m.Settings), StepUpRequired: stepUp != nil, MustEnrol: must, EnrolMethod: method,
	}
	if out.Enrolled == nil {
		out.Enrolled = []string{}
	}
	if m.TOTP != nil {
		out.TOTP = &appOut{CreatedAt: m.TOTP.CreatedAt.UTC(), LastUsedAt: m.TOTP.LastUsedAt.UTC()}
	}
	for _, k := range m.SecurityKeys {
		out.SecurityKeys = append(out.SecurityKeys, keyOutOf(k))
	}
	if m.Phone != nil {
		out.Phone = &phoneOut{Masked: m.Phone.Masked, CreatedAt: m.Phone.CreatedAt.UTC(), LastUsedAt: m.Phone.LastUsedAt.UTC()}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// Authenticator app.

type totpEnrolmentResponse struct {
	// Secret is the seed in unpadded base32, for apps that set up an
	// authenticator themselves; ManualKey is the same in groups of four,
	// for a person to type.
	Secret    string `json:"secret"`
	ManualKey string `json:"manual_key"`
	URI       string `json:"otpauth_uri"`
	// QRCode is the otpauth URI as a PNG QR code, a data: URI for an <img>
	// or an image view (also served by GET /api/v1/mfa/totp/qr).
	QRCode string `json:"qr_code"`
}

func (h *Handler) totpBegin(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	en, err := h.mfa.BeginTOTP(r.Context(), p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, totpEnrolmentResponse{
		Secret: strings.ReplaceAll(en.ManualKey, " ", ""), ManualKey: en.ManualKey, URI: en.URI,
		QRCode: "data:image/png;base64," + base64.StdEncoding.EncodeToString(en.QRCodePNG),
	})
}

// totpQR serves the pending enrolment's QR code as a PNG.
func (h *Handler) totpQR(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	en, err := h.mfa.PendingTOTP(r.Context(), p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "image/png")
	hd.Set("Cache-Control", "no-store") // it carries the seed
	hd.Set("Content-Length", strconv.Itoa(len(en.QRCodePNG)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(en.QRCodePNG)
}

// enrolledResponse answers a completed enrolment. BackupCodes is set, once,
// when the method is the account's first factor: show them and let the
// person save them; they are never shown again.
type enrolledResponse struct {
	Method      string   `json:"method"`
	Key         *keyOut  `json:"key,omitempty"`
	BackupCodes []string `json:"backup_codes,omitempty"`
}

func (h *Handler) totpConfirm(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	req, err := decodeCode(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	codes, err := h.mfa.ConfirmTOTP(r.Context(), p, req.Code, h.client(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, enrolledResponse{Method: mfa.MethodTOTP, BackupCodes: codes})
}

func (h *Handler) totpRemove(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	if err := h.mfa.RemoveTOTP(r.Context(), p, h.client(r)); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}

// Security keys and passkeys.

// challengeResponse is what the client must do before it can answer a
// factor: for "webauthn", pass Options to the platform's WebAuthn API and
// post the result with Ceremony; for "sms", type the code sent to SentTo;
// for "totp" and "backup_code", nothing (type the code).
type challengeResponse struct {
	Method    string          `json:"method"`
	Ceremony  string          `json:"ceremony,omitempty"`
	Options   json.RawMessage `json:"options,omitempty"`
	SentTo    string          `json:"sent_to,omitempty"`
	ExpiresAt time.Time       `json:"expires_at,omitzero"`
}

func challengeOut(c mfa.Challenge) challengeResponse {
	return challengeResponse{Method: c.Method, Ceremony: c.Ceremony, Options: c.Options, SentTo: c.SentTo, ExpiresAt: c.ExpiresAt.UTC()}
}

func (h *Handler) keyBegin(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	req, err := decodeKeyBegin(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ch, err := h.mfa.BeginSecurityKey(r.Context(), p, req.Name, req.Passkey)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, challengeOut(ch))
}

func (h *Handler) keyFinish(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	req, err := decodeKeyResponse(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	k, codes, err := h.mfa.FinishSecurityKey(r.Context(), p, req.Ceremony, req.Credential, h.client(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ko := keyOutOf(k)
	httpx.WriteJSON(w, http.StatusCreated, enrolledResponse{Method: mfa.MethodWebAuthn, Key: &ko, BackupCodes: codes})
}

func (h *Handler) keyRename(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	req, err := decodeRename(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.mfa.RenameSecurityKey(r.Context(), p, r.PathValue("id"), req.Name, h.client(r)); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}

func (h *Handler) keyRemove(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	if err := h.mfa.RemoveSecurityKey(r.Context(), p, r.PathValue("id"), h.client(r)); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}

// Phone.

type phoneSentResponse struct {
	SentTo string `json:"sent_to"`
	// Notice says why SMS is the weakest option; show it with the form.
	Notice string `json:"notice"`
}

func (h *Handler) phoneAdd(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	req, err := decodePhone(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	to, err := h.mfa.AddPhone(r.Context(), p, req.Phone)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusAccepted, phoneSentResponse{SentTo: to, Notice: mfa.SMSNotice})
}

func (h *Handler) phoneResend(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	to, err := h.mfa.ResendPhoneCode(r.Context(), p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusAccepted, phoneSentResponse{SentTo: to, Notice: mfa.SMSNotice})
}

func (h *Handler) phoneConfirm(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	req, err := decodeCode(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	codes, err := h.mfa.ConfirmPhone(r.Context(), p, req.Code, h.client(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, enrolledResponse{Method: mfa.MethodSMS, BackupCodes: codes})
}

func (h *Handler) phoneRemove(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	if err := h.mfa.RemovePhone(r.Context(), p, h.client(r)); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}

// Backup codes and settings.

type backupCodesResponse struct {
	BackupCodes []string `json:"backup_codes"`
}

func (h *Handler) backupRegenerate(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	codes, err := h.mfa.RegenerateBackupCodes(r.Context(), p, h.client(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, backupCodesResponse{codes})
}

func (h *Handler) mfaSettings(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	next, err := decodeSettings(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	saved, err := h.mfa.UpdateSettings(r.Context(), p, next, h.client(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, settingsOutOf(saved))
}

// Step-up.

// enrolledFactor refuses a factor the account has not set up, before any
// code is sent or counted.
func (h *Handler) enrolledFactor(r *http.Request, accountID, factor string) error {
	enrolled, err := h.mfa.EnrolledMethods(r.Context(), accountID)
	if err != nil {
		return err
	}
	for _, m := range enrolled {
		if m == factor {
			return nil
		}
	}
	return apperr.Field(apperr.Invalid, "factor", "Choose one of the ways to confirm it's you that this account has set up.")
}

func (h *Handler) stepUpChallenge(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	req, err := decodeFactor(w, r, false)
	if err == nil {
		err = h.enrolledFactor(r, p.Account.ID, req.Factor)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ch, err := h.mfa.StepUpChallenge(r.Context(), p, req.Factor)
	if err != nil {
		h.fail(w, r, answerField(err))
		return
	}
	if ch.Method == "" {
		ch.Method = req.Factor
	}
	httpx.WriteJSON(w, http.StatusOK, challengeOut(ch))
}

type stepUpResponse struct {
	// SecondFactorAt is the session's new second-factor time; security
	// changes are allowed until ValidUntil.
	SecondFactorAt time.Time `json:"second_factor_at"`
	ValidUntil     time.Time `json:"valid_until"`
}

func (h *Handler) stepUp(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	req, err := decodeAnswer(w, r, false)
	if err == nil {
		err = h.enrolledFactor(r, p.Account.ID, req.Factor)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	at, err := h.mfa.StepUp(r.Context(), p, req.Factor, req.Response, h.client(r))
	if err != nil {
		h.fail(w, r, answerField(err))
		return
	}
	if err := h.accounts.RecordStepUp(r.Context(), p, at); err != nil {
		h.fail(w, r, err)
		return
	}
	at = at.UTC().Truncate(time.Microsecond)
	httpx.WriteJSON(w, http.StatusOK, stepUpResponse{SecondFactorAt: at, ValidUntil: at.Add(h.mfa.StepUpWithin())})
}

// Sign-in.

// signinFactorChallenge starts the chosen factor's challenge for a sign-in
// waiting for its second factor (a security key's request, an SMS sent).
func (h *Handler) signinFactorChallenge(w http.ResponseWriter, r *http.Request) {
	req, err := decodeFactor(w, r, true)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ch, err := h.accounts.StartSecondFactor(r.Context(), req.PendingToken, req.Factor, h.client(r))
	if err != nil {
		h.fail(w, r, answerField(err))
		return
	}
	h.writeChallenge(w, r, ch, req.Factor)
}

// writeChallenge answers with a factor's started challenge (nil: the
// factor needs none, e.g. an authenticator code), for sign-in and reset
// alike.
func (h *Handler) writeChallenge(w http.ResponseWriter, r *http.Request, ch any, method string) {
	out := challengeResponse{Method: method}
	switch c := ch.(type) {
	case nil:
	case mfa.Challenge:
		out = challengeOut(c)
		if out.Method == "" {
			out.Method = method
		}
	default:
		h.fail(w, r, &apperr.Error{Code: apperr.Internal, Message: "unexpected challenge type"})
		return
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// passkeyBegin starts a passwordless sign-in: the options let the platform
// offer the passkeys it holds for this site.
func (h *Handler) passkeyBegin(w http.ResponseWriter, r *http.Request) {
	ch, err := h.mfa.BeginPasskeySignIn(r.Context(), h.client(r).IP)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, challengeOut(ch))
}

// passkeyFinish checks the passkey's answer and signs its account in,
// answering as /signin does (device approval may still follow).
func (h *Handler) passkeyFinish(w http.ResponseWriter, r *http.Request) {
	req, err := decodePasskey(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	c := h.client(r)
	if req.DeviceToken != "" {
		c.DeviceToken = req.DeviceToken
	}
	accountID, err := h.mfa.FinishPasskeySignIn(r.Context(), req.Ceremony, req.Credential)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	res, err := h.accounts.SignInWithPasskey(r.Context(), accountID, c)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeStep(w, r, res)
}
