package sqlite

import (
	"context"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

const sessionCols = `id, token_hash, account_id, device_id, client, ip, user_agent,
	created_at, last_seen_at, expires_at, second_factor_at, revoked_at, sign_in_factor`

func scanSession(sc scanner) (store.Session, error) {
	var s store.Session
	err := sc.Scan(&s.ID, bs{&s.TokenHash}, &s.AccountID, &s.DeviceID, &s.Client, &s.IP, &s.UserAgent,
		ts{&s.CreatedAt}, ts{&s.LastSeenAt}, ts{&s.ExpiresAt}, ts{&s.SecondFactorAt}, ts{&s.RevokedAt}, &s.SignInFactor)
	return s, err
}

// CreateSession implements store.Queries.
func (q *queries) CreateSession(ctx context.Context, s store.Session) error {
	_, err := q.w.ExecContext(ctx, `INSERT INTO sessions (`+sessionCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.ID, bv(s.TokenHash), s.AccountID, s.DeviceID, s.Client, s.IP, s.UserAgent,
		tv(s.CreatedAt), tv(s.LastSeenAt), tv(s.ExpiresAt), tv(s.SecondFactorAt), tv(s.RevokedAt), s.SignInFactor)
	return mapErr("create session", err)
}

// GetSessionByTokenHash implements store.Queries: one lookup in the unique
// token_hash index, through a prepared statement on the reader pool.
func (q *queries) GetSessionByTokenHash(ctx context.Context, hash []byte) (store.Session, error) {
	return one("get session", q.r.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM sessions WHERE token_hash = ?`, hash), scanSession)
}

// TouchSession implements store.Queries.
func (q *queries) TouchSession(ctx context.Context, id string, lastSeen time.Time, ip string) error {
	res, err := q.w.ExecContext(ctx, `UPDATE sessions SET last_seen_at = ?, ip = ? WHERE id = ?`, tv(lastSeen), ip, id)
	return mustAffect("touch session", res, err)
}

// UpdateSession implements store.Queries.
func (q *queries) UpdateSession(ctx context.Context, id string, fn func(s *store.Session) error) (store.Session, error) {
	var out store.Session
	err := q.atomic(ctx, func(tx *queries) error {
		s, err := one("update session", tx.w.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = ?`, id), scanSession)
		if err != nil {
			return err
		}
		if err := fn(&s); err != nil {
			return err
		}
		if s.ID != id {
			return errIDChanged
		}
		out, err = one("update session", tx.w.QueryRowContext(ctx, `UPDATE sessions SET
			token_hash = ?, account_id = ?, device_id = ?, client = ?, ip = ?, user_agent = ?,
			created_at = ?, last_seen_at = ?, expires_at = ?, second_factor_at = ?, revoked_at = ?,
			sign_in_factor = ?
			WHERE id = ? RETURNING `+sessionCols,
			bv(s.TokenHash), s.AccountID, s.DeviceID, s.Client, s.IP, s.UserAgent,
			tv(s.CreatedAt), tv(s.LastSeenAt), tv(s.ExpiresAt), tv(s.SecondFactorAt), tv(s.RevokedAt),
			s.SignInFactor, id), scanSession)
		return err
	})
	return out, err
}

// ListSessions implements store.Queries.
func (q *queries) ListSessions(ctx context.Context, accountID string, now time.Time) ([]store.Session, error) {
	rows, err := q.r.QueryContext(ctx, `SELECT `+sessionCols+` FROM sessions
		WHERE account_id = ? AND revoked_at IS NULL AND expires_at > ?
		ORDER BY created_at DESC NULLS LAST, id DESC`, accountID, now.UnixMicro())
	return collect("list sessions", rows, err, scanSession)
}

// RevokeSession implements store.Queries.
func (q *queries) RevokeSession(ctx context.Context, accountID, id string, at time.Time) error {
	res, err := q.w.ExecContext(ctx, `UPDATE sessions SET revoked_at = ?
		WHERE id = ? AND account_id = ? AND revoked_at IS NULL`, tv(at), id, accountID)
	return mustAffect("revoke session", res, err)
}

// RevokeSessions implements store.Queries.
func (q *queries) RevokeSessions(ctx context.Context, accountID, exceptID string, at time.Time) (int, error) {
	res, err := q.w.ExecContext(ctx, `UPDATE sessions SET revoked_at = ?
		WHERE account_id = ? AND revoked_at IS NULL AND id <> ?`, tv(at), accountID, exceptID)
	if err != nil {
		return 0, mapErr("revoke sessions", err)
	}
	n, err := res.RowsAffected()
	return int(n), mapErr("revoke sessions", err)
}
