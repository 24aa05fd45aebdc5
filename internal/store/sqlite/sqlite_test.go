package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/sqlite"
	"github.com/moat-dev/moat/internal/store/storetest"
)

// open returns a migrated store on a fresh file in a temporary directory.
func open(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.OpenAndMigrate(context.Background(), filepath.Join(t.TempDir(), "moat.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

// TestConformanceInMemory: ":memory:" is a complete store too (other
// packages' tests use it).
func TestConformanceInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.OpenAndMigrate(context.Background(), ":memory:")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "moat.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	// Open alone does not create the schema.
	if _, err := s.GetAccount(ctx, "x"); err == nil || err == store.ErrNotFound {
		t.Fatalf("GetAccount before Migrate: %v, want a missing-table error", err)
	}
	applied, err := s.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(applied, allMigrations(t)) {
		t.Fatalf("first Migrate applied %q", applied)
	}
	applied, err = s.Migrate(ctx)
	if err != nil || len(applied) != 0 {
		t.Fatalf("second Migrate applied %q, %v; want nothing", applied, err)
	}
	if err := s.CreateAccount(ctx, store.Account{ID: "a", Email: "a@example.com"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Reopened, the schema and data are there and nothing is pending.
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	applied, err = s.Migrate(ctx)
	if err != nil || len(applied) != 0 {
		t.Fatalf("Migrate after reopening applied %q, %v; want nothing", applied, err)
	}
	if _, err := s.GetAccount(ctx, "a"); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateConcurrent: two processes (here, two Stores on one file)
// starting at once both succeed and the schema is applied once.
func TestMigrateConcurrent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "moat.db")
	var stores [2]*sqlite.Store
	for i := range stores {
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	results := make(chan []string, 2)
	errs := make(chan error, 2)
	for _, s := range stores {
		go func() {
			applied, err := s.Migrate(ctx)
			results <- applied
			errs <- err
		}()
	}
	var all []string
	for range stores {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		all = append(all, <-results...)
	}
	// Connections interleave: one may apply 0001 while another, having
	// waited on the lock, applies 0002; what matters is each applied once.
	slices.Sort(all)
	if !slices.Equal(all, allMigrations(t)) {
		t.Fatalf("migrations applied %q, want each of %q once", all, allMigrations(t))
	}
}

// TestReadDuringWrite: reads through the Store proceed while a transaction
// holds the writer, and see only committed data.
func TestReadDuringWrite(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	if err := s.CreateAccount(ctx, store.Account{ID: "a", Email: "a@example.com"}); err != nil {
		t.Fatal(err)
	}
	err := s.InTx(ctx, func(tx store.Queries) error {
		if err := tx.CreateAccount(ctx, store.Account{ID: "b", Email: "b@example.com"}); err != nil {
			return err
		}
		if _, err := s.GetAccount(ctx, "a"); err != nil {
			return fmt.Errorf("read of committed data during a write: %w", err)
		}
		if _, err := s.GetAccount(ctx, "b"); err != store.ErrNotFound {
			return fmt.Errorf("uncommitted account visible outside the transaction: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for _, path := range []string{"", "x.db?mode=ro", filepath.Join(t.TempDir(), "missing-dir", "moat.db")} {
		if s, err := sqlite.Open(ctx, path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", path)
		}
	}
}

// BenchmarkGetSessionByTokenHash measures the lookup every authenticated
// request makes, among 10,000 sessions.
func BenchmarkGetSessionByTokenHash(b *testing.B) {
	ctx := context.Background()
	s := open(b)
	hashes := seedSessions(b, s, 10_000)
	b.Run("serial", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := s.GetSessionByTokenHash(ctx, hashes[i%len(hashes)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := s.GetSessionByTokenHash(ctx, hashes[i%len(hashes)]); err != nil {
					b.Error(err)
					return
				}
				i += 7
			}
		})
	})
}

func seedSessions(b *testing.B, s store.Store, n int) [][]byte {
	ctx := context.Background()
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	var hashes [][]byte
	err := s.InTx(ctx, func(tx store.Queries) error {
		if err := tx.CreateAccount(ctx, store.Account{ID: "acc", Email: "bench@example.com"}); err != nil {
			return err
		}
		for i := range n {
			h := fmt.Appendf(nil, "%032d", i)
			hashes = append(hashes, h)
			if err := tx.CreateSession(ctx, store.Session{
				ID: fmt.Sprint("s-", i), TokenHash: h, AccountID: "acc", Client: "web",
				CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(12 * time.Hour),
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return hashes
}

// allMigrations lists the migrations in the source directory (what Migrate
// embeds), in order.
func allMigrations(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	var out []string
	for _, f := range files {
		out = append(out, strings.TrimSuffix(filepath.Base(f), ".sql"))
	}
	slices.Sort(out)
	return out
}

// TestSecretsNotInDump reads the database file (and its write-ahead log,
// where recent writes live) byte by byte.
func TestSecretsNotInDump(t *testing.T) {
	path := filepath.Join(t.TempDir(), "moat.db")
	s, err := sqlite.OpenAndMigrate(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.CheckSecretsNotInDump(t, s, func(t *testing.T) []byte {
		var all []byte
		for _, p := range []string{path, path + "-wal"} {
			b, err := os.ReadFile(p)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		return all
	})
}
