package identity

import (
	"bytes"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apikey"
)

var (
	key   = bytes.Repeat([]byte{1}, 32)
	other = bytes.Repeat([]byte{2}, 32)
	now   = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	id    = Identity{
		AccountID: "acct1", KeyID: "key1", ClientIP: "2001:db8::7",
		Permissions: apikey.PermissionsOf(apikey.QueryFunds, apikey.CreateModifyOrders),
		QueryStart:  now.Add(-24 * time.Hour), QueryEnd: now.Add(24 * time.Hour),
	}
	body = []byte("nonce=1&pair=XBTUSD")
)

func signed() http.Header {
	h := http.Header{}
	h.Set("X-Moat-Account", "spoofed")       // a client's attempt
	h.Set("x-moat-anything-else", "spoofed") // any X-Moat-* header
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	Sign(h, id, "POST", "/0/private/AddOrder", body, key, now)
	return h
}

func TestRoundTrip(t *testing.T) {
	h := signed()
	if h.Get("X-Moat-Anything-Else") != "" || len(h.Values(HeaderAccount)) != 1 {
		t.Fatal("Sign kept client-sent X-Moat headers")
	}
	got, err := Verify(h, "POST", "/0/private/AddOrder", body, now.Add(30*time.Second), DefaultMaxSkew, other, key)
	if err != nil {
		t.Fatal(err)
	}
	if got != id {
		t.Fatalf("got %+v\nwant %+v", got, id)
	}
	if h.Get("Content-Type") == "" {
		t.Fatal("Sign removed an unrelated header")
	}
	// Zero query bounds travel as empty strings.
	h2 := http.Header{}
	Sign(h2, Identity{AccountID: "a", KeyID: "k"}, "POST", "/p", nil, key, now)
	if got, err := Verify(h2, "POST", "/p", nil, now, time.Minute, key); err != nil || !got.QueryStart.IsZero() || got.Permissions != 0 {
		t.Fatalf("%+v %v", got, err)
	}
}

// Any change to what was signed, or the wrong key, fails.
func TestTampering(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate       func(h http.Header)
		method, path string
		body         []byte
		key          []byte
		at           time.Time
		want         error
	}{
		"account":     {mutate: func(h http.Header) { h.Set(HeaderAccount, "acct2") }, want: ErrSignature},
		"key":         {mutate: func(h http.Header) { h.Set(HeaderKey, "key2") }, want: ErrSignature},
		"permissions": {mutate: func(h http.Header) { h.Set(HeaderPermissions, "query-funds,withdraw-funds") }, want: ErrSignature},
		"client ip":   {mutate: func(h http.Header) { h.Set(HeaderClientIP, "192.0.2.1") }, want: ErrSignature},
		"query start": {mutate: func(h http.Header) { h.Set(HeaderQueryStart, "") }, want: ErrSignature},
		"query end":   {mutate: func(h http.Header) { h.Set(HeaderQueryEnd, "0") }, want: ErrSignature},
		"timestamp":   {mutate: func(h http.Header) { h.Set(HeaderTimestamp, "1772366401") }, want: ErrSignature},
		"signature":   {mutate: func(h http.Header) { h.Set(HeaderSignature, "00") }, want: ErrSignature},
		"not hex":     {mutate: func(h http.Header) { h.Set(HeaderSignature, "zz") }, want: ErrSignature},
		"missing":     {mutate: func(h http.Header) { h.Del(HeaderKey) }, want: ErrMissing},
		"doubled":     {mutate: func(h http.Header) { h.Add(HeaderAccount, "acct1") }, want: ErrMissing},
		"method":      {method: "GET", want: ErrSignature},
		"path":        {path: "/0/private/Withdraw", want: ErrSignature},
		"body":        {body: []byte("nonce=1&pair=XBTEUR"), want: ErrSignature},
		"wrong key":   {key: other, want: ErrSignature},
		"too old":     {at: now.Add(61 * time.Second), want: ErrExpired},
		"too new":     {at: now.Add(-61 * time.Second), want: ErrExpired},
	} {
		t.Run(name, func(t *testing.T) {
			h := signed()
			if tc.mutate != nil {
				tc.mutate(h)
			}
			method, path, b, k, at := "POST", "/0/private/AddOrder", body, key, now
			if tc.method != "" {
				method = tc.method
			}
			if tc.path != "" {
				path = tc.path
			}
			if tc.body != nil {
				b = tc.body
			}
			if tc.key != nil {
				k = tc.key
			}
			if !tc.at.IsZero() {
				at = tc.at
			}
			if _, err := Verify(h, method, path, b, at, DefaultMaxSkew, k); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}
