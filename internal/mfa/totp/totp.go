// Package totp is the authenticator-app algorithm moat uses: RFC 6238 with
// SHA-1, 6 digits and 30-second steps (what every authenticator app
// supports), new keys with their otpauth:// URI and QR code, and a check that
// says which time step a code belongs to.
//
// The HOTP computation is github.com/pquerna/otp's. What is moat's own is the
// window: Check reports every step of the ±1-step window the code matches, so
// the caller can refuse a step it already accepted once (replay protection
// lives in the store, see internal/mfa), and it recognises a code from a phone
// whose clock is a few minutes off so the user can be told to fix the clock
// instead of "wrong code".
package totp

import (
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/skip2/go-qrcode"
)

// The algorithm's parameters (DESIGN.md): fixed, because authenticator apps
// ignore anything else in the URI often enough that other values are a trap.
const (
	// SecretSize is the seed length in bytes (RFC 4226 recommends 160 bits).
	SecretSize = 20
	// Digits is the code length.
	Digits = 6
	// Period is the length of one time step.
	Period = 30 * time.Second
	// Skew is how many steps before and after the current one are accepted.
	Skew = 1
	// DriftSteps is how far (in steps, either way) Check looks for a code
	// from a phone with a wrong clock; such a code is never accepted.
	DriftSteps = 10
)

// b32 is unpadded RFC 4648 base32: the form authenticator apps and oathtool
// read.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Key is a TOTP seed with the labels an authenticator app shows.
type Key struct {
	// Secret is the raw seed.
	Secret []byte
	// Issuer names the service in the app ("moat", the configured brand).
	Issuer string
	// Account names the account in the app (its e-mail).
	Account string
}

// NewKey returns a key with SecretSize random bytes from r.
func NewKey(r io.Reader, issuer, account string) (Key, error) {
	if issuer == "" || account == "" {
		return Key{}, errors.New("totp: issuer and account are required")
	}
	s := make([]byte, SecretSize)
	if _, err := io.ReadFull(r, s); err != nil {
		return Key{}, fmt.Errorf("totp: read random: %w", err)
	}
	return Key{Secret: s, Issuer: issuer, Account: account}, nil
}

// Base32 returns the seed as unpadded upper-case base32, as apps and
// oathtool -b expect.
func (k Key) Base32() string { return b32.EncodeToString(k.Secret) }

// ManualKey returns the seed for typing by hand: base32 in groups of four
// separated by spaces (apps ignore the spaces).
func (k Key) ManualKey() string { return group(k.Base32(), 4) }

// URI returns the otpauth:// URI of the key (Google Authenticator's Key Uri
// Format): label "Issuer:account", and the secret, issuer, algorithm, digits
// and period parameters.
func (k Key) URI() string {
	v := url.Values{}
	v.Set("secret", k.Base32())
	v.Set("issuer", k.Issuer)
	v.Set("algorithm", "SHA1")
	v.Set("digits", fmt.Sprint(Digits))
	v.Set("period", fmt.Sprint(int(Period/time.Second)))
	u := url.URL{
		Scheme: "otpauth",
		Host:   "totp",
		// The label's colon separates issuer and account; both halves are
		// path-escaped by url.URL (spaces as %20, as the format asks).
		Path:     "/" + k.Issuer + ":" + k.Account,
		RawQuery: strings.ReplaceAll(v.Encode(), "+", "%20"),
	}
	return u.String()
}

// QRCodePNG renders URI() as a PNG QR code of size×size pixels (medium error
// correction, which phone cameras read reliably off a screen).
func (k Key) QRCodePNG(size int) ([]byte, error) {
	return qrcode.Encode(k.URI(), qrcode.Medium, size)
}

// Step returns the RFC 6238 time step containing t.
func Step(t time.Time) int64 { return floorDiv(t.Unix(), int64(Period/time.Second)) }

// StepTime returns the start of time step s.
func StepTime(s int64) time.Time { return time.Unix(s*int64(Period/time.Second), 0).UTC() }

// Code returns the code of secret for time step s.
func Code(secret []byte, s int64) string {
	// The otp library takes the seed as base32 and only fails on invalid
	// base32, which b32 never produces.
	c, err := hotp.GenerateCodeCustom(b32.EncodeToString(secret), uint64(s), hotp.ValidateOpts{
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		panic("totp: " + err.Error())
	}
	return c
}

// Result is what Check found.
type Result struct {
	// Steps are the time steps within ±Skew of now that the code matches,
	// ascending. Usually one; two only by a one-in-a-million coincidence.
	Steps []int64
	// Drift is set when the code matches no step within the window but one
	// between Skew+1 and DriftSteps steps away: the offset in steps (negative
	// when the phone is behind). Such a code is refused.
	Drift int64
}

// Check compares code (already normalised, see NormalizeCode) with the codes
// of the steps around now. Comparisons are constant-time.
func Check(secret []byte, code string, now time.Time) Result {
	var r Result
	cur := Step(now)
	for d := int64(-Skew); d <= Skew; d++ {
		if equal(Code(secret, cur+d), code) {
			r.Steps = append(r.Steps, cur+d)
		}
	}
	if len(r.Steps) > 0 {
		return r
	}
	for d := int64(Skew + 1); d <= DriftSteps; d++ {
		for _, off := range []int64{-d, d} {
			if equal(Code(secret, cur+off), code) {
				r.Drift = off
				return r
			}
		}
	}
	return r
}

// ErrCodeFormat is returned by NormalizeCode for input that is not a code.
var ErrCodeFormat = errors.New("totp: a code is 6 digits")

// NormalizeCode turns what a person typed or pasted into a 6-digit code:
// spaces, tabs and dashes are dropped ("123 456", "123-456"); anything else
// but exactly six ASCII digits is refused.
func NormalizeCode(s string) (string, error) {
	if len(s) > 64 {
		return "", ErrCodeFormat
	}
	var b strings.Builder
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			b.WriteRune(c)
		case c == ' ' || c == '\t' || c == '-' || c == '\u00a0':
		default:
			return "", ErrCodeFormat
		}
	}
	if b.Len() != Digits {
		return "", ErrCodeFormat
	}
	return b.String(), nil
}

// ParseSecret decodes a base32 seed as shown by ManualKey or Base32 (spaces,
// lower case and padding tolerated).
func ParseSecret(s string) ([]byte, error) {
	s = strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
	s = strings.TrimRight(s, "=")
	return b32.DecodeString(s)
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func group(s string, n int) string {
	var b strings.Builder
	for i := 0; i < len(s); i += n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+n, len(s))])
	}
	return b.String()
}
