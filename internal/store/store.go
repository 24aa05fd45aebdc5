// Package store is moat's persistence contract: plain record types, one
// interface, and sentinel errors. It holds no SQL. internal/store/sqlite and
// internal/store/postgres implement it, and internal/store/storetest is the
// one conformance suite both must pass.
//
// Conventions every implementation follows:
//   - A zero time.Time means "not set" and is stored as NULL; times come back
//     in UTC with at least microsecond precision.
//   - A nil or empty string/byte slice is stored as NULL or empty and comes
//     back as its zero value.
//   - Methods return ErrNotFound / ErrAlreadyExists (checked with errors.Is)
//     for those conditions, and never a driver error for them.
//   - UpdateX(ctx, id, fn) reads the record, calls fn on a copy, and writes
//     the result in one transaction: concurrent updaters are serialised, so fn
//     always sees the latest committed state. If fn returns an error nothing
//     is written and that error is returned unchanged. fn may not change the
//     record's ID (that is an error).
//   - Tokens, sessions, devices and pending sign-ins belong to an account
//     that must exist when the write commits (inside InTx the account may be
//     created after them).
//   - Inside InTx, ErrNotFound and ErrAlreadyExists are answers, not
//     failures: the transaction stays usable and may still commit.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors.
var (
	ErrNotFound      = errors.New("store: not found")
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrTokenUsed and ErrTokenExpired are returned by ConsumeToken.
	ErrTokenUsed    = errors.New("store: token already used")
	ErrTokenExpired = errors.New("store: token expired")
)

// Store is a database holding all of moat's durable state.
type Store interface {
	Queries
	// InTx runs fn inside one transaction: all of its writes commit together
	// or none do. Calls on tx made by fn are part of the transaction
	// (including UpdateX calls). If fn returns an error the transaction rolls
	// back and the error is returned unchanged; a panic rolls back too.
	// fn must make its calls on tx, not on the Store: on SQLite the
	// transaction holds the only writer, so a write through the Store would
	// wait for fn forever.
	InTx(ctx context.Context, fn func(tx Queries) error) error
	// Ping reports whether the database answers (for /readyz).
	Ping(ctx context.Context) error
	Close() error
}

// Queries is every read and write moat makes. Store implements it outside
// a transaction; InTx passes one bound to a transaction.
type Queries interface {
	// Accounts.

	// CreateAccount inserts a. Returns ErrAlreadyExists if the ID or the
	// (normalised) e-mail is taken.
	CreateAccount(ctx context.Context, a Account) error
	// GetAccount returns ErrNotFound if there is no account with that ID.
	GetAccount(ctx context.Context, id string) (Account, error)
	// GetAccountByEmail looks up by the normalised e-mail, exactly.
	GetAccountByEmail(ctx context.Context, email string) (Account, error)
	// UpdateAccount atomically applies fn. Changing Email to one that is
	// taken returns ErrAlreadyExists.
	UpdateAccount(ctx context.Context, id string, fn func(a *Account) error) (Account, error)
	// ListAccounts returns accounts ordered by e-mail, filtered by a
	// case-insensitive substring of the e-mail when EmailContains is set.
	ListAccounts(ctx context.Context, opt ListAccountsOptions) ([]Account, error)

	// One-time tokens (e-mail links and codes).

	// CreateToken inserts t. Returns ErrAlreadyExists on a duplicate hash.
	CreateToken(ctx context.Context, t Token) error
	// ConsumeToken atomically marks the token with this kind and hash used
	// at now and returns it. Exactly one of any number of concurrent callers
	// succeeds. Returns ErrNotFound (unknown hash or other kind),
	// ErrTokenUsed, or ErrTokenExpired (now >= ExpiresAt).
	ConsumeToken(ctx context.Context, kind TokenKind, hash []byte, now time.Time) (Token, error)
	// GetToken returns the token with this kind and hash as stored, used or
	// expired alike, without changing it (a form checks a link before it
	// asks for more; ConsumeToken still decides). ErrNotFound for an
	// unknown hash or another kind.
	GetToken(ctx context.Context, kind TokenKind, hash []byte) (Token, error)
	// DeleteTokens removes every unused token of that kind for the account
	// (a newer link voids older ones; a password change voids reset links).
	DeleteTokens(ctx context.Context, accountID string, kind TokenKind) error

	// Sessions.

	CreateSession(ctx context.Context, s Session) error
	// GetSessionByTokenHash is the hot path of every authenticated request:
	// one indexed lookup. It returns revoked and expired sessions too; the
	// caller decides.
	GetSessionByTokenHash(ctx context.Context, hash []byte) (Session, error)
	// TouchSession records activity: LastSeenAt and IP.
	TouchSession(ctx context.Context, id string, lastSeen time.Time, ip string) error
	// UpdateSession atomically applies fn.
	UpdateSession(ctx context.Context, id string, fn func(s *Session) error) (Session, error)
	// ListSessions returns the account's sessions that are not revoked and
	// whose ExpiresAt is after now, newest first.
	ListSessions(ctx context.Context, accountID string, now time.Time) ([]Session, error)
	// RevokeSession sets RevokedAt on one session of the account. Returns
	// ErrNotFound if the session does not exist, belongs to another account,
	// or is already revoked.
	RevokeSession(ctx context.Context, accountID, id string, at time.Time) error
	// RevokeSessions revokes every unrevoked session of the account except
	// exceptID (which may be empty) and returns how many it revoked.
	RevokeSessions(ctx context.Context, accountID, exceptID string, at time.Time) (int, error)

	// Devices (a browser or app that has signed in before).

	CreateDevice(ctx context.Context, d Device) error
	// GetDeviceByTokenHash finds the account's device by its cookie/token
	// hash; ErrNotFound if the account has no such device.
	GetDeviceByTokenHash(ctx context.Context, accountID string, hash []byte) (Device, error)
	GetDevice(ctx context.Context, id string) (Device, error)
	UpdateDevice(ctx context.Context, id string, fn func(d *Device) error) (Device, error)
	// ListDevices returns the account's devices, most recently seen first.
	ListDevices(ctx context.Context, accountID string) ([]Device, error)

	// Pending sign-ins (the sign-in state machine between factors).

	CreatePendingSignIn(ctx context.Context, p PendingSignIn) error
	// GetPendingSignIn looks up by token hash; ErrNotFound if unknown.
	GetPendingSignIn(ctx context.Context, tokenHash []byte) (PendingSignIn, error)
	UpdatePendingSignIn(ctx context.Context, id string, fn func(p *PendingSignIn) error) (PendingSignIn, error)
	// DeleteExpiredPendingSignIns removes pending sign-ins whose ExpiresAt is
	// before now; returns how many.
	DeleteExpiredPendingSignIns(ctx context.Context, now time.Time) (int, error)

	// Audit log (append-only, hash-chained).

	// AppendAudit appends one event. The store serialises appends: it locks
	// the chain, passes the last event (zero AuditEvent when the log is
	// empty) to build, assigns Seq = last.Seq+1 itself, and inserts what
	// build returns. build computes the hashes (internal/audit). Stores keep
	// microseconds, so build must return a Time truncated to the microsecond
	// (else AppendAudit fails: the stored event would not match its hash).
	// Appends are serialised until commit, so inside InTx append last.
	AppendAudit(ctx context.Context, build func(last AuditEvent) (AuditEvent, error)) (AuditEvent, error)
	// ListAudit returns events matching f, ascending by Seq unless f.Desc.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)

	// Outbox (messages written in the same transaction as their event,
	// delivered later by a worker).

	// EnqueueOutbox stores m. A zero NextAttemptAt is stored as CreatedAt:
	// the message is due at once.
	EnqueueOutbox(ctx context.Context, m OutboxMessage) error
	// ClaimOutbox returns up to limit unsent messages with NextAttemptAt <=
	// now, oldest first, and pushes their NextAttemptAt to now+lease so that
	// no other worker (on any node) claims them meanwhile. limit <= 0 claims
	// nothing.
	ClaimOutbox(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]OutboxMessage, error)
	// MarkOutboxSent records delivery.
	MarkOutboxSent(ctx context.Context, id string, at time.Time) error
	// MarkOutboxFailed records a failed attempt: Attempts+1, LastError,
	// NextAttemptAt = next (zero next means give up: the message stays
	// unsent and is never claimed again).
	MarkOutboxFailed(ctx context.Context, id string, errText string, next time.Time) error
	// ListOutbox returns the newest messages of a channel, newest first
	// (the development mailbox reads e-mail this way). limit <= 0 means 100.
	ListOutbox(ctx context.Context, channel string, limit int) ([]OutboxMessage, error)
	// DeleteOutboxBefore deletes the finished messages (sent, or given up
	// on) created before before, and returns how many; messages still
	// waiting for a retry stay. Old e-mails are kept no longer than needed.
	DeleteOutboxBefore(ctx context.Context, before time.Time) (int, error)

	// API keys and sandbox books (apikey.go).
	APIKeyQueries
	MFAQueries      // second factors (mfa.go)
	RecoveryQueries // account recovery cases (recovery.go)
}

// Role of an account.
type Role string

const (
	RoleUser    Role = "user"
	RoleSupport Role = "support"
	RoleAdmin   Role = "admin"
)

// Account is a person's account.
type Account struct {
	ID string
	// Email is normalised: trimmed and case-folded. Unique.
	Email string
	// PasswordHash is a PHC-format string ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
	PasswordHash string
	Role         Role
	// EmailConfirmedAt is zero until the owner follows the confirmation link.
	EmailConfirmedAt time.Time
	// LockedAt is set when the owner (secure-account link) or staff locked
	// the account; it stays locked until unlocked. LockReason says why.
	LockedAt   time.Time
	LockReason string
	// AntiPhishingCode is the owner's phrase shown in every e-mail; empty
	// until set.
	AntiPhishingCode  string
	PasswordChangedAt time.Time
	// SecurityHoldUntil: withdrawals pause until then after a security change.
	SecurityHoldUntil time.Time
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// ListAccountsOptions filters and pages ListAccounts.
type ListAccountsOptions struct {
	EmailContains string
	// AfterEmail pages: only accounts whose e-mail sorts after it.
	AfterEmail string
	Limit      int // 0 means 100
}

// TokenKind says what a one-time token is for.
type TokenKind string

const (
	TokenEmailConfirm   TokenKind = "email_confirm"
	TokenDeviceApproval TokenKind = "device_approval" // link in the new-device e-mail
	TokenSecureAccount  TokenKind = "secure_account"  // "this wasn't me" link
	TokenPasswordReset  TokenKind = "password_reset"
	// TokenRecoveryCancel is the "this wasn't me, cancel" link of the
	// recovery e-mails; Subject is the case ID.
	TokenRecoveryCancel TokenKind = "recovery_cancel"
)

// Token is a one-time token; only its hash is stored.
type Token struct {
	Hash      []byte
	Kind      TokenKind
	AccountID string
	// Subject ties the token to something else, e.g. the pending sign-in a
	// device-approval link completes.
	Subject   string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time
}

// Session is a signed-in browser or app. Only the token's hash is stored.
type Session struct {
	ID        string
	TokenHash []byte
	AccountID string
	DeviceID  string
	// Client is "web" (cookie) or "api" (bearer token).
	Client     string
	IP         string
	UserAgent  string
	CreatedAt  time.Time
	LastSeenAt time.Time
	// ExpiresAt is the absolute timeout; the idle timeout is counted from
	// LastSeenAt.
	ExpiresAt time.Time
	// SecondFactorAt is when a second factor was last verified in this
	// session (sign-in or step-up); zero if never.
	SecondFactorAt time.Time
	// SignInFactor is the factor that completed the sign-in: "webauthn",
	// "totp", "sms", "backup_code", "passkey" (passwordless), or "" (password
	// only). The support console opens only for "webauthn" and "passkey".
	SignInFactor string
	RevokedAt    time.Time
}

// Device is a browser or app that signed in to an account. The client keeps
// a random device token (a long-lived cookie or the app's storage); the store
// keeps its hash.
type Device struct {
	ID        string
	AccountID string
	TokenHash []byte
	// Name describes it for people, e.g. "Firefox on Linux".
	Name      string
	LastIP    string
	CreatedAt time.Time
	// ApprovedAt is set once the owner approved it (e-mail code or link) or
	// approval was not required.
	ApprovedAt time.Time
	LastSeenAt time.Time
}

// SignInState is where a pending sign-in stands.
type SignInState string

const (
	// StateDeviceApproval: password verified on an unknown device; waiting
	// for the e-mailed code or link.
	StateDeviceApproval SignInState = "device_approval"
	// StateSecondFactor: waiting for a second factor.
	StateSecondFactor SignInState = "second_factor"
	// StateDone: a session was issued; the pending sign-in cannot be used
	// again.
	StateDone SignInState = "done"
)

// PendingSignIn carries a sign-in between its steps. The client holds a
// random token; the store keeps its hash.
type PendingSignIn struct {
	ID        string
	TokenHash []byte
	AccountID string
	State     SignInState
	// DeviceID is the device the sign-in is happening on (created, not yet
	// approved, when it is new).
	DeviceID string
	// NewDevice records that the device was unknown when the sign-in began.
	NewDevice bool
	// CodeHash is the keyed hash of the e-mailed device-approval code.
	CodeHash []byte
	// Attempts counts wrong codes; too many void the pending sign-in.
	Attempts int
	// Client is "web" or "api"; IP and UserAgent as at the password step.
	Client    string
	IP        string
	UserAgent string
	// FactorAt is when the second factor was verified (zero until then).
	FactorAt  time.Time
	CreatedAt time.Time
	ExpiresAt time.Time
}

// AuditEvent is one entry in the hash-chained audit log.
type AuditEvent struct {
	Seq  int64
	Time time.Time
	// Type is a dotted name, e.g. "signin.success", "session.revoked".
	Type string
	// AccountID is the account the event is about (may be empty).
	AccountID string
	// ActorID is who did it when that is not the account owner (staff, CLI).
	ActorID   string
	IP        string
	UserAgent string
	DeviceID  string
	// Data is a JSON object with event details; never secrets.
	Data     string
	PrevHash []byte
	Hash     []byte
}

// AuditFilter selects audit events.
type AuditFilter struct {
	AccountID string
	Types     []string // any of these; empty means all
	AfterSeq  int64    // only Seq > AfterSeq (ascending pages)
	Desc      bool     // newest first
	Limit     int      // 0 means no limit
}

// OutboxMessage is a message waiting to be (or already) delivered.
type OutboxMessage struct {
	ID string
	// Channel is "email" or "sms".
	Channel       string
	To            string
	Subject       string
	Body          string
	CreatedAt     time.Time
	Attempts      int
	NextAttemptAt time.Time
	SentAt        time.Time
	LastError     string
}
