// Package postgres implements store.Store on PostgreSQL with
// github.com/jackc/pgx/v5: moat's backend when several nodes share state.
//
// Every query is a plain statement that pgx prepares once per connection
// and caches. Transactions run at READ COMMITTED; atomic read-modify-writes
// lock what they read (SELECT ... FOR UPDATE), audit appends lock the one
// row of audit_chain_head so that appends from every node form one gap-free
// chain, and outbox claims skip rows another worker has locked.
//
// Conflicts and missing rows inside InTx are reported without aborting the
// transaction (inserts use ON CONFLICT DO NOTHING, risky updates a
// savepoint), so callers see the same behaviour as on SQLite.
//
// Lock order matters across concurrent transactions: AppendAudit holds the
// chain lock until commit, so call it last in a transaction.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/moat-dev/moat/internal/store"
)

// Store is a store.Store backed by a PostgreSQL connection pool.
type Store struct {
	queries
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by dsn (a postgres:// URL or a
// key=value string; pool settings such as pool_max_conns are accepted) and
// checks that it answers. It does not change the schema: call Migrate, or
// use OpenAndMigrate.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The error may quote the DSN, password included: keep it out.
		return nil, errors.New("postgres: cannot parse the database URL")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s := &Store{pool: pool}
	s.queries = queries{store: s, db: pool}
	return s, nil
}

// OpenAndMigrate connects and brings the schema up to date.
func OpenAndMigrate(ctx context.Context, dsn string) (*Store, error) {
	s, err := Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if _, err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// InTx implements store.Store.
func (s *Store) InTx(ctx context.Context, fn func(tx store.Queries) error) error {
	return s.inTx(ctx, func(q *queries) error { return fn(q) })
}

func (s *Store) inTx(ctx context.Context, fn func(q *queries) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			// Roll back even if ctx is done, so the connection goes
			// back to the pool clean.
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err := fn(&queries{store: s, db: tx, tx: tx}); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	committed = true
	return nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// queries implements store.Queries on the pool or on a transaction.
type queries struct {
	store *Store
	db    dbtx
	// tx is the transaction db belongs to, nil outside one.
	tx pgx.Tx
}

var _ store.Queries = (*queries)(nil)

// dbtx is what queries need from a pool or a transaction.
type dbtx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// atomic runs fn in a transaction: the caller's if there is one, else a new
// one. UpdateX and other read-modify-writes go through it.
func (q *queries) atomic(ctx context.Context, fn func(tx *queries) error) error {
	if q.tx != nil {
		return fn(q)
	}
	return q.store.inTx(ctx, fn)
}

// guarded runs fn, a statement that may fail on a constraint, so that its
// failure does not abort the caller's transaction: inside one it runs under
// a savepoint. q must be in a transaction (see atomic).
func (q *queries) guarded(ctx context.Context, fn func(db dbtx) error) error {
	sp, err := q.tx.Begin(ctx)
	if err != nil {
		return mapErr("savepoint", err)
	}
	if err := fn(sp); err != nil {
		sp.Rollback(ctx)
		return err
	}
	return mapErr("release savepoint", sp.Commit(ctx))
}

// Errors.

// errIDChanged is returned when an UpdateX function changes the record's ID.
var errIDChanged = errors.New("postgres: an update may not change the record's ID")

// mapErr turns "no rows" into store.ErrNotFound and a uniqueness violation
// into store.ErrAlreadyExists; other errors are wrapped with what failed.
func mapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
		return store.ErrAlreadyExists
	}
	return fmt.Errorf("postgres: %s: %w", what, err)
}

// mustAffect returns store.ErrNotFound if the statement changed no row.
func mustAffect(what string, tag pgconn.CommandTag, err error) error {
	if err != nil {
		return mapErr(what, err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// inserted returns store.ErrAlreadyExists if an INSERT ... ON CONFLICT DO
// NOTHING inserted no row.
func inserted(what string, tag pgconn.CommandTag, err error) error {
	if err != nil {
		return mapErr(what, err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrAlreadyExists
	}
	return nil
}

// Conversions between Go values and columns.

// tv encodes a time, or NULL for the zero time. It truncates to the
// microsecond (PostgreSQL would round) so both backends store the same.
func tv(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Truncate(time.Microsecond)
}

// bv encodes a byte slice, storing an empty one as NULL.
func bv(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// ts scans a nullable TIMESTAMPTZ into *t (zero for NULL, else UTC).
type ts struct{ t *time.Time }

func (d ts) ScanTimestamptz(v pgtype.Timestamptz) error {
	switch {
	case !v.Valid:
		*d.t = time.Time{}
	case v.InfinityModifier != pgtype.Finite:
		return errors.New("postgres: infinite timestamp")
	default:
		*d.t = v.Time.UTC()
	}
	return nil
}

// bs scans a nullable BYTEA into *b (nil for NULL or empty).
type bs struct{ b *[]byte }

func (d bs) ScanBytes(v []byte) error {
	if len(v) == 0 {
		*d.b = nil
	} else {
		*d.b = append([]byte(nil), v...)
	}
	return nil
}

// collect scans every row with scan.
func collect[T any](what string, rows pgx.Rows, err error, scan func(pgx.Row) (T, error)) ([]T, error) {
	if err != nil {
		return nil, mapErr(what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, mapErr(what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(what, err)
	}
	return out, nil
}

// one scans a single row, mapping no rows to store.ErrNotFound.
func one[T any](what string, row pgx.Row, scan func(pgx.Row) (T, error)) (T, error) {
	v, err := scan(row)
	if err != nil {
		var zero T
		return zero, mapErr(what, err)
	}
	return v, nil
}

// args builds a statement's argument list, handing out $n placeholders.
type args []any

func (a *args) add(v any) string {
	*a = append(*a, v)
	return fmt.Sprintf("$%d", len(*a))
}
