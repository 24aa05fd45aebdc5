package recoverytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/audit"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/password"
	"github.com/moat-dev/moat/internal/ratelimit"
	"github.com/moat-dev/moat/internal/recovery"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store/sqlite"
)

// Services are the account and recovery services over a fresh SQLite
// file, for the adapter tests (web pages, JSON API) that drive both.
type Services struct {
	Store    *sqlite.Store
	Clock    *clock.Fake
	Accounts *account.Service
	Recovery *recovery.Service
}

// NewServices builds them with a fake clock, links at origin, a
// deliberately cheap password hash (the tests are about the adapters, not
// argon2's cost) and the given second factors registered.
func NewServices(t testing.TB, origin string, factors ...account.Factor) Services {
	t.Helper()
	st, err := sqlite.OpenAndMigrate(context.Background(), filepath.Join(t.TempDir(), "moat.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := clock.NewFake(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC))
	hasher, err := password.NewHasher(password.Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mailer, err := notify.NewMailer(notify.MailerConfig{Brand: "moat", PublicOrigin: origin}, clk, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	svc := account.New(account.Deps{
		Store: st, Clock: clk, Rand: rand.Reader, Hasher: hasher, Policy: password.DefaultPolicy("moat"),
		Mailer: mailer, Audit: audit.New(clk), Counter: ratelimit.NewMemory(clk),
		Config: account.ConfigFrom(config.Default()), CodeKey: bytes.Repeat([]byte{7}, 32),
	})
	for _, f := range factors {
		svc.RegisterFactor(f)
	}
	box, err := secrets.NewBox(bytes.Repeat([]byte{9}, 32), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rec := recovery.New(recovery.Deps{
		Store: st, Clock: clk, Rand: rand.Reader, Box: box, Mailer: mailer,
		Audit: audit.New(clk), Counter: ratelimit.NewMemory(clk), Accounts: svc,
	})
	return Services{Store: st, Clock: clk, Accounts: svc, Recovery: rec}
}
