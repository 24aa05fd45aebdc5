package account

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/password"
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

// BenchmarkSignIn is a whole password sign-in from a known device with the
// production argon2id parameters, next to the bare hash verification it
// contains ("verify"), both with 4 goroutines on GOMAXPROCS=2 as in
// bench/signin; the difference is what a sign-in costs besides the hash.
func BenchmarkSignIn(b *testing.B) {
	e := newEnv(b, func(c *Config) { c.DeviceApproval = false; c.IPLimit = 1 << 30 })
	e.svc.clock = clock.System{}
	h, err := password.NewHasher(password.DefaultParams(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	e.svc.hasher = h
	e.signUpConfirmed(e.email, goodPassword)
	first := e.signIn(e.email, goodPassword, client("192.0.2.10", ""))
	c := client("192.0.2.10", first.DeviceToken)
	a, err := e.st.GetAccountByEmail(e.ctx, e.email)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		op   func() error
	}{
		{"verify", func() error {
			if ok, _, err := h.Verify(goodPassword, a.PasswordHash); !ok || err != nil {
				return fmt.Errorf("verify: %v %v", ok, err)
			}
			return nil
		}},
		{"signin", func() error {
			res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, c)
			if err == nil && res.Step != StepDone {
				err = fmt.Errorf("step %q", res.Step)
			}
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetParallelism(max(1, 4/runtime.GOMAXPROCS(0)))
			cpu0 := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := bc.op(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the CPU time this process has used: a sign-in that waits
// (for the disk, say) leaves a CPU idle that a bare hash would use, which
// ns/op shows and cpu-ns/op does not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRequestPasswordReset compares the work a reset request does
// for an address with an account and for one without, run inline: the
// answers are identical, so a difference in time is all an observer could
// use to tell them apart. It is why the server runs that work after the
// answer (Deps.Background; TestResetRequestInBackground). The e-mail
// itself goes out later still, from the outbox.
func BenchmarkRequestPasswordReset(b *testing.B) {
	for _, tc := range []struct {
		name  string
		email string
	}{
		{"account", "owner@example.com"},
		{"no_account", "nobody@example.com"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := newEnv(b, func(c *Config) { c.IPLimit = 1 << 30 })
			e.signUpConfirmed("owner@example.com", goodPassword)
			c := client("192.0.2.10", "")
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				// A new throttle window each time, so the per-address
				// mail limit never skips the work.
				e.clk.Advance(e.svc.cfg.ThrottleWindow)
				if err := e.svc.RequestPasswordReset(e.ctx, tc.email, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
