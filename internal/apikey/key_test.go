package apikey

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/secrets"
)

func TestNewKeyMaterial(t *testing.T) {
	pk, err := NewPublicKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if len(pk) != 56 || !validPublicKey(pk) {
		t.Fatalf("public key %q", pk)
	}
	sec, err := NewSecret(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	enc := EncodeSecret(sec)
	if len(sec) != 64 || len(enc) != 88 {
		t.Fatalf("secret %d bytes, %d chars", len(sec), len(enc))
	}
	back, err := DecodeSecret(enc + "\n")
	if err != nil || !bytes.Equal(back, sec) {
		t.Fatal("secret round trip")
	}
	if _, err := NewSecret(bytes.NewReader(nil)); err == nil {
		t.Fatal("short randomness accepted")
	}
}

// The sealed secret contains no trace of the secret and opens only for its
// own key.
func TestSealedSecret(t *testing.T) {
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, secrets.KeySize), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sec, _ := NewSecret(rand.Reader)
	sealed, err := SealSecret(box, "key1", sec)
	if err != nil {
		t.Fatal(err)
	}
	enc := EncodeSecret(sec)
	if bytes.Contains(sealed, sec) || bytes.Contains(sealed, []byte(enc)) ||
		strings.Contains(base64.StdEncoding.EncodeToString(sealed), enc) {
		t.Fatal("sealed value contains the secret")
	}
	if got, err := OpenSecret(box, "key1", sealed); err != nil || !bytes.Equal(got, sec) {
		t.Fatalf("open: %v", err)
	}
	if _, err := OpenSecret(box, "key2", sealed); err == nil {
		t.Fatal("a secret sealed for key1 opened as key2")
	}

	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old, _ := NewSecret(rand.Reader)
	oldSealed, _ := SealSecret(box, "key1", old)
	k := Key{ID: "key1", SecretSealed: sealed, OldSecretSealed: oldSealed, OldSecretValidUntil: now.Add(time.Hour)}
	c, err := OpenCredential(box, k, true, now)
	if err != nil || !bytes.Equal(c.Secret, sec) || !bytes.Equal(c.OldSecret, old) || !c.AccountLocked {
		t.Fatalf("credential in grace: %+v, %v", c, err)
	}
	c, err = OpenCredential(box, k, false, now.Add(time.Hour))
	if err != nil || c.OldSecret != nil {
		t.Fatalf("credential after grace still has the old secret: %v", err)
	}
}

func TestKeyUsable(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		k    Key
		ok   bool
	}{
		{"plain", Key{}, true},
		{"expires later", Key{ExpiresAt: now.Add(time.Second)}, true},
		{"expires now", Key{ExpiresAt: now}, false},
		{"expired", Key{ExpiresAt: now.Add(-time.Second)}, false},
		{"deleted", Key{DeletedAt: now.Add(-time.Hour)}, false},
	} {
		if err := tc.k.Usable(now); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	k := Key{CreatedAt: now}
	if k.Unused(now.Add(89*24*time.Hour), 90*24*time.Hour) || !k.Unused(now.Add(90*24*time.Hour), 90*24*time.Hour) {
		t.Error("Unused from creation")
	}
	k.LastUsedAt = now.Add(80 * 24 * time.Hour)
	if k.Unused(now.Add(100*24*time.Hour), 90*24*time.Hour) {
		t.Error("Unused from last use")
	}
}

func TestParseAllowedIPs(t *testing.T) {
	got, err := ParseAllowedIPs("203.0.113.7, 10.0.0.0/8\n2001:db8::/32 ::1", "::ffff:198.51.100.1", "203.0.113.7")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"203.0.113.7", "10.0.0.0/8", "2001:db8::/32", "::1", "198.51.100.1"}
	if f := FormatAllowedIPs(got); strings.Join(f, " ") != strings.Join(want, " ") {
		t.Fatalf("got %v, want %v", f, want)
	}
	for _, bad := range []string{"10.0.0.5/8", "300.1.1.1", "example.com", "10.0.0.0/33", "fe80::1%eth0", "2001:db8::1/32"} {
		_, err := ParseAllowedIPs(bad)
		if e, ok := apperr.As(err); !ok || e.Field != "allowed_ips" {
			t.Errorf("ParseAllowedIPs(%q) = %v", bad, err)
		}
	}
	many := make([]string, MaxAllowedIPs+1)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String()
	}
	if _, err := ParseAllowedIPs(many...); err == nil {
		t.Error("too many entries accepted")
	}
}

func TestIPAllowed(t *testing.T) {
	allow, _ := ParseAllowedIPs("203.0.113.7", "10.1.0.0/16", "2001:db8:abcd::/48", "2001:db8::42")
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"203.0.113.7", true},
		{"203.0.113.8", false},
		{"10.1.255.255", true},
		{"10.2.0.1", false},
		{"::ffff:10.1.2.3", true}, // IPv4-mapped IPv6 matches the IPv4 range
		{"::ffff:10.2.2.3", false},
		{"2001:db8:abcd:1::5", true},
		{"2001:db8:abce::5", false},
		{"2001:db8::42", true},
		{"2001:db8::43", false},
		{"fe80::1%eth0", false},
	} {
		a := netip.MustParseAddr(tc.addr)
		if got := IPAllowed(allow, a); got != tc.ok {
			t.Errorf("%s: %v, want %v", tc.addr, got, tc.ok)
		}
	}
	if !IPAllowed(nil, netip.MustParseAddr("192.0.2.1")) {
		t.Error("empty allowlist must allow every address")
	}
	if IPAllowed(allow, netip.Addr{}) {
		t.Error("invalid address allowed")
	}
}

func TestKeyPassword(t *testing.T) {
	pepper := []byte("pepper")
	h := HashPassword(pepper, "key1", "correct horse")
	if !CheckPassword(pepper, "key1", "correct horse", h) {
		t.Fatal("right password refused")
	}
	for _, tc := range []struct{ pepper, id, pw string }{
		{"pepper", "key1", "correct hors"},
		{"pepper", "key2", "correct horse"},
		{"other", "key1", "correct horse"},
		{"pepper", "key1", ""},
	} {
		if CheckPassword([]byte(tc.pepper), tc.id, tc.pw, h) {
			t.Errorf("%+v accepted", tc)
		}
	}
	if bytes.Contains(h, []byte("correct horse")) {
		t.Fatal("hash contains the password")
	}
	for pw, ok := range map[string]bool{"short": false, "long enough": true, "has&amp": false, strings.Repeat("x", 257): false} {
		if err := ValidatePassword(pw); (err == nil) != ok {
			t.Errorf("ValidatePassword(%q) = %v", pw, err)
		}
	}
}

func TestKeyValidate(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	good := Key{Name: "grid bot", Permissions: PermissionsOf(QueryFunds), CreatedAt: now}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for field, mutate := range map[string]func(*Key){
		"name":         func(k *Key) { k.Name = "  " },
		"name ":        func(k *Key) { k.Name = strings.Repeat("x", 65) },
		"name  ":       func(k *Key) { k.Name = "a\x00b" },
		"permissions":  func(k *Key) { k.Permissions = 0 },
		"expires_at":   func(k *Key) { k.ExpiresAt = now.Add(-time.Hour) },
		"query_end":    func(k *Key) { k.QueryStart, k.QueryEnd = now, now.Add(-time.Hour) },
		"nonce_window": func(k *Key) { k.NonceWindow = 1 << 63 },
		"allowed_ips":  func(k *Key) { k.AllowedIPs = []netip.Prefix{netip.MustParsePrefix("10.0.0.5/8")} },
	} {
		k := good
		mutate(&k)
		err := k.Validate()
		if e, ok := apperr.As(err); !ok || e.Field != strings.TrimSpace(field) {
			t.Errorf("%s: %v", field, err)
		}
	}
}

func TestKrakenErrorOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want KrakenError
	}{
		{ErrInvalidNonce, ErrInvalidNonce},
		{apperr.Field(apperr.Invalid, "amount", "x"), "EGeneral:Invalid arguments:amount"},
		{apperr.New(apperr.Invalid, "x"), ErrInvalidArguments},
		{apperr.New(apperr.Forbidden, "x"), ErrPermission},
		{apperr.New(apperr.RateLimited, "x"), ErrRateLimit},
		{apperr.New(apperr.Internal, "x"), ErrInternal},
		{bytes.ErrTooLarge, ErrInternal},
	} {
		if got := KrakenErrorOf(tc.err); got != tc.want {
			t.Errorf("KrakenErrorOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
