package api

import (
	"context"
	"net/http"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apikey"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/httpx"
)

// The API key endpoints under /api/v1/apikeys. Permissions are written as
// slugs ("query-funds"). Every change carries a step_up object, confirmed
// through KeyStepUp before the service is called: the account password
// ({"password": "..."}) for an account without a second factor, or, when
// the session's second factor is not fresh, a code ({"code": "123456"},
// optionally with "method": "totp", "sms" or "backup_code"). The secret is
// in the answer of POST /api/v1/apikeys and of /rotate only, once.

// KeyStepUp confirms an API key change; internal/server implements it.
type KeyStepUp interface {
	// StepUpAsk says what a change needs now: "" (nothing: the second
	// factor is fresh), "password", or "second_factor".
	StepUpAsk(ctx context.Context, p account.Principal) (ask string, methods []string, err error)
	// StepUpConfirm checks what the request carried and returns the
	// context to make the change with.
	StepUpConfirm(ctx context.Context, p account.Principal, password, method, code string, c account.Client) (context.Context, error)
}

func (h *Handler) apiKeyRoutes() []route {
	return []route{
		{"GET", "/api/v1/apikeys", h.auth(h.keysOn(h.listKeys))},
		{"POST", "/api/v1/apikeys", h.auth(h.keysOn(h.createKey))},
		{"GET", "/api/v1/apikeys/{id}", h.auth(h.keysOn(h.getKey))},
		{"PATCH", "/api/v1/apikeys/{id}", h.auth(h.keysOn(h.updateKey))},
		{"DELETE", "/api/v1/apikeys/{id}", h.auth(h.keysOn(h.deleteKey))},
		{"POST", "/api/v1/apikeys/{id}/rotate", h.auth(h.keysOn(h.rotateKey))},
	}
}

// keysOn answers 404 when the server has no API keys wired.
func (h *Handler) keysOn(next authedFunc) authedFunc {
	return func(w http.ResponseWriter, r *http.Request, p account.Principal, tok string) {
		if h.apiKeys == nil || h.keyStepUp == nil {
			h.fail(w, r, apperr.New(apperr.NotFound, "API keys are not enabled on this server."))
			return
		}
		next(w, r, p, tok)
	}
}

// apiKey is a key in answers. It never holds the secret.
type apiKey struct {
	ID                  string    `json:"id"`
	Name                string    `json:"name"`
	PublicKey           string    `json:"public_key"`
	Permissions         []string  `json:"permissions"`
	AllowedIPs          []string  `json:"allowed_ips"`
	ExpiresAt           time.Time `json:"expires_at,omitzero"`
	NonceWindow         uint64    `json:"nonce_window"`
	HasPassword         bool      `json:"has_password"`
	QueryStart          time.Time `json:"query_start,omitzero"`
	QueryEnd            time.Time `json:"query_end,omitzero"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at,omitzero"`
	LastUsedAt          time.Time `json:"last_used_at,omitzero"`
	LastUsedIP          string    `json:"last_used_ip,omitempty"`
	RotatedAt           time.Time `json:"rotated_at,omitzero"`
	OldSecretValidUntil time.Time `json:"old_secret_valid_until,omitzero"`
	Expired             bool      `json:"expired"`
	Unused              bool      `json:"unused"`
}

func apiKeyOut(v apikey.View) apiKey {
	allow := v.AllowedIPs
	if allow == nil {
		allow = []string{}
	}
	return apiKey{
		ID: v.ID, Name: v.Name, PublicKey: v.PublicKey, Permissions: v.Permissions.Slugs(), AllowedIPs: allow,
		ExpiresAt: v.ExpiresAt.UTC(), NonceWindow: v.NonceWindow, HasPassword: v.HasPassword,
		QueryStart: v.QueryStart.UTC(), QueryEnd: v.QueryEnd.UTC(), CreatedAt: v.CreatedAt.UTC(),
		UpdatedAt: v.UpdatedAt.UTC(), LastUsedAt: v.LastUsedAt.UTC(), LastUsedIP: v.LastUsedIP,
		RotatedAt: v.RotatedAt.UTC(), OldSecretValidUntil: v.OldSecretValidUntil.UTC(),
		Expired: v.Expired, Unused: v.Unused,
	}
}

// keyStepUpBody is the confirmation a change carries.
type keyStepUpBody struct {
	Password string `json:"password,omitempty"`
	Method   string `json:"method,omitempty"`
	Code     string `json:"code,omitempty"`
}

type keysResponse struct {
	Keys []apiKey `json:"keys"`
	// StepUp says what the next change needs: "none", "password" or
	// "second_factor".
	StepUp string `json:"step_up"`
}

type keyResponse struct {
	Key apiKey `json:"key"`
}

// secretResponse is the only answer that holds a secret.
type secretResponse struct {
	Key apiKey `json:"key"`
	// Secret is the private key (base64), shown this once.
	Secret string `json:"secret"`
}

func (h *Handler) listKeys(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	views, err := h.apiKeys.List(r.Context(), p.Account.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ask, _, err := h.keyStepUp.StepUpAsk(r.Context(), p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if ask == "" {
		ask = "none"
	}
	out := keysResponse{Keys: make([]apiKey, 0, len(views)), StepUp: ask}
	for _, v := range views {
		out.Keys = append(out.Keys, apiKeyOut(v))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (h *Handler) getKey(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	v, err := h.apiKeys.Get(r.Context(), p.Account.ID, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, keyResponse{apiKeyOut(v)})
}

// createKeyRequest is POST /api/v1/apikeys. Nothing has a default the
// caller did not choose: permissions must be listed.
type createKeyRequest struct {
	Name        string     `json:"name"`
	Permissions []string   `json:"permissions"`
	AllowedIPs  []string   `json:"allowed_ips"`
	ExpiresAt   *time.Time `json:"expires_at"`
	NonceWindow uint64     `json:"nonce_window"`
	// KeyPassword is the optional key password clients send as otp.
	KeyPassword string        `json:"key_password"`
	QueryStart  *time.Time    `json:"query_start"`
	QueryEnd    *time.Time    `json:"query_end"`
	StepUp      keyStepUpBody `json:"step_up"`
}

// decodeCreateKey is the create endpoint's parser of untrusted input
// (fuzzed).
func decodeCreateKey(w http.ResponseWriter, r *http.Request) (createKeyRequest, error) {
	var req createKeyRequest
	if err := decode(w, r, &req, field{"name", &req.Name}); err != nil {
		return req, err
	}
	if len(req.Permissions) == 0 {
		return req, apperr.Field(apperr.Invalid, "permissions", `The field "permissions" is required: list the permissions the key needs, e.g. ["query-funds"].`)
	}
	return req, nil
}

func (h *Handler) createKey(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	req, err := decodeCreateKey(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx, err := h.confirmKeyChange(r, p, req.StepUp)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	in := apikey.CreateInput{Name: req.Name, Permissions: req.Permissions, AllowedIPs: req.AllowedIPs,
		NonceWindow: req.NonceWindow, Password: req.KeyPassword,
		ExpiresAt: deref(req.ExpiresAt), QueryStart: deref(req.QueryStart), QueryEnd: deref(req.QueryEnd)}
	v, secret, err := h.apiKeys.Create(ctx, p.Account.ID, h.keyActor(r, p), in)
	if err != nil {
		h.fail(w, r, keyField(err))
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, secretResponse{Key: apiKeyOut(v), Secret: secret})
}

// updateKeyRequest is PATCH /api/v1/apikeys/{id}; absent fields stay.
type updateKeyRequest struct {
	Name        *string   `json:"name"`
	Permissions *[]string `json:"permissions"`
	// AllowedIPs: [] allows any address.
	AllowedIPs *[]string     `json:"allowed_ips"`
	StepUp     keyStepUpBody `json:"step_up"`
}

func (h *Handler) updateKey(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	var req updateKeyRequest
	if err := decode(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	ctx, err := h.confirmKeyChange(r, p, req.StepUp)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v, err := h.apiKeys.Update(ctx, p.Account.ID, r.PathValue("id"), h.keyActor(r, p),
		apikey.UpdateInput{Name: req.Name, Permissions: req.Permissions, AllowedIPs: req.AllowedIPs})
	if err != nil {
		h.fail(w, r, keyField(err))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, keyResponse{apiKeyOut(v)})
}

type keyStepUpRequest struct {
	StepUp keyStepUpBody `json:"step_up"`
}

// deleteKey takes its step_up in a JSON body; a bodiless DELETE is fine
// when no step-up is needed.
func (h *Handler) deleteKey(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	var req keyStepUpRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &req); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	ctx, err := h.confirmKeyChange(r, p, req.StepUp)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.apiKeys.Delete(ctx, p.Account.ID, r.PathValue("id"), h.keyActor(r, p)); err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// rotateKeyRequest is POST /api/v1/apikeys/{id}/rotate.
type rotateKeyRequest struct {
	// GraceSeconds is how long the old secret keeps working: 0 (stop at
	// once) to 604800 (7 days).
	GraceSeconds int64         `json:"grace_seconds"`
	StepUp       keyStepUpBody `json:"step_up"`
}

func (h *Handler) rotateKey(w http.ResponseWriter, r *http.Request, p account.Principal, _ string) {
	var req rotateKeyRequest
	if err := decode(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	if req.GraceSeconds < 0 || req.GraceSeconds > int64(apikey.MaxRotateGrace/time.Second) {
		h.fail(w, r, apperr.Field(apperr.Invalid, "grace_seconds", "grace_seconds must be from 0 (the old secret stops at once) to 604800 (7 days)."))
		return
	}
	ctx, err := h.confirmKeyChange(r, p, req.StepUp)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v, secret, err := h.apiKeys.Rotate(ctx, p.Account.ID, r.PathValue("id"), h.keyActor(r, p), time.Duration(req.GraceSeconds)*time.Second)
	if err != nil {
		h.fail(w, r, keyField(err))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, secretResponse{Key: apiKeyOut(v), Secret: secret})
}

// confirmKeyChange runs the step-up with what the request carried. A wrong
// password is 400 invalid (field step_up.password), not 401: the session
// is fine, and apps read 401 as "signed out".
func (h *Handler) confirmKeyChange(r *http.Request, p account.Principal, s keyStepUpBody) (context.Context, error) {
	ctx, err := h.keyStepUp.StepUpConfirm(r.Context(), p, s.Password, s.Method, s.Code, h.client(r))
	if err == nil {
		return ctx, nil
	}
	e, ok := apperr.As(err)
	if !ok {
		return ctx, err
	}
	out := *e
	switch e.Field {
	case "confirm_password":
		out.Field = "step_up.password"
	case "step_up_code":
		out.Field = "step_up.code"
	}
	if out.Code == apperr.BadCredential {
		out.Code, out.Err = apperr.Invalid, err
	}
	return ctx, &out
}

func (h *Handler) keyActor(r *http.Request, p account.Principal) apikey.Actor {
	c := h.client(r)
	return apikey.Actor{IP: c.IP, UserAgent: c.UserAgent, SessionID: p.Session.ID, DeviceID: p.Session.DeviceID}
}

// keyField names the request's field for the service's: the key password
// is key_password here.
func keyField(err error) error {
	e, ok := apperr.As(err)
	if !ok || e.Field != "password" {
		return err
	}
	out := *e
	out.Field = "key_password"
	return &out
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
