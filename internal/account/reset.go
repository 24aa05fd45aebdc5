package account

// CONTRACT FILE: signatures agreed with internal/recovery, internal/web,
// internal/api and internal/admin; the account helper fills in the bodies.

import (
	"context"
	"errors"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

var errResetTODO = errors.New("account: not implemented yet")

// Paths of the password-reset pages (internal/web serves them; the e-mailed
// link opens PathResetPassword with the token in the "token" query
// parameter, and the page confirms with a POST).
const (
	PathForgotPassword = "/forgot"
	PathResetPassword  = "/reset"
)

// ResetLinkTTL is how long a password-reset link works (DESIGN.md).
const ResetLinkTTL = 30 * time.Minute

// ResetLink is what the reset page needs to know about a valid link.
type ResetLink struct {
	// Email is the account's address, masked for display ("a•••@example.com").
	Email string
	// Factors are the account's enrolled second factors in preference
	// order (as SignInResult.Factors); empty when it has none, and then
	// the new password alone is enough.
	Factors []string
}

// ResetDone is the result of a successful reset.
type ResetDone struct {
	// HoldUntil is when withdrawals resume.
	HoldUntil time.Time
}

// RequestPasswordReset e-mails a reset link to the account with this
// address, through the outbox, and answers exactly the same way whether or
// not an account exists (nil, or Invalid for a malformed address, or
// RateLimited per IP). A new link voids the older ones.
func (s *Service) RequestPasswordReset(ctx context.Context, email string, c Client) error {
	return errResetTODO
}

// CheckResetLink validates a reset link without using it. TokenInvalid,
// TokenExpired or TokenUsed for a bad one.
func (s *Service) CheckResetLink(ctx context.Context, token string) (ResetLink, error) {
	return ResetLink{}, errResetTODO
}

// StartResetFactor starts the challenge of one of the account's factors
// for a reset (a WebAuthn request, or an SMS code sent), as
// StartSecondFactor does for a sign-in.
func (s *Service) StartResetFactor(ctx context.Context, token, factor string, c Client) (any, error) {
	return nil, errResetTODO
}

// ResetPassword sets a new password with a reset link. When the account
// has a second factor, factor and response must verify one of them (a
// backup code counts) before anything changes. On success: the link and
// every other reset link are used up, every session is revoked, the
// security-change hold starts, and the owner is e-mailed.
func (s *Service) ResetPassword(ctx context.Context, token, newPassword, factor, response string, c Client) (ResetDone, error) {
	return ResetDone{}, errResetTODO
}

// ResetLinkAccount returns the account of a valid, unused reset link
// without using it (a recovery case opened by someone who lost both the
// password and the second factor proves the e-mail address this way).
func (s *Service) ResetLinkAccount(ctx context.Context, token string) (store.Account, error) {
	return store.Account{}, errResetTODO
}

// PendingSecondFactorAccount returns the account of a pending sign-in that
// passed the password and waits for its second factor (a recovery case
// opened from the second-factor prompt proves the password this way).
// TokenInvalid otherwise.
func (s *Service) PendingSecondFactorAccount(ctx context.Context, pendingToken string) (store.Account, error) {
	return store.Account{}, errResetTODO
}

// OnSignedIn registers fn to be called after a sign-in completed with a
// second factor or a passkey, with the factor's name ("totp", "webauthn",
// "sms", "backup_code", "passkey"). internal/recovery cancels a pending
// recovery case this way: the owner evidently still has the factor.
// Register hooks before serving requests.
func (s *Service) OnSignedIn(fn func(ctx context.Context, accountID, factor string)) {}

// RevokeAllSessions revokes every session of the account (staff action or
// completed recovery) and records it with actor.
func (s *Service) RevokeAllSessions(ctx context.Context, accountID, actor string) (int, error) {
	return 0, errResetTODO
}

// DropSessions forgets this node's cached sessions of the account, after
// another service revoked them in its own transaction.
func (s *Service) DropSessions(accountID string) {}

// GetUser returns an account by ID (NotFound if unknown).
func (s *Service) GetUser(ctx context.Context, accountID string) (store.Account, error) {
	return store.Account{}, errResetTODO
}

// AuditTrail returns the account's audit events, newest first (at most
// limit, 0 meaning 200), for staff.
func (s *Service) AuditTrail(ctx context.Context, accountID string, limit int) ([]store.AuditEvent, error) {
	return nil, errResetTODO
}
