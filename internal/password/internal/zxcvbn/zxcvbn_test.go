package zxcvbn_test

import (
	"fmt"
	"strings"
	"testing"

	upstream "github.com/trustelem/zxcvbn"
	upmatch "github.com/trustelem/zxcvbn/match"

	"github.com/moat-dev/moat/internal/password/internal/zxcvbn"
	"github.com/moat-dev/moat/internal/password/internal/zxcvbn/frequency"
	"github.com/moat-dev/moat/internal/password/internal/zxcvbn/match"
)

// moat's copy changes how the bundled dictionaries are stored and when they
// are built, not what they say: every password must get upstream's score,
// guesses and match sequence.

// corpus is passwords that exercise every matcher: words from each list at
// several ranks, in capitals, reversed, in l33t, with digits, dates,
// repeats, sequences and keyboard walks, the user inputs, and non-ASCII.
func corpus() []string {
	out := []string{
		"", "a", "password", "Password1!", "correct horse battery staple",
		"Tr0ub4dor&3", "qwertyuiop", "zxcvbnm,./", "1qaz2wsx3edc", "aaaaaaaaaa",
		"abcdefghijk", "9876543210", "01/02/1999", "13.12.2012", "19841225",
		"jane.doe@example.com", "janedoeexample", "moatmoatmoat", "p@ssw0rd",
		"drowssap", "violet-tractor-mango-cloud-91", "tangerine velvet octopus lantern",
		"héllo wörld ñ", "пароль123", "ab12ab12ab12", "!!!???!!!", "2024moat2025",
		"Lantern-Velvet-7", "$$$money$$$", "asdfghjkl;'", "7894561230", "1928374655",
	}
	for _, l := range frequency.Lists {
		for _, rank := range []int{0, 1, 9, 99, 999, len(l.Words) / 2, len(l.Words) - 1} {
			if rank >= len(l.Words) {
				continue
			}
			w := l.Words[rank]
			out = append(out, w, strings.ToUpper(w), w+"2019", reverse(w)+"!", leet(w), w+l.Words[len(l.Words)-1-rank])
		}
	}
	return out
}

func reverse(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

func leet(s string) string {
	return strings.NewReplacer("a", "4", "e", "3", "o", "0", "s", "$", "i", "1").Replace(s)
}

var userInputs = []string{"jane", "doe", "example", "jane.doe@example.com", "moat"}

func TestSameAsUpstream(t *testing.T) {
	for _, pw := range corpus() {
		for _, inputs := range [][]string{nil, userInputs} {
			if msg := compare(pw, inputs); msg != "" {
				t.Errorf("%q (inputs %q): %s", pw, inputs, msg)
			}
		}
	}
}

func FuzzSameAsUpstream(f *testing.F) {
	for _, pw := range corpus() {
		f.Add(pw, "jane")
	}
	f.Fuzz(func(t *testing.T, pw, input string) {
		if len(pw) > 40 {
			t.Skip("zxcvbn's cost grows fast with length; moat scores at most 100 runes")
		}
		if msg := compare(pw, []string{input}); msg != "" {
			t.Errorf("%q (input %q): %s", pw, input, msg)
		}
	})
}

// compare returns how moat's copy and upstream differ on pw, or "".
func compare(pw string, inputs []string) string {
	got := zxcvbn.PasswordStrength(pw, inputs)
	want := upstream.PasswordStrength(pw, inputs)
	if got.Score != want.Score || got.Guesses != want.Guesses {
		return fmt.Sprintf("score %d guesses %g, upstream %d %g", got.Score, got.Guesses, want.Score, want.Guesses)
	}
	if g, w := ourSequence(got.Sequence), upstreamSequence(want.Sequence); g != w {
		return fmt.Sprintf("sequence\n  %s\nupstream\n  %s", g, w)
	}
	return ""
}

// ourSequence and upstreamSequence describe a match sequence. Upstream
// visits its dictionaries in map order, so of two matches of the same token
// with the same guesses either may be chosen; the description leaves out
// which list matched.
func ourSequence(ms []*match.Match) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "[%d,%d %s %q %g] ", m.I, m.J, m.Pattern, m.Token, m.Guesses)
	}
	return b.String()
}

func upstreamSequence(ms []*upmatch.Match) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "[%d,%d %s %q %g] ", m.I, m.J, m.Pattern, m.Token, m.Guesses)
	}
	return b.String()
}
