package server

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/store"
)

// BenchmarkForwardAuth is the session check through the whole handler
// stack, without a network (bench/sessioncheck measures it over TCP).
func BenchmarkForwardAuth(b *testing.B) {
	cfg := config.Default()
	cfg.DataDir = b.TempDir()
	cfg.Security.DeviceApproval = false
	cfg.ApplyDefaults()
	s, err := New(context.Background(), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Accounts().CreateConfirmedUser(ctx, "bench@example.com", testPassword, store.RoleUser, "bench"); err != nil {
		b.Fatal(err)
	}
	res, err := s.Accounts().SignIn(ctx, "bench@example.com", testPassword, account.Client{IP: "127.0.0.1", Kind: "api"})
	if err != nil || res.Session == nil {
		b.Fatalf("sign in: %v", err)
	}
	auth := "Bearer " + res.Session.Token
	h := s.Handler()
	b.ReportAllocs()
	b.ResetTimer() // the setup hashed two passwords
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest("GET", "/auth/verify", nil)
			r.Header.Set("Authorization", auth)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 200 {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}
