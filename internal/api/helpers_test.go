package api

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/moat-dev/moat/internal/apperr"
)

type errorBody struct {
	Error struct {
		Code    apperr.Code `json:"code"`
		Message string      `json:"message"`
		Field   string      `json:"field"`
	} `json:"error"`
}

// checkError asserts a JSON error response with a stable code.
func checkError(t *testing.T, rec *httptest.ResponseRecorder, status int, code apperr.Code, field string) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	var b errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, rec.Body)
	}
	if b.Error.Code != code || b.Error.Field != field || b.Error.Message == "" {
		t.Errorf("error = %+v, want code %q field %q and a message", b.Error, code, field)
	}
}
