package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewTokenIsRandomAndURLSafe(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, err := NewToken(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(raw) != TokenBytes {
			t.Fatalf("token %q: decoded %d bytes, err %v", tok, len(raw), err)
		}
		if seen[tok] {
			t.Fatalf("token repeated: %q", tok)
		}
		seen[tok] = true
	}
}

func TestNewTokenFailsWhenRandomnessFails(t *testing.T) {
	if _, err := NewToken(bytes.NewReader(make([]byte, 5))); err == nil {
		t.Fatal("NewToken succeeded with a short random source")
	}
}

func TestHashTokenIsSHA256AndDistinct(t *testing.T) {
	a, b := HashToken("a"), HashToken("b")
	if len(a) != 32 || bytes.Equal(a, b) || !bytes.Equal(a, HashToken("a")) {
		t.Fatalf("HashToken: len %d, distinct %v", len(a), !bytes.Equal(a, b))
	}
}

func TestKeyedHashDependsOnKey(t *testing.T) {
	if bytes.Equal(KeyedHash([]byte("k1"), "123456"), KeyedHash([]byte("k2"), "123456")) {
		t.Fatal("keyed hash does not depend on the key")
	}
	if !Equal(KeyedHash([]byte("k"), "x"), KeyedHash([]byte("k"), "x")) {
		t.Fatal("keyed hash not deterministic")
	}
}

func TestNewCodeDigitsAndUniformity(t *testing.T) {
	counts := make([]int, 10)
	for range 2000 {
		c, err := NewCode(rand.Reader, 6)
		if err != nil {
			t.Fatal(err)
		}
		if len(c) != 6 || strings.Trim(c, "0123456789") != "" {
			t.Fatalf("code %q is not 6 digits", c)
		}
		counts[c[0]-'0']++
	}
	// Every leading digit (zero included) must occur: codes keep leading
	// zeros and are drawn from the whole range.
	for d, n := range counts {
		if n == 0 {
			t.Fatalf("leading digit %d never drawn in 2000 codes", d)
		}
	}
	for _, bad := range []int{0, 19} {
		if _, err := NewCode(rand.Reader, bad); err == nil {
			t.Fatalf("NewCode(%d) accepted", bad)
		}
	}
}

func TestBoxRoundTripAndContextBinding(t *testing.T) {
	key := make([]byte, KeySize)
	rand.Read(key)
	box, err := NewBox(key, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76s")
	sealed, err := box.Seal(secret, "apikey:1")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := box.Open(sealed, "apikey:1")
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	again, _ := box.Seal(secret, "apikey:1")
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of the same value are identical (nonce reuse)")
	}

	otherKey := make([]byte, KeySize)
	rand.Read(otherKey)
	other, _ := NewBox(otherKey, rand.Reader)
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	cases := []struct {
		name    string
		box     *Box
		sealed  []byte
		context string
	}{
		{"other context (row swap)", box, sealed, "apikey:2"},
		{"other key", other, sealed, "apikey:1"},
		{"tampered ciphertext", box, tampered, "apikey:1"},
		{"truncated", box, sealed[:10], "apikey:1"},
		{"empty", box, nil, "apikey:1"},
		{"unknown version", box, append([]byte{9}, sealed[1:]...), "apikey:1"},
	}
	for _, c := range cases {
		if _, err := c.box.Open(c.sealed, c.context); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: err = %v, want ErrDecrypt", c.name, err)
		}
	}
}

func TestNewBoxRejectsWrongKeySize(t *testing.T) {
	if _, err := NewBox(make([]byte, 16), rand.Reader); err == nil {
		t.Fatal("NewBox accepted a 16-byte key")
	}
}

func TestParseKey(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding} {
		got, err := ParseKey(" " + enc.EncodeToString(key) + "\n")
		if err != nil || !bytes.Equal(got, key) {
			t.Fatalf("ParseKey: %v", err)
		}
	}
	if _, err := ParseKey(base64.StdEncoding.EncodeToString(key[:16])); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := ParseKey("not base64!"); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "encryption.key")
	k1, err := LoadOrCreateKeyFile(path, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	k2, err := LoadOrCreateKeyFile(path, rand.Reader)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second load gave a different key (err %v)", err)
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add(base64.StdEncoding.EncodeToString(make([]byte, 32)))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err == nil && len(k) != KeySize {
			t.Fatalf("accepted a %d-byte key", len(k))
		}
	})
}
