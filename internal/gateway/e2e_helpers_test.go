package gateway_test

import (
	"net/http"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/gateway/identity"
)

// identityVerify checks a request that went through a path-prefixing proxy:
// moat signed the path the client used.
func identityVerify(r *http.Request, body, key []byte) (identity.Identity, error) {
	path := strings.TrimPrefix(r.URL.Path, "/exchange")
	return identity.Verify(r.Header, r.Method, path, body, time.Now(), identity.DefaultMaxSkew, key)
}
