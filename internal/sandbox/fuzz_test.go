package sandbox

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/gateway/identity"
)

// FuzzSandbox feeds arbitrary bodies (as a client wrote them; the gateway
// forwards them unchanged) to every method: never a 500, always an envelope.
func FuzzSandbox(f *testing.F) {
	f.Add("AddOrder", "application/x-www-form-urlencoded", "nonce=1&pair=XBTUSD&type=buy&ordertype=limit&price=100&volume=0.5")
	f.Add("AddOrder", "application/json", `{"nonce":1,"pair":"ETH/USD","type":"sell","ordertype":"stop-loss-limit","price":"1.5","price2":"1.25","volume":"0.01"}`)
	f.Add("CancelOrder", "", "txid=42")
	f.Add("ClosedOrders", "", "start=1&end=99999999999&ofs=3&userref=2")
	f.Add("TradeBalance", "application/json", `{"asset":"EUR"}`)
	f.Add("OpenOrders", "text/plain", "%zz")
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, method, ct, body string) {
		path := "/0/private/" + method
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.URL.Path = path
		r.Header.Set("Content-Type", ct)
		identity.Sign(r.Header, e.id, http.MethodPost, path, []byte(body), idKey, e.clock.Now())
		w := httptest.NewRecorder()
		e.s.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("HTTP %d %s", w.Code, w.Body)
		}
		var env struct {
			Error []string `json:"error"`
		}
		if json.Unmarshal(w.Body.Bytes(), &env) != nil || env.Error == nil {
			t.Fatalf("not an envelope: %q", w.Body)
		}
	})
}

func FuzzParseDec(f *testing.F) {
	for _, s := range []string{"1", "0.25", "1.", ".5", "1e5", "1/3", "-1", "00.10", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, d, ok := parseDec(s)
		if !ok {
			return
		}
		if r.Sign() < 0 || strings.ContainsAny(s, "eE/+-") || d > len(s) {
			t.Fatalf("accepted %q as %v", s, r)
		}
		if back, _, ok := parseDec(r.FloatString(d)); !ok || back.Cmp(r) != 0 {
			t.Fatalf("%q does not round-trip", s)
		}
	})
}
