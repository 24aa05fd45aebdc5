package httpx

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/apperr"
)

// readAll answers 200 with the number of bytes read, or the read's error.
func readAll() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			WriteError(w, r, err)
			return
		}
		w.Write([]byte("ok"))
	})
}

func TestMaxBytesByPath(t *testing.T) {
	routes := map[string]int64{"/upload": 64, "/zero": 0, "/negative": -1}
	h := MaxBytesByPath(16, routes)(readAll())
	routes["/upload"] = 1 // the middleware keeps its own copy
	routes["/other"] = 1000

	tests := []struct {
		name, path string
		size       int
		chunked    bool
		html       bool
		want       int
	}{
		{name: "unlisted path at the default", path: "/echo", size: 16, want: 200},
		{name: "unlisted path over the default", path: "/echo", size: 17, want: 413},
		{name: "unlisted path over the default, chunked", path: "/echo", size: 17, chunked: true, want: 413},
		{name: "listed path over the default", path: "/upload", size: 64, want: 200},
		{name: "listed path over the default, chunked", path: "/upload", size: 64, chunked: true, want: 200},
		{name: "listed path over its own limit", path: "/upload", size: 65, want: 413},
		{name: "listed path over its own limit, chunked", path: "/upload", size: 65, chunked: true, want: 413},
		{name: "listed path over its own limit, browser", path: "/upload", size: 65, html: true, want: 413},
		{name: "exact path only", path: "/upload/", size: 17, want: 413},
		{name: "a zero limit means the default", path: "/zero", size: 17, want: 413},
		{name: "a negative limit means the default", path: "/negative", size: 16, want: 200},
		{name: "added after the fact: not seen", path: "/other", size: 17, want: 413},
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(strings.Repeat("x", tt.size))
			if tt.chunked {
				body = unsized{body}
			}
			req, _ := http.NewRequest("POST", srv.URL+tt.path, body)
			if tt.html {
				req.Header.Set("Accept", "text/html,application/xhtml+xml")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.want, b)
			}
			if tt.want != 413 {
				return
			}
			ct := resp.Header.Get("Content-Type")
			switch {
			case tt.html:
				if !strings.HasPrefix(ct, "text/html") || !strings.Contains(string(b), "too large") || !strings.Contains(string(b), "64 bytes") {
					t.Errorf("browser got %q: %s", ct, b)
				}
			case !strings.Contains(string(b), `"too_large"`):
				t.Errorf("body %s", b)
			}
		})
	}
}

func TestByteSize(t *testing.T) {
	for n, want := range map[int64]string{
		10: "10 bytes", 16 << 10: "16 KB", 10 << 20: "10 MB", 11<<20 + 512<<10: "11.5 MB", 14 << 20: "14 MB",
	} {
		if got := byteSize(n); got != want {
			t.Errorf("byteSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestStackBodyLimits(t *testing.T) {
	logger, _ := newLogger(slog.LevelInfo)
	mux := http.NewServeMux()
	mux.Handle("POST /echo", readAll())
	mux.Handle("POST /upload", readAll())
	h, err := Stack(mux, Options{Logger: logger, Rand: zeros{}, PublicOrigin: "https://id.example.com",
		MaxBodyBytes: 8, BodyLimits: map[string]int64{"/upload": 32}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		size int
		want int
	}{
		{"/echo", 8, 200}, {"/echo", 9, 413}, {"/upload", 32, 200}, {"/upload", 33, 413},
	} {
		r := httptest.NewRequest("POST", tt.path, strings.NewReader(strings.Repeat("x", tt.size)))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != tt.want {
			t.Errorf("%s with %d bytes: %d, want %d", tt.path, tt.size, rec.Code, tt.want)
		}
		if tt.want == 413 && errBody(t, rec).Code != apperr.TooLarge {
			t.Errorf("%s with %d bytes: %s", tt.path, tt.size, rec.Body)
		}
	}
}

func TestDecodeJSONLimit(t *testing.T) {
	type doc struct {
		Data string `json:"data"`
	}
	body := `{"data":"` + strings.Repeat("a", 100) + `"}`
	for _, tt := range []struct {
		limit int64
		want  apperr.Code
	}{
		{int64(len(body)), ""},
		{int64(len(body)) - 1, apperr.TooLarge},
	} {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		var d doc
		err := DecodeJSONLimit(httptest.NewRecorder(), r, &d, tt.limit)
		switch {
		case tt.want == "" && (err != nil || len(d.Data) != 100):
			t.Errorf("limit %d: %v", tt.limit, err)
		case tt.want != "" && apperr.CodeOf(err) != tt.want:
			t.Errorf("limit %d: %v, want %s", tt.limit, err, tt.want)
		}
		var mb *http.MaxBytesError
		if tt.want == apperr.TooLarge && (!errors.As(err, &mb) || Status(err) != 413) {
			t.Errorf("limit %d: %v is not a 413 MaxBytesError", tt.limit, err)
		}
	}
}
