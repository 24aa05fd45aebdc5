package sqlite

import (
	"context"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

const signInCols = `id, token_hash, account_id, state, device_id, new_device, code_hash, attempts,
	client, ip, user_agent, factor_at, created_at, expires_at`

func scanSignIn(sc scanner) (store.PendingSignIn, error) {
	var p store.PendingSignIn
	err := sc.Scan(&p.ID, bs{&p.TokenHash}, &p.AccountID, &p.State, &p.DeviceID, &p.NewDevice, bs{&p.CodeHash},
		&p.Attempts, &p.Client, &p.IP, &p.UserAgent, ts{&p.FactorAt}, ts{&p.CreatedAt}, ts{&p.ExpiresAt})
	return p, err
}

// CreatePendingSignIn implements store.Queries.
func (q *queries) CreatePendingSignIn(ctx context.Context, p store.PendingSignIn) error {
	_, err := q.w.ExecContext(ctx, `INSERT INTO pending_signins (`+signInCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, bv(p.TokenHash), p.AccountID, string(p.State), p.DeviceID, p.NewDevice, bv(p.CodeHash), p.Attempts,
		p.Client, p.IP, p.UserAgent, tv(p.FactorAt), tv(p.CreatedAt), tv(p.ExpiresAt))
	return mapErr("create pending sign-in", err)
}

// GetPendingSignIn implements store.Queries.
func (q *queries) GetPendingSignIn(ctx context.Context, tokenHash []byte) (store.PendingSignIn, error) {
	return one("get pending sign-in", q.r.QueryRowContext(ctx, `SELECT `+signInCols+` FROM pending_signins
		WHERE token_hash = ?`, tokenHash), scanSignIn)
}

// UpdatePendingSignIn implements store.Queries.
func (q *queries) UpdatePendingSignIn(ctx context.Context, id string, fn func(p *store.PendingSignIn) error) (store.PendingSignIn, error) {
	var out store.PendingSignIn
	err := q.atomic(ctx, func(tx *queries) error {
		p, err := one("update pending sign-in", tx.w.QueryRowContext(ctx, `SELECT `+signInCols+` FROM pending_signins
			WHERE id = ?`, id), scanSignIn)
		if err != nil {
			return err
		}
		if err := fn(&p); err != nil {
			return err
		}
		if p.ID != id {
			return errIDChanged
		}
		out, err = one("update pending sign-in", tx.w.QueryRowContext(ctx, `UPDATE pending_signins SET
			token_hash = ?, account_id = ?, state = ?, device_id = ?, new_device = ?, code_hash = ?, attempts = ?,
			client = ?, ip = ?, user_agent = ?, factor_at = ?, created_at = ?, expires_at = ?
			WHERE id = ? RETURNING `+signInCols,
			bv(p.TokenHash), p.AccountID, string(p.State), p.DeviceID, p.NewDevice, bv(p.CodeHash), p.Attempts,
			p.Client, p.IP, p.UserAgent, tv(p.FactorAt), tv(p.CreatedAt), tv(p.ExpiresAt),
			id), scanSignIn)
		return err
	})
	return out, err
}

// DeleteExpiredPendingSignIns implements store.Queries. A pending sign-in
// without an expiry counts as expired.
func (q *queries) DeleteExpiredPendingSignIns(ctx context.Context, now time.Time) (int, error) {
	res, err := q.w.ExecContext(ctx, `DELETE FROM pending_signins WHERE expires_at IS NULL OR expires_at < ?`, now.UnixMicro())
	if err != nil {
		return 0, mapErr("delete expired pending sign-ins", err)
	}
	n, err := res.RowsAffected()
	return int(n), mapErr("delete expired pending sign-ins", err)
}
