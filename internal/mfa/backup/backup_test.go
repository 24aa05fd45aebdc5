package backup

import (
	"bytes"
	"crypto/rand"
	"regexp"
	"testing"
)

var shown = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$`)

func TestGenerate(t *testing.T) {
	codes, err := Generate(rand.Reader, Count)
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != Count {
		t.Fatalf("%d codes, want %d", len(codes), Count)
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if !shown.MatchString(c) {
			t.Errorf("code %q is not two groups of five Crockford characters", c)
		}
		n, err := Normalize(c)
		if err != nil {
			t.Errorf("Normalize(%q): %v", c, err)
		}
		if seen[n] {
			t.Errorf("duplicate code %q", c)
		}
		seen[n] = true
	}
}

// TestGenerateDistinct: a random source that repeats itself still yields a
// set of distinct codes.
func TestGenerateDistinct(t *testing.T) {
	src := bytes.Repeat(append(bytes.Repeat([]byte{1}, Length), bytes.Repeat([]byte{2}, Length)...), 20)
	codes, err := Generate(bytes.NewReader(src), 2)
	if err != nil {
		t.Fatal(err)
	}
	if codes[0] == codes[1] {
		t.Fatalf("duplicate codes %v", codes)
	}
	if _, err := Generate(bytes.NewReader(src[:Length*3]), 2+1); err == nil {
		t.Error("exhausted random source did not fail")
	}
}

func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ABCDE-FGHJK", "ABCDEFGHJK"},
		{"abcde fghjk", "ABCDEFGHJK"},
		{" abcdefghjk ", "ABCDEFGHJK"},
		{"0O1IL-23456", "0011123456"},
		{"oooooooooo", "0000000000"},
		{"ABCDE-FGHJ", ""},   // too short
		{"ABCDE-FGHJKM", ""}, // too long
		{"ABCDE-FGHJU", ""},  // U is not in the alphabet
		{"ÀBCDE-FGHJK", ""},
		{"ABCDE_FGHJK", ""},
		{"", ""},
	} {
		got, err := Normalize(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestHash(t *testing.T) {
	k1, k2 := []byte("key one"), []byte("key two")
	if bytes.Equal(Hash(k1, "ABCDEFGHJK"), Hash(k2, "ABCDEFGHJK")) {
		t.Error("hash does not depend on the key")
	}
	if bytes.Equal(Hash(k1, "ABCDEFGHJK"), Hash(k1, "ABCDEFGHJM")) {
		t.Error("hash does not depend on the code")
	}
	if len(Hash(k1, "x")) != 32 {
		t.Error("want HMAC-SHA256")
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"ABCDE-FGHJK", "abcde fghjk", "0O1IL23456", "", "ü", "ABCDE--FGHJK"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Normalize(s)
		if err != nil {
			return
		}
		if len(n) != Length {
			t.Fatalf("Normalize(%q) = %q", s, n)
		}
		if again, err := Normalize(Format(n)); err != nil || again != n {
			t.Fatalf("Normalize(Format(%q)) = %q, %v", n, again, err)
		}
		if !shown.MatchString(Format(n)) {
			t.Fatalf("Format(%q) = %q", n, Format(n))
		}
	})
}
