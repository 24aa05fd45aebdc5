package sms

import (
	"errors"
	"strings"
)

// ErrPhone is returned by ParsePhone for anything that is not a full
// international number; show PhoneHint to the person.
var ErrPhone = errors.New("sms: not an international phone number")

// PhoneHint tells a person how to type a number ParsePhone accepts.
const PhoneHint = "Enter the full international number, starting with + and the country code, for example +44 20 7946 0958."

// ParsePhone reads a phone number as people type it and returns its E.164
// form: "+" and 7 to 15 digits, the first not 0. Spaces, dots, dashes and
// parentheses are ignored, and a leading international prefix "00" is read as
// "+". A number without a country code is refused (moat cannot guess the
// country, and a wrong guess sends codes to a stranger).
func ParsePhone(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) > 40 {
		return "", ErrPhone
	}
	var digits strings.Builder
	plus := false
	for i, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits.WriteRune(c)
		case c == '+' && i == 0:
			plus = true
		case c == ' ' || c == '.' || c == '-' || c == '(' || c == ')' || c == '\u00a0':
		default:
			return "", ErrPhone
		}
	}
	d := digits.String()
	if !plus {
		if !strings.HasPrefix(d, "00") {
			return "", ErrPhone
		}
		d = d[2:]
	}
	if len(d) < 7 || len(d) > 15 || d[0] == '0' {
		return "", ErrPhone
	}
	return "+" + d, nil
}

// MaskPhone shows a number without revealing it: the country code's first
// digit and the last two digits ("+4••••••••58"), for "we sent a code to"
// messages and lists.
func MaskPhone(e164 string) string {
	if len(e164) < 5 {
		return strings.Repeat("\u2022", len(e164))
	}
	return e164[:2] + strings.Repeat("\u2022", len(e164)-4) + e164[len(e164)-2:]
}
