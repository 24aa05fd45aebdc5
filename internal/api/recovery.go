package api

// Recovery cases over JSON, for someone who lost their second factor and
// has no backup code: open a case, see its status, cancel it with the
// e-mailed link's token. internal/recovery holds the rules; its apperr
// codes reach the client unchanged. Without a recovery.Service
// (Deps.Recovery nil) every endpoint here answers 404 not_found.
//
// The identity document travels base64-encoded in the JSON body, so the
// server must let POST /api/v1/recovery/cases through with a body of up to
// MaxRecoveryCaseBytes (httpx.Options.BodyLimits).

import (
	"encoding/base64"
	"net/http"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/httpx"
	"github.com/moat-dev/moat/internal/recovery"
	"github.com/moat-dev/moat/internal/store"
)

// PathRecoveryCases is the path of the endpoint that opens a case, for
// httpx.Options.BodyLimits.
const PathRecoveryCases = "/api/v1/recovery/cases"

// MaxRecoveryCaseBytes bounds the body of POST /api/v1/recovery/cases: the
// largest document in base64 (4/3 of recovery.MaxDocumentBytes, 13.3 MiB)
// plus the answers, with room to spare.
const MaxRecoveryCaseBytes = 14 << 20

func (h *Handler) recoveryRoutes() []route {
	return []route{
		{"POST", PathRecoveryCases, h.recoveryOnly(h.recoveryOpen)},
		{"POST", "/api/v1/recovery/status", h.recoveryOnly(h.recoveryStatus)},
		{"POST", "/api/v1/recovery/cancel", h.recoveryOnly(h.recoveryCancel)},
	}
}

// recoveryOnly answers 404 when the server runs without recovery cases.
func (h *Handler) recoveryOnly(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h.recovery == nil {
			h.fail(w, r, apperr.New(apperr.NotFound, "Account recovery is not available on this server."))
			return
		}
		next(w, r)
	}
}

// recoveryCaseRequest opens a case: exactly one of PendingToken (a sign-in
// waiting for its second factor) and ResetToken (a password-reset link's
// token) proves the first factor.
type recoveryCaseRequest struct {
	PendingToken   string            `json:"pending_token,omitempty"`
	ResetToken     string            `json:"reset_token,omitempty"`
	Answers        *recovery.Answers `json:"answers"`
	DocumentBase64 string            `json:"document_base64"`
}

// recoveryCase is a case as its owner sees it.
type recoveryCase struct {
	Reference string              `json:"reference"`
	State     store.RecoveryState `json:"state"`
	CreatedAt time.Time           `json:"created_at"`
	// Approvals is how many staff members approved (0 to 2).
	Approvals    int       `json:"approvals"`
	WaitUntil    time.Time `json:"wait_until,omitzero"`
	RejectReason string    `json:"reject_reason,omitempty"`
	CancelledAt  time.Time `json:"cancelled_at,omitzero"`
	CompletedAt  time.Time `json:"completed_at,omitzero"`
	NextStep     string    `json:"next_step,omitempty"`
}

// recoveryOpened is the answer to opening a case: the case, and the status
// token shown this once.
type recoveryOpened struct {
	recoveryCase
	StatusToken string `json:"status_token"`
	// StatusPath is the web page of the status token (with it).
	StatusPath string `json:"status_path"`
}

func caseJSON(c recovery.CaseView) recoveryCase {
	utc := func(t time.Time) time.Time {
		if t.IsZero() {
			return t
		}
		return t.UTC()
	}
	return recoveryCase{
		Reference: c.Reference, State: c.State, CreatedAt: utc(c.CreatedAt), Approvals: c.Approvals,
		WaitUntil: utc(c.WaitUntil), RejectReason: c.RejectReason, CancelledAt: utc(c.CancelledAt),
		CompletedAt: utc(c.CompletedAt), NextStep: c.NextStep,
	}
}

// decodeRecoveryCase is the cases endpoint's parser of untrusted input
// (fuzzed): the JSON body, one proof, the answers present, and the
// document decoded from base64 and no larger than MaxDocumentBytes.
func decodeRecoveryCase(w http.ResponseWriter, r *http.Request) (recovery.Proof, recovery.Answers, []byte, error) {
	var req recoveryCaseRequest
	if err := httpx.DecodeJSONLimit(w, r, &req, MaxRecoveryCaseBytes); err != nil {
		return recovery.Proof{}, recovery.Answers{}, nil, err
	}
	proof := recovery.Proof{PendingToken: strings.TrimSpace(req.PendingToken), ResetToken: strings.TrimSpace(req.ResetToken)}
	switch {
	case proof.PendingToken == "" && proof.ResetToken == "":
		return proof, recovery.Answers{}, nil, apperr.Field(apperr.Invalid, "pending_token",
			"Send either \"pending_token\" (a sign-in waiting for its second factor) or \"reset_token\" (from a password-reset link).")
	case proof.PendingToken != "" && proof.ResetToken != "":
		return proof, recovery.Answers{}, nil, apperr.Field(apperr.Invalid, "reset_token",
			"Send only one of \"pending_token\" and \"reset_token\".")
	case req.Answers == nil:
		return proof, recovery.Answers{}, nil, apperr.Field(apperr.Invalid, "answers", "The field \"answers\" is required.")
	}
	doc, err := decodeDocument(req.DocumentBase64)
	if err != nil {
		return proof, recovery.Answers{}, nil, err
	}
	return proof, *req.Answers, doc, nil
}

// decodeDocument decodes standard base64, padded or not, with any line
// breaks removed.
func decodeDocument(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case '\r', '\n', ' ', '\t':
			return -1
		}
		return r
	}, s)
	if s == "" {
		return nil, apperr.Field(apperr.Invalid, "document_base64",
			"The field \"document_base64\" is required: the identity document (JPEG, PNG or PDF), base64-encoded.")
	}
	raw := strings.TrimRight(s, "=")
	if base64.RawStdEncoding.DecodedLen(len(raw)) > recovery.MaxDocumentBytes {
		return nil, apperr.Field(apperr.TooLarge, "document_base64",
			"The document is larger than 10 MB. Send a smaller photo or scan (JPEG, PNG or PDF).")
	}
	doc, err := base64.RawStdEncoding.DecodeString(raw)
	if err != nil || len(doc) == 0 {
		return nil, apperr.Field(apperr.Invalid, "document_base64",
			"The field \"document_base64\" is not valid base64 (standard alphabet, as RFC 4648 section 4).")
	}
	return doc, nil
}

func (h *Handler) recoveryOpen(w http.ResponseWriter, r *http.Request) {
	proof, answers, doc, err := decodeRecoveryCase(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	opened, err := h.recovery.Open(r.Context(), proof, answers, doc, h.client(r))
	if err != nil {
		h.fail(w, r, documentField(err))
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, recoveryOpened{
		recoveryCase: caseJSON(opened.Case),
		StatusToken:  opened.StatusToken,
		StatusPath:   recovery.PathStatus + "?token=" + opened.StatusToken,
	})
}

// documentField renames the service's "document" field to this API's
// "document_base64".
func documentField(err error) error {
	e, ok := apperr.As(err)
	if !ok || e.Field != "document" {
		return err
	}
	c := *e
	c.Field = "document_base64"
	return &c
}

func (h *Handler) recoveryStatus(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	if err := decode(w, r, &req, field{"token", &req.Token}); err != nil {
		h.fail(w, r, err)
		return
	}
	c, err := h.recovery.Status(r.Context(), strings.TrimSpace(req.Token))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, caseJSON(c))
}

func (h *Handler) recoveryCancel(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	if err := decode(w, r, &req, field{"token", &req.Token}); err != nil {
		h.fail(w, r, err)
		return
	}
	c, err := h.recovery.CancelByLink(r.Context(), strings.TrimSpace(req.Token), h.client(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, caseJSON(c))
}
