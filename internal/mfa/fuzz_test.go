package mfa_test

import (
	"testing"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/mfa"
)

func TestParseKeyResponse(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"ceremony":"abc","credential":{"id":"x"}}`, true},
		{`{"ceremony":"abc"}`, false},
		{`{"credential":{}}`, false},
		{`{"ceremony":"abc","credential":{}} trailing`, false},
		{`[]`, false},
		{``, false},
	} {
		_, err := mfa.ParseKeyResponse(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseKeyResponse(%q): %v", tc.in, err)
		}
		if err != nil && apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("ParseKeyResponse(%q): code %s", tc.in, apperr.CodeOf(err))
		}
	}
}

// FuzzVerify sends arbitrary client input to every factor of an account
// that has them all: nothing panics, nothing passes, and every refusal is an
// error a client can be shown (never Internal, so never a 500).
func FuzzVerify(f *testing.F) {
	for _, s := range []string{"123456", "ABCDE-FGHJK", `{"ceremony":"x","credential":{}}`, "", "\x00", "12 34 56"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, response string) {
		e := newEnv(t, func(c *mfa.Config) { c.CodeAttempts = 1 << 30 })
		p := e.user(false)
		e.enrolTOTP(p)
		e.addKey(e.user(true), "key", false)
		e.addPhone(e.user(true))
		for _, fac := range e.svc.Factors() {
			err := fac.Verify(ctx, p.Account.ID, response)
			if err == nil {
				// A six-digit guess may hit the current TOTP code; that is
				// a one-in-a-million success, not a bug.
				if fac.Name() == mfa.MethodTOTP || fac.Name() == mfa.MethodSMS {
					continue
				}
				t.Fatalf("%s accepted %q", fac.Name(), response)
			}
			if c := apperr.CodeOf(err); c == apperr.Internal {
				t.Fatalf("%s(%q): internal error %v", fac.Name(), response, err)
			}
		}
	})
}

func FuzzParseKeyResponse(f *testing.F) {
	f.Add(`{"ceremony":"abc","credential":{"id":"x"}}`)
	f.Add(`{"ceremony":1}`)
	f.Fuzz(func(t *testing.T, s string) {
		r, err := mfa.ParseKeyResponse(s)
		if err != nil {
			if apperr.CodeOf(err) != apperr.Invalid {
				t.Fatalf("code %s", apperr.CodeOf(err))
			}
			return
		}
		if r.Ceremony == "" || len(r.Credential) == 0 {
			t.Fatalf("accepted incomplete %q", s)
		}
	})
}
