package mfa

import (
	"context"
	"errors"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/mfa/sms"
	"github.com/moat-dev/moat/internal/mfa/totp"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

// SMSNotice is the copy shown wherever SMS is offered (see
// sms.WeakestOptionNotice).
const SMSNotice = sms.WeakestOptionNotice

var errNoSMS = apperr.New(apperr.NotFound, "Text messages are not available on this platform.")

// AddPhone starts adding a phone for SMS codes: the number is checked
// (international format), stored unverified, and a code is sent to it.
// Returns the masked number. An account has one phone: with one verified it
// returns Conflict. Needs step-up when the account already has a factor.
func (s *Service) AddPhone(ctx context.Context, p account.Principal, number string) (string, error) {
	if s.sms == nil {
		return "", errNoSMS
	}
	e164, err := sms.ParsePhone(number)
	if err != nil {
		return "", apperr.Field(apperr.Invalid, "phone", sms.PhoneHint)
	}
	if err := s.requireStepUp(ctx, s.store, p); err != nil {
		return "", err
	}
	now := s.clock.Now()
	err = s.store.CreateSMSPhone(ctx, store.SMSPhone{AccountID: p.Account.ID, Number: e164, CreatedAt: now})
	if errors.Is(err, store.ErrAlreadyExists) {
		_, err = s.store.UpdateSMSPhone(ctx, p.Account.ID, func(ph *store.SMSPhone) error {
			if !ph.VerifiedAt.IsZero() {
				return apperr.New(apperr.Conflict, "A phone is already set up. Remove it first to use another number.")
			}
			ph.Number, ph.CreatedAt = e164, now
			return nil
		})
	}
	if err != nil {
		return "", apperr.Wrap(err)
	}
	if err := s.sendCode(ctx, p.Account.ID, e164, store.SMSPurposeEnrol); err != nil {
		return "", err
	}
	return sms.MaskPhone(e164), nil
}

// ResendPhoneCode sends a new code to the phone being added.
func (s *Service) ResendPhoneCode(ctx context.Context, p account.Principal) (string, error) {
	if s.sms == nil {
		return "", errNoSMS
	}
	ph, err := s.store.GetSMSPhone(ctx, p.Account.ID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !ph.VerifiedAt.IsZero()) {
		return "", apperr.New(apperr.NotFound, "There is no phone being added. Enter the number again.")
	}
	if err != nil {
		return "", apperr.Wrap(err)
	}
	if err := s.sendCode(ctx, p.Account.ID, ph.Number, store.SMSPurposeEnrol); err != nil {
		return "", err
	}
	return sms.MaskPhone(ph.Number), nil
}

// ConfirmPhone completes adding the phone with the code sent to it. When it
// is the account's first factor, returns a new set of backup codes to show
// once.
func (s *Service) ConfirmPhone(ctx context.Context, p account.Principal, code string, c account.Client) ([]string, error) {
	if s.sms == nil {
		return nil, errNoSMS
	}
	ph, err := s.store.GetSMSPhone(ctx, p.Account.ID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !ph.VerifiedAt.IsZero()) {
		return nil, apperr.New(apperr.NotFound, "There is no phone being added. Enter the number again.")
	}
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	if err := s.checkSMSCode(ctx, p.Account.ID, code, store.SMSPurposeEnrol, ph.Number); err != nil {
		return nil, err
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
		now := s.clock.Now()
		if _, err := q.UpdateSMSPhone(ctx, p.Account.ID, func(x *store.SMSPhone) error {
			if x.Number != ph.Number || !x.VerifiedAt.IsZero() {
				return apperr.New(apperr.Conflict, "The number was changed meanwhile. Enter it again.")
			}
			x.VerifiedAt, x.LastUsedAt = now, now
			return nil
		}); err != nil {
			return apperr.Wrap(err)
		}
		if codes, err = s.firstFactorCodes(ctx, q, p.Account.ID, before.count() == 0); err != nil {
			return err
		}
		return s.record(ctx, q, Event{Type: EventPhoneAdded, AccountID: p.Account.ID, Client: c, Notify: true,
			Data:    map[string]any{"method": MethodSMS, "phone": sms.MaskPhone(ph.Number), "backup_codes_generated": codes != nil},
			Summary: "A phone (" + sms.MaskPhone(ph.Number) + ") was added to your account for text-message codes."})
	})
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	s.succeeded(ctx, p.Account.ID)
	return codes, nil
}

// RemovePhone removes the SMS phone (or one being added). Needs step-up.
func (s *Service) RemovePhone(ctx context.Context, p account.Principal, c account.Client) error {
	return apperr.Wrap(s.store.InTx(ctx, func(q store.Queries) error {
		if err := s.lock(ctx, q, p.Account.ID); err != nil {
			return err
		}
		ph, err := q.GetSMSPhone(ctx, p.Account.ID)
		if errors.Is(err, store.ErrNotFound) {
			return errNotEnrolled
		}
		if err != nil {
			return apperr.Wrap(err)
		}
		if ph.VerifiedAt.IsZero() {
			return apperr.Wrap(q.DeleteSMSPhone(ctx, p.Account.ID))
		}
		if err := s.requireStepUp(ctx, q, p); err != nil {
			return err
		}
		if err := s.checkRemovalPolicy(ctx, q, p, MethodSMS); err != nil {
			return err
		}
		if err := q.DeleteSMSPhone(ctx, p.Account.ID); err != nil {
			return apperr.Wrap(err)
		}
		return s.removed(ctx, q, p, c, Event{Type: EventPhoneRemoved,
			Data:    map[string]any{"method": MethodSMS, "phone": sms.MaskPhone(ph.Number)},
			Summary: "The phone " + sms.MaskPhone(ph.Number) + " was removed from your account."})
	}))
}

// sendSignInCode sends a code to the account's verified phone (sign-in or
// step-up). Returns the masked number.
func (s *Service) sendSignInCode(ctx context.Context, accountID string) (string, time.Time, error) {
	if s.sms == nil {
		return "", time.Time{}, errNoSMS
	}
	ph, err := s.store.GetSMSPhone(ctx, accountID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && ph.VerifiedAt.IsZero()) {
		return "", time.Time{}, errNotEnrolled
	}
	if err != nil {
		return "", time.Time{}, apperr.Wrap(err)
	}
	if err := s.sendCode(ctx, accountID, ph.Number, store.SMSPurposeVerify); err != nil {
		return "", time.Time{}, err
	}
	return sms.MaskPhone(ph.Number), s.clock.Now().Add(s.cfg.SMSCodeTTL), nil
}

func smsSendKey(accountID string) string { return "mfa:sms:account:" + accountID }
func smsToKey(number string) string      { return "mfa:sms:number:" + number }

func (s *Service) smsHash(accountID, code string) []byte {
	return secrets.KeyedHash(s.hashKey, "sms-code:"+accountID+":"+code)
}

// sendCode enforces the send limits (per account and per number, so neither
// an account nor a stranger's number can be flooded), stores the new code's
// hash (voiding the previous code) and sends it.
func (s *Service) sendCode(ctx context.Context, accountID, number, purpose string) error {
	for _, key := range []string{smsSendKey(accountID), smsToKey(number)} {
		n, err := s.counter.Incr(ctx, key, 1, s.cfg.SMSSendWindow)
		if err != nil {
			return apperr.Wrap(err)
		}
		if n > int64(s.cfg.SMSSends) {
			return errSendLimit(retryAfter(s.clock.Now(), s.cfg.SMSSendWindow))
		}
	}
	code, err := secrets.NewCode(s.rand, 6)
	if err != nil {
		return apperr.Wrap(err)
	}
	now := s.clock.Now()
	if err := s.store.PutSMSCode(ctx, store.SMSCode{
		AccountID: accountID, Purpose: purpose, Number: number, CodeHash: s.smsHash(accountID, code),
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.SMSCodeTTL),
	}); err != nil {
		return apperr.Wrap(err)
	}
	mins := int(s.cfg.SMSCodeTTL / time.Minute)
	if err := s.sms.Send(ctx, sms.Message{To: number, Body: sms.CodeBody(s.cfg.Issuer, code, mins)}); err != nil {
		return &apperr.Error{Code: apperr.Internal, Message: "We could not send the text message.", Err: err}
	}
	return nil
}

// verifySMS checks a sign-in or step-up code against the verified phone.
func (s *Service) verifySMS(ctx context.Context, accountID, code, purpose string) error {
	ph, err := s.store.GetSMSPhone(ctx, accountID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && ph.VerifiedAt.IsZero()) {
		return errNotEnrolled
	}
	if err != nil {
		return apperr.Wrap(err)
	}
	if err := s.checkSMSCode(ctx, accountID, code, purpose, ph.Number); err != nil {
		return err
	}
	now := s.clock.Now()
	if _, err := s.store.UpdateSMSPhone(ctx, accountID, func(x *store.SMSPhone) error {
		x.LastUsedAt = now
		return nil
	}); err != nil && !errors.Is(err, store.ErrNotFound) {
		return apperr.Wrap(err)
	}
	s.succeeded(ctx, accountID)
	return nil
}

// checkSMSCode spends the account's outstanding code if code matches it.
// Wrong guesses are counted on the code (SMSCodeTries voids it) and in the
// account's code throttle; the check, the count and the spend are one atomic
// store update.
func (s *Service) checkSMSCode(ctx context.Context, accountID, code, purpose, number string) error {
	norm, err := totp.NormalizeCode(code) // the same 6-digit shape
	if err != nil {
		return errCodeFormat("6-digit code from the text message")
	}
	if err := s.attempt(ctx, accountID); err != nil {
		return err
	}
	now := s.clock.Now()
	want := s.smsHash(accountID, norm)
	var outcome error
	_, err = s.store.UpdateSMSCode(ctx, accountID, func(c *store.SMSCode) error {
		switch {
		case c.Purpose != purpose || c.Number != number:
			outcome = errSMSNone
		case !c.UsedAt.IsZero():
			outcome = errSMSUsed
		case !now.Before(c.ExpiresAt):
			outcome = errSMSExpired
		case c.Attempts >= s.cfg.SMSCodeTries:
			outcome = errSMSVoid
		case !secrets.Equal(c.CodeHash, want):
			c.Attempts++
			outcome = errWrongCode(MethodSMS)
			if c.Attempts >= s.cfg.SMSCodeTries {
				outcome = errSMSVoid
			}
		default:
			c.UsedAt = now
			outcome = nil
		}
		// Write the attempt count (or the spend) even when refusing.
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return errSMSNone
	}
	if err != nil {
		return apperr.Wrap(err)
	}
	return outcome
}
