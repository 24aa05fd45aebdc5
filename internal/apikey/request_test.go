package apikey

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

const testPublicKey = "CJbfPw4tnbf/9en/ZmpewCTKEwmmzO18LXZcHQcu7HPLWre4l8+V9I3y"

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestParseRequestKrakenForm(t *testing.T) {
	h := hdr(HeaderKey, testPublicKey, HeaderSign, krakenSign, "Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	req, err := ParseRequest(krakenPath, h, []byte(krakenBody))
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "AddOrder" || req.Nonce != 1616492376594 || req.NonceText != krakenNonce || req.JSON || req.HasOTP {
		t.Fatalf("parsed %+v", req)
	}
	if !req.Verify(mustSecret(t)) {
		t.Fatal("parsed Kraken example does not verify")
	}
}

func TestParseRequestJSON(t *testing.T) {
	for _, tc := range []struct {
		name, ct, body, nonce, otp string
	}{
		{"number nonce", "application/json", `{"nonce": 1695828490, "asset": "ZUSD"}`, "1695828490", ""},
		{"string nonce (python-kraken-sdk)", "application/json; charset=utf-8", `{"nonce": "170000000000000000", "otp": "pw"}`, "170000000000000000", "pw"},
		{"no content type", "", ` {"orders":[{"a":1}],"nonce":7}`, "7", ""},
		{"json suffix", "application/vnd.kraken+json", `{"nonce":"9"}`, "9", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := ParseRequest("/0/private/Balance", hdr(HeaderKey, testPublicKey, HeaderSign, krakenSign, "Content-Type", tc.ct), []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !req.JSON || req.NonceText != tc.nonce || req.OTP != tc.otp {
				t.Fatalf("parsed %+v", req)
			}
			if n, _ := strconv.ParseUint(tc.nonce, 10, 64); req.Nonce != n {
				t.Fatalf("nonce %d, want %d", req.Nonce, n)
			}
		})
	}
}

func TestParseRequestForm(t *testing.T) {
	for _, tc := range []struct {
		name, body, nonce, otp string
		hasOTP                 bool
	}{
		{"nonce last", "pair=XBTUSD&nonce=5", "5", "", false},
		{"otp", "nonce=5&otp=my%20pass+word", "5", "my pass word", true},
		{"empty otp", "otp=&nonce=5", "5", "", true},
		{"escaped key", "n%6Fnce=12", "12", "", false},
		{"empty pairs", "&&nonce=1&", "1", "", false},
		{"max uint64", "nonce=18446744073709551615", "18446744073709551615", "", false},
		{"leading zeros kept as signed", "nonce=0042", "0042", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := ParseRequest("/0/private/Balance", hdr(HeaderKey, testPublicKey, HeaderSign, krakenSign), []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if req.NonceText != tc.nonce || req.OTP != tc.otp || req.HasOTP != tc.hasOTP {
				t.Fatalf("parsed %+v", req)
			}
		})
	}
}

// Every malformed request is refused with the Kraken error a client can act
// on, and none panics.
func TestParseRequestRefuses(t *testing.T) {
	good := hdr(HeaderKey, testPublicKey, HeaderSign, krakenSign)
	unpadded := strings.TrimRight(krakenSign, "=")
	for _, tc := range []struct {
		name string
		path string
		h    http.Header
		ct   string
		body string
		want KrakenError
	}{
		{"not private path", "/0/public/Time", good, "", "nonce=1", ErrUnknownMethod},
		{"empty method", "/0/private/", good, "", "nonce=1", ErrUnknownMethod},
		{"method with slash", "/0/private/Balance/x", good, "", "nonce=1", ErrUnknownMethod},
		{"method with dot", "/0/private/Bal.ance", good, "", "nonce=1", ErrUnknownMethod},
		{"method starting with digit", "/0/private/1Balance", good, "", "nonce=1", ErrUnknownMethod},
		{"method too long", "/0/private/" + strings.Repeat("A", 65), good, "", "nonce=1", ErrUnknownMethod},
		{"missing key", "/0/private/Balance", hdr(HeaderSign, krakenSign), "", "nonce=1", ErrInvalidKey},
		{"empty key", "/0/private/Balance", hdr(HeaderKey, " ", HeaderSign, krakenSign), "", "nonce=1", ErrInvalidKey},
		{"two keys", "/0/private/Balance", hdr(HeaderKey, testPublicKey, HeaderKey, testPublicKey, HeaderSign, krakenSign), "", "nonce=1", ErrInvalidKey},
		{"key with bad characters", "/0/private/Balance", hdr(HeaderKey, "abc$%^", HeaderSign, krakenSign), "", "nonce=1", ErrInvalidKey},
		{"huge key", "/0/private/Balance", hdr(HeaderKey, strings.Repeat("A", 10000), HeaderSign, krakenSign), "", "nonce=1", ErrInvalidKey},
		{"missing sign", "/0/private/Balance", hdr(HeaderKey, testPublicKey), "", "nonce=1", ErrInvalidSignature},
		{"bad base64 sign", "/0/private/Balance", hdr(HeaderKey, testPublicKey, HeaderSign, "!!!not base64!!!"), "", "nonce=1", ErrInvalidSignature},
		{"short sign", "/0/private/Balance", hdr(HeaderKey, testPublicKey, HeaderSign, "AAAA"), "", "nonce=1", ErrInvalidSignature},
		{"long sign", "/0/private/Balance", hdr(HeaderKey, testPublicKey, HeaderSign, krakenSign+krakenSign), "", "nonce=1", ErrInvalidSignature},
		{"two signs", "/0/private/Balance", hdr(HeaderKey, testPublicKey, HeaderSign, krakenSign, HeaderSign, krakenSign), "", "nonce=1", ErrInvalidSignature},
		{"missing nonce", "/0/private/Balance", good, "", "pair=XBTUSD", ErrInvalidNonce},
		{"empty body", "/0/private/Balance", good, "", "", ErrInvalidNonce},
		{"empty nonce", "/0/private/Balance", good, "", "nonce=", ErrInvalidNonce},
		{"non-numeric nonce", "/0/private/Balance", good, "", "nonce=12a", ErrInvalidNonce},
		{"negative nonce", "/0/private/Balance", good, "", "nonce=-1", ErrInvalidNonce},
		{"plus nonce", "/0/private/Balance", good, "", "nonce=%2B1", ErrInvalidNonce},
		{"decimal nonce", "/0/private/Balance", good, "", "nonce=1.5", ErrInvalidNonce},
		{"overflowing nonce", "/0/private/Balance", good, "", "nonce=18446744073709551616", ErrInvalidNonce},
		{"very long nonce", "/0/private/Balance", good, "", "nonce=" + strings.Repeat("9", 100), ErrInvalidNonce},
		{"bad escape in nonce", "/0/private/Balance", good, "", "nonce=1%zz", ErrInvalidNonce},
		{"bad escape in key", "/0/private/Balance", good, "", "a%zz=1&nonce=1", ErrInvalidArguments},
		{"duplicate nonce", "/0/private/Balance", good, "", "nonce=1&nonce=2", InvalidArgument("nonce")},
		{"duplicate escaped nonce", "/0/private/Balance", good, "", "nonce=1&nonc%65=2", InvalidArgument("nonce")},
		{"duplicate otp", "/0/private/Balance", good, "", "nonce=1&otp=a&otp=b", InvalidArgument("otp")},
		{"huge otp", "/0/private/Balance", good, "", "nonce=1&otp=" + strings.Repeat("x", 300), InvalidArgument("otp")},
		{"json not object", "/0/private/Balance", good, "application/json", `[1,2]`, ErrInvalidArguments},
		{"json broken", "/0/private/Balance", good, "application/json", `{"nonce":1`, ErrInvalidArguments},
		{"json trailing data", "/0/private/Balance", good, "application/json", `{"nonce":1} {}`, ErrInvalidArguments},
		{"json float nonce", "/0/private/Balance", good, "application/json", `{"nonce":1.5}`, ErrInvalidNonce},
		{"json exp nonce", "/0/private/Balance", good, "application/json", `{"nonce":1e12}`, ErrInvalidNonce},
		{"json negative nonce", "/0/private/Balance", good, "application/json", `{"nonce":-3}`, ErrInvalidNonce},
		{"json bool nonce", "/0/private/Balance", good, "application/json", `{"nonce":true}`, ErrInvalidNonce},
		{"json null nonce", "/0/private/Balance", good, "application/json", `{"nonce":null}`, ErrInvalidNonce},
		{"json duplicate nonce", "/0/private/Balance", good, "application/json", `{"nonce":1,"nonce":2}`, InvalidArgument("nonce")},
		{"json otp not string", "/0/private/Balance", good, "application/json", `{"nonce":1,"otp":5}`, InvalidArgument("otp")},
		{"json missing nonce", "/0/private/Balance", good, "application/json", `{"a":1}`, ErrInvalidNonce},
		{"json empty", "/0/private/Balance", good, "application/json", ``, ErrInvalidArguments},
		{"json nested nonce does not count", "/0/private/Balance", good, "application/json", `{"x":{"nonce":1}}`, ErrInvalidNonce},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h.Clone()
			if tc.ct != "" {
				h.Set("Content-Type", tc.ct)
			}
			_, err := ParseRequest(tc.path, h, []byte(tc.body))
			var ke KrakenError
			if !errors.As(err, &ke) || ke != tc.want {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	// Unpadded base64 is accepted (liberal), as is padded.
	if _, err := ParseRequest("/0/private/Balance", hdr(HeaderKey, testPublicKey, HeaderSign, unpadded), []byte("nonce=1")); err != nil {
		t.Fatalf("unpadded sign refused: %v", err)
	}
}

// FuzzParseRequest throws arbitrary input at the parser: it must never
// panic, must fail only with KrakenErrors, and what it accepts must be
// self-consistent.
func FuzzParseRequest(f *testing.F) {
	f.Add(krakenPath, testPublicKey, krakenSign, "application/x-www-form-urlencoded", krakenBody)
	f.Add("/0/private/Balance", testPublicKey, krakenSign, "application/json", `{"nonce":"12","otp":"x"}`)
	f.Add("/0/private/Balance", testPublicKey, krakenSign, "", `{"nonce":12}`)
	f.Add("/0/private/Balance", "", "", "", "nonce=1&nonce=2")
	f.Add("/0/private/B", testPublicKey, "AAAA", "text/plain", "otp=%zz&nonce=1")
	f.Add("/0/private/B", testPublicKey, krakenSign, "application/json", `{"nonce":1e3}`)
	f.Fuzz(func(t *testing.T, path, key, sign, ct, body string) {
		h := http.Header{}
		h.Set(HeaderKey, key)
		h.Set(HeaderSign, sign)
		h.Set("Content-Type", ct)
		req, err := ParseRequest(path, h, []byte(body))
		if err != nil {
			var ke KrakenError
			if !errors.As(err, &ke) || !strings.HasPrefix(string(ke), "E") {
				t.Fatalf("non-Kraken error %v", err)
			}
			return
		}
		if req.Path != path || PathPrefix+req.Method != path {
			t.Fatalf("method %q from path %q", req.Method, path)
		}
		if n, err := strconv.ParseUint(req.NonceText, 10, 64); err != nil || n != req.Nonce {
			t.Fatalf("nonce %d from text %q", req.Nonce, req.NonceText)
		}
		if len(req.Sign) != SignatureSize || req.PublicKey == "" {
			t.Fatalf("accepted sign %d bytes, key %q", len(req.Sign), req.PublicKey)
		}
		if string(req.Body) != body {
			t.Fatal("body changed")
		}
		// A request signed with a secret verifies with it and only it.
		secret := []byte("fuzz secret")
		sig := Sign(req.Path, req.NonceText, req.Body, secret)
		req.Sign = mustSign(t, sig)
		if !req.Verify(secret) || req.Verify([]byte("other secret")) {
			t.Fatal("signature round trip failed")
		}
	})
}

func BenchmarkParseRequest(b *testing.B) {
	h := hdr(HeaderKey, testPublicKey, HeaderSign, krakenSign, "Content-Type", "application/x-www-form-urlencoded")
	body := []byte(krakenBody)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(krakenPath, h, body); err != nil {
			b.Fatal(err)
		}
	}
}
