package mfa_test

import (
	"bytes"
	"context"
	"encoding/base32"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/sqlite"
)

// TestSecretsNotInDatabaseFile reads the SQLite file (and its write-ahead
// log, where recent writes live) byte by byte, as someone holding a copy of
// the database would: the TOTP seed is there only sealed, backup and SMS
// codes only as keyed hashes.
func TestSecretsNotInDatabaseFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "moat.db")
	backend.store = func(t testing.TB) store.Store {
		s, err := sqlite.OpenAndMigrate(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	t.Cleanup(func() { backend.store = nil })
	e := newEnv(t)
	p := e.user(false)
	seed, codes := e.enrolTOTP(p)
	if _, err := e.svc.AddPhone(ctx, e.user(true), "+44 20 7946 0958"); err != nil {
		t.Fatal(err)
	}
	smsCode := e.lastCode(phone) // outstanding, so its hash is in the file

	var dump []byte
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		dump = append(dump, b...)
	}
	secrets := map[string][]byte{
		"TOTP seed":             seed,
		"TOTP seed (base32)":    []byte(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(seed)),
		"TOTP seed (lowercase)": []byte(strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(seed))),
	}
	for i, c := range codes {
		secrets["backup code "+c] = []byte(c)
		secrets["backup code "+c+" (normalised)"] = []byte(strings.ReplaceAll(codes[i], "-", ""))
	}
	if !strings.Contains(phone, smsCode) { // six digits could occur in the number itself
		secrets["SMS code"] = []byte(smsCode)
	}
	for what, s := range secrets {
		if bytes.Contains(dump, s) {
			t.Errorf("the database file holds the %s in the clear", what)
		}
	}
	// The check can see: the phone number (not a secret) is there.
	if !bytes.Contains(dump, []byte(phone)) {
		t.Fatal("the phone number is not in the dump: the test reads the wrong file")
	}
}
