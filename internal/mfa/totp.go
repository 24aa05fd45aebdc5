package mfa

import (
	"context"
	"errors"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/mfa/totp"
	"github.com/moat-dev/moat/internal/store"
)

// TOTPEnrolment is what the enrolment page shows: the QR code and, for
// people who cannot scan, the key to type.
type TOTPEnrolment struct {
	// URI is the otpauth:// URI the QR code carries.
	URI string
	// ManualKey is the base32 seed in groups of four.
	ManualKey string
	// QRCodePNG is the URI as a PNG QR code.
	QRCodePNG []byte
}

func totpContext(accountID string) string { return "totp:" + accountID }

// BeginTOTP starts enrolling an authenticator app: a new seed is stored,
// pending, and returned for display. Calling it again replaces a pending
// seed. An account has at most one app: with one enrolled it returns
// Conflict. Needs step-up when the account already has a factor.
func (s *Service) BeginTOTP(ctx context.Context, p account.Principal) (TOTPEnrolment, error) {
	if err := s.requireStepUp(ctx, s.store, p); err != nil {
		return TOTPEnrolment{}, err
	}
	key, err := totp.NewKey(s.rand, s.cfg.Issuer, p.Account.Email)
	if err != nil {
		return TOTPEnrolment{}, apperr.Wrap(err)
	}
	sealed, err := s.box.Seal(key.Secret, totpContext(p.Account.ID))
	if err != nil {
		return TOTPEnrolment{}, apperr.Wrap(err)
	}
	now := s.clock.Now()
	err = s.store.CreateTOTP(ctx, store.TOTPCredential{AccountID: p.Account.ID, Secret: sealed, CreatedAt: now})
	if errors.Is(err, store.ErrAlreadyExists) {
		_, err = s.store.UpdateTOTP(ctx, p.Account.ID, func(c *store.TOTPCredential) error {
			if !c.ConfirmedAt.IsZero() {
				return errTOTPExists
			}
			c.Secret, c.CreatedAt, c.LastUsedStep = sealed, now, 0
			return nil
		})
	}
	if err != nil {
		return TOTPEnrolment{}, apperr.Wrap(err)
	}
	return s.enrolment(key)
}

var errTOTPExists = apperr.New(apperr.Conflict,
	"An authenticator app is already set up. Remove it first if you want to move to a new one.")

// PendingTOTP returns the enrolment started by BeginTOTP again (a page
// reload, or the QR image requested separately). NotFound when there is no
// pending enrolment.
func (s *Service) PendingTOTP(ctx context.Context, p account.Principal) (TOTPEnrolment, error) {
	c, err := s.store.GetTOTP(ctx, p.Account.ID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !c.ConfirmedAt.IsZero()) {
		return TOTPEnrolment{}, apperr.New(apperr.NotFound, "There is no authenticator app set-up in progress. Start again.")
	}
	if err != nil {
		return TOTPEnrolment{}, apperr.Wrap(err)
	}
	secret, err := s.box.Open(c.Secret, totpContext(p.Account.ID))
	if err != nil {
		return TOTPEnrolment{}, apperr.Wrap(err)
	}
	return s.enrolment(totp.Key{Secret: secret, Issuer: s.cfg.Issuer, Account: p.Account.Email})
}

func (s *Service) enrolment(key totp.Key) (TOTPEnrolment, error) {
	png, err := key.QRCodePNG(s.cfg.QRCodeSize)
	if err != nil {
		return TOTPEnrolment{}, apperr.Wrap(err)
	}
	return TOTPEnrolment{URI: key.URI(), ManualKey: key.ManualKey(), QRCodePNG: png}, nil
}

// ConfirmTOTP completes enrolment with a code from the app: the proof that
// the app has the seed. The code's time step counts as used. When this is
// the account's first factor it returns a new set of backup codes to show
// once (nil otherwise).
func (s *Service) ConfirmTOTP(ctx context.Context, p account.Principal, code string, c account.Client) ([]string, error) {
	norm, err := totp.NormalizeCode(code)
	if err != nil {
		return nil, errCodeFormat("6-digit code from your authenticator app")
	}
	if err := s.attempt(ctx, p.Account.ID); err != nil {
		return nil, err
	}
	pending, err := s.store.GetTOTP(ctx, p.Account.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apperr.New(apperr.NotFound, "There is no authenticator app set-up in progress. Start again.")
	}
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	if !pending.ConfirmedAt.IsZero() {
		return nil, errTOTPExists
	}
	secret, err := s.box.Open(pending.Secret, totpContext(p.Account.ID))
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	now := s.clock.Now()
	res := totp.Check(secret, norm, now)
	if len(res.Steps) == 0 {
		if res.Drift != 0 {
			return nil, errClockDrift(res.Drift)
		}
		return nil, errWrongCode(MethodTOTP)
	}
	var codes []string
	err = s.store.InTx(ctx, func(q store.Queries) error {
		if err := s.lock(ctx, q, p.Account.ID); err != nil {
			return err
		}
		if err := s.requireStepUp(ctx, q, p); err != nil {
			return err
		}
		before, err := s.factors(ctx, q, p.Account.ID)
		if err != nil {
			return err
		}
		if _, err := q.UpdateTOTP(ctx, p.Account.ID, func(t *store.TOTPCredential) error {
			// The seed may have been replaced by another BeginTOTP since we
			// read it: only the seed the code was checked against counts.
			if !t.ConfirmedAt.IsZero() {
				return errTOTPExists
			}
			if string(t.Secret) != string(pending.Secret) {
				return apperr.New(apperr.Conflict, "The set-up was restarted elsewhere. Scan the new QR code and try again.")
			}
			t.ConfirmedAt, t.LastUsedAt, t.LastUsedStep = now, now, res.Steps[len(res.Steps)-1]
			return nil
		}); err != nil {
			return apperr.Wrap(err)
		}
		if codes, err = s.firstFactorCodes(ctx, q, p.Account.ID, before.count() == 0); err != nil {
			return err
		}
		return s.record(ctx, q, Event{Type: EventTOTPAdded, AccountID: p.Account.ID, Client: c, Notify: true,
			Data: map[string]any{"method": MethodTOTP, "backup_codes_generated": codes != nil}, Summary: "An authenticator app was added to your account."})
	})
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	s.succeeded(ctx, p.Account.ID)
	return codes, nil
}

// RemoveTOTP removes the authenticator app (or a pending enrolment). Needs
// step-up.
func (s *Service) RemoveTOTP(ctx context.Context, p account.Principal, c account.Client) error {
	return apperr.Wrap(s.store.InTx(ctx, func(q store.Queries) error {
		if err := s.lock(ctx, q, p.Account.ID); err != nil {
			return err
		}
		t, err := q.GetTOTP(ctx, p.Account.ID)
		if errors.Is(err, store.ErrNotFound) {
			return errNotEnrolled
		}
		if err != nil {
			return apperr.Wrap(err)
		}
		if t.ConfirmedAt.IsZero() {
			// Abandoning a set-up changes nothing that protects the account.
			return apperr.Wrap(q.DeleteTOTP(ctx, p.Account.ID))
		}
		if err := s.requireStepUp(ctx, q, p); err != nil {
			return err
		}
		if err := s.checkRemovalPolicy(ctx, q, p, MethodTOTP); err != nil {
			return err
		}
		if err := q.DeleteTOTP(ctx, p.Account.ID); err != nil {
			return apperr.Wrap(err)
		}
		return s.removed(ctx, q, p, c, Event{Type: EventTOTPRemoved, Data: map[string]any{"method": MethodTOTP},
			Summary: "The authenticator app was removed from your account."})
	}))
}

// verifyTOTP checks a code for sign-in or step-up: throttled, constant-time,
// and each time step accepted once (the check-and-set is one atomic store
// update).
func (s *Service) verifyTOTP(ctx context.Context, accountID, code string) error {
	norm, err := totp.NormalizeCode(code)
	if err != nil {
		return errCodeFormat("6-digit code from your authenticator app")
	}
	if err := s.attempt(ctx, accountID); err != nil {
		return err
	}
	cred, err := s.store.GetTOTP(ctx, accountID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && cred.ConfirmedAt.IsZero()) {
		return errNotEnrolled
	}
	if err != nil {
		return apperr.Wrap(err)
	}
	secret, err := s.box.Open(cred.Secret, totpContext(accountID))
	if err != nil {
		return apperr.Wrap(err)
	}
	now := s.clock.Now()
	res := totp.Check(secret, norm, now)
	if len(res.Steps) == 0 {
		if res.Drift != 0 {
			if totp.Step(now)+res.Drift <= cred.LastUsedStep {
				// An old code typed again, not a wrong clock.
				return errTOTPReused
			}
			return errClockDrift(res.Drift)
		}
		return errWrongCode(MethodTOTP)
	}
	_, err = s.store.UpdateTOTP(ctx, accountID, func(c *store.TOTPCredential) error {
		if c.ConfirmedAt.IsZero() || string(c.Secret) != string(cred.Secret) {
			return errNotEnrolled // removed or replaced meanwhile
		}
		for _, st := range res.Steps {
			if st > c.LastUsedStep {
				c.LastUsedStep, c.LastUsedAt = st, now
				return nil
			}
		}
		return errTOTPReused
	})
	if errors.Is(err, store.ErrNotFound) {
		return errNotEnrolled
	}
	if err != nil {
		return apperr.Wrap(err)
	}
	s.succeeded(ctx, accountID)
	return nil
}
