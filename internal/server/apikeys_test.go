package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apikey"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/sandbox"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/postgres/pgtest"
	"github.com/moat-dev/moat/internal/testenv"
)

// This file drives API keys end to end through the real server handler:
// keys made through the JSON API and the web form (both behind the
// step-up), then used by a Kraken client against /0/private/.

// krakenex is a client that signs exactly as python3-krakenex 2.x does —
// the form body in the caller's order with the nonce appended last, the
// nonce a millisecond count, API-Key and API-Sign headers, its User-Agent
// — written from Kraken's documentation, not from moat's code. Only its
// base URL points at moat.
type krakenex struct {
	t      *testing.T
	uri    string
	key    string
	secret string
	nonce  *atomic.Uint64
	client *http.Client
}

type kv struct{ k, v string }

// queryPrivate is krakenex's query_private; nonce 0 means the next one.
func (k krakenex) queryPrivate(method string, nonce uint64, data ...kv) (json.RawMessage, []string) {
	k.t.Helper()
	if nonce == 0 {
		nonce = k.nonce.Add(1)
	}
	n := strconv.FormatUint(nonce, 10)
	var body strings.Builder
	for _, p := range data {
		body.WriteString(url.QueryEscape(p.k) + "=" + url.QueryEscape(p.v) + "&")
	}
	body.WriteString("nonce=" + n)
	urlpath := "/0/private/" + method
	sum := sha256.Sum256([]byte(n + body.String()))
	secret, err := base64.StdEncoding.DecodeString(k.secret)
	if err != nil {
		k.t.Fatal(err)
	}
	mac := hmac.New(sha512.New, secret)
	mac.Write([]byte(urlpath))
	mac.Write(sum[:])
	req, err := http.NewRequest(http.MethodPost, k.uri+urlpath, strings.NewReader(body.String()))
	if err != nil {
		k.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "krakenex/2.2.2 (+https://github.com/veox/python3-krakenex)")
	req.Header.Set("API-Key", k.key)
	req.Header.Set("API-Sign", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	resp, err := k.client.Do(req)
	if err != nil {
		k.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		k.t.Fatalf("%s: HTTP %d %s", method, resp.StatusCode, raw)
	}
	var env struct {
		Error  []string        `json:"error"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || env.Error == nil {
		k.t.Fatalf("%s: not Kraken's envelope: %s (%v)", method, raw, err)
	}
	return env.Result, env.Error
}

func (k krakenex) ok(method string, into any, data ...kv) {
	k.t.Helper()
	res, errs := k.queryPrivate(method, 0, data...)
	if len(errs) != 0 {
		k.t.Fatalf("%s: %v", method, errs)
	}
	if err := json.Unmarshal(res, into); err != nil {
		k.t.Fatalf("%s: %v in %s", method, err, res)
	}
}

func (k krakenex) fails(method string, want string, data ...kv) {
	k.t.Helper()
	if _, errs := k.queryPrivate(method, 0, data...); len(errs) != 1 || errs[0] != want {
		k.t.Fatalf("%s: errors %v, want [%s]", method, errs, want)
	}
}

// keyServer is a server with one confirmed account signed in over the
// JSON API.
type keyServer struct {
	*testServer
	email, token string
	nonce        atomic.Uint64
}

func startKeyServer(t *testing.T, mutate ...func(*config.Config)) *keyServer {
	t.Helper()
	mutate = append([]func(*config.Config){func(c *config.Config) { c.Security.DeviceApproval = false }}, mutate...)
	ts := start(t, testConfig(t, mutate...))
	ks := &keyServer{testServer: ts, email: "bot-owner@example.com"}
	ks.nonce.Store(uint64(time.Now().UnixMilli()))
	if _, err := ts.Accounts().CreateConfirmedUser(context.Background(), ks.email, testPassword, store.RoleUser, "test"); err != nil {
		t.Fatal(err)
	}
	resp := ts.do(t, "POST", "/api/v1/signin", `{"email":"`+ks.email+`","password":"`+testPassword+`"}`, jsonCT)
	var signin struct {
		SessionToken string `json:"session_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&signin); err != nil || signin.SessionToken == "" {
		t.Fatalf("signin: %d %v", resp.StatusCode, err)
	}
	ks.token = signin.SessionToken
	return ks
}

// api calls the JSON API with the session.
func (ks *keyServer) api(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	resp := ks.do(t, method, path, body, map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + ks.token})
	return resp.StatusCode, readBody(t, resp)
}

func (ks *keyServer) kraken(t *testing.T, key, secret string) krakenex {
	return krakenex{t: t, uri: ks.srv.URL, key: key, secret: secret, nonce: &ks.nonce, client: ks.srv.Client()}
}

type createdKey struct {
	Key struct {
		ID          string   `json:"id"`
		PublicKey   string   `json:"public_key"`
		Permissions []string `json:"permissions"`
	} `json:"key"`
	Secret string `json:"secret"`
}

func TestAPIKeysEndToEnd(t *testing.T) {
	ks := startKeyServer(t)

	// JSON API: the step-up is required, and a wrong password refused.
	create := `{"name":"balance bot","permissions":["query-funds"],"allowed_ips":["127.0.0.1","::1"]`
	code, body := ks.api(t, "POST", "/api/v1/apikeys", create+`}`)
	if code != http.StatusForbidden || !strings.Contains(body, `"step_up_required"`) || !strings.Contains(body, `"step_up.password"`) {
		t.Fatalf("create without step-up: %d %s", code, body)
	}
	code, body = ks.api(t, "POST", "/api/v1/apikeys", create+`,"step_up":{"password":"not-my-password-at-all"}}`)
	if code != http.StatusBadRequest || !strings.Contains(body, `"step_up.password"`) {
		t.Fatalf("create with a wrong password: %d %s", code, body)
	}
	code, body = ks.api(t, "POST", "/api/v1/apikeys", `{"name":"x","permissions":["launch-rockets"],"step_up":{"password":"`+testPassword+`"}}`)
	if code != http.StatusBadRequest || !strings.Contains(body, `"permissions"`) {
		t.Fatalf("unknown permission: %d %s", code, body)
	}
	code, body = ks.api(t, "POST", "/api/v1/apikeys", create+`,"step_up":{"password":"`+testPassword+`"}}`)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	var funds createdKey
	if err := json.Unmarshal([]byte(body), &funds); err != nil {
		t.Fatal(err)
	}
	if raw, err := base64.StdEncoding.DecodeString(funds.Secret); err != nil || len(raw) != 64 || len(funds.Secret) != 88 {
		t.Fatalf("secret %q is not 64 bytes of base64", funds.Secret)
	}
	if strings.Join(funds.Key.Permissions, ",") != "query-funds" {
		t.Errorf("permissions %v", funds.Key.Permissions)
	}

	// The web form (cookies, CSRF protection) makes a second key that
	// cannot query funds.
	web := ks.webSignIn(t)
	tradeSecret, tradeKey := web.createKey(t, url.Values{
		"name": {"order bot"}, "permissions": {"create-modify-orders", "cancel-close-orders"},
		"expires": {"30d"}, "confirm_password": {testPassword},
	})

	bot := ks.kraken(t, funds.Key.PublicKey, funds.Secret)
	t.Run("balance in Kraken's envelope", func(t *testing.T) {
		var bal map[string]string
		bot.ok("Balance", &bal)
		want := sandbox.DefaultSeed()
		if len(bal) != len(want) {
			t.Fatalf("Balance %v, want the seed %v", bal, want)
		}
		for asset, amt := range want {
			if bal[asset] != amt {
				t.Errorf("Balance[%s] = %q, want %q", asset, bal[asset], amt)
			}
		}
		var ex map[string]struct {
			Balance   string `json:"balance"`
			HoldTrade string `json:"hold_trade"`
		}
		bot.ok("BalanceEx", &ex)
		if ex["ZUSD"].Balance != want["ZUSD"] || ex["ZUSD"].HoldTrade == "" {
			t.Errorf("BalanceEx %+v", ex)
		}
	})
	t.Run("replayed nonce", func(t *testing.T) {
		n := ks.nonce.Add(1)
		if _, errs := bot.queryPrivate("Balance", n); len(errs) != 0 {
			t.Fatalf("first use of nonce: %v", errs)
		}
		if _, errs := bot.queryPrivate("Balance", n); len(errs) != 1 || errs[0] != "EAPI:Invalid nonce" {
			t.Fatalf("replay: %v", errs)
		}
		if _, errs := bot.queryPrivate("Balance", n-5); len(errs) != 1 || errs[0] != "EAPI:Invalid nonce" {
			t.Fatalf("older nonce: %v", errs)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		k := bot
		k.secret = tradeSecret
		k.fails("Balance", "EAPI:Invalid signature")
	})
	trader := ks.kraken(t, tradeKey, tradeSecret)
	t.Run("permission denied", func(t *testing.T) {
		trader.fails("Balance", "EGeneral:Permission denied")
		bot.fails("AddOrder", "EGeneral:Permission denied",
			kv{"pair", "XBTUSD"}, kv{"type", "buy"}, kv{"ordertype", "limit"}, kv{"price", "30000"}, kv{"volume", "0.01"})
	})
	t.Run("trading through krakenex", func(t *testing.T) {
		var added struct {
			Descr struct {
				Order string `json:"order"`
			} `json:"descr"`
			TxID []string `json:"txid"`
		}
		trader.ok("AddOrder", &added,
			kv{"pair", "XBTUSD"}, kv{"type", "buy"}, kv{"ordertype", "limit"}, kv{"price", "30000"}, kv{"volume", "0.01"})
		if len(added.TxID) != 1 || !strings.Contains(added.Descr.Order, "buy 0.01") {
			t.Fatalf("AddOrder: %+v", added)
		}
		var cancelled struct {
			Count int `json:"count"`
		}
		trader.ok("CancelOrder", &cancelled, kv{"txid", added.TxID[0]})
		if cancelled.Count != 1 {
			t.Errorf("CancelOrder: %+v", cancelled)
		}
	})
	t.Run("unknown key and method", func(t *testing.T) {
		k := bot
		k.key = strings.Repeat("A", 56)
		k.fails("Balance", "EAPI:Invalid key")
		bot.fails("NoSuchMethod", "EGeneral:Unknown method")
	})

	t.Run("secret never listed", func(t *testing.T) {
		code, body := ks.api(t, "GET", "/api/v1/apikeys", "")
		if code != 200 || !strings.Contains(body, funds.Key.PublicKey) || !strings.Contains(body, tradeKey) {
			t.Fatalf("list: %d %s", code, body)
		}
		if !strings.Contains(body, `"step_up":"password"`) {
			t.Errorf("list does not say a password is needed: %s", body)
		}
		page := web.get(t, "/security/apikeys")
		for _, s := range []string{funds.Secret, tradeSecret} {
			if strings.Contains(body, s) || strings.Contains(page, s) {
				t.Fatal("a secret appears in a key list")
			}
		}
		if !strings.Contains(page, "order bot") || !strings.Contains(page, "Query Funds") {
			t.Errorf("web list lacks the keys:\n%s", page)
		}
		code, body = ks.api(t, "GET", "/api/v1/apikeys/"+funds.Key.ID, "")
		if code != 200 || strings.Contains(body, funds.Secret) {
			t.Errorf("get: %d %s", code, body)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		m := readBody(t, ks.do(t, "GET", "/metrics", "", nil))
		for _, want := range []string{
			`moat_signed_api_calls_total{error="ok",method="Balance"}`,
			`moat_signed_api_calls_total{error="EAPI:Invalid nonce",method="Balance"}`,
			`moat_signed_api_calls_total{error="EGeneral:Permission denied",method="Balance"}`,
			`route="/0/private/"`,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("rotate with grace", func(t *testing.T) {
		code, body := ks.api(t, "POST", "/api/v1/apikeys/"+funds.Key.ID+"/rotate", `{"grace_seconds":3600,"step_up":{"password":"`+testPassword+`"}}`)
		if code != 200 {
			t.Fatalf("rotate: %d %s", code, body)
		}
		var rotated createdKey
		json.Unmarshal([]byte(body), &rotated)
		if rotated.Secret == "" || rotated.Secret == funds.Secret || rotated.Key.PublicKey != funds.Key.PublicKey {
			t.Fatalf("rotate answer: %s", body)
		}
		var bal map[string]string
		bot.ok("Balance", &bal) // the old secret during its grace
		next := bot
		next.secret = rotated.Secret
		next.ok("Balance", &bal)
	})

	t.Run("locked account", func(t *testing.T) {
		// Locking drops this node's cached keys at once (account.OnLock).
		if err := ks.Accounts().Lock(context.Background(), ks.email, "test", "test"); err != nil {
			t.Fatal(err)
		}
		bot.fails("Balance", "EGeneral:Permission denied")
		if err := ks.Accounts().Unlock(context.Background(), ks.email, "test"); err != nil {
			t.Fatal(err)
		}
	})
	// The lock ended the sessions: sign in again for the rest.
	ks.token = signInAPI(t, ks.testServer, ks.email)

	t.Run("delete", func(t *testing.T) {
		code, body := ks.api(t, "DELETE", "/api/v1/apikeys/"+funds.Key.ID, `{"step_up":{"password":"`+testPassword+`"}}`)
		if code != http.StatusNoContent {
			t.Fatalf("delete: %d %s", code, body)
		}
		bot.fails("Balance", "EAPI:Invalid key")
		code, body = ks.api(t, "GET", "/api/v1/apikeys/"+funds.Key.ID, "")
		if code != http.StatusNotFound {
			t.Errorf("get after delete: %d %s", code, body)
		}
		code, body = ks.api(t, "DELETE", "/api/v1/apikeys/"+funds.Key.ID, `{"step_up":{"password":"`+testPassword+`"}}`)
		if code != http.StatusNotFound {
			t.Errorf("second delete: %d %s", code, body)
		}
	})
}

func signInAPI(t *testing.T, ts *testServer, email string) string {
	t.Helper()
	resp := ts.do(t, "POST", "/api/v1/signin", `{"email":"`+email+`","password":"`+testPassword+`"}`, jsonCT)
	var signin struct {
		SessionToken string `json:"session_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&signin); err != nil || signin.SessionToken == "" {
		t.Fatalf("signin: %d %v", resp.StatusCode, err)
	}
	return signin.SessionToken
}

// webUser is a browser signed in through the sign-in form.
type webUser struct {
	ks     *keyServer
	client *http.Client
}

func (ks *keyServer) webSignIn(t *testing.T) *webUser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	w := &webUser{ks: ks, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	resp := w.post(t, "/login", url.Values{"email": {ks.email}, "password": {testPassword}}, "same-origin")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/account" {
		t.Fatalf("web sign-in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	return w
}

// post sends a form as a browser would, with Sec-Fetch-Site as given.
func (w *webUser) post(t *testing.T, path string, form url.Values, site string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", w.ks.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", site)
	if site == "cross-site" {
		req.Header.Set("Origin", "https://evil.example")
	}
	resp, err := w.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (w *webUser) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := w.client.Get(w.ks.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d\n%s", path, resp.StatusCode, b)
	}
	return string(b)
}

var (
	secretOnPage = regexp.MustCompile(`<code class="secret" id="secret-value">([A-Za-z0-9+/=]{88})</code>`)
	keyOnPage    = regexp.MustCompile(`<code class="secret" id="apikey-value">([A-Za-z0-9+/=]{56})</code>`)
)

// createKey submits the new-key form and returns the secret and public key
// the page shows once.
func (w *webUser) createKey(t *testing.T, form url.Values) (secret, publicKey string) {
	t.Helper()
	resp := w.post(t, "/security/apikeys/new", form, "same-origin")
	page := html.UnescapeString(readBody(t, resp))
	if resp.StatusCode != 200 {
		t.Fatalf("create through the form: %d\n%s", resp.StatusCode, page)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("secret page Cache-Control %q", cc)
	}
	s, k := secretOnPage.FindStringSubmatch(page), keyOnPage.FindStringSubmatch(page)
	if s == nil || k == nil {
		t.Fatalf("no secret or key on the page:\n%s", page)
	}
	if !strings.Contains(page, "cannot show it again") && !strings.Contains(page, "cannot be shown again") && !strings.Contains(page, "We cannot show it again") {
		t.Error("the page does not say the secret is shown once")
	}
	return s[1], k[1]
}

func TestAPIKeyWebForm(t *testing.T) {
	ks := startKeyServer(t)
	web := ks.webSignIn(t)

	form := web.get(t, "/security/apikeys/new")
	if n := strings.Count(form, `name="permissions"`); n != 10 {
		t.Errorf("%d permission checkboxes, want 10", n)
	}
	if regexp.MustCompile(`name="permissions"[^>]*checked`).MatchString(form) {
		t.Error("a permission is pre-selected")
	}
	for _, want := range []string{"Withdraw Funds", "Query Open Orders &amp; Trades", "Access WebSockets API",
		"can move money out of your account", `name="confirm_password"`, `name="allowed_ips"`, `name="nonce_window"`,
		`name="key_password"`, `name="query_start"`, `name="expires"`} {
		if !strings.Contains(form, want) {
			t.Errorf("the form lacks %q", want)
		}
	}
	if !strings.Contains(web.get(t, "/account"), `href="/security/apikeys"`) {
		t.Error("the account navigation does not link the API keys")
	}

	good := url.Values{"name": {"web bot"}, "permissions": {"query-funds"}, "confirm_password": {testPassword}}
	t.Run("cross-site post refused", func(t *testing.T) {
		resp := web.post(t, "/security/apikeys/new", good, "cross-site")
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-site create: %d", resp.StatusCode)
		}
		if code, body := ks.api(t, "GET", "/api/v1/apikeys", ""); code != 200 || !strings.Contains(body, `"keys":[]`) {
			t.Fatalf("a key was created cross-site: %s", body)
		}
	})
	t.Run("errors next to fields, 4xx", func(t *testing.T) {
		for name, tc := range map[string]struct {
			change func(v url.Values)
			field  string
			status int
		}{
			"no permission":   {func(v url.Values) { v.Del("permissions") }, "permissions", 400},
			"bad allowlist":   {func(v url.Values) { v.Set("allowed_ips", "10.0.0.5/8") }, "allowed_ips", 400},
			"no name":         {func(v url.Values) { v.Set("name", " ") }, "name", 400},
			"bad date":        {func(v url.Values) { v.Set("expires", "date"); v.Set("expires_on", "31/01/2030") }, "expires_on", 400},
			"past date":       {func(v url.Values) { v.Set("expires", "date"); v.Set("expires_on", "2001-01-01") }, "expires", 400},
			"bad window":      {func(v url.Values) { v.Set("nonce_window", "-3") }, "nonce_window", 400},
			"short password":  {func(v url.Values) { v.Set("key_password", "short") }, "key_password", 400},
			"no step-up":      {func(v url.Values) { v.Del("confirm_password") }, "confirm_password", 403},
			"wrong step-up":   {func(v url.Values) { v.Set("confirm_password", "wrong-password-123") }, "confirm_password", 401},
			"query end first": {func(v url.Values) { v.Set("query_start", "2030-01-02"); v.Set("query_end", "2030-01-01") }, "query_end", 400},
		} {
			t.Run(name, func(t *testing.T) {
				v := url.Values{}
				for k, x := range good {
					v[k] = append([]string(nil), x...)
				}
				tc.change(v)
				resp := web.post(t, "/security/apikeys/new", v, "same-origin")
				page := readBody(t, resp)
				if resp.StatusCode != tc.status {
					t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
				}
				if !strings.Contains(page, `id="`+tc.field+`-error"`) {
					t.Errorf("no error next to %s:\n%.3000s", tc.field, page)
				}
				if strings.Contains(page, "secret-value") {
					t.Error("a key was created")
				}
			})
		}
	})

	secret, pub := web.createKey(t, url.Values{
		"name": {"web bot"}, "permissions": {"query-funds", "withdraw-funds"}, "allowed_ips": {"127.0.0.1\n::1"},
		"expires": {"date"}, "expires_on": {"2099-01-31"}, "nonce_window": {"10"}, "key_password": {"otp-password-1"},
		"confirm_password": {testPassword},
	})
	bot := ks.kraken(t, pub, secret)
	t.Run("key password", func(t *testing.T) {
		bot.fails("Balance", "EAPI:Invalid signature")
		var bal map[string]string
		bot.ok("Balance", &bal, kv{"otp", "otp-password-1"})
	})
	t.Run("nonce window accepts a late nonce once", func(t *testing.T) {
		high := ks.nonce.Add(10)
		if _, errs := bot.queryPrivate("Balance", high, kv{"otp", "otp-password-1"}); len(errs) != 0 {
			t.Fatal(errs)
		}
		if _, errs := bot.queryPrivate("Balance", high-3, kv{"otp", "otp-password-1"}); len(errs) != 0 {
			t.Fatalf("late nonce inside the window: %v", errs)
		}
		if _, errs := bot.queryPrivate("Balance", high-3, kv{"otp", "otp-password-1"}); len(errs) != 1 || errs[0] != "EAPI:Invalid nonce" {
			t.Fatalf("replayed late nonce: %v", errs)
		}
	})

	list := web.get(t, "/security/apikeys")
	m := regexp.MustCompile(`href="/security/apikeys/([^/"]+)/edit"`).FindStringSubmatch(list)
	if m == nil || !strings.Contains(list, "Can withdraw") || strings.Contains(list, secret) {
		t.Fatalf("list page:\n%s", list)
	}
	id := m[1]

	t.Run("edit", func(t *testing.T) {
		edit := web.get(t, "/security/apikeys/"+id+"/edit")
		if !regexp.MustCompile(`value="withdraw-funds" checked`).MatchString(edit) {
			t.Errorf("edit form does not show the key's permissions:\n%s", edit)
		}
		resp := web.post(t, "/security/apikeys/"+id+"/edit", url.Values{"name": {"web bot 2"}, "permissions": {"create-modify-orders"},
			"allowed_ips": {""}, "confirm_password": {testPassword}}, "same-origin")
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("edit: %d %s", resp.StatusCode, readBody(t, resp))
		}
		bot.fails("Balance", "EGeneral:Permission denied", kv{"otp", "otp-password-1"})
		if l := web.get(t, "/security/apikeys?n=updated"); !strings.Contains(l, "web bot 2") || strings.Contains(l, "Can withdraw") {
			t.Errorf("list after edit:\n%s", l)
		}
	})
	t.Run("rotate", func(t *testing.T) {
		resp := web.post(t, "/security/apikeys/"+id+"/rotate", url.Values{"grace": {"0"}, "confirm_password": {testPassword}}, "same-origin")
		page := html.UnescapeString(readBody(t, resp))
		s := secretOnPage.FindStringSubmatch(page)
		if resp.StatusCode != 200 || s == nil || s[1] == secret || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("rotate: %d\n%s", resp.StatusCode, page)
		}
		bot.fails("AddOrder", "EAPI:Invalid signature", kv{"otp", "otp-password-1"})
		resp = web.post(t, "/security/apikeys/"+id+"/rotate", url.Values{"grace": {"forever"}, "confirm_password": {testPassword}}, "same-origin")
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("bad grace: %d", resp.StatusCode)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if page := web.get(t, "/security/apikeys/"+id+"/delete"); !strings.Contains(page, "cannot be undone") {
			t.Errorf("delete page:\n%s", page)
		}
		resp := web.post(t, "/security/apikeys/"+id+"/delete", url.Values{"confirm_password": {testPassword}}, "same-origin")
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("delete: %d %s", resp.StatusCode, readBody(t, resp))
		}
		bot.fails("Balance", "EAPI:Invalid key")
		resp = web.post(t, "/security/apikeys/"+id+"/delete", url.Values{"confirm_password": {testPassword}}, "same-origin")
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("second delete: %d", resp.StatusCode)
		}
	})
	t.Run("another account's key", func(t *testing.T) {
		resp, err := web.client.Get(ks.srv.URL + "/security/apikeys/nosuchkey/edit")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("unknown key: %d", resp.StatusCode)
		}
	})
}

// TestAPIKeyPasswordStepUpThrottled: a stolen session cannot guess the
// account password through the key forms.
func TestAPIKeyPasswordStepUpThrottled(t *testing.T) {
	ks := startKeyServer(t)
	body := func(pw string) string {
		return `{"name":"x","permissions":["query-funds"],"step_up":{"password":"` + pw + `"}}`
	}
	for i := range confirmLimit {
		if code, b := ks.api(t, "POST", "/api/v1/apikeys", body("wrong-guess-"+strconv.Itoa(i))); code != 400 {
			t.Fatalf("guess %d: %d %s", i, code, b)
		}
	}
	code, b := ks.api(t, "POST", "/api/v1/apikeys", body(testPassword))
	if code != http.StatusTooManyRequests {
		t.Fatalf("right password after %d wrong ones: %d %s", confirmLimit, code, b)
	}
}

// fakeFactors is a 2FA service with a TOTP app enrolled that accepts the
// code "123456".
type fakeFactors struct {
	fresh   bool
	stepped int
}

func (f *fakeFactors) EnrolledMethods(context.Context, string) ([]string, error) {
	return []string{"webauthn", "totp", "backup_code"}, nil
}

func (f *fakeFactors) CheckStepUp(context.Context, account.Principal) error {
	if f.fresh {
		return nil
	}
	return apperr.New(apperr.StepUpNeeded, "step up")
}

func (f *fakeFactors) StepUp(_ context.Context, _ account.Principal, method, code string, _ account.Client) (time.Time, error) {
	if method != "totp" || code != "123456" {
		return time.Time{}, apperr.New(apperr.Invalid, "wrong code")
	}
	f.stepped++
	f.fresh = true
	return time.Now(), nil
}

// TestAPIKeyStepUpWithSecondFactor: an account with a second factor is
// not asked for its password; it needs a fresh second factor, or a code
// in the request, which is recorded on the session.
func TestAPIKeyStepUpWithSecondFactor(t *testing.T) {
	ks := startKeyServer(t)
	ctx := context.Background()
	p, err := ks.Accounts().Authenticate(ctx, ks.token, account.Client{Kind: "api"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeFactors{}
	g := *ks.keys.stepUp
	g.mfa = f

	if ask, methods, err := g.StepUpAsk(ctx, p); err != nil || ask != askCode || strings.Join(methods, ",") != "totp,backup_code" {
		t.Fatalf("ask: %q %v %v", ask, methods, err)
	}
	_, err = g.StepUpConfirm(ctx, p, testPassword, "", "", account.Client{})
	if e, _ := apperr.As(err); e == nil || e.Code != apperr.StepUpNeeded || e.Field != "step_up_code" {
		t.Fatalf("the password instead of a second factor: %v", err)
	}
	_, err = g.StepUpConfirm(ctx, p, "", "", "654321", account.Client{})
	if e, _ := apperr.As(err); e == nil || e.Field != "step_up_code" {
		t.Fatalf("wrong code: %v", err)
	}
	cctx, err := g.StepUpConfirm(ctx, p, "", "", "123456", account.Client{})
	if err != nil || f.stepped != 1 {
		t.Fatalf("right code: %v (stepped %d)", err, f.stepped)
	}
	if err := g.Check(cctx, p.Account.ID, p.Session.ID); err != nil {
		t.Errorf("gate after step-up: %v", err)
	}
	if err := g.Check(cctx, p.Account.ID, "another-session"); apperr.CodeOf(err) != apperr.StepUpNeeded {
		t.Errorf("confirmation used for another session: %v", err)
	}
	if err := g.Check(ctx, p.Account.ID, p.Session.ID); apperr.CodeOf(err) != apperr.StepUpNeeded {
		t.Errorf("gate without confirmation: %v", err)
	}
	// The step-up was recorded on the session.
	p2, err := ks.Accounts().Authenticate(ctx, ks.token, account.Client{Kind: "api"})
	if err != nil || p2.Session.SecondFactorAt.IsZero() {
		t.Errorf("session SecondFactorAt not recorded: %v %v", p2.Session.SecondFactorAt, err)
	}
	// Fresh: nothing to ask, nothing to send.
	if ask, _, _ := g.StepUpAsk(ctx, p2); ask != askNothing {
		t.Errorf("ask when fresh: %q", ask)
	}
	if _, err := g.StepUpConfirm(ctx, p2, "", "", "", account.Client{}); err != nil {
		t.Errorf("confirm when fresh: %v", err)
	}

	// The web form asks for a code (and offers the step-up page) instead
	// of the password, and takes it.
	web := ks.webSignIn(t) // a new session: its second factor is not fresh
	ks.keys.stepUp.mfa = &fakeFactors{}
	form := web.get(t, "/security/apikeys/new")
	if !strings.Contains(form, `name="step_up_code"`) || strings.Contains(form, `name="confirm_password"`) ||
		!strings.Contains(form, `href="/account/step-up?next=%2fsecurity%2fapikeys%2fnew"`) {
		t.Errorf("new-key form of an account with 2FA:\n%s", form)
	}
	resp := web.post(t, "/security/apikeys/new", url.Values{"name": {"x"}, "permissions": {"query-funds"}, "confirm_password": {testPassword}}, "same-origin")
	if page := readBody(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(page, `id="step_up_code-error"`) {
		t.Errorf("the password instead of a code: %d\n%.2000s", resp.StatusCode, page)
	}
	web.createKey(t, url.Values{"name": {"x"}, "permissions": {"query-funds"}, "step_up_code": {"123456"}})
}

// TestAPIKeysTwoNodes: two nodes over PostgreSQL and Redis. A nonce used
// on one is refused on the other, the sandbox's books are shared, and a
// key deleted on one stops on the other (at once here: the cache TTL is
// next to nothing).
func TestAPIKeysTwoNodes(t *testing.T) {
	testenv.PostgresDSN(t)
	redisAddr := testenv.RedisAddr(t)
	redisPrefix := testenv.RedisKeyPrefix(t)
	dsn := pgtest.NewDB(t).DSN(t)
	shared := func(c *config.Config) {
		c.Database.Driver = "postgres"
		c.Database.DSN = dsn
		c.Redis.Addr, c.Redis.KeyPrefix = redisAddr, redisPrefix
		c.Secrets.EncryptionKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
		c.Dev = true
		c.APIKeys.CacheTTL = time.Nanosecond
	}
	a := start(t, testConfig(t, shared))
	b := start(t, testConfig(t, shared))
	ctx := context.Background()
	acct, err := a.Accounts().CreateConfirmedUser(ctx, "two-nodes-bot@example.com", testPassword, store.RoleUser, "test")
	if err != nil {
		t.Fatal(err)
	}
	v, secret, err := a.APIKeys().OperatorCreate(ctx, acct.ID, apikey.CreateInput{Name: "bot", Permissions: []string{"query-funds", "create-modify-orders"}})
	if err != nil {
		t.Fatal(err)
	}
	var nonce atomic.Uint64
	nonce.Store(uint64(time.Now().UnixMilli()))
	onA := krakenex{t: t, uri: a.srv.URL, key: v.PublicKey, secret: secret, nonce: &nonce, client: a.srv.Client()}
	onB := onA
	onB.uri, onB.client = b.srv.URL, b.srv.Client()

	n := nonce.Add(1)
	if _, errs := onA.queryPrivate("Balance", n); len(errs) != 0 {
		t.Fatalf("Balance on A: %v", errs)
	}
	if _, errs := onB.queryPrivate("Balance", n); len(errs) != 1 || errs[0] != "EAPI:Invalid nonce" {
		t.Fatalf("nonce replayed on B: %v", errs)
	}
	var added struct {
		TxID []string `json:"txid"`
	}
	onA.ok("AddOrder", &added, kv{"pair", "XBTUSD"}, kv{"type", "buy"}, kv{"ordertype", "limit"}, kv{"price", "30000"}, kv{"volume", "0.1"})
	var ex map[string]struct {
		HoldTrade string `json:"hold_trade"`
	}
	onB.ok("BalanceEx", &ex) // the order placed through A holds funds seen through B
	if ex["ZUSD"].HoldTrade != "3000.0000" {
		t.Errorf("ZUSD held after a 0.1 XBT buy at 30000, seen on B: %+v", ex)
	}
	if _, err := a.APIKeys().OperatorRevoke(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	onB.fails("Balance", "EAPI:Invalid key")
}
