package audit_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/moat-dev/moat/internal/store/sqlite"
)

// sqliteLog is the real SQLite store plus a second, raw connection to the
// same file for tampering, as someone with access to the file would.
type sqliteLog struct {
	*sqlite.Store
	raw *sql.DB
}

func openSQLite(t *testing.T) logStore {
	t.Helper()
	path := filepath.Join(t.TempDir(), "moat.db")
	s, err := sqlite.OpenAndMigrate(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	raw, err := sql.Open("sqlite", path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return &sqliteLog{Store: s, raw: raw}
}

// exec runs SQL on the raw connection after dropping the store's
// append-only triggers (an attacker with the file can do that too; the
// chain is what catches them).
func (l *sqliteLog) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	for _, q := range []string{
		`DROP TRIGGER IF EXISTS audit_events_no_update`,
		`DROP TRIGGER IF EXISTS audit_events_no_delete`,
	} {
		if _, err := l.raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	res, err := l.raw.Exec(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatalf("%s %v: no row changed", query, args)
	}
}

func (l *sqliteLog) set(t *testing.T, seq int64, column string, value any) {
	t.Helper()
	switch column {
	case "data", "event_type", "ip", "occurred_at":
	default:
		t.Fatalf("unknown column %q", column)
	}
	l.exec(t, `UPDATE audit_events SET `+column+` = ? WHERE seq = ?`, value, seq)
}

func (l *sqliteLog) remove(t *testing.T, seq int64) {
	t.Helper()
	l.exec(t, `DELETE FROM audit_events WHERE seq = ?`, seq)
}

func (l *sqliteLog) swapSeq(t *testing.T, a, b int64) {
	t.Helper()
	l.exec(t, `UPDATE audit_events SET seq = -1 WHERE seq = ?`, a)
	l.exec(t, `UPDATE audit_events SET seq = ? WHERE seq = ?`, a, b)
	l.exec(t, `UPDATE audit_events SET seq = ? WHERE seq = -1`, b)
}

// TestSQLiteRefusesEdits: the store's own guard, before anyone drops it.
func TestSQLiteRefusesEdits(t *testing.T) {
	l := openSQLite(t).(*sqliteLog)
	appendN(t, l, 2)
	if _, err := l.raw.Exec(`UPDATE audit_events SET ip = 'x' WHERE seq = 1`); err == nil {
		t.Error("UPDATE of an audit event was allowed")
	}
	if _, err := l.raw.Exec(`DELETE FROM audit_events WHERE seq = 1`); err == nil {
		t.Error("DELETE of an audit event was allowed")
	}
}
