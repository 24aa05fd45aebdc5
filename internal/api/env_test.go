package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/httpx"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/notify/mailtest"
	"github.com/moat-dev/moat/internal/recovery"
	"github.com/moat-dev/moat/internal/recovery/recoverytest"
	"github.com/moat-dev/moat/internal/store/sqlite"
)

// env is the API mounted as internal/server mounts it (behind RequireJSON
// and the middleware stack) over a real account service on a SQLite file.
type env struct {
	t      *testing.T
	store  *sqlite.Store
	svc    *account.Service
	rec    *recovery.Service
	clock  *clock.Fake
	srv    *httptest.Server
	origin string
}

const testPassword = "lantern-quarry-velvet-42"

func newEnv(t *testing.T, factors ...account.Factor) *env {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	origin := "http://" + srv.Listener.Addr().String()
	sv := recoverytest.NewServices(t, origin, factors...)
	st, clk, svc, rec := sv.Store, sv.Clock, sv.Accounts, sv.Recovery
	apiMux := http.NewServeMux()
	api.New(api.Deps{Accounts: svc, Recovery: rec}).Register(apiMux)
	mux := http.NewServeMux()
	mux.Handle("/api/", httpx.RequireJSON(apiMux))
	h, err := httpx.Stack(mux, httpx.Options{
		Logger: slog.New(slog.DiscardHandler), Rand: rand.Reader, PublicOrigin: origin, MaxBodyBytes: 1 << 20,
		BodyLimits: map[string]int64{api.PathRecoveryCases: api.MaxRecoveryCaseBytes},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	return &env{t: t, store: st, svc: svc, rec: rec, clock: clk, srv: srv, origin: origin}
}

type resp struct {
	status int
	header http.Header
	raw    []byte
}

// json decodes the body into a generic map.
func (r *resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.raw, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, r.raw)
	}
	return m
}

func (r *resp) str(t *testing.T, key string) string {
	t.Helper()
	s, _ := r.json(t)[key].(string)
	return s
}

// call sends a request. body may be nil, a string (sent as is) or a value
// (marshalled). hdr are header pairs; Content-Type defaults to JSON for
// anything but GET.
func (e *env) call(method, path string, body any, hdr ...string) *resp {
	e.t.Helper()
	e.clock.Advance(time.Second) // distinct e-mail times
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if method != "GET" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return &resp{status: res.StatusCode, header: res.Header, raw: raw}
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

func expect(t *testing.T, r *resp, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
}

// expectError checks an error response's status, stable code and field.
func expectError(t *testing.T, r *resp, status int, code apperr.Code, field string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	var b struct {
		Error struct {
			Code    apperr.Code `json:"code"`
			Message string      `json:"message"`
			Field   string      `json:"field"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.raw, &b); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, r.raw)
	}
	if b.Error.Code != code || b.Error.Field != field || b.Error.Message == "" {
		t.Errorf("error %+v, want code %q field %q and a message", b.Error, code, field)
	}
}

func (e *env) lastMail(addr string) string {
	e.t.Helper()
	msgs, err := e.store.ListOutbox(e.t.Context(), notify.ChannelEmail, 100)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range msgs {
		if m.To == addr {
			return m.Body
		}
	}
	e.t.Fatalf("no e-mail to %s", addr)
	return ""
}

func (e *env) link(body, path string) string {
	e.t.Helper()
	return mailtest.LinkToken(e.t, body, e.origin+path)
}

func (e *env) code(body string) string {
	e.t.Helper()
	return mailtest.Code(e.t, body)
}

// signUp creates and confirms an account through the API.
func (e *env) signUp(addr string) {
	e.t.Helper()
	expect(e.t, e.call("POST", "/api/v1/signup", map[string]string{"email": addr, "password": testPassword}), 202)
	expect(e.t, e.call("POST", "/api/v1/confirm", map[string]string{"token": e.link(e.lastMail(addr), "/confirm")}), 200)
}

// signIn completes a sign-in (approving the device by code) and returns the
// session and device tokens.
func (e *env) signIn(addr, deviceToken string) (session, device string) {
	e.t.Helper()
	r := e.call("POST", "/api/v1/signin", map[string]string{"email": addr, "password": testPassword, "device_token": deviceToken})
	expect(e.t, r, 200)
	if r.str(e.t, "step") == "device_approval" {
		r = e.call("POST", "/api/v1/signin/device", map[string]string{"pending_token": r.str(e.t, "pending_token"), "code": e.code(e.lastMail(addr))})
		expect(e.t, r, 200)
	}
	if r.str(e.t, "step") != "done" {
		e.t.Fatalf("sign-in not done: %s", r.raw)
	}
	device = r.str(e.t, "device_token")
	if device == "" {
		device = deviceToken
	}
	return r.str(e.t, "session_token"), device
}

// fakeFactor is a second factor every account has, answered by one code.
type fakeFactor struct{ name, code string }

func (f fakeFactor) Name() string                                   { return f.name }
func (f fakeFactor) Enrolled(context.Context, string) (bool, error) { return true, nil }
func (f fakeFactor) Verify(_ context.Context, _, response string) error {
	if response != f.code {
		return apperr.Field(apperr.TokenInvalid, "", "That code is not right.")
	}
	return nil
}
