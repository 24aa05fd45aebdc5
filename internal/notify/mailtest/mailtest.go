// Package mailtest reads what tests need out of the e-mails moat writes:
// the token of a link and a six-digit code.
package mailtest

import (
	"regexp"
	"testing"
)

// LinkToken returns the token of the first link in body that starts with
// prefix (the public origin and path, e.g. "https://moat.test/reset"),
// failing the test when there is none.
func LinkToken(t testing.TB, body, prefix string) string {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(prefix+"?token=") + `([A-Za-z0-9_%-]+)`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s link in e-mail:\n%s", prefix, body)
	}
	return m[1]
}

// codeRe matches a code on a line of its own, as the templates show it.
var codeRe = regexp.MustCompile(`(?m)^\s+(\d{6})\s*$`)

// Code returns the six-digit code in body, failing the test when there is
// none.
func Code(t testing.TB, body string) string {
	t.Helper()
	m := codeRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no code in e-mail:\n%s", body)
	}
	return m[1]
}
