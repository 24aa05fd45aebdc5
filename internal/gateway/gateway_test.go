package gateway

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apikey"
)

// A verified call reaches the upstream with the signed body untouched, the
// client's credentials and query string gone, and moat's signed identity in
// place of anything the client claimed.
func TestForwardsVerifiedCall(t *testing.T) {
	h := newHarness(t, nil)
	k := h.addKey(t, apikey.PermissionsOf(apikey.CreateModifyOrders, apikey.QueryFunds), func(c *apikey.Credential) {
		c.Key.QueryStart = t0.Add(-time.Hour)
	})
	r := h.signedRequest(k, "AddOrder", url.Values{"pair": {"XBTUSD"}, "type": {"buy"}, "ordertype": {"limit"}, "price": {"37500"}, "volume": {"1.25"}})
	want, _ := readAll(r)
	r.URL.RawQuery = "validate=true" // not signed, must not reach the backend
	r.Header.Set("X-Moat-Account", "someone-else")
	r.Header.Set("X-Moat-Permissions", "withdraw-funds")
	r.Header.Set("User-Agent", "krakenex/2.1.0")
	a := h.do(t, r)
	expectOK(t, a)

	fwd, body := h.upstream.last()
	if !bytes.Equal(body, want) {
		t.Fatalf("body changed: %q, want %q", body, want)
	}
	if fwd.URL.Path != "/0/private/AddOrder" || fwd.URL.RawQuery != "" || fwd.Method != http.MethodPost {
		t.Fatalf("forwarded %s %s?%s", fwd.Method, fwd.URL.Path, fwd.URL.RawQuery)
	}
	if fwd.Header.Get(apikey.HeaderKey) != "" || fwd.Header.Get(apikey.HeaderSign) != "" {
		t.Fatal("client credentials forwarded")
	}
	if fwd.Header.Get("User-Agent") != "krakenex/2.1.0" {
		t.Fatal("ordinary headers dropped")
	}
	id := verifyForwarded(t, fwd, body, t0)
	if id.AccountID != "acct1" || id.KeyID != k.id || id.ClientIP != "192.0.2.10" ||
		id.Permissions != apikey.PermissionsOf(apikey.CreateModifyOrders, apikey.QueryFunds) ||
		!id.QueryStart.Equal(t0.Add(-time.Hour)) {
		t.Fatalf("identity %+v", id)
	}
}

func readAll(r *http.Request) ([]byte, error) {
	b := new(bytes.Buffer)
	_, err := b.ReadFrom(r.Body)
	r.Body = httpBody(b.Bytes())
	return b.Bytes(), err
}

func httpBody(b []byte) *bodyReader { return &bodyReader{bytes.NewReader(b)} }

type bodyReader struct{ *bytes.Reader }

func (bodyReader) Close() error { return nil }

// The permission each default method needs, written out independently of
// apikey.DefaultRoutes from Kraken's documentation: "a|b" either, "a+b" both.
var documented = map[string]string{
	"Balance": "query-funds", "BalanceEx": "query-funds", "CreditLines": "query-funds", "TradeVolume": "query-funds",
	"TradeBalance": "query-open-orders", "OpenOrders": "query-open-orders", "OpenPositions": "query-open-orders",
	"ClosedOrders": "query-closed-orders", "TradesHistory": "query-closed-orders", "QueryTrades": "query-closed-orders",
	"QueryOrders": "query-open-orders|query-closed-orders", "OrderAmends": "query-open-orders|query-closed-orders",
	"Ledgers": "query-ledger", "QueryLedgers": "query-ledger",
	"AddExport": "export-data", "ExportStatus": "export-data", "RetrieveExport": "export-data", "RemoveExport": "export-data",
	"AddOrder": "create-modify-orders", "AmendOrder": "create-modify-orders", "EditOrder": "create-modify-orders",
	"AddOrderBatch": "create-modify-orders+cancel-close-orders",
	"CancelOrder":   "cancel-close-orders", "CancelAll": "cancel-close-orders", "CancelAllOrdersAfter": "cancel-close-orders",
	"CancelOrderBatch":   "cancel-close-orders",
	"GetWebSocketsToken": "access-websockets",
	"DepositMethods":     "deposit-funds", "DepositAddresses": "deposit-funds", "DepositStatus": "deposit-funds",
	"WithdrawMethods": "withdraw-funds", "WithdrawAddresses": "withdraw-funds", "WithdrawInfo": "withdraw-funds",
	"Withdraw": "withdraw-funds", "WithdrawStatus": "withdraw-funds", "WithdrawCancel": "withdraw-funds",
	"WalletTransfer": "withdraw-funds",
}

func documentedAllows(spec string, p apikey.Permissions) bool {
	has := func(slug string) bool {
		q, err := apikey.ParsePermission(slug)
		if err != nil {
			panic(err)
		}
		return p.Has(q)
	}
	if a, b, ok := strings.Cut(spec, "+"); ok {
		return has(a) && has(b)
	}
	for _, alt := range strings.Split(spec, "|") {
		if has(alt) {
			return true
		}
	}
	return false
}

// Every method × every set of permissions a key can hold (all 1024) is
// allowed or refused exactly as documented, and allowed funding calls go to
// the funding handler, never upstream.
func TestPermissionMatrix(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Tiers = map[string]apikey.Tier{"starter": {Max: 1e9, DecayPerSecond: 1}}
	})
	h.cfg.Funding = h.funding
	h.gw.c.Funding = h.funding
	if got, want := len(apikey.DefaultRoutes().Methods()), len(documented); got != want {
		t.Fatalf("routes table has %d methods, documented %d", got, want)
	}
	keys := make([]testKey, apikey.AllPermissionSet+1)
	for p := apikey.Permissions(0); p <= apikey.AllPermissionSet; p++ {
		keys[p] = h.addKey(t, p, nil)
	}
	for method, spec := range documented {
		for p := apikey.Permissions(0); p <= apikey.AllPermissionSet; p++ {
			up, fund := h.upstream.count(), h.funding.count()
			a := h.call(t, keys[p], method, nil)
			allowed := documentedAllows(spec, p)
			if !allowed {
				if a.err() != string(apikey.ErrPermission) {
					t.Fatalf("%s with [%v]: %v, want permission denied", method, p, a.Error)
				}
				if h.upstream.count() != up || h.funding.count() != fund {
					t.Fatalf("%s with [%v]: refused call was forwarded", method, p)
				}
				continue
			}
			if len(a.Error) != 0 {
				t.Fatalf("%s with [%v]: %v, want allowed", method, p, a.Error)
			}
			funding := strings.HasPrefix(spec, "deposit") || strings.HasPrefix(spec, "withdraw")
			if funding && (h.funding.count() != fund+1 || h.upstream.count() != up) {
				t.Fatalf("%s: funding call not routed to the funding handler", method)
			}
			if !funding && (h.upstream.count() != up+1 || h.funding.count() != fund) {
				t.Fatalf("%s: call not routed upstream", method)
			}
		}
	}
}

// Funding methods are never proxied: without a funding handler they are
// disabled even for a key allowed to withdraw. Overrides from configuration
// change what a method needs.
func TestFundingAndOverrides(t *testing.T) {
	routes, err := apikey.DefaultRoutes().WithOverrides(map[string]apikey.RouteOverride{
		"TradeBalance": {Permissions: "query-funds"},
		"AddExport":    {Target: apikey.TargetDisabled},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *Config) { c.Routes = routes })
	k := h.addKey(t, apikey.AllPermissionSet, nil)
	for _, m := range []string{"Withdraw", "WithdrawAddresses", "DepositAddresses", "AddExport"} {
		expectErr(t, h.call(t, k, m, nil), apikey.ErrFeatureDisabled)
	}
	if h.upstream.count() != 0 {
		t.Fatal("a funding call reached the upstream")
	}
	funds := h.addKey(t, apikey.PermissionsOf(apikey.QueryFunds), nil)
	open := h.addKey(t, apikey.PermissionsOf(apikey.QueryOpenOrders), nil)
	expectOK(t, h.call(t, funds, "TradeBalance", nil))
	expectErr(t, h.call(t, open, "TradeBalance", nil), apikey.ErrPermission)
}

// Bad input gets a Kraken error and never a 500.
func TestBadInput(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxBodyBytes = 1 << 10 })
	k := h.addKey(t, apikey.AllPermissionSet, nil)
	good := func() *http.Request { return h.signedRequest(k, "Balance", nil) }
	for _, tc := range []struct {
		name   string
		req    func() *http.Request
		want   apikey.KrakenError
		status int
	}{
		{"missing API-Key", func() *http.Request { r := good(); r.Header.Del(apikey.HeaderKey); return r }, apikey.ErrInvalidKey, 200},
		{"missing API-Sign", func() *http.Request { r := good(); r.Header.Del(apikey.HeaderSign); return r }, apikey.ErrInvalidSignature, 200},
		{"bad base64 sign", func() *http.Request { r := good(); r.Header.Set(apikey.HeaderSign, "%%%%"); return r }, apikey.ErrInvalidSignature, 200},
		{"bad base64 key", func() *http.Request { r := good(); r.Header.Set(apikey.HeaderKey, "ключ"); return r }, apikey.ErrInvalidKey, 200},
		{"unknown key", func() *http.Request { r := good(); r.Header.Set(apikey.HeaderKey, "AAAA"); return r }, apikey.ErrInvalidKey, 200},
		{"wrong signature", func() *http.Request {
			r := good()
			r.Header.Set(apikey.HeaderSign, apikey.Sign("/0/private/Balance", "1", []byte("nonce=1"), k.secret))
			return r
		}, apikey.ErrInvalidSignature, 200},
		{"unknown method", func() *http.Request { r := h.signedRequest(k, "Teleport", nil); return r }, apikey.ErrUnknownMethod, 200},
		{"public path", func() *http.Request { r := good(); r.URL.Path = "/0/public/Time"; return r }, apikey.ErrUnknownMethod, 200},
		{"GET", func() *http.Request { r := good(); r.Method = http.MethodGet; return r }, apikey.ErrBadRequest, 200},
		{"huge body", func() *http.Request {
			r := h.signedRequest(k, "Balance", url.Values{"pad": {strings.Repeat("x", 4<<10)}})
			return r
		}, apikey.ErrInvalidArguments, 413},
		{"non-numeric nonce", func() *http.Request { return h.signedRequest(k, "Balance", url.Values{"nonce": {"abc"}}) }, apikey.ErrInvalidNonce, 200},
		{"negative nonce", func() *http.Request { return h.signedRequest(k, "Balance", url.Values{"nonce": {"-5"}}) }, apikey.ErrInvalidNonce, 200},
		{"no nonce", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/0/private/Balance", strings.NewReader("a=1"))
			r.Header.Set(apikey.HeaderKey, k.pub)
			r.Header.Set(apikey.HeaderSign, apikey.Sign("/0/private/Balance", "", []byte("a=1"), k.secret))
			return r
		}, apikey.ErrInvalidNonce, 200},
		{"two nonces", func() *http.Request { return h.signedRequest(k, "Balance", url.Values{"nonce": {"5", "6"}}) }, apikey.InvalidArgument("nonce"), 200},
		{"broken JSON", func() *http.Request {
			r := good()
			r.Header.Set("Content-Type", "application/json")
			return r
		}, apikey.ErrInvalidArguments, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := h.do(t, tc.req())
			expectErr(t, a, tc.want)
			if a.status != tc.status {
				t.Fatalf("HTTP %d, want %d", a.status, tc.status)
			}
		})
	}
	if h.upstream.count() != 0 {
		t.Fatal("bad input reached the upstream")
	}
}

// A store or Redis failure is the operator's problem: 500 with Kraken's
// internal error, details only in the log.
func TestInternalError(t *testing.T) {
	h := newHarness(t, nil)
	k := h.addKey(t, apikey.AllPermissionSet, nil)
	h.keys.err = errors.New("database is down")
	h.allow500 = true
	a := h.call(t, k, "Balance", nil)
	if a.status != 500 || a.err() != string(apikey.ErrInternal) {
		t.Fatalf("HTTP %d %v", a.status, a.Error)
	}
}

func TestReplayAndStaleNonce(t *testing.T) {
	h := newHarness(t, nil)
	k := h.addKey(t, apikey.PermissionsOf(apikey.QueryFunds), nil)
	r := h.signedRequest(k, "Balance", nil)
	body, _ := readAll(r)
	expectOK(t, h.do(t, r))
	// The very same request again (a captured copy).
	replay := httptest.NewRequest(http.MethodPost, r.URL.Path, bytes.NewReader(body))
	replay.Header = r.Header.Clone()
	expectErr(t, h.do(t, replay), apikey.ErrInvalidNonce)
	// A correctly signed request with an older nonce.
	expectErr(t, h.call(t, k, "Balance", url.Values{"nonce": {"1000"}}), apikey.ErrInvalidNonce)
	expectOK(t, h.call(t, k, "Balance", nil))
	if h.upstream.count() != 2 {
		t.Fatalf("%d calls forwarded, want 2", h.upstream.count())
	}
}

// 50 copies of one signed request at once: exactly one gets through.
func TestConcurrentReplay(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Tiers = map[string]apikey.Tier{"starter": {Max: 1000, DecayPerSecond: 1}}
	})
	k := h.addKey(t, apikey.PermissionsOf(apikey.QueryFunds), nil)
	r := h.signedRequest(k, "Balance", nil)
	body, _ := readAll(r)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, nonceErr := 0, 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := httptest.NewRequest(http.MethodPost, r.URL.Path, bytes.NewReader(body))
			c.Header = r.Header.Clone()
			a := h.do(t, c)
			mu.Lock()
			defer mu.Unlock()
			switch a.err() {
			case "":
				ok++
			case string(apikey.ErrInvalidNonce):
				nonceErr++
			}
		}()
	}
	wg.Wait()
	if ok != 1 || nonceErr != 49 || h.upstream.count() != 1 {
		t.Fatalf("%d succeeded, %d invalid nonce, %d forwarded; want 1, 49, 1", ok, nonceErr, h.upstream.count())
	}
}

func TestNonceWindow(t *testing.T) {
	h := newHarness(t, nil)
	k := h.addKey(t, apikey.PermissionsOf(apikey.QueryFunds), func(c *apikey.Credential) { c.Key.NonceWindow = 1000 })
	expectOK(t, h.call(t, k, "Balance", url.Values{"nonce": {"1616492376594"}}))
	expectOK(t, h.call(t, k, "Balance", url.Values{"nonce": {"1616492376000"}})) // out of order, in window
	expectErr(t, h.call(t, k, "Balance", url.Values{"nonce": {"1616492376000"}}), apikey.ErrInvalidNonce)
	expectErr(t, h.call(t, k, "Balance", url.Values{"nonce": {"1616492375594"}}), apikey.ErrInvalidNonce) // 1000 below
}

func TestExpiredDeletedRotatedKeys(t *testing.T) {
	h := newHarness(t, nil)
	p := apikey.PermissionsOf(apikey.QueryFunds)

	expiring := h.addKey(t, p, func(c *apikey.Credential) { c.Key.ExpiresAt = t0.Add(time.Hour) })
	expectOK(t, h.call(t, expiring, "Balance", nil))
	h.clock.Advance(time.Hour)
	expectErr(t, h.call(t, expiring, "Balance", nil), apikey.ErrInvalidKey)

	deleted := h.addKey(t, p, nil)
	expectOK(t, h.call(t, deleted, "Balance", nil))
	h.keys.update(deleted.pub, func(c *apikey.Credential) { c.Key.DeletedAt = h.clock.Now() })
	expectErr(t, h.call(t, deleted, "Balance", nil), apikey.ErrInvalidKey)

	// Rotation with a grace period: both secrets work until it ends.
	rot := h.addKey(t, p, nil)
	oldSecret := rot.secret
	newSecret := bytes.Repeat([]byte{9}, 64)
	now := h.clock.Now()
	h.keys.update(rot.pub, func(c *apikey.Credential) {
		c.OldSecret, c.Secret = c.Secret, newSecret
		c.Key.RotatedAt, c.Key.OldSecretValidUntil = now, now.Add(10*time.Minute)
	})
	withNew := testKey{id: rot.id, pub: rot.pub, secret: newSecret}
	expectOK(t, h.call(t, rot, "Balance", nil))
	expectOK(t, h.call(t, withNew, "Balance", nil))
	h.clock.Advance(10 * time.Minute)
	expectErr(t, h.call(t, rot, "Balance", nil), apikey.ErrInvalidSignature)
	expectOK(t, h.call(t, withNew, "Balance", nil))

	// Rotation without grace: the old secret is void at once.
	h.keys.update(rot.pub, func(c *apikey.Credential) {
		c.Secret, c.OldSecret = oldSecret, nil
		c.Key.OldSecretValidUntil = time.Time{}
	})
	expectErr(t, h.call(t, withNew, "Balance", nil), apikey.ErrInvalidSignature)
	expectOK(t, h.call(t, rot, "Balance", nil))
}

// A locked account's keys stop, and the refused calls do not touch the
// key's nonce.
func TestLockedAccount(t *testing.T) {
	h := newHarness(t, nil)
	k := h.addKey(t, apikey.PermissionsOf(apikey.QueryFunds), func(c *apikey.Credential) { c.AccountLocked = true })
	expectErr(t, h.call(t, k, "Balance", url.Values{"nonce": {"500"}}), apikey.ErrPermission)
	h.keys.update(k.pub, func(c *apikey.Credential) { c.AccountLocked = false })
	expectOK(t, h.call(t, k, "Balance", url.Values{"nonce": {"500"}}))
}

func TestIPAllowlist(t *testing.T) {
	h := newHarness(t, nil)
	allow, err := apikey.ParseAllowedIPs("203.0.113.7", "198.51.100.0/24", "2001:db8:1::/48")
	if err != nil {
		t.Fatal(err)
	}
	k := h.addKey(t, apikey.PermissionsOf(apikey.QueryFunds), func(c *apikey.Credential) { c.Key.AllowedIPs = allow })
	for _, tc := range []struct {
		remote string
		ok     bool
	}{
		{"203.0.113.7:1234", true},
		{"203.0.113.8:1234", false},
		{"198.51.100.200:1", true},
		{"198.51.101.1:1", false},
		{"[::ffff:198.51.100.9]:443", true},
		{"[2001:db8:1:ffff::1]:443", true},
		{"[2001:db8:2::1]:443", false},
		{"[fe80::1%eth0]:443", false},
	} {
		r := h.signedRequest(k, "Balance", nil)
		r.RemoteAddr = tc.remote
		a := h.do(t, r)
		if tc.ok {
			expectOK(t, a)
		} else {
			expectErr(t, a, apikey.ErrPermission)
		}
	}
	// A leaked secret used from elsewhere cannot push the nonce past the
	// real bot: refused calls do not consume nonces.
	r := h.signedRequest(k, "Balance", url.Values{"nonce": {"18446744073709551615"}})
	r.RemoteAddr = "192.0.2.66:1"
	expectErr(t, h.do(t, r), apikey.ErrPermission)
	r = h.signedRequest(k, "Balance", nil)
	r.RemoteAddr = "203.0.113.7:1"
	expectOK(t, h.do(t, r))
}

// X-Forwarded-For is ignored unless it comes from a trusted proxy, and then
// only the hops the proxies added are believed.
func TestForwardedFor(t *testing.T) {
	allow, _ := apikey.ParseAllowedIPs("203.0.113.7")
	perms := apikey.PermissionsOf(apikey.QueryFunds)
	lock := func(c *apikey.Credential) { c.Key.AllowedIPs = allow }

	h := newHarness(t, nil)
	k := h.addKey(t, perms, lock)
	r := h.signedRequest(k, "Balance", nil)
	r.RemoteAddr = "192.0.2.66:1"
	r.Header.Set("X-Forwarded-For", "203.0.113.7")
	expectErr(t, h.do(t, r), apikey.ErrPermission)

	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	h = newHarness(t, func(c *Config) { c.TrustedProxies = proxies })
	k = h.addKey(t, perms, lock)
	r = h.signedRequest(k, "Balance", nil)
	r.RemoteAddr = "10.0.0.2:1"
	r.Header.Set("X-Forwarded-For", "203.0.113.7, 10.0.0.1")
	expectOK(t, h.do(t, r))
	fwd, body := h.upstream.last()
	if id := verifyForwarded(t, fwd, body, t0); id.ClientIP != "203.0.113.7" {
		t.Fatalf("client IP %q", id.ClientIP)
	}
	// The client prepends the allowed address; the proxy appends the real one.
	r = h.signedRequest(k, "Balance", nil)
	r.RemoteAddr = "10.0.0.2:1"
	r.Header.Set("X-Forwarded-For", "203.0.113.7, 192.0.2.66")
	expectErr(t, h.do(t, r), apikey.ErrPermission)
}

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	for _, tc := range []struct {
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"192.0.2.1:5", []string{"203.0.113.7"}, nil, "192.0.2.1"},
		{"192.0.2.1:5", []string{"203.0.113.7"}, trusted, "192.0.2.1"},
		{"10.1.1.1:5", []string{"203.0.113.7"}, trusted, "203.0.113.7"},
		{"10.1.1.1:5", []string{"1.1.1.1, 203.0.113.7, 10.2.2.2"}, trusted, "203.0.113.7"},
		{"10.1.1.1:5", []string{"1.1.1.1", "203.0.113.7"}, trusted, "203.0.113.7"},
		{"10.1.1.1:5", []string{"10.3.3.3, 10.2.2.2"}, trusted, "10.3.3.3"},
		{"10.1.1.1:5", []string{"junk, 10.2.2.2"}, trusted, "10.2.2.2"},
		{"10.1.1.1:5", nil, trusted, "10.1.1.1"},
		{"[fd00::1]:5", []string{"[2001:db8::5]:1234"}, trusted, "2001:db8::5"},
		{"[::ffff:10.1.1.1]:5", []string{"::ffff:203.0.113.9"}, trusted, "203.0.113.9"},
		{"not an address", nil, trusted, "invalid IP"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := ClientIP(r, tc.trusted).String(); got != tc.want {
			t.Errorf("%s %v: %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, nil)
	k := h.addKey(t, apikey.PermissionsOf(apikey.QueryFunds, apikey.QueryLedger), nil)
	for i := 0; i < 15; i++ {
		expectOK(t, h.call(t, k, "Balance", nil))
	}
	expectErr(t, h.call(t, k, "Balance", nil), apikey.ErrRateLimit)
	h.clock.Advance(3 * time.Second)
	expectErr(t, h.call(t, k, "Balance", nil), apikey.ErrRateLimit)
	h.clock.Advance(100 * time.Millisecond) // one call decays in 1/0.33 s
	expectOK(t, h.call(t, k, "Balance", nil))
	// Ledgers costs 2: one call of room is not enough.
	h.clock.Advance(3100 * time.Millisecond)
	expectErr(t, h.call(t, k, "Ledgers", nil), apikey.ErrRateLimit)
	h.clock.Advance(3100 * time.Millisecond)
	expectOK(t, h.call(t, k, "Ledgers", nil))

	// Another key has its own counter; a pro-tier key decays at 1/s.
	pro := h.addKey(t, apikey.PermissionsOf(apikey.QueryFunds), func(c *apikey.Credential) { c.Tier = "pro" })
	for i := 0; i < 20; i++ {
		expectOK(t, h.call(t, pro, "Balance", nil))
	}
	expectErr(t, h.call(t, pro, "Balance", nil), apikey.ErrRateLimit)
	h.clock.Advance(time.Second)
	expectOK(t, h.call(t, pro, "Balance", nil))
}

// Ten invalid keys from one address lock it out, even for a valid key; other
// addresses are unaffected; the lock ends after 15 minutes.
func TestInvalidKeyLockout(t *testing.T) {
	h := newHarness(t, nil)
	good := h.addKey(t, apikey.PermissionsOf(apikey.QueryFunds), nil)
	bogus := testKey{pub: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", secret: good.secret}
	from := func(r *http.Request, ip string) *http.Request { r.RemoteAddr = ip; return r }
	for i := 0; i < 10; i++ {
		expectErr(t, h.do(t, from(h.signedRequest(bogus, "Balance", nil), "198.51.100.1:1")), apikey.ErrInvalidKey)
	}
	lookups := h.keys.calls
	expectErr(t, h.do(t, from(h.signedRequest(good, "Balance", nil), "198.51.100.1:2")), apikey.ErrTemporaryLockout)
	expectErr(t, h.do(t, from(h.signedRequest(bogus, "Balance", nil), "198.51.100.1:2")), apikey.ErrTemporaryLockout)
	if h.keys.calls != lookups {
		t.Fatal("a locked-out address still reaches the key store")
	}
	expectOK(t, h.do(t, from(h.signedRequest(good, "Balance", nil), "198.51.100.2:1")))
	h.clock.Advance(15 * time.Minute)
	expectOK(t, h.do(t, from(h.signedRequest(good, "Balance", nil), "198.51.100.1:3")))

	// Bad signatures count too; one IPv6 /64 is one address.
	h = newHarness(t, nil)
	good = h.addKey(t, apikey.PermissionsOf(apikey.QueryFunds), nil)
	wrong := testKey{pub: good.pub, secret: bytes.Repeat([]byte{1}, 64)}
	for i := 0; i < 10; i++ {
		ip := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)})
		expectErr(t, h.do(t, from(h.signedRequest(wrong, "Balance", nil), netip.AddrPortFrom(ip, 1).String())), apikey.ErrInvalidSignature)
	}
	expectErr(t, h.do(t, from(h.signedRequest(good, "Balance", nil), "[2001:db8::ffff]:1")), apikey.ErrTemporaryLockout)
	expectOK(t, h.do(t, from(h.signedRequest(good, "Balance", nil), "[2001:db8:0:1::1]:1")))
}

// Slow, honest mistakes do not lock anyone out.
func TestLockoutDecays(t *testing.T) {
	h := newHarness(t, nil)
	good := h.addKey(t, apikey.PermissionsOf(apikey.QueryFunds), nil)
	bogus := testKey{pub: "AAAA", secret: good.secret}
	for i := 0; i < 30; i++ {
		expectErr(t, h.call(t, bogus, "Balance", nil), apikey.ErrInvalidKey)
		h.clock.Advance(2 * time.Minute)
	}
	expectOK(t, h.call(t, good, "Balance", nil))
}

func TestKeyPassword(t *testing.T) {
	h := newHarness(t, nil)
	k := h.addKey(t, apikey.PermissionsOf(apikey.QueryFunds), func(c *apikey.Credential) {
		c.Key.PasswordHash = apikey.HashPassword(testPepper, c.Key.ID, "correct horse")
	})
	expectErr(t, h.call(t, k, "Balance", nil), apikey.ErrInvalidSignature)
	expectErr(t, h.call(t, k, "Balance", url.Values{"otp": {"wrong horse"}}), apikey.ErrInvalidSignature)
	expectOK(t, h.call(t, k, "Balance", url.Values{"otp": {"correct horse"}}))
	if _, body := h.upstream.last(); !bytes.Contains(body, []byte("otp=")) {
		t.Fatal("the signed body must reach the upstream unchanged")
	}
}

// JSON bodies, the way python-kraken-sdk sends them: the nonce as a string,
// signed over the raw body.
func TestJSONBody(t *testing.T) {
	h := newHarness(t, nil)
	k := h.addKey(t, apikey.PermissionsOf(apikey.CreateModifyOrders), nil)
	n := h.nextNonce()
	body := `{"ordertype": "limit", "type": "buy", "volume": "1.25", "pair": "XBTUSD", "price": "27500", "nonce": "` + n + `"}`
	r := httptest.NewRequest(http.MethodPost, "/0/private/AddOrder", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	r.Header.Set(apikey.HeaderKey, k.pub)
	r.Header.Set(apikey.HeaderSign, apikey.Sign("/0/private/AddOrder", n, []byte(body), k.secret))
	expectOK(t, h.do(t, r))
	if _, got := h.upstream.last(); string(got) != body {
		t.Fatalf("forwarded %q", got)
	}
}

func TestOnUseThrottled(t *testing.T) {
	type use struct {
		key, ip string
		at      time.Time
	}
	var uses []use
	h := newHarness(t, func(c *Config) {
		c.OnUse = func(_ context.Context, keyID string, at time.Time, ip string) {
			uses = append(uses, use{keyID, ip, at})
		}
		c.Tiers = map[string]apikey.Tier{"starter": {Max: 1000, DecayPerSecond: 1}}
	})
	k := h.addKey(t, apikey.PermissionsOf(apikey.QueryFunds), nil)
	for i := 0; i < 10; i++ {
		expectOK(t, h.call(t, k, "Balance", nil))
	}
	r := h.signedRequest(k, "Balance", nil)
	r.RemoteAddr = "192.0.2.99:1"
	expectOK(t, h.do(t, r)) // new address: reported at once
	h.clock.Advance(time.Minute)
	expectOK(t, h.call(t, k, "Balance", nil))
	if len(uses) != 3 || uses[0] != (use{k.id, "192.0.2.10", t0}) || uses[1].ip != "192.0.2.99" || !uses[2].at.Equal(t0.Add(time.Minute)) {
		t.Fatalf("uses %+v", uses)
	}
	// Failed calls are not uses.
	bad := testKey{pub: k.pub, secret: bytes.Repeat([]byte{1}, 64)}
	h.clock.Advance(time.Hour)
	expectErr(t, h.call(t, bad, "Balance", nil), apikey.ErrInvalidSignature)
	if len(uses) != 3 {
		t.Fatal("a failed call was recorded as a use")
	}
}

func TestObserve(t *testing.T) {
	var got []Outcome
	h := newHarness(t, func(c *Config) { c.Observe = func(o Outcome) { got = append(got, o) } })
	k := h.addKey(t, apikey.PermissionsOf(apikey.QueryFunds), nil)
	expectOK(t, h.call(t, k, "Balance", nil))
	expectErr(t, h.call(t, k, "AddOrder", nil), apikey.ErrPermission)
	if len(got) != 2 || got[0].Error != "" || got[0].KeyID != k.id || got[0].AccountID != "acct1" ||
		got[1].Error != apikey.ErrPermission || got[1].Method != "AddOrder" {
		t.Fatalf("%+v", got)
	}
}

func TestNewValidates(t *testing.T) {
	h := newHarness(t, nil)
	for name, mutate := range map[string]func(c *Config){
		"no keys":         func(c *Config) { c.Keys = nil },
		"short key":       func(c *Config) { c.IdentityKey = []byte("short") },
		"no pepper":       func(c *Config) { c.PasswordPepper = nil },
		"bad tier":        func(c *Config) { c.Tiers = map[string]apikey.Tier{"starter": {Max: 0, DecayPerSecond: 1}} },
		"unknown default": func(c *Config) { c.DefaultTier = "gold" },
		"bad lockout":     func(c *Config) { c.Lockout = &apikey.Lockout{After: 3} },
	} {
		c := h.cfg
		mutate(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c := h.cfg
	c.Lockout = &apikey.Lockout{}
	if _, err := New(c); err != nil {
		t.Errorf("disabled lockout: %v", err)
	}
}
