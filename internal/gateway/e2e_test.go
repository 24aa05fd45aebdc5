package gateway_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apikey"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/gateway"
	"github.com/moat-dev/moat/internal/nonce"
	"github.com/moat-dev/moat/internal/sandbox"
)

// mapKeys is a KeyLookup over a map, for the end-to-end test.
type mapKeys map[string]apikey.Credential

func (m mapKeys) LookupKey(_ context.Context, pub string) (apikey.Credential, error) {
	c, ok := m[pub]
	if !ok {
		return apikey.Credential{}, apikey.ErrKeyNotFound
	}
	return c, nil
}

// krakenClient signs exactly as krakenex (form body, integer nonce) or
// python-kraken-sdk (JSON body, nonce as a string) do, with its own
// implementation of the scheme rather than moat's.
type krakenClient struct {
	t      *testing.T
	base   string
	key    string
	secret string // base64, as the owner copied it
	json   bool
	nonce  *atomic.Uint64
}

func (c krakenClient) private(method string, data map[string]string) (result json.RawMessage, errs []string) {
	c.t.Helper()
	n := strconv.FormatUint(c.nonce.Add(1), 10)
	var body, ct string
	if c.json {
		obj := map[string]string{"nonce": n}
		for k, v := range data {
			obj[k] = v
		}
		b, _ := json.Marshal(obj)
		body, ct = string(b), "application/json; charset=utf-8"
	} else {
		form := url.Values{"nonce": {n}}
		for k, v := range data {
			form.Set(k, v)
		}
		body, ct = form.Encode(), "application/x-www-form-urlencoded; charset=utf-8"
	}
	path := "/0/private/" + method
	inner := sha256.Sum256([]byte(n + body))
	secret, err := base64.StdEncoding.DecodeString(c.secret)
	if err != nil {
		c.t.Fatal(err)
	}
	mac := hmac.New(sha512.New, secret)
	mac.Write(append([]byte(path), inner[:]...))
	req, _ := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(body))
	req.Header.Set("API-Key", c.key)
	req.Header.Set("API-Sign", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("User-Agent", "krakenex/2.2.2 (+https://github.com/veox/python3-krakenex)")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		c.t.Fatalf("%s: HTTP %d %s", method, resp.StatusCode, b)
	}
	var env struct {
		Error  []string        `json:"error"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		c.t.Fatal(err)
	}
	if env.Error == nil {
		c.t.Fatalf("%s: no error array", method)
	}
	return env.Result, env.Error
}

func (c krakenClient) ok(method string, data map[string]string, into any) {
	c.t.Helper()
	res, errs := c.private(method, data)
	if len(errs) != 0 {
		c.t.Fatalf("%s: %v", method, errs)
	}
	if err := json.Unmarshal(res, into); err != nil {
		c.t.Fatalf("%s: %v in %s", method, err, res)
	}
}

func (c krakenClient) fails(method string, data map[string]string, want apikey.KrakenError) {
	c.t.Helper()
	if _, errs := c.private(method, data); len(errs) != 1 || errs[0] != string(want) {
		c.t.Fatalf("%s: %v, want %s", method, errs, want)
	}
}

// The gateway and the sandbox behind it, over real HTTP, driven by clients
// that sign like krakenex and python-kraken-sdk.
func TestEndToEndWithSandbox(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Now().UTC())
	idKey := make([]byte, 32)
	_, _ = rand.Read(idKey)
	books := sandbox.NewMemory()
	sb, err := sandbox.New(sandbox.Config{Store: books, IdentityKeys: [][]byte{idKey}, Clock: clk, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	keys := mapKeys{}
	gw, err := gateway.New(gateway.Config{
		Keys: keys, Nonces: nonce.NewMemory(0), Counters: nonce.NewMemoryCounter(),
		Upstream: sb, IdentityKey: idKey, PasswordPepper: []byte("pepper"), Clock: clk,
		Tiers: map[string]apikey.Tier{"starter": {Max: 100, DecayPerSecond: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/0/private/", gw)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	var nonces atomic.Uint64
	nonces.Store(uint64(clk.Now().UnixMilli()))
	newKey := func(account string, perms apikey.Permissions) (pub, secret string) {
		pub, _ = apikey.NewPublicKey(rand.Reader)
		raw, _ := apikey.NewSecret(rand.Reader)
		keys[pub] = apikey.Credential{
			Key:    apikey.Key{ID: "key-" + pub[:8], AccountID: account, PublicKey: pub, Permissions: perms},
			Secret: raw,
		}
		return pub, apikey.EncodeSecret(raw)
	}
	if err := sandbox.Seed(ctx, books, "alice", map[string]string{"ZUSD": "1000", "XXBT": "0.5"}); err != nil {
		t.Fatal(err)
	}
	tradePub, tradeSecret := newKey("alice", apikey.PermissionsOf(apikey.QueryFunds, apikey.QueryOpenOrders,
		apikey.QueryClosedOrders, apikey.CreateModifyOrders, apikey.CancelCloseOrders, apikey.AccessWebSockets, apikey.WithdrawFunds))
	readPub, readSecret := newKey("alice", apikey.PermissionsOf(apikey.QueryFunds))

	for _, useJSON := range []bool{false, true} {
		name := "krakenex form"
		if useJSON {
			name = "python-kraken-sdk JSON"
		}
		t.Run(name, func(t *testing.T) {
			trader := krakenClient{t: t, base: srv.URL, key: tradePub, secret: tradeSecret, json: useJSON, nonce: &nonces}
			reader := krakenClient{t: t, base: srv.URL, key: readPub, secret: readSecret, json: useJSON, nonce: &nonces}

			var bal map[string]string
			trader.ok("Balance", nil, &bal)
			if bal["ZUSD"] != "1000.0000" || bal["XXBT"] != "0.5000000000" {
				t.Fatalf("Balance %v", bal)
			}

			var added struct {
				Descr struct{ Order string } `json:"descr"`
				TxID  []string               `json:"txid"`
			}
			trader.ok("AddOrder", map[string]string{"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "37500", "volume": "0.02", "userref": "7"}, &added)
			if added.Descr.Order != "buy 0.02000000 XBTUSD @ limit 37500.0" || len(added.TxID) != 1 || len(added.TxID[0]) != 19 {
				t.Fatalf("AddOrder %+v", added)
			}
			txid := added.TxID[0]

			var ex map[string]struct {
				Balance   string `json:"balance"`
				HoldTrade string `json:"hold_trade"`
			}
			trader.ok("BalanceEx", nil, &ex)
			if ex["ZUSD"].Balance != "1000.0000" || ex["ZUSD"].HoldTrade != "750.0000" || ex["XXBT"].HoldTrade != "0.0000000000" {
				t.Fatalf("BalanceEx %+v", ex)
			}
			// 750 of 1000 USD are held: another such order does not fit.
			trader.fails("AddOrder", map[string]string{"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "37500", "volume": "0.02"}, apikey.ErrInsufficientFund)
			trader.fails("AddOrder", map[string]string{"pair": "DOGEUSD", "type": "buy", "ordertype": "limit", "price": "1", "volume": "1"}, apikey.ErrUnknownAssetPair)

			var open struct {
				Open map[string]struct {
					Status string `json:"status"`
					Descr  struct {
						Pair, Type, OrderType, Price, Order string
					} `json:"descr"`
					Vol     string  `json:"vol"`
					UserRef int64   `json:"userref"`
					OpenTm  float64 `json:"opentm"`
				} `json:"open"`
			}
			trader.ok("OpenOrders", nil, &open)
			o, found := open.Open[txid]
			if !found || o.Status != "open" || o.Vol != "0.02000000" || o.Descr.Price != "37500.0" || o.UserRef != 7 || o.OpenTm == 0 {
				t.Fatalf("OpenOrders %+v", open)
			}

			var tb map[string]string
			trader.ok("TradeBalance", map[string]string{"asset": "ZUSD"}, &tb)
			if tb["eb"] != "31000.0000" || tb["tb"] != tb["eb"] {
				t.Fatalf("TradeBalance %v", tb)
			}

			var ws struct {
				Token   string `json:"token"`
				Expires int    `json:"expires"`
			}
			trader.ok("GetWebSocketsToken", nil, &ws)
			if len(ws.Token) < 40 || ws.Expires != 900 {
				t.Fatalf("GetWebSocketsToken %+v", ws)
			}

			reader.fails("AddOrder", map[string]string{"pair": "XBTUSD", "type": "sell", "ordertype": "market", "volume": "0.1"}, apikey.ErrPermission)
			reader.fails("CancelOrder", map[string]string{"txid": txid}, apikey.ErrPermission)
			trader.fails("Withdraw", map[string]string{"asset": "XBT", "key": "cold", "amount": "0.1"}, apikey.ErrFeatureDisabled)

			var cancelled struct {
				Count int `json:"count"`
			}
			trader.ok("CancelOrder", map[string]string{"txid": txid}, &cancelled)
			if cancelled.Count != 1 {
				t.Fatalf("CancelOrder %+v", cancelled)
			}
			trader.fails("CancelOrder", map[string]string{"txid": txid}, apikey.ErrUnknownOrder)

			var closed struct {
				Closed map[string]struct {
					Status string  `json:"status"`
					Reason string  `json:"reason"`
					Close  float64 `json:"closetm"`
				} `json:"closed"`
				Count int `json:"count"`
			}
			trader.ok("ClosedOrders", nil, &closed)
			if c := closed.Closed[txid]; c.Status != "canceled" || c.Reason != "User requested" || c.Close == 0 || closed.Count < 1 {
				t.Fatalf("ClosedOrders %+v", closed)
			}
			trader.ok("BalanceEx", nil, &ex)
			if ex["ZUSD"].HoldTrade != "0.0000" {
				t.Fatalf("hold not released: %+v", ex)
			}
		})
	}

	// Another account sees only its own book.
	bobPub, bobSecret := newKey("bob", apikey.PermissionsOf(apikey.QueryFunds, apikey.QueryClosedOrders))
	bob := krakenClient{t: t, base: srv.URL, key: bobPub, secret: bobSecret, nonce: &nonces}
	var bal map[string]string
	bob.ok("Balance", nil, &bal)
	var closed struct {
		Closed map[string]any `json:"closed"`
		Count  int            `json:"count"`
	}
	bob.ok("ClosedOrders", nil, &closed)
	if len(bal) != 0 || closed.Count != 0 {
		t.Fatalf("bob sees %v and %d orders", bal, closed.Count)
	}

	// The sandbox refuses anything that did not come through the gateway.
	direct := httptest.NewServer(sb)
	defer direct.Close()
	resp, err := http.Post(direct.URL+"/0/private/Balance", "application/x-www-form-urlencoded",
		strings.NewReader("nonce=1"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !bytes.Contains(b, []byte("EGeneral:Permission denied")) {
		t.Fatalf("direct call: %d %s", resp.StatusCode, b)
	}
}

// The reverse proxy carries verified calls to a remote backend, which can
// verify who is calling; a dead backend answers EService:Unavailable.
func TestReverseProxy(t *testing.T) {
	idKey := bytes.Repeat([]byte{3}, 32)
	var got *http.Request
	var gotBody []byte
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		gotBody, _ = io.ReadAll(r.Body)
		fmt.Fprint(w, `{"error":[],"result":{"ZUSD":"1.0"}}`)
	}))
	defer backend.Close()
	u, _ := url.Parse(backend.URL + "/exchange")
	pub, _ := apikey.NewPublicKey(rand.Reader)
	secret, _ := apikey.NewSecret(rand.Reader)
	keys := mapKeys{pub: {Key: apikey.Key{ID: "k1", AccountID: "a1", PublicKey: pub, Permissions: apikey.AllPermissionSet}, Secret: secret}}
	newGW := func(up http.Handler) *gateway.Gateway {
		gw, err := gateway.New(gateway.Config{Keys: keys, Nonces: nonce.NewMemory(0), Counters: nonce.NewMemoryCounter(),
			Upstream: up, IdentityKey: idKey, PasswordPepper: []byte("p")})
		if err != nil {
			t.Fatal(err)
		}
		return gw
	}
	call := func(gw http.Handler) *httptest.ResponseRecorder {
		n := strconv.FormatInt(time.Now().UnixNano(), 10)
		body := "nonce=" + n
		r := httptest.NewRequest(http.MethodPost, "/0/private/Balance", strings.NewReader(body))
		r.Header.Set("API-Key", pub)
		r.Header.Set("API-Sign", apikey.Sign("/0/private/Balance", n, []byte(body), secret))
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, r)
		return w
	}
	w := call(newGW(gateway.NewReverseProxy(u, nil)))
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"ZUSD":"1.0"`) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if got.URL.Path != "/exchange/0/private/Balance" || got.Header.Get("API-Key") != "" || got.Header.Get("X-Forwarded-For") != "192.0.2.1" {
		t.Fatalf("backend saw %s %v", got.URL.Path, got.Header)
	}
	// The backend verifies the identity over the path moat signed.
	if _, err := identityVerify(got, gotBody, idKey); err != nil {
		t.Fatal(err)
	}

	dead, _ := url.Parse("http://127.0.0.1:1")
	w = call(newGW(gateway.NewReverseProxy(dead, nil)))
	if w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), "EService:Unavailable") {
		t.Fatalf("dead backend: %d %s", w.Code, w.Body)
	}
}
