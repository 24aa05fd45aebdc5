package apikey

import (
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/moat-dev/moat/internal/apperr"
)

// FuzzBuildKey feeds arbitrary form input to the validation of a new key:
// it never panics, refuses with an Invalid error naming a field, and what
// it accepts is a valid key that survives the trip through its stored form
// (whose permission and allowlist columns are parsed again on every
// lookup).
func FuzzBuildKey(f *testing.F) {
	f.Add("grid bot", "query-funds,Withdraw Funds", "203.0.113.0/24 2001:db8::1", int64(time.Hour), uint64(0), "", int64(0), int64(0))
	f.Add(" ", "", "", int64(0), uint64(1<<63), "short", int64(5), int64(-5))
	f.Add("bot\x00", "query-funds,,admin", "10.0.0.5/8,::ffff:1.2.3.4", int64(-1), uint64(7), "pass&word", int64(-10), int64(10))
	f.Add(strings.Repeat("é", 64), "export-data", "::ffff:192.0.2.0/120", int64(1), uint64(1<<62), "correct horse", int64(0), int64(1))
	now := time.Date(2031, 4, 5, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, name, perms, ips string, expiresIn int64, window uint64, password string, qs, qe int64) {
		in := CreateInput{Name: name, Permissions: strings.Split(perms, ","), AllowedIPs: []string{ips},
			NonceWindow: window, Password: password}
		if expiresIn != 0 {
			in.ExpiresAt = now.Add(time.Duration(expiresIn))
		}
		if qs != 0 {
			in.QueryStart = now.Add(time.Duration(qs))
		}
		if qe != 0 {
			in.QueryEnd = now.Add(time.Duration(qe))
		}
		k, err := buildKey(in, now)
		if err != nil {
			if e, ok := apperr.As(err); !ok || e.Code != apperr.Invalid || e.Field == "" {
				t.Fatalf("refused with %v, want an Invalid error with a field", err)
			}
			return
		}
		if err := k.Validate(); err != nil {
			t.Fatalf("accepted an invalid key: %v", err)
		}
		n := utf8.RuneCountInString(k.Name)
		if k.Permissions.Len() == 0 || n == 0 || n > MaxNameLen || k.Name != strings.TrimSpace(k.Name) {
			t.Fatalf("accepted %+v", k)
		}
		if !k.ExpiresAt.IsZero() && !k.ExpiresAt.After(now) {
			t.Fatalf("accepted an expiry at or before now: %v", k.ExpiresAt)
		}
		k.ID, k.PublicKey, k.SecretSealed = "id", "pub", []byte{1}
		back, err := keyFromRecord(recordFromKey(k))
		if err != nil {
			t.Fatalf("the stored form does not read back: %v", err)
		}
		if back.Permissions != k.Permissions || !slices.Equal(back.AllowedIPs, k.AllowedIPs) ||
			back.NonceWindow != k.NonceWindow || back.Name != k.Name {
			t.Fatalf("stored form changed the key:\n got %+v\nwant %+v", back, k)
		}
	})
}
