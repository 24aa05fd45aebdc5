package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apikey"
)

func TestAPIKeysDefaults(t *testing.T) {
	c := validConfig().APIKeys
	if c.Upstream != "" || c.IdentityKey != "" || c.DefaultTier != apikey.DefaultTierName ||
		c.UnusedAfter != 90*24*time.Hour || c.CacheTTL != 5*time.Second || c.MaxBodyBytes != 64<<10 {
		t.Errorf("defaults %+v", c)
	}
	if lo := c.LockoutPolicy(); lo != apikey.DefaultLockout() {
		t.Errorf("lockout %+v", lo)
	}
	if len(c.TierTable()) != 3 {
		t.Errorf("tiers %v, want Kraken's three", c.TierTable())
	}
	if k, err := c.IdentityKeyBytes(); k != nil || err != nil {
		t.Errorf("identity key %v %v: derived by the server when empty", k, err)
	}
}

// TestAPIKeysFromEveryPlace: the section reads from a file, and its maps
// and floats from the environment too.
func TestAPIKeysFromEveryPlace(t *testing.T) {
	file := writeFile(t, `
[apikeys]
upstream = "https://exchange.internal:8443/api"
identity_key = "`+testKey+`"
default_tier = "bots"
unused_after = "720h"
[apikeys.tiers.bots]
max = 50
decay_per_second = 2.5
[apikeys.routes.AddOrder]
cost = 0
[apikeys.routes.TradeBalance]
permissions = "query-funds"
[apikeys.lockout]
after = 5
for = "1h"
`)
	cfg, err := Load([]string{"--config", file}, envMap(map[string]string{
		"MOAT_APIKEYS_LOCKOUT_DECAY_PER_SECOND": "0.5",
		"MOAT_APIKEYS_CACHE_TTL":                "2s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.APIKeys
	if a.Upstream != "https://exchange.internal:8443/api" || a.DefaultTier != "bots" || a.UnusedAfter != 720*time.Hour ||
		a.Tiers["bots"] != (apikey.Tier{Max: 50, DecayPerSecond: 2.5}) || a.CacheTTL != 2*time.Second ||
		a.Lockout != (APIKeyLockout{After: 5, DecayPerSecond: 0.5, For: time.Hour}) {
		t.Fatalf("loaded %+v", a)
	}
	routes, err := a.RoutesTable()
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := routes.Lookup("AddOrder"); r.Cost != 0 {
		t.Errorf("AddOrder cost %v", r.Cost)
	}
	if r, _ := routes.Lookup("TradeBalance"); !r.Allows(apikey.PermissionsOf(apikey.QueryFunds)) {
		t.Errorf("TradeBalance %+v", r)
	}

	cfg, err = Load(nil, envMap(map[string]string{
		"MOAT_APIKEYS_ROUTES":       `{"Balance":{"cost":0.5},"GetWebSocketsToken":{"target":"disabled"}}`,
		"MOAT_APIKEYS_TIERS":        `{"bench":{"max":1e9,"decay_per_second":1e9}}`,
		"MOAT_APIKEYS_DEFAULT_TIER": "bench",
	}))
	if err != nil {
		t.Fatal(err)
	}
	routes, _ = cfg.APIKeys.RoutesTable()
	if r, _ := routes.Lookup("Balance"); r.Cost != 0.5 {
		t.Errorf("Balance from env: %+v", r)
	}
	if r, _ := routes.Lookup("GetWebSocketsToken"); r.Target != apikey.TargetDisabled {
		t.Errorf("GetWebSocketsToken from env: %+v", r)
	}
	if cfg.APIKeys.TierTable()["bench"].Max != 1e9 {
		t.Errorf("tiers from env: %v", cfg.APIKeys.Tiers)
	}
}

func TestAPIKeysValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(a *APIKeys)
		key    string
	}{
		{"upstream not a URL", func(a *APIKeys) { a.Upstream = "exchange:8080"; a.IdentityKey = testKey }, "apikeys.upstream"},
		{"upstream with credentials", func(a *APIKeys) { a.Upstream = "https://u:p@exchange"; a.IdentityKey = testKey }, "apikeys.upstream"},
		{"upstream without identity key", func(a *APIKeys) { a.Upstream = "https://exchange" }, "apikeys.identity_key"},
		{"identity key short", func(a *APIKeys) { a.IdentityKey = "c2hvcnQ=" }, "apikeys.identity_key"},
		{"identity key not base64", func(a *APIKeys) { a.IdentityKey = "***" }, "apikeys.identity_key"},
		{"route of no method", func(a *APIKeys) { a.Routes = map[string]apikey.RouteOverride{"../x": {Permissions: "query-funds"}} }, "apikeys.routes"},
		{"new route without permission", func(a *APIKeys) { a.Routes = map[string]apikey.RouteOverride{"NewThing": {}} }, "apikeys.routes"},
		{"route unknown permission", func(a *APIKeys) {
			a.Routes = map[string]apikey.RouteOverride{"Balance": {Permissions: "everything"}}
		}, "apikeys.routes"},
		{"tier never admits", func(a *APIKeys) { a.Tiers = map[string]apikey.Tier{"starter": {Max: 0, DecayPerSecond: 1}} }, "apikeys.tiers"},
		{"default tier missing", func(a *APIKeys) { a.DefaultTier = "gold" }, "apikeys.default_tier"},
		{"lockout without decay", func(a *APIKeys) { a.Lockout.DecayPerSecond = 0 }, "apikeys.lockout.after"},
		{"body limit", func(a *APIKeys) { a.MaxBodyBytes = 0 }, "apikeys.max_body_bytes"},
		{"unused negative", func(a *APIKeys) { a.UnusedAfter = -time.Hour }, "apikeys.unused_after"},
		{"cache ttl", func(a *APIKeys) { a.CacheTTL = 0 }, "apikeys.cache_ttl"},
		{"nonce memory", func(a *APIKeys) { a.NonceMaxSeen = 0 }, "apikeys.nonce_max_seen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mutate(&c.APIKeys)
			err := c.Validate()
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("accepted: %v", err)
			}
			found := false
			for _, p := range e.Problems {
				found = found || p.Key == tc.key
			}
			if !found {
				t.Errorf("problems %v, want one for %s", e.Problems, tc.key)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Error("the identity key is echoed")
			}
		})
	}
	// Lockout off is fine.
	c := validConfig()
	c.APIKeys.Lockout = APIKeyLockout{}
	if err := c.Validate(); err != nil {
		t.Errorf("lockout disabled: %v", err)
	}
}

func TestAPIKeysBadEnvironment(t *testing.T) {
	for env, val := range map[string]string{
		"MOAT_APIKEYS_ROUTES":                   `{"Balance":{"cost":"free"}}`,
		"MOAT_APIKEYS_TIERS":                    `[1,2]`,
		"MOAT_APIKEYS_LOCKOUT_DECAY_PER_SECOND": "fast",
		"MOAT_APIKEYS_UNUSED_AFTER":             "90",
	} {
		if _, err := Load(nil, envMap(map[string]string{env: val})); err == nil || !strings.Contains(err.Error(), env) {
			t.Errorf("%s=%s: %v", env, val, err)
		}
	}
	if _, err := Load(nil, envMap(map[string]string{"MOAT_APIKEYS_ROUTES": `{"Balance":{"cots":0}}`})); err == nil {
		t.Error("an unknown field in a route is accepted")
	}
}
