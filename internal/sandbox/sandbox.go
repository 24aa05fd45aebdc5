// Package sandbox is the built-in upstream behind moat's signed API in the
// embedded default: a pretend exchange that answers Kraken's Balance,
// BalanceEx, TradeBalance, OpenOrders, ClosedOrders, AddOrder, CancelOrder
// and GetWebSocketsToken in Kraken's shapes, so bots and client libraries
// can be tried against moat end to end. Orders are recorded and funds held,
// but nothing is ever matched.
//
// It trusts nothing but the identity headers the gateway signs (package
// identity); a request without a valid signature is refused.
package sandbox

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/apikey"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/gateway/identity"
)

// Config is what the sandbox is built from.
type Config struct {
	Store Store // required
	// IdentityKeys verify the gateway's identity headers (any may match).
	IdentityKeys [][]byte // required
	Clock        clock.Clock
	Rand         io.Reader // required: order IDs and WebSocket tokens
	MaxSkew      time.Duration
	Logger       *slog.Logger
}

// Sandbox is the handler. It is safe for concurrent use.
type Sandbox struct {
	c       Config
	clock   clock.Clock
	log     *slog.Logger
	methods map[string]func(ctx context.Context, id identity.Identity, p params) (any, error)
}

// New returns a Sandbox.
func New(c Config) (*Sandbox, error) {
	if c.Store == nil || len(c.IdentityKeys) == 0 || c.Rand == nil {
		return nil, errors.New("sandbox: Store, IdentityKeys and Rand are required")
	}
	s := &Sandbox{c: c, clock: c.Clock, log: c.Logger}
	if s.clock == nil {
		s.clock = clock.System{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.c.MaxSkew <= 0 {
		s.c.MaxSkew = identity.DefaultMaxSkew
	}
	s.methods = map[string]func(context.Context, identity.Identity, params) (any, error){
		"Balance":            s.balance,
		"BalanceEx":          s.balanceEx,
		"TradeBalance":       s.tradeBalance,
		"OpenOrders":         s.openOrders,
		"ClosedOrders":       s.closedOrders,
		"AddOrder":           s.addOrder,
		"CancelOrder":        s.cancelOrder,
		"GetWebSocketsToken": s.webSocketsToken,
	}
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Sandbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		write(w, http.StatusBadRequest, apikey.ErrBadRequest, nil)
		return
	}
	id, err := identity.Verify(r.Header, r.Method, r.URL.Path, body, s.clock.Now(), s.c.MaxSkew, s.c.IdentityKeys...)
	if err != nil {
		s.log.WarnContext(r.Context(), "sandbox: refused a request without a valid identity", "err", err)
		write(w, http.StatusForbidden, apikey.ErrPermission, nil)
		return
	}
	method, _ := apikey.MethodFromPath(r.URL.Path)
	fn := s.methods[method]
	if fn == nil || r.Method != http.MethodPost {
		write(w, http.StatusOK, apikey.ErrUnknownMethod, nil)
		return
	}
	p, err := parseParams(r.Header.Get("Content-Type"), body)
	if err != nil {
		write(w, http.StatusOK, apikey.ErrInvalidArguments, nil)
		return
	}
	res, err := fn(r.Context(), id, p)
	if err != nil {
		ke := apikey.KrakenErrorOf(err)
		if ke == apikey.ErrInternal {
			s.log.ErrorContext(r.Context(), "sandbox: "+method, "err", err)
			write(w, http.StatusInternalServerError, ke, nil)
			return
		}
		write(w, http.StatusOK, ke, nil)
		return
	}
	write(w, http.StatusOK, "", res)
}

func write(w http.ResponseWriter, status int, e apikey.KrakenError, result any) {
	var b []byte
	if e != "" {
		b, _ = json.Marshal(struct {
			Error []string `json:"error"`
		}{[]string{string(e)}})
	} else {
		b, _ = json.Marshal(struct {
			Error  []string `json:"error"`
			Result any      `json:"result"`
		}{[]string{}, result})
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// params are a call's arguments, from a form or a JSON object (nested JSON
// values kept as their JSON text).
type params map[string]string

func parseParams(contentType string, body []byte) (params, error) {
	t := bytes.TrimSpace(body)
	if strings.Contains(contentType, "json") || (contentType == "" && len(t) > 0 && t[0] == '{') {
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, err
		}
		p := params{}
		for k, v := range raw {
			var s string
			if json.Unmarshal(v, &s) == nil {
				p[k] = s
			} else {
				p[k] = string(v)
			}
		}
		return p, nil
	}
	q, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, err
	}
	p := params{}
	for k, v := range q {
		p[k] = v[0]
	}
	return p, nil
}

func (p params) bool(k string) bool { v := p[k]; return v == "true" || v == "1" }

func (s *Sandbox) balance(ctx context.Context, id identity.Identity, _ params) (any, error) {
	out := map[string]string{}
	err := s.c.Store.View(ctx, id.AccountID, func(b *Book) error {
		for asset, amt := range b.Balances {
			out[asset] = format(rat(amt), decimalsOf(asset))
		}
		return nil
	})
	return out, err
}

type balanceEx struct {
	Balance   string `json:"balance"`
	HoldTrade string `json:"hold_trade"`
}

func (s *Sandbox) balanceEx(ctx context.Context, id identity.Identity, _ params) (any, error) {
	out := map[string]balanceEx{}
	err := s.c.Store.View(ctx, id.AccountID, func(b *Book) error {
		holds := holds(b)
		for asset, amt := range b.Balances {
			d := decimalsOf(asset)
			h := holds[asset]
			if h == nil {
				h = new(big.Rat)
			}
			out[asset] = balanceEx{Balance: format(rat(amt), d), HoldTrade: format(h, d)}
		}
		return nil
	})
	return out, err
}

func holds(b *Book) map[string]*big.Rat {
	h := map[string]*big.Rat{}
	for _, o := range b.Orders {
		if o.Status != "open" || o.HoldAsset == "" {
			continue
		}
		if h[o.HoldAsset] == nil {
			h[o.HoldAsset] = new(big.Rat)
		}
		h[o.HoldAsset].Add(h[o.HoldAsset], rat(o.HoldAmount))
	}
	return h
}

func (s *Sandbox) tradeBalance(ctx context.Context, id identity.Identity, p params) (any, error) {
	asset := "ZUSD"
	if a := p["asset"]; a != "" {
		var ok bool
		if asset, ok = normalizeAsset(a); !ok {
			return nil, apikey.InvalidArgument("asset")
		}
	}
	unit := rat(usdPrice[asset])
	total := new(big.Rat)
	err := s.c.Store.View(ctx, id.AccountID, func(b *Book) error {
		for a, amt := range b.Balances {
			if px, ok := usdPrice[a]; ok {
				total.Add(total, new(big.Rat).Mul(rat(amt), rat(px)))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	eb := format(new(big.Rat).Quo(total, unit), 4)
	zero := "0.0000"
	// No margin in the sandbox: trade balance and equity equal the
	// equivalent balance, and there are no positions (so no "ml").
	return map[string]string{"eb": eb, "tb": eb, "m": zero, "n": zero, "c": zero, "v": zero, "e": eb, "mf": eb}, nil
}

// orderInfo is Kraken's order description in OpenOrders/ClosedOrders.
type orderInfo struct {
	RefID      *string    `json:"refid"`
	UserRef    int64      `json:"userref"`
	ClOrdID    string     `json:"cl_ord_id,omitempty"`
	Status     string     `json:"status"`
	Reason     *string    `json:"reason,omitempty"`
	OpenTm     float64    `json:"opentm"`
	CloseTm    float64    `json:"closetm,omitempty"`
	StartTm    float64    `json:"starttm"`
	ExpireTm   float64    `json:"expiretm"`
	Descr      orderDescr `json:"descr"`
	Vol        string     `json:"vol"`
	VolExec    string     `json:"vol_exec"`
	Cost       string     `json:"cost"`
	Fee        string     `json:"fee"`
	Price      string     `json:"price"`
	StopPrice  string     `json:"stopprice"`
	LimitPrice string     `json:"limitprice"`
	Misc       string     `json:"misc"`
	OFlags     string     `json:"oflags"`
}

type orderDescr struct {
	Pair      string `json:"pair"`
	Type      string `json:"type"`
	OrderType string `json:"ordertype"`
	Price     string `json:"price"`
	Price2    string `json:"price2"`
	Leverage  string `json:"leverage"`
	Order     string `json:"order"`
	Close     string `json:"close"`
}

func unixFloat(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixMicro()/100) / 1e4
}

func info(o Order) orderInfo {
	pair, _ := findPair(o.Pair)
	price, price2 := "0", "0"
	if o.Price != "" {
		price = format(rat(o.Price), pair.PairDecimals)
	}
	if o.Price2 != "" {
		price2 = format(rat(o.Price2), pair.PairDecimals)
	}
	oi := orderInfo{
		UserRef: o.UserRef, ClOrdID: o.ClOrdID, Status: o.Status,
		OpenTm: unixFloat(o.OpenedAt), CloseTm: unixFloat(o.ClosedAt),
		Descr: orderDescr{Pair: o.Pair, Type: o.Type, OrderType: o.OrderType, Price: price, Price2: price2,
			Leverage: "none", Order: o.Descr},
		Vol: format(rat(o.Volume), pair.LotDecimals), VolExec: format(new(big.Rat), pair.LotDecimals),
		Cost: "0.00000", Fee: "0.00000", Price: "0.00000", StopPrice: "0.00000", LimitPrice: "0.00000",
		OFlags: o.OFlags,
	}
	if o.Reason != "" {
		oi.Reason = &o.Reason
	}
	return oi
}

// visible applies the key's query window (identity.QueryStart/End) to an
// order's opening time.
func visible(id identity.Identity, o Order) bool {
	return (id.QueryStart.IsZero() || !o.OpenedAt.Before(id.QueryStart)) &&
		(id.QueryEnd.IsZero() || !o.OpenedAt.After(id.QueryEnd))
}

func (s *Sandbox) openOrders(ctx context.Context, id identity.Identity, p params) (any, error) {
	userref, hasRef, err := optInt(p, "userref")
	if err != nil {
		return nil, err
	}
	open := map[string]orderInfo{}
	err = s.c.Store.View(ctx, id.AccountID, func(b *Book) error {
		for _, o := range b.Orders {
			if o.Status == "open" && visible(id, o) && (!hasRef || o.UserRef == userref) &&
				(p["cl_ord_id"] == "" || o.ClOrdID == p["cl_ord_id"]) {
				open[o.TxID] = info(o)
			}
		}
		return nil
	})
	return map[string]any{"open": open}, err
}

func (s *Sandbox) closedOrders(ctx context.Context, id identity.Identity, p params) (any, error) {
	userref, hasRef, err := optInt(p, "userref")
	if err != nil {
		return nil, err
	}
	start, hasStart, err := optInt(p, "start")
	if err != nil {
		return nil, err
	}
	end, hasEnd, err := optInt(p, "end")
	if err != nil {
		return nil, err
	}
	ofs, _, err := optInt(p, "ofs")
	if err != nil || ofs < 0 {
		return nil, apikey.InvalidArgument("ofs")
	}
	var list []Order
	err = s.c.Store.View(ctx, id.AccountID, func(b *Book) error {
		for _, o := range b.Orders {
			if o.Status == "open" || !visible(id, o) || (hasRef && o.UserRef != userref) {
				continue
			}
			if (hasStart && o.ClosedAt.Unix() <= start) || (hasEnd && o.ClosedAt.Unix() > end) {
				continue
			}
			list = append(list, o)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Newest first, 50 per page, as Kraken pages them.
	sort.SliceStable(list, func(i, j int) bool { return list[i].ClosedAt.After(list[j].ClosedAt) })
	closed := map[string]orderInfo{}
	for i := int(ofs); i < len(list) && i < int(ofs)+50; i++ {
		closed[list[i].TxID] = info(list[i])
	}
	return map[string]any{"closed": closed, "count": len(list)}, nil
}

func optInt(p params, k string) (int64, bool, error) {
	v, ok := p[k]
	if !ok || v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false, apikey.InvalidArgument(k)
	}
	return n, true, nil
}

var orderTypes = map[string]bool{
	"market": true, "limit": true, "stop-loss": true, "take-profit": true,
	"stop-loss-limit": true, "take-profit-limit": true,
}

func (s *Sandbox) addOrder(ctx context.Context, id identity.Identity, p params) (any, error) {
	if p["pair"] == "" {
		return nil, apikey.InvalidArgument("pair")
	}
	pair, ok := findPair(p["pair"])
	if !ok {
		return nil, apikey.ErrUnknownAssetPair
	}
	typ := p["type"]
	if typ != "buy" && typ != "sell" {
		return nil, apikey.InvalidArgument("type")
	}
	ot := p["ordertype"]
	if !orderTypes[ot] {
		return nil, apikey.InvalidArgument("ordertype")
	}
	vol, vd, ok := parseDec(p["volume"])
	if !ok || vol.Sign() <= 0 || vd > pair.LotDecimals {
		return nil, apikey.InvalidArgument("volume")
	}
	if vol.Cmp(rat(pair.OrderMin)) < 0 {
		return nil, apikey.ErrOrderMinimum
	}
	var price, price2 *big.Rat
	if ot != "market" {
		var pd int
		price, pd, ok = parseDec(p["price"])
		if !ok || price.Sign() <= 0 || pd > pair.PairDecimals {
			return nil, apikey.InvalidArgument("price")
		}
	}
	if strings.HasSuffix(ot, "-limit") {
		var pd int
		price2, pd, ok = parseDec(p["price2"])
		if !ok || price2.Sign() <= 0 || pd > pair.PairDecimals {
			return nil, apikey.InvalidArgument("price2")
		}
	}
	if lv := p["leverage"]; lv != "" && lv != "none" {
		return nil, apikey.InvalidArgument("leverage")
	}
	userref, _, err := optInt(p, "userref")
	if err != nil {
		return nil, err
	}
	clOrdID := p["cl_ord_id"]
	if len(clOrdID) > 64 {
		return nil, apikey.InvalidArgument("cl_ord_id")
	}

	descr := describe(typ, vol, pair, ot, price, price2)
	if p.bool("validate") {
		return map[string]any{"descr": map[string]string{"order": descr}}, nil
	}

	// Hold what the order could spend: the quote amount of a buy (at its
	// price, or the reference price for a market order), the base volume of
	// a sell.
	o := Order{
		UserRef: userref, ClOrdID: clOrdID, Status: "open", OpenedAt: s.clock.Now(),
		Pair: pair.AltName, Type: typ, OrderType: ot, Volume: format(vol, pair.LotDecimals),
		OFlags: p["oflags"], Descr: descr,
	}
	if price != nil {
		o.Price = price.FloatString(pair.PairDecimals)
	}
	if price2 != nil {
		o.Price2 = price2.FloatString(pair.PairDecimals)
	}
	hold := new(big.Rat).Set(vol)
	o.HoldAsset = pair.Base
	if typ == "buy" {
		px := price
		if px == nil {
			px = new(big.Rat).Quo(rat(usdPrice[pair.Base]), rat(usdPrice[pair.Quote]))
		}
		hold.Mul(vol, px)
		o.HoldAsset = pair.Quote
	}
	o.HoldAmount = hold.FloatString(decimalsOf(o.HoldAsset) + 2)
	if o.TxID, err = s.txid(); err != nil {
		return nil, err
	}
	err = s.c.Store.Update(ctx, id.AccountID, func(b *Book) error {
		open := 0
		for _, x := range b.Orders {
			if x.Status == "open" {
				open++
			}
		}
		if open >= MaxOpen {
			return apikey.KrakenError("EOrder:Orders limit exceeded")
		}
		avail := rat(b.Balances[o.HoldAsset])
		if h := holds(b)[o.HoldAsset]; h != nil {
			avail.Sub(avail, h)
		}
		if avail.Cmp(hold) < 0 {
			return apikey.ErrInsufficientFund
		}
		b.Orders = append(b.Orders, o)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"descr": map[string]string{"order": descr}, "txid": []string{o.TxID}}, nil
}

// describe writes Kraken's order description, e.g.
// "buy 1.25000000 XBTUSD @ limit 37500.0".
func describe(typ string, vol *big.Rat, pair Pair, ot string, price, price2 *big.Rat) string {
	head := fmt.Sprintf("%s %s %s @ ", typ, vol.FloatString(pair.LotDecimals), pair.AltName)
	px := func(r *big.Rat) string { return r.FloatString(max(pair.PairDecimals, 1)) }
	switch ot {
	case "market":
		return head + "market"
	case "limit":
		return head + "limit " + px(price)
	case "stop-loss":
		return head + "stop loss " + px(price)
	case "take-profit":
		return head + "take profit " + px(price)
	case "stop-loss-limit":
		return head + "stop loss " + px(price) + " -> limit " + px(price2)
	default: // take-profit-limit
		return head + "take profit " + px(price) + " -> limit " + px(price2)
	}
}

// txid makes an order ID in Kraken's shape, e.g. "OUF4EM-FRGI2-MQMWZD".
func (s *Sandbox) txid() (string, error) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	var b [17]byte
	if _, err := io.ReadFull(s.c.Rand, b[:]); err != nil {
		return "", fmt.Errorf("sandbox: read random: %w", err)
	}
	out := make([]byte, 0, 19)
	for i, c := range b {
		if i == 6 || i == 11 {
			out = append(out, '-')
		}
		out = append(out, alphabet[c%32])
	}
	return string(out), nil
}

func (s *Sandbox) cancelOrder(ctx context.Context, id identity.Identity, p params) (any, error) {
	ref := strings.TrimSpace(p["txid"])
	if ref == "" {
		ref = strings.TrimSpace(p["cl_ord_id"])
	}
	if ref == "" {
		return nil, apikey.InvalidArgument("txid")
	}
	userref, isRef := strconv.ParseInt(ref, 10, 64)
	now := s.clock.Now()
	count := 0
	err := s.c.Store.Update(ctx, id.AccountID, func(b *Book) error {
		for i := range b.Orders {
			o := &b.Orders[i]
			if o.Status != "open" || !(o.TxID == ref || o.ClOrdID == ref || (isRef == nil && o.UserRef == userref)) {
				continue
			}
			o.Status, o.Reason, o.ClosedAt = "canceled", "User requested", now
			count++
		}
		if count == 0 {
			return apikey.ErrUnknownOrder
		}
		// Keep at most MaxClosed closed orders, dropping the oldest.
		closed := 0
		for i := len(b.Orders) - 1; i >= 0; i-- {
			if b.Orders[i].Status != "open" {
				if closed++; closed > MaxClosed {
					b.Orders = append(b.Orders[:i], b.Orders[i+1:]...)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]int{"count": count}, nil
}

func (s *Sandbox) webSocketsToken(_ context.Context, _ identity.Identity, _ params) (any, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(s.c.Rand, b); err != nil {
		return nil, fmt.Errorf("sandbox: read random: %w", err)
	}
	return map[string]any{"token": base64.RawStdEncoding.EncodeToString(b), "expires": 900}, nil
}
