package sqlite

import (
	"context"
	"errors"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

const tokenCols = `hash, kind, account_id, subject, created_at, expires_at, used_at`

func scanToken(sc scanner) (store.Token, error) {
	var t store.Token
	err := sc.Scan(bs{&t.Hash}, &t.Kind, &t.AccountID, &t.Subject, ts{&t.CreatedAt}, ts{&t.ExpiresAt}, ts{&t.UsedAt})
	return t, err
}

// CreateToken implements store.Queries.
func (q *queries) CreateToken(ctx context.Context, t store.Token) error {
	_, err := q.w.ExecContext(ctx, `INSERT INTO tokens (`+tokenCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		bv(t.Hash), string(t.Kind), t.AccountID, t.Subject, tv(t.CreatedAt), tv(t.ExpiresAt), tv(t.UsedAt))
	return mapErr("create token", err)
}

// ConsumeToken implements store.Queries. The conditional UPDATE is the whole
// decision, so of concurrent callers exactly one changes the row; the
// follow-up read only explains to the others why they lost.
func (q *queries) ConsumeToken(ctx context.Context, kind store.TokenKind, hash []byte, now time.Time) (store.Token, error) {
	t, err := one("consume token", q.w.QueryRowContext(ctx, `UPDATE tokens SET used_at = ?
		WHERE hash = ? AND kind = ? AND used_at IS NULL AND expires_at > ?
		RETURNING `+tokenCols,
		now.UnixMicro(), hash, string(kind), now.UnixMicro()), scanToken)
	if !errors.Is(err, store.ErrNotFound) {
		return t, err
	}
	t, err = one("consume token", q.w.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = ? AND kind = ?`,
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
	return one("get token", q.r.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = ? AND kind = ?`,
		hash, string(kind)), scanToken)
}

// DeleteTokens implements store.Queries.
func (q *queries) DeleteTokens(ctx context.Context, accountID string, kind store.TokenKind) error {
	_, err := q.w.ExecContext(ctx, `DELETE FROM tokens WHERE account_id = ? AND kind = ? AND used_at IS NULL`,
		accountID, string(kind))
	return mapErr("delete tokens", err)
}
