package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/apikey"
)

// FuzzGateway sends arbitrary requests through the whole handler: whatever
// the input, the answer is a Kraken envelope with an error or a forwarded
// call, and never a 500.
func FuzzGateway(f *testing.F) {
	h := newHarness(f, func(c *Config) {
		c.Tiers = map[string]apikey.Tier{"starter": {Max: 1e12, DecayPerSecond: 1}}
	})
	k := h.addKey(f, apikey.AllPermissionSet, nil)
	body := "nonce=1616492376600&pair=XBTUSD"
	sign := apikey.Sign("/0/private/Balance", "1616492376600", []byte(body), k.secret)
	f.Add("POST", "/0/private/Balance", k.pub, sign, "application/x-www-form-urlencoded", body, "192.0.2.1:1", "")
	f.Add("POST", "/0/private/AddOrder", k.pub, sign, "application/json", `{"nonce":"1"}`, "[2001:db8::1]:1", "1.2.3.4")
	f.Add("GET", "/0/private/Balance", "", "", "", "", "", "")
	f.Add("POST", "/0/private/Withdraw", k.pub, "AAAA", "text/plain", "nonce=1&nonce=2", "x", "y")
	f.Fuzz(func(t *testing.T, method, path, key, sig, ct, body, remote, xff string) {
		if !validMethod(method) || !strings.HasPrefix(path, "/") {
			return // not something net/http would hand a handler
		}
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.Method = method
		r.URL.Path = path
		r.RemoteAddr = remote
		for name, v := range map[string]string{apikey.HeaderKey: key, apikey.HeaderSign: sig, "Content-Type": ct, "X-Forwarded-For": xff} {
			if v != "" {
				r.Header.Set(name, v)
			}
		}
		w := httptest.NewRecorder()
		h.gw.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("HTTP %d: %s", w.Code, w.Body)
		}
		var env struct {
			Error []string `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Error == nil {
			t.Fatalf("not a Kraken envelope: %q", w.Body)
		}
		for _, e := range env.Error {
			if !strings.HasPrefix(e, "E") {
				t.Fatalf("odd error %q", e)
			}
		}
	})
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
