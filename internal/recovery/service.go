package recovery

// CONTRACT FILE: the signatures and doc comments are the agreement between
// the recovery service and its adapters (web, api, admin, server). The
// bodies are filled in by the recovery helper; change a signature only
// together with its callers.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/audit"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/ratelimit"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

var errTODO = errors.New("recovery: not implemented yet")

// Config holds the tunable durations.
type Config struct {
	WaitingPeriod time.Duration // DefaultWaitingPeriod
	NoticeEvery   time.Duration // DefaultNoticeEvery
	RecoveryHold  time.Duration // DefaultRecoveryHold: withdrawals paused after completion
}

// Deps are what the service needs; every field is required except Logger.
type Deps struct {
	Store    store.Store
	Clock    clock.Clock
	Rand     io.Reader
	Box      *secrets.Box // seals documents
	Mailer   *notify.Mailer
	Audit    *audit.Log
	Counter  ratelimit.Counter
	Accounts *account.Service
	Config   Config
	Logger   *slog.Logger
}

// Service implements recovery cases. Build it with New.
type Service struct {
	d Deps
}

// New returns a Service; it panics on a missing dependency (a wiring bug).
// It registers itself with Accounts.OnSignedIn so that a sign-in with a
// second factor cancels the account's open or waiting case.
func New(d Deps) *Service { return &Service{d: d} }

// Open opens a case for the account proof names. document is the raw
// upload (the adapter caps the read at MaxDocumentBytes+1): JPEG, PNG or
// PDF by content, whatever the file name says. Errors: TokenInvalid /
// TokenExpired for a bad proof, Invalid (Field "document" or an answer's
// JSON name) for unacceptable input, TooLarge (Field "document") over
// MaxDocumentBytes, Conflict when the account already has an open or
// waiting case, RateLimited when one IP opens too many. The owner's
// address is e-mailed at once (recovery_requested, with a cancel link).
func (s *Service) Open(ctx context.Context, proof Proof, answers Answers, document []byte, c account.Client) (Opened, error) {
	return Opened{}, errTODO
}

// Status returns the case of a status link's token; TokenInvalid if
// unknown.
func (s *Service) Status(ctx context.Context, statusToken string) (CaseView, error) {
	return CaseView{}, errTODO
}

// CheckCancelLink returns the case a cancel link would cancel, without
// cancelling it (for the confirmation page). TokenInvalid / TokenExpired /
// TokenUsed for a bad link; Conflict when the case has ended.
func (s *Service) CheckCancelLink(ctx context.Context, token string) (CaseView, error) {
	return CaseView{}, errTODO
}

// CancelByLink cancels the case of an e-mailed cancel link (open or
// waiting). The owner is e-mailed (recovery_cancelled).
func (s *Service) CancelByLink(ctx context.Context, token string, c account.Client) (CaseView, error) {
	return CaseView{}, errTODO
}

// Queue lists cases for staff, newest first; states empty means open and
// waiting. Forbidden unless staff is a support or admin account.
func (s *Service) Queue(ctx context.Context, staff account.Principal, states []store.RecoveryState) ([]CaseView, error) {
	return nil, errTODO
}

// CasesOf lists one account's cases for staff (the account page).
func (s *Service) CasesOf(ctx context.Context, staff account.Principal, accountID string) ([]CaseView, error) {
	return nil, errTODO
}

// Review returns one case with its answers compared against the account's
// real history. Forbidden for non-staff; NotFound for an unknown ID.
func (s *Service) Review(ctx context.Context, staff account.Principal, caseID string) (Review, error) {
	return Review{}, errTODO
}

// Document returns the decrypted identity document and its sniffed media
// type, for staff only; every view is audited.
func (s *Service) Document(ctx context.Context, staff account.Principal, caseID string, c account.Client) (mediaType string, data []byte, err error) {
	return "", nil, errTODO
}

// Approve records staff's approval. The first approval leaves the case
// open; the second, by a different staff member, starts the waiting
// period (recovery_approved e-mail). Conflict when this staff member
// approved already, or the case is not open; Forbidden for non-staff and
// for a staff member approving a case about their own account.
func (s *Service) Approve(ctx context.Context, staff account.Principal, caseID string, c account.Client) (CaseView, error) {
	return CaseView{}, errTODO
}

// Reject ends an open case with a reason the owner will read (Invalid,
// Field "reason", when empty). The owner is e-mailed.
func (s *Service) Reject(ctx context.Context, staff account.Principal, caseID, reason string, c account.Client) (CaseView, error) {
	return CaseView{}, errTODO
}

// Tick does the timed work due now: a reminder for every waiting case
// whose NextNoticeAt has passed, and completion of every waiting case
// whose WaitUntil has passed (lost factors removed, sessions revoked,
// withdrawals paused for RecoveryHold, recovery_completed e-mail). Safe to
// run on every node at once: each transition happens once. Returns how
// many cases it changed.
func (s *Service) Tick(ctx context.Context) (int, error) {
	return 0, errTODO
}

// Run calls Tick every interval until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {}

// NeedsEnrolment implements account.EnrolmentPolicy's question for
// recovered accounts: true (any method) when the account's last case
// completed and it has no second factor since.
func (s *Service) NeedsEnrolment(ctx context.Context, acct store.Account) (bool, string, error) {
	return false, "", errTODO
}
