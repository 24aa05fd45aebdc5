package sandbox

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apikey"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/gateway/identity"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/sqlite"
)

// openDB returns a migrated SQLite store with the accounts alice and bob.
func openDB(t *testing.T) *sqlite.Store {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.OpenAndMigrate(ctx, filepath.Join(t.TempDir(), "moat.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, id := range []string{"alice", "bob"} {
		if err := db.CreateAccount(ctx, store.Account{ID: id, Email: id + "@example.com"}); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// persistentEnv is the sandbox handler over a Persistent store, as alice.
func persistentEnv(t *testing.T, db BookDB, seed map[string]string) *env {
	t.Helper()
	e := &env{t: t, clock: clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
		id: identity.Identity{AccountID: "alice", KeyID: "k1", Permissions: apikey.AllPermissionSet}}
	var err error
	e.s, err = New(Config{Store: NewPersistent(db, seed), IdentityKeys: [][]byte{idKey}, Clock: e.clock, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestPersistentSeedsLazily: a development account starts with the seed
// without anything being written until its first change; what it then
// does survives a restart (a new Persistent over the same database).
func TestPersistentSeedsLazily(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	e := persistentEnv(t, db, DefaultSeed())
	var bal map[string]string
	e.ok("Balance", nil, &bal)
	if bal["ZUSD"] != "10000.0000" || bal["XXBT"] != "0.5000000000" {
		t.Fatalf("seeded balance %v", bal)
	}
	if _, err := db.GetSandboxBook(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("reading the balance wrote a book: %v", err)
	}
	var a added
	e.ok("AddOrder", order("pair", "XBTUSD", "type", "buy", "ordertype", "limit", "price", "1000", "volume", "2"), &a)
	if _, err := db.GetSandboxBook(ctx, "alice"); err != nil {
		t.Fatalf("the first change wrote no book: %v", err)
	}

	restarted := persistentEnv(t, db, DefaultSeed())
	var open struct {
		Open map[string]struct{ Status string } `json:"open"`
	}
	restarted.ok("OpenOrders", nil, &open)
	if len(a.TxID) != 1 || open.Open[a.TxID[0]].Status != "open" {
		t.Fatalf("after a restart, open orders %+v, want %v", open, a.TxID)
	}
	var ex map[string]map[string]string
	restarted.ok("BalanceEx", nil, &ex)
	if ex["ZUSD"]["balance"] != "10000.0000" || ex["ZUSD"]["hold_trade"] != "2000.0000" {
		t.Fatalf("after a restart, BalanceEx %v", ex)
	}

	// Without a seed (production), a new account starts empty; a book
	// once written is never re-seeded.
	empty := persistentEnv(t, db, nil)
	empty.id.AccountID = "bob"
	var none map[string]string
	empty.ok("Balance", nil, &none)
	if len(none) != 0 {
		t.Fatalf("unseeded balance %v", none)
	}
	if err := NewPersistent(db, map[string]string{"ZUSD": "5"}).Update(ctx, "bob", func(b *Book) error {
		if b.Balances["ZUSD"] != "5" {
			t.Errorf("seed not applied to the first update: %v", b.Balances)
		}
		b.Balances["ZUSD"] = "4"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := NewPersistent(db, map[string]string{"ZUSD": "5"}).View(ctx, "bob", func(b *Book) error {
		if b.Balances["ZUSD"] != "4" {
			t.Errorf("stored book re-seeded: %v", b.Balances)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestPersistentUpdateError: fn's error comes back unchanged and nothing
// is written.
func TestPersistentUpdateError(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	p := NewPersistent(db, DefaultSeed())
	refuse := apikey.ErrInsufficientFund
	err := p.Update(ctx, "alice", func(b *Book) error {
		b.Balances["ZUSD"] = "0"
		return refuse
	})
	if err != refuse {
		t.Fatalf("Update returned %v, want fn's error unchanged", err)
	}
	if _, err := db.GetSandboxBook(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused update wrote a book: %v", err)
	}
	if err := p.Update(ctx, "nobody", func(*Book) error { return nil }); err == nil {
		t.Fatal("wrote a book for a missing account")
	}
}

// TestPersistentConcurrent: concurrent changes to one account's book,
// through the database, are all kept.
func TestPersistentConcurrent(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Each goroutine has its own Persistent, as each node would.
			err := NewPersistent(db, map[string]string{"ZUSD": "0"}).Update(ctx, "alice", func(b *Book) error {
				b.Orders = append(b.Orders, Order{TxID: fmt.Sprint("O", i), Status: "open"})
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	err := NewPersistent(db, nil).View(ctx, "alice", func(b *Book) error {
		if len(b.Orders) != n {
			t.Errorf("%d orders after %d concurrent updates: lost updates", len(b.Orders), n)
		}
		if b.Balances["ZUSD"] != "0" {
			t.Errorf("balances %v", b.Balances)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPersistentCorruptBook: a book that does not decode is an error, not
// an empty (or re-seeded) account.
func TestPersistentCorruptBook(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	if err := db.UpdateSandboxBook(ctx, "alice", func([]byte) ([]byte, error) { return []byte("{not json"), nil }); err != nil {
		t.Fatal(err)
	}
	p := NewPersistent(db, DefaultSeed())
	if err := p.View(ctx, "alice", func(*Book) error { return nil }); err == nil {
		t.Fatal("View accepted a corrupt book")
	}
	if err := p.Update(ctx, "alice", func(*Book) error { return nil }); err == nil {
		t.Fatal("Update overwrote a corrupt book")
	}
}
