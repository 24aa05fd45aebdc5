package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

const auditCols = `seq, occurred_at, event_type, account_id, actor_id, ip, user_agent, device_id, data, prev_hash, hash`

func scanAudit(sc scanner) (store.AuditEvent, error) {
	var e store.AuditEvent
	err := sc.Scan(&e.Seq, ts{&e.Time}, &e.Type, &e.AccountID, &e.ActorID, &e.IP, &e.UserAgent, &e.DeviceID,
		&e.Data, bs{&e.PrevHash}, bs{&e.Hash})
	return e, err
}

// AppendAudit implements store.Queries. The transaction holds SQLite's
// write lock from its first statement (BEGIN IMMEDIATE), so reading the
// last event and inserting the next cannot interleave with another append.
func (q *queries) AppendAudit(ctx context.Context, build func(last store.AuditEvent) (store.AuditEvent, error)) (store.AuditEvent, error) {
	var out store.AuditEvent
	err := q.atomic(ctx, func(tx *queries) error {
		last, err := one("append audit", tx.w.QueryRowContext(ctx, `SELECT `+auditCols+` FROM audit_events
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
		out, err = one("append audit", tx.w.QueryRowContext(ctx, `INSERT INTO audit_events (`+auditCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING `+auditCols,
			e.Seq, tv(e.Time), e.Type, e.AccountID, e.ActorID, e.IP, e.UserAgent, e.DeviceID, e.Data,
			bv(e.PrevHash), bv(e.Hash)), scanAudit)
		return err
	})
	return out, err
}

// errAuditTime guards the hash chain: a time finer than the stored
// microseconds would come back different from what build hashed.
var errAuditTime = errors.New("sqlite: audit event time must be truncated to microseconds")

// ListAudit implements store.Queries.
func (q *queries) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	// Assembled from fixed pieces (at most 16 statement texts, each cached)
	// so that the account filter can use its index.
	query := `SELECT ` + auditCols + ` FROM audit_events WHERE seq > ?`
	args := []any{f.AfterSeq}
	if f.AccountID != "" {
		query += ` AND account_id = ?`
		args = append(args, f.AccountID)
	}
	if len(f.Types) > 0 {
		types, err := json.Marshal(f.Types)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list audit: %w", err)
		}
		query += ` AND event_type IN (SELECT value FROM json_each(?))`
		args = append(args, string(types))
	}
	if f.Desc {
		query += ` ORDER BY seq DESC`
	} else {
		query += ` ORDER BY seq`
	}
	limit := -1 // SQLite: no limit
	if f.Limit > 0 {
		limit = f.Limit
	}
	query += ` LIMIT ?`
	args = append(args, limit)
	rows, err := q.r.QueryContext(ctx, query, args...)
	return collect("list audit", rows, err, scanAudit)
}
