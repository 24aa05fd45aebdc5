package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/moat-dev/moat/internal/store"
)

const tokenCols = `hash, kind, account_id, subject, created_at, expires_at, used_at`

func scanToken(row pgx.Row) (store.Token, error) {
	var t store.Token
	err := row.Scan(bs{&t.Hash}, &t.Kind, &t.AccountID, &t.Subject, ts{&t.CreatedAt}, ts{&t.ExpiresAt}, ts{&t.UsedAt})
	return t, err
}

// CreateToken implements store.Queries.
func (q *queries) CreateToken(ctx context.Context, t store.Token) error {
	tag, err := q.db.Exec(ctx, `INSERT INTO tokens (`+tokenCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT DO NOTHING`,
		bv(t.Hash), string(t.Kind), t.AccountID, t.Subject, tv(t.CreatedAt), tv(t.ExpiresAt), tv(t.UsedAt))
	return inserted("create token", tag, err)
}

// ConsumeToken implements store.Queries. The conditional UPDATE is the whole
// decision (a concurrent consumer waits for the row lock, then finds
// used_at set), so exactly one caller wins; the follow-up read only
// explains to the others why they lost.
func (q *queries) ConsumeToken(ctx context.Context, kind store.TokenKind, hash []byte, now time.Time) (store.Token, error) {
	t, err := one("consume token", q.db.QueryRow(ctx, `UPDATE tokens SET used_at = $1
		WHERE hash = $2 AND kind = $3 AND used_at IS NULL AND expires_at > $1
		RETURNING `+tokenCols,
		now.Truncate(time.Microsecond), hash, string(kind)), scanToken)
	if !errors.Is(err, store.ErrNotFound) {
		return t, err
	}
	t, err = one("consume token", q.db.QueryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = $1 AND kind = $2`,
		hash, string(kind)), scanToken)
	switch {
	case err != nil:
		return store.Token{}, err
	case !t.UsedAt.IsZero():
		return store.Token{}, store.ErrTokenUsed
	default:
		return store.Token{}, store.ErrTokenExpired
	}
}

// GetToken implements store.Queries: a plain read, used or expired alike.
func (q *queries) GetToken(ctx context.Context, kind store.TokenKind, hash []byte) (store.Token, error) {
	return one("get token", q.db.QueryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = $1 AND kind = $2`,
		hash, string(kind)), scanToken)
}

// DeleteTokens implements store.Queries.
func (q *queries) DeleteTokens(ctx context.Context, accountID string, kind store.TokenKind) error {
	_, err := q.db.Exec(ctx, `DELETE FROM tokens WHERE account_id = $1 AND kind = $2 AND used_at IS NULL`,
		accountID, string(kind))
	return mapErr("delete tokens", err)
}
