package api

// Password reset for apps:
//
//	POST /api/v1/password/forgot           {email}: 202, the same body for
//	                                        every address (the link goes out
//	                                        through the outbox).
//	POST /api/v1/password/reset/check      {token}: the masked address and the
//	                                        second factors the reset needs.
//	POST /api/v1/password/reset/challenge  {token, factor}: a security key's
//	                                        request, or an SMS sent.
//	POST /api/v1/password/reset            {token, new_password, factor,
//	                                        response}: sets the password;
//	                                        {hold_until}.
//
// account.Service holds every rule; the apperr codes reach the client as
// they are (token_invalid / token_expired / token_used / account_locked for
// a link that does not work, weak_password on "new_password", invalid on
// "factor" or "response").

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/httpx"
	"github.com/moat-dev/moat/internal/mfa"
)

func (h *Handler) resetRoutes() []route {
	return []route{
		{"POST", "/api/v1/password/forgot", h.passwordForgot},
		{"POST", "/api/v1/password/reset/check", h.passwordResetCheck},
		{"POST", "/api/v1/password/reset/challenge", h.passwordResetChallenge},
		{"POST", "/api/v1/password/reset", h.passwordReset},
	}
}

func (h *Handler) passwordForgot(w http.ResponseWriter, r *http.Request) {
	var req emailRequest
	if err := decode(w, r, &req, field{"email", &req.Email}); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.accounts.RequestPasswordReset(r.Context(), req.Email, h.client(r)); err != nil {
		h.fail(w, r, err)
		return
	}
	// The same answer whether or not the address has an account.
	httpx.WriteJSON(w, http.StatusAccepted, statusResponse{"reset_link_sent"})
}

type resetCheckResponse struct {
	// Email is the account's address, masked ("j•••@example.com").
	Email string `json:"email"`
	// Factors are the second factors of which one must be answered with
	// the reset, in preference order; empty: the new password is enough.
	Factors []string `json:"factors"`
}

func (h *Handler) passwordResetCheck(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	if err := decode(w, r, &req, field{"token", &req.Token}); err != nil {
		h.fail(w, r, err)
		return
	}
	link, err := h.accounts.CheckResetLink(r.Context(), req.Token)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := resetCheckResponse{Email: link.Email, Factors: link.Factors}
	if out.Factors == nil {
		out.Factors = []string{}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// resetChallengeRequest names the factor whose challenge a reset starts.
type resetChallengeRequest struct {
	Token  string `json:"token"`
	Factor string `json:"factor"`
}

func decodeResetChallenge(w http.ResponseWriter, r *http.Request) (resetChallengeRequest, error) {
	var req resetChallengeRequest
	err := decode(w, r, &req, field{"token", &req.Token}, field{"factor", &req.Factor})
	return req, err
}

func (h *Handler) passwordResetChallenge(w http.ResponseWriter, r *http.Request) {
	req, err := decodeResetChallenge(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ch, err := h.accounts.StartResetFactor(r.Context(), req.Token, req.Factor, h.client(r))
	if err != nil {
		h.fail(w, r, answerField(err))
		return
	}
	h.writeChallenge(w, r, ch, req.Factor)
}

// resetRequest sets the password. Factor and response are required when
// /reset/check listed factors; response is a code as a JSON string, or for
// "webauthn" the object {"ceremony","credential"} (as /signin/factor takes
// it).
type resetRequest struct {
	Token       string          `json:"token"`
	NewPassword string          `json:"new_password"`
	Factor      string          `json:"factor,omitempty"`
	Response    json.RawMessage `json:"response,omitempty"`
}

// resetInput is a decoded resetRequest.
type resetInput struct {
	Token, NewPassword, Factor, Response string
}

func decodeReset(w http.ResponseWriter, r *http.Request) (resetInput, error) {
	var req resetRequest
	if err := decode(w, r, &req, field{"token", &req.Token}, field{"new_password", &req.NewPassword}); err != nil {
		return resetInput{}, err
	}
	in := resetInput{Token: req.Token, NewPassword: req.NewPassword, Factor: strings.TrimSpace(req.Factor)}
	if len(req.Response) > 0 && string(req.Response) != "null" {
		resp, err := responseText(req.Response)
		if err != nil {
			return resetInput{}, err
		}
		in.Response = resp
	}
	if in.Response != "" && in.Factor == "" {
		return resetInput{}, apperr.Field(apperr.Invalid, "factor", `The field "factor" is required with a "response": the method the response is for.`)
	}
	return in, nil
}

type resetResponse struct {
	// HoldUntil is when withdrawals resume (the security-change hold).
	HoldUntil time.Time `json:"hold_until"`
}

func (h *Handler) passwordReset(w http.ResponseWriter, r *http.Request) {
	in, err := decodeReset(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	done, err := h.accounts.ResetPassword(r.Context(), in.Token, in.NewPassword, in.Factor, in.Response, h.client(r))
	if err != nil {
		h.fail(w, r, answerField(err))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, resetResponse{HoldUntil: done.HoldUntil.UTC()})
}

// backupCodesLeft is how many backup codes the account of a sign-in
// completed with one has left (nil otherwise, or without the 2FA service).
func (h *Handler) backupCodesLeft(r *http.Request, res *account.SignInResult) *int {
	if h.mfa == nil || res.Step != account.StepDone || res.SignInFactor != mfa.MethodBackupCode || res.Session == nil {
		return nil
	}
	n, err := h.mfa.BackupCodesRemaining(r.Context(), res.Session.Session.AccountID)
	if err != nil {
		h.log.WarnContext(r.Context(), "api: counting backup codes", "err", err)
		return nil
	}
	return &n
}
