package sqlite

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
// (migrations/0001_foundation.sql, 0002_...). A file is applied once, in
// its own transaction, together with the row in schema_migrations that
// records it; never edit a file once released, add the next number.
//
//go:embed migrations/*.sql
var migrations embed.FS

var migrationName = regexp.MustCompile(`^[0-9]{4}_[a-z0-9_]+\.sql$`)

// Migrate applies the embedded migrations the database lacks, in order, and
// returns the versions it applied (none when the schema is current). It is
// safe to run from several processes at once: each migration runs under the
// database's write lock and is skipped if already recorded.
func (s *Store) Migrate(ctx context.Context) (applied []string, err error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("sqlite: migrate: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		if !migrationName.MatchString(base) {
			return applied, fmt.Errorf("sqlite: migrate: badly named migration %q", base)
		}
		version := strings.TrimSuffix(base, ".sql")
		body, err := migrations.ReadFile(name)
		if err != nil {
			return applied, fmt.Errorf("sqlite: migrate: %w", err)
		}
		did := false
		err = s.inTx(ctx, func(q *queries) error {
			if _, err := q.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version    TEXT PRIMARY KEY NOT NULL,
				applied_at INTEGER NOT NULL
			) STRICT`); err != nil {
				return err
			}
			var n int
			if err := q.w.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := q.w.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			if _, err := q.w.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, unixepoch())`, version); err != nil {
				return err
			}
			did = true
			return nil
		})
		if err != nil {
			return applied, fmt.Errorf("sqlite: migrate %s: %w", version, err)
		}
		if did {
			applied = append(applied, version)
		}
	}
	return applied, nil
}
