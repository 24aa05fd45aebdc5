package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apikey"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/gateway/identity"
	"github.com/moat-dev/moat/internal/nonce"
)

var (
	testIdentityKey = bytes.Repeat([]byte{0x42}, 32)
	testPepper      = []byte("test pepper")
	t0              = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// fakeKeys is a KeyLookup over a map.
type fakeKeys struct {
	mu    sync.Mutex
	byPub map[string]apikey.Credential
	err   error
	calls int
}

func (f *fakeKeys) LookupKey(_ context.Context, pub string) (apikey.Credential, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return apikey.Credential{}, f.err
	}
	c, ok := f.byPub[pub]
	if !ok {
		return apikey.Credential{}, apikey.ErrKeyNotFound
	}
	return c, nil
}

func (f *fakeKeys) update(pub string, fn func(c *apikey.Credential)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.byPub[pub]
	fn(&c)
	f.byPub[pub] = c
}

// recorder is an upstream that records what it receives and answers like
// Kraken.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
	body [][]byte
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.body = append(r.body, b)
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"error":[],"result":{"ok":true}}`)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

func (r *recorder) last() (*http.Request, []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		return nil, nil
	}
	return r.reqs[len(r.reqs)-1], r.body[len(r.body)-1]
}

type harness struct {
	gw       *Gateway
	cfg      Config
	clock    *clock.Fake
	keys     *fakeKeys
	upstream *recorder
	funding  *recorder
	mu       sync.Mutex
	nonce    uint64
	nkeys    int
	allow500 bool // only where a dependency fails on purpose
}

func newHarness(t testing.TB, mutate func(c *Config)) *harness {
	t.Helper()
	h := &harness{
		clock:    clock.NewFake(t0),
		keys:     &fakeKeys{byPub: map[string]apikey.Credential{}},
		upstream: &recorder{},
		funding:  &recorder{},
		nonce:    1616492376594,
	}
	h.cfg = Config{
		Keys:           h.keys,
		Nonces:         nonce.NewMemory(0),
		Counters:       nonce.NewMemoryCounter(),
		Upstream:       h.upstream,
		IdentityKey:    testIdentityKey,
		PasswordPepper: testPepper,
		Clock:          h.clock,
	}
	if mutate != nil {
		mutate(&h.cfg)
	}
	gw, err := New(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.gw = gw
	return h
}

// testKey is a key as its owner's bot holds it.
type testKey struct {
	id     string
	pub    string
	secret []byte
}

func (h *harness) addKey(t testing.TB, perms apikey.Permissions, mutate func(c *apikey.Credential)) testKey {
	t.Helper()
	h.mu.Lock()
	h.nkeys++
	n := h.nkeys
	h.mu.Unlock()
	pub, err := apikey.NewPublicKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := apikey.NewSecret(rand.Reader)
	c := apikey.Credential{
		Key: apikey.Key{
			ID: fmt.Sprintf("key%d", n), AccountID: fmt.Sprintf("acct%d", n), Name: "bot",
			PublicKey: pub, Permissions: perms, CreatedAt: t0,
		},
		Secret: secret,
	}
	if mutate != nil {
		mutate(&c)
	}
	h.keys.mu.Lock()
	h.keys.byPub[pub] = c
	h.keys.mu.Unlock()
	return testKey{id: c.Key.ID, pub: pub, secret: secret}
}

func (h *harness) nextNonce() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nonce++
	return strconv.FormatUint(h.nonce, 10)
}

// signedRequest builds a request signed the way krakenex signs.
func (h *harness) signedRequest(k testKey, method string, form url.Values) *http.Request {
	if form == nil {
		form = url.Values{}
	}
	if !form.Has("nonce") {
		form.Set("nonce", h.nextNonce())
	}
	body := form.Encode()
	path := apikey.PathPrefix + method
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader([]byte(body)))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set(apikey.HeaderKey, k.pub)
	r.Header.Set(apikey.HeaderSign, apikey.Sign(path, form.Get("nonce"), []byte(body), k.secret))
	r.RemoteAddr = "192.0.2.10:50000"
	return r
}

type answer struct {
	status int
	Error  []string        `json:"error"`
	Result json.RawMessage `json:"result"`
}

func (h *harness) do(t testing.TB, r *http.Request) answer {
	t.Helper()
	w := httptest.NewRecorder()
	h.gw.ServeHTTP(w, r)
	var a answer
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
		t.Fatalf("%s %s: answer is not JSON (%d): %q", r.Method, r.URL.Path, w.Code, w.Body.String())
	}
	a.status = w.Code
	if a.status >= 500 && a.status != http.StatusBadGateway && !h.allow500 {
		t.Errorf("%s: HTTP %d", r.URL.Path, a.status)
	}
	return a
}

// call signs and sends one call and returns its answer.
func (h *harness) call(t testing.TB, k testKey, method string, form url.Values) answer {
	t.Helper()
	return h.do(t, h.signedRequest(k, method, form))
}

func (a answer) err() string {
	if len(a.Error) == 0 {
		return ""
	}
	return a.Error[0]
}

func expectOK(t testing.TB, a answer) {
	t.Helper()
	if a.status != http.StatusOK || len(a.Error) != 0 {
		t.Fatalf("want success, got HTTP %d %v", a.status, a.Error)
	}
}

func expectErr(t testing.TB, a answer, want apikey.KrakenError) {
	t.Helper()
	if a.err() != string(want) || len(a.Error) != 1 {
		t.Fatalf("want %s, got HTTP %d %v", want, a.status, a.Error)
	}
	if a.Result != nil {
		t.Fatalf("an error answer carries a result: %s", a.Result)
	}
}

func verifyForwarded(t testing.TB, r *http.Request, body []byte, at time.Time) identity.Identity {
	t.Helper()
	id, err := identity.Verify(r.Header, r.Method, r.URL.Path, body, at, identity.DefaultMaxSkew, testIdentityKey)
	if err != nil {
		t.Fatalf("forwarded identity does not verify: %v", err)
	}
	return id
}
