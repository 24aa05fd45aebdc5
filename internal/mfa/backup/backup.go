// Package backup makes and reads backup codes: the one-time codes a person
// prints or stores when they enrol a second factor, for the day the phone or
// key is lost.
//
// A code is 10 characters of Crockford base32 (digits and upper-case letters
// without I, L, O and U), shown as two groups of five: "7KQ2M-XD9TB". That is
// 50 bits of entropy, far beyond what online guessing under moat's throttling
// can reach, and it is easy to read aloud and type: Normalize accepts lower
// case, spaces or no dash, and reads the letters people confuse with digits
// (O for 0, I and L for 1) as the digits.
//
// The store keeps only Hash(key, code): an HMAC under a server key, so a
// database dump alone does not let anyone test guesses offline.
package backup

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/moat-dev/moat/internal/secrets"
)

// Length is the number of significant characters of a code.
const Length = 10

// Count is how many codes a set has (DESIGN.md).
const Count = 10

// alphabet is Crockford's base32.
const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// ErrFormat is returned by Normalize for input that cannot be a code.
var ErrFormat = errors.New("backup: a backup code is 10 letters and digits")

// Generate returns n new codes, formatted for display ("XXXXX-XXXXX"), read
// from r. Codes within a set are distinct.
func Generate(r io.Reader, n int) ([]string, error) {
	codes := make([]string, 0, n)
	seen := make(map[string]bool, n)
	buf := make([]byte, Length)
	for len(codes) < n {
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("backup: read random: %w", err)
		}
		var b [Length]byte
		for i, v := range buf {
			// 256 is a multiple of 32: taking the low five bits is uniform.
			b[i] = alphabet[v&31]
		}
		c := string(b[:])
		if seen[c] {
			continue
		}
		seen[c] = true
		codes = append(codes, Format(c))
	}
	return codes, nil
}

// Format groups a normalised code for display: "ABCDE-FGHJK".
func Format(code string) string {
	if len(code) != Length {
		return code
	}
	return code[:5] + "-" + code[5:]
}

// Normalize returns the canonical form of a typed code: upper case, without
// separators (spaces, dashes), with O read as 0 and I, L as 1. Anything else
// that is not Length Crockford characters is refused with ErrFormat.
func Normalize(s string) (string, error) {
	if len(s) > 64 {
		return "", ErrFormat
	}
	var b strings.Builder
	for _, c := range s {
		switch {
		case c == ' ' || c == '-' || c == '\t' || c == '\u00a0':
			continue
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		}
		switch c {
		case 'O':
			c = '0'
		case 'I', 'L':
			c = '1'
		}
		if c > 0x7f || !strings.ContainsRune(alphabet, c) {
			return "", ErrFormat
		}
		b.WriteRune(c)
	}
	if b.Len() != Length {
		return "", ErrFormat
	}
	return b.String(), nil
}

// Hash returns the value the store keeps for a normalised code.
func Hash(key []byte, code string) []byte {
	return secrets.KeyedHash(key, "backup-code:"+code)
}
