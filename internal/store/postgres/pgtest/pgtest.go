// Package pgtest gives tests a throwaway PostgreSQL database. Tests that
// need PostgreSQL read the server's URL from MOAT_TEST_POSTGRES_DSN (for
// example postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable; the
// role must be allowed to create databases) and skip when it is unset.
//
// Each NewDB creates a database named moat_test_<random> and drops it when
// the test ends; each Open within it gets a fresh schema, so tests sharing a
// database never see each other's rows.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/moat-dev/moat/internal/store/postgres"
	"github.com/moat-dev/moat/internal/testenv"
)

// EnvDSN names the environment variable holding the server's URL.
const EnvDSN = "MOAT_TEST_POSTGRES_DSN"

// ExampleDSN is what to set EnvDSN to for a local server.
const ExampleDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// DB is a throwaway database.
type DB struct {
	base    string // the server DSN from the environment
	name    string // the database's name
	schemas atomic.Int64
}

// NewDB creates a throwaway database, dropped when t and its subtests end.
// It skips t if EnvDSN is unset.
func NewDB(t testing.TB) *DB {
	t.Helper()
	base := testenv.PostgresDSN(t) // skips, or fails under MOAT_TEST_REQUIRE=1
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	d := &DB{base: base, name: "moat_test_" + hex.EncodeToString(b[:])}
	admin := connect(t, base)
	defer admin.Close(context.Background())
	if _, err := admin.Exec(context.Background(), `CREATE DATABASE `+pgx.Identifier{d.name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("pgtest: drop database %s: %v", d.name, err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{d.name}.Sanitize()+` WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: drop database %s: %v", d.name, err)
		}
	})
	return d
}

// DSN creates a new, empty schema in the database and returns a DSN whose
// search_path selects it.
func (d *DB) DSN(t testing.TB) string {
	t.Helper()
	schema := fmt.Sprintf("s%d", d.schemas.Add(1))
	dbDSN := withParams(d.base, map[string]string{"dbname": d.name})
	conn := connect(t, dbDSN)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("pgtest: create schema: %v", err)
	}
	return withParams(d.base, map[string]string{"dbname": d.name, "search_path": schema})
}

// Open returns a migrated store in a new schema, closed when t ends.
func (d *DB) Open(t testing.TB) *postgres.Store {
	t.Helper()
	s, err := postgres.OpenAndMigrate(context.Background(), d.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Open is NewDB(t).Open(t): a migrated store in its own database.
func Open(t testing.TB) *postgres.Store {
	t.Helper()
	return NewDB(t).Open(t)
}

func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	return conn
}

// withParams sets connection parameters on a DSN in either of the forms pgx
// accepts (URL or key=value).
func withParams(dsn string, params map[string]string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			q := u.Query()
			for k, v := range params {
				if k == "dbname" {
					u.Path = "/" + v
					continue
				}
				q.Set(k, v)
			}
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	// Later keywords override earlier ones.
	for k, v := range params {
		dsn += " " + k + "=" + v
	}
	return dsn
}
