package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
)

// migrations holds the schema, one numbered file per version
// (migrations/0001_foundation.sql, 0002_...), the same versions as
// internal/store/sqlite in PostgreSQL's dialect. A file is applied once, in
// its own transaction, together with the row in schema_migrations that
// records it; never edit a file once released, add the next number.
//
//go:embed migrations/*.sql
var migrations embed.FS

var migrationName = regexp.MustCompile(`^[0-9]{4}_[a-z0-9_]+\.sql$`)

// migrateLock is the transaction-scoped advisory lock key that serialises
// Migrate across nodes starting at once (any constant unlikely to collide
// with another application's keys in the same database).
const migrateLock = 0x6d6f61742d6d6967 // "moat-mig"

// Migrate applies the embedded migrations the database lacks, in order, and
// returns the versions it applied (none when the schema is current). Nodes
// may run it at the same time: an advisory lock lets one apply each
// migration while the others wait and then skip it. Tables are created in
// the first schema of the connection's search_path.
func (s *Store) Migrate(ctx context.Context) (applied []string, err error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		if !migrationName.MatchString(base) {
			return applied, fmt.Errorf("postgres: migrate: badly named migration %q", base)
		}
		version := strings.TrimSuffix(base, ".sql")
		body, err := migrations.ReadFile(name)
		if err != nil {
			return applied, fmt.Errorf("postgres: migrate: %w", err)
		}
		did := false
		err = s.inTx(ctx, func(q *queries) error {
			if _, err := q.db.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
				return err
			}
			if _, err := q.db.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version    TEXT PRIMARY KEY,
				applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
			)`); err != nil {
				return err
			}
			var n int
			if err := q.db.QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			// No arguments: pgx sends it as a simple query, which may hold
			// many statements.
			if _, err := q.db.Exec(ctx, string(body)); err != nil {
				return err
			}
			if _, err := q.db.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, version); err != nil {
				return err
			}
			did = true
			return nil
		})
		if err != nil {
			return applied, fmt.Errorf("postgres: migrate %s: %w", version, err)
		}
		if did {
			applied = append(applied, version)
		}
	}
	return applied, nil
}
