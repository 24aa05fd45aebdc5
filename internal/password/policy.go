package password

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/trustelem/zxcvbn"

	"github.com/moat-dev/moat/internal/apperr"
)

// Policy decides which new passwords are acceptable: long enough, not too
// long, and not guessable. There are no composition rules (no "one digit,
// one symbol"): length and unpredictability are what resist guessing.
type Policy struct {
	// MinLength and MaxLength count Unicode code points (runes), so a
	// passphrase in any script counts the characters a person typed.
	MinLength int
	MaxLength int
	// MinScore is the lowest acceptable zxcvbn score (0–4).
	MinScore int
	// Words are always treated as guessable in this deployment, e.g. the
	// product's brand name.
	Words []string
}

// DefaultPolicy is DESIGN.md's rule: 10–256 characters, zxcvbn score 3 or
// more (which refuses the bundled common-password and word lists).
func DefaultPolicy(words ...string) Policy {
	return Policy{MinLength: 10, MaxLength: 256, MinScore: 3, Words: words}
}

// scoreRunes bounds the cost of the guessability check: zxcvbn's matching
// grows quickly with length, and a password longer than this is already
// long enough that its first scoreRunes characters decide whether it is a
// padded common one.
const scoreRunes = 100

const passphraseAdvice = "Use a longer passphrase of three or four unrelated words."

// Check returns nil if pw is acceptable, or an *apperr.Error with code
// WeakPassword on field "password" saying what is wrong and what to do.
// userInputs are words the password must not be built from (the e-mail
// address and the like); an e-mail address is also split into its parts.
func (p Policy) Check(pw string, userInputs ...string) error {
	if !utf8.ValidString(pw) {
		return weak("The password contains bytes that are not valid text. Type it again, or use a passphrase of ordinary words.")
	}
	n := utf8.RuneCountInString(pw)
	if n < p.MinLength {
		return weak("Use at least " + strconv.Itoa(p.MinLength) + " characters (this password has " + strconv.Itoa(n) + "). " + passphraseAdvice)
	}
	if n > p.MaxLength {
		return weak("Use at most " + strconv.Itoa(p.MaxLength) + " characters (this password has " + strconv.Itoa(n) + ").")
	}
	scored := pw
	if n > scoreRunes {
		i := 0
		for k := range pw {
			if i == scoreRunes {
				scored = pw[:k]
				break
			}
			i++
		}
	}
	inputs := expandInputs(append(append([]string(nil), p.Words...), userInputs...))
	for i := range inputs {
		inputs[i] = asciiFold(inputs[i])
	}
	scored = asciiFold(scored)
	r := zxcvbn.PasswordStrength(scored, inputs)
	if r.Score >= p.MinScore && personalShare(r) <= len(scored)/2 {
		return nil
	}
	return weak(reason(r) + " " + passphraseAdvice)
}

func weak(msg string) *apperr.Error {
	return &apperr.Error{Code: apperr.WeakPassword, Field: "password", Message: msg}
}

// foldSymbols stand in for non-ASCII runes when scoring.
const foldSymbols = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// asciiFold replaces every non-ASCII rune by one ASCII symbol picked by the
// rune's value. zxcvbn's matchers mix byte and rune offsets and return
// nonsense (zero guesses) for some non-ASCII passwords; its word lists are
// ASCII anyway, so nothing is lost, while a repeated rune still scores as a
// repeat and no symbol forms a dictionary word.
func asciiFold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r < utf8.RuneSelf {
			b = append(b, byte(r))
		} else {
			b = append(b, foldSymbols[int(r)%len(foldSymbols)])
		}
	}
	return string(b)
}

// personalShare is how many bytes of the scored password zxcvbn matched
// against the user inputs. zxcvbn alone accepts "janedoeexample" for
// jane.doe@example.com (three "rare" words); a password mostly made of the
// account's own e-mail address is the first thing a targeted attacker tries.
func personalShare(r zxcvbn.Result) int {
	n := 0
	for _, m := range r.Sequence {
		if m.Pattern == "dictionary" && m.DictionaryName == "user_inputs" {
			n += len(m.Token)
		}
	}
	return n
}

// reason names the weakest part zxcvbn found, in words a person can act on.
func reason(r zxcvbn.Result) string {
	var common, personal, pattern, date bool
	for _, m := range r.Sequence {
		switch m.Pattern {
		case "dictionary":
			if m.DictionaryName == "user_inputs" {
				personal = true
			} else if m.DictionaryName == "passwords" {
				common = true
			}
		case "repeat", "sequence", "spatial":
			pattern = true
		case "date", "regex":
			date = true
		}
	}
	switch {
	case personal:
		return "This password is built from your e-mail address or the name of this site, which is the first thing an attacker tries."
	case common:
		return "This password is one of the most commonly used passwords, so it is among the first an attacker tries."
	case pattern:
		return "This password is too predictable: repeated characters, sequences like abc or 123 and keyboard rows are easy to guess."
	case date:
		return "This password is too easy to guess: dates and years are among the first things an attacker tries."
	}
	return "This password is too easy to guess: it is made of common words or names."
}

// expandInputs adds the parts of e-mail addresses and dotted or dashed
// words ("jane.doe@example.com" -> "jane", "doe", "example") so a password
// built from any of them is recognised.
func expandInputs(in []string) []string {
	out := make([]string, 0, len(in)*3)
	for _, s := range in {
		s = strings.ToLower(strings.TrimSpace(s))
		if s == "" {
			continue
		}
		out = append(out, s)
		parts := strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
		if len(parts) > 1 {
			for _, part := range parts {
				if len(part) >= 3 {
					out = append(out, part)
				}
			}
		}
	}
	return out
}
