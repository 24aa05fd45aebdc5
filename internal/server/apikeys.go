package server

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apikey"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/audit"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/gateway"
	"github.com/moat-dev/moat/internal/httpx"
	"github.com/moat-dev/moat/internal/nonce"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/password"
	"github.com/moat-dev/moat/internal/ratelimit"
	"github.com/moat-dev/moat/internal/sandbox"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

// This file wires API keys: the apikey service, the hot counters of the
// signed API (nonces, rate counters; in Redis when configured), the
// gateway in front of the upstream (the exchange backend, or the built-in
// sandbox), the step-up that confirms every key change a user makes, and
// the /0/private/ mount.

// Labels of the keys derived from the master key for API keys. Each label
// gives an independent key, so neither reveals the other or the master key.
const (
	identityKeyInfo = "moat gateway identity"
	pepperKeyInfo   = "moat apikey pepper"
)

// signedAPIPrefix is where the signed API lives (Kraken's private REST
// path).
const signedAPIPrefix = apikey.PathPrefix

// secondFactors is the part of the 2FA service (*mfa.Service) the API key
// step-up uses, once internal/mfa is wired: which second factors an account
// has, whether its session's is fresh, and verifying a code typed into the
// key forms.
type secondFactors interface {
	EnrolledMethods(ctx context.Context, accountID string) ([]string, error)
	CheckStepUp(ctx context.Context, p account.Principal) error
	StepUp(ctx context.Context, p account.Principal, method, response string, c account.Client) (time.Time, error)
}

// apiKeyDeps is what buildAPIKeys takes from New.
type apiKeyDeps struct {
	cfg       config.Config
	store     store.Store
	clock     clock.Clock
	rand      io.Reader
	box       *secrets.Box
	masterKey []byte
	audit     *audit.Log
	mailer    *notify.Mailer
	accounts  *account.Service
	hasher    *password.Hasher
	counter   ratelimit.Counter
	redis     *redis.Client // nil: nonces and rate counters in memory (one node)
	logger    *slog.Logger
	// mfa is the 2FA service; nil until it is wired (then no account has a
	// second factor, and every change is confirmed with the password).
	mfa secondFactors
}

// apiKeys is the built API key capability.
type apiKeys struct {
	svc     *apikey.Service
	stepUp  *keyStepUp
	gateway *gateway.Gateway
	// calls counts signed API calls by method and outcome (/metrics).
	calls *prometheus.CounterVec
}

// buildAPIKeys builds the API key service, the gateway and its upstream
// from the configuration, and hooks the service to account locks.
func buildAPIKeys(d apiKeyDeps) (*apiKeys, error) {
	ac := d.cfg.APIKeys
	identityKey, err := ac.IdentityKeyBytes()
	if err != nil {
		return nil, fmt.Errorf("apikeys.identity_key: %w", err)
	}
	if identityKey == nil {
		if identityKey, err = hkdf.Key(sha256.New, d.masterKey, nil, identityKeyInfo, 32); err != nil {
			return nil, fmt.Errorf("derive gateway identity key: %w", err)
		}
	}
	// The pepper of key passwords (the otp field) lives outside the
	// database, so a dump alone cannot test guesses against their hashes.
	pepper, err := hkdf.Key(sha256.New, d.masterKey, nil, pepperKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive API key password pepper: %w", err)
	}

	k := &apiKeys{stepUp: &keyStepUp{store: d.store, clock: d.clock, hasher: d.hasher, counter: d.counter,
		accounts: d.accounts, mfa: d.mfa, window: d.cfg.Security.ThrottleWindow}}
	unused := ac.UnusedAfter
	if unused == 0 {
		unused = -1 // configured 0: never flag (the service reads 0 as its default)
	}
	k.svc, err = apikey.NewService(apikey.ServiceDeps{
		Store: d.store, Clock: d.clock, Rand: d.rand, Box: d.box, Pepper: pepper,
		Audit: d.audit, Mailer: d.mailer, StepUp: k.stepUp,
		CacheTTL: ac.CacheTTL, UnusedAfter: unused,
		Logger: d.logger.With("component", "apikey"),
	})
	if err != nil {
		return nil, err
	}
	// A locked account's keys stop at once on this node (other nodes:
	// within apikeys.cache_ttl).
	d.accounts.OnLock(k.svc.InvalidateAccount)

	// Nonce high-water marks and rate counters: in Redis when configured,
	// so a nonce used on one node is refused on every other.
	var nonces nonce.Tracker
	var counters nonce.Counter
	if d.redis != nil {
		nonces = nonce.NewRedis(d.redis, d.cfg.Redis.KeyPrefix, ac.NonceMaxSeen)
		counters = nonce.NewRedisCounter(d.redis, d.cfg.Redis.KeyPrefix)
	} else {
		nonces = nonce.NewMemory(ac.NonceMaxSeen)
		counters = nonce.NewMemoryCounter()
	}

	trusted, err := d.cfg.Security.TrustedProxyPrefixes()
	if err != nil {
		return nil, err
	}
	upstream, err := buildUpstream(d, identityKey)
	if err != nil {
		return nil, err
	}
	routes, err := ac.RoutesTable()
	if err != nil {
		return nil, fmt.Errorf("apikeys.routes: %w", err)
	}
	k.calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moat_signed_api_calls_total",
		Help: "Signed API (/0/private/) calls by method and outcome: ok, or the Kraken error answered.",
	}, []string{"method", "error"})
	lockout := ac.LockoutPolicy()
	k.gateway, err = gateway.New(gateway.Config{
		Keys:           k.svc,
		Nonces:         nonces,
		Counters:       counters,
		Upstream:       upstream,
		IdentityKey:    identityKey,
		PasswordPepper: pepper,
		Clock:          d.clock,
		Routes:         routes,
		Tiers:          ac.TierTable(),
		DefaultTier:    ac.DefaultTier,
		Lockout:        &lockout,
		TrustedProxies: trusted,
		MaxBodyBytes:   ac.MaxBodyBytes,
		OnUse:          k.svc.OnUse,
		Observe:        k.observe,
		Logger:         d.logger.With("component", "gateway"),
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// buildUpstream is where verified calls go: the configured exchange
// backend, or the built-in sandbox keeping its books in the store (seeded
// with play money for new accounts in development mode).
func buildUpstream(d apiKeyDeps, identityKey []byte) (http.Handler, error) {
	if u := d.cfg.APIKeys.Upstream; u != "" {
		target, err := url.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("apikeys.upstream: %w", err)
		}
		return gateway.NewReverseProxy(target, d.logger.With("component", "gateway")), nil
	}
	var seed map[string]string
	if d.cfg.Dev {
		seed = sandbox.DefaultSeed()
	}
	return sandbox.New(sandbox.Config{
		Store:        sandbox.NewPersistent(d.store, seed),
		IdentityKeys: [][]byte{identityKey},
		Clock:        d.clock,
		Rand:         d.rand,
		Logger:       d.logger.With("component", "sandbox"),
	})
}

// observe feeds the calls counter. Method is empty for unknown methods,
// so the label values stay a small fixed set.
func (k *apiKeys) observe(o gateway.Outcome) {
	method := o.Method
	if method == "" {
		method = "unknown"
	}
	outcome := "ok"
	if o.Error != "" {
		outcome = string(o.Error)
	}
	k.calls.WithLabelValues(method, outcome).Inc()
}

// handler is the gateway behind the middleware a signed call needs —
// request logging and metrics, panic recovery, security headers — and
// none of the browser's: no session, no cross-origin check (the caller is
// authenticated by its key and signature, not by ambient cookies), and the
// gateway's own body limit.
func (k *apiKeys) handler(logger *slog.Logger, metrics *httpx.Metrics, rand io.Reader, https bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(signedAPIPrefix, k.gateway)
	var h http.Handler = mux
	h = httpx.SecurityHeaders(https)(h)
	h = httpx.Recover(h)
	return httpx.Observe(logger, metrics, rand)(h)
}

// withSignedAPI sends /0/private/ to signed and everything else to rest
// (the pages and the JSON API behind the full middleware stack).
func withSignedAPI(rest, signed http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, signedAPIPrefix) {
			signed.ServeHTTP(w, r)
			return
		}
		rest.ServeHTTP(w, r)
	})
}

// APIKeys is the API key service (the CLI and benchmarks call it).
func (s *Server) APIKeys() *apikey.Service {
	if s.keys == nil {
		return nil
	}
	return s.keys.svc
}

// Step-up for API key changes.
//
// A key can drain an account, so creating, changing, rotating or deleting
// one needs more than a session cookie: internal/account has no exported
// step-up check (its requireStepUp guards the password change only), so the
// gate lives here.
//
//   - An account with a second factor (asked of the 2FA service when it is
//     wired): the session must have verified it within the last
//     account.StepUpWithin (5 minutes) — the 2FA service's CheckStepUp
//     decides — or the request carries a fresh code (TOTP, SMS or backup
//     code), which is verified through the 2FA service and recorded on
//     the session (account.RecordStepUp), so the next changes within 5
//     minutes need none.
//   - An account without one: the request must carry the account's
//     current password, checked against its stored hash (argon2id) every
//     time, with failures counted per account like the password-change
//     form's, so a stolen session cannot guess the password through it.
//
// The adapters call Confirm with what the form or request carried; it
// returns a context that holds the confirmation, and the apikey service's
// gate (Check) admits the change only with that context, for that account
// and session. The confirmation cannot be forged by another package: its
// context key is unexported.

// Step-up answers a form asks for (StepUpAsk).
const (
	askNothing  = ""
	askPassword = "password"
	askCode     = "second_factor"
)

// keyStepUp implements apikey.StepUpGate and the adapters' KeyStepUp.
type keyStepUp struct {
	store    store.Store
	clock    clock.Clock
	hasher   *password.Hasher
	counter  ratelimit.Counter
	accounts *account.Service
	mfa      secondFactors
	window   time.Duration // failures of the password are counted per window
}

// confirmLimit is how many wrong passwords an account may send to the key
// forms per throttle window (as for the password change).
const confirmLimit = 5

type confirmedKey struct{}

type confirmation struct{ accountID, sessionID string }

// Check implements apikey.StepUpGate.
func (g *keyStepUp) Check(ctx context.Context, accountID, sessionID string) error {
	c, ok := ctx.Value(confirmedKey{}).(confirmation)
	if ok && accountID != "" && sessionID != "" && c.accountID == accountID && c.sessionID == sessionID {
		return nil
	}
	return apperr.New(apperr.StepUpNeeded, "Confirm it's you to change API keys.")
}

// StepUpAsk says what p must give to change a key now: nothing (a fresh
// second factor), "password", or "second_factor" with the methods that
// take a typed code.
func (g *keyStepUp) StepUpAsk(ctx context.Context, p account.Principal) (string, []string, error) {
	methods, err := g.enrolled(ctx, p.Account.ID)
	if err != nil {
		return "", nil, err
	}
	if len(methods) == 0 {
		return askPassword, nil, nil
	}
	if err := g.mfa.CheckStepUp(ctx, p); err == nil {
		return askNothing, methods, nil
	} else if apperr.CodeOf(err) != apperr.StepUpNeeded {
		return "", nil, err
	}
	return askCode, typedMethods(methods), nil
}

// StepUpConfirm checks what the request carried (the account password, or
// a second-factor method and code) and returns ctx carrying the
// confirmation for the apikey service.
func (g *keyStepUp) StepUpConfirm(ctx context.Context, p account.Principal, pw, method, code string, c account.Client) (context.Context, error) {
	methods, err := g.enrolled(ctx, p.Account.ID)
	if err != nil {
		return ctx, err
	}
	if len(methods) == 0 {
		if err := g.checkPassword(ctx, p.Account.ID, pw); err != nil {
			return ctx, err
		}
		return g.confirmed(ctx, p), nil
	}
	err = g.mfa.CheckStepUp(ctx, p)
	if err == nil {
		return g.confirmed(ctx, p), nil
	}
	if apperr.CodeOf(err) != apperr.StepUpNeeded {
		return ctx, err
	}
	code = strings.TrimSpace(code)
	typed := typedMethods(methods)
	if code == "" || len(typed) == 0 {
		msg := "Enter a code from your authenticator app, a text message or a backup code to confirm this change."
		if len(typed) == 0 {
			msg = "Confirm it's you with your security key first, then make this change within 5 minutes."
		}
		return ctx, apperr.Field(apperr.StepUpNeeded, "step_up_code", msg)
	}
	if method == "" {
		method = guessMethod(typed, code)
	}
	at, err := g.mfa.StepUp(ctx, p, method, code, c)
	if err != nil {
		if e, ok := apperr.As(err); ok && e.Field == "" && e.Code != apperr.Internal {
			e2 := *e
			e2.Field = "step_up_code"
			return ctx, &e2
		}
		return ctx, err
	}
	if err := g.accounts.RecordStepUp(ctx, p, at); err != nil {
		return ctx, err
	}
	return g.confirmed(ctx, p), nil
}

func (g *keyStepUp) confirmed(ctx context.Context, p account.Principal) context.Context {
	return context.WithValue(ctx, confirmedKey{}, confirmation{accountID: p.Account.ID, sessionID: p.Session.ID})
}

// enrolled lists the account's second factors; none without a 2FA service.
func (g *keyStepUp) enrolled(ctx context.Context, accountID string) ([]string, error) {
	if g.mfa == nil {
		return nil, nil
	}
	return g.mfa.EnrolledMethods(ctx, accountID)
}

// checkPassword verifies the account's current password, counting
// failures per account and window.
func (g *keyStepUp) checkPassword(ctx context.Context, accountID, pw string) error {
	if pw == "" {
		return apperr.Field(apperr.StepUpNeeded, "confirm_password", "Enter your password to confirm this change.")
	}
	key := "apikey-confirm:" + accountID
	n, err := g.counter.Count(ctx, key, g.window)
	if err != nil {
		return err
	}
	if n >= confirmLimit {
		return &apperr.Error{Code: apperr.RateLimited, Field: "confirm_password", RetryAfter: g.window,
			Message: "Too many wrong passwords. Wait a few minutes and try again."}
	}
	a, err := g.store.GetAccount(ctx, accountID)
	if err != nil {
		return fmt.Errorf("step-up: load account: %w", err)
	}
	ok := false
	if len(pw) <= 1024 {
		ok, _, err = g.hasher.Verify(pw, a.PasswordHash)
		if err != nil && !errors.Is(err, password.ErrUnknownFormat) {
			return fmt.Errorf("step-up: verify password: %w", err)
		}
	}
	if !ok {
		if _, err := g.counter.Incr(ctx, key, 1, g.window); err != nil {
			return err
		}
		return apperr.Field(apperr.BadCredential, "confirm_password", "That is not your password. Check it and try again.")
	}
	return nil
}

// typedMethods are the second factors answered with a typed code.
func typedMethods(methods []string) []string {
	var out []string
	for _, m := range methods {
		switch m {
		case "totp", "sms", "backup_code":
			out = append(out, m)
		}
	}
	return out
}

// guessMethod picks the method a code was meant for when the form did not
// say: six digits are an app or SMS code (the app when both are set up),
// anything else a backup code.
func guessMethod(typed []string, code string) string {
	six := len(code) == 6 && strings.Trim(code, "0123456789") == ""
	for _, m := range typed {
		if six && (m == "totp" || m == "sms") {
			return m
		}
		if !six && m == "backup_code" {
			return m
		}
	}
	return typed[0]
}
