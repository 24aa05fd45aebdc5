package store

import (
	"context"
	"time"
)

// APIKeyQueries are the reads and writes of API keys (internal/apikey) and
// of the built-in sandbox exchange's per-account books (internal/sandbox).
// Queries embeds it; the conventions of this package apply.
type APIKeyQueries interface {
	// CreateAPIKey inserts k. Returns ErrAlreadyExists if the ID or the
	// public key is taken.
	CreateAPIKey(ctx context.Context, k APIKey) error
	// GetAPIKey returns ErrNotFound if there is no key with that ID
	// (deleted keys are returned: they stay for the audit trail).
	GetAPIKey(ctx context.Context, id string) (APIKey, error)
	// GetAPIKeyByPublicKey is the hot path of every signed API call: one
	// lookup in the unique public-key index. It returns deleted keys too;
	// the caller decides.
	GetAPIKeyByPublicKey(ctx context.Context, publicKey string) (APIKey, error)
	// ListAPIKeys returns the account's keys that are not deleted, newest
	// (by CreatedAt) first.
	ListAPIKeys(ctx context.Context, accountID string) ([]APIKey, error)
	// UpdateAPIKey atomically applies fn. Changing PublicKey to one that is
	// taken returns ErrAlreadyExists.
	UpdateAPIKey(ctx context.Context, id string, fn func(k *APIKey) error) (APIKey, error)
	// TouchAPIKey records use: LastUsedAt = at and LastUsedIP = ip, but only
	// when at is after the stored LastUsedAt (nodes report use late and out
	// of order; the newest report wins). Returns ErrNotFound for an unknown
	// key; a report that is not newer is not an error.
	TouchAPIKey(ctx context.Context, id string, at time.Time, ip string) error

	// GetSandboxBook returns the account's sandbox book (an opaque document
	// internal/sandbox encodes), or ErrNotFound if it has none yet.
	GetSandboxBook(ctx context.Context, accountID string) ([]byte, error)
	// UpdateSandboxBook atomically replaces the account's book with what fn
	// returns, creating it if needed; old is nil when the account has no
	// book yet. Concurrent updaters of one account are serialised, so fn
	// always sees the latest committed book; fn may be called more than once
	// (when a concurrent updater created the book first), so it must only
	// compute. If fn returns an error nothing is written and the error is
	// returned unchanged. The account must exist when the write commits.
	UpdateSandboxBook(ctx context.Context, accountID string, fn func(old []byte) ([]byte, error)) error
}

// APIKey is an API key for bots and trading tools (internal/apikey.Key is
// its domain form). The secret is never stored in plain text: SecretSealed
// is its AES-GCM ciphertext (secrets.Box) bound to the key's ID.
type APIKey struct {
	ID        string
	AccountID string
	Name      string
	// PublicKey is the API-Key header value. Unique.
	PublicKey    string
	SecretSealed []byte
	// Permissions are comma-separated slugs ("query-funds,export-data").
	Permissions string
	// AllowedIPs are comma-separated addresses and CIDR ranges; empty means
	// any address.
	AllowedIPs string
	// ExpiresAt is zero for a key that does not expire.
	ExpiresAt time.Time
	// NonceWindow: 0 means strictly increasing nonces.
	NonceWindow int64
	// PasswordHash is the keyed hash of the key password (the otp field);
	// nil when the key has none.
	PasswordHash []byte
	QueryStart   time.Time
	QueryEnd     time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
	LastUsedAt   time.Time
	LastUsedIP   string
	// RotatedAt is when the secret was last replaced; until
	// OldSecretValidUntil the previous secret (OldSecretSealed) still works.
	RotatedAt           time.Time
	OldSecretSealed     []byte
	OldSecretValidUntil time.Time
	// DeletedAt is set when the key was deleted or revoked; the row stays.
	DeletedAt time.Time
}
