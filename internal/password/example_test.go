package password_test

import (
	"crypto/rand"
	"fmt"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/password"
)

func Example() {
	h, err := password.NewHasher(password.DefaultParams(), rand.Reader)
	if err != nil {
		panic(err)
	}
	policy := password.DefaultPolicy("moat")

	// Sign-up: check, then hash; store only the PHC string.
	if err := policy.Check("password123", "jane@example.com"); err != nil {
		fmt.Println(apperr.CodeOf(err))
	}
	stored, _ := h.Hash("correct horse battery staple")

	// Sign-in: verify, and re-hash when the parameters changed.
	ok, needsRehash, _ := h.Verify("correct horse battery staple", stored)
	fmt.Println(ok, needsRehash)
	// Output:
	// weak_password
	// true false
}
