package store

import (
	"context"
	"time"
)

// MFAQueries are the reads and writes of the second factors
// (internal/mfa): authenticator apps, backup codes, SMS, security keys and
// passkeys, WebAuthn ceremonies and per-account 2FA settings. Queries embeds
// it; the conventions of this package apply. Every record but a ceremony
// belongs to an account that must exist when the write commits.
type MFAQueries interface {
	// Authenticator apps (TOTP). At most one per account: the account ID is
	// the key (so, for the UpdateX methods keyed by account, it is the ID fn
	// may not change).

	// CreateTOTP inserts c. Returns ErrAlreadyExists if the account has one
	// (pending or confirmed).
	CreateTOTP(ctx context.Context, c TOTPCredential) error
	// GetTOTP returns ErrNotFound if the account has none.
	GetTOTP(ctx context.Context, accountID string) (TOTPCredential, error)
	// UpdateTOTP atomically applies fn. This is where replay protection
	// lives: fn refuses a time step at or below LastUsedStep and raises it,
	// and because updaters of one row are serialised, of any number of
	// concurrent requests with the same code exactly one succeeds (the
	// conformance suite attacks this with concurrent updaters).
	UpdateTOTP(ctx context.Context, accountID string, fn func(c *TOTPCredential) error) (TOTPCredential, error)
	// DeleteTOTP returns ErrNotFound if the account has none.
	DeleteTOTP(ctx context.Context, accountID string) error

	// Backup codes. Unique on (account, hash).

	// ReplaceBackupCodes deletes every backup code of the account, used or
	// not, and inserts codes, atomically: the old set stops working at the
	// moment the new one exists. Empty codes just deletes. Each code is
	// stored for accountID, whatever its AccountID field says. Two codes
	// with the same hash return ErrAlreadyExists and change nothing.
	ReplaceBackupCodes(ctx context.Context, accountID string, codes []BackupCode) error
	// SpendBackupCode sets UsedAt = at on the account's code with this hash
	// if it is unused. Of concurrent callers with the same code exactly one
	// succeeds; the others get ErrTokenUsed. Returns ErrNotFound if
	// the account has no code with this hash.
	SpendBackupCode(ctx context.Context, accountID string, hash []byte, at time.Time) error
	// CountBackupCodes returns how many unused codes the account has.
	CountBackupCodes(ctx context.Context, accountID string) (int, error)

	// SMS. At most one phone per account, and at most one outstanding code.

	// CreateSMSPhone inserts p. ErrAlreadyExists if the account has one.
	CreateSMSPhone(ctx context.Context, p SMSPhone) error
	// GetSMSPhone returns ErrNotFound if the account has none.
	GetSMSPhone(ctx context.Context, accountID string) (SMSPhone, error)
	// UpdateSMSPhone atomically applies fn.
	UpdateSMSPhone(ctx context.Context, accountID string, fn func(p *SMSPhone) error) (SMSPhone, error)
	// DeleteSMSPhone returns ErrNotFound if the account has none. It also
	// deletes the account's outstanding SMS code.
	DeleteSMSPhone(ctx context.Context, accountID string) error
	// PutSMSCode inserts c, replacing the account's previous code if any (a
	// new code voids the old one).
	PutSMSCode(ctx context.Context, c SMSCode) error
	// UpdateSMSCode atomically applies fn to the account's code; ErrNotFound
	// if there is none. Verification counts attempts and spends the code
	// through it, so concurrent guesses are serialised.
	UpdateSMSCode(ctx context.Context, accountID string, fn func(c *SMSCode) error) (SMSCode, error)

	// Security keys and passkeys (WebAuthn).

	// CreateWebAuthnCredential inserts c. ErrAlreadyExists if ID or
	// CredentialID is taken (a credential belongs to one account only).
	CreateWebAuthnCredential(ctx context.Context, c WebAuthnCredential) error
	// ListWebAuthnCredentials returns the account's credentials, oldest
	// first (CreatedAt, then ID).
	ListWebAuthnCredentials(ctx context.Context, accountID string) ([]WebAuthnCredential, error)
	// GetWebAuthnCredentialByCredentialID looks up by the authenticator's
	// credential ID, exactly; ErrNotFound if unknown.
	GetWebAuthnCredentialByCredentialID(ctx context.Context, credentialID []byte) (WebAuthnCredential, error)
	// UpdateWebAuthnCredential atomically applies fn (the sign counter is
	// checked and raised in fn, so two assertions cannot both pass with the
	// same counter).
	UpdateWebAuthnCredential(ctx context.Context, id string, fn func(c *WebAuthnCredential) error) (WebAuthnCredential, error)
	// DeleteWebAuthnCredential deletes the account's credential id;
	// ErrNotFound if there is none or it belongs to another account.
	DeleteWebAuthnCredential(ctx context.Context, accountID, id string) error

	// WebAuthn ceremonies in progress (server-side session data).

	// CreateWebAuthnCeremony inserts c. ErrAlreadyExists on a duplicate ID.
	CreateWebAuthnCeremony(ctx context.Context, c WebAuthnCeremony) error
	// TakeWebAuthnCeremony deletes the ceremony and returns it: a ceremony
	// is finished at most once. Of concurrent callers exactly one gets it,
	// the others ErrNotFound. Expired ceremonies are returned too; the
	// caller checks ExpiresAt.
	TakeWebAuthnCeremony(ctx context.Context, id string) (WebAuthnCeremony, error)
	// DeleteExpiredWebAuthnCeremonies removes ceremonies whose ExpiresAt is
	// before now and returns how many. A ceremony without an expiry counts as
	// expired.
	DeleteExpiredWebAuthnCeremonies(ctx context.Context, now time.Time) (int, error)

	// Per-account settings.

	// GetMFASettings returns ErrNotFound when the account never saved any
	// (the defaults apply).
	GetMFASettings(ctx context.Context, accountID string) (MFASettings, error)
	// UpdateMFASettings atomically applies fn, starting from a zero
	// MFASettings{AccountID: accountID} when the account has none (insert
	// or update; when fn fails, no row is left behind). Inside InTx it also
	// serialises factor changes of one account: internal/mfa updates the
	// settings row first (FactorsChangedAt) and holds its lock until commit
	// while it counts and adds or removes factors, so two concurrent
	// requests cannot both add the fifth key or both remove "one of two"
	// factors.
	UpdateMFASettings(ctx context.Context, accountID string, fn func(s *MFASettings) error) (MFASettings, error)
}

// TOTPCredential is an account's authenticator app.
type TOTPCredential struct {
	AccountID string
	// Secret is the seed sealed with secrets.Box, context "totp:"+AccountID.
	Secret []byte
	// ConfirmedAt is zero while enrolment waits for the first valid code;
	// a pending credential is not a second factor.
	ConfirmedAt time.Time
	// LastUsedStep is the highest RFC 6238 time step accepted (0: none). A
	// step at or below it is refused: each code works once.
	LastUsedStep int64
	CreatedAt    time.Time
	LastUsedAt   time.Time
}

// BackupCode is one single-use backup code; only its keyed hash is kept.
type BackupCode struct {
	AccountID string
	// Hash is backup.Hash(key, normalised code): HMAC-SHA256.
	Hash      []byte
	CreatedAt time.Time
	UsedAt    time.Time
}

// SMSPhone is the phone an account receives codes on.
type SMSPhone struct {
	AccountID string
	// Number is E.164 ("+442079460958").
	Number string
	// VerifiedAt is zero until the owner typed a code sent to it; an
	// unverified phone is not a second factor.
	VerifiedAt time.Time
	CreatedAt  time.Time
	LastUsedAt time.Time
}

// SMS code purposes: a code sent to confirm a new number cannot complete a
// sign-in, and the reverse.
const (
	SMSPurposeEnrol  = "enrol"
	SMSPurposeVerify = "verify"
)

// SMSCode is the account's outstanding SMS code.
type SMSCode struct {
	AccountID string
	Purpose   string
	// Number the code was sent to.
	Number string
	// CodeHash is the keyed hash of the code.
	CodeHash []byte
	// Attempts counts wrong guesses; at the limit the code is void.
	Attempts  int
	CreatedAt time.Time
	ExpiresAt time.Time
	// UsedAt is set when the code was accepted (single use).
	UsedAt time.Time
}

// WebAuthnCredential is a registered security key or passkey.
type WebAuthnCredential struct {
	// ID is moat's identifier for it (URLs, forms); random.
	ID        string
	AccountID string
	// CredentialID is the authenticator's credential ID. Unique.
	CredentialID []byte
	// Name is the owner's label ("YubiKey on my keyring").
	Name string
	// PublicKey is the COSE_Key.
	PublicKey         []byte
	AttestationType   string
	AttestationFormat string
	AAGUID            []byte
	// Transports is a comma-separated list ("usb,nfc").
	Transports string
	// SignCount is the authenticator's signature counter as last seen
	// (0..2^32-1).
	SignCount      int64
	UserVerified   bool
	BackupEligible bool
	BackupState    bool
	// Attachment is "platform", "cross-platform" or empty.
	Attachment string
	// Discoverable: a passkey, usable for passwordless sign-in.
	Discoverable bool
	CreatedAt    time.Time
	LastUsedAt   time.Time
}

// WebAuthn ceremony kinds.
const (
	CeremonyRegister = "register"
	CeremonyLogin    = "login"
	CeremonyPasskey  = "passkey"
)

// WebAuthnCeremony is a WebAuthn ceremony between its begin and finish
// requests.
type WebAuthnCeremony struct {
	// ID is random (16 bytes, base64url); the client sends it back.
	ID string
	// AccountID is empty for a passwordless sign-in (the account is not
	// known until the passkey answers).
	AccountID string
	Kind      string
	// Data is the relying party's state (JSON, no secrets: the challenge
	// only proves freshness).
	Data      []byte
	CreatedAt time.Time
	ExpiresAt time.Time
}

// MFASettings are an account's second-factor choices.
type MFASettings struct {
	AccountID string
	// Whether a second factor is required for each function (when the
	// account has one). See Settings for the defaults.
	SignIn  bool
	Funding bool
	Trading bool
	// UpdatedAt is zero until the owner saves settings; until then the
	// defaults apply.
	UpdatedAt time.Time
	// FactorsChangedAt is when a factor was last added or removed.
	FactorsChangedAt time.Time
}
