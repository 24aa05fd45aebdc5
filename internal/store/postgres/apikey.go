package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/moat-dev/moat/internal/store"
)

const apiKeyCols = `id, account_id, name, public_key, secret_sealed, permissions, allowed_ips, expires_at,
	nonce_window, password_hash, query_start, query_end, created_at, updated_at, last_used_at, last_used_ip,
	rotated_at, old_secret_sealed, old_secret_valid_until, deleted_at`

func scanAPIKey(row pgx.Row) (store.APIKey, error) {
	var k store.APIKey
	err := row.Scan(&k.ID, &k.AccountID, &k.Name, &k.PublicKey, bs{&k.SecretSealed}, &k.Permissions, &k.AllowedIPs,
		ts{&k.ExpiresAt}, &k.NonceWindow, bs{&k.PasswordHash}, ts{&k.QueryStart}, ts{&k.QueryEnd},
		ts{&k.CreatedAt}, ts{&k.UpdatedAt}, ts{&k.LastUsedAt}, &k.LastUsedIP,
		ts{&k.RotatedAt}, bs{&k.OldSecretSealed}, ts{&k.OldSecretValidUntil}, ts{&k.DeletedAt})
	return k, err
}

// CreateAPIKey implements store.Queries.
func (q *queries) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	tag, err := q.db.Exec(ctx, `INSERT INTO api_keys (`+apiKeyCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
		ON CONFLICT DO NOTHING`,
		k.ID, k.AccountID, k.Name, k.PublicKey, bv(k.SecretSealed), k.Permissions, k.AllowedIPs, tv(k.ExpiresAt),
		k.NonceWindow, bv(k.PasswordHash), tv(k.QueryStart), tv(k.QueryEnd),
		tv(k.CreatedAt), tv(k.UpdatedAt), tv(k.LastUsedAt), k.LastUsedIP,
		tv(k.RotatedAt), bv(k.OldSecretSealed), tv(k.OldSecretValidUntil), tv(k.DeletedAt))
	return inserted("create API key", tag, err)
}

// GetAPIKey implements store.Queries.
func (q *queries) GetAPIKey(ctx context.Context, id string) (store.APIKey, error) {
	return one("get API key", q.db.QueryRow(ctx, `SELECT `+apiKeyCols+` FROM api_keys WHERE id = $1`, id), scanAPIKey)
}

// GetAPIKeyByPublicKey implements store.Queries: one lookup in the unique
// public_key index, through a statement pgx has prepared on the connection.
func (q *queries) GetAPIKeyByPublicKey(ctx context.Context, publicKey string) (store.APIKey, error) {
	return one("get API key", q.db.QueryRow(ctx, `SELECT `+apiKeyCols+` FROM api_keys WHERE public_key = $1`, publicKey), scanAPIKey)
}

// ListAPIKeys implements store.Queries.
func (q *queries) ListAPIKeys(ctx context.Context, accountID string) ([]store.APIKey, error) {
	rows, err := q.db.Query(ctx, `SELECT `+apiKeyCols+` FROM api_keys
		WHERE account_id = $1 AND deleted_at IS NULL
		ORDER BY created_at DESC NULLS LAST, id DESC`, accountID)
	return collect("list API keys", rows, err, scanAPIKey)
}

// UpdateAPIKey implements store.Queries.
func (q *queries) UpdateAPIKey(ctx context.Context, id string, fn func(k *store.APIKey) error) (store.APIKey, error) {
	var out store.APIKey
	err := q.atomic(ctx, func(tx *queries) error {
		old, err := one("update API key", tx.db.QueryRow(ctx, `SELECT `+apiKeyCols+` FROM api_keys
			WHERE id = $1 FOR UPDATE`, id), scanAPIKey)
		if err != nil {
			return err
		}
		k := old
		if err := fn(&k); err != nil {
			return err
		}
		if k.ID != id {
			return errIDChanged
		}
		update := func(db dbtx) (err error) {
			out, err = one("update API key", db.QueryRow(ctx, `UPDATE api_keys SET
				account_id = $1, name = $2, public_key = $3, secret_sealed = $4, permissions = $5, allowed_ips = $6,
				expires_at = $7, nonce_window = $8, password_hash = $9, query_start = $10, query_end = $11,
				created_at = $12, updated_at = $13, last_used_at = $14, last_used_ip = $15,
				rotated_at = $16, old_secret_sealed = $17, old_secret_valid_until = $18, deleted_at = $19
				WHERE id = $20 RETURNING `+apiKeyCols,
				k.AccountID, k.Name, k.PublicKey, bv(k.SecretSealed), k.Permissions, k.AllowedIPs,
				tv(k.ExpiresAt), k.NonceWindow, bv(k.PasswordHash), tv(k.QueryStart), tv(k.QueryEnd),
				tv(k.CreatedAt), tv(k.UpdatedAt), tv(k.LastUsedAt), k.LastUsedIP,
				tv(k.RotatedAt), bv(k.OldSecretSealed), tv(k.OldSecretValidUntil), tv(k.DeletedAt),
				id), scanAPIKey)
			return err
		}
		if k.PublicKey != old.PublicKey {
			return tx.guarded(ctx, update)
		}
		return update(tx.db)
	})
	return out, err
}

// TouchAPIKey implements store.Queries. The row always matches (so an
// unknown ID is told apart from a stale report); the CASE keeps the newer
// of the stored and the reported use, and the row lock orders concurrent
// reports.
func (q *queries) TouchAPIKey(ctx context.Context, id string, at time.Time, ip string) error {
	if at.IsZero() {
		// A zero time is NULL and never newer than anything.
		_, err := q.GetAPIKey(ctx, id)
		return err
	}
	tag, err := q.db.Exec(ctx, `UPDATE api_keys SET
		last_used_ip = CASE WHEN last_used_at IS NULL OR last_used_at < $1 THEN $2 ELSE last_used_ip END,
		last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $1 THEN $1 ELSE last_used_at END
		WHERE id = $3`, at.Truncate(time.Microsecond), ip, id)
	return mustAffect("touch API key", tag, err)
}

// GetSandboxBook implements store.Queries.
func (q *queries) GetSandboxBook(ctx context.Context, accountID string) ([]byte, error) {
	return one("get sandbox book", q.db.QueryRow(ctx, `SELECT data FROM sandbox_books WHERE account_id = $1`, accountID),
		func(row pgx.Row) ([]byte, error) {
			var b []byte
			err := row.Scan(&b)
			if err == nil && b == nil {
				b = []byte{}
			}
			return b, err
		})
}

// maxBookRaces bounds how often UpdateSandboxBook retries after losing the
// race to create a book (one loss is already rare: the row then exists).
const maxBookRaces = 5

// UpdateSandboxBook implements store.Queries. An existing book is locked
// with FOR UPDATE. A missing one cannot be locked, so the first write is an
// INSERT that yields to a concurrent creator (ON CONFLICT DO NOTHING waits
// for it to commit); then the book exists and the update starts over with
// it locked, so no update is lost.
func (q *queries) UpdateSandboxBook(ctx context.Context, accountID string, fn func(old []byte) ([]byte, error)) error {
	return q.atomic(ctx, func(tx *queries) error {
		for range maxBookRaces {
			var old []byte
			err := tx.db.QueryRow(ctx, `SELECT data FROM sandbox_books WHERE account_id = $1 FOR UPDATE`, accountID).Scan(&old)
			exists := err == nil
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return mapErr("update sandbox book", err)
			}
			if exists && old == nil {
				old = []byte{}
			}
			data, err := fn(old)
			if err != nil {
				return err
			}
			if data == nil {
				data = []byte{}
			}
			if exists {
				_, err := tx.db.Exec(ctx, `UPDATE sandbox_books SET data = $1, updated_at = now() WHERE account_id = $2`, data, accountID)
				return mapErr("update sandbox book", err)
			}
			tag, err := tx.db.Exec(ctx, `INSERT INTO sandbox_books (account_id, data, updated_at) VALUES ($1, $2, now())
				ON CONFLICT DO NOTHING`, accountID, data)
			if err != nil {
				return mapErr("update sandbox book", err)
			}
			if tag.RowsAffected() == 1 {
				return nil
			}
		}
		return fmt.Errorf("postgres: update sandbox book: lost the race to create it %d times", maxBookRaces)
	})
}
