package postgres

import (
	"bytes"
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/moat-dev/moat/internal/store"
)

const sessionCols = `id, token_hash, account_id, device_id, client, ip, user_agent,
	created_at, last_seen_at, expires_at, second_factor_at, revoked_at, sign_in_factor`

func scanSession(row pgx.Row) (store.Session, error) {
	var s store.Session
	err := row.Scan(&s.ID, bs{&s.TokenHash}, &s.AccountID, &s.DeviceID, &s.Client, &s.IP, &s.UserAgent,
		ts{&s.CreatedAt}, ts{&s.LastSeenAt}, ts{&s.ExpiresAt}, ts{&s.SecondFactorAt}, ts{&s.RevokedAt}, &s.SignInFactor)
	return s, err
}

// CreateSession implements store.Queries.
func (q *queries) CreateSession(ctx context.Context, s store.Session) error {
	tag, err := q.db.Exec(ctx, `INSERT INTO sessions (`+sessionCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING`,
		s.ID, bv(s.TokenHash), s.AccountID, s.DeviceID, s.Client, s.IP, s.UserAgent,
		tv(s.CreatedAt), tv(s.LastSeenAt), tv(s.ExpiresAt), tv(s.SecondFactorAt), tv(s.RevokedAt), s.SignInFactor)
	return inserted("create session", tag, err)
}

// GetSessionByTokenHash implements store.Queries: one lookup in the unique
// token_hash index, through a statement pgx has prepared on the connection.
func (q *queries) GetSessionByTokenHash(ctx context.Context, hash []byte) (store.Session, error) {
	return one("get session", q.db.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE token_hash = $1`, hash), scanSession)
}

// TouchSession implements store.Queries.
func (q *queries) TouchSession(ctx context.Context, id string, lastSeen time.Time, ip string) error {
	tag, err := q.db.Exec(ctx, `UPDATE sessions SET last_seen_at = $1, ip = $2 WHERE id = $3`, tv(lastSeen), ip, id)
	return mustAffect("touch session", tag, err)
}

// UpdateSession implements store.Queries.
func (q *queries) UpdateSession(ctx context.Context, id string, fn func(s *store.Session) error) (store.Session, error) {
	var out store.Session
	err := q.atomic(ctx, func(tx *queries) error {
		old, err := one("update session", tx.db.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions
			WHERE id = $1 FOR UPDATE`, id), scanSession)
		if err != nil {
			return err
		}
		s := old
		if err := fn(&s); err != nil {
			return err
		}
		if s.ID != id {
			return errIDChanged
		}
		update := func(db dbtx) (err error) {
			out, err = one("update session", db.QueryRow(ctx, `UPDATE sessions SET
				token_hash = $1, account_id = $2, device_id = $3, client = $4, ip = $5, user_agent = $6,
				created_at = $7, last_seen_at = $8, expires_at = $9, second_factor_at = $10, revoked_at = $11,
				sign_in_factor = $12
				WHERE id = $13 RETURNING `+sessionCols,
				bv(s.TokenHash), s.AccountID, s.DeviceID, s.Client, s.IP, s.UserAgent,
				tv(s.CreatedAt), tv(s.LastSeenAt), tv(s.ExpiresAt), tv(s.SecondFactorAt), tv(s.RevokedAt),
				s.SignInFactor, id), scanSession)
			return err
		}
		if !bytes.Equal(s.TokenHash, old.TokenHash) {
			return tx.guarded(ctx, update)
		}
		return update(tx.db)
	})
	return out, err
}

// ListSessions implements store.Queries.
func (q *queries) ListSessions(ctx context.Context, accountID string, now time.Time) ([]store.Session, error) {
	rows, err := q.db.Query(ctx, `SELECT `+sessionCols+` FROM sessions
		WHERE account_id = $1 AND revoked_at IS NULL AND expires_at > $2
		ORDER BY created_at DESC NULLS LAST, id DESC`, accountID, now.Truncate(time.Microsecond))
	return collect("list sessions", rows, err, scanSession)
}

// RevokeSession implements store.Queries.
func (q *queries) RevokeSession(ctx context.Context, accountID, id string, at time.Time) error {
	tag, err := q.db.Exec(ctx, `UPDATE sessions SET revoked_at = $1
		WHERE id = $2 AND account_id = $3 AND revoked_at IS NULL`, tv(at), id, accountID)
	return mustAffect("revoke session", tag, err)
}

// RevokeSessions implements store.Queries.
func (q *queries) RevokeSessions(ctx context.Context, accountID, exceptID string, at time.Time) (int, error) {
	tag, err := q.db.Exec(ctx, `UPDATE sessions SET revoked_at = $1
		WHERE account_id = $2 AND revoked_at IS NULL AND id <> $3`, tv(at), accountID, exceptID)
	if err != nil {
		return 0, mapErr("revoke sessions", err)
	}
	return int(tag.RowsAffected()), nil
}
