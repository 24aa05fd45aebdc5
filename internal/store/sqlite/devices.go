package sqlite

import (
	"context"

	"github.com/moat-dev/moat/internal/store"
)

const deviceCols = `id, account_id, token_hash, name, last_ip, created_at, approved_at, last_seen_at`

func scanDevice(sc scanner) (store.Device, error) {
	var d store.Device
	err := sc.Scan(&d.ID, &d.AccountID, bs{&d.TokenHash}, &d.Name, &d.LastIP,
		ts{&d.CreatedAt}, ts{&d.ApprovedAt}, ts{&d.LastSeenAt})
	return d, err
}

// CreateDevice implements store.Queries.
func (q *queries) CreateDevice(ctx context.Context, d store.Device) error {
	_, err := q.w.ExecContext(ctx, `INSERT INTO devices (`+deviceCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.AccountID, bv(d.TokenHash), d.Name, d.LastIP, tv(d.CreatedAt), tv(d.ApprovedAt), tv(d.LastSeenAt))
	return mapErr("create device", err)
}

// GetDeviceByTokenHash implements store.Queries.
func (q *queries) GetDeviceByTokenHash(ctx context.Context, accountID string, hash []byte) (store.Device, error) {
	return one("get device", q.r.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices
		WHERE account_id = ? AND token_hash = ?`, accountID, hash), scanDevice)
}

// GetDevice implements store.Queries.
func (q *queries) GetDevice(ctx context.Context, id string) (store.Device, error) {
	return one("get device", q.r.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = ?`, id), scanDevice)
}

// UpdateDevice implements store.Queries.
func (q *queries) UpdateDevice(ctx context.Context, id string, fn func(d *store.Device) error) (store.Device, error) {
	var out store.Device
	err := q.atomic(ctx, func(tx *queries) error {
		d, err := one("update device", tx.w.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = ?`, id), scanDevice)
		if err != nil {
			return err
		}
		if err := fn(&d); err != nil {
			return err
		}
		if d.ID != id {
			return errIDChanged
		}
		out, err = one("update device", tx.w.QueryRowContext(ctx, `UPDATE devices SET
			account_id = ?, token_hash = ?, name = ?, last_ip = ?, created_at = ?, approved_at = ?, last_seen_at = ?
			WHERE id = ? RETURNING `+deviceCols,
			d.AccountID, bv(d.TokenHash), d.Name, d.LastIP, tv(d.CreatedAt), tv(d.ApprovedAt), tv(d.LastSeenAt),
			id), scanDevice)
		return err
	})
	return out, err
}

// ListDevices implements store.Queries.
func (q *queries) ListDevices(ctx context.Context, accountID string) ([]store.Device, error) {
	rows, err := q.r.QueryContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE account_id = ?
		ORDER BY last_seen_at DESC NULLS LAST, created_at DESC NULLS LAST, id`, accountID)
	return collect("list devices", rows, err, scanDevice)
}
