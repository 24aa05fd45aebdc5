package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/postgres/pgtest"
	"github.com/moat-dev/moat/internal/testenv"
	"github.com/moat-dev/moat/internal/web"
)

const testPassword = "violet-tractor-mango-cloud-91"

// testConfig is the embedded default on a temp data dir, with the argon2
// minimum OWASP allows for one pass less per hash (tests hash a lot).
func testConfig(t *testing.T, mutate ...func(*config.Config)) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Addr = "127.0.0.1:0"
	cfg.PublicOrigin = "http://127.0.0.1:8080"
	for _, m := range mutate {
		m(&cfg)
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

type testServer struct {
	*Server
	srv  *httptest.Server
	logs *bytes.Buffer
}

func start(t *testing.T, cfg config.Config, opts ...Option) *testServer {
	t.Helper()
	logs := &bytes.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s, err := New(context.Background(), cfg, logger, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return &testServer{Server: s, srv: ts, logs: logs}
}

func (ts *testServer) do(t *testing.T, method, path string, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, ts.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := ts.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var jsonCT = map[string]string{"Content-Type": "application/json"}

func TestOperationsEndpoints(t *testing.T) {
	ts := start(t, testConfig(t))

	resp := ts.do(t, "GET", "/healthz", "", nil)
	if body := readBody(t, resp); resp.StatusCode != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz: %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("Content-Security-Policy") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("security headers missing: %v", resp.Header)
	}
	if resp.Header.Get("Strict-Transport-Security") != "" {
		t.Error("HSTS over plain http to an http origin")
	}
	resp = ts.do(t, "GET", "/readyz", "", nil)
	if body := readBody(t, resp); resp.StatusCode != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/readyz: %d %q", resp.StatusCode, body)
	}
	resp = ts.do(t, "GET", "/metrics", "", nil)
	body := readBody(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(body, `moat_http_requests_total{code="2xx",route="GET /healthz"} 1`) {
		t.Errorf("/metrics: %d, lacks the healthz count:\n%.2000s", resp.StatusCode, body)
	}
	if !strings.Contains(body, "go_goroutines") {
		t.Error("/metrics lacks the Go runtime collector")
	}
}

func TestReadyzReportsStoreDown(t *testing.T) {
	ts := start(t, testConfig(t))
	ts.Store().Close()
	resp := ts.do(t, "GET", "/readyz", "", nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the store closed: %d", resp.StatusCode)
	}
}

// TestSignUpThroughDevMailbox walks what a newcomer does: sign up, read the
// confirmation e-mail in the dev mailbox, follow its link, sign in, and
// check the session with /auth/verify.
func TestSignUpThroughDevMailbox(t *testing.T) {
	ts := start(t, testConfig(t, func(c *config.Config) { c.Security.DeviceApproval = false }))
	const email = "newcomer@example.com"

	resp := ts.do(t, "POST", "/api/v1/signup", `{"email":"`+email+`","password":"`+testPassword+`"}`, jsonCT)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("signup: %d %s", resp.StatusCode, readBody(t, resp))
	}

	resp = ts.do(t, "GET", "/dev/mailbox", "", nil)
	page := readBody(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(page, email) {
		t.Fatalf("mailbox: %d\n%s", resp.StatusCode, page)
	}
	m := regexp.MustCompile(`<a href="(http://127\.0\.0\.1:8080/confirm\?token=[^"]+)">`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no clickable confirmation link in the mailbox:\n%s", page)
	}
	link, err := url.Parse(strings.ReplaceAll(m[1], "&amp;", "&"))
	if err != nil {
		t.Fatal(err)
	}
	token := link.Query().Get("token")
	resp = ts.do(t, "POST", "/api/v1/confirm", `{"token":"`+token+`"}`, jsonCT)
	if resp.StatusCode != 200 {
		t.Fatalf("confirm: %d %s", resp.StatusCode, readBody(t, resp))
	}

	resp = ts.do(t, "POST", "/api/v1/signin", `{"email":"`+email+`","password":"`+testPassword+`"}`, jsonCT)
	var signin struct {
		Step         string `json:"step"`
		SessionToken string `json:"session_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&signin); err != nil || signin.SessionToken == "" {
		t.Fatalf("signin: %d %+v %v", resp.StatusCode, signin, err)
	}

	t.Run("forward auth with bearer", func(t *testing.T) {
		resp := ts.do(t, "GET", "/auth/verify", "", map[string]string{"Authorization": "Bearer " + signin.SessionToken})
		if resp.StatusCode != 200 || resp.Header.Get(HeaderAccountID) == "" || resp.Header.Get(HeaderRole) != "user" {
			t.Errorf("verify: %d %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("forward auth refuses", func(t *testing.T) {
		for name, hdr := range map[string]map[string]string{
			"no credentials":  nil,
			"wrong token":     {"Authorization": "Bearer " + strings.Repeat("A", 43)},
			"wrong cookie":    {"Cookie": "moat_session=" + strings.Repeat("A", 43)},
			"malformed token": {"Authorization": "Bearer not a token"},
			"other scheme":    {"Authorization": "Basic dXNlcjpwYXNz"},
		} {
			resp := ts.do(t, "GET", "/auth/verify", "", hdr)
			if resp.StatusCode != 401 || resp.Header.Get(HeaderAccountID) != "" {
				t.Errorf("%s: %d %v", name, resp.StatusCode, resp.Header)
			}
		}
	})
	t.Run("signed out session refused", func(t *testing.T) {
		resp := ts.do(t, "POST", "/api/v1/signout", "{}", map[string]string{
			"Content-Type": "application/json", "Authorization": "Bearer " + signin.SessionToken})
		if resp.StatusCode/100 != 2 {
			t.Fatalf("signout: %d %s", resp.StatusCode, readBody(t, resp))
		}
		resp = ts.do(t, "GET", "/auth/verify", "", map[string]string{"Authorization": "Bearer " + signin.SessionToken})
		if resp.StatusCode != 401 {
			t.Errorf("verify after signout: %d", resp.StatusCode)
		}
	})
}

// TestForwardAuthWebCookie signs in through the HTML form and checks the
// cookie it sets is the one /auth/verify reads.
func TestForwardAuthWebCookie(t *testing.T) {
	ts := start(t, testConfig(t, func(c *config.Config) { c.Security.DeviceApproval = false }))
	if _, err := ts.Accounts().CreateConfirmedUser(context.Background(), "web@example.com", testPassword, store.RoleSupport, "test"); err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	form := url.Values{"email": {"web@example.com"}, "password": {testPassword}}
	req, _ := http.NewRequest("POST", ts.srv.URL+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	u, _ := url.Parse(ts.srv.URL)
	var names []string
	for _, c := range jar.Cookies(u) {
		names = append(names, c.Name)
	}
	resp, err = client.Get(ts.srv.URL + "/auth/verify")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(HeaderRole) != "support" {
		t.Errorf("verify with the web session cookie: %d (cookies %v; server reads %q)", resp.StatusCode, names, web.SessionCookieName(false))
	}
}

func TestCrossSiteAndContentType(t *testing.T) {
	ts := start(t, testConfig(t))
	body := `{"email":"x@example.com","password":"` + testPassword + `"}`

	resp := ts.do(t, "POST", "/api/v1/signup", body, map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"})
	if resp.StatusCode != 403 {
		t.Errorf("cross-site API POST: %d", resp.StatusCode)
	}
	resp = ts.do(t, "POST", "/login", "email=x&password=y", map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example"})
	if resp.StatusCode != 403 {
		t.Errorf("cross-site form POST: %d", resp.StatusCode)
	}
	resp = ts.do(t, "POST", "/api/v1/signup", body, map[string]string{"Content-Type": "text/plain"})
	if b := readBody(t, resp); resp.StatusCode != 400 || !strings.Contains(b, `"invalid"`) {
		t.Errorf("text/plain API POST: %d %s", resp.StatusCode, b)
	}
	resp = ts.do(t, "POST", "/api/v1/signup", `{"email":"`+strings.Repeat("a", 2<<20)+`"}`, jsonCT)
	if b := readBody(t, resp); resp.StatusCode != 413 || !strings.Contains(b, `"too_large"`) {
		t.Errorf("oversize body: %d %.200s", resp.StatusCode, b)
	}
	resp = ts.do(t, "GET", "/api/v1/nothing-here", "", nil)
	if b := readBody(t, resp); resp.StatusCode != 404 || !strings.Contains(b, `"not_found"`) {
		t.Errorf("unknown API path: %d %s", resp.StatusCode, b)
	}
}

func TestDevMailboxOnlyInDevMode(t *testing.T) {
	ts := start(t, testConfig(t, func(c *config.Config) { c.Dev = false }))
	if resp := ts.do(t, "GET", "/dev/mailbox", "", nil); resp.StatusCode != 404 {
		t.Errorf("dev mailbox outside dev mode: %d", resp.StatusCode)
	}
}

func TestDevMailboxEscapes(t *testing.T) {
	ts := start(t, testConfig(t))
	err := ts.Store().EnqueueOutbox(context.Background(), store.OutboxMessage{
		ID: "m1", Channel: "email", To: "a@example.com", Subject: "<b>hi</b>",
		Body:      "Open http://127.0.0.1:8080/confirm?token=abc&x=<script>alert(1)</script>. Or javascript:alert(2)",
		CreatedAt: time.Now(), NextAttemptAt: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	page := readBody(t, ts.do(t, "GET", "/dev/mailbox", "", nil))
	if strings.Contains(page, "<script>") || strings.Contains(page, "<b>hi") {
		t.Errorf("mailbox does not escape:\n%s", page)
	}
	if !strings.Contains(page, `<a href="http://127.0.0.1:8080/confirm?token=abc&amp;x=">`) ||
		!strings.Contains(page, `&lt;script&gt;alert(1)&lt;/script&gt;`) || strings.Contains(page, `href="javascript`) {
		t.Errorf("link not rendered as expected:\n%s", page)
	}
}

func TestLinkify(t *testing.T) {
	got := linkify("Confirm: https://id.example.com/confirm?token=a-b_c. Thanks")
	want := []segment{{Text: "Confirm: "}, {Text: "https://id.example.com/confirm?token=a-b_c", URL: "https://id.example.com/confirm?token=a-b_c"}, {Text: ". Thanks"}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("segment %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if segs := linkify("no links here"); len(segs) != 1 || segs[0].URL != "" {
		t.Errorf("plain text: %+v", segs)
	}
}

func TestEncryptionKeyFile(t *testing.T) {
	cfg := testConfig(t)
	s1, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	s1.Close()
	path := filepath.Join(cfg.DataDir, "encryption.key")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", fi.Mode().Perm())
	}
	k1, _ := os.ReadFile(path)
	s2, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	k2, _ := os.ReadFile(path)
	if !bytes.Equal(k1, k2) {
		t.Error("second start replaced the key file")
	}

	key, err := loadMasterKey(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.NewBox(key, nil); err != nil {
		t.Errorf("generated key unusable: %v", err)
	}
}

func TestRunShutsDownOnCancel(t *testing.T) {
	s, err := New(context.Background(), testConfig(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
}

func TestRedisCounters(t *testing.T) {
	addr := testenv.RedisAddr(t)
	ts := start(t, testConfig(t, func(c *config.Config) { c.Redis.Addr, c.Redis.KeyPrefix = addr, testenv.RedisKeyPrefix(t) }))
	if resp := ts.do(t, "GET", "/readyz", "", nil); resp.StatusCode != 200 {
		t.Errorf("readyz with redis: %d", resp.StatusCode)
	}
}

func TestUnreachableRedisFailsStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, err = New(context.Background(), testConfig(t, func(c *config.Config) { c.Redis.Addr, c.Redis.KeyPrefix = addr, testenv.RedisKeyPrefix(t) }), nil)
	if err == nil || !strings.Contains(err.Error(), "redis") {
		t.Errorf("New with unreachable redis: %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestInjectedClockAndRand: the options reach the services.
func TestInjectedClockAndRand(t *testing.T) {
	fake := clock.NewFake(time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC))
	cfg := testConfig(t)
	ts := start(t, cfg, WithClock(fake), WithRand(zeroReader{}))
	resp := ts.do(t, "POST", "/api/v1/signup", `{"email":"clock@example.com","password":"`+testPassword+`"}`, jsonCT)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("signup: %d %s", resp.StatusCode, readBody(t, resp))
	}
	if page := readBody(t, ts.do(t, "GET", "/dev/mailbox", "", nil)); !strings.Contains(page, "2031-03-04 05:06:07 UTC") {
		t.Errorf("mailbox does not show the fake clock's time:\n%s", page)
	}
	key, err := os.ReadFile(filepath.Join(cfg.DataDir, "encryption.key"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(key)) != strings.Repeat("A", 43)+"=" {
		t.Errorf("key file not made from the injected rand: %q", key)
	}
}

// TestTwoNodesOnPostgres: two servers sharing PostgreSQL, Redis and the
// master key are interchangeable — a link e-mailed by one works on the
// other, and a session issued by one is accepted by the other.
func TestTwoNodesOnPostgres(t *testing.T) {
	testenv.PostgresDSN(t)
	redisAddr := testenv.RedisAddr(t)
	redisPrefix := testenv.RedisKeyPrefix(t)
	dsn := pgtest.NewDB(t).DSN(t)
	shared := func(c *config.Config) {
		c.Database.Driver = "postgres"
		c.Database.DSN = dsn
		c.Redis.Addr, c.Redis.KeyPrefix = redisAddr, redisPrefix
		c.Secrets.EncryptionKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
		c.Dev = true // the dev mailbox reads the shared outbox
		c.Security.DeviceApproval = false
	}
	a := start(t, testConfig(t, shared))
	b := start(t, testConfig(t, shared))

	const email = "two-nodes@example.com"
	if resp := a.do(t, "POST", "/api/v1/signup", `{"email":"`+email+`","password":"`+testPassword+`"}`, jsonCT); resp.StatusCode/100 != 2 {
		t.Fatalf("signup on A: %d %s", resp.StatusCode, readBody(t, resp))
	}
	page := readBody(t, b.do(t, "GET", "/dev/mailbox", "", nil))
	m := regexp.MustCompile(`/confirm\?token=([A-Za-z0-9_-]+)`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("B's mailbox lacks A's e-mail:\n%s", page)
	}
	if resp := b.do(t, "POST", "/api/v1/confirm", `{"token":"`+m[1]+`"}`, jsonCT); resp.StatusCode != 200 {
		t.Fatalf("confirm on B: %d %s", resp.StatusCode, readBody(t, resp))
	}
	resp := a.do(t, "POST", "/api/v1/signin", `{"email":"`+email+`","password":"`+testPassword+`"}`, jsonCT)
	var signin struct {
		SessionToken string `json:"session_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&signin); err != nil || signin.SessionToken == "" {
		t.Fatalf("signin on A: %d %v", resp.StatusCode, err)
	}
	resp = b.do(t, "GET", "/auth/verify", "", map[string]string{"Authorization": "Bearer " + signin.SessionToken})
	if resp.StatusCode != 200 || resp.Header.Get(HeaderAccountID) == "" {
		t.Errorf("verify on B: %d", resp.StatusCode)
	}
	if resp := b.do(t, "GET", "/readyz", "", nil); resp.StatusCode != 200 {
		t.Errorf("readyz on B: %d", resp.StatusCode)
	}
}

// TestOutboxSealedAtRest: a password-reset e-mail's link works (the dev
// mailbox opens the sealed body), but nothing of it is in the database
// file: whoever reads a copy of the database cannot reset a password.
func TestOutboxSealedAtRest(t *testing.T) {
	cfg := testConfig(t)
	ts := start(t, cfg)
	const email = "sealed@example.com"
	if _, err := ts.Accounts().CreateConfirmedUser(t.Context(), email, testPassword, store.RoleUser, "test"); err != nil {
		t.Fatal(err)
	}
	resp := ts.do(t, "POST", "/api/v1/password/forgot", `{"email":"`+email+`"}`, jsonCT)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("forgot: %d %s", resp.StatusCode, readBody(t, resp))
	}
	// The link is written just after the answer (background work).
	var m []string
	for deadline := time.Now().Add(5 * time.Second); m == nil; time.Sleep(10 * time.Millisecond) {
		page := readBody(t, ts.do(t, "GET", "/dev/mailbox", "", nil))
		if m = regexp.MustCompile(`/reset\?token=([A-Za-z0-9_-]+)`).FindStringSubmatch(page); m == nil && time.Now().After(deadline) {
			t.Fatalf("no reset link in the mailbox:\n%s", page)
		}
	}
	token := m[1]

	// Every byte SQLite holds: the database file and its write-ahead log.
	var raw []byte
	for _, name := range []string{"moat.db", "moat.db-wal"} {
		b, err := os.ReadFile(filepath.Join(cfg.DataDir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		raw = append(raw, b...)
	}
	if len(raw) == 0 {
		t.Fatal("found no database file to inspect")
	}
	if bytes.Contains(raw, []byte(token)) || bytes.Contains(raw, []byte("/reset?token=")) {
		t.Fatal("the reset link is stored in plain text")
	}
	if !bytes.Contains(raw, []byte(email)) {
		t.Fatal("the recipient is not in the file either: the test reads the wrong file")
	}

	// The link still works.
	resp = ts.do(t, "POST", "/api/v1/password/reset/check", `{"token":"`+token+`"}`, jsonCT)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reset/check: %d %s", resp.StatusCode, readBody(t, resp))
	}
}
