package postgres

import (
	"bytes"
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/moat-dev/moat/internal/store"
)

const signInCols = `id, token_hash, account_id, state, device_id, new_device, code_hash, attempts,
	client, ip, user_agent, factor_at, created_at, expires_at`

func scanSignIn(row pgx.Row) (store.PendingSignIn, error) {
	var p store.PendingSignIn
	err := row.Scan(&p.ID, bs{&p.TokenHash}, &p.AccountID, &p.State, &p.DeviceID, &p.NewDevice, bs{&p.CodeHash},
		&p.Attempts, &p.Client, &p.IP, &p.UserAgent, ts{&p.FactorAt}, ts{&p.CreatedAt}, ts{&p.ExpiresAt})
	return p, err
}

// CreatePendingSignIn implements store.Queries.
func (q *queries) CreatePendingSignIn(ctx context.Context, p store.PendingSignIn) error {
	tag, err := q.db.Exec(ctx, `INSERT INTO pending_signins (`+signInCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING`,
		p.ID, bv(p.TokenHash), p.AccountID, string(p.State), p.DeviceID, p.NewDevice, bv(p.CodeHash), p.Attempts,
		p.Client, p.IP, p.UserAgent, tv(p.FactorAt), tv(p.CreatedAt), tv(p.ExpiresAt))
	return inserted("create pending sign-in", tag, err)
}

// GetPendingSignIn implements store.Queries.
func (q *queries) GetPendingSignIn(ctx context.Context, tokenHash []byte) (store.PendingSignIn, error) {
	return one("get pending sign-in", q.db.QueryRow(ctx, `SELECT `+signInCols+` FROM pending_signins
		WHERE token_hash = $1`, tokenHash), scanSignIn)
}

// UpdatePendingSignIn implements store.Queries.
func (q *queries) UpdatePendingSignIn(ctx context.Context, id string, fn func(p *store.PendingSignIn) error) (store.PendingSignIn, error) {
	var out store.PendingSignIn
	err := q.atomic(ctx, func(tx *queries) error {
		old, err := one("update pending sign-in", tx.db.QueryRow(ctx, `SELECT `+signInCols+` FROM pending_signins
			WHERE id = $1 FOR UPDATE`, id), scanSignIn)
		if err != nil {
			return err
		}
		p := old
		if err := fn(&p); err != nil {
			return err
		}
		if p.ID != id {
			return errIDChanged
		}
		update := func(db dbtx) (err error) {
			out, err = one("update pending sign-in", db.QueryRow(ctx, `UPDATE pending_signins SET
				token_hash = $1, account_id = $2, state = $3, device_id = $4, new_device = $5, code_hash = $6,
				attempts = $7, client = $8, ip = $9, user_agent = $10, factor_at = $11, created_at = $12,
				expires_at = $13
				WHERE id = $14 RETURNING `+signInCols,
				bv(p.TokenHash), p.AccountID, string(p.State), p.DeviceID, p.NewDevice, bv(p.CodeHash), p.Attempts,
				p.Client, p.IP, p.UserAgent, tv(p.FactorAt), tv(p.CreatedAt), tv(p.ExpiresAt),
				id), scanSignIn)
			return err
		}
		if !bytes.Equal(p.TokenHash, old.TokenHash) {
			return tx.guarded(ctx, update)
		}
		return update(tx.db)
	})
	return out, err
}

// DeleteExpiredPendingSignIns implements store.Queries. A pending sign-in
// without an expiry counts as expired.
func (q *queries) DeleteExpiredPendingSignIns(ctx context.Context, now time.Time) (int, error) {
	tag, err := q.db.Exec(ctx, `DELETE FROM pending_signins WHERE expires_at IS NULL OR expires_at < $1`,
		now.Truncate(time.Microsecond))
	if err != nil {
		return 0, mapErr("delete expired pending sign-ins", err)
	}
	return int(tag.RowsAffected()), nil
}
