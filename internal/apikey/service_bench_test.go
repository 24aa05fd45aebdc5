package apikey_test

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apikey"
	"github.com/moat-dev/moat/internal/audit"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/sqlite"
)

// BenchmarkLookup is the signed API's key lookup (LookupKey) with one key
// in the SQLite store and with 1,000,000, with this node's cache off (every
// call reads the key and its account and decrypts the secret) and on (the
// steady state: one read per key per TTL). Lookups cycle through 1,024 of
// the keys. Building the million-key table takes a while, so that case
// runs only with MOAT_BENCH_MILLION=1:
//
//	MOAT_BENCH_MILLION=1 go test -run '^$' -bench BenchmarkLookup ./internal/apikey/
func BenchmarkLookup(b *testing.B) {
	sizes := []int{1}
	if os.Getenv("MOAT_BENCH_MILLION") == "1" {
		sizes = append(sizes, 1_000_000)
	} else {
		b.Log("set MOAT_BENCH_MILLION=1 to add the run with 1,000,000 keys")
	}
	for _, n := range sizes {
		db, box, pubs := benchStore(b, n)
		for _, ttl := range []time.Duration{-1, apikey.DefaultCacheTTL} {
			svc := benchService(b, db, box, ttl)
			name := fmt.Sprintf("keys=%d/cache=%v", n, ttl > 0)
			b.Run(name, func(b *testing.B) {
				ctx := context.Background()
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, err := svc.LookupKey(ctx, pubs[i%len(pubs)]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
			b.Run(name+"/parallel", func(b *testing.B) {
				ctx := context.Background()
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i := mrand.IntN(len(pubs))
					for pb.Next() {
						if _, err := svc.LookupKey(ctx, pubs[i%len(pubs)]); err != nil {
							b.Error(err)
							return
						}
						i++
					}
				})
			})
		}
	}
}

// benchStore fills a SQLite file with n keys over 1,000 accounts in one
// transaction and returns up to 1,024 of their public keys, spread over
// the table.
func benchStore(b *testing.B, n int) (*sqlite.Store, *secrets.Box, []string) {
	b.Helper()
	ctx := context.Background()
	db, err := sqlite.OpenAndMigrate(ctx, filepath.Join(b.TempDir(), "moat.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	box, err := secrets.NewBox(boxKey, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	now := time.Now().UTC().Truncate(time.Microsecond)
	accounts := min(n, 1000)
	secret := make([]byte, apikey.SecretBytes)
	var pubs []string
	mk := func(q store.Queries, i int) error {
		id := fmt.Sprintf("key-%07d", i)
		pub, err := apikey.NewPublicKey(rand.Reader)
		if err != nil {
			return err
		}
		if _, err := rand.Read(secret); err != nil {
			return err
		}
		sealed, err := apikey.SealSecret(box, id, secret)
		if err != nil {
			return err
		}
		if i%max(1, n/1024) == 0 {
			pubs = append(pubs, pub)
		}
		return q.CreateAPIKey(ctx, store.APIKey{ID: id, AccountID: fmt.Sprintf("acc-%04d", i%accounts), Name: "bench",
			PublicKey: pub, SecretSealed: sealed, Permissions: "query-funds,query-open-orders",
			AllowedIPs: "203.0.113.0/24", CreatedAt: now, UpdatedAt: now})
	}
	err = db.InTx(ctx, func(tx store.Queries) error {
		for a := range accounts {
			if err := tx.CreateAccount(ctx, store.Account{ID: fmt.Sprintf("acc-%04d", a), Email: fmt.Sprintf("bench%d@example.com", a)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	// The first insert outside the transaction prepares the statement the
	// bulk insert then reuses.
	if err := mk(db, 0); err != nil {
		b.Fatal(err)
	}
	err = db.InTx(ctx, func(tx store.Queries) error {
		for i := 1; i < n; i++ {
			if err := mk(tx, i); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if n > 1 {
		b.Logf("inserted %d keys in %v", n, time.Since(start).Round(time.Millisecond))
	}
	return db, box, pubs
}

func benchService(b *testing.B, db store.Store, box *secrets.Box, ttl time.Duration) *apikey.Service {
	b.Helper()
	mailer, err := notify.NewMailer(notify.MailerConfig{Brand: "Moat", PublicOrigin: "https://moat.example"}, clock.System{}, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	svc, err := apikey.NewService(apikey.ServiceDeps{Store: db, Clock: clock.System{}, Rand: rand.Reader, Box: box,
		Pepper: testPepper, Audit: audit.New(clock.System{}), Mailer: mailer, CacheTTL: ttl})
	if err != nil {
		b.Fatal(err)
	}
	return svc
}
