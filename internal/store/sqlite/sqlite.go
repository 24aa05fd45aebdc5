// Package sqlite implements store.Store on an embedded SQLite database file
// (modernc.org/sqlite, no cgo): moat's single-node backend.
//
// Every write goes through one connection whose transactions begin with
// BEGIN IMMEDIATE. Writers therefore queue in Go instead of polling SQLite's
// lock, and a read-modify-write never has to upgrade a read lock, which is
// what makes SQLite answer "database is locked" under concurrency. Reads
// outside a transaction use a separate pool of query-only connections, which
// WAL lets run while the writer works.
//
// Inside InTx there is only that one writer connection, so fn must make its
// calls on the tx it is given: a write through the Store itself would wait
// for the connection fn is holding.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/moat-dev/moat/internal/store"
)

// busyTimeout bounds how long a connection waits for a lock held by another
// process (for example `moat admin` run next to a serving moat).
const busyTimeout = 10 * time.Second

// Store is a store.Store backed by one SQLite file.
type Store struct {
	queries
	writer *pool
	reader *pool
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at path. It does not
// change the schema: call Migrate, or use OpenAndMigrate. The special path
// ":memory:" opens a private in-memory database on a single connection
// (handy in tests of other packages; nothing survives Close).
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("sqlite: database path %q must not contain '?'", path)
	}
	busy := fmt.Sprint(busyTimeout.Milliseconds())
	writerDSN := path + "?_txlock=immediate&_busy_timeout=" + busy + "&_foreign_keys=1"
	if path != ":memory:" {
		writerDSN += "&_journal_mode=WAL"
	}
	w, err := sql.Open("sqlite", writerDSN)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// One writer connection, kept open forever (an in-memory database lives
	// only as long as its connection).
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s := &Store{writer: newPool(w)}
	s.reader = s.writer
	if path != ":memory:" {
		r, err := sql.Open("sqlite", path+"?_busy_timeout="+busy+"&_query_only=1")
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		n := max(4, runtime.NumCPU())
		r.SetMaxOpenConns(n)
		r.SetMaxIdleConns(n)
		if err := r.PingContext(ctx); err != nil {
			w.Close()
			r.Close()
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		s.reader = newPool(r)
	}
	s.queries = queries{store: s, r: s.reader, w: s.writer}
	return s, nil
}

// OpenAndMigrate opens the database at path and brings its schema up to
// date.
func OpenAndMigrate(ctx context.Context, path string) (*Store, error) {
	s, err := Open(ctx, path)
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

func (s *Store) inTx(ctx context.Context, fn func(q *queries) error) (err error) {
	tx, err := s.writer.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			tx.Rollback()
		}
	}()
	t := txConn{tx: tx, p: s.writer}
	if err := fn(&queries{store: s, r: t, w: t, inTx: true}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	committed = true
	return nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.reader.db.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close closes both connection pools.
func (s *Store) Close() error {
	err := s.writer.close()
	if s.reader != s.writer {
		err = errors.Join(err, s.reader.close())
	}
	return err
}

// queries implements store.Queries on either the pools or a transaction.
type queries struct {
	store *Store
	// r runs reads and w runs writes; inside a transaction both are it.
	r, w dbtx
	inTx bool
}

var _ store.Queries = (*queries)(nil)

// atomic runs fn in a transaction: the caller's if there is one, else a new
// one. UpdateX and other read-modify-writes go through it.
func (q *queries) atomic(ctx context.Context, fn func(tx *queries) error) error {
	if q.inTx {
		return fn(q)
	}
	return q.store.inTx(ctx, fn)
}

// dbtx is what queries need from a pool or a transaction.
type dbtx interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// pool is a *sql.DB that prepares each query once and reuses the statement
// (database/sql prepares it again on each connection as needed), so hot
// lookups skip SQL parsing.
type pool struct {
	db    *sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

func newPool(db *sql.DB) *pool { return &pool{db: db, stmts: map[string]*sql.Stmt{}} }

// cached returns the prepared statement for query if there is one.
func (p *pool) cached(query string) *sql.Stmt {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stmts[query]
}

func (p *pool) prepare(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := p.cached(query); st != nil {
		return st, nil
	}
	st, err := p.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.stmts[query]; old != nil {
		st.Close()
		return old, nil
	}
	p.stmts[query] = st
	return st, nil
}

func (p *pool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := p.prepare(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (p *pool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := p.prepare(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (p *pool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := p.prepare(ctx, query)
	if err != nil {
		// Let database/sql carry the error to Scan.
		return p.db.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

func (p *pool) close() error {
	p.mu.Lock()
	for q, st := range p.stmts {
		st.Close()
		delete(p.stmts, q)
	}
	p.mu.Unlock()
	return p.db.Close()
}

// txConn runs queries in a transaction, reusing the pool's prepared
// statement when it has one. It never prepares through the pool: that needs
// a free connection, and the transaction holds the only writer.
type txConn struct {
	tx *sql.Tx
	p  *pool
}

func (t txConn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.p.cached(query); st != nil {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t txConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.p.cached(query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

func (t txConn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.p.cached(query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

// Errors.

// errIDChanged is returned when an UpdateX function changes the record's ID.
var errIDChanged = errors.New("sqlite: an update may not change the record's ID")

// mapErr turns "no rows" into store.ErrNotFound and a uniqueness violation
// into store.ErrAlreadyExists; other errors are wrapped with what failed.
func mapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return store.ErrAlreadyExists
		}
	}
	return fmt.Errorf("sqlite: %s: %w", what, err)
}

// mustAffect returns store.ErrNotFound if res changed no row.
func mustAffect(what string, res sql.Result, err error) error {
	if err != nil {
		return mapErr(what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return mapErr(what, err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// Conversions between Go values and columns.

// tv encodes a time as Unix microseconds, or NULL for the zero time.
func tv(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// bv encodes a byte slice, storing an empty one as NULL.
func bv(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// ts scans a nullable microsecond column into *t (zero for NULL, else UTC).
type ts struct{ t *time.Time }

func (d ts) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*d.t = time.Time{}
	case int64:
		*d.t = time.UnixMicro(x).UTC()
	default:
		return fmt.Errorf("sqlite: time column holds %T", v)
	}
	return nil
}

// bs scans a nullable BLOB into *b (nil for NULL or empty).
type bs struct{ b *[]byte }

func (d bs) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*d.b = nil
	case []byte:
		if len(x) == 0 {
			*d.b = nil
		} else {
			*d.b = append([]byte(nil), x...)
		}
	default:
		return fmt.Errorf("sqlite: blob column holds %T", v)
	}
	return nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// collect scans every row with scan and closes rows.
func collect[T any](what string, rows *sql.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
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
func one[T any](what string, row *sql.Row, scan func(scanner) (T, error)) (T, error) {
	v, err := scan(row)
	if err != nil {
		var zero T
		return zero, mapErr(what, err)
	}
	return v, nil
}
