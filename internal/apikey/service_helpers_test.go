package apikey_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apikey"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/audit"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/gateway"
	"github.com/moat-dev/moat/internal/nonce"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/sandbox"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/sqlite"
)

var (
	t0          = time.Date(2031, 4, 5, 10, 0, 0, 0, time.UTC)
	testPepper  = []byte("apikey service test pepper")
	identityKey = bytes.Repeat([]byte{0x17}, 32)
	boxKey      = bytes.Repeat([]byte{0x2a}, secrets.KeySize)
)

const (
	owner    = "acc-owner"
	ownerTo  = "owner@example.com"
	other    = "acc-other"
	clientIP = "203.0.113.5"
	ttl      = 5 * time.Second
)

// gate is a step-up gate the test controls; it records what it was asked.
type gate struct {
	mu     sync.Mutex
	refuse error
	asked  []string // accountID/sessionID
}

func (g *gate) Check(_ context.Context, accountID, sessionID string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.asked = append(g.asked, accountID+"/"+sessionID)
	return g.refuse
}

func (g *gate) set(err error) {
	g.mu.Lock()
	g.refuse = err
	g.mu.Unlock()
}

func (g *gate) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.asked)
}

// countingStore counts the hot-path lookups that reach the database.
type countingStore struct {
	store.Store
	lookups atomic.Int64
}

func (c *countingStore) GetAPIKeyByPublicKey(ctx context.Context, pub string) (store.APIKey, error) {
	c.lookups.Add(1)
	return c.Store.GetAPIKeyByPublicKey(ctx, pub)
}

// env is a node: the service over a real SQLite file, the gateway with the
// service as its KeyLookup, and the sandbox upstream keeping balances in
// the same store.
type env struct {
	t     *testing.T
	path  string
	db    *sqlite.Store
	count *countingStore
	clock *clock.Fake
	gate  *gate
	svc   *apikey.Service
	gw    *gateway.Gateway
	nonce *atomic.Uint64
	actor apikey.Actor
}

func newEnv(t *testing.T) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "moat.db")
	db, err := sqlite.OpenAndMigrate(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{t: t, path: path, db: db, clock: clock.NewFake(t0), nonce: new(atomic.Uint64),
		actor: apikey.Actor{IP: clientIP, UserAgent: "Firefox/140.0", SessionID: "sess-1", DeviceID: "dev-1"}}
	e.nonce.Store(1616492376594)
	ctx := context.Background()
	for id, email := range map[string]string{owner: ownerTo, other: "other@example.com"} {
		a := store.Account{ID: id, Email: email, Role: store.RoleUser, CreatedAt: t0}
		if id == owner {
			a.AntiPhishingCode = "blue heron 42"
		}
		if err := db.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	e.count = &countingStore{Store: db}
	e.svc, e.gate = e.node()
	e.gw = e.gateway(e.svc)
	return e
}

// node returns another service over the same database and clock: a second
// moat node with its own cache.
func (e *env) node() (*apikey.Service, *gate) {
	e.t.Helper()
	box, err := secrets.NewBox(boxKey, rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	mailer, err := notify.NewMailer(notify.MailerConfig{Brand: "Moat", PublicOrigin: "https://moat.example"}, e.clock, rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	g := &gate{}
	svc, err := apikey.NewService(apikey.ServiceDeps{
		Store: e.count, Clock: e.clock, Rand: rand.Reader, Box: box, Pepper: testPepper,
		Audit: audit.New(e.clock), Mailer: mailer, StepUp: g, CacheTTL: ttl,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return svc, g
}

func (e *env) gateway(keys *apikey.Service) *gateway.Gateway {
	e.t.Helper()
	sb, err := sandbox.New(sandbox.Config{Store: sandbox.NewPersistent(e.db, sandbox.DefaultSeed()),
		IdentityKeys: [][]byte{identityKey}, Clock: e.clock, Rand: rand.Reader})
	if err != nil {
		e.t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Config{
		Keys: keys, Nonces: nonce.NewMemory(0), Counters: nonce.NewMemoryCounter(), Upstream: sb,
		IdentityKey: identityKey, PasswordPepper: testPepper, Clock: e.clock,
		Tiers:   map[string]apikey.Tier{apikey.DefaultTierName: {Max: 1e9, DecayPerSecond: 1}},
		Lockout: &apikey.Lockout{}, OnUse: keys.OnUse,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return gw
}

// create makes a key through the service with the given permissions (and
// otherwise defaults) and fails the test on error.
func (e *env) create(mutate func(in *apikey.CreateInput), perms ...string) (apikey.View, string) {
	e.t.Helper()
	in := apikey.CreateInput{Name: "grid bot", Permissions: perms}
	if mutate != nil {
		mutate(&in)
	}
	v, secret, err := e.svc.Create(context.Background(), owner, e.actor, in)
	if err != nil {
		e.t.Fatalf("Create: %v", err)
	}
	return v, secret
}

// bot is a client holding a key, calling one gateway.
type bot struct {
	e      *env
	gw     *gateway.Gateway
	pub    string
	secret string
	ip     string
	otp    string
}

func (e *env) bot(v apikey.View, secret string) *bot {
	return &bot{e: e, gw: e.gw, pub: v.PublicKey, secret: secret, ip: clientIP}
}

// call signs a call as Kraken clients do and returns the answer's errors
// and result.
func (b *bot) call(method string, params url.Values) ([]string, json.RawMessage) {
	b.e.t.Helper()
	n := strconv.FormatUint(b.e.nonce.Add(1), 10)
	form := url.Values{"nonce": {n}}
	for k, v := range params {
		form[k] = v
	}
	if b.otp != "" {
		form.Set("otp", b.otp)
	}
	body := form.Encode()
	path := "/0/private/" + method
	raw, err := apikey.DecodeSecret(b.secret)
	if err != nil {
		b.e.t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.RemoteAddr = b.ip + ":40000"
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("API-Key", b.pub)
	r.Header.Set("API-Sign", apikey.Sign(path, n, []byte(body), raw))
	w := httptest.NewRecorder()
	b.gw.ServeHTTP(w, r)
	var env struct {
		Error  []string        `json:"error"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || w.Code != http.StatusOK {
		b.e.t.Fatalf("%s: HTTP %d %s", method, w.Code, w.Body)
	}
	return env.Error, env.Result
}

// balance makes a signed Balance call and fails unless it succeeds.
func (b *bot) balance() map[string]string {
	b.e.t.Helper()
	errs, res := b.call("Balance", nil)
	if len(errs) != 0 {
		b.e.t.Fatalf("Balance: %v", errs)
	}
	var m map[string]string
	if err := json.Unmarshal(res, &m); err != nil {
		b.e.t.Fatal(err)
	}
	return m
}

// refused makes a signed Balance call and fails unless it is refused with
// want.
func (b *bot) refused(want apikey.KrakenError) {
	b.e.t.Helper()
	if errs, _ := b.call("Balance", nil); len(errs) != 1 || errs[0] != string(want) {
		b.e.t.Fatalf("Balance: %v, want %s", errs, want)
	}
}

// code is err's apperr code and field.
func code(err error) (apperr.Code, string) {
	if e, ok := apperr.As(err); ok {
		return e.Code, e.Field
	}
	return apperr.CodeOf(err), ""
}

func (e *env) audit(types ...string) []store.AuditEvent {
	e.t.Helper()
	evs, err := e.db.ListAudit(context.Background(), store.AuditFilter{Types: types})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func (e *env) mail() []store.OutboxMessage {
	e.t.Helper()
	msgs, err := e.db.ListOutbox(context.Background(), notify.ChannelEmail, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return msgs
}

func (e *env) lock(accountID string) {
	e.t.Helper()
	_, err := e.db.UpdateAccount(context.Background(), accountID, func(a *store.Account) error {
		a.LockedAt, a.LockReason = e.clock.Now(), "locked by the test"
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func isNotFound(err error) bool { return errors.Is(err, apikey.ErrKeyNotFound) }
