package api

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzResetRequests feeds arbitrary bodies to the password-reset parsers:
// none may panic; each refuses with a 4xx *apperr.Error or returns the
// required fields, and a response never comes without its factor.
func FuzzResetRequests(f *testing.F) {
	for _, s := range []string{
		`{"token":"t","new_password":"copper-meadow-harbour-77"}`,
		`{"token":"t","new_password":"p","factor":"totp","response":"123456"}`,
		`{"token":"t","new_password":"p","factor":"webauthn","response":{"ceremony":"c","credential":{}}}`,
		`{"token":"t","new_password":"p","response":"123456"}`, `{"token":"t","new_password":"p","response":null}`,
		`{"token":"t","new_password":"p","factor":"totp","response":[1]}`, `{"token":"t","new_password":"p","factor":" ","response":"1"}`,
		`{"token":"t","factor":"sms"}`, `{"token":" ","factor":"sms"}`, `{"token":1}`,
		`[]`, `null`, `""`, `{`, ``, "\x00", `{"a":1}{}`, `{"token":"\ud800","new_password":"x"}`,
	} {
		f.Add(false, []byte(s))
		f.Add(true, []byte(s))
	}
	f.Fuzz(func(t *testing.T, challenge bool, body []byte) {
		r := httptest.NewRequest("POST", "/api/v1/password/reset", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		var why string
		if challenge {
			req, err := decodeResetChallenge(httptest.NewRecorder(), r)
			_, why = check(err, strings.TrimSpace(req.Token) != "" && strings.TrimSpace(req.Factor) != "", "no token or factor")
		} else {
			in, err := decodeReset(httptest.NewRecorder(), r)
			_, why = check(err, strings.TrimSpace(in.Token) != "" && strings.TrimSpace(in.NewPassword) != "" &&
				(in.Response == "" || in.Factor != ""), "no token or password, or a response without its factor")
		}
		if why != "" {
			t.Fatalf("challenge=%v body %q: %s", challenge, body, why)
		}
	})
}
