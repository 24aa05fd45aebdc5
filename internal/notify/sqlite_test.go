package notify

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/sqlite"
)

func init() {
	stores = append(stores, struct {
		name string
		open func(t *testing.T) store.Store
	}{"sqlite", openSQLite})
}

// openSQLite opens a fresh SQLite file store for one test.
func openSQLite(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlite.OpenAndMigrate(context.Background(), filepath.Join(t.TempDir(), "moat.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
