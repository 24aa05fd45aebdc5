package mfa

import (
	"context"
	"errors"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/store"
)

// The account.Factor implementations the sign-in state machine calls. Each
// is a view of the Service; Verify is the same check step-up uses.

// Challenger is implemented by the factors that must send something before
// Verify can succeed: WebAuthn (the assertion request for the browser) and
// SMS (the code). The sign-in flow calls it when the person picks the method.
type Challenger interface {
	Challenge(ctx context.Context, accountID string) (Challenge, error)
}

var (
	_ account.Factor = totpFactor{}
	_ account.Factor = webauthnFactor{}
	_ account.Factor = smsFactor{}
	_ account.Factor = backupFactor{}
	_ Challenger     = webauthnFactor{}
	_ Challenger     = smsFactor{}
)

type totpFactor struct{ s *Service }

func (totpFactor) Name() string { return MethodTOTP }
func (f totpFactor) Enrolled(ctx context.Context, accountID string) (bool, error) {
	c, err := f.s.store.GetTOTP(ctx, accountID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil && !c.ConfirmedAt.IsZero(), apperr.Wrap(err)
}
func (f totpFactor) Verify(ctx context.Context, accountID, response string) error {
	return f.s.verifyTOTP(ctx, accountID, response)
}

type webauthnFactor struct{ s *Service }

func (webauthnFactor) Name() string { return MethodWebAuthn }
func (f webauthnFactor) Enrolled(ctx context.Context, accountID string) (bool, error) {
	ks, err := f.s.store.ListWebAuthnCredentials(ctx, accountID)
	return len(ks) > 0, apperr.Wrap(err)
}

// Verify takes a KeyResponse JSON: {"ceremony": ..., "credential": {...}}.
func (f webauthnFactor) Verify(ctx context.Context, accountID, response string) error {
	return f.s.verifyWebAuthn(ctx, accountID, response)
}
func (f webauthnFactor) Challenge(ctx context.Context, accountID string) (Challenge, error) {
	return f.s.beginKeyLogin(ctx, accountID)
}

type smsFactor struct{ s *Service }

func (smsFactor) Name() string { return MethodSMS }
func (f smsFactor) Enrolled(ctx context.Context, accountID string) (bool, error) {
	p, err := f.s.store.GetSMSPhone(ctx, accountID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil && !p.VerifiedAt.IsZero(), apperr.Wrap(err)
}
func (f smsFactor) Verify(ctx context.Context, accountID, response string) error {
	return f.s.verifySMS(ctx, accountID, response, store.SMSPurposeVerify)
}
func (f smsFactor) Challenge(ctx context.Context, accountID string) (Challenge, error) {
	to, exp, err := f.s.sendSignInCode(ctx, accountID)
	if err != nil {
		return Challenge{}, err
	}
	return Challenge{Method: MethodSMS, SentTo: to, ExpiresAt: exp}, nil
}

type backupFactor struct{ s *Service }

func (backupFactor) Name() string { return MethodBackupCode }

// Enrolled: unused codes and a primary factor (codes alone are not 2FA).
func (f backupFactor) Enrolled(ctx context.Context, accountID string) (bool, error) {
	ms, err := f.s.EnrolledMethods(ctx, accountID)
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if m == MethodBackupCode {
			return true, nil
		}
	}
	return false, nil
}
func (f backupFactor) Verify(ctx context.Context, accountID, response string) error {
	return f.s.verifyBackupCode(ctx, accountID, response)
}

// challenge dispatches StepUpChallenge.
func (s *Service) challenge(ctx context.Context, accountID, method string) (Challenge, error) {
	switch method {
	case MethodWebAuthn:
		return s.beginKeyLogin(ctx, accountID)
	case MethodSMS:
		return smsFactor{s}.Challenge(ctx, accountID)
	case MethodTOTP, MethodBackupCode:
		return Challenge{Method: method}, nil
	}
	return Challenge{}, errNotEnrolled
}
