package postgres

// TEMPORARY: replaced by recovery.go (the store helper deletes this file).

import (
	"context"
	"errors"

	"github.com/moat-dev/moat/internal/store"
)

var errRecoveryTODO = errors.New("postgres: recovery cases not implemented yet")

func (q *queries) CreateRecoveryCase(context.Context, store.RecoveryCase) error { return errRecoveryTODO }
func (q *queries) GetRecoveryCase(context.Context, string) (store.RecoveryCase, error) {
	return store.RecoveryCase{}, errRecoveryTODO
}
func (q *queries) GetRecoveryCaseByStatusToken(context.Context, []byte) (store.RecoveryCase, error) {
	return store.RecoveryCase{}, errRecoveryTODO
}
func (q *queries) UpdateRecoveryCase(context.Context, string, func(*store.RecoveryCase) error) (store.RecoveryCase, error) {
	return store.RecoveryCase{}, errRecoveryTODO
}
func (q *queries) ListRecoveryCases(context.Context, store.RecoveryCaseFilter) ([]store.RecoveryCase, error) {
	return nil, errRecoveryTODO
}
func (q *queries) GetToken(context.Context, store.TokenKind, []byte) (store.Token, error) {
	return store.Token{}, errRecoveryTODO
}
