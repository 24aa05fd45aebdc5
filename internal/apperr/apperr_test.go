package apperr

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestWrap(t *testing.T) {
	driver := errors.New("pq: connection refused on 10.0.0.5")
	known := Field(Invalid, "email", "That is not an e-mail address.")
	for _, tc := range []struct {
		name string
		in   error
		code Code
		same bool // Wrap returns in itself
	}{
		{"nil stays nil", nil, "", true},
		{"an *Error passes through", known, Invalid, true},
		{"a wrapped *Error passes through", fmt.Errorf("sign-in: %w", known), Invalid, true},
		{"anything else is internal", driver, Internal, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Wrap(tc.in)
			if tc.same {
				if got != tc.in {
					t.Fatalf("Wrap changed %v into %v", tc.in, got)
				}
				return
			}
			if CodeOf(got) != tc.code || !errors.Is(got, tc.in) {
				t.Fatalf("Wrap(%v) = %v (code %s)", tc.in, got, CodeOf(got))
			}
			if msg := MessageOf(got); strings.Contains(msg, "10.0.0.5") || strings.Contains(msg, "pq:") {
				t.Errorf("the client would read %q: the cause must stay in the logs", msg)
			}
		})
	}
}
