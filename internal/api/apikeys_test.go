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

// FuzzCreateKeyRequest feeds arbitrary bodies to the create-key parser: it
// must never panic, and it must either produce a request with a name and
// at least one permission or refuse with a 4xx *apperr.Error.
func FuzzCreateKeyRequest(f *testing.F) {
	for _, s := range []string{
		`{"name":"bot","permissions":["query-funds"]}`,
		`{"name":"bot","permissions":["query-funds"],"allowed_ips":["10.0.0.0/8"],"expires_at":"2030-01-01T00:00:00Z","nonce_window":5,"key_password":"secret-pw","query_start":"2020-01-01T00:00:00Z","step_up":{"password":"x"}}`,
		`{"name":"bot"}`, `{"name":"bot","permissions":[]}`, `{"name":"","permissions":["x"]}`,
		`{"name":"bot","permissions":"query-funds"}`, `{"name":"bot","permissions":["query-funds"],"nonce_window":-1}`,
		`{"name":"bot","permissions":["query-funds"],"expires_at":"tomorrow"}`,
		`{"name":"bot","permissions":["query-funds"],"step_up":{"otp":"1"}}`,
		`[]`, `null`, `{`, ``, "\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/api/v1/apikeys", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		req, err := decodeCreateKey(httptest.NewRecorder(), r)
		if err != nil {
			if _, ok := apperr.As(err); !ok {
				t.Fatalf("error is not an *apperr.Error: %v", err)
			}
			if s := httpx.Status(err); s < 400 || s >= 500 {
				t.Fatalf("status %d for %q (%v)", s, body, err)
			}
			return
		}
		if strings.TrimSpace(req.Name) == "" || len(req.Permissions) == 0 {
			t.Fatalf("accepted %q without a name or permissions", body)
		}
	})
}

// TestAPIKeysNeedSession: the key endpoints ask for a session before
// anything else, whether or not the server has API keys.
func TestAPIKeysNeedSession(t *testing.T) {
	mux := http.NewServeMux()
	New(Deps{}).Register(mux)
	r := httptest.NewRequest("GET", "/api/v1/apikeys", nil)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, r)
	checkError(t, rec, 401, apperr.Unauthorized, "")
}
