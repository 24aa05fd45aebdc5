package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/moat-dev/moat/internal/store"
)

const auditCols = `seq, occurred_at, event_type, account_id, actor_id, ip, user_agent, device_id, data, prev_hash, hash`

func scanAudit(row pgx.Row) (store.AuditEvent, error) {
	var e store.AuditEvent
	err := row.Scan(&e.Seq, ts{&e.Time}, &e.Type, &e.AccountID, &e.ActorID, &e.IP, &e.UserAgent, &e.DeviceID,
		&e.Data, bs{&e.PrevHash}, bs{&e.Hash})
	return e, err
}

// AppendAudit implements store.Queries. Locking the one row of
// audit_chain_head serialises appends from every connection and node until
// commit; the last event is read after the lock is granted, so under READ
// COMMITTED it is the one the previous holder committed.
func (q *queries) AppendAudit(ctx context.Context, build func(last store.AuditEvent) (store.AuditEvent, error)) (store.AuditEvent, error) {
	var out store.AuditEvent
	err := q.atomic(ctx, func(tx *queries) error {
		if _, err := tx.db.Exec(ctx, `SELECT id FROM audit_chain_head WHERE id = 1 FOR UPDATE`); err != nil {
			return mapErr("lock audit chain", err)
		}
		last, err := one("append audit", tx.db.QueryRow(ctx, `SELECT `+auditCols+` FROM audit_events
			ORDER BY seq DESC LIMIT 1`), scanAudit)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		e, err := build(last)
		if err != nil {
			return err
		}
		if !e.Time.Equal(e.Time.Truncate(time.Microsecond)) {
			return errAuditTime
		}
		e.Seq = last.Seq + 1
		out, err = one("append audit", tx.db.QueryRow(ctx, `INSERT INTO audit_events (`+auditCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING `+auditCols,
			e.Seq, tv(e.Time), e.Type, e.AccountID, e.ActorID, e.IP, e.UserAgent, e.DeviceID, e.Data,
			bv(e.PrevHash), bv(e.Hash)), scanAudit)
		return err
	})
	return out, err
}

// errAuditTime guards the hash chain: a time finer than the stored
// microseconds would come back different from what build hashed.
var errAuditTime = errors.New("postgres: audit event time must be truncated to microseconds")

// ListAudit implements store.Queries.
func (q *queries) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	// Assembled from fixed pieces (a few statement texts, each cached) so
	// that the account filter can use its index.
	var a args
	query := `SELECT ` + auditCols + ` FROM audit_events WHERE seq > ` + a.add(f.AfterSeq)
	if f.AccountID != "" {
		query += ` AND account_id = ` + a.add(f.AccountID)
	}
	if len(f.Types) > 0 {
		query += ` AND event_type = ANY(` + a.add(f.Types) + `)`
	}
	if f.Desc {
		query += ` ORDER BY seq DESC`
	} else {
		query += ` ORDER BY seq`
	}
	if f.Limit > 0 {
		query += ` LIMIT ` + a.add(f.Limit)
	}
	rows, err := q.db.Query(ctx, query, a...)
	return collect("list audit", rows, err, scanAudit)
}
