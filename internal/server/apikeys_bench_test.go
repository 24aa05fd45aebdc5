package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apikey"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/store"
)

// BenchmarkSignedBalance is a Kraken-signed Balance call through the whole
// handler (gateway and the sandbox upstream), without a network
// (bench/signedapi measures it over TCP against a bare handler).
func BenchmarkSignedBalance(b *testing.B) {
	cfg := config.Default()
	cfg.DataDir = b.TempDir()
	cfg.APIKeys.Tiers = map[string]apikey.Tier{"bench": {Max: 1e15, DecayPerSecond: 1e15}}
	cfg.APIKeys.DefaultTier = "bench"
	cfg.ApplyDefaults()
	s, err := New(context.Background(), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	a, err := s.Accounts().CreateConfirmedUser(ctx, "bench@example.com", testPassword, store.RoleUser, "bench")
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	var keys atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		// One key per goroutine: nonces must rise per key.
		v, secret64, err := s.APIKeys().OperatorCreate(ctx, a.ID, apikey.CreateInput{
			Name: "bench " + strconv.FormatInt(keys.Add(1), 10), Permissions: []string{"query-funds"}})
		if err != nil {
			b.Fatal(err)
		}
		secret, _ := base64.StdEncoding.DecodeString(secret64)
		nonce := uint64(time.Now().UnixMilli())
		for pb.Next() {
			nonce++
			n := strconv.FormatUint(nonce, 10)
			body := "nonce=" + n
			sum := sha256.Sum256([]byte(n + body))
			mac := hmac.New(sha512.New, secret)
			mac.Write([]byte("/0/private/Balance"))
			mac.Write(sum[:])
			r := httptest.NewRequest("POST", "/0/private/Balance", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("API-Key", v.PublicKey)
			r.Header.Set("API-Sign", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 200 || !strings.HasPrefix(w.Body.String(), `{"error":[],"result":{`) {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
		}
	})
}
