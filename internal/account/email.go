package account

import (
	"net/mail"
	"strings"

	"github.com/moat-dev/moat/internal/apperr"
)

// maxEmailLen is the longest address SMTP can carry (RFC 5321 path limit).
const maxEmailLen = 254

// NormalizeEmail returns the form every e-mail address is stored and
// looked up in: trimmed and lower-cased. It refuses anything that is not a
// bare address (no display name, no comments) with Invalid on field "email".
func NormalizeEmail(s string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(s))
	if e == "" {
		return "", apperr.Field(apperr.Invalid, "email", "Enter your e-mail address.")
	}
	if len(e) > maxEmailLen {
		return "", apperr.Field(apperr.Invalid, "email", "This e-mail address is too long: use one of at most 254 characters.")
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Name != "" || a.Address != e || strings.ContainsAny(e, "\r\n") {
		return "", apperr.Field(apperr.Invalid, "email", "Enter a plain e-mail address, like name@example.com.")
	}
	return e, nil
}
