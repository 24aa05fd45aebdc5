package api

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/httpx"
)

// FuzzSigninRequest feeds arbitrary bodies to the sign-in parser: it must
// never panic, and it must either produce a request with an e-mail and a
// password or refuse with a 4xx *apperr.Error, never an internal error.
func FuzzSigninRequest(f *testing.F) {
	for _, s := range []string{
		`{"email":"a@example.com","password":"correct horse battery"}`,
		`{"email":"a@example.com","password":"pw","device_token":"d"}`,
		`{"email":"a@example.com"}`,
		`{"email":1,"password":2}`,
		`{"email":"a","password":"b","extra":true}`,
		`{"email":"a","password":"b"}{}`,
		`[]`, `null`, `""`, `{`, ``, "\x00", `{"email":"\ud800","password":"\u0000"}`,
		`{"Email":"a@example.com","PASSWORD":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/api/v1/signin", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		req, err := decodeSignin(w, r)
		if err != nil {
			if _, ok := apperr.As(err); !ok {
				t.Fatalf("error is not an *apperr.Error: %v", err)
			}
			if s := httpx.Status(err); s < 400 || s >= 500 {
				t.Fatalf("status %d for %q (%v)", s, body, err)
			}
			return
		}
		if strings.TrimSpace(req.Email) == "" || strings.TrimSpace(req.Password) == "" {
			t.Fatalf("accepted %q without e-mail or password", body)
		}
	})
}

func TestSigninRequestErrors(t *testing.T) {
	mux := http.NewServeMux()
	New(Deps{}).Register(mux)
	big := `{"email":"a@example.com","password":"` + strings.Repeat("x", httpx.MaxJSONBytes) + `"}`
	for _, tc := range []struct {
		name, ctype, body string
		status            int
		code              apperr.Code
		field             string
	}{
		{"malformed", "application/json", `{"email":`, 400, apperr.Invalid, ""},
		{"not an object", "application/json", `[1,2]`, 400, apperr.Invalid, ""},
		{"unknown field", "application/json", `{"email":"a@example.com","password":"x","admin":true}`, 400, apperr.Invalid, "admin"},
		{"wrong type", "application/json", `{"email":"a@example.com","password":7}`, 400, apperr.Invalid, "password"},
		{"missing password", "application/json", `{"email":"a@example.com"}`, 400, apperr.Invalid, "password"},
		{"trailing data", "application/json", `{"email":"a","password":"b"} {}`, 400, apperr.Invalid, ""},
		{"form encoded", "application/x-www-form-urlencoded", `email=a&password=b`, 400, apperr.Invalid, ""},
		{"no content type", "", `{"email":"a","password":"b"}`, 400, apperr.Invalid, ""},
		{"oversized", "application/json", big, 413, apperr.TooLarge, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/api/v1/signin", strings.NewReader(tc.body))
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, r)
			checkError(t, rec, tc.status, tc.code, tc.field)
		})
	}
}
