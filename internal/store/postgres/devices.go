package postgres

import (
	"bytes"
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/moat-dev/moat/internal/store"
)

const deviceCols = `id, account_id, token_hash, name, last_ip, created_at, approved_at, last_seen_at`

func scanDevice(row pgx.Row) (store.Device, error) {
	var d store.Device
	err := row.Scan(&d.ID, &d.AccountID, bs{&d.TokenHash}, &d.Name, &d.LastIP,
		ts{&d.CreatedAt}, ts{&d.ApprovedAt}, ts{&d.LastSeenAt})
	return d, err
}

// CreateDevice implements store.Queries.
func (q *queries) CreateDevice(ctx context.Context, d store.Device) error {
	tag, err := q.db.Exec(ctx, `INSERT INTO devices (`+deviceCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT DO NOTHING`,
		d.ID, d.AccountID, bv(d.TokenHash), d.Name, d.LastIP, tv(d.CreatedAt), tv(d.ApprovedAt), tv(d.LastSeenAt))
	return inserted("create device", tag, err)
}

// GetDeviceByTokenHash implements store.Queries.
func (q *queries) GetDeviceByTokenHash(ctx context.Context, accountID string, hash []byte) (store.Device, error) {
	return one("get device", q.db.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices
		WHERE account_id = $1 AND token_hash = $2`, accountID, hash), scanDevice)
}

// GetDevice implements store.Queries.
func (q *queries) GetDevice(ctx context.Context, id string) (store.Device, error) {
	return one("get device", q.db.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = $1`, id), scanDevice)
}

// UpdateDevice implements store.Queries.
func (q *queries) UpdateDevice(ctx context.Context, id string, fn func(d *store.Device) error) (store.Device, error) {
	var out store.Device
	err := q.atomic(ctx, func(tx *queries) error {
		old, err := one("update device", tx.db.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices
			WHERE id = $1 FOR UPDATE`, id), scanDevice)
		if err != nil {
			return err
		}
		d := old
		if err := fn(&d); err != nil {
			return err
		}
		if d.ID != id {
			return errIDChanged
		}
		update := func(db dbtx) (err error) {
			out, err = one("update device", db.QueryRow(ctx, `UPDATE devices SET
				account_id = $1, token_hash = $2, name = $3, last_ip = $4, created_at = $5, approved_at = $6,
				last_seen_at = $7
				WHERE id = $8 RETURNING `+deviceCols,
				d.AccountID, bv(d.TokenHash), d.Name, d.LastIP, tv(d.CreatedAt), tv(d.ApprovedAt), tv(d.LastSeenAt),
				id), scanDevice)
			return err
		}
		if d.AccountID != old.AccountID || !bytes.Equal(d.TokenHash, old.TokenHash) {
			return tx.guarded(ctx, update)
		}
		return update(tx.db)
	})
	return out, err
}

// ListDevices implements store.Queries.
func (q *queries) ListDevices(ctx context.Context, accountID string) ([]store.Device, error) {
	rows, err := q.db.Query(ctx, `SELECT `+deviceCols+` FROM devices WHERE account_id = $1
		ORDER BY last_seen_at DESC NULLS LAST, created_at DESC NULLS LAST, id`, accountID)
	return collect("list devices", rows, err, scanDevice)
}
