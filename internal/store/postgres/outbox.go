package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/moat-dev/moat/internal/store"
)

const outboxCols = `id, channel, recipient, subject, body, created_at, attempts, next_attempt_at, sent_at, last_error`

func scanOutbox(row pgx.Row) (store.OutboxMessage, error) {
	var m store.OutboxMessage
	err := row.Scan(&m.ID, &m.Channel, &m.To, &m.Subject, &m.Body, ts{&m.CreatedAt}, &m.Attempts,
		ts{&m.NextAttemptAt}, ts{&m.SentAt}, &m.LastError)
	return m, err
}

// EnqueueOutbox implements store.Queries. A zero NextAttemptAt means the
// message is due at once (at CreatedAt).
func (q *queries) EnqueueOutbox(ctx context.Context, m store.OutboxMessage) error {
	if m.NextAttemptAt.IsZero() {
		m.NextAttemptAt = m.CreatedAt
	}
	tag, err := q.db.Exec(ctx, `INSERT INTO outbox (`+outboxCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT DO NOTHING`,
		m.ID, m.Channel, m.To, m.Subject, m.Body, tv(m.CreatedAt), m.Attempts, tv(m.NextAttemptAt), tv(m.SentAt), m.LastError)
	return inserted("enqueue outbox", tag, err)
}

// ClaimOutbox implements store.Queries. FOR UPDATE SKIP LOCKED lets workers
// on every node claim at once: each takes rows no other is taking, and the
// lease it writes hides them from later claims until it runs out.
func (q *queries) ClaimOutbox(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]store.OutboxMessage, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := q.db.Query(ctx, `UPDATE outbox SET next_attempt_at = $1
		WHERE id IN (SELECT id FROM outbox
			WHERE sent_at IS NULL AND next_attempt_at <= $2
			ORDER BY created_at NULLS FIRST, id LIMIT $3
			FOR UPDATE SKIP LOCKED)
		RETURNING `+outboxCols,
		now.Add(lease).Truncate(time.Microsecond), now.Truncate(time.Microsecond), limit)
	msgs, err := collect("claim outbox", rows, err, scanOutbox)
	slices.SortFunc(msgs, func(a, b store.OutboxMessage) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return msgs, err
}

// MarkOutboxSent implements store.Queries.
func (q *queries) MarkOutboxSent(ctx context.Context, id string, at time.Time) error {
	tag, err := q.db.Exec(ctx, `UPDATE outbox SET sent_at = $1 WHERE id = $2`, tv(at), id)
	return mustAffect("mark outbox sent", tag, err)
}

// MarkOutboxFailed implements store.Queries.
func (q *queries) MarkOutboxFailed(ctx context.Context, id string, errText string, next time.Time) error {
	tag, err := q.db.Exec(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2
		WHERE id = $3`, errText, tv(next), id)
	return mustAffect("mark outbox failed", tag, err)
}

// DeleteOutboxBefore implements store.Queries.
func (q *queries) DeleteOutboxBefore(ctx context.Context, before time.Time) (int, error) {
	tag, err := q.db.Exec(ctx, `DELETE FROM outbox WHERE created_at < $1
		AND (sent_at IS NOT NULL OR next_attempt_at IS NULL)`, tv(before))
	if err != nil {
		return 0, fmt.Errorf("postgres: delete old outbox messages: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// ListOutbox implements store.Queries. A limit of 0 or less means 100.
func (q *queries) ListOutbox(ctx context.Context, channel string, limit int) ([]store.OutboxMessage, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := q.db.Query(ctx, `SELECT `+outboxCols+` FROM outbox WHERE channel = $1
		ORDER BY created_at DESC NULLS LAST, id DESC LIMIT $2`, channel, limit)
	return collect("list outbox", rows, err, scanOutbox)
}
