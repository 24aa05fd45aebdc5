package apikey

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
)

// SignatureSize is the length of a decoded API-Sign (HMAC-SHA512).
const SignatureSize = sha512.Size

// Sign returns the API-Sign header value Kraken defines for a private call:
//
//	base64(HMAC-SHA512(path + SHA256(nonce + body), secret))
//
// path is the URI path ("/0/private/AddOrder"), nonce the nonce exactly as
// it appears in the body, body the raw request body (form or JSON) and
// secret the base64-decoded API secret.
func Sign(path, nonce string, body, secret []byte) string {
	sum := signature(path, nonce, body, secret)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// Verify reports whether sig, the base64-decoded API-Sign header, is the
// signature of the request under secret. The comparison takes the same time
// wherever the first differing byte is.
func Verify(path, nonce string, body, secret, sig []byte) bool {
	sum := signature(path, nonce, body, secret)
	return hmac.Equal(sum[:], sig)
}

// signature computes the HMAC. The inner SHA-256 input is assembled on the
// stack for ordinary bodies so verification allocates only what crypto/hmac
// needs.
func signature(path, nonce string, body, secret []byte) [SignatureSize]byte {
	var buf [512]byte
	msg := append(append(buf[:0], nonce...), body...)
	inner := sha256.Sum256(msg)

	m := hmac.New(sha512.New, secret)
	var pbuf [256]byte
	m.Write(append(append(pbuf[:0], path...), inner[:]...))
	var out [SignatureSize]byte
	m.Sum(out[:0])
	return out
}
