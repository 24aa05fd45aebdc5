package schema

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/moat-dev/moat/internal/store/postgres/pgtest"
	"github.com/moat-dev/moat/internal/testenv"
)

func foundation(t *testing.T, store string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "store", store, "migrations", "0001_foundation.sql"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// execer runs a statement and returns rows affected.
type execer func(q string, args ...any) (int64, error)

// checks exercises the statements the store methods are built on. ph
// renders the n-th placeholder.
func checks(t *testing.T, exec execer, one func(q string, args ...any) (string, error), ph func(int) string) {
	t.Helper()
	must := func(n int64, err error) int64 {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	must(exec(`INSERT INTO accounts (id, email) VALUES ('a1', 'a1@example.com'), ('a2', 'a2@example.com')`))

	// UpdateTOTP's guard: a step at or below the last one is refused.
	must(exec(`INSERT INTO totp_credentials (account_id, secret) VALUES ('a1', `+ph(1)+`)`, []byte{1, 2}))
	raise := `UPDATE totp_credentials SET last_used_step = ` + ph(1) + ` WHERE account_id = 'a1' AND last_used_step < ` + ph(2)
	if n := must(exec(raise, 5, 5)); n != 1 {
		t.Errorf("first use of step 5: %d rows", n)
	}
	if n := must(exec(raise, 5, 5)); n != 0 {
		t.Errorf("second use of step 5: %d rows", n)
	}
	if _, err := exec(`INSERT INTO totp_credentials (account_id, secret) VALUES ('a1', `+ph(1)+`)`, []byte{3}); err == nil {
		t.Error("a second app for one account")
	}

	// SpendBackupCode: one row affected wins.
	must(exec(`INSERT INTO backup_codes (account_id, hash) VALUES ('a1', `+ph(1)+`)`, []byte("h1")))
	spend := `UPDATE backup_codes SET used_at = ` + ph(1) + ` WHERE account_id = 'a1' AND hash = ` + ph(2) + ` AND used_at IS NULL`
	now := nowValue(ph)
	if n := must(exec(spend, now, []byte("h1"))); n != 1 {
		t.Errorf("spend: %d rows", n)
	}
	if n := must(exec(spend, now, []byte("h1"))); n != 0 {
		t.Errorf("second spend: %d rows", n)
	}

	// A credential ID belongs to one account.
	ins := `INSERT INTO webauthn_credentials (id, account_id, credential_id, public_key) VALUES (` + ph(1) + `, ` + ph(2) + `, ` + ph(3) + `, ` + ph(4) + `)`
	must(exec(ins, "k1", "a1", []byte("cred"), []byte("pk")))
	if _, err := exec(ins, "k2", "a2", []byte("cred"), []byte("pk")); err == nil {
		t.Error("one credential ID registered to two accounts")
	}

	// TakeWebAuthnCeremony: DELETE ... RETURNING gives the row once.
	must(exec(`INSERT INTO webauthn_ceremonies (id, account_id, kind, data) VALUES ('c1', '', 'passkey', `+ph(1)+`)`, []byte("{}")))
	take := `DELETE FROM webauthn_ceremonies WHERE id = 'c1' RETURNING kind`
	if k, err := one(take); err != nil || k != "passkey" {
		t.Errorf("take: %q %v", k, err)
	}
	if _, err := one(take); err == nil {
		t.Error("ceremony taken twice")
	}

	// UpdateMFASettings inserts the zero row first.
	upsert := `INSERT INTO mfa_settings (account_id) VALUES ('a2') ON CONFLICT (account_id) DO NOTHING`
	must(exec(upsert))
	must(exec(upsert))

	// Deleting an account removes its factors.
	must(exec(`INSERT INTO sms_phones (account_id, number) VALUES ('a1', '+442079460958')`))
	must(exec(`INSERT INTO sms_codes (account_id, code_hash) VALUES ('a1', `+ph(1)+`)`, []byte("x")))
	must(exec(`INSERT INTO mfa_settings (account_id) VALUES ('a1')`))
	must(exec(`DELETE FROM accounts WHERE id = 'a1'`))
	for _, table := range []string{"totp_credentials", "backup_codes", "sms_phones", "sms_codes", "webauthn_credentials", "mfa_settings"} {
		if n, err := one(`SELECT count(*) FROM ` + table + ` WHERE account_id = 'a1'`); err != nil || n != "0" {
			t.Errorf("%s keeps %s rows of a deleted account (%v)", table, n, err)
		}
	}
}

// nowValue is a time in each store's representation.
func nowValue(ph func(int) string) any {
	if ph(1) == "?" {
		return int64(1767225600000000) // SQLite: Unix microseconds
	}
	return "2026-01-01T00:00:00Z"
}

func TestSQLite(t *testing.T) {
	db, err := sql.Open("sqlite", "file::memory:?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, s := range []string{foundation(t, "sqlite"), SQLite} {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("apply: %v", err)
		}
	}
	checks(t, func(q string, args ...any) (int64, error) {
		r, err := db.Exec(q, args...)
		if err != nil {
			return 0, err
		}
		return r.RowsAffected()
	}, func(q string, args ...any) (string, error) {
		var s string
		err := db.QueryRow(q, args...).Scan(&s)
		return s, err
	}, func(int) string { return "?" })
}

func TestPostgreSQL(t *testing.T) {
	testenv.PostgresDSN(t) // fail, not skip, in CI
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewDB(t).DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range []string{foundation(t, "postgres"), PostgreSQL} {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("apply: %v", err)
		}
	}
	checks(t, func(q string, args ...any) (int64, error) {
		tag, err := conn.Exec(ctx, q, args...)
		return tag.RowsAffected(), err
	}, func(q string, args ...any) (string, error) {
		var s any
		if err := conn.QueryRow(ctx, q, args...).Scan(&s); err != nil {
			return "", err
		}
		return fmt.Sprint(s), nil
	}, func(n int) string { return fmt.Sprintf("$%d", n) })
}
