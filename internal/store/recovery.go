package store

import (
	"context"
	"time"
)

// RecoveryQueries are the reads and writes of account recovery
// (internal/recovery): cases opened by people who lost their second
// factor, reviewed by two staff members, then held for a waiting period
// that the owner can cancel. Queries embeds it; the conventions of this
// package apply. A case belongs to an account that must exist when the
// write commits.
type RecoveryQueries interface {
	// CreateRecoveryCase inserts c. Returns ErrAlreadyExists if the ID,
	// the Reference or the StatusTokenHash is taken.
	CreateRecoveryCase(ctx context.Context, c RecoveryCase) error
	// GetRecoveryCase returns the case with its sealed document;
	// ErrNotFound if unknown.
	GetRecoveryCase(ctx context.Context, id string) (RecoveryCase, error)
	// GetRecoveryCaseByStatusToken looks up by the hash of the status
	// link's token, exactly; ErrNotFound if unknown.
	GetRecoveryCaseByStatusToken(ctx context.Context, hash []byte) (RecoveryCase, error)
	// UpdateRecoveryCase atomically applies fn. This is where the case's
	// state machine is serialised: two staff members approving at once, a
	// cancellation racing the worker's completion — fn sees the latest
	// committed state and exactly one transition wins.
	UpdateRecoveryCase(ctx context.Context, id string, fn func(c *RecoveryCase) error) (RecoveryCase, error)
	// ListRecoveryCases returns cases matching f, newest first (CreatedAt,
	// then ID), WITHOUT their documents (Document is nil): lists are for
	// queues and status pages, and a document is fetched one at a time
	// with GetRecoveryCase.
	ListRecoveryCases(ctx context.Context, f RecoveryCaseFilter) ([]RecoveryCase, error)
}

// RecoveryState is where a recovery case stands.
type RecoveryState string

const (
	// RecoveryOpen: waiting for staff review (zero or one approval so far).
	RecoveryOpen RecoveryState = "open"
	// RecoveryWaiting: approved by two staff members; the waiting period
	// runs until WaitUntil, and the owner can still cancel.
	RecoveryWaiting RecoveryState = "waiting"
	// RecoveryCompleted: the waiting period ended; the lost factors were
	// removed.
	RecoveryCompleted RecoveryState = "completed"
	// RecoveryRejected: a staff member rejected it (RejectReason says why).
	RecoveryRejected RecoveryState = "rejected"
	// RecoveryCancelled: the owner cancelled it (link or sign-in with the
	// old factors).
	RecoveryCancelled RecoveryState = "cancelled"
)

// RecoveryCase is one request to recover an account whose second factor
// was lost.
type RecoveryCase struct {
	ID string
	// Reference is what the person and support quote ("RC-7KQ2-M9XD").
	// Unique.
	Reference string
	AccountID string
	State     RecoveryState
	// Via is how the person proved the first factor: "password" (a sign-in
	// waiting for its second factor) or "email" (a password-reset link).
	Via string
	// StatusTokenHash is the SHA-256 of the token in the person's status
	// link. Unique.
	StatusTokenHash []byte
	// Answers is a JSON object of the account-history answers.
	Answers string
	// DocumentType is the sniffed media type ("image/jpeg", "image/png",
	// "application/pdf"); DocumentSize the plain size in bytes; Document
	// the AES-GCM sealed bytes (context "recovery-document:"+ID).
	DocumentType string
	DocumentSize int64
	Document     []byte
	// IP and UserAgent of the request that opened the case.
	IP        string
	UserAgent string
	// Four-eyes review: the first and second approver must differ.
	FirstApproverID  string
	FirstApprovedAt  time.Time
	SecondApproverID string
	SecondApprovedAt time.Time
	// Rejection.
	RejectedBy   string
	RejectedAt   time.Time
	RejectReason string
	// Waiting period: starts at SecondApprovedAt, ends at WaitUntil. The
	// worker e-mails the owner when NextNoticeAt passes and moves it on.
	WaitUntil    time.Time
	NextNoticeAt time.Time
	// End states.
	CancelledAt time.Time
	// CancelledBy is "link", "signin" or a staff member's account ID.
	CancelledBy string
	CompletedAt time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// RecoveryCaseFilter selects recovery cases.
type RecoveryCaseFilter struct {
	AccountID string          // empty: every account
	States    []RecoveryState // any of these; empty means all
	Limit     int             // 0 means 100
}
