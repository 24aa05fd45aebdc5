package webauthn_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/moat-dev/moat/internal/mfa/webauthn"
	"github.com/moat-dev/moat/internal/mfa/webauthn/webauthntest"
)

const origin = "http://localhost:8080"

func newRP(t testing.TB) *webauthn.RP {
	t.Helper()
	rp, err := webauthn.New(webauthn.Config{RPID: "localhost", RPDisplayName: "moat", Origins: []string{origin}}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return rp
}

func alice() webauthn.User {
	return webauthn.User{ID: []byte("acct-alice-0001"), Name: "alice@example.com"}
}

// register runs a full registration ceremony with a.
func register(t *testing.T, rp *webauthn.RP, a *webauthntest.Authenticator, u webauthn.User, passkey bool) webauthn.Credential {
	t.Helper()
	opts, state, err := rp.BeginRegistration(u, passkey)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.Create(opts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rp.FinishRegistration(u, state, resp)
	if err != nil {
		t.Fatalf("FinishRegistration: %v", err)
	}
	return c
}

func TestRegisterAndLogin(t *testing.T) {
	rp := newRP(t)
	a := webauthntest.New(origin)
	u := alice()
	c := register(t, rp, a, u, false)
	if len(c.ID) == 0 || len(c.PublicKey) == 0 || c.SignCount != 0 || c.Discoverable {
		t.Fatalf("credential %+v", c)
	}
	if c.Attachment != "cross-platform" || len(c.Transports) != 1 || c.Transports[0] != "usb" {
		t.Errorf("attachment %q transports %v", c.Attachment, c.Transports)
	}
	u.Credentials = []webauthn.Credential{c}

	for want := uint32(1); want <= 3; want++ {
		opts, state, err := rp.BeginLogin(u)
		if err != nil {
			t.Fatal(err)
		}
		var o struct {
			PublicKey struct {
				AllowCredentials []struct{ ID string } `json:"allowCredentials"`
				UserVerification string                `json:"userVerification"`
			} `json:"publicKey"`
		}
		if err := json.Unmarshal(opts, &o); err != nil || len(o.PublicKey.AllowCredentials) != 1 {
			t.Fatalf("options %s: %v", opts, err)
		}
		resp, err := a.Get(opts)
		if err != nil {
			t.Fatal(err)
		}
		used, err := rp.FinishLogin(u, state, resp)
		if err != nil {
			t.Fatalf("FinishLogin: %v", err)
		}
		if used.SignCount != want || !bytes.Equal(used.ID, c.ID) {
			t.Fatalf("used %+v, want count %d", used, want)
		}
		u.Credentials[0] = used
	}
}

// TestSignCountRegression: an assertion whose counter does not exceed the
// stored one (a cloned key) is refused with ErrSignCount.
func TestSignCountRegression(t *testing.T) {
	rp := newRP(t)
	a := webauthntest.New(origin)
	u := alice()
	c := register(t, rp, a, u, false)
	c.SignCount = 10 // the server has seen 10 uses
	u.Credentials = []webauthn.Credential{c}
	a.SetCounter(c.ID, 4) // the clone signs with 5
	opts, state, _ := rp.BeginLogin(u)
	resp, _ := a.Get(opts)
	used, err := rp.FinishLogin(u, state, resp)
	if !errors.Is(err, webauthn.ErrSignCount) {
		t.Fatalf("err = %v, want ErrSignCount", err)
	}
	if used.SignCount != 5 || !bytes.Equal(used.ID, c.ID) {
		t.Errorf("reported credential %x with count %d, want the presented 5", used.ID, used.SignCount)
	}
	for _, tc := range []struct {
		stored, got uint32
		ok          bool
	}{{0, 0, true}, {0, 1, true}, {5, 6, true}, {5, 5, false}, {5, 4, false}, {5, 0, false}} {
		if webauthn.CounterAdvanced(tc.stored, tc.got) != tc.ok {
			t.Errorf("CounterAdvanced(%d, %d) != %v", tc.stored, tc.got, tc.ok)
		}
	}
}

func TestPasskeyDiscoverableLogin(t *testing.T) {
	rp := newRP(t)
	a := webauthntest.New(origin)
	a.BackupEligible = true
	u := alice()
	c := register(t, rp, a, u, true)
	if !c.Discoverable || !c.UserVerified || !c.BackupEligible {
		t.Fatalf("passkey %+v", c)
	}
	u.Credentials = []webauthn.Credential{c}
	lookup := func(handle []byte) (webauthn.User, error) {
		if !bytes.Equal(handle, u.ID) {
			return webauthn.User{}, webauthn.ErrUnknownCredential
		}
		return u, nil
	}
	opts, state, err := rp.BeginDiscoverableLogin()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(opts, []byte("allowCredentials")) || !bytes.Contains(opts, []byte(`"userVerification":"required"`)) {
		t.Errorf("discoverable options %s", opts)
	}
	resp, err := a.Get(opts)
	if err != nil {
		t.Fatal(err)
	}
	got, used, err := rp.FinishDiscoverableLogin(state, resp, lookup)
	if err != nil {
		t.Fatalf("FinishDiscoverableLogin: %v", err)
	}
	if !bytes.Equal(got.ID, u.ID) || used.SignCount != 1 || !used.Discoverable {
		t.Errorf("user %q used %+v", got.ID, used)
	}

	// Without user verification a passkey cannot sign in alone.
	a.UV = false
	opts, state, _ = rp.BeginDiscoverableLogin()
	if _, err := a.Get(opts); err == nil {
		t.Fatal("authenticator without UV answered a UV-required request")
	}
	// Forge it anyway: an authenticator that ignores the requirement.
	lax := &laxUV{a}
	resp, err = lax.Get(opts)
	if err != nil {
		t.Fatal(err)
	}
	u.Credentials[0] = used
	if _, _, err := rp.FinishDiscoverableLogin(state, resp, lookup); !errors.Is(err, webauthn.ErrVerify) {
		t.Errorf("assertion without UV: err = %v, want ErrVerify", err)
	}
}

// laxUV answers as if user verification were only preferred.
type laxUV struct{ a *webauthntest.Authenticator }

func (l *laxUV) Get(opts []byte) ([]byte, error) {
	return l.a.Get(bytes.ReplaceAll(opts, []byte(`"required"`), []byte(`"preferred"`)))
}

// TestSecurityKeyIsNotAPasskey: a non-resident credential cannot be used for
// a passwordless sign-in, even if the browser sends a user handle.
func TestSecurityKeyIsNotAPasskey(t *testing.T) {
	rp := newRP(t)
	a := webauthntest.New(origin)
	u := alice()
	c := register(t, rp, a, u, false)
	u.Credentials = []webauthn.Credential{c}
	opts, state, _ := rp.BeginDiscoverableLogin()
	if _, err := a.Get(opts); !errors.Is(err, webauthntest.ErrNoCredential) {
		t.Fatalf("non-resident key answered a discoverable request: %v", err)
	}
	// A forged response naming the key with a user handle.
	lo, _, _ := rp.BeginLogin(u)
	resp, _ := a.Get(lo)
	var m map[string]any
	_ = json.Unmarshal(resp, &m)
	m["response"].(map[string]any)["userHandle"] = webauthn.EncodeID(u.ID)
	forged, _ := json.Marshal(m)
	_, _, err := rp.FinishDiscoverableLogin(state, forged, func([]byte) (webauthn.User, error) { return u, nil })
	if !errors.Is(err, webauthn.ErrUnknownCredential) {
		t.Errorf("err = %v, want ErrUnknownCredential", err)
	}
}

func TestExcludesRegisteredKeys(t *testing.T) {
	rp := newRP(t)
	a := webauthntest.New(origin)
	u := alice()
	c := register(t, rp, a, u, false)
	u.Credentials = []webauthn.Credential{c}
	opts, _, _ := rp.BeginRegistration(u, false)
	if _, err := a.Create(opts); !errors.Is(err, webauthntest.ErrExcluded) {
		t.Fatalf("err = %v, want the authenticator to refuse", err)
	}
}

func TestRefusals(t *testing.T) {
	rp := newRP(t)
	a := webauthntest.New(origin)
	u := alice()
	c := register(t, rp, a, u, false)
	u.Credentials = []webauthn.Credential{c}

	t.Run("wrong origin", func(t *testing.T) {
		evil := webauthntest.New("http://localhost:9999")
		opts, state, _ := rp.BeginRegistration(alice(), false)
		resp, _ := evil.Create(opts)
		if _, err := rp.FinishRegistration(alice(), state, resp); !errors.Is(err, webauthn.ErrVerify) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("answer to another challenge", func(t *testing.T) {
		opts1, _, _ := rp.BeginLogin(u)
		_, state2, _ := rp.BeginLogin(u)
		resp, _ := a.Get(opts1)
		if _, err := rp.FinishLogin(u, state2, resp); !errors.Is(err, webauthn.ErrVerify) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("someone else's key", func(t *testing.T) {
		bob := webauthn.User{ID: []byte("acct-bob"), Name: "bob@example.com"}
		b := webauthntest.New(origin)
		bc := register(t, rp, b, bob, false)
		bob.Credentials = []webauthn.Credential{bc}
		opts, _, _ := rp.BeginLogin(bob)
		resp, _ := b.Get(opts)
		_, state, _ := rp.BeginLogin(u)
		if _, err := rp.FinishLogin(u, state, resp); !errors.Is(err, webauthn.ErrUnknownCredential) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("registration state used for login", func(t *testing.T) {
		opts, _, _ := rp.BeginLogin(u)
		_, regState, _ := rp.BeginRegistration(u, false)
		resp, _ := a.Get(opts)
		if _, err := rp.FinishLogin(u, regState, resp); !errors.Is(err, webauthn.ErrSession) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		_, state, _ := rp.BeginLogin(u)
		if _, err := rp.FinishLogin(u, state, []byte(`{"id":1}`)); !errors.Is(err, webauthn.ErrMalformed) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		if _, _, err := rp.BeginLogin(alice()); !errors.Is(err, webauthn.ErrUnknownCredential) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []webauthn.Config{
		{Origins: []string{origin}},
		{RPID: "localhost"},
		{RPID: "127.0.0.1", Origins: []string{"http://127.0.0.1"}},
	} {
		if _, err := webauthn.New(cfg, rand.Reader); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// sentinels are the errors FinishX may wrap for client input.
var sentinels = []error{webauthn.ErrMalformed, webauthn.ErrVerify, webauthn.ErrUnknownCredential, webauthn.ErrSignCount}

func classified(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// FuzzFinish feeds arbitrary client JSON to every Finish call: no panic, and
// every refusal is one of the documented sentinels (so adapters answer 4xx).
func FuzzFinish(f *testing.F) {
	rp := newRP(f)
	a := webauthntest.New(origin)
	u := alice()
	opts, regState, _ := rp.BeginRegistration(u, true)
	regResp, _ := a.Create(opts)
	c, err := rp.FinishRegistration(u, regState, regResp)
	if err != nil {
		f.Fatal(err)
	}
	u.Credentials = []webauthn.Credential{c}
	lopts, loginState, _ := rp.BeginLogin(u)
	loginResp, _ := a.Get(lopts)
	dopts, discState, _ := rp.BeginDiscoverableLogin()
	discResp, _ := a.Get(dopts)
	f.Add(regResp)
	f.Add(loginResp)
	f.Add(discResp)
	f.Add([]byte(`{"id":"AA","rawId":"AA","type":"public-key","response":{}}`))
	f.Add([]byte(`null`))
	lookup := func([]byte) (webauthn.User, error) { return u, nil }
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := rp.FinishRegistration(u, regState, body); err != nil && !classified(err) {
			t.Fatalf("FinishRegistration: unclassified error %v", err)
		}
		if _, err := rp.FinishLogin(u, loginState, body); err != nil && !classified(err) {
			t.Fatalf("FinishLogin: unclassified error %v", err)
		}
		if _, _, err := rp.FinishDiscoverableLogin(discState, body, lookup); err != nil && !classified(err) {
			t.Fatalf("FinishDiscoverableLogin: unclassified error %v", err)
		}
	})
}

func ExampleRP() {
	rp, _ := webauthn.New(webauthn.Config{RPID: "localhost", RPDisplayName: "moat", Origins: []string{origin}}, rand.Reader)
	key := webauthntest.New(origin) // a browser and a security key, in tests
	u := webauthn.User{ID: []byte("account-id"), Name: "alice@example.com"}

	// Registration: options go to navigator.credentials.create, the state
	// stays on the server.
	options, state, _ := rp.BeginRegistration(u, false)
	response, _ := key.Create(options)
	cred, _ := rp.FinishRegistration(u, state, response)
	u.Credentials = append(u.Credentials, cred)

	// Second factor at sign-in.
	options, state, _ = rp.BeginLogin(u)
	response, _ = key.Get(options)
	used, err := rp.FinishLogin(u, state, response)
	fmt.Println(used.SignCount, err)
	// Output: 1 <nil>
}
