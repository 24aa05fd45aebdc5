package mfa

import (
	"context"
	"errors"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/mfa/backup"
	"github.com/moat-dev/moat/internal/mfa/sms"
	"github.com/moat-dev/moat/internal/store"
)

// Methods is an account's second factors as its owner sees them.
type Methods struct {
	// Enrolled lists the methods set up, in sign-in preference order.
	Enrolled []string
	// TOTP is set when an authenticator app is enrolled (confirmed).
	TOTP *AppView
	// SecurityKeys are the registered security keys and passkeys, oldest
	// first.
	SecurityKeys []KeyView
	// MaxSecurityKeys is the limit, for "3 of 5" and disabling "Add".
	MaxSecurityKeys int
	// Phone is set when a phone is verified.
	Phone *PhoneView
	// SMSAvailable: the platform can send text messages.
	SMSAvailable bool
	// BackupCodesRemaining counts unused backup codes.
	BackupCodesRemaining int
	Settings             Settings
}

// AppView describes the enrolled authenticator app.
type AppView struct {
	CreatedAt  time.Time
	LastUsedAt time.Time
}

// KeyView describes a security key or passkey.
type KeyView struct {
	ID         string
	Name       string
	Passkey    bool
	CreatedAt  time.Time
	LastUsedAt time.Time
}

// PhoneView describes the SMS phone.
type PhoneView struct {
	// Masked is the number with most digits hidden.
	Masked     string
	CreatedAt  time.Time
	LastUsedAt time.Time
}

// Methods returns the account's second factors.
func (s *Service) Methods(ctx context.Context, accountID string) (Methods, error) {
	m := Methods{MaxSecurityKeys: s.cfg.MaxSecurityKeys, SMSAvailable: s.sms != nil}
	f, err := s.factors(ctx, s.store, accountID)
	if err != nil {
		return Methods{}, err
	}
	for _, k := range f.keys {
		m.SecurityKeys = append(m.SecurityKeys, keyView(k))
	}
	if f.totp != nil {
		m.TOTP = &AppView{CreatedAt: f.totp.ConfirmedAt, LastUsedAt: f.totp.LastUsedAt}
	}
	if f.phone != nil {
		m.Phone = &PhoneView{Masked: sms.MaskPhone(f.phone.Number), CreatedAt: f.phone.VerifiedAt, LastUsedAt: f.phone.LastUsedAt}
	}
	if m.BackupCodesRemaining, err = s.store.CountBackupCodes(ctx, accountID); err != nil {
		return Methods{}, apperr.Wrap(err)
	}
	m.Enrolled = f.names(m.BackupCodesRemaining)
	if m.Settings, err = s.Settings(ctx, accountID); err != nil {
		return Methods{}, err
	}
	return m, nil
}

// EnrolledMethods lists the account's usable second factors in sign-in
// preference order (security key, app, SMS, backup code).
func (s *Service) EnrolledMethods(ctx context.Context, accountID string) ([]string, error) {
	f, err := s.factors(ctx, s.store, accountID)
	if err != nil {
		return nil, err
	}
	n, err := s.store.CountBackupCodes(ctx, accountID)
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	return f.names(n), nil
}

func keyView(k store.WebAuthnCredential) KeyView {
	return KeyView{ID: k.ID, Name: k.Name, Passkey: k.Discoverable, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt}
}

// factorSet is what an account has enrolled (confirmed factors only).
type factorSet struct {
	totp  *store.TOTPCredential
	keys  []store.WebAuthnCredential
	phone *store.SMSPhone
}

// count is the number of primary factors (backup codes are a fallback, not
// a factor of their own).
func (f factorSet) count() int {
	n := len(f.keys)
	if f.totp != nil {
		n++
	}
	if f.phone != nil {
		n++
	}
	return n
}

func (f factorSet) names(backupCodes int) []string {
	var out []string
	if len(f.keys) > 0 {
		out = append(out, MethodWebAuthn)
	}
	if f.totp != nil {
		out = append(out, MethodTOTP)
	}
	if f.phone != nil {
		out = append(out, MethodSMS)
	}
	if backupCodes > 0 && f.count() > 0 {
		out = append(out, MethodBackupCode)
	}
	return out
}

func (s *Service) factors(ctx context.Context, q store.Queries, accountID string) (factorSet, error) {
	var f factorSet
	t, err := q.GetTOTP(ctx, accountID)
	switch {
	case err == nil:
		if !t.ConfirmedAt.IsZero() {
			f.totp = &t
		}
	case !errors.Is(err, store.ErrNotFound):
		return f, apperr.Wrap(err)
	}
	if f.keys, err = q.ListWebAuthnCredentials(ctx, accountID); err != nil {
		return f, apperr.Wrap(err)
	}
	p, err := q.GetSMSPhone(ctx, accountID)
	switch {
	case err == nil:
		if !p.VerifiedAt.IsZero() {
			f.phone = &p
		}
	case !errors.Is(err, store.ErrNotFound):
		return f, apperr.Wrap(err)
	}
	return f, nil
}

// lock serialises factor changes of one account for the rest of the
// transaction q (see store.MFAQueries.UpdateMFASettings) and records the change time.
func (s *Service) lock(ctx context.Context, q store.Queries, accountID string) error {
	now := s.clock.Now()
	_, err := q.UpdateMFASettings(ctx, accountID, func(st *store.MFASettings) error {
		if st.UpdatedAt.IsZero() {
			d := s.defaultSettings()
			st.SignIn, st.Funding, st.Trading = d.SignIn, d.Funding, d.Trading
			st.UpdatedAt = now
		}
		st.FactorsChangedAt = now
		return nil
	})
	return apperr.Wrap(err)
}

// requireStepUp refuses a change unless the session verified a second
// factor recently, or the account has none yet (then there is nothing to
// step up with: the first factor is added on the strength of the session).
func (s *Service) requireStepUp(ctx context.Context, q store.Queries, p account.Principal) error {
	if Fresh(p.Session, s.clock.Now(), s.cfg.StepUpWithin) {
		return nil
	}
	f, err := s.factors(ctx, q, p.Account.ID)
	if err != nil {
		return err
	}
	if f.count() == 0 {
		return nil
	}
	return errStepUp
}

// added runs inside the transaction that added a factor, after it: when it
// is the account's first, a set of backup codes is generated and returned
// (to show once). wasFirst is decided before the add.
func (s *Service) firstFactorCodes(ctx context.Context, q store.Queries, accountID string, wasFirst bool) ([]string, error) {
	if !wasFirst {
		return nil, nil
	}
	return s.replaceBackupCodes(ctx, q, accountID)
}

// removed runs inside the transaction that removed a factor: it records the
// event and, when no factor is left, voids the backup codes and flags the
// event so the owner's e-mail says the account is now protected by the
// password alone.
func (s *Service) removed(ctx context.Context, q store.Queries, p account.Principal, c account.Client, ev Event) error {
	f, err := s.factors(ctx, q, p.Account.ID)
	if err != nil {
		return err
	}
	ev.AccountID, ev.Client, ev.Notify = p.Account.ID, c, true
	if f.count() == 0 {
		if err := q.ReplaceBackupCodes(ctx, p.Account.ID, nil); err != nil {
			return apperr.Wrap(err)
		}
		ev.LastFactorRemoved = true
		ev.Summary += " Your account no longer has two-factor authentication: anyone with your password can sign in. Add an authenticator app or a security key in Security settings."
	}
	return s.record(ctx, q, ev)
}

// checkLastFactorPolicy refuses removing the last factor (or a staff
// account's last security key) when the platform makes 2FA mandatory.
func (s *Service) checkRemovalPolicy(ctx context.Context, q store.Queries, p account.Principal, method string) error {
	f, err := s.factors(ctx, q, p.Account.ID)
	if err != nil {
		return err
	}
	pol := s.cfg.Policy
	if pol.mandatory(p.Account.Role) && f.count() <= 1 {
		return apperr.New(apperr.Forbidden,
			"Two-factor authentication is required on this platform. Add another method before you remove this one.")
	}
	if method == MethodWebAuthn && pol.StaffSecurityKey && isStaff(p.Account.Role) && len(f.keys) <= 1 {
		return apperr.New(apperr.Forbidden,
			"Staff accounts must keep a security key. Register another key before you remove this one.")
	}
	return nil
}

// replaceBackupCodes makes a new set, voiding the old one, and returns the
// codes formatted for display.
func (s *Service) replaceBackupCodes(ctx context.Context, q store.Queries, accountID string) ([]string, error) {
	codes, err := backup.Generate(s.rand, s.cfg.BackupCodes)
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	now := s.clock.Now()
	recs := make([]store.BackupCode, len(codes))
	for i, c := range codes {
		n, err := backup.Normalize(c)
		if err != nil {
			return nil, apperr.Wrap(err)
		}
		recs[i] = store.BackupCode{AccountID: accountID, Hash: backup.Hash(s.hashKey, n), CreatedAt: now}
	}
	if err := q.ReplaceBackupCodes(ctx, accountID, recs); err != nil {
		return nil, apperr.Wrap(err)
	}
	return codes, nil
}
