package sandbox

import (
	"math/big"
	"strings"
)

// Pair is a trading pair the sandbox knows, in Kraken's names.
type Pair struct {
	Name         string // "XXBTZUSD"
	AltName      string // "XBTUSD", used in order descriptions
	WSName       string // "XBT/USD"
	Base, Quote  string // asset codes, "XXBT", "ZUSD"
	PairDecimals int    // price precision
	LotDecimals  int    // volume precision
	OrderMin     string // smallest volume
}

// Pairs are Kraken's main spot pairs, with Kraken's precisions and minimums.
var defaultPairs = []Pair{
	{"XXBTZUSD", "XBTUSD", "XBT/USD", "XXBT", "ZUSD", 1, 8, "0.00005"},
	{"XXBTZEUR", "XBTEUR", "XBT/EUR", "XXBT", "ZEUR", 1, 8, "0.00005"},
	{"XETHZUSD", "ETHUSD", "ETH/USD", "XETH", "ZUSD", 2, 8, "0.002"},
	{"XETHZEUR", "ETHEUR", "ETH/EUR", "XETH", "ZEUR", 2, 8, "0.002"},
	{"XETHXXBT", "ETHXBT", "ETH/XBT", "XETH", "XXBT", 5, 8, "0.002"},
	{"USDTZUSD", "USDTUSD", "USDT/USD", "USDT", "ZUSD", 4, 8, "5"},
}

// assetDecimals is how many decimals balances show, as Kraken shows them.
var assetDecimals = map[string]int{"ZUSD": 4, "ZEUR": 4, "XXBT": 10, "XETH": 10, "USDT": 8}

// usdPrice is the fixed reference price of each asset in US dollars: the
// sandbox does no matching, so market orders and TradeBalance use these.
var usdPrice = map[string]string{"ZUSD": "1", "ZEUR": "1.08", "XXBT": "60000", "XETH": "3000", "USDT": "1"}

// DefaultSeed is what a new development account starts with.
func DefaultSeed() map[string]string {
	return map[string]string{"ZUSD": "10000.0000", "XXBT": "0.5000000000", "XETH": "5.0000000000"}
}

func decimalsOf(asset string) int {
	if d, ok := assetDecimals[asset]; ok {
		return d
	}
	return 8
}

// findPair accepts a pair's name, altname or wsname, case-insensitively, and
// BTC for XBT as Kraken does.
func findPair(s string) (Pair, bool) {
	u := strings.ToUpper(strings.TrimSpace(s))
	u = strings.ReplaceAll(u, "BTC", "XBT")
	for _, p := range defaultPairs {
		if u == p.Name || u == p.AltName || u == p.WSName {
			return p, true
		}
	}
	return Pair{}, false
}

// normalizeAsset maps "USD", "XBT", "BTC" and friends to Kraken's codes.
func normalizeAsset(s string) (string, bool) {
	u := strings.ToUpper(strings.TrimSpace(s))
	switch u {
	case "USD", "ZUSD":
		return "ZUSD", true
	case "EUR", "ZEUR":
		return "ZEUR", true
	case "XBT", "BTC", "XXBT":
		return "XXBT", true
	case "ETH", "XETH":
		return "XETH", true
	case "USDT":
		return "USDT", true
	}
	return "", false
}

// parseDec parses a plain non-negative decimal ("1", "0.25"), the only
// number form orders accept: no signs, exponents or fractions like "1/3".
func parseDec(s string) (r *big.Rat, decimals int, ok bool) {
	if s == "" || len(s) > 40 {
		return nil, 0, false
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" || (hasDot && frac == "") || !digits(intPart) || !digits(frac) {
		return nil, 0, false
	}
	r, ok = new(big.Rat).SetString(s)
	return r, len(frac), ok
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func rat(s string) *big.Rat {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return new(big.Rat)
	}
	return r
}

func format(r *big.Rat, decimals int) string { return r.FloatString(decimals) }
