package mfa

import (
	"context"
	"errors"
	"fmt"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/mfa/backup"
	"github.com/moat-dev/moat/internal/store"
)

// RegenerateBackupCodes makes a new set of backup codes and voids the old
// one, returning the codes to show once (with download and print). Needs
// step-up and an enrolled factor (backup codes are the fallback of a factor,
// not a factor alone).
func (s *Service) RegenerateBackupCodes(ctx context.Context, p account.Principal, c account.Client) ([]string, error) {
	var codes []string
	err := s.store.InTx(ctx, func(q store.Queries) error {
		if err := s.lock(ctx, q, p.Account.ID); err != nil {
			return err
		}
		f, err := s.factors(ctx, q, p.Account.ID)
		if err != nil {
			return err
		}
		if f.count() == 0 {
			return apperr.New(apperr.Conflict,
				"Set up an authenticator app or a security key first; backup codes come with it.")
		}
		if err := s.requireStepUp(ctx, q, p); err != nil {
			return err
		}
		if codes, err = s.replaceBackupCodes(ctx, q, p.Account.ID); err != nil {
			return err
		}
		return s.record(ctx, q, Event{Type: EventBackupGenerated, AccountID: p.Account.ID, Client: c, Notify: true,
			Data:    map[string]any{"count": len(codes), "regenerated": true},
			Summary: "New backup codes were made for your account. The old ones no longer work."})
	})
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	return codes, nil
}

// BackupCodesRemaining counts the account's unused backup codes.
func (s *Service) BackupCodesRemaining(ctx context.Context, accountID string) (int, error) {
	n, err := s.store.CountBackupCodes(ctx, accountID)
	return n, apperr.Wrap(err)
}

// verifyBackupCode spends a backup code (throttled; single use, atomically).
// The owner is e-mailed, with how many codes are left.
func (s *Service) verifyBackupCode(ctx context.Context, accountID, code string) error {
	norm, err := backup.Normalize(code)
	if err != nil {
		return errCodeFormat("backup code: 10 letters and digits, like ABCDE-12345")
	}
	if err := s.attempt(ctx, accountID); err != nil {
		return err
	}
	err = s.store.InTx(ctx, func(q store.Queries) error {
		f, err := s.factors(ctx, q, accountID)
		if err != nil {
			return err
		}
		if f.count() == 0 {
			return errNotEnrolled
		}
		switch err := q.SpendBackupCode(ctx, accountID, backup.Hash(s.hashKey, norm), s.clock.Now()); {
		case errors.Is(err, store.ErrNotFound):
			return errWrongCode(MethodBackupCode)
		case errors.Is(err, store.ErrTokenUsed):
			return errBackupUsed
		case err != nil:
			return apperr.Wrap(err)
		}
		left, err := q.CountBackupCodes(ctx, accountID)
		if err != nil {
			return apperr.Wrap(err)
		}
		summary := fmt.Sprintf("A backup code was used to confirm it's you. You have %d left.", left)
		if left <= 3 {
			summary += " Make new ones in Security settings soon."
		}
		return s.record(ctx, q, Event{Type: EventBackupCodeUsed, AccountID: accountID, Notify: true,
			Data: map[string]any{"remaining": left}, Summary: summary})
	})
	if err != nil {
		return apperr.Wrap(err)
	}
	s.succeeded(ctx, accountID)
	return nil
}
