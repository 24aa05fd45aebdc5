package apikey

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"math/rand/v2"
	"testing"
)

// The worked example of Kraken's REST authentication guide.
const (
	krakenSecret = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
	krakenNonce  = "1616492376594"
	krakenPath   = "/0/private/AddOrder"
	krakenBody   = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
	krakenSign   = "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
)

func mustSecret(t testing.TB) []byte {
	t.Helper()
	s, err := DecodeSecret(krakenSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustSign(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSignKrakenVector(t *testing.T) {
	secret := mustSecret(t)
	if got := Sign(krakenPath, krakenNonce, []byte(krakenBody), secret); got != krakenSign {
		t.Fatalf("Sign = %s\nwant   %s", got, krakenSign)
	}
	if !Verify(krakenPath, krakenNonce, []byte(krakenBody), secret, mustSign(t, krakenSign)) {
		t.Fatal("Verify refused Kraken's own example")
	}
}

// Changing any single byte of the path, the nonce or the body, or of the
// signature itself, must make verification fail.
func TestVerifyAnyChangedByteFails(t *testing.T) {
	secret := mustSecret(t)
	sig := mustSign(t, krakenSign)
	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		c[i] ^= 0x01
		return c
	}
	for i := range krakenPath {
		p := string(flip([]byte(krakenPath), i))
		if Verify(p, krakenNonce, []byte(krakenBody), secret, sig) {
			t.Fatalf("path byte %d changed (%q) still verifies", i, p)
		}
	}
	for i := range krakenNonce {
		n := string(flip([]byte(krakenNonce), i))
		if Verify(krakenPath, n, []byte(krakenBody), secret, sig) {
			t.Fatalf("nonce byte %d changed (%q) still verifies", i, n)
		}
	}
	for i := range krakenBody {
		b := flip([]byte(krakenBody), i)
		if Verify(krakenPath, krakenNonce, b, secret, sig) {
			t.Fatalf("body byte %d changed (%q) still verifies", i, b)
		}
	}
	for i := range sig {
		if Verify(krakenPath, krakenNonce, []byte(krakenBody), secret, flip(sig, i)) {
			t.Fatalf("signature byte %d changed still verifies", i)
		}
	}
	// Appending or truncating is a change too.
	if Verify(krakenPath, krakenNonce, []byte(krakenBody+"&x=1"), secret, sig) ||
		Verify(krakenPath, krakenNonce, []byte(krakenBody[:len(krakenBody)-1]), secret, sig) ||
		Verify(krakenPath+"X", krakenNonce, []byte(krakenBody), secret, sig) ||
		Verify(krakenPath, krakenNonce, []byte(krakenBody), secret, sig[:63]) ||
		Verify(krakenPath, krakenNonce, []byte(krakenBody), secret, nil) {
		t.Fatal("appended/truncated input still verifies")
	}
	if Verify(krakenPath, krakenNonce, []byte(krakenBody), flip(secret, 0), sig) {
		t.Fatal("another secret verifies")
	}
}

// Sign agrees with a straightforward crypto/hmac computation for bodies of
// every size, including ones larger than the stack buffer.
func TestSignMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 100, 499, 500, 511, 512, 513, 4096} {
		body := make([]byte, n)
		for i := range body {
			body[i] = byte(r.Uint32())
		}
		secret := make([]byte, SecretBytes+n%70) // also keys longer than the hash block
		for i := range secret {
			secret[i] = byte(r.Uint32())
		}
		path := "/0/private/Balance"
		if n == 4096 {
			path = "/0/private/" + string(make([]byte, 300)) // long path too
		}
		if got, want := Sign(path, "42", body, secret), referenceSign(path, "42", body, secret); got != want {
			t.Fatalf("len %d: Sign = %s, want %s", n, got, want)
		}
	}
}

func referenceSign(path, nonce string, body, secret []byte) string {
	inner := sha256.Sum256(append([]byte(nonce), body...))
	m := hmac.New(sha512.New, secret)
	m.Write([]byte(path))
	m.Write(inner[:])
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// BenchmarkVerify is signature verification alone, on Kraken's example.
func BenchmarkVerify(b *testing.B) {
	secret := mustSecret(b)
	sig := mustSign(b, krakenSign)
	body := []byte(krakenBody)
	b.ReportAllocs()
	for b.Loop() {
		if !Verify(krakenPath, krakenNonce, body, secret, sig) {
			b.Fatal("refused")
		}
	}
}

// BenchmarkRawHMAC is the floor BenchmarkVerify is compared with: the
// SHA-256 and HMAC-SHA512 the scheme needs, nothing else.
func BenchmarkRawHMAC(b *testing.B) {
	secret := mustSecret(b)
	msg := []byte(krakenNonce + krakenBody)
	path := []byte(krakenPath)
	b.ReportAllocs()
	for b.Loop() {
		inner := sha256.Sum256(msg)
		m := hmac.New(sha512.New, secret)
		m.Write(path)
		m.Write(inner[:])
		m.Sum(nil)
	}
}
