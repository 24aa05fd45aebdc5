package sqlite

import (
	"context"
	"strings"

	"github.com/moat-dev/moat/internal/store"
)

const accountCols = `id, email, password_hash, role, email_confirmed_at, locked_at, lock_reason,
	anti_phishing_code, password_changed_at, security_hold_until, created_at, updated_at`

func scanAccount(sc scanner) (store.Account, error) {
	var a store.Account
	err := sc.Scan(&a.ID, &a.Email, &a.PasswordHash, &a.Role, ts{&a.EmailConfirmedAt}, ts{&a.LockedAt},
		&a.LockReason, &a.AntiPhishingCode, ts{&a.PasswordChangedAt}, ts{&a.SecurityHoldUntil},
		ts{&a.CreatedAt}, ts{&a.UpdatedAt})
	return a, err
}

// CreateAccount implements store.Queries.
func (q *queries) CreateAccount(ctx context.Context, a store.Account) error {
	_, err := q.w.ExecContext(ctx, `INSERT INTO accounts (`+accountCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.Email, a.PasswordHash, string(a.Role), tv(a.EmailConfirmedAt), tv(a.LockedAt), a.LockReason,
		a.AntiPhishingCode, tv(a.PasswordChangedAt), tv(a.SecurityHoldUntil), tv(a.CreatedAt), tv(a.UpdatedAt))
	return mapErr("create account", err)
}

// GetAccount implements store.Queries.
func (q *queries) GetAccount(ctx context.Context, id string) (store.Account, error) {
	return one("get account", q.r.QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE id = ?`, id), scanAccount)
}

// GetAccountByEmail implements store.Queries.
func (q *queries) GetAccountByEmail(ctx context.Context, email string) (store.Account, error) {
	return one("get account by e-mail", q.r.QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE email = ?`, email), scanAccount)
}

// UpdateAccount implements store.Queries.
func (q *queries) UpdateAccount(ctx context.Context, id string, fn func(a *store.Account) error) (store.Account, error) {
	var out store.Account
	err := q.atomic(ctx, func(tx *queries) error {
		a, err := one("update account", tx.w.QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE id = ?`, id), scanAccount)
		if err != nil {
			return err
		}
		if err := fn(&a); err != nil {
			return err
		}
		if a.ID != id {
			return errIDChanged
		}
		out, err = one("update account", tx.w.QueryRowContext(ctx, `UPDATE accounts SET
			email = ?, password_hash = ?, role = ?, email_confirmed_at = ?, locked_at = ?, lock_reason = ?,
			anti_phishing_code = ?, password_changed_at = ?, security_hold_until = ?, created_at = ?, updated_at = ?
			WHERE id = ? RETURNING `+accountCols,
			a.Email, a.PasswordHash, string(a.Role), tv(a.EmailConfirmedAt), tv(a.LockedAt), a.LockReason,
			a.AntiPhishingCode, tv(a.PasswordChangedAt), tv(a.SecurityHoldUntil), tv(a.CreatedAt), tv(a.UpdatedAt),
			id), scanAccount)
		return err
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
	query := `SELECT ` + accountCols + ` FROM accounts WHERE true`
	var args []any
	if opt.EmailContains != "" {
		query += ` AND instr(lower(email), ?) > 0`
		args = append(args, strings.ToLower(opt.EmailContains))
	}
	if opt.AfterEmail != "" {
		query += ` AND email > ?`
		args = append(args, opt.AfterEmail)
	}
	query += ` ORDER BY email LIMIT ?`
	args = append(args, limit)
	rows, err := q.r.QueryContext(ctx, query, args...)
	return collect("list accounts", rows, err, scanAccount)
}
