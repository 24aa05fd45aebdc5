package postgres

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/moat-dev/moat/internal/store"
)

const accountCols = `id, email, password_hash, role, email_confirmed_at, locked_at, lock_reason,
	anti_phishing_code, password_changed_at, security_hold_until, created_at, updated_at`

func scanAccount(row pgx.Row) (store.Account, error) {
	var a store.Account
	err := row.Scan(&a.ID, &a.Email, &a.PasswordHash, &a.Role, ts{&a.EmailConfirmedAt}, ts{&a.LockedAt},
		&a.LockReason, &a.AntiPhishingCode, ts{&a.PasswordChangedAt}, ts{&a.SecurityHoldUntil},
		ts{&a.CreatedAt}, ts{&a.UpdatedAt})
	return a, err
}

// CreateAccount implements store.Queries.
func (q *queries) CreateAccount(ctx context.Context, a store.Account) error {
	tag, err := q.db.Exec(ctx, `INSERT INTO accounts (`+accountCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING`,
		a.ID, a.Email, a.PasswordHash, string(a.Role), tv(a.EmailConfirmedAt), tv(a.LockedAt), a.LockReason,
		a.AntiPhishingCode, tv(a.PasswordChangedAt), tv(a.SecurityHoldUntil), tv(a.CreatedAt), tv(a.UpdatedAt))
	return inserted("create account", tag, err)
}

// GetAccount implements store.Queries.
func (q *queries) GetAccount(ctx context.Context, id string) (store.Account, error) {
	return one("get account", q.db.QueryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE id = $1`, id), scanAccount)
}

// GetAccountByEmail implements store.Queries.
func (q *queries) GetAccountByEmail(ctx context.Context, email string) (store.Account, error) {
	return one("get account by e-mail", q.db.QueryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE email = $1`, email), scanAccount)
}

// UpdateAccount implements store.Queries.
func (q *queries) UpdateAccount(ctx context.Context, id string, fn func(a *store.Account) error) (store.Account, error) {
	var out store.Account
	err := q.atomic(ctx, func(tx *queries) error {
		old, err := one("update account", tx.db.QueryRow(ctx, `SELECT `+accountCols+` FROM accounts
			WHERE id = $1 FOR UPDATE`, id), scanAccount)
		if err != nil {
			return err
		}
		a := old
		if err := fn(&a); err != nil {
			return err
		}
		if a.ID != id {
			return errIDChanged
		}
		update := func(db dbtx) (err error) {
			out, err = one("update account", db.QueryRow(ctx, `UPDATE accounts SET
				email = $1, password_hash = $2, role = $3, email_confirmed_at = $4, locked_at = $5, lock_reason = $6,
				anti_phishing_code = $7, password_changed_at = $8, security_hold_until = $9, created_at = $10,
				updated_at = $11
				WHERE id = $12 RETURNING `+accountCols,
				a.Email, a.PasswordHash, string(a.Role), tv(a.EmailConfirmedAt), tv(a.LockedAt), a.LockReason,
				a.AntiPhishingCode, tv(a.PasswordChangedAt), tv(a.SecurityHoldUntil), tv(a.CreatedAt), tv(a.UpdatedAt),
				id), scanAccount)
			return err
		}
		if a.Email != old.Email {
			return tx.guarded(ctx, update)
		}
		return update(tx.db)
	})
	return out, err
}

// ListAccounts implements store.Queries.
func (q *queries) ListAccounts(ctx context.Context, opt store.ListAccountsOptions) ([]store.Account, error) {
	limit := opt.Limit
	if limit <= 0 {
		limit = 100
	}
	// Built from fixed pieces so each variant is one cached statement and a
	// page after AfterEmail seeks the e-mail index instead of scanning it.
	var a args
	query := `SELECT ` + accountCols + ` FROM accounts WHERE true`
	if opt.EmailContains != "" {
		query += ` AND strpos(lower(email), ` + a.add(strings.ToLower(opt.EmailContains)) + `) > 0`
	}
	if opt.AfterEmail != "" {
		query += ` AND email > ` + a.add(opt.AfterEmail)
	}
	query += ` ORDER BY email LIMIT ` + a.add(limit)
	rows, err := q.db.Query(ctx, query, a...)
	return collect("list accounts", rows, err, scanAccount)
}
