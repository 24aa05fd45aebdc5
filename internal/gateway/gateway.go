// Package gateway is moat's signed API: an http.Handler for
// POST /0/private/{method} that checks a Kraken-signed call and forwards it
// to the exchange backend with the client's credentials replaced by signed
// identity headers (see package identity).
//
// A call passes these checks in this order, and the first that fails
// answers in Kraken's envelope, {"error":["EAPI:Invalid key"]}, with HTTP
// 200 as Kraken does (client libraries read the error array and treat other
// statuses as transport failures):
//
//  1. the client address is not locked out      EGeneral:Temporary lockout
//  2. the method is in the routes table         EGeneral:Unknown method
//  3. POST, body within the size limit          EAPI:Bad request / 413
//  4. the request parses                        EAPI:Invalid key|signature|nonce, EGeneral:Invalid arguments
//  5. the key exists, is not deleted or expired EAPI:Invalid key
//  6. the signature verifies (current secret,
//     or the previous one during its grace)     EAPI:Invalid signature
//  7. the client address is on the allowlist    EGeneral:Permission denied
//  8. the account is not locked                 EGeneral:Permission denied
//  9. the key password (otp) matches            EAPI:Invalid signature
//  10. the nonce is fresh                       EAPI:Invalid nonce
//  11. the key has the route's permission       EGeneral:Permission denied
//  12. the key's rate counter has room          EAPI:Rate limit exceeded
//
// The order is deliberate. Nothing about a key is revealed before its
// signature verifies, except that it does not exist (or no longer does).
// Nothing a caller without the secret sends can change the key's state: the
// nonce is consumed and the rate counter raised only after the signature,
// the allowlist and the password passed, so a leaked secret used from a
// foreign address cannot push the nonce out of the real bot's reach, and
// replayed captures cannot drain its rate budget. Invalid key and invalid
// signature answers count towards the client address's lockout.
package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/moat-dev/moat/internal/apikey"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/gateway/identity"
	"github.com/moat-dev/moat/internal/nonce"
)

// KeyLookup finds a key by its public key (the API-Key header). It returns
// apikey.ErrKeyNotFound for an unknown key, deleted keys included or not as
// the store prefers (the gateway checks Key.DeletedAt itself). This is the
// hot path of every call: one indexed lookup and one decryption.
type KeyLookup interface {
	LookupKey(ctx context.Context, publicKey string) (apikey.Credential, error)
}

// Config is what a Gateway is built from.
type Config struct {
	Keys     KeyLookup     // required
	Nonces   nonce.Tracker // required
	Counters nonce.Counter // required: rate counters and the lockout
	// Upstream receives verified calls routed upstream (the exchange
	// backend, NewReverseProxy, or the built-in sandbox). Required.
	Upstream http.Handler
	// Funding receives verified deposit and withdrawal calls (moat's own
	// withdrawal protections); nil answers them EAPI:Feature disabled.
	Funding http.Handler
	// IdentityKey signs the identity headers; the upstream verifies with
	// the same key. At least 32 bytes. Required.
	IdentityKey []byte
	// PasswordPepper is the server-side key of apikey.HashPassword.
	// Required (keys with a password cannot be checked without it).
	PasswordPepper []byte

	Clock  clock.Clock    // default clock.System
	Routes *apikey.Routes // default apikey.DefaultRoutes()
	// Tiers and DefaultTier pick a key's rate limit by Credential.Tier.
	// Defaults: apikey.DefaultTiers() and apikey.DefaultTierName.
	Tiers       map[string]apikey.Tier
	DefaultTier string
	// Lockout: nil means apikey.DefaultLockout(); After 0 disables it.
	Lockout *apikey.Lockout
	// TrustedProxies whose X-Forwarded-For is believed; empty: none.
	TrustedProxies []netip.Prefix
	// MaxBodyBytes caps a request body; default 64 KiB.
	MaxBodyBytes int64

	// OnUse records that a key was used (last used time and address). It is
	// called after the call was answered, at most once per UseInterval per
	// key and node, or sooner when the address changes.
	OnUse       func(ctx context.Context, keyID string, at time.Time, ip string)
	UseInterval time.Duration // default 1 minute
	// Observe, if set, is told the outcome of every call (for metrics and
	// logs). It must be fast and must not keep the Outcome's slices.
	Observe func(Outcome)
	// Logger receives internal errors (a store or Redis failing); default
	// discards.
	Logger *slog.Logger
}

// Outcome describes one call for Observe.
type Outcome struct {
	Method    string
	AccountID string // empty if the key was not established
	KeyID     string
	ClientIP  netip.Addr
	// Error is empty when the call was forwarded.
	Error apikey.KrakenError
}

// Gateway is the signed-API handler. It is safe for concurrent use.
type Gateway struct {
	c        Config
	clock    clock.Clock
	routes   *apikey.Routes
	tiers    map[string]nonce.Limit
	defTier  nonce.Limit
	lockout  nonce.Limit
	lockOn   bool
	maxBody  int64
	log      *slog.Logger
	useEvery time.Duration

	mu      sync.Mutex
	touched map[string]touch
}

type touch struct {
	at time.Time
	ip string
}

// New checks c and returns a Gateway.
func New(c Config) (*Gateway, error) {
	switch {
	case c.Keys == nil || c.Nonces == nil || c.Counters == nil || c.Upstream == nil:
		return nil, errors.New("gateway: Keys, Nonces, Counters and Upstream are required")
	case len(c.IdentityKey) < 32:
		return nil, errors.New("gateway: IdentityKey must be at least 32 bytes")
	case len(c.PasswordPepper) == 0:
		return nil, errors.New("gateway: PasswordPepper is required")
	}
	g := &Gateway{c: c, clock: c.Clock, routes: c.Routes, maxBody: c.MaxBodyBytes, log: c.Logger,
		useEvery: c.UseInterval, touched: map[string]touch{}}
	if g.clock == nil {
		g.clock = clock.System{}
	}
	if g.routes == nil {
		g.routes = apikey.DefaultRoutes()
	}
	if g.maxBody <= 0 {
		g.maxBody = 64 << 10
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.useEvery <= 0 {
		g.useEvery = time.Minute
	}
	tiers := c.Tiers
	if tiers == nil {
		tiers = apikey.DefaultTiers()
	}
	g.tiers = make(map[string]nonce.Limit, len(tiers))
	for name, t := range tiers {
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("gateway: tier %q: %w", name, err)
		}
		g.tiers[name] = nonce.Limit{Max: t.Max, DecayPerSecond: t.DecayPerSecond}
	}
	def := c.DefaultTier
	if def == "" {
		def = apikey.DefaultTierName
	}
	var ok bool
	if g.defTier, ok = g.tiers[def]; !ok {
		return nil, fmt.Errorf("gateway: default tier %q is not defined", def)
	}
	lo := apikey.DefaultLockout()
	if c.Lockout != nil {
		lo = *c.Lockout
	}
	if err := lo.Validate(); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g.lockOn = lo.After > 0
	g.lockout = nonce.Limit{Max: float64(lo.After - 1), DecayPerSecond: lo.DecayPerSecond, LockFor: lo.For}
	return g, nil
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := g.clock.Now()
	ip := ClientIP(r, g.c.TrustedProxies)
	out := Outcome{ClientIP: ip}
	fail := func(status int, e apikey.KrakenError) {
		out.Error = e
		writeError(w, status, e)
		if g.c.Observe != nil {
			g.c.Observe(out)
		}
	}
	internal := func(what string, err error) {
		g.log.ErrorContext(ctx, "signed API: "+what, "err", err, "method", out.Method, "key", out.KeyID)
		fail(http.StatusInternalServerError, apikey.ErrInternal)
	}
	authFailed := func(e apikey.KrakenError) {
		if g.lockOn {
			if _, err := g.c.Counters.Add(ctx, lockoutKey(ip), 1, g.lockout, now); err != nil {
				g.log.ErrorContext(ctx, "signed API: lockout counter", "err", err)
			}
		}
		fail(http.StatusOK, e)
	}

	// 1. Locked-out addresses get nothing else.
	if g.lockOn {
		d, err := g.c.Counters.Add(ctx, lockoutKey(ip), 0, g.lockout, now)
		if err != nil {
			internal("lockout counter", err)
			return
		}
		if !d.Allowed {
			fail(http.StatusOK, apikey.ErrTemporaryLockout)
			return
		}
	}

	// 2–3. Route, method, body.
	method, ok := apikey.MethodFromPath(r.URL.Path)
	route, known := g.routes.Lookup(method)
	if !ok || !known {
		fail(http.StatusOK, apikey.ErrUnknownMethod)
		return
	}
	out.Method = method
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fail(http.StatusOK, apikey.ErrBadRequest)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.maxBody))
	if err != nil {
		if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
			fail(http.StatusRequestEntityTooLarge, apikey.ErrInvalidArguments)
		} else {
			fail(http.StatusBadRequest, apikey.ErrBadRequest)
		}
		return
	}

	// 4. Parse.
	req, err := apikey.ParseRequest(r.URL.Path, r.Header, body)
	if err != nil {
		ke := apikey.KrakenErrorOf(err)
		if ke == apikey.ErrInvalidKey || ke == apikey.ErrInvalidSignature {
			authFailed(ke)
		} else {
			fail(http.StatusOK, ke)
		}
		return
	}

	// 5. The key.
	cred, err := g.c.Keys.LookupKey(ctx, req.PublicKey)
	if errors.Is(err, apikey.ErrKeyNotFound) {
		authFailed(apikey.ErrInvalidKey)
		return
	}
	if err != nil {
		internal("key lookup", err)
		return
	}
	key := &cred.Key
	out.KeyID = key.ID
	if key.Usable(now) != nil || key.PublicKey != req.PublicKey {
		authFailed(apikey.ErrInvalidKey)
		return
	}

	// 6. The signature, with the previous secret during its grace period.
	if !req.Verify(cred.Secret) &&
		!(len(cred.OldSecret) > 0 && now.Before(key.OldSecretValidUntil) && req.Verify(cred.OldSecret)) {
		authFailed(apikey.ErrInvalidSignature)
		return
	}
	out.AccountID = key.AccountID

	// 7–9. Address, account, password.
	if !key.AllowsIP(ip) || cred.AccountLocked {
		fail(http.StatusOK, apikey.ErrPermission)
		return
	}
	if len(key.PasswordHash) > 0 &&
		(!req.HasOTP || !apikey.CheckPassword(g.c.PasswordPepper, key.ID, req.OTP, key.PasswordHash)) {
		authFailed(apikey.ErrInvalidSignature)
		return
	}

	// 10. Nonce.
	if err := g.c.Nonces.CheckAndSet(ctx, key.ID, req.Nonce, key.NonceWindow); err != nil {
		if errors.Is(err, nonce.ErrReplayed) || errors.Is(err, nonce.ErrStale) {
			fail(http.StatusOK, apikey.ErrInvalidNonce)
		} else {
			internal("nonce tracker", err)
		}
		return
	}

	// 11. Permission.
	if !route.Allows(key.Permissions) {
		fail(http.StatusOK, apikey.ErrPermission)
		return
	}

	// 12. Rate.
	limit, ok := g.tiers[cred.Tier]
	if !ok {
		limit = g.defTier
	}
	d, err := g.c.Counters.Add(ctx, "key:"+key.ID, route.Cost, limit, now)
	if err != nil {
		internal("rate counter", err)
		return
	}
	if !d.Allowed {
		fail(http.StatusOK, apikey.ErrRateLimit)
		return
	}

	var dst http.Handler
	switch route.Target {
	case apikey.TargetUpstream:
		dst = g.c.Upstream
	case apikey.TargetFunding:
		dst = g.c.Funding
	}
	if dst == nil {
		fail(http.StatusOK, apikey.ErrFeatureDisabled)
		return
	}
	fwd := forwardRequest(r, body, identity.Identity{
		AccountID:   key.AccountID,
		KeyID:       key.ID,
		Permissions: key.Permissions,
		ClientIP:    ip.String(),
		QueryStart:  key.QueryStart,
		QueryEnd:    key.QueryEnd,
	}, g.c.IdentityKey, now)
	dst.ServeHTTP(w, fwd)
	if g.c.Observe != nil {
		g.c.Observe(out)
	}
	g.touch(ctx, key, ip.String(), now)
}

// forwardRequest is r as the upstream sees it: the same method, path and
// body (the signed bytes), no query string (it was not signed), no API-Key
// or API-Sign, and moat's signed identity instead of any X-Moat-* header the
// client sent.
func forwardRequest(r *http.Request, body []byte, id identity.Identity, key []byte, now time.Time) *http.Request {
	out := r.Clone(r.Context())
	out.URL.RawQuery = ""
	out.URL.ForceQuery = false
	out.RequestURI = out.URL.RequestURI()
	out.Header.Del(apikey.HeaderKey)
	out.Header.Del(apikey.HeaderSign)
	identity.Sign(out.Header, id, r.Method, r.URL.Path, body, key, now)
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	out.ContentLength = int64(len(body))
	out.TransferEncoding = nil
	return out
}

// touch reports key use through OnUse, throttled.
func (g *Gateway) touch(ctx context.Context, key *apikey.Key, ip string, now time.Time) {
	if g.c.OnUse == nil {
		return
	}
	if key.LastUsedIP == ip && now.Sub(key.LastUsedAt) < g.useEvery && !now.Before(key.LastUsedAt) {
		return
	}
	g.mu.Lock()
	last, seen := g.touched[key.ID]
	report := !seen || last.ip != ip || now.Sub(last.at) >= g.useEvery
	if report {
		if len(g.touched) >= 1<<16 {
			for id, t := range g.touched {
				if now.Sub(t.at) >= g.useEvery {
					delete(g.touched, id)
				}
			}
		}
		g.touched[key.ID] = touch{at: now, ip: ip}
	}
	g.mu.Unlock()
	if report {
		g.c.OnUse(ctx, key.ID, now, ip)
	}
}

// writeError answers in Kraken's envelope. Kraken omits "result" when there
// are errors.
func writeError(w http.ResponseWriter, status int, e apikey.KrakenError) {
	b, _ := json.Marshal(struct {
		Error []string `json:"error"`
	}{[]string{string(e)}})
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
