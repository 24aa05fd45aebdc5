package account

import (
	"context"
	"errors"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

// SignUp registers email with password and e-mails a confirmation link.
//
// To resist enumeration it returns nil for an address that already has an
// account, e-mails that owner an "account exists" notice instead, and does
// the same work either way (the password is always checked and hashed).
// Returns WeakPassword (field "password") or Invalid (field "email") for
// unacceptable input; those depend only on the input, never on who exists.
func (s *Service) SignUp(ctx context.Context, email, password string, c Client) error {
	// Each sign-up costs an argon2id hash (19 MiB, tens of milliseconds):
	// one network may ask for IPLimit per window, as for sign-ins.
	if err := s.limitIP(ctx, "signup-ip:", c.IP, s.now(), "sign-ups"); err != nil {
		return err
	}
	e, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	if err := s.policy.Check(password, e, s.cfg.Brand); err != nil {
		return err
	}
	hash, err := s.hasher.Hash(password)
	if err != nil {
		return apperr.Wrap(err)
	}
	mayMail, err := s.mayMail(ctx, e)
	if err != nil {
		return err
	}
	now := s.now()
	// Two attempts: a concurrent sign-up of the same address makes the
	// insert fail; the second pass then finds the account.
	for range 2 {
		err = s.store.InTx(ctx, func(tx store.Queries) error {
			a, err := tx.GetAccountByEmail(ctx, e)
			if err == nil {
				if !mayMail {
					return nil
				}
				if err := s.mail(ctx, tx, a, notify.TemplateAccountExists, map[string]string{
					"Link": s.mailer.Link(PathSignIn, ""),
				}); err != nil {
					return err
				}
				return s.record(ctx, tx, "signup.existing", a, c, "", nil)
			}
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			id, err := secrets.NewID(s.rand)
			if err != nil {
				return err
			}
			a = store.Account{ID: id, Email: e, PasswordHash: hash, Role: store.RoleUser, CreatedAt: now, UpdatedAt: now}
			if err := tx.CreateAccount(ctx, a); err != nil {
				return err
			}
			if err := s.sendConfirmation(ctx, tx, a, now); err != nil {
				return err
			}
			return s.record(ctx, tx, "signup", a, c, "", nil)
		})
		if !errors.Is(err, store.ErrAlreadyExists) {
			break
		}
	}
	return apperr.Wrap(err)
}

// sendConfirmation makes a confirmation link and queues the e-mail.
func (s *Service) sendConfirmation(ctx context.Context, q store.Queries, a store.Account, now time.Time) error {
	tok, err := s.newToken(ctx, q, store.TokenEmailConfirm, a.ID, "", now, s.cfg.ConfirmLinkTTL)
	if err != nil {
		return err
	}
	return s.mail(ctx, q, a, notify.TemplateConfirmEmail, map[string]string{"Link": s.mailer.Link(PathConfirmEmail, tok)})
}

// mayMail counts an unsolicited e-mail to address e and reports whether it
// is still within mailLimit for the window. It is called for every address,
// with or without an account, so it tells nobody anything.
func (s *Service) mayMail(ctx context.Context, e string) (bool, error) {
	n, err := s.counter.Incr(ctx, "mail:"+e, 1, s.cfg.ThrottleWindow)
	if err != nil {
		return false, apperr.Wrap(err)
	}
	return n <= mailLimit, nil
}

// ResendConfirmation e-mails a new confirmation link (voiding older ones) if
// the address has an unconfirmed account; the answer is the same either
// way: nil, or Invalid for something that is not an e-mail address.
func (s *Service) ResendConfirmation(ctx context.Context, email string, c Client) error {
	unconfirmed := func(a store.Account) bool { return a.EmailConfirmedAt.IsZero() && a.LockedAt.IsZero() }
	return s.mailIfAccount(ctx, email, unconfirmed, func(tx store.Queries, a store.Account) error {
		if err := tx.DeleteTokens(ctx, a.ID, store.TokenEmailConfirm); err != nil {
			return err
		}
		if err := s.sendConfirmation(ctx, tx, a, s.now()); err != nil {
			return err
		}
		return s.record(ctx, tx, "signup.confirmation_resent", a, c, "", nil)
	})
}

// mailIfAccount is the shape of every request that e-mails a link to an
// address someone typed (resend confirmation, forgot password): after the
// per-address mail limit, send runs in one transaction for the account
// with that address when eligible says so, and otherwise nothing happens.
// The answer is the same either way (nil, or Invalid for something that is
// not an e-mail address), and the e-mail goes out later from the outbox,
// so neither the answer nor its timing says whether the account exists.
func (s *Service) mailIfAccount(ctx context.Context, email string, eligible func(store.Account) bool,
	send func(tx store.Queries, a store.Account) error) error {
	e, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	mayMail, err := s.mayMail(ctx, e)
	if err != nil || !mayMail {
		return err
	}
	err = s.store.InTx(ctx, func(tx store.Queries) error {
		a, err := tx.GetAccountByEmail(ctx, e)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if !eligible(a) {
			return nil
		}
		return send(tx, a)
	})
	return apperr.Wrap(err)
}

// ConfirmEmail activates the account of a confirmation token. Returns
// TokenInvalid, TokenExpired or TokenUsed, each with a message that says
// what to do.
func (s *Service) ConfirmEmail(ctx context.Context, token string, c Client) (store.Account, error) {
	const again = "Sign in to get a new confirmation link."
	if token == "" || len(token) > 128 {
		return store.Account{}, tokenError(store.ErrNotFound, "confirmation link", again)
	}
	now := s.now()
	var a store.Account
	err := s.store.InTx(ctx, func(tx store.Queries) error {
		t, err := tx.ConsumeToken(ctx, store.TokenEmailConfirm, secrets.HashToken(token), now)
		if err != nil {
			return tokenError(err, "confirmation link", again)
		}
		a, err = tx.UpdateAccount(ctx, t.AccountID, func(a *store.Account) error {
			if a.EmailConfirmedAt.IsZero() {
				a.EmailConfirmedAt = now
			}
			a.UpdatedAt = now
			return nil
		})
		if err != nil {
			return err
		}
		return s.record(ctx, tx, "email.confirmed", a, c, "", nil)
	})
	if err != nil {
		return store.Account{}, apperr.Wrap(err)
	}
	return a, nil
}
