// Package secrets makes and protects the secret values moat hands out and
// keeps: random tokens (session, links, device), their stored hashes, short
// numeric codes, and AES-GCM encryption of secrets that must be recovered
// later (API secrets, TOTP seeds).
//
// Randomness is an io.Reader passed in by the caller (crypto/rand.Reader in
// production) so tests can make it deterministic.
package secrets

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
)

// TokenBytes is the entropy of every bearer token moat issues (DESIGN.md).
const TokenBytes = 32

// NewToken returns a URL-safe, unpadded base64 encoding of TokenBytes random
// bytes read from r.
func NewToken(r io.Reader) (string, error) {
	b := make([]byte, TokenBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("secrets: read random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// NewID returns a random identifier (16 bytes, lower-case hex). IDs are not
// secrets but are unguessable so they do not leak counts or order. Hex, not
// base64url, so an ID never starts with "-" and is never mistaken for a
// flag when an operator pastes it into the CLI.
func NewID(r io.Reader) (string, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("secrets: read random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// HashToken returns the SHA-256 of a token: what the store keeps instead of
// the token. Tokens have 256 bits of entropy, so a fast hash is enough.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// KeyedHash returns HMAC-SHA256(key, value). Use it for low-entropy values
// that must be looked up but not guessed offline from a database dump (short
// numeric codes, backup codes).
func KeyedHash(key []byte, value string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(value))
	return m.Sum(nil)
}

// Equal compares two byte strings in constant time.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// NewCode returns a uniformly random decimal code of the given number of
// digits (leading zeros kept).
func NewCode(r io.Reader, digits int) (string, error) {
	if digits < 1 || digits > 18 {
		return "", errors.New("secrets: code digits out of range")
	}
	max := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(digits)), nil)
	n, err := randInt(r, max)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%0*d", digits, n), nil
}

// randInt returns a uniform value in [0, max) by rejection sampling.
func randInt(r io.Reader, max *big.Int) (uint64, error) {
	m := max.Uint64()
	limit := ^uint64(0) - (^uint64(0) % m)
	var b [8]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, fmt.Errorf("secrets: read random: %w", err)
		}
		v := binary.BigEndian.Uint64(b[:])
		if v < limit {
			return v % m, nil
		}
	}
}
