package httpx

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/moat-dev/moat/internal/apperr"
)

// zeros is a deterministic random source for error ids.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type logBuf struct{ bytes.Buffer }

func newLogger(level slog.Level) (*slog.Logger, *logBuf) {
	b := &logBuf{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: level})), b
}

// errBody decodes the JSON error envelope.
func errBody(t *testing.T, rec *httptest.ResponseRecorder) errorDetail {
	t.Helper()
	var b errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("body %q is not the error envelope: %v", rec.Body.String(), err)
	}
	return b.Error
}

func TestStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{apperr.New(apperr.Invalid, "x"), 400},
		{apperr.New(apperr.WeakPassword, "x"), 400},
		{apperr.New(apperr.TokenInvalid, "x"), 400},
		{apperr.New(apperr.TokenExpired, "x"), 400},
		{apperr.New(apperr.TokenUsed, "x"), 400},
		{apperr.New(apperr.BadCredential, "x"), 401},
		{apperr.New(apperr.Unauthorized, "x"), 401},
		{apperr.New(apperr.Forbidden, "x"), 403},
		{apperr.New(apperr.Unconfirmed, "x"), 403},
		{apperr.New(apperr.StepUpNeeded, "x"), 403},
		{apperr.New(apperr.NotFound, "x"), 404},
		{apperr.New(apperr.Conflict, "x"), 409},
		{apperr.New(apperr.TooLarge, "x"), 413},
		{apperr.New(apperr.RateLimited, "x"), 429},
		{apperr.New(apperr.AccountLocked, "x"), 429},
		{apperr.New(apperr.Internal, "x"), 500},
		{errors.New("db down"), 500},
		{&http.MaxBytesError{Limit: 10}, 413},
		{apperr.New("brand_new_code", "x"), 400},
	}
	for _, tt := range tests {
		if got := Status(tt.err); got != tt.want {
			t.Errorf("Status(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestWriteError(t *testing.T) {
	t.Run("client error", func(t *testing.T) {
		rec := httptest.NewRecorder()
		WriteError(rec, httptest.NewRequest("POST", "/", nil), apperr.Field(apperr.Invalid, "email", "Enter an e-mail address."))
		if rec.Code != 400 {
			t.Fatalf("status %d", rec.Code)
		}
		d := errBody(t, rec)
		if d.Code != "invalid" || d.Field != "email" || d.Message != "Enter an e-mail address." || d.ID != "" {
			t.Errorf("body %+v", d)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Errorf("content type %q", ct)
		}
	})
	t.Run("retry after rounds up", func(t *testing.T) {
		for _, code := range []apperr.Code{apperr.RateLimited, apperr.AccountLocked} {
			rec := httptest.NewRecorder()
			WriteError(rec, httptest.NewRequest("POST", "/", nil), &apperr.Error{Code: code, Message: "slow down", RetryAfter: 1200 * time.Millisecond})
			if rec.Code != 429 || rec.Header().Get("Retry-After") != "2" {
				t.Errorf("%s: status %d Retry-After %q", code, rec.Code, rec.Header().Get("Retry-After"))
			}
		}
	})
	t.Run("internal details stay in the log", func(t *testing.T) {
		logger, logs := newLogger(slog.LevelInfo)
		h := Observe(logger, nil, zeros{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			WriteError(w, r, errors.New("pq: password authentication failed for user moat"))
		}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
		if rec.Code != 500 {
			t.Fatalf("status %d", rec.Code)
		}
		d := errBody(t, rec)
		if d.Code != "internal" || d.ID == "" || strings.Contains(rec.Body.String(), "password authentication") {
			t.Errorf("body leaks or lacks id: %s", rec.Body.String())
		}
		if !strings.Contains(logs.String(), "password authentication") || !strings.Contains(logs.String(), "error_id="+d.ID) {
			t.Errorf("log lacks the cause or the id %s:\n%s", d.ID, logs.String())
		}
	})
	t.Run("client went away", func(t *testing.T) {
		logger, logs := newLogger(slog.LevelInfo)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		h := Observe(logger, nil, zeros{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			WriteError(w, r, &apperr.Error{Code: apperr.Internal, Message: "x", Err: fmt.Errorf("sqlite: begin: %w", context.Canceled)})
		}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil).WithContext(ctx))
		if rec.Code != StatusClientClosedRequest {
			t.Errorf("status %d", rec.Code)
		}
		if strings.Contains(logs.String(), "level=ERROR") {
			t.Errorf("a client disconnect logged as an error:\n%s", logs.String())
		}
	})
	t.Run("body too large", func(t *testing.T) {
		rec := httptest.NewRecorder()
		WriteError(rec, httptest.NewRequest("POST", "/", nil), &http.MaxBytesError{Limit: 10})
		if d := errBody(t, rec); rec.Code != 413 || d.Code != "too_large" {
			t.Errorf("status %d body %+v", rec.Code, d)
		}
	})
}

func TestDecodeJSON(t *testing.T) {
	type req struct {
		Email string `json:"email"`
		Count int    `json:"count"`
	}
	tests := []struct {
		name      string
		ct        string
		body      string
		wantCode  apperr.Code
		wantField string
		wantMsg   string
	}{
		{name: "ok", body: `{"email":"a@example.com","count":2}`},
		{name: "ok with charset", ct: "application/json; charset=utf-8", body: `{"email":"a"}`},
		{name: "form encoded", ct: "application/x-www-form-urlencoded", body: `email=a`, wantCode: apperr.Invalid, wantMsg: "Content-Type"},
		{name: "no content type", ct: "-", body: `{}`, wantCode: apperr.Invalid, wantMsg: "Content-Type"},
		{name: "unknown field", body: `{"email":"a","admin":true}`, wantCode: apperr.Invalid, wantField: "admin"},
		{name: "wrong type", body: `{"count":"many"}`, wantCode: apperr.Invalid, wantField: "count", wantMsg: "a number"},
		{name: "two objects", body: `{"email":"a"}{"email":"b"}`, wantCode: apperr.Invalid, wantMsg: "exactly one"},
		{name: "trailing garbage", body: `{"email":"a"} x`, wantCode: apperr.Invalid, wantMsg: "exactly one"},
		{name: "empty", body: ``, wantCode: apperr.Invalid, wantMsg: "empty"},
		{name: "syntax", body: `{"email":}`, wantCode: apperr.Invalid, wantMsg: "not valid JSON"},
		{name: "truncated", body: `{"email":"a"`, wantCode: apperr.Invalid, wantMsg: "cut short"},
		{name: "array", body: `[1,2]`, wantCode: apperr.Invalid, wantMsg: "JSON object"},
		{name: "too large", body: `{"email":"` + strings.Repeat("a", MaxJSONBytes) + `"}`, wantCode: apperr.TooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
			switch tt.ct {
			case "":
				r.Header.Set("Content-Type", "application/json")
			case "-":
			default:
				r.Header.Set("Content-Type", tt.ct)
			}
			var dst req
			err := DecodeJSON(httptest.NewRecorder(), r, &dst)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			e, ok := apperr.As(err)
			if !ok || e.Code != tt.wantCode {
				t.Fatalf("err = %v, want code %s", err, tt.wantCode)
			}
			if e.Field != tt.wantField {
				t.Errorf("field %q, want %q", e.Field, tt.wantField)
			}
			if !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("message %q lacks %q", e.Message, tt.wantMsg)
			}
			if Status(err) >= 500 {
				t.Errorf("bad input mapped to %d", Status(err))
			}
		})
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"email":"a"}`, `{`, `[]`, `{"count":1e99}`, `null`, `{"email":"a"}{}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		var dst struct {
			Email string   `json:"email"`
			Count int      `json:"count"`
			List  []string `json:"list"`
		}
		err := DecodeJSON(httptest.NewRecorder(), r, &dst)
		if err != nil {
			if _, ok := apperr.As(err); !ok || Status(err) >= 500 {
				t.Fatalf("bad body %q gave %v (status %d)", body, err, Status(err))
			}
		}
	})
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("done"))
	})
}

func TestCrossOrigin(t *testing.T) {
	mw, err := CrossOrigin("https://id.example.com")
	if err != nil {
		t.Fatal(err)
	}
	h := mw(okHandler())
	tests := []struct {
		name    string
		method  string
		host    string
		headers map[string]string
		want    int
	}{
		{"cross-site POST refused", "POST", "id.example.com", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"same-site (sibling subdomain) POST refused", "POST", "id.example.com", map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"foreign Origin without Sec-Fetch-Site refused", "POST", "id.example.com", map[string]string{"Origin": "https://evil.example"}, 403},
		{"cross-site DELETE refused", "DELETE", "id.example.com", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"same-origin POST allowed", "POST", "id.example.com", map[string]string{"Sec-Fetch-Site": "same-origin"}, 200},
		{"public origin behind a proxy allowed", "POST", "10.0.0.5:8080", map[string]string{"Origin": "https://id.example.com"}, 200},
		{"non-browser client allowed", "POST", "id.example.com", nil, 200},
		{"cross-site GET allowed (safe method)", "GET", "id.example.com", map[string]string{"Sec-Fetch-Site": "cross-site"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "/settings/password", strings.NewReader("a=b"))
			r.Host = tt.host
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d", rec.Code, tt.want)
			}
			if tt.want == 403 {
				if d := errBody(t, rec); d.Code != "forbidden" {
					t.Errorf("code %q", d.Code)
				}
				if rec.Body.String() == "done" {
					t.Error("handler ran")
				}
			}
		})
	}
}

func TestRequireJSON(t *testing.T) {
	h := RequireJSON(okHandler())
	tests := []struct {
		method, ct string
		want       int
	}{
		{"POST", "application/json", 200},
		{"POST", "application/json; charset=utf-8", 200},
		{"POST", "text/plain", 400},
		{"POST", "application/x-www-form-urlencoded", 400},
		{"POST", "multipart/form-data; boundary=x", 400},
		{"POST", "", 400},
		{"DELETE", "", 400},
		{"GET", "", 200},
		{"HEAD", "", 200},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, "/api/v1/x", nil)
		if tt.ct != "" {
			r.Header.Set("Content-Type", tt.ct)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != tt.want {
			t.Errorf("%s %q: status %d, want %d", tt.method, tt.ct, rec.Code, tt.want)
		}
	}
}

// unsized hides the length so the request is sent chunked.
type unsized struct{ io.Reader }

func TestMaxBytes(t *testing.T) {
	var readErr error
	h := MaxBytes(16)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			readErr = err
			WriteError(w, r, err)
			return
		}
		w.Write([]byte("ok"))
	}))
	t.Run("declared length over the limit", func(t *testing.T) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("x", 17))))
		if d := errBody(t, rec); rec.Code != 413 || d.Code != "too_large" {
			t.Errorf("status %d code %q", rec.Code, d.Code)
		}
	})
	t.Run("chunked body over the limit", func(t *testing.T) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		resp, err := http.Post(srv.URL, "text/plain", unsized{strings.NewReader(strings.Repeat("x", 1000))})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 413 || !strings.Contains(string(body), `"too_large"`) {
			t.Errorf("status %d body %s", resp.StatusCode, body)
		}
		var mb *http.MaxBytesError
		if !errors.As(readErr, &mb) {
			t.Errorf("handler read error %v", readErr)
		}
	})
	t.Run("at the limit", func(t *testing.T) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("x", 16))))
		if rec.Code != 200 {
			t.Errorf("status %d", rec.Code)
		}
	})
}

func TestRecover(t *testing.T) {
	const secret = "postgres://moat:hunter2@db"
	logger, logs := newLogger(slog.LevelInfo)
	h := Observe(logger, nil, zeros{})(Recover(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("cannot connect to " + secret)
	})))
	t.Run("json", func(t *testing.T) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/me", nil))
		if rec.Code != 500 {
			t.Fatalf("status %d", rec.Code)
		}
		d := errBody(t, rec)
		if d.Code != "internal" || d.ID == "" {
			t.Errorf("body %+v", d)
		}
		if strings.Contains(rec.Body.String(), "hunter2") {
			t.Errorf("panic text reached the client: %s", rec.Body.String())
		}
		if !strings.Contains(logs.String(), "hunter2") || !strings.Contains(logs.String(), "error_id="+d.ID) {
			t.Errorf("log lacks the panic or the id:\n%s", logs.String())
		}
	})
	t.Run("html", func(t *testing.T) {
		r := httptest.NewRequest("GET", "/account", nil)
		r.Header.Set("Accept", "text/html,application/xhtml+xml")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != 500 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
			t.Fatalf("status %d type %q", rec.Code, rec.Header().Get("Content-Type"))
		}
		if strings.Contains(rec.Body.String(), "hunter2") || !strings.Contains(rec.Body.String(), "000000000000") {
			t.Errorf("page leaks or lacks the id: %s", rec.Body.String())
		}
	})
	t.Run("abort handler is re-raised", func(t *testing.T) {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler {
				t.Errorf("recovered %v", v)
			}
		}()
		Recover(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })).
			ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	})
}

func TestSecurityHeaders(t *testing.T) {
	want := map[string]string{
		"Content-Security-Policy":    contentSecurityPolicy,
		"X-Content-Type-Options":     "nosniff",
		"Referrer-Policy":            "no-referrer",
		"Cross-Origin-Opener-Policy": "same-origin",
		"X-Frame-Options":            "DENY",
	}
	tests := []struct {
		name      string
		https     bool
		tls       bool
		wantHSTS  bool
		wantInCSP []string
	}{
		{name: "plain http", wantHSTS: false},
		{name: "https public origin behind a proxy", https: true, wantHSTS: true},
		{name: "direct TLS", tls: true, wantHSTS: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			rec := httptest.NewRecorder()
			SecurityHeaders(tt.https)(okHandler()).ServeHTTP(rec, r)
			for k, v := range want {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if pp := rec.Header().Get("Permissions-Policy"); !strings.Contains(pp, "camera=()") {
				t.Errorf("Permissions-Policy %q", pp)
			}
			if got := rec.Header().Get("Strict-Transport-Security") != ""; got != tt.wantHSTS {
				t.Errorf("HSTS present = %v", got)
			}
		})
	}
	for _, d := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "img-src 'self' data:"} {
		if !strings.Contains(contentSecurityPolicy, d) {
			t.Errorf("CSP lacks %q", d)
		}
	}
	if strings.Contains(contentSecurityPolicy, "unsafe-inline") {
		t.Error("CSP allows inline code")
	}
}

// DropBrowserHeaders removes every header SecurityHeaders sets (HSTS
// included), and nothing else.
func TestDropBrowserHeaders(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.TLS = &tls.ConnectionState{}
	rec := httptest.NewRecorder()
	SecurityHeaders(true)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		DropBrowserHeaders(w.Header())
	})).ServeHTTP(rec, r)
	if len(rec.Header()) != 1 || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("left %v, want only the handler's Cache-Control", rec.Header())
	}
}

func TestObserve(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := newLogger(slog.LevelInfo)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("item")) })
	mux.HandleFunc("POST /fail", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, apperr.New(apperr.Invalid, "no"))
	})
	h := Observe(logger, m, zeros{})(Recover(mux))

	for _, target := range []string{"/items/1", "/items/2?token=sekrit", "/nowhere"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", target, nil))
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/fail?reset=tok3n", nil))

	counts, series := gather(t, reg)
	if got := counts["GET /items/{id}|2xx"]; got != 2 {
		t.Errorf("item requests = %v, want 2 (one series for the pattern): %v", got, counts)
	}
	if got := counts["unmatched|4xx"]; got != 1 {
		t.Errorf("unmatched = %v", got)
	}
	if got := counts["POST /fail|4xx"]; got != 1 {
		t.Errorf("fail = %v", got)
	}
	if len(counts) != 3 || series != 3 {
		t.Errorf("%d counter series, %d histogram series; want 3 each (one per route): %v", len(counts), series, counts)
	}

	out := logs.String()
	if strings.Contains(out, "/items/1") {
		t.Errorf("2xx logged at Info:\n%s", out)
	}
	if !strings.Contains(out, "path=/fail") || !strings.Contains(out, "status=400") {
		t.Errorf("4xx not logged:\n%s", out)
	}
	if strings.Contains(out, "tok3n") || strings.Contains(out, "sekrit") {
		t.Errorf("query string logged:\n%s", out)
	}
}

func TestObserveDebugLogsSuccess(t *testing.T) {
	logger, logs := newLogger(slog.LevelDebug)
	Observe(logger, nil, zeros{})(okHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/healthz?x=1", nil))
	if !strings.Contains(logs.String(), "path=/healthz") || !strings.Contains(logs.String(), "status=200") {
		t.Errorf("debug log: %s", logs.String())
	}
}

// TestStack runs the assembled chain end to end.
func TestStack(t *testing.T) {
	logger, _ := newLogger(slog.LevelInfo)
	mux := http.NewServeMux()
	mux.Handle("POST /echo", okHandler())
	mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
	h, err := Stack(mux, Options{Logger: logger, Rand: zeros{}, PublicOrigin: "https://id.example.com", MaxBodyBytes: 8})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, target, body string, hdr map[string]string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, target, strings.NewReader(body))
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	if rec := do("POST", "/echo", "hi", map[string]string{"Sec-Fetch-Site": "cross-site"}); rec.Code != 403 {
		t.Errorf("cross-site POST: %d", rec.Code)
	}
	if rec := do("POST", "/echo", "hi", map[string]string{"Sec-Fetch-Site": "same-origin"}); rec.Code != 200 || rec.Header().Get("Strict-Transport-Security") == "" {
		t.Errorf("same-origin POST: %d, headers %v", rec.Code, rec.Header())
	}
	if rec := do("POST", "/echo", "123456789", nil); rec.Code != 413 {
		t.Errorf("oversize: %d", rec.Code)
	}
	rec := do("GET", "/boom", "", nil)
	if rec.Code != 500 || rec.Header().Get("Content-Security-Policy") == "" {
		t.Errorf("panic: %d, headers %v", rec.Code, rec.Header())
	}
	if _, err := Stack(mux, Options{Logger: logger, Rand: zeros{}, PublicOrigin: "https://id.example.com/path"}); err == nil {
		t.Error("origin with a path accepted")
	}
}

// gather returns the request counter by "route|class" and the number of
// duration histogram series.
func gather(t *testing.T, reg *prometheus.Registry) (map[string]float64, int) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	series := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "moat_http_requests_total":
				counts[label(m, "route")+"|"+label(m, "code")] = m.GetCounter().GetValue()
			case "moat_http_request_duration_seconds":
				series++
			}
		}
	}
	return counts, series
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
