package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apikey"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/gateway/identity"
)

var idKey = bytes.Repeat([]byte{5}, 32)

type env struct {
	t     testing.TB
	s     *Sandbox
	store *Memory
	clock *clock.Fake
	id    identity.Identity
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, store: NewMemory(), clock: clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
		id: identity.Identity{AccountID: "alice", KeyID: "k1", Permissions: apikey.AllPermissionSet}}
	var err error
	e.s, err = New(Config{Store: e.store, IdentityKeys: [][]byte{idKey}, Clock: e.clock, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	if err := Seed(context.Background(), e.store, "alice", map[string]string{"ZUSD": "1000", "XXBT": "1", "ZEUR": "100"}); err != nil {
		t.Fatal(err)
	}
	return e
}

type reply struct {
	status int
	Error  []string        `json:"error"`
	Result json.RawMessage `json:"result"`
}

func (e *env) raw(method, ct, body string, sign bool) reply {
	e.t.Helper()
	path := "/0/private/" + method
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	if sign {
		identity.Sign(r.Header, e.id, http.MethodPost, path, []byte(body), idKey, e.clock.Now())
	}
	w := httptest.NewRecorder()
	e.s.ServeHTTP(w, r)
	var rep reply
	if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil {
		e.t.Fatalf("%s: %q", method, w.Body)
	}
	rep.status = w.Code
	return rep
}

func (e *env) call(method string, form url.Values) reply {
	e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("nonce", "1")
	return e.raw(method, "application/x-www-form-urlencoded", form.Encode(), true)
}

func (e *env) ok(method string, form url.Values, into any) {
	e.t.Helper()
	rep := e.call(method, form)
	if len(rep.Error) != 0 || rep.status != 200 {
		e.t.Fatalf("%s %v: %d %v", method, form, rep.status, rep.Error)
	}
	if into != nil {
		if err := json.Unmarshal(rep.Result, into); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) fails(method string, form url.Values, want apikey.KrakenError) {
	e.t.Helper()
	rep := e.call(method, form)
	if len(rep.Error) != 1 || rep.Error[0] != string(want) {
		e.t.Fatalf("%s %v: %v, want %s", method, form, rep.Error, want)
	}
}

func order(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

type added struct {
	Descr struct {
		Order string `json:"order"`
	} `json:"descr"`
	TxID []string `json:"txid"`
}

func TestAddOrderValidation(t *testing.T) {
	e := newEnv(t)
	base := []string{"pair", "XBTUSD", "type", "buy", "ordertype", "limit", "price", "100", "volume", "0.5"}
	with := func(kv ...string) url.Values {
		v := order(base...)
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				v.Del(kv[i])
			} else {
				v.Set(kv[i], kv[i+1])
			}
		}
		return v
	}
	for _, tc := range []struct {
		name string
		form url.Values
		want apikey.KrakenError
	}{
		{"no pair", with("pair", ""), "EGeneral:Invalid arguments:pair"},
		{"unknown pair", with("pair", "DOGEUSD"), apikey.ErrUnknownAssetPair},
		{"bad type", with("type", "hold"), "EGeneral:Invalid arguments:type"},
		{"bad ordertype", with("ordertype", "iceberg"), "EGeneral:Invalid arguments:ordertype"},
		{"no volume", with("volume", ""), "EGeneral:Invalid arguments:volume"},
		{"zero volume", with("volume", "0"), "EGeneral:Invalid arguments:volume"},
		{"negative volume", with("volume", "-1"), "EGeneral:Invalid arguments:volume"},
		{"fraction volume", with("volume", "1/3"), "EGeneral:Invalid arguments:volume"},
		{"exponent volume", with("volume", "1e-3"), "EGeneral:Invalid arguments:volume"},
		{"too precise volume", with("volume", "0.000000001"), "EGeneral:Invalid arguments:volume"},
		{"below minimum", with("volume", "0.00001"), apikey.ErrOrderMinimum},
		{"no price", with("price", ""), "EGeneral:Invalid arguments:price"},
		{"too precise price", with("price", "100.05"), "EGeneral:Invalid arguments:price"},
		{"no price2", with("ordertype", "stop-loss-limit"), "EGeneral:Invalid arguments:price2"},
		{"leverage", with("leverage", "5"), "EGeneral:Invalid arguments:leverage"},
		{"bad userref", with("userref", "x"), "EGeneral:Invalid arguments:userref"},
		{"too expensive", with("volume", "20"), apikey.ErrInsufficientFund},
		{"selling more than held", with("type", "sell", "volume", "1.5"), apikey.ErrInsufficientFund},
	} {
		t.Run(tc.name, func(t *testing.T) { e.fails("AddOrder", tc.form, tc.want) })
	}
	var open struct{ Open map[string]any }
	e.ok("OpenOrders", nil, &open)
	if len(open.Open) != 0 {
		t.Fatal("a refused order was recorded")
	}
}

func TestAddOrderDescriptions(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{order("pair", "XBTUSD", "type", "buy", "ordertype", "limit", "price", "100", "volume", "1.25"), "buy 1.25000000 XBTUSD @ limit 100.0"},
		{order("pair", "xbtusd", "type", "sell", "ordertype", "market", "volume", "0.1"), "sell 0.10000000 XBTUSD @ market"},
		{order("pair", "BTC/USD", "type", "sell", "ordertype", "stop-loss-limit", "price", "90", "price2", "89.5", "volume", "0.1"), "sell 0.10000000 XBTUSD @ stop loss 90.0 -> limit 89.5"},
		{order("pair", "XETHZUSD", "type", "buy", "ordertype", "take-profit", "price", "10.25", "volume", "1"), "buy 1.00000000 ETHUSD @ take profit 10.25"},
	} {
		var got added
		e.ok("AddOrder", tc.form, &got)
		if got.Descr.Order != tc.want || len(got.TxID) != 1 {
			t.Errorf("%v: %+v, want %q", tc.form, got, tc.want)
		}
		if id := got.TxID[0]; len(id) != 19 || id[6] != '-' || id[12] != '-' || strings.ToUpper(id) != id {
			t.Errorf("txid %q not in Kraken's shape", id)
		}
	}
	// validate=true checks and describes, but records nothing.
	var v added
	e.ok("AddOrder", order("pair", "XBTUSD", "type", "buy", "ordertype", "limit", "price", "1", "volume", "1", "validate", "true"), &v)
	if v.TxID != nil || v.Descr.Order != "buy 1.00000000 XBTUSD @ limit 1.0" {
		t.Fatalf("validate: %+v", v)
	}
	var open struct{ Open map[string]any }
	e.ok("OpenOrders", nil, &open)
	if len(open.Open) != 4 {
		t.Fatalf("%d open orders, want 4", len(open.Open))
	}
}

func TestHoldsAndCancel(t *testing.T) {
	e := newEnv(t)
	var a, b, c added
	e.ok("AddOrder", order("pair", "XBTUSD", "type", "buy", "ordertype", "limit", "price", "100", "volume", "2", "userref", "42"), &a)
	e.ok("AddOrder", order("pair", "XBTUSD", "type", "sell", "ordertype", "limit", "price", "100", "volume", "0.4", "cl_ord_id", "my-order-1"), &b)
	e.ok("AddOrder", order("pair", "XBTUSD", "type", "buy", "ordertype", "market", "volume", "0.01"), &c) // held at the 60000 reference price
	var ex map[string]struct{ Balance, HoldTrade string }
	parse := func() {
		rep := e.call("BalanceEx", nil)
		var m map[string]map[string]string
		_ = json.Unmarshal(rep.Result, &m)
		ex = map[string]struct{ Balance, HoldTrade string }{}
		for k, v := range m {
			ex[k] = struct{ Balance, HoldTrade string }{v["balance"], v["hold_trade"]}
		}
	}
	parse()
	if ex["ZUSD"].HoldTrade != "800.0000" || ex["XXBT"].HoldTrade != "0.4000000000" || ex["ZUSD"].Balance != "1000.0000" {
		t.Fatalf("holds %+v", ex)
	}
	var n struct{ Count int }
	e.ok("CancelOrder", order("txid", "42"), &n) // by userref
	if n.Count != 1 {
		t.Fatalf("cancel by userref: %d", n.Count)
	}
	e.ok("CancelOrder", order("cl_ord_id", "my-order-1"), &n)
	e.ok("CancelOrder", order("txid", c.TxID[0]), &n)
	e.fails("CancelOrder", order("txid", c.TxID[0]), apikey.ErrUnknownOrder)
	e.fails("CancelOrder", order("txid", "OAAAAA-BBBBB-CCCCCC"), apikey.ErrUnknownOrder)
	e.fails("CancelOrder", nil, "EGeneral:Invalid arguments:txid")
	parse()
	if ex["ZUSD"].HoldTrade != "0.0000" || ex["XXBT"].HoldTrade != "0.0000000000" {
		t.Fatalf("holds after cancel %+v", ex)
	}
}

func TestClosedOrdersPagingAndQueryWindow(t *testing.T) {
	e := newEnv(t)
	var ids []string
	for i := 0; i < 60; i++ {
		var a added
		e.ok("AddOrder", order("pair", "XBTUSD", "type", "buy", "ordertype", "limit", "price", "1", "volume", "0.001"), &a)
		e.ok("CancelOrder", order("txid", a.TxID[0]), nil)
		ids = append(ids, a.TxID[0])
		e.clock.Advance(time.Minute)
	}
	type page struct {
		Closed map[string]struct {
			CloseTm float64 `json:"closetm"`
		} `json:"closed"`
		Count int `json:"count"`
	}
	var p page
	e.ok("ClosedOrders", nil, &p)
	if p.Count != 60 || len(p.Closed) != 50 {
		t.Fatalf("first page: count %d, %d orders", p.Count, len(p.Closed))
	}
	if _, ok := p.Closed[ids[59]]; !ok {
		t.Fatal("newest first")
	}
	p = page{}
	e.ok("ClosedOrders", order("ofs", "50"), &p)
	if len(p.Closed) != 10 {
		t.Fatalf("second page: %d", len(p.Closed))
	}
	start := strconv.FormatInt(time.Date(2026, 3, 1, 12, 49, 30, 0, time.UTC).Unix(), 10)
	p = page{}
	e.ok("ClosedOrders", order("start", start), &p)
	if p.Count != 10 {
		t.Fatalf("start filter: %d", p.Count)
	}
	// A key whose query window ends early sees only the early orders.
	e.id.QueryEnd = time.Date(2026, 3, 1, 12, 9, 30, 0, time.UTC)
	p = page{}
	e.ok("ClosedOrders", nil, &p)
	if p.Count != 10 {
		t.Fatalf("query window: %d", p.Count)
	}
	e.fails("ClosedOrders", order("ofs", "-1"), "EGeneral:Invalid arguments:ofs")
}

func TestTradeBalanceAndToken(t *testing.T) {
	e := newEnv(t)
	var tb map[string]string
	e.ok("TradeBalance", nil, &tb)
	// 1000 USD + 1 XBT at 60000 + 100 EUR at 1.08.
	if tb["eb"] != "61108.0000" || tb["e"] != "61108.0000" || tb["m"] != "0.0000" {
		t.Fatalf("TradeBalance %v", tb)
	}
	e.ok("TradeBalance", order("asset", "XBT"), &tb)
	if tb["eb"] != "1.0185" {
		t.Fatalf("TradeBalance in XBT %v", tb)
	}
	e.fails("TradeBalance", order("asset", "DOGE"), "EGeneral:Invalid arguments:asset")
	var a, b struct {
		Token   string
		Expires int
	}
	e.ok("GetWebSocketsToken", nil, &a)
	e.ok("GetWebSocketsToken", nil, &b)
	if a.Token == b.Token || a.Expires != 900 {
		t.Fatalf("tokens %+v %+v", a, b)
	}
}

// The sandbox believes only the gateway's signed identity.
func TestIdentityRequired(t *testing.T) {
	e := newEnv(t)
	if rep := e.raw("Balance", "", "nonce=1", false); rep.status != 403 || rep.Error[0] != string(apikey.ErrPermission) {
		t.Fatalf("unsigned: %+v", rep)
	}
	// Signed for another body.
	path := "/0/private/Balance"
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader("nonce=2"))
	identity.Sign(r.Header, e.id, http.MethodPost, path, []byte("nonce=1"), idKey, e.clock.Now())
	w := httptest.NewRecorder()
	e.s.ServeHTTP(w, r)
	if w.Code != 403 {
		t.Fatalf("tampered body: %d", w.Code)
	}
	if rep := e.call("Ledgers", nil); rep.Error[0] != string(apikey.ErrUnknownMethod) {
		t.Fatalf("unsupported method: %v", rep.Error)
	}
	if rep := e.raw("Balance", "application/json", `{"nonce":1`, true); rep.Error[0] != string(apikey.ErrInvalidArguments) {
		t.Fatalf("broken JSON: %v", rep.Error)
	}
}

// JSON bodies as python-kraken-sdk sends them, nested values included.
func TestJSONParams(t *testing.T) {
	e := newEnv(t)
	rep := e.raw("AddOrder", "application/json", `{"nonce":"5","pair":"XBTUSD","type":"buy","ordertype":"limit","price":"100","volume":"0.5","userref":9,"close":{"ordertype":"limit"}}`, true)
	if len(rep.Error) != 0 {
		t.Fatal(rep.Error)
	}
	var open struct {
		Open map[string]struct{ UserRef int64 } `json:"open"`
	}
	e.ok("OpenOrders", order("userref", "9"), &open)
	if len(open.Open) != 1 {
		t.Fatalf("%+v", open)
	}
}

func TestClosedOrdersAreBounded(t *testing.T) {
	e := newEnv(t)
	err := e.store.Update(context.Background(), "alice", func(b *Book) error {
		for i := 0; i < MaxClosed; i++ {
			b.Orders = append(b.Orders, Order{TxID: strconv.Itoa(i), Status: "canceled", Pair: "XBTUSD", Volume: "1", ClosedAt: e.clock.Now()})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var a added
	e.ok("AddOrder", order("pair", "XBTUSD", "type", "buy", "ordertype", "limit", "price", "1", "volume", "0.001"), &a)
	e.ok("CancelOrder", order("txid", a.TxID[0]), nil)
	_ = e.store.View(context.Background(), "alice", func(b *Book) error {
		if len(b.Orders) != MaxClosed || b.Orders[0].TxID != "1" {
			t.Fatalf("%d orders kept, first %s", len(b.Orders), b.Orders[0].TxID)
		}
		return nil
	})
}
