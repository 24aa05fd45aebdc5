// Package account is the sign-up, sign-in, session and device service: the
// capability every other one stands on. Adapters (web pages, JSON API, CLI)
// call it and nothing underneath it.
//
// The sign-in flow is a small state machine held in a store.PendingSignIn:
//
//	password verified ──► [device approval] ──► [second factor] ──► session issued
//
// Each bracketed step is skipped when it does not apply. Second factors plug
// in through the Factor interface (internal/mfa adds TOTP, WebAuthn, SMS and
// backup codes); the flow itself does not change when a factor is added.
package account

import (
	"context"
	"errors"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

var errNotImplemented = errors.New("account: not implemented")

// Client is what the service knows about the requester. Adapters fill it
// from the request.
type Client struct {
	// IP is the client address as decided by the trusted-proxy setting.
	IP string
	// UserAgent as sent.
	UserAgent string
	// DeviceToken is the long-lived device cookie (web) or the app's device
	// token header (api); empty when the client has none yet.
	DeviceToken string
	// Kind is "web" or "api".
	Kind string
}

// Factor is a second factor that can complete a pending sign-in. The mfa
// package registers its factors with Service.RegisterFactor.
type Factor interface {
	// Name is the stable method name used by the API and forms: "webauthn",
	// "totp", "sms", "backup_code".
	Name() string
	// Enrolled reports whether the account has this factor set up.
	Enrolled(ctx context.Context, accountID string) (bool, error)
	// Verify checks response for the account; it must be atomic against
	// replay. It returns an *apperr.Error for a wrong/reused/expired answer.
	Verify(ctx context.Context, accountID, response string) error
}

// Step tells the adapter what to do next after a sign-in call.
type Step string

const (
	// StepDone: Session is set; sign-in is complete.
	StepDone Step = "done"
	// StepDeviceApproval: an e-mail with a code and a link went to the
	// owner; call ApproveDevice with PendingToken and the code.
	StepDeviceApproval Step = "device_approval"
	// StepSecondFactor: call VerifySecondFactor with PendingToken and one of
	// Factors.
	StepSecondFactor Step = "second_factor"
)

// SignInResult is the outcome of a sign-in step.
type SignInResult struct {
	Step Step
	// PendingToken identifies the pending sign-in (cookie or JSON field);
	// set unless Step is StepDone.
	PendingToken string
	// Factors lists the enrolled second factors in preference order
	// (StepSecondFactor only).
	Factors []string
	// Session is set when Step is StepDone.
	Session *IssuedSession
}

// IssuedSession is a new session: the token is given to the client once and
// never stored.
type IssuedSession struct {
	Token string
	// DeviceToken is the (possibly new) device token the client must keep.
	DeviceToken string
	Session     store.Session
	// NewDevice is true when this sign-in came from a device the account had
	// not used before.
	NewDevice bool
}

// Principal is an authenticated request's identity.
type Principal struct {
	Account store.Account
	Session store.Session
}

// Activity is one entry of the recent-activity list.
type Activity struct {
	Time      time.Time
	Type      string // audit event type, e.g. "signin.success"
	IP        string
	Device    string // device name (browser/OS) or user agent summary
	DeviceID  string
	NewDevice bool
}

// DeviceView is a device as shown to its owner.
type DeviceView struct {
	store.Device
	Current bool
}

// SessionView is a session as shown to its owner.
type SessionView struct {
	store.Session
	DeviceName string
	Current    bool
}

// Service implements the account capability.
type Service struct{}

// SignUp registers email with password and e-mails a confirmation link. To
// resist enumeration it returns nil for an address that already has an
// account (and e-mails that owner instead). Returns WeakPassword or Invalid
// for unacceptable input.
func (s *Service) SignUp(ctx context.Context, email, password string, c Client) error {
	return errNotImplemented
}

// ResendConfirmation e-mails a new confirmation link (voiding older ones) if
// the address has an unconfirmed account; the answer is the same either way.
func (s *Service) ResendConfirmation(ctx context.Context, email string, c Client) error {
	return errNotImplemented
}

// ConfirmEmail activates the account of a confirmation token. Returns
// TokenInvalid, TokenExpired or TokenUsed.
func (s *Service) ConfirmEmail(ctx context.Context, token string, c Client) (store.Account, error) {
	return store.Account{}, errNotImplemented
}

// SignIn verifies email and password and starts the state machine. Wrong
// e-mail or password returns BadCredential "Invalid username or password"
// either way; throttling returns RateLimited or AccountLocked with
// RetryAfter.
func (s *Service) SignIn(ctx context.Context, email, password string, c Client) (*SignInResult, error) {
	return nil, errNotImplemented
}

// ApproveDevice completes the device-approval step with the e-mailed code.
func (s *Service) ApproveDevice(ctx context.Context, pendingToken, code string, c Client) (*SignInResult, error) {
	return nil, errNotImplemented
}

// ApproveDeviceLink approves the device by the link in the e-mail. The
// sign-in itself then completes in the browser that started it (its next
// PendingStatus/ApproveDevice call sees the approval).
func (s *Service) ApproveDeviceLink(ctx context.Context, linkToken string, c Client) error {
	return errNotImplemented
}

// PendingStatus re-checks a pending sign-in (e.g. after the link was
// followed on another device) and completes it when nothing is left to do.
func (s *Service) PendingStatus(ctx context.Context, pendingToken string, c Client) (*SignInResult, error) {
	return nil, errNotImplemented
}

// VerifySecondFactor completes the second-factor step with one factor.
func (s *Service) VerifySecondFactor(ctx context.Context, pendingToken, factor, response string, c Client) (*SignInResult, error) {
	return nil, errNotImplemented
}

// RegisterFactor adds a second factor to the sign-in flow.
func (s *Service) RegisterFactor(f Factor) {}

// Authenticate checks a session token (cookie or bearer) on every request:
// idle and absolute timeouts, revocation and account lock. Returns
// Unauthorized otherwise.
func (s *Service) Authenticate(ctx context.Context, sessionToken string, c Client) (Principal, error) {
	return Principal{}, errNotImplemented
}

// SignOut revokes the session of token.
func (s *Service) SignOut(ctx context.Context, sessionToken string, c Client) error {
	return errNotImplemented
}

// Sessions lists the account's live sessions, the current one marked.
func (s *Service) Sessions(ctx context.Context, p Principal) ([]SessionView, error) {
	return nil, errNotImplemented
}

// RevokeSession revokes one of the principal's own sessions.
func (s *Service) RevokeSession(ctx context.Context, p Principal, sessionID string, c Client) error {
	return errNotImplemented
}

// RevokeOtherSessions revokes every session of the account but the current.
func (s *Service) RevokeOtherSessions(ctx context.Context, p Principal, c Client) (int, error) {
	return 0, errNotImplemented
}

// Devices lists the account's devices, the current one marked.
func (s *Service) Devices(ctx context.Context, p Principal) ([]DeviceView, error) {
	return nil, errNotImplemented
}

// RecentActivity returns the latest sign-in related events of the account.
func (s *Service) RecentActivity(ctx context.Context, p Principal, limit int) ([]Activity, error) {
	return nil, errNotImplemented
}

// SecureAccount follows the "this wasn't me" link of a new-sign-in e-mail:
// revokes every session and locks the account.
func (s *Service) SecureAccount(ctx context.Context, linkToken string, c Client) error {
	return errNotImplemented
}

// SetAntiPhishingCode sets (or clears, with "") the phrase shown in e-mails.
func (s *Service) SetAntiPhishingCode(ctx context.Context, p Principal, code string, c Client) error {
	return errNotImplemented
}

// ChangePassword replaces the password after checking the current one;
// revokes other sessions and starts the security-change hold.
func (s *Service) ChangePassword(ctx context.Context, p Principal, current, next string, c Client) error {
	return errNotImplemented
}

// Operator actions (CLI, later the support console). actor names who acts.

// CreateConfirmedUser creates an account whose e-mail is already confirmed.
func (s *Service) CreateConfirmedUser(ctx context.Context, email, password string, role store.Role, actor string) (store.Account, error) {
	return store.Account{}, errNotImplemented
}

// ListUsers lists accounts.
func (s *Service) ListUsers(ctx context.Context, opt store.ListAccountsOptions) ([]store.Account, error) {
	return nil, errNotImplemented
}

// Lock locks an account and revokes its sessions.
func (s *Service) Lock(ctx context.Context, email, reason, actor string) error {
	return errNotImplemented
}

// Unlock unlocks an account and clears throttling.
func (s *Service) Unlock(ctx context.Context, email, actor string) error {
	return errNotImplemented
}
