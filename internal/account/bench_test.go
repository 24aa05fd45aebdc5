package account

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/moat-dev/moat/internal/clock"
)

// benchEnv signs in once and returns the service and a session token.
// The clock is the real one: the cache's TTL must behave as in production.
func benchEnv(b *testing.B) (*env, string) {
	e := newEnv(b)
	e.signUpConfirmed(e.email, goodPassword)
	s := e.signIn(e.email, goodPassword, client("192.0.2.10", ""))
	return e, s.Token
}

// BenchmarkAuthenticate is the hot path: a cached session.
func BenchmarkAuthenticate(b *testing.B) {
	e, tok := benchEnv(b)
	e.svc.clock = clock.System{}
	e.svc.cache = newSessionCache()
	c := client("192.0.2.10", "")
	ctx := context.Background()
	if _, err := e.svc.Authenticate(ctx, tok, c); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.svc.Authenticate(ctx, tok, c); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAuthenticateMiss reads the session and account from SQLite on
// every call (the cache is emptied each time).
func BenchmarkAuthenticateMiss(b *testing.B) {
	e, tok := benchEnv(b)
	c := client("192.0.2.10", "")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		e.svc.cache.dropAccount(e.svc.cache.anyAccount())
		if _, err := e.svc.Authenticate(ctx, tok, c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateHTTP compares a handler that authenticates each
// request with a bare handler, through the same in-process round trip
// (httptest recorder), so the ratio shows what authentication adds.
func BenchmarkAuthenticateHTTP(b *testing.B) {
	e, tok := benchEnv(b)
	e.svc.clock = clock.System{}
	e.svc.cache = newSessionCache()
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	authed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie("s")
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if _, err := e.svc.Authenticate(r.Context(), ck.Value, Client{IP: "192.0.2.10", Kind: "web"}); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"bare", bare}, {"authenticated", authed}} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/account", nil)
			req.AddCookie(&http.Cookie{Name: "s", Value: tok})
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				bc.h.ServeHTTP(w, req)
				if w.Code != http.StatusNoContent {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
