package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/moat-dev/moat/internal/store"
)

// Account recovery cases (store.RecoveryQueries). UpdateRecoveryCase reads
// and writes in one write transaction (BEGIN IMMEDIATE on the one writer
// connection), so two staff members approving at once, or a cancellation
// racing the worker, are serialised: fn always sees the latest committed
// case.

// recoveryCols lists every column; the document is the tenth.
var recoveryCols = strings.Join(recoveryColumns(true), ", ")

// recoveryListCols reads NULL in place of the document, so that lists never
// load it (and scanRecovery, seeing NULL, leaves Document nil).
var recoveryListCols = strings.Join(recoveryColumns(false), ", ")

func recoveryColumns(document bool) []string {
	doc := "document"
	if !document {
		doc = "NULL AS document"
	}
	return []string{"id", "reference", "account_id", "state", "via", "status_token_hash", "answers",
		"document_type", "document_size", doc, "ip", "user_agent", "first_approver_id", "first_approved_at",
		"second_approver_id", "second_approved_at", "rejected_by", "rejected_at", "reject_reason",
		"wait_until", "next_notice_at", "cancelled_at", "cancelled_by", "completed_at", "created_at",
		"updated_at"}
}

func scanRecovery(sc scanner) (store.RecoveryCase, error) {
	var c store.RecoveryCase
	err := sc.Scan(&c.ID, &c.Reference, &c.AccountID, &c.State, &c.Via, bs{&c.StatusTokenHash}, &c.Answers,
		&c.DocumentType, &c.DocumentSize, bs{&c.Document}, &c.IP, &c.UserAgent, &c.FirstApproverID,
		ts{&c.FirstApprovedAt}, &c.SecondApproverID, ts{&c.SecondApprovedAt}, &c.RejectedBy,
		ts{&c.RejectedAt}, &c.RejectReason, ts{&c.WaitUntil}, ts{&c.NextNoticeAt}, ts{&c.CancelledAt},
		&c.CancelledBy, ts{&c.CompletedAt}, ts{&c.CreatedAt}, ts{&c.UpdatedAt})
	return c, err
}

// recoveryValues returns c's column values in recoveryColumns order, id
// first.
func recoveryValues(c store.RecoveryCase) []any {
	return []any{c.ID, c.Reference, c.AccountID, string(c.State), c.Via, bv(c.StatusTokenHash), c.Answers,
		c.DocumentType, c.DocumentSize, bv(c.Document), c.IP, c.UserAgent, c.FirstApproverID,
		tv(c.FirstApprovedAt), c.SecondApproverID, tv(c.SecondApprovedAt), c.RejectedBy,
		tv(c.RejectedAt), c.RejectReason, tv(c.WaitUntil), tv(c.NextNoticeAt), tv(c.CancelledAt),
		c.CancelledBy, tv(c.CompletedAt), tv(c.CreatedAt), tv(c.UpdatedAt)}
}

var (
	recoveryInsert = `INSERT INTO recovery_cases (` + recoveryCols + `) VALUES (?` +
		strings.Repeat(", ?", len(recoveryColumns(true))-1) + `)`
	// recoveryUpdate sets every column but id, then takes id for WHERE.
	recoveryUpdate = `UPDATE recovery_cases SET ` +
		strings.Join(recoveryColumns(true)[1:], " = ?, ") + ` = ? WHERE id = ? RETURNING ` + recoveryCols
)

// CreateRecoveryCase implements store.Queries.
func (q *queries) CreateRecoveryCase(ctx context.Context, c store.RecoveryCase) error {
	_, err := q.w.ExecContext(ctx, recoveryInsert, recoveryValues(c)...)
	return mapErr("create recovery case", err)
}

// GetRecoveryCase implements store.Queries.
func (q *queries) GetRecoveryCase(ctx context.Context, id string) (store.RecoveryCase, error) {
	return one("get recovery case", q.r.QueryRowContext(ctx, `SELECT `+recoveryCols+` FROM recovery_cases WHERE id = ?`, id), scanRecovery)
}

// GetRecoveryCaseByStatusToken implements store.Queries.
func (q *queries) GetRecoveryCaseByStatusToken(ctx context.Context, hash []byte) (store.RecoveryCase, error) {
	return one("get recovery case", q.r.QueryRowContext(ctx, `SELECT `+recoveryCols+` FROM recovery_cases
		WHERE status_token_hash = ?`, hash), scanRecovery)
}

// UpdateRecoveryCase implements store.Queries. Changing Reference or
// StatusTokenHash to one that is taken returns store.ErrAlreadyExists
// (SQLite undoes just the failed statement, so a caller's transaction stays
// usable).
func (q *queries) UpdateRecoveryCase(ctx context.Context, id string, fn func(c *store.RecoveryCase) error) (store.RecoveryCase, error) {
	var out store.RecoveryCase
	err := q.atomic(ctx, func(tx *queries) error {
		c, err := one("update recovery case", tx.w.QueryRowContext(ctx, `SELECT `+recoveryCols+` FROM recovery_cases WHERE id = ?`, id), scanRecovery)
		if err != nil {
			return err
		}
		if err := fn(&c); err != nil {
			return err
		}
		if c.ID != id {
			return errIDChanged
		}
		args := append(recoveryValues(c)[1:], id)
		out, err = one("update recovery case", tx.w.QueryRowContext(ctx, recoveryUpdate, args...), scanRecovery)
		return err
	})
	return out, err
}

// ListRecoveryCases implements store.Queries.
func (q *queries) ListRecoveryCases(ctx context.Context, f store.RecoveryCaseFilter) ([]store.RecoveryCase, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	// Assembled from fixed pieces (four statement texts, each cached) so
	// that the account and state filters can use their indexes.
	query := `SELECT ` + recoveryListCols + ` FROM recovery_cases WHERE true`
	var args []any
	if f.AccountID != "" {
		query += ` AND account_id = ?`
		args = append(args, f.AccountID)
	}
	if len(f.States) > 0 {
		states, err := json.Marshal(f.States)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list recovery cases: %w", err)
		}
		query += ` AND state IN (SELECT value FROM json_each(?))`
		args = append(args, string(states))
	}
	query += ` ORDER BY created_at DESC NULLS LAST, id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := q.r.QueryContext(ctx, query, args...)
	return collect("list recovery cases", rows, err, scanRecovery)
}
