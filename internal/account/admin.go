package account

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/audit"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

// Operator actions (CLI, later the support console). actor names who acts;
// it is recorded in the audit log.

// CreateConfirmedUser creates an account whose e-mail is already confirmed
// (the operator vouches for the address). Returns Invalid or WeakPassword
// for unacceptable input and Conflict when the address has an account.
func (s *Service) CreateConfirmedUser(ctx context.Context, email, password string, role store.Role, actor string) (store.Account, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return store.Account{}, err
	}
	switch role {
	case store.RoleUser, store.RoleSupport, store.RoleAdmin:
	case "":
		role = store.RoleUser
	default:
		return store.Account{}, apperr.Field(apperr.Invalid, "role", "The role must be user, support or admin.")
	}
	if err := s.policy.Check(password, e, s.cfg.Brand); err != nil {
		return store.Account{}, err
	}
	hash, err := s.hasher.Hash(password)
	if err != nil {
		return store.Account{}, apperr.Wrap(err)
	}
	id, err := secrets.NewID(s.rand)
	if err != nil {
		return store.Account{}, apperr.Wrap(err)
	}
	now := s.now()
	a := store.Account{ID: id, Email: e, PasswordHash: hash, Role: role, EmailConfirmedAt: now, CreatedAt: now, UpdatedAt: now}
	err = s.store.InTx(ctx, func(tx store.Queries) error {
		if err := tx.CreateAccount(ctx, a); err != nil {
			return err
		}
		return s.recordActor(ctx, tx, "account.created", a.ID, actor, map[string]any{"role": string(role)})
	})
	if errors.Is(err, store.ErrAlreadyExists) {
		return store.Account{}, apperr.Field(apperr.Conflict, "email", "An account with this e-mail address exists already.")
	}
	if err != nil {
		return store.Account{}, apperr.Wrap(err)
	}
	return a, nil
}

// ListUsers lists accounts ordered by e-mail (at most 1000 per page).
func (s *Service) ListUsers(ctx context.Context, opt store.ListAccountsOptions) ([]store.Account, error) {
	opt.EmailContains = strings.ToLower(strings.TrimSpace(opt.EmailContains))
	if opt.Limit <= 0 {
		opt.Limit = 100
	}
	opt.Limit = min(opt.Limit, 1000)
	list, err := s.store.ListAccounts(ctx, opt)
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	return list, nil
}

// Lock locks an account and revokes its sessions. Returns NotFound for an
// address without an account.
func (s *Service) Lock(ctx context.Context, email, reason, actor string) error {
	a, err := s.accountByEmail(ctx, email)
	if err != nil {
		return err
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		reason = "locked by staff"
	}
	now := s.now()
	err = s.store.InTx(ctx, func(tx store.Queries) error {
		if _, err := tx.UpdateAccount(ctx, a.ID, func(a *store.Account) error {
			a.LockedAt, a.LockReason, a.UpdatedAt = now, reason, now
			return nil
		}); err != nil {
			return err
		}
		n, err := tx.RevokeSessions(ctx, a.ID, "", now)
		if err != nil {
			return err
		}
		return s.recordActor(ctx, tx, "account.locked", a.ID, actor, map[string]any{"reason": reason, "sessions_revoked": n})
	})
	if err != nil {
		return apperr.Wrap(err)
	}
	s.cache.dropAccount(a.ID)
	s.locked(a.ID)
	return nil
}

// Unlock unlocks an account and clears its sign-in throttling. Returns
// NotFound for an address without an account.
func (s *Service) Unlock(ctx context.Context, email, actor string) error {
	a, err := s.accountByEmail(ctx, email)
	if err != nil {
		return err
	}
	now := s.now()
	err = s.store.InTx(ctx, func(tx store.Queries) error {
		if _, err := tx.UpdateAccount(ctx, a.ID, func(a *store.Account) error {
			a.LockedAt, a.LockReason, a.UpdatedAt = time.Time{}, "", now
			return nil
		}); err != nil {
			return err
		}
		return s.recordActor(ctx, tx, "account.unlocked", a.ID, actor, nil)
	})
	if err != nil {
		return apperr.Wrap(err)
	}
	s.cache.dropAccount(a.ID)
	return s.clearAccount(ctx, a.Email)
}

func (s *Service) accountByEmail(ctx context.Context, email string) (store.Account, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return store.Account{}, err
	}
	a, err := s.store.GetAccountByEmail(ctx, e)
	if errors.Is(err, store.ErrNotFound) {
		return a, apperr.Field(apperr.NotFound, "email", "There is no account with this e-mail address.")
	}
	if err != nil {
		return a, apperr.Wrap(err)
	}
	return a, nil
}

// recordActor appends an audit event about accountID done by actor.
func (s *Service) recordActor(ctx context.Context, q store.Queries, typ, accountID, actor string, data map[string]any) error {
	if actor == "" {
		actor = "operator"
	}
	_, err := s.audit.Append(ctx, q, audit.Event{Type: typ, AccountID: accountID, ActorID: actor, Data: data})
	if err != nil {
		return apperr.Wrap(err)
	}
	return nil
}
