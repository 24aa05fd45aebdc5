package apikey

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/secrets"
)

// Sizes of the key material. A public key is 42 random bytes, which encode to
// 56 base64 characters like Kraken's; a secret is 64 random bytes (88
// characters), the size of an HMAC-SHA512 key block half.
const (
	PublicKeyBytes = 42
	SecretBytes    = 64
	// MaxAllowedIPs bounds an allowlist so a key record stays small.
	MaxAllowedIPs = 100
	// MaxNameLen is the longest key name, in characters.
	MaxNameLen = 64
	// MinPasswordLen is the shortest key password (the otp field).
	MinPasswordLen = 8
)

// ErrKeyNotFound is returned by key lookups when no key has that public key.
// The gateway answers it with ErrInvalidKey.
var ErrKeyNotFound = errors.New("apikey: key not found")

// Key is an API key as the store keeps it. The secret is never stored in
// plain text: SecretSealed is the AES-GCM ciphertext from SealSecret, bound
// to the key's ID.
type Key struct {
	ID        string
	AccountID string
	// Name says which application uses the key ("grid bot").
	Name string
	// PublicKey is the API-Key header value: random, unique, indexed.
	PublicKey    string
	SecretSealed []byte
	Permissions  Permissions
	// AllowedIPs restricts the client address; empty means any address.
	AllowedIPs []netip.Prefix
	// ExpiresAt: the key stops working at this time (zero: never).
	ExpiresAt time.Time
	// NonceWindow: 0 means every nonce must exceed the last one; n > 0
	// accepts a nonce up to n below the highest seen, once.
	NonceWindow uint64
	// PasswordHash is HashPassword of the key password the client sends as
	// the otp field; nil when the key has no password.
	PasswordHash []byte
	// QueryStart/QueryEnd limit the history the key may read (zero: open).
	QueryStart time.Time
	QueryEnd   time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
	LastUsedAt time.Time
	LastUsedIP string
	// RotatedAt is when the secret was last replaced. Until
	// OldSecretValidUntil the previous secret (OldSecretSealed, sealed under
	// the same ID) still signs valid requests, so a bot can be redeployed
	// without downtime.
	RotatedAt           time.Time
	OldSecretSealed     []byte
	OldSecretValidUntil time.Time
	// DeletedAt: deleted keys stay for the audit trail but never verify.
	DeletedAt time.Time
}

// Usable returns nil if the key may sign requests at now, or ErrInvalidKey
// when it is deleted or expired (a client cannot tell those from a key that
// never existed).
func (k *Key) Usable(now time.Time) error {
	if !k.DeletedAt.IsZero() || (!k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt)) {
		return ErrInvalidKey
	}
	return nil
}

// AllowsIP reports whether addr may use the key.
func (k *Key) AllowsIP(addr netip.Addr) bool { return IPAllowed(k.AllowedIPs, addr) }

// Unused reports whether the key has not been used for the given time
// (counted from creation if it never was); the UI flags such keys.
func (k *Key) Unused(now time.Time, after time.Duration) bool {
	last := k.LastUsedAt
	if last.IsZero() {
		last = k.CreatedAt
	}
	return now.Sub(last) >= after
}

// Validate checks what a person chose for the key, returning an
// *apperr.Error with the field at fault.
func (k *Key) Validate() error {
	name := strings.TrimSpace(k.Name)
	switch {
	case name == "":
		return apperr.Field(apperr.Invalid, "name", "Give the key a name, for example the application that will use it.")
	case utf8.RuneCountInString(name) > MaxNameLen:
		return apperr.Field(apperr.Invalid, "name", fmt.Sprintf("Use at most %d characters for the name.", MaxNameLen))
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return apperr.Field(apperr.Invalid, "name", "The name cannot contain control characters.")
	case k.Permissions&AllPermissionSet == 0:
		return apperr.Field(apperr.Invalid, "permissions", "Choose at least one permission.")
	case k.Permissions&^AllPermissionSet != 0:
		return apperr.Field(apperr.Invalid, "permissions", "Unknown permission.")
	case len(k.AllowedIPs) > MaxAllowedIPs:
		return apperr.Field(apperr.Invalid, "allowed_ips", fmt.Sprintf("Use at most %d addresses or ranges.", MaxAllowedIPs))
	case !k.ExpiresAt.IsZero() && !k.CreatedAt.IsZero() && !k.ExpiresAt.After(k.CreatedAt):
		return apperr.Field(apperr.Invalid, "expires_at", "The expiry must be in the future.")
	case k.NonceWindow > math.MaxInt64: // stored as a signed 64-bit column
		return apperr.Field(apperr.Invalid, "nonce_window", "The nonce window is too large.")
	case !k.QueryStart.IsZero() && !k.QueryEnd.IsZero() && !k.QueryEnd.After(k.QueryStart):
		return apperr.Field(apperr.Invalid, "query_end", "The query end must be after the query start.")
	}
	for _, p := range k.AllowedIPs {
		if !p.IsValid() || p != p.Masked() {
			return apperr.Field(apperr.Invalid, "allowed_ips", "Invalid address range.")
		}
	}
	return nil
}

// NewPublicKey returns a fresh public key: PublicKeyBytes random bytes in
// standard base64 (56 characters).
func NewPublicKey(r io.Reader) (string, error) {
	b := make([]byte, PublicKeyBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("apikey: read random: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// NewSecret returns SecretBytes random bytes. Show EncodeSecret of it to the
// owner once; keep only SealSecret of it.
func NewSecret(r io.Reader) ([]byte, error) {
	b := make([]byte, SecretBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("apikey: read random: %w", err)
	}
	return b, nil
}

// EncodeSecret is the form the owner copies: standard base64 (88 characters
// for a 64-byte secret), what Kraken clients expect.
func EncodeSecret(secret []byte) string { return base64.StdEncoding.EncodeToString(secret) }

// DecodeSecret reverses EncodeSecret.
func DecodeSecret(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.TrimSpace(s))
}

// secretContext binds a sealed secret to its key, so a ciphertext copied to
// another row does not open.
func secretContext(keyID string) string { return "apikey:" + keyID }

// SealSecret encrypts the raw secret for storage.
func SealSecret(box *secrets.Box, keyID string, secret []byte) ([]byte, error) {
	return box.Seal(secret, secretContext(keyID))
}

// OpenSecret decrypts a secret sealed by SealSecret for the same key ID.
func OpenSecret(box *secrets.Box, keyID string, sealed []byte) ([]byte, error) {
	return box.Open(sealed, secretContext(keyID))
}

// Credential is what the gateway needs to check a request: the key, its
// secret(s) decrypted, and the state of the account that owns it.
type Credential struct {
	Key Key
	// Secret is the raw (decoded) current secret.
	Secret []byte
	// OldSecret is the previous secret while its rotation grace lasts
	// (Key.OldSecretValidUntil); nil otherwise.
	OldSecret []byte
	// AccountLocked: the owning account is locked; no key of it works.
	AccountLocked bool
	// Tier names the rate-limit tier; empty means the default tier.
	Tier string
}

// OpenCredential decrypts k's secrets into a Credential. The old secret is
// opened only while its grace period lasts at now.
func OpenCredential(box *secrets.Box, k Key, accountLocked bool, now time.Time) (Credential, error) {
	c := Credential{Key: k, AccountLocked: accountLocked}
	var err error
	if c.Secret, err = OpenSecret(box, k.ID, k.SecretSealed); err != nil {
		return Credential{}, err
	}
	if len(k.OldSecretSealed) > 0 && now.Before(k.OldSecretValidUntil) {
		if c.OldSecret, err = OpenSecret(box, k.ID, k.OldSecretSealed); err != nil {
			return Credential{}, err
		}
	}
	return c, nil
}

// HashPassword returns the stored form of a key password. The password is
// checked on every signed call, so a slow password hash (argon2id) would
// make each call cost tens of milliseconds and hand attackers a cheap way to
// load the server; a keyed hash under a server-side pepper (kept outside the
// database) is fast and still useless to someone holding only a database
// dump. The key ID is mixed in so equal passwords hash differently.
func HashPassword(pepper []byte, keyID, password string) []byte {
	return secrets.KeyedHash(pepper, "apikey-password\x00"+keyID+"\x00"+password)
}

// CheckPassword compares otp with the stored hash in constant time.
func CheckPassword(pepper []byte, keyID, otp string, hash []byte) bool {
	return secrets.Equal(HashPassword(pepper, keyID, otp), hash)
}

// ValidatePassword checks a key password chosen by its owner.
func ValidatePassword(pw string) error {
	n := utf8.RuneCountInString(pw)
	switch {
	case n < MinPasswordLen:
		return apperr.Field(apperr.Invalid, "password", fmt.Sprintf("Use at least %d characters for the key password.", MinPasswordLen))
	case n > 256:
		return apperr.Field(apperr.Invalid, "password", "Use at most 256 characters for the key password.")
	case strings.ContainsAny(pw, "&=\r\n"):
		// Clients put it in a form body unescaped more often than not.
		return apperr.Field(apperr.Invalid, "password", "The key password cannot contain &, = or line breaks.")
	}
	return nil
}

// ParseAllowedIPs parses an allowlist: IPv4/IPv6 addresses and CIDR ranges,
// one per item (items may also be separated by commas, spaces or newlines,
// as people paste them). A single address becomes a /32 or /128. A range
// with host bits set ("10.0.0.5/8") is rejected rather than guessed at.
func ParseAllowedIPs(items ...string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range items {
		for _, f := range strings.FieldsFunc(item, func(r rune) bool {
			return r == ',' || unicode.IsSpace(r)
		}) {
			p, err := parseAllowed(f)
			if err != nil {
				return nil, apperr.Field(apperr.Invalid, "allowed_ips", err.Error())
			}
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	if len(out) > MaxAllowedIPs {
		return nil, apperr.Field(apperr.Invalid, "allowed_ips", fmt.Sprintf("Use at most %d addresses or ranges.", MaxAllowedIPs))
	}
	return out, nil
}

func parseAllowed(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address range like 203.0.113.0/24 or 2001:db8::/48", s)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: zones are not allowed", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if m := p.Masked(); m != p {
			return netip.Prefix{}, fmt.Errorf("%q has bits set after the prefix length; did you mean %s?", s, m)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 or IPv6 address", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// FormatAllowedIPs writes an allowlist as ParseAllowedIPs reads it, single
// addresses without their /32 or /128.
func FormatAllowedIPs(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		if p.IsSingleIP() {
			out[i] = p.Addr().String()
		} else {
			out[i] = p.String()
		}
	}
	return out
}

// IPAllowed reports whether addr is in the allowlist; an empty allowlist
// allows every address. IPv4-mapped IPv6 addresses match IPv4 ranges.
func IPAllowed(allow []netip.Prefix, addr netip.Addr) bool {
	if len(allow) == 0 {
		return true
	}
	addr = addr.Unmap().WithZone("")
	if !addr.IsValid() {
		return false
	}
	for _, p := range allow {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
