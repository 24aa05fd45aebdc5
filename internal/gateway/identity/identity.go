// Package identity is the contract between moat's signed-API gateway and
// the backend behind it. For every call it forwards, the gateway states who
// is calling in X-Moat-* headers and signs them, so the backend can trust
// them without trusting the network; the client's own API-Key and API-Sign
// never reach the backend.
//
// # Headers
//
//	X-Moat-Account       account ID
//	X-Moat-Key           API key ID (not the public key)
//	X-Moat-Permissions   the key's permissions, comma-separated slugs
//	X-Moat-Client-Ip     the client address moat decided on
//	X-Moat-Query-Start   Unix seconds, or empty: oldest history the key may read
//	X-Moat-Query-End     Unix seconds, or empty: newest history the key may read
//	X-Moat-Timestamp     Unix seconds when moat signed
//	X-Moat-Signature     lowercase hex HMAC-SHA256 (below)
//
// # Signature
//
// The signature is HMAC-SHA256 under a key shared by moat and the backend,
// over these lines joined by "\n" (no trailing newline):
//
//	moat-identity-v1
//	<HTTP method, e.g. POST>
//	<URL path, e.g. /0/private/AddOrder>
//	<X-Moat-Account>
//	<X-Moat-Key>
//	<X-Moat-Permissions>
//	<X-Moat-Client-Ip>
//	<X-Moat-Query-Start>
//	<X-Moat-Query-End>
//	<X-Moat-Timestamp>
//	<lowercase hex SHA-256 of the request body>
//
// Binding the method, path and body means a set of headers copied from one
// request is worthless on another. A backend verifies with Verify (Go) or
// recomputes the string in its own language, compares in constant time, and
// refuses timestamps more than a minute or so from its clock.
package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/apikey"
)

// Header names.
const (
	HeaderAccount     = "X-Moat-Account"
	HeaderKey         = "X-Moat-Key"
	HeaderPermissions = "X-Moat-Permissions"
	HeaderClientIP    = "X-Moat-Client-Ip"
	HeaderQueryStart  = "X-Moat-Query-Start"
	HeaderQueryEnd    = "X-Moat-Query-End"
	HeaderTimestamp   = "X-Moat-Timestamp"
	HeaderSignature   = "X-Moat-Signature"
	headerPrefix      = "X-Moat-"
	version           = "moat-identity-v1"
)

// DefaultMaxSkew is how far a timestamp may be from the verifier's clock.
const DefaultMaxSkew = 60 * time.Second

// Errors from Verify.
var (
	ErrMissing   = errors.New("identity: headers missing")
	ErrSignature = errors.New("identity: signature does not match")
	ErrExpired   = errors.New("identity: timestamp outside the allowed skew")
)

// Identity is who is calling, as the gateway established it.
type Identity struct {
	AccountID   string
	KeyID       string
	Permissions apikey.Permissions
	ClientIP    string
	// QueryStart/QueryEnd bound the history the key may read (zero: open).
	QueryStart time.Time
	QueryEnd   time.Time
}

// Strip removes every X-Moat-* header, so nothing a client sent can pass
// for moat's word.
func Strip(h http.Header) {
	for k := range h {
		if len(k) >= len(headerPrefix) && strings.EqualFold(k[:len(headerPrefix)], headerPrefix) {
			delete(h, k)
		}
	}
}

// Sign replaces every X-Moat-* header in h with id's, signed under key at
// now for a request with this method, path and body.
func Sign(h http.Header, id Identity, method, path string, body, key []byte, now time.Time) {
	Strip(h)
	v := values{
		account: id.AccountID,
		key:     id.KeyID,
		perms:   id.Permissions.String(),
		ip:      id.ClientIP,
		qStart:  unix(id.QueryStart),
		qEnd:    unix(id.QueryEnd),
		ts:      strconv.FormatInt(now.Unix(), 10),
	}
	h[HeaderAccount] = []string{v.account}
	h[HeaderKey] = []string{v.key}
	h[HeaderPermissions] = []string{v.perms}
	h[HeaderClientIP] = []string{v.ip}
	h[HeaderQueryStart] = []string{v.qStart}
	h[HeaderQueryEnd] = []string{v.qEnd}
	h[HeaderTimestamp] = []string{v.ts}
	h[HeaderSignature] = []string{hex.EncodeToString(v.mac(key, method, path, body))}
}

// Verify checks the identity headers of a request and returns the identity.
// Any of keys may have signed (so the shared key can be rotated); the
// timestamp must be within maxSkew of now.
func Verify(h http.Header, method, path string, body []byte, now time.Time, maxSkew time.Duration, keys ...[]byte) (Identity, error) {
	get := func(name string) (string, bool) {
		vs := h.Values(name)
		if len(vs) != 1 || strings.ContainsAny(vs[0], "\r\n") {
			return "", false
		}
		return vs[0], true
	}
	var v values
	var sig string
	ok := true
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{HeaderAccount, &v.account}, {HeaderKey, &v.key}, {HeaderPermissions, &v.perms},
		{HeaderClientIP, &v.ip}, {HeaderQueryStart, &v.qStart}, {HeaderQueryEnd, &v.qEnd},
		{HeaderTimestamp, &v.ts}, {HeaderSignature, &sig},
	} {
		s, present := get(f.name)
		ok = ok && present
		*f.dst = s
	}
	if !ok || v.account == "" || v.key == "" {
		return Identity{}, ErrMissing
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return Identity{}, ErrSignature
	}
	match := false
	for _, k := range keys {
		if hmac.Equal(v.mac(k, method, path, body), got) {
			match = true
		}
	}
	if !match {
		return Identity{}, ErrSignature
	}
	ts, err := strconv.ParseInt(v.ts, 10, 64)
	if err != nil {
		return Identity{}, ErrSignature
	}
	if d := now.Sub(time.Unix(ts, 0)); d > maxSkew || d < -maxSkew {
		return Identity{}, ErrExpired
	}
	perms, err := apikey.ParsePermissions(v.perms)
	if err != nil {
		return Identity{}, ErrSignature
	}
	id := Identity{AccountID: v.account, KeyID: v.key, Permissions: perms, ClientIP: v.ip}
	if id.QueryStart, err = parseUnix(v.qStart); err != nil {
		return Identity{}, ErrSignature
	}
	if id.QueryEnd, err = parseUnix(v.qEnd); err != nil {
		return Identity{}, ErrSignature
	}
	return id, nil
}

type values struct{ account, key, perms, ip, qStart, qEnd, ts string }

func (v values) mac(key []byte, method, path string, body []byte) []byte {
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, key)
	for _, s := range []string{version, method, path, v.account, v.key, v.perms, v.ip, v.qStart, v.qEnd, v.ts} {
		m.Write([]byte(s))
		m.Write([]byte{'\n'})
	}
	var hx [2 * sha256.Size]byte
	hex.Encode(hx[:], sum[:])
	m.Write(hx[:])
	return m.Sum(nil)
}

func unix(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.Unix(), 10)
}

func parseUnix(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(n, 0).UTC(), nil
}
