package postgres

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/moat-dev/moat/internal/store"
)

// Account recovery cases (store.RecoveryQueries). UpdateRecoveryCase locks
// the case it reads (SELECT ... FOR UPDATE) until its transaction ends, so
// two staff members approving at once, or a cancellation racing the worker,
// on any node, are serialised: fn always sees the latest committed case.

// recoveryCols lists every column; the document is the tenth.
var recoveryCols = strings.Join(recoveryColumns(true), ", ")

// recoveryListCols reads NULL in place of the document, so that lists never
// load it (and scanRecovery, seeing NULL, leaves Document nil).
var recoveryListCols = strings.Join(recoveryColumns(false), ", ")

func recoveryColumns(document bool) []string {
	doc := "document"
	if !document {
		doc = "NULL::bytea AS document"
	}
	return []string{"id", "reference", "account_id", "state", "via", "status_token_hash", "answers",
		"document_type", "document_size", doc, "ip", "user_agent", "first_approver_id", "first_approved_at",
		"second_approver_id", "second_approved_at", "rejected_by", "rejected_at", "reject_reason",
		"wait_until", "next_notice_at", "cancelled_at", "cancelled_by", "completed_at", "created_at",
		"updated_at"}
}

func scanRecovery(row pgx.Row) (store.RecoveryCase, error) {
	var c store.RecoveryCase
	err := row.Scan(&c.ID, &c.Reference, &c.AccountID, &c.State, &c.Via, bs{&c.StatusTokenHash}, &c.Answers,
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

var recoveryInsert, recoveryUpdate = recoveryStatements()

// recoveryStatements builds the INSERT of every column and the UPDATE that
// sets every column but id ($1..$n-1) for the id in $n.
func recoveryStatements() (insert, update string) {
	cols := recoveryColumns(true)
	var ph, set []string
	for i, c := range cols {
		ph = append(ph, fmt.Sprintf("$%d", i+1))
		if i > 0 {
			set = append(set, fmt.Sprintf("%s = $%d", c, i))
		}
	}
	insert = `INSERT INTO recovery_cases (` + recoveryCols + `) VALUES (` + strings.Join(ph, ", ") + `)
		ON CONFLICT DO NOTHING`
	update = `UPDATE recovery_cases SET ` + strings.Join(set, ", ") +
		fmt.Sprintf(` WHERE id = $%d RETURNING `, len(cols)) + recoveryCols
	return insert, update
}

// CreateRecoveryCase implements store.Queries.
func (q *queries) CreateRecoveryCase(ctx context.Context, c store.RecoveryCase) error {
	tag, err := q.db.Exec(ctx, recoveryInsert, recoveryValues(c)...)
	return inserted("create recovery case", tag, err)
}

// GetRecoveryCase implements store.Queries.
func (q *queries) GetRecoveryCase(ctx context.Context, id string) (store.RecoveryCase, error) {
	return one("get recovery case", q.db.QueryRow(ctx, `SELECT `+recoveryCols+` FROM recovery_cases WHERE id = $1`, id), scanRecovery)
}

// GetRecoveryCaseByStatusToken implements store.Queries.
func (q *queries) GetRecoveryCaseByStatusToken(ctx context.Context, hash []byte) (store.RecoveryCase, error) {
	return one("get recovery case", q.db.QueryRow(ctx, `SELECT `+recoveryCols+` FROM recovery_cases
		WHERE status_token_hash = $1`, hash), scanRecovery)
}

// UpdateRecoveryCase implements store.Queries. A concurrent updater waits
// at FOR UPDATE until this one commits, then reads what it wrote. Changing
// Reference or StatusTokenHash to one that is taken returns
// store.ErrAlreadyExists without aborting a caller's transaction (the
// UPDATE then runs under a savepoint).
func (q *queries) UpdateRecoveryCase(ctx context.Context, id string, fn func(c *store.RecoveryCase) error) (store.RecoveryCase, error) {
	var out store.RecoveryCase
	err := q.atomic(ctx, func(tx *queries) error {
		old, err := one("update recovery case", tx.db.QueryRow(ctx, `SELECT `+recoveryCols+` FROM recovery_cases
			WHERE id = $1 FOR UPDATE`, id), scanRecovery)
		if err != nil {
			return err
		}
		c := old
		if err := fn(&c); err != nil {
			return err
		}
		if c.ID != id {
			return errIDChanged
		}
		update := func(db dbtx) (err error) {
			out, err = one("update recovery case", db.QueryRow(ctx, recoveryUpdate,
				append(recoveryValues(c)[1:], id)...), scanRecovery)
			return err
		}
		if c.Reference != old.Reference || !bytes.Equal(c.StatusTokenHash, old.StatusTokenHash) {
			return tx.guarded(ctx, update)
		}
		return update(tx.db)
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
	var a args
	query := `SELECT ` + recoveryListCols + ` FROM recovery_cases WHERE true`
	if f.AccountID != "" {
		query += ` AND account_id = ` + a.add(f.AccountID)
	}
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, s := range f.States {
			states[i] = string(s)
		}
		query += ` AND state = ANY(` + a.add(states) + `)`
	}
	query += ` ORDER BY created_at DESC NULLS LAST, id DESC LIMIT ` + a.add(limit)
	rows, err := q.db.Query(ctx, query, a...)
	return collect("list recovery cases", rows, err, scanRecovery)
}
