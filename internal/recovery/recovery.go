// Package recovery gets people who lost their second factor back into
// their account, slowly and in the open: a case with an identity document
// and account-history answers, reviewed by two different staff members,
// then a waiting period announced to the owner's e-mail address that the
// owner can cancel (by link, or simply by signing in with the old factor).
// Only when the period ends are the lost factors removed; the person must
// then enrol a new one at next sign-in, and withdrawals stay paused.
//
// Password reset by e-mail link lives in internal/account (reset.go): it
// is a sign-in credential change that needs the account service's hasher,
// policy, factors and session cache, and moving it here would mean
// exporting all of them.
package recovery

import (
	"time"

	"github.com/moat-dev/moat/internal/store"
)

// Defaults (DESIGN.md).
const (
	DefaultWaitingPeriod = 72 * time.Hour
	DefaultNoticeEvery   = 24 * time.Hour
	DefaultRecoveryHold  = 7 * 24 * time.Hour
	// MaxDocumentBytes is the largest identity document accepted.
	MaxDocumentBytes = 10 << 20
)

// Paths of the public pages that e-mailed and shown links open
// (internal/web serves them; the token goes in the "token" query
// parameter; each page confirms with a POST, so mail scanners that fetch
// links change nothing).
const (
	PathStatus = "/recovery/status"
	PathCancel = "/recovery/cancel"
)

// Proof is how the person opening a case proved the first factor: exactly
// one of the two is set.
type Proof struct {
	// PendingToken is a sign-in that passed the password and waits for a
	// second factor (account.Service.PendingSecondFactorAccount).
	PendingToken string
	// ResetToken is a valid, unused password-reset link for someone who
	// lost both (account.Service.ResetLinkAccount). It is not consumed.
	ResetToken string
}

// Answers are the account-history questions. Every field is free text the
// person types; AccountCreated is required, the rest optional (an honest
// owner may not remember), and each is compared with what moat knows.
type Answers struct {
	// AccountCreated is the approximate month the account was opened,
	// "YYYY-MM".
	AccountCreated string `json:"account_created"`
	// Devices: browsers or phones the person signed in with, e.g.
	// "Firefox on Linux, iPhone".
	Devices string `json:"devices,omitempty"`
	// LastDepositAmount and LastDepositAsset, e.g. "0.5" and "BTC".
	LastDepositAmount string `json:"last_deposit_amount,omitempty"`
	LastDepositAsset  string `json:"last_deposit_asset,omitempty"`
	// WithdrawalAddress is one address the person withdrew to.
	WithdrawalAddress string `json:"withdrawal_address,omitempty"`
	// APIKeyName is the name of an API key the person created.
	APIKeyName string `json:"api_key_name,omitempty"`
	// Note is anything else the person wants support to know.
	Note string `json:"note,omitempty"`
}

// Opened is what opening a case returns: the reference to quote and the
// status link's token, shown once to the person who opened it.
type Opened struct {
	Case        CaseView
	StatusToken string
}

// CaseView is a case as its owner's status page and the staff queue show
// it (never the document or the answers: Review has those, for staff).
type CaseView struct {
	ID        string
	Reference string
	AccountID string
	State     store.RecoveryState
	Via       string
	CreatedAt time.Time
	// Approvals is 0, 1 or 2.
	Approvals    int
	WaitUntil    time.Time
	RejectReason string
	CancelledAt  time.Time
	CancelledBy  string
	CompletedAt  time.Time
	// NextStep tells the owner what to do next, in one or two sentences
	// (rejected: what to try instead; waiting: when they can sign in).
	NextStep string
}

// Match is how one answer compares with the account's real history.
type Match string

const (
	MatchYes      Match = "match"
	MatchNo       Match = "mismatch"
	MatchUnknown  Match = "no_record" // moat holds nothing to compare with
	MatchNoAnswer Match = "no_answer" // the person left it blank
)

// Comparison is one answered question next to the real history.
type Comparison struct {
	Question string // "Month the account was opened"
	Answer   string
	Known    string // what moat knows, as staff may see it ("2026-03", "Firefox on Linux; Safari on iOS")
	Match    Match
}

// Review is everything staff see about one case.
type Review struct {
	Case         CaseView
	AccountEmail string
	Comparisons  []Comparison
	Note         string
	DocumentType string
	DocumentSize int64
	IP           string
	UserAgent    string
	// FirstApproverID is who approved first (so the console can say "you
	// approved this already").
	FirstApproverID string
}
