package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/postgres"
	"github.com/moat-dev/moat/internal/store/postgres/pgtest"
	"github.com/moat-dev/moat/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	if os.Getenv(pgtest.EnvDSN) == "" {
		t.Skip("MOAT_TEST_POSTGRES_DSN not set: skipping PostgreSQL conformance (set it to postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)")
	}
	db := pgtest.NewDB(t)
	storetest.Run(t, func(t *testing.T) store.Store { return db.Open(t) })
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDB(t).DSN(t)
	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Open alone does not create the schema.
	if _, err := s.GetAccount(ctx, "x"); err == nil || errors.Is(err, store.ErrNotFound) {
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
	if _, err := s.GetAccount(ctx, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetAccount after Migrate: %v", err)
	}
}

// nodes opens n stores on one schema, as n moat nodes sharing a database.
func nodes(t *testing.T, n int) []*postgres.Store {
	ctx := context.Background()
	dsn := pgtest.NewDB(t).DSN(t)
	var ss []*postgres.Store
	for range n {
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		ss = append(ss, s)
	}
	return ss
}

// TestMigrateConcurrent: nodes starting at once all succeed, and each
// migration is applied once.
func TestMigrateConcurrent(t *testing.T) {
	ss := nodes(t, 3)
	var mu sync.Mutex
	var all []string
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Go(func() {
			applied, err := s.Migrate(context.Background())
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			all = append(all, applied...)
			mu.Unlock()
		})
	}
	wg.Wait()
	// Each node applies migrations in order, but nodes interleave: one may
	// apply 0001 while another, having waited on the lock, applies 0002.
	slices.Sort(all)
	if !slices.Equal(all, allMigrations(t)) {
		t.Fatalf("migrations applied %q, want each of %q once", all, allMigrations(t))
	}
}

// TestAuditAcrossNodes: appends from several nodes (separate pools) at once
// form one gap-free chain.
func TestAuditAcrossNodes(t *testing.T) {
	ctx := context.Background()
	ss := nodes(t, 3)
	if _, err := ss[0].Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const perNode = 10
	var wg sync.WaitGroup
	for n, s := range ss {
		for i := range perNode {
			wg.Go(func() {
				_, err := s.AppendAudit(ctx, func(last store.AuditEvent) (store.AuditEvent, error) {
					data := fmt.Sprintf(`{"node":%d,"i":%d}`, n, i)
					h := sha256.Sum256(append(slices.Clone(last.Hash), data...))
					return store.AuditEvent{Type: "test", Data: data, PrevHash: last.Hash, Hash: h[:]}, nil
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	evs, err := ss[1].ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(ss)*perNode {
		t.Fatalf("%d events, want %d", len(evs), len(ss)*perNode)
	}
	var prev []byte
	for i, e := range evs {
		h := sha256.Sum256(append(slices.Clone(prev), e.Data...))
		if e.Seq != int64(i+1) || string(e.PrevHash) != string(prev) || string(e.Hash) != string(h[:]) {
			t.Fatalf("chain broken at event %d (Seq %d)", i+1, e.Seq)
		}
		prev = e.Hash
	}
}

// TestClaimAcrossNodes: workers on several nodes never claim the same
// message.
func TestClaimAcrossNodes(t *testing.T) {
	ctx := context.Background()
	ss := nodes(t, 3)
	if _, err := ss[0].Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	const messages = 60
	for i := range messages {
		if err := ss[0].EnqueueOutbox(ctx, store.OutboxMessage{ID: fmt.Sprintf("m%02d", i), Channel: "email", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	claimed := map[string]int{}
	var wg sync.WaitGroup
	for n, s := range ss {
		for range 4 {
			wg.Go(func() {
				for {
					ms, err := s.ClaimOutbox(ctx, now, 3, time.Hour)
					if err != nil {
						t.Error(err)
						return
					}
					if len(ms) == 0 {
						return
					}
					mu.Lock()
					for _, m := range ms {
						if prev, dup := claimed[m.ID]; dup {
							t.Errorf("%s claimed by node %d and node %d", m.ID, prev, n)
						}
						claimed[m.ID] = n
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(claimed) != messages {
		t.Errorf("%d of %d messages claimed", len(claimed), messages)
	}
}

// TestOpenHidesPassword: a bad DSN's error does not repeat the password.
func TestOpenHidesPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, dsn := range []string{
		"postgres://moat:hunter2secret@127.0.0.1:1/moat?sslmode=disable&connect_timeout=2",
		"postgres://moat:hunter2secret@127.0.0.1:1/moat?sslmode=bogus",
		"host=127.0.0.1 port=1 user=moat password=hunter2secret sslmode=disable connect_timeout=2",
	} {
		s, err := postgres.Open(ctx, dsn)
		if err == nil {
			s.Close()
			t.Fatalf("Open(%q) succeeded", dsn)
		}
		if strings.Contains(err.Error(), "hunter2secret") {
			t.Errorf("Open error reveals the password: %v", err)
		}
	}
}

// BenchmarkGetSessionByTokenHash measures the lookup every authenticated
// request makes, among 10,000 sessions.
func BenchmarkGetSessionByTokenHash(b *testing.B) {
	ctx := context.Background()
	s := pgtest.Open(b)
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	var hashes [][]byte
	err := s.InTx(ctx, func(tx store.Queries) error {
		if err := tx.CreateAccount(ctx, store.Account{ID: "acc", Email: "bench@example.com"}); err != nil {
			return err
		}
		for i := range 10_000 {
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

// TestSecretsNotInDump selects every text and binary column of every table
// in the store's schema, as pg_dump would see them.
func TestSecretsNotInDump(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDB(t).DSN(t)
	s, err := postgres.OpenAndMigrate(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.CheckSecretsNotInDump(t, s, func(t *testing.T) []byte {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, `SELECT table_name, column_name, data_type FROM information_schema.columns
			WHERE table_schema = current_schema()
			AND data_type IN ('text', 'bytea', 'character varying', 'character', 'json', 'jsonb')
			ORDER BY table_name, column_name`)
		if err != nil {
			t.Fatal(err)
		}
		type column struct{ table, name, typ string }
		cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (column, error) {
			var c column
			return c, r.Scan(&c.table, &c.name, &c.typ)
		})
		if err != nil {
			t.Fatal(err)
		}
		var all []byte
		tables := map[string]bool{}
		for _, c := range cols {
			tables[c.table] = true
			expr := pgx.Identifier{c.name}.Sanitize()
			if c.typ != "bytea" {
				expr = `convert_to(` + expr + `::text, 'UTF8')`
			}
			rows, err := conn.Query(ctx, `SELECT `+expr+` FROM `+pgx.Identifier{c.table}.Sanitize())
			if err != nil {
				t.Fatal(err)
			}
			vals, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
			if err != nil {
				t.Fatalf("%s.%s: %v", c.table, c.name, err)
			}
			for _, v := range vals {
				all = append(all, v...)
				all = append(all, 0)
			}
		}
		for _, want := range []string{"api_keys", "sandbox_books", "accounts", "audit_events", "outbox"} {
			if !tables[want] {
				t.Errorf("the dump did not read table %s", want)
			}
		}
		return all
	})
}
