package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/httpx"
)

// mfaDecoders are the 2FA endpoints' parsers of untrusted input, each with
// what it promises about a request it accepts.
var mfaDecoders = []struct {
	name   string
	decode func(w http.ResponseWriter, r *http.Request) (ok bool, why string)
}{
	{"code", func(w http.ResponseWriter, r *http.Request) (bool, string) {
		req, err := decodeCode(w, r)
		return check(err, strings.TrimSpace(req.Code) != "", "empty code")
	}},
	{"key begin", func(w http.ResponseWriter, r *http.Request) (bool, string) {
		_, err := decodeKeyBegin(w, r)
		return check(err, true, "")
	}},
	{"key response", func(w http.ResponseWriter, r *http.Request) (bool, string) {
		req, err := decodeKeyResponse(w, r)
		return check(err, strings.TrimSpace(req.Ceremony) != "" && isObject(req.Credential), "no ceremony or credential object")
	}},
	{"passkey", func(w http.ResponseWriter, r *http.Request) (bool, string) {
		req, err := decodePasskey(w, r)
		return check(err, strings.TrimSpace(req.Ceremony) != "" && isObject(req.Credential), "no ceremony or credential object")
	}},
	{"rename", func(w http.ResponseWriter, r *http.Request) (bool, string) {
		req, err := decodeRename(w, r)
		return check(err, strings.TrimSpace(req.Name) != "", "empty name")
	}},
	{"phone", func(w http.ResponseWriter, r *http.Request) (bool, string) {
		req, err := decodePhone(w, r)
		return check(err, strings.TrimSpace(req.Phone) != "", "empty phone")
	}},
	{"settings", func(w http.ResponseWriter, r *http.Request) (bool, string) {
		_, err := decodeSettings(w, r)
		return check(err, true, "")
	}},
	{"step-up factor", func(w http.ResponseWriter, r *http.Request) (bool, string) {
		req, err := decodeFactor(w, r, false)
		return check(err, strings.TrimSpace(req.Factor) != "" && req.PendingToken == "", "no factor, or a pending token")
	}},
	{"sign-in factor", func(w http.ResponseWriter, r *http.Request) (bool, string) {
		req, err := decodeFactor(w, r, true)
		return check(err, strings.TrimSpace(req.Factor) != "" && strings.TrimSpace(req.PendingToken) != "", "no factor or pending token")
	}},
	{"step-up answer", func(w http.ResponseWriter, r *http.Request) (bool, string) {
		req, err := decodeAnswer(w, r, false)
		return check(err, strings.TrimSpace(req.Factor) != "" && strings.TrimSpace(req.Response) != "" && req.PendingToken == "",
			"no factor or response, or a pending token")
	}},
	{"sign-in answer", func(w http.ResponseWriter, r *http.Request) (bool, string) {
		req, err := decodeAnswer(w, r, true)
		return check(err, strings.TrimSpace(req.Factor) != "" && strings.TrimSpace(req.Response) != "" && strings.TrimSpace(req.PendingToken) != "",
			"no factor, response or pending token")
	}},
}

func isObject(b json.RawMessage) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && m != nil
}

// check turns a decoder's outcome into (accepted, what is wrong): a refusal
// must be a 4xx *apperr.Error, an acceptance must satisfy valid.
func check(err error, valid bool, invalid string) (bool, string) {
	if err != nil {
		if _, ok := apperr.As(err); !ok {
			return false, "refused with a non-apperr error: " + err.Error()
		}
		if s := httpx.Status(err); s < 400 || s >= 500 {
			return false, "refused with status " + http.StatusText(s) + ": " + err.Error()
		}
		return false, ""
	}
	if !valid {
		return true, "accepted: " + invalid
	}
	return true, ""
}

// FuzzMFARequests feeds arbitrary bodies to every 2FA request parser: none
// may panic, each either refuses with a 4xx *apperr.Error or returns a
// request with its required fields.
func FuzzMFARequests(f *testing.F) {
	for _, s := range []string{
		`{"code":"123456"}`, `{"code":" 123 456 "}`, `{"code":1}`,
		`{"name":"YubiKey","passkey":true}`, `{"name":null}`, `{}`,
		`{"ceremony":"c","credential":{"id":"x","response":{}}}`, `{"ceremony":"c","credential":"x"}`,
		`{"ceremony":"c","credential":{},"device_token":"d"}`, `{"ceremony":"c","credential":null}`,
		`{"phone":"+44 20 7946 0958"}`,
		`{"signin":true,"funding":false,"trading":false}`, `{"signin":null,"funding":true,"trading":true}`,
		`{"factor":"totp"}`, `{"pending_token":"p","factor":"sms"}`,
		`{"factor":"totp","response":"123456"}`, `{"pending_token":"p","factor":"webauthn","response":{"ceremony":"c","credential":{}}}`,
		`{"factor":"webauthn","response":"{\"ceremony\":\"c\"}"}`, `{"factor":"totp","response":"   "}`,
		`{"factor":"totp","response":[1]}`, `{"factor":"totp","response":true}`, `{"factor":"totp","response":"\ud800"}`,
		`[]`, `null`, `""`, `{`, ``, "\x00", `{"a":1}{}`,
	} {
		for i := range mfaDecoders {
			f.Add(uint8(i), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		d := mfaDecoders[int(which)%len(mfaDecoders)]
		r := httptest.NewRequest("POST", "/api/v1/x", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if _, why := d.decode(httptest.NewRecorder(), r); why != "" {
			t.Fatalf("%s decoder, body %q: %s", d.name, body, why)
		}
	})
}

// FuzzResponseText: the "response" field is a code string or a security
// key's JSON object; anything else is refused with 400 on field
// "response", and an accepted object is passed on byte for byte.
func FuzzResponseText(f *testing.F) {
	for _, s := range []string{`"123456"`, `{"ceremony":"c","credential":{}}`, `null`, `1`, `[]`, `""`, `" "`, `"\u0000"`, `{`, `"\ud800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return // the body decoder has refused it already
		}
		got, err := responseText(raw)
		if err != nil {
			e, ok := apperr.As(err)
			if !ok || e.Code != apperr.Invalid || e.Field != "response" {
				t.Fatalf("%q: %v", raw, err)
			}
			return
		}
		if strings.TrimSpace(got) == "" {
			t.Fatalf("%q accepted as empty", raw)
		}
		if raw[0] == '{' && got != string(raw) {
			t.Fatalf("object %q changed to %q", raw, got)
		}
	})
}
