package mfa

import (
	"context"
	"errors"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/store"
)

// Fresh reports whether the session verified a second factor within the
// last `within` before now (DESIGN.md: 5 minutes for security changes and
// withdrawals).
func Fresh(s store.Session, now time.Time, within time.Duration) bool {
	return !s.SecondFactorAt.IsZero() && now.Sub(s.SecondFactorAt) <= within
}

// StepUpWithin is the configured freshness window, for adapters that check
// Fresh themselves (withdrawals, API keys, password change).
func (s *Service) StepUpWithin() time.Duration { return s.cfg.StepUpWithin }

// CheckStepUp returns nil when the session may make a security change now:
// its second factor is fresh, or the account has no second factor (the
// adapter then asks for the password instead). Otherwise it returns a
// StepUpNeeded error; the adapter offers the methods EnrolledMethods lists.
func (s *Service) CheckStepUp(ctx context.Context, p account.Principal) error {
	return s.requireStepUp(ctx, s.store, p)
}

// StepUpChallenge prepares a step-up with a method that needs something
// first: a WebAuthn request for the browser, or an SMS code sent. TOTP and
// backup codes need none (the zero Challenge is returned).
func (s *Service) StepUpChallenge(ctx context.Context, p account.Principal, method string) (Challenge, error) {
	return s.challenge(ctx, p.Account.ID, method)
}

// StepUp verifies a second factor for a signed-in session and returns the
// time to store as the session's SecondFactorAt (the caller updates the
// session). response is what the method's Verify takes: a code, or the
// WebAuthn envelope.
func (s *Service) StepUp(ctx context.Context, p account.Principal, method, response string, c account.Client) (time.Time, error) {
	if err := s.verify(ctx, p.Account.ID, method, response); err != nil {
		return time.Time{}, err
	}
	now := s.clock.Now()
	if err := s.record(ctx, s.store, Event{Type: EventStepUp, AccountID: p.Account.ID, Client: c,
		Data: map[string]any{"method": method}}); err != nil {
		return time.Time{}, apperr.Wrap(err)
	}
	return now, nil
}

// verify dispatches to a method's check.
func (s *Service) verify(ctx context.Context, accountID, method, response string) error {
	switch method {
	case MethodTOTP:
		return s.verifyTOTP(ctx, accountID, response)
	case MethodWebAuthn:
		return s.verifyWebAuthn(ctx, accountID, response)
	case MethodSMS:
		if s.sms == nil {
			return errNotEnrolled
		}
		return s.verifySMS(ctx, accountID, response, store.SMSPurposeVerify)
	case MethodBackupCode:
		return s.verifyBackupCode(ctx, accountID, response)
	default:
		return apperr.Field(apperr.Invalid, "method", "Choose one of your two-factor methods.")
	}
}

// Function is something an account holder can protect with a second factor.
type Function string

const (
	FunctionSignIn  Function = "signin"
	FunctionFunding Function = "funding" // withdrawals, new withdrawal and deposit addresses
	FunctionTrading Function = "trading" // trading actions on the web
)

// Settings are the owner's choices of where a second factor is required
// (Kraken's "2FA per function"). Step-up for changes to 2FA itself is always
// on and not a setting.
type Settings struct {
	SignIn  bool
	Funding bool
	Trading bool
}

// defaultSettings apply until the owner saves their own: sign-in and funding
// protected, trading not (a code per order is more than most people want).
func (s *Service) defaultSettings() Settings {
	return Settings{SignIn: true, Funding: true, Trading: false}
}

// Policy is the platform's 2FA policy.
type Policy struct {
	// MandatoryForAll: every account must enrol a second factor and cannot
	// turn it off for sign-in.
	MandatoryForAll bool
	// MandatoryForStaff: the same for support and admin accounts.
	MandatoryForStaff bool
	// StaffSecurityKey: staff accounts must have a security key (DESIGN.md);
	// with it, staff cannot remove their last key.
	StaffSecurityKey bool
}

func isStaff(r store.Role) bool { return r == store.RoleSupport || r == store.RoleAdmin }

func (p Policy) mandatory(r store.Role) bool {
	return p.MandatoryForAll || (p.MandatoryForStaff && isStaff(r))
}

// Settings returns the account's settings (the defaults until saved).
func (s *Service) Settings(ctx context.Context, accountID string) (Settings, error) {
	st, err := s.store.GetMFASettings(ctx, accountID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && st.UpdatedAt.IsZero()) {
		return s.defaultSettings(), nil
	}
	if err != nil {
		return Settings{}, apperr.Wrap(err)
	}
	return Settings{SignIn: st.SignIn, Funding: st.Funding, Trading: st.Trading}, nil
}

// UpdateSettings saves the owner's choices. It needs step-up; turning off
// sign-in protection is refused where the platform makes 2FA mandatory.
func (s *Service) UpdateSettings(ctx context.Context, p account.Principal, next Settings, c account.Client) (Settings, error) {
	if !next.SignIn && s.cfg.Policy.mandatory(p.Account.Role) {
		return Settings{}, apperr.Field(apperr.Forbidden, "signin",
			"Two-factor authentication at sign-in is required on this platform and cannot be turned off.")
	}
	err := s.store.InTx(ctx, func(q store.Queries) error {
		if err := s.requireStepUp(ctx, q, p); err != nil {
			return err
		}
		var prev Settings
		now := s.clock.Now()
		if _, err := q.UpdateMFASettings(ctx, p.Account.ID, func(st *store.MFASettings) error {
			prev = Settings{SignIn: st.SignIn, Funding: st.Funding, Trading: st.Trading}
			if st.UpdatedAt.IsZero() {
				prev = s.defaultSettings()
			}
			st.SignIn, st.Funding, st.Trading, st.UpdatedAt = next.SignIn, next.Funding, next.Trading, now
			return nil
		}); err != nil {
			return apperr.Wrap(err)
		}
		if prev == next {
			return nil
		}
		return s.record(ctx, q, Event{Type: EventSettingsChanged, AccountID: p.Account.ID, Client: c, Notify: true,
			Data:    map[string]any{"signin": next.SignIn, "funding": next.Funding, "trading": next.Trading},
			Summary: "Your two-factor settings were changed."})
	})
	if err != nil {
		return Settings{}, apperr.Wrap(err)
	}
	return next, nil
}

// Required reports whether acct needs a second factor for fn: the account
// has one and its settings (or the platform policy, for sign-in) ask for it.
// An account without any factor is never asked (see NeedsEnrolment for
// mandatory 2FA). The sign-in state machine calls it with FunctionSignIn;
// funding and trading adapters then check Fresh on the session.
func (s *Service) Required(ctx context.Context, acct store.Account, fn Function) (bool, error) {
	f, err := s.factors(ctx, s.store, acct.ID)
	if err != nil {
		return false, err
	}
	if f.count() == 0 {
		return false, nil
	}
	st, err := s.Settings(ctx, acct.ID)
	if err != nil {
		return false, err
	}
	switch fn {
	case FunctionSignIn:
		return st.SignIn || s.cfg.Policy.mandatory(acct.Role), nil
	case FunctionFunding:
		return st.Funding, nil
	case FunctionTrading:
		return st.Trading, nil
	}
	return false, errors.New("mfa: unknown function " + string(fn))
}

// NeedsEnrolment reports whether the platform policy requires acct to enrol
// a second factor (or, for staff, a security key) before it may do anything
// else; the adapter then sends the person to enrolment. It returns the
// method required ("" for any).
func (s *Service) NeedsEnrolment(ctx context.Context, acct store.Account) (bool, string, error) {
	f, err := s.factors(ctx, s.store, acct.ID)
	if err != nil {
		return false, "", err
	}
	pol := s.cfg.Policy
	if isStaff(acct.Role) && pol.StaffSecurityKey && (pol.MandatoryForStaff || pol.MandatoryForAll) && len(f.keys) == 0 {
		return true, MethodWebAuthn, nil
	}
	if pol.mandatory(acct.Role) && f.count() == 0 {
		return true, "", nil
	}
	return false, "", nil
}
