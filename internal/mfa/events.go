package mfa

import (
	"context"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/store"
)

// Event types the service records.
const (
	EventTOTPAdded         = "mfa.totp.added"
	EventTOTPRemoved       = "mfa.totp.removed"
	EventKeyAdded          = "mfa.webauthn.added"
	EventKeyRemoved        = "mfa.webauthn.removed"
	EventKeyRenamed        = "mfa.webauthn.renamed"
	EventSignCountRegress  = "mfa.webauthn.sign_count_regression"
	EventPhoneAdded        = "mfa.sms.added"
	EventPhoneRemoved      = "mfa.sms.removed"
	EventBackupGenerated   = "mfa.backup_codes.generated"
	EventBackupCodeUsed    = "mfa.backup_codes.used"
	EventSettingsChanged   = "mfa.settings.changed"
	EventStepUp            = "mfa.step_up"
	EventCodesThrottled    = "mfa.codes.throttled"
	EventLastFactorRemoved = "mfa.last_factor_removed"
)

// Event is a factor change or a security signal, for the audit log and,
// when Notify is set, an e-mail to the owner.
type Event struct {
	Type      string
	AccountID string
	// Client is who made the change (IP, user agent); zero for signals the
	// service raises itself.
	Client account.Client
	// Data are details for the audit log: method, key name, masked phone,
	// counts. Never a secret or a code.
	Data map[string]any
	// Notify asks for an e-mail to the owner.
	Notify bool
	// Summary is one sentence for the e-mail, e.g. "A security key named
	// “YubiKey” was added to your account."
	Summary string
	// LastFactorRemoved: the account has no second factor left after this
	// change; the e-mail must say so plainly and say how to add one.
	LastFactorRemoved bool
}

// Recorder writes events. It is called inside the transaction of the change
// with that transaction's store.Queries, so the audit entry and the outbox
// e-mail commit with the change or not at all. In the server it is a small
// adapter over audit.Log.Append and notify.Mailer.Enqueue that also starts
// the account's security-change hold for factor changes.
type Recorder interface {
	Record(ctx context.Context, q store.Queries, ev Event) error
}
