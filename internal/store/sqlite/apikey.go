package sqlite

import (
	"context"
	"errors"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

const apiKeyCols = `id, account_id, name, public_key, secret_sealed, permissions, allowed_ips, expires_at,
	nonce_window, password_hash, query_start, query_end, created_at, updated_at, last_used_at, last_used_ip,
	rotated_at, old_secret_sealed, old_secret_valid_until, deleted_at`

func scanAPIKey(sc scanner) (store.APIKey, error) {
	var k store.APIKey
	err := sc.Scan(&k.ID, &k.AccountID, &k.Name, &k.PublicKey, bs{&k.SecretSealed}, &k.Permissions, &k.AllowedIPs,
		ts{&k.ExpiresAt}, &k.NonceWindow, bs{&k.PasswordHash}, ts{&k.QueryStart}, ts{&k.QueryEnd},
		ts{&k.CreatedAt}, ts{&k.UpdatedAt}, ts{&k.LastUsedAt}, &k.LastUsedIP,
		ts{&k.RotatedAt}, bs{&k.OldSecretSealed}, ts{&k.OldSecretValidUntil}, ts{&k.DeletedAt})
	return k, err
}

// CreateAPIKey implements store.Queries.
func (q *queries) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	_, err := q.w.ExecContext(ctx, `INSERT INTO api_keys (`+apiKeyCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.AccountID, k.Name, k.PublicKey, bv(k.SecretSealed), k.Permissions, k.AllowedIPs, tv(k.ExpiresAt),
		k.NonceWindow, bv(k.PasswordHash), tv(k.QueryStart), tv(k.QueryEnd),
		tv(k.CreatedAt), tv(k.UpdatedAt), tv(k.LastUsedAt), k.LastUsedIP,
		tv(k.RotatedAt), bv(k.OldSecretSealed), tv(k.OldSecretValidUntil), tv(k.DeletedAt))
	return mapErr("create API key", err)
}

// GetAPIKey implements store.Queries.
func (q *queries) GetAPIKey(ctx context.Context, id string) (store.APIKey, error) {
	return one("get API key", q.r.QueryRowContext(ctx, `SELECT `+apiKeyCols+` FROM api_keys WHERE id = ?`, id), scanAPIKey)
}

// GetAPIKeyByPublicKey implements store.Queries: one lookup in the unique
// public_key index through a prepared statement on the reader pool.
func (q *queries) GetAPIKeyByPublicKey(ctx context.Context, publicKey string) (store.APIKey, error) {
	return one("get API key", q.r.QueryRowContext(ctx, `SELECT `+apiKeyCols+` FROM api_keys WHERE public_key = ?`, publicKey), scanAPIKey)
}

// ListAPIKeys implements store.Queries.
func (q *queries) ListAPIKeys(ctx context.Context, accountID string) ([]store.APIKey, error) {
	rows, err := q.r.QueryContext(ctx, `SELECT `+apiKeyCols+` FROM api_keys
		WHERE account_id = ? AND deleted_at IS NULL
		ORDER BY created_at DESC NULLS LAST, id DESC`, accountID)
	return collect("list API keys", rows, err, scanAPIKey)
}

// UpdateAPIKey implements store.Queries.
func (q *queries) UpdateAPIKey(ctx context.Context, id string, fn func(k *store.APIKey) error) (store.APIKey, error) {
	var out store.APIKey
	err := q.atomic(ctx, func(tx *queries) error {
		k, err := one("update API key", tx.w.QueryRowContext(ctx, `SELECT `+apiKeyCols+` FROM api_keys WHERE id = ?`, id), scanAPIKey)
		if err != nil {
			return err
		}
		if err := fn(&k); err != nil {
			return err
		}
		if k.ID != id {
			return errIDChanged
		}
		out, err = one("update API key", tx.w.QueryRowContext(ctx, `UPDATE api_keys SET
			account_id = ?, name = ?, public_key = ?, secret_sealed = ?, permissions = ?, allowed_ips = ?,
			expires_at = ?, nonce_window = ?, password_hash = ?, query_start = ?, query_end = ?,
			created_at = ?, updated_at = ?, last_used_at = ?, last_used_ip = ?,
			rotated_at = ?, old_secret_sealed = ?, old_secret_valid_until = ?, deleted_at = ?
			WHERE id = ? RETURNING `+apiKeyCols,
			k.AccountID, k.Name, k.PublicKey, bv(k.SecretSealed), k.Permissions, k.AllowedIPs,
			tv(k.ExpiresAt), k.NonceWindow, bv(k.PasswordHash), tv(k.QueryStart), tv(k.QueryEnd),
			tv(k.CreatedAt), tv(k.UpdatedAt), tv(k.LastUsedAt), k.LastUsedIP,
			tv(k.RotatedAt), bv(k.OldSecretSealed), tv(k.OldSecretValidUntil), tv(k.DeletedAt),
			id), scanAPIKey)
		return err
	})
	return out, err
}

// TouchAPIKey implements store.Queries. The row always matches (so an
// unknown ID is told apart from a stale report); the CASE keeps the newer
// of the stored and the reported use.
func (q *queries) TouchAPIKey(ctx context.Context, id string, at time.Time, ip string) error {
	if at.IsZero() {
		// A zero time is NULL and never newer than anything.
		_, err := q.GetAPIKey(ctx, id)
		return err
	}
	res, err := q.w.ExecContext(ctx, `UPDATE api_keys SET
		last_used_ip = CASE WHEN last_used_at IS NULL OR last_used_at < ?1 THEN ?2 ELSE last_used_ip END,
		last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < ?1 THEN ?1 ELSE last_used_at END
		WHERE id = ?3`, at.UnixMicro(), ip, id)
	return mustAffect("touch API key", res, err)
}

// GetSandboxBook implements store.Queries.
func (q *queries) GetSandboxBook(ctx context.Context, accountID string) ([]byte, error) {
	return one("get sandbox book", q.r.QueryRowContext(ctx, `SELECT data FROM sandbox_books WHERE account_id = ?`, accountID),
		func(sc scanner) ([]byte, error) {
			var b []byte
			err := sc.Scan(&b)
			if err == nil && b == nil {
				b = []byte{}
			}
			return b, err
		})
}

// UpdateSandboxBook implements store.Queries. The transaction holds
// SQLite's only writer, so reading the book and writing it back cannot
// interleave with another update.
func (q *queries) UpdateSandboxBook(ctx context.Context, accountID string, fn func(old []byte) ([]byte, error)) error {
	return q.atomic(ctx, func(tx *queries) error {
		var old []byte
		err := tx.w.QueryRowContext(ctx, `SELECT data FROM sandbox_books WHERE account_id = ?`, accountID).Scan(&old)
		switch {
		case err == nil:
			if old == nil {
				old = []byte{}
			}
		case errors.Is(mapErr("update sandbox book", err), store.ErrNotFound):
			old = nil
		default:
			return mapErr("update sandbox book", err)
		}
		data, err := fn(old)
		if err != nil {
			return err
		}
		if data == nil {
			data = []byte{}
		}
		_, err = tx.w.ExecContext(ctx, `INSERT INTO sandbox_books (account_id, data, updated_at)
			VALUES (?, ?, CAST(unixepoch('subsec') * 1000000 AS INTEGER))
			ON CONFLICT (account_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`,
			accountID, data)
		return mapErr("update sandbox book", err)
	})
}
