package config

import (
	"encoding/base64"
	"net/url"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/apikey"
)

// APIKeys configures API keys and the Kraken-compatible signed API under
// /0/private/ (internal/apikey, internal/gateway).
type APIKeys struct {
	// Upstream is the exchange backend verified calls are forwarded to
	// (an http or https URL; its path is put before /0/private/...). Empty
	// serves the built-in sandbox exchange, so bots and client libraries
	// can be tried against moat with nothing else running.
	Upstream string `toml:"upstream"`
	// IdentityKey signs the identity headers (account, key, permissions)
	// moat adds to each forwarded call; the upstream verifies them with the
	// same key, so it must be set (base64, at least 32 bytes) together with
	// Upstream. Empty with the sandbox: derived from the master key.
	IdentityKey string `toml:"identity_key"`
	// Routes change or add methods of the routes table (which permission a
	// method needs, its rate cost, and whether it is proxied):
	//
	//	[apikeys.routes.AddOrder]
	//	cost = 0
	Routes map[string]apikey.RouteOverride `toml:"routes"`
	// Tiers are the rate-limit tiers (Kraken's decaying counter). Empty
	// means Kraken's: starter 15 at 0.33/s, intermediate 20 at 0.5/s, pro
	// 20 at 1/s.
	Tiers map[string]apikey.Tier `toml:"tiers"`
	// DefaultTier is the tier of every key.
	DefaultTier string `toml:"default_tier"`
	// Lockout slows down key guessing from one client address.
	Lockout APIKeyLockout `toml:"lockout"`
	// MaxBodyBytes caps a signed call's body.
	MaxBodyBytes int64 `toml:"max_body_bytes"`
	// UnusedAfter is when a key nobody used is flagged in the key list as
	// a candidate for deletion.
	UnusedAfter time.Duration `toml:"unused_after"`
	// CacheTTL bounds how long another node may keep using a key that was
	// changed or deleted (the node that made the change forgets it at once).
	CacheTTL time.Duration `toml:"cache_ttl"`
	// NonceMaxSeen bounds the nonces remembered per key below its highest,
	// for keys with a nonce window.
	NonceMaxSeen int `toml:"nonce_max_seen"`
}

// APIKeyLockout is apikey.Lockout in configuration: After failed calls
// (invalid key or signature) from one address, decaying by
// DecayPerSecond, lock the address out For a while. After 0 disables it.
type APIKeyLockout struct {
	After          int           `toml:"after"`
	DecayPerSecond float64       `toml:"decay_per_second"`
	For            time.Duration `toml:"for"`
}

// DefaultAPIKeys is the [apikeys] section of Default.
func DefaultAPIKeys() APIKeys {
	lo := apikey.DefaultLockout()
	return APIKeys{
		DefaultTier:  apikey.DefaultTierName,
		Lockout:      APIKeyLockout{After: lo.After, DecayPerSecond: lo.DecayPerSecond, For: lo.For},
		MaxBodyBytes: 64 << 10,
		UnusedAfter:  apikey.DefaultUnusedAfter,
		CacheTTL:     apikey.DefaultCacheTTL,
		NonceMaxSeen: 1024,
	}
}

// MinIdentityKeyBytes is the shortest identity key accepted.
const MinIdentityKeyBytes = 32

// IdentityKeyBytes decodes IdentityKey; nil when it is empty.
func (a APIKeys) IdentityKeyBytes() ([]byte, error) {
	if a.IdentityKey == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(a.IdentityKey))
	if err != nil {
		k, err = base64.RawStdEncoding.DecodeString(strings.TrimSpace(a.IdentityKey))
	}
	if err != nil {
		return nil, errString("not valid base64")
	}
	if len(k) < MinIdentityKeyBytes {
		return nil, errString("must be at least 32 bytes (generate one with: head -c32 /dev/urandom | base64)")
	}
	return k, nil
}

// RoutesTable is the default routes table with Routes applied.
func (a APIKeys) RoutesTable() (*apikey.Routes, error) {
	return apikey.DefaultRoutes().WithOverrides(a.Routes)
}

// TierTable is Tiers, or Kraken's tiers when none are configured.
func (a APIKeys) TierTable() map[string]apikey.Tier {
	if len(a.Tiers) == 0 {
		return apikey.DefaultTiers()
	}
	return a.Tiers
}

// LockoutPolicy is Lockout as the gateway takes it.
func (a APIKeys) LockoutPolicy() apikey.Lockout {
	return apikey.Lockout{After: a.Lockout.After, DecayPerSecond: a.Lockout.DecayPerSecond, For: a.Lockout.For}
}

type errString string

func (e errString) Error() string { return string(e) }

func (c Config) checkAPIKeys(ps *problems) {
	a := c.APIKeys
	if a.Upstream != "" {
		u, err := url.Parse(a.Upstream)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			ps.add("apikeys.upstream", "%q: must be an http:// or https:// URL of the exchange backend (or empty for the built-in sandbox)", a.Upstream)
		case u.User != nil || u.RawQuery != "" || u.Fragment != "":
			ps.add("apikeys.upstream", "%q: must not hold credentials, a query or a fragment", a.Upstream)
		}
		if a.IdentityKey == "" {
			ps.add("apikeys.identity_key", "must be set with apikeys.upstream: the backend verifies moat's identity headers with it (generate one with: head -c32 /dev/urandom | base64)")
		}
	}
	if _, err := a.IdentityKeyBytes(); err != nil {
		ps.add("apikeys.identity_key", "%v", err) // never echo the key
	}
	if _, err := a.RoutesTable(); err != nil {
		ps.add("apikeys.routes", "%v", err)
	}
	tiers := a.TierTable()
	for name, t := range tiers {
		if err := t.Validate(); err != nil {
			ps.add("apikeys.tiers", "%s: %v", name, err)
		}
	}
	if _, ok := tiers[a.DefaultTier]; !ok {
		ps.add("apikeys.default_tier", "%q is not one of the tiers", a.DefaultTier)
	}
	if err := a.LockoutPolicy().Validate(); err != nil {
		ps.add("apikeys.lockout.after", "%v", err)
	}
	if a.MaxBodyBytes <= 0 {
		ps.add("apikeys.max_body_bytes", "must be positive")
	}
	if a.UnusedAfter < 0 {
		ps.add("apikeys.unused_after", "must not be negative (0 never flags a key)")
	}
	positive(ps, "apikeys.cache_ttl", a.CacheTTL)
	if a.NonceMaxSeen < 1 {
		ps.add("apikeys.nonce_max_seen", "must be at least 1")
	}
}
