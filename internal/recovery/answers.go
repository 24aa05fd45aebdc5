package recovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/store"
)

// Limits on the answers, in characters.
const (
	maxDevices  = 300
	maxAmount   = 40
	maxAsset    = 20
	maxAddress  = 200
	maxKeyName  = 100
	maxNote     = 2000
	monthLayout = "2006-01"
	// earliestMonth: no account is older than this.
	earliestMonth = "2000-01"
)

// maxReason bounds a staff member's reason: the owner reads a rejection's
// reason in an e-mail, whose values the mailer keeps to 200 characters,
// and a reason cut short there would say less than staff wrote.
const maxReason = 200

// cleanAnswers trims every answer and checks it; the first problem is
// returned as Invalid with the answer's JSON name as Field.
func cleanAnswers(a Answers, now time.Time) (Answers, error) {
	a.AccountCreated = strings.TrimSpace(a.AccountCreated)
	if a.AccountCreated == "" {
		return a, apperr.Field(apperr.Invalid, "account_created",
			"Enter the month you opened the account, as year and month (for example 2024-03). A guess is fine.")
	}
	m, err := time.Parse(monthLayout, a.AccountCreated)
	if err != nil || len(a.AccountCreated) != len(monthLayout) {
		return a, apperr.Field(apperr.Invalid, "account_created",
			"Write the month as year and month, for example 2024-03.")
	}
	first, _ := time.Parse(monthLayout, earliestMonth)
	thisMonth := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	if m.After(thisMonth) || m.Before(first) {
		return a, apperr.Field(apperr.Invalid, "account_created",
			"That month is in the future or too long ago. Enter the month you opened the account, for example 2024-03.")
	}
	fields := []struct {
		v     *string
		name  string
		label string
		max   int
		lines bool
	}{
		{&a.Devices, "devices", "The devices", maxDevices, false},
		{&a.LastDepositAmount, "last_deposit_amount", "The deposit amount", maxAmount, false},
		{&a.LastDepositAsset, "last_deposit_asset", "The deposit asset", maxAsset, false},
		{&a.WithdrawalAddress, "withdrawal_address", "The withdrawal address", maxAddress, false},
		{&a.APIKeyName, "api_key_name", "The API key name", maxKeyName, false},
		{&a.Note, "note", "The note", maxNote, true},
	}
	for _, f := range fields {
		*f.v = strings.TrimSpace(*f.v)
		if err := checkText(*f.v, f.name, f.label, f.max, f.lines); err != nil {
			return a, err
		}
	}
	return a, nil
}

// checkText accepts printable text of at most max characters (line breaks
// and tabs too when lines is set).
func checkText(v, field, label string, max int, lines bool) error {
	if !utf8.ValidString(v) {
		return apperr.Field(apperr.Invalid, field, label+" contains characters we cannot read. Type it again.")
	}
	if n := utf8.RuneCountInString(v); n > max {
		return apperr.Field(apperr.Invalid, field, fmt.Sprintf("%s is too long: at most %d characters, please.", label, max))
	}
	for _, r := range v {
		if lines && (r == '\n' || r == '\r' || r == '\t') {
			continue
		}
		if !unicode.IsPrint(r) && r != ' ' {
			return apperr.Field(apperr.Invalid, field, label+" may contain only ordinary text (no control characters). Type it again.")
		}
	}
	return nil
}

// cleanReason checks a staff member's rejection reason.
func cleanReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return "", apperr.Field(apperr.Invalid, "reason",
			"Write the reason the owner will read: what was wrong and what to send instead.")
	}
	if err := checkText(reason, "reason", "The reason", maxReason, true); err != nil {
		return "", err
	}
	return reason, nil
}

// noRecord is what Known says when moat holds nothing to compare with.
const noRecord = "no record in moat"

// compare puts each answer next to what moat knows about the account.
func (s *Service) compare(ctx context.Context, acct store.Account, a Answers) ([]Comparison, error) {
	out := []Comparison{compareMonth(a.AccountCreated, acct.CreatedAt)}

	devs, err := s.d.Store.ListDevices(ctx, acct.ID)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, d := range devs {
		if n := strings.TrimSpace(d.Name); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	out = append(out, compareWords("Devices used to sign in", a.Devices, names))

	// moat keeps no deposit or withdrawal history (the exchange's wallet
	// service does), so these are for staff to check there.
	deposit := strings.TrimSpace(a.LastDepositAmount + " " + a.LastDepositAsset)
	out = append(out, unknown("Last deposit (amount and asset)", deposit))
	out = append(out, unknown("A withdrawal address used", a.WithdrawalAddress))

	keys, err := s.d.Store.ListAPIKeys(ctx, acct.ID)
	if err != nil {
		return nil, err
	}
	var keyNames []string
	for _, k := range keys {
		if n := strings.TrimSpace(k.Name); n != "" && !slices.Contains(keyNames, n) {
			keyNames = append(keyNames, n)
		}
	}
	out = append(out, compareExact("Name of an API key", a.APIKeyName, keyNames))
	return out, nil
}

func compareMonth(answer string, created time.Time) Comparison {
	c := Comparison{Question: "Month the account was opened", Answer: answer}
	if created.IsZero() {
		c.Known = noRecord
	} else {
		c.Known = created.UTC().Format(monthLayout)
	}
	switch m, err := time.Parse(monthLayout, answer); {
	case answer == "":
		c.Match = MatchNoAnswer
	case created.IsZero():
		c.Match = MatchUnknown
	case err != nil:
		c.Match = MatchNo
	default:
		real := created.UTC().Year()*12 + int(created.UTC().Month())
		said := m.Year()*12 + int(m.Month())
		if d := real - said; d >= -1 && d <= 1 {
			c.Match = MatchYes
		} else {
			c.Match = MatchNo
		}
	}
	return c
}

// compareWords matches when the answer and one of the known names share a
// word of three or more letters ("firefox", "iphone"), case-insensitively.
func compareWords(question, answer string, known []string) Comparison {
	c, decided := compareStart(question, answer, known)
	if decided {
		return c
	}
	said := words(answer)
	c.Match = MatchNo
	for _, k := range known {
		for w := range words(k) {
			if said[w] {
				c.Match = MatchYes
				return c
			}
		}
	}
	return c
}

// stopWords are words too common in device descriptions to count.
var stopWords = map[string]bool{"and": true, "the": true, "with": true, "for": true, "from": true, "unknown": true, "browser": true}

func words(s string) map[string]bool {
	out := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if utf8.RuneCountInString(w) >= 3 && !stopWords[w] {
			out[w] = true
		}
	}
	return out
}

// compareExact matches when the answer equals one of the known names,
// ignoring case and surrounding space.
func compareExact(question, answer string, known []string) Comparison {
	c, decided := compareStart(question, answer, known)
	if decided {
		return c
	}
	c.Match = MatchNo
	for _, k := range known {
		if strings.EqualFold(strings.TrimSpace(answer), k) {
			c.Match = MatchYes
		}
	}
	return c
}

// compareStart settles what needs no comparison: a blank answer, or no
// record to compare with. Otherwise it returns the comparison to finish.
func compareStart(question, answer string, known []string) (c Comparison, decided bool) {
	c = Comparison{Question: question, Answer: answer, Known: strings.Join(known, "; ")}
	switch {
	case answer == "":
		c.Match = MatchNoAnswer
		if len(known) == 0 {
			c.Known = noRecord
		}
		return c, true
	case len(known) == 0:
		c.Known, c.Match = noRecord, MatchUnknown
		return c, true
	}
	return c, false
}

func unknown(question, answer string) Comparison {
	c := Comparison{Question: question, Answer: answer, Known: noRecord, Match: MatchUnknown}
	if answer == "" {
		c.Match = MatchNoAnswer
	}
	return c
}

// errSkip is returned by an UpdateRecoveryCase fn when the transition is
// no longer due (another node or request made it first).
var errSkip = errors.New("recovery: transition no longer applies")
