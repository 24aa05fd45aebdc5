package api

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/httpx"
	"github.com/moat-dev/moat/internal/recovery"
)

// FuzzRecoveryCaseRequest feeds arbitrary bodies to the cases endpoint's
// parser: it never panics, and it either yields exactly one proof, the
// answers and a document of at most MaxDocumentBytes, or refuses with a
// 4xx *apperr.Error, never an internal error.
func FuzzRecoveryCaseRequest(f *testing.F) {
	for _, s := range []string{
		`{"pending_token":"p","answers":{"account_created":"2026-10"},"document_base64":"iVBORw0KGgo="}`,
		`{"reset_token":"r","answers":{"account_created":"2026-10","note":"x"},"document_base64":"iVBORw0KGgo"}`,
		`{"pending_token":"p","reset_token":"r","answers":{},"document_base64":"AA=="}`,
		`{"pending_token":"p","answers":null,"document_base64":"AA=="}`,
		`{"pending_token":"p","answers":{"pet":"cat"},"document_base64":"AA=="}`,
		`{"pending_token":"p","answers":[],"document_base64":"AA=="}`,
		`{"pending_token":"p","answers":{},"document_base64":"*"}`,
		`{"pending_token":"p","answers":{},"document_base64":"A\r\nA\n=="}`,
		`{"pending_token":"p","answers":{},"document_base64":"===="}`,
		`{"pending_token":1}`, `[]`, `null`, `""`, `{`, ``, "\x00", `{"answers":{"account_created":"\ud800"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", PathRecoveryCases, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		proof, _, doc, err := decodeRecoveryCase(httptest.NewRecorder(), r)
		if err != nil {
			if _, ok := apperr.As(err); !ok {
				t.Fatalf("error is not an *apperr.Error: %v", err)
			}
			if s := httpx.Status(err); s < 400 || s >= 500 {
				t.Fatalf("status %d for %q (%v)", s, body, err)
			}
			return
		}
		if (proof.PendingToken == "") == (proof.ResetToken == "") {
			t.Fatalf("accepted %q without exactly one proof: %+v", body, proof)
		}
		if len(doc) == 0 || len(doc) > recovery.MaxDocumentBytes {
			t.Fatalf("accepted %q with a document of %d bytes", body, len(doc))
		}
	})
}

func TestDecodeDocument(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		code apperr.Code
	}{
		{"aGVsbG8=", "hello", ""},
		{"aGVsbG8", "hello", ""},
		{"aGVs\r\nbG8=", "hello", ""},
		{" aGVsbG8= ", "hello", ""},
		{"", "", apperr.Invalid},
		{"   ", "", apperr.Invalid},
		{"aGVsbG8*", "", apperr.Invalid},
		{"aGVsbG8_", "", apperr.Invalid}, // URL alphabet: not what the API takes
		{"a", "", apperr.Invalid},
		{strings.Repeat("A", (recovery.MaxDocumentBytes/3+1)*4), "", apperr.TooLarge},
	} {
		got, err := decodeDocument(tc.in)
		if apperr.CodeOf(err) != tc.code && !(tc.code == "" && err == nil) {
			t.Errorf("decodeDocument(%.20q): %v, want %s", tc.in, err, tc.code)
			continue
		}
		if err == nil && string(got) != tc.want {
			t.Errorf("decodeDocument(%.20q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
