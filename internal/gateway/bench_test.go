package gateway_test

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/moat-dev/moat/internal/apikey"
	"github.com/moat-dev/moat/internal/gateway"
	"github.com/moat-dev/moat/internal/nonce"
	"github.com/moat-dev/moat/internal/sandbox"
)

// BenchmarkGatewayBalance is one signed Balance call (concurrent callers,
// so the key has a nonce window) through the gateway and
// the sandbox, in process (no network), with in-memory state: the cost moat
// adds per call, against BenchmarkBareHandler.
func BenchmarkGatewayBalance(b *testing.B) {
	idKey := make([]byte, 32)
	_, _ = rand.Read(idKey)
	books := sandbox.NewMemory()
	_ = sandbox.Seed(context.Background(), books, "acct", sandbox.DefaultSeed())
	sb, _ := sandbox.New(sandbox.Config{Store: books, IdentityKeys: [][]byte{idKey}, Rand: rand.Reader})
	pub, _ := apikey.NewPublicKey(rand.Reader)
	secret, _ := apikey.NewSecret(rand.Reader)
	keys := mapKeys{pub: {Key: apikey.Key{ID: "k", AccountID: "acct", PublicKey: pub, Permissions: apikey.AllPermissionSet, NonceWindow: 1 << 20}, Secret: secret}}
	gw, err := gateway.New(gateway.Config{Keys: keys, Nonces: nonce.NewMemory(0), Counters: nonce.NewMemoryCounter(),
		Upstream: sb, IdentityKey: idKey, PasswordPepper: []byte("p"),
		Tiers: map[string]apikey.Tier{"starter": {Max: 1e15, DecayPerSecond: 1}}})
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Uint64
	n.Store(1616492376594)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			nn := strconv.FormatUint(n.Add(1), 10)
			body := "nonce=" + nn
			r := httptest.NewRequest(http.MethodPost, "/0/private/Balance", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("API-Key", pub)
			r.Header.Set("API-Sign", apikey.Sign("/0/private/Balance", nn, []byte(body), secret))
			w := httptest.NewRecorder()
			gw.ServeHTTP(w, r)
			if w.Code != 200 || !strings.Contains(w.Body.String(), `"error":[]`) {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
		}
	})
}
