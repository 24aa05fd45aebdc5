package sqlite

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

const outboxCols = `id, channel, recipient, subject, body, created_at, attempts, next_attempt_at, sent_at, last_error`

func scanOutbox(sc scanner) (store.OutboxMessage, error) {
	var m store.OutboxMessage
	err := sc.Scan(&m.ID, &m.Channel, &m.To, &m.Subject, &m.Body, ts{&m.CreatedAt}, &m.Attempts,
		ts{&m.NextAttemptAt}, ts{&m.SentAt}, &m.LastError)
	return m, err
}

// EnqueueOutbox implements store.Queries. A zero NextAttemptAt means the
// message is due at once (at CreatedAt).
func (q *queries) EnqueueOutbox(ctx context.Context, m store.OutboxMessage) error {
	if m.NextAttemptAt.IsZero() {
		m.NextAttemptAt = m.CreatedAt
	}
	_, err := q.w.ExecContext(ctx, `INSERT INTO outbox (`+outboxCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.ID, m.Channel, m.To, m.Subject, m.Body, tv(m.CreatedAt), m.Attempts, tv(m.NextAttemptAt), tv(m.SentAt), m.LastError)
	return mapErr("enqueue outbox", err)
}

// ClaimOutbox implements store.Queries: one UPDATE picks and leases the
// messages under the write lock, so two claimers never share one.
func (q *queries) ClaimOutbox(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]store.OutboxMessage, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := q.w.QueryContext(ctx, `UPDATE outbox SET next_attempt_at = ?
		WHERE id IN (SELECT id FROM outbox
			WHERE sent_at IS NULL AND next_attempt_at <= ?
			ORDER BY created_at NULLS FIRST, id LIMIT ?)
		RETURNING `+outboxCols,
		now.Add(lease).UnixMicro(), now.UnixMicro(), limit)
	msgs, err := collect("claim outbox", rows, err, scanOutbox)
	sortOldestFirst(msgs)
	return msgs, err
}

// sortOldestFirst orders messages by CreatedAt then ID (RETURNING has no
// order of its own).
func sortOldestFirst(msgs []store.OutboxMessage) {
	slices.SortFunc(msgs, func(a, b store.OutboxMessage) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
}

// MarkOutboxSent implements store.Queries.
func (q *queries) MarkOutboxSent(ctx context.Context, id string, at time.Time) error {
	res, err := q.w.ExecContext(ctx, `UPDATE outbox SET sent_at = ? WHERE id = ?`, tv(at), id)
	return mustAffect("mark outbox sent", res, err)
}

// MarkOutboxFailed implements store.Queries.
func (q *queries) MarkOutboxFailed(ctx context.Context, id string, errText string, next time.Time) error {
	res, err := q.w.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?
		WHERE id = ?`, errText, tv(next), id)
	return mustAffect("mark outbox failed", res, err)
}

// DeleteOutboxBefore implements store.Queries.
func (q *queries) DeleteOutboxBefore(ctx context.Context, before time.Time) (int, error) {
	res, err := q.w.ExecContext(ctx, `DELETE FROM outbox WHERE created_at < ?
		AND (sent_at IS NOT NULL OR next_attempt_at IS NULL)`, tv(before))
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete old outbox messages: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// ListOutbox implements store.Queries. A limit of 0 or less means 100.
func (q *queries) ListOutbox(ctx context.Context, channel string, limit int) ([]store.OutboxMessage, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := q.r.QueryContext(ctx, `SELECT `+outboxCols+` FROM outbox WHERE channel = ?
		ORDER BY created_at DESC NULLS LAST, id DESC LIMIT ?`, channel, limit)
	return collect("list outbox", rows, err, scanOutbox)
}
