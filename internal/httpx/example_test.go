package httpx_test

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/httpx"
)

// An adapter decodes strictly, calls a service, and writes either the
// result or the error; the status comes from the one table in httpx.
func ExampleWriteError() {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/thing", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name string `json:"name"`
		}
		if err := httpx.DecodeJSON(w, r, &req); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		if req.Name == "" {
			httpx.WriteError(w, r, apperr.Field(apperr.Invalid, "name", "Enter a name."))
			return
		}
		httpx.WriteJSON(w, http.StatusCreated, map[string]string{"name": req.Name})
	})
	h, _ := httpx.Stack(mux, httpx.Options{
		Logger: slog.New(slog.DiscardHandler), Rand: rand.Reader,
		PublicOrigin: "https://id.example.com", MaxBodyBytes: 1 << 20,
	})

	for _, body := range []string{`{"name":"x"}`, `{}`, `{"nmae":"x"}`} {
		r := httptest.NewRequest("POST", "/api/v1/thing", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Print(w.Code, " ", w.Body.String())
	}
	// Output:
	// 201 {"name":"x"}
	// 400 {"error":{"code":"invalid","message":"Enter a name.","field":"name"}}
	// 400 {"error":{"code":"invalid","message":"The field \"nmae\" is not part of this request.","field":"nmae"}}
}
