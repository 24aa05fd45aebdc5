package server

import (
	"context"
	"errors"
	"testing"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/store"
)

// fixedPolicy is an EnrolmentPolicy with a fixed answer.
type fixedPolicy struct {
	must   bool
	method string
	err    error
}

func (f fixedPolicy) NeedsEnrolment(context.Context, store.Account) (bool, string, error) {
	return f.must, f.method, f.err
}

// TestEnrolmentPolicies: any policy that requires enrolment requires it;
// a method some policy names wins over "any"; an error refuses.
func TestEnrolmentPolicies(t *testing.T) {
	boom := errors.New("store down")
	var (
		no     = fixedPolicy{}
		anyOne = fixedPolicy{must: true}
		key    = fixedPolicy{must: true, method: "webauthn"}
		broken = fixedPolicy{err: boom}
	)
	for _, tc := range []struct {
		name     string
		policies []account.EnrolmentPolicy
		must     bool
		method   string
		wantErr  bool
	}{
		{"none", nil, false, "", false},
		{"mfa says no, recovery says no", []account.EnrolmentPolicy{no, no}, false, "", false},
		{"recovered account", []account.EnrolmentPolicy{no, anyOne}, true, "", false},
		{"staff without a key", []account.EnrolmentPolicy{key, no}, true, "webauthn", false},
		{"recovered staff: the key wins", []account.EnrolmentPolicy{key, anyOne}, true, "webauthn", false},
		{"the key wins in either order", []account.EnrolmentPolicy{anyOne, key}, true, "webauthn", false},
		{"an error refuses", []account.EnrolmentPolicy{no, broken}, false, "", true},
		{"nil is ignored", []account.EnrolmentPolicy{nil, anyOne}, true, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &enrolmentPolicies{}
			for _, p := range tc.policies {
				e.add(p)
			}
			must, method, err := e.NeedsEnrolment(t.Context(), store.Account{ID: "a"})
			if (err != nil) != tc.wantErr || must != tc.must || method != tc.method {
				t.Errorf("got (%v, %q, %v), want (%v, %q, error %v)", must, method, err, tc.must, tc.method, tc.wantErr)
			}
		})
	}
}
