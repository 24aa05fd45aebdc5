package account

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

// SignOut revokes the session of token. Signing out a token that is
// unknown or already signed out is not an error.
func (s *Service) SignOut(ctx context.Context, sessionToken string, c Client) error {
	if sessionToken == "" || len(sessionToken) > maxTokenLen {
		return nil
	}
	key := tokenKey(sessionToken)
	sess, err := s.store.GetSessionByTokenHash(ctx, key[:])
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return apperr.Wrap(err)
	}
	defer s.cache.dropSession(sess.AccountID, sess.ID)
	if !sess.RevokedAt.IsZero() {
		return nil
	}
	now := s.now()
	err = s.store.InTx(ctx, func(tx store.Queries) error {
		if err := tx.RevokeSession(ctx, sess.AccountID, sess.ID, now); err != nil {
			return err
		}
		return s.record(ctx, tx, "session.signout", store.Account{ID: sess.AccountID}, c, sess.DeviceID,
			map[string]any{"session_id": sess.ID})
	})
	if errors.Is(err, store.ErrNotFound) { // signed out concurrently
		return nil
	}
	return apperr.Wrap(err)
}

// Sessions lists the account's live sessions, newest first, the current
// one marked. Token hashes are left out.
func (s *Service) Sessions(ctx context.Context, p Principal) ([]SessionView, error) {
	now := s.now()
	list, err := s.store.ListSessions(ctx, p.Account.ID, now)
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	names, err := s.deviceNames(ctx, p.Account.ID)
	if err != nil {
		return nil, err
	}
	out := make([]SessionView, 0, len(list))
	for _, sess := range list {
		current := sess.ID == p.Session.ID
		if current {
			sess.LastSeenAt = p.Session.LastSeenAt
		} else if now.Sub(sess.LastSeenAt) > s.cfg.SessionIdle+touchEvery {
			continue // idle: ended, though not revoked
		}
		sess.TokenHash = nil
		name := names[sess.DeviceID]
		if name == "" {
			name = deviceName(sess.UserAgent)
		}
		out = append(out, SessionView{Session: sess, DeviceName: name, Current: current})
	}
	return out, nil
}

func (s *Service) deviceNames(ctx context.Context, accountID string) (map[string]string, error) {
	devs, err := s.store.ListDevices(ctx, accountID)
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	m := make(map[string]string, len(devs))
	for _, d := range devs {
		m[d.ID] = d.Name
	}
	return m, nil
}

// RevokeSession revokes one of the principal's own sessions (the current
// one too: that is signing out). Another account's session, or one that
// has ended, is NotFound.
func (s *Service) RevokeSession(ctx context.Context, p Principal, sessionID string, c Client) error {
	now := s.now()
	err := s.store.InTx(ctx, func(tx store.Queries) error {
		if err := tx.RevokeSession(ctx, p.Account.ID, sessionID, now); err != nil {
			return err
		}
		return s.record(ctx, tx, "session.revoked", p.Account, c, p.Session.DeviceID,
			map[string]any{"session_id": sessionID, "current": sessionID == p.Session.ID})
	})
	if errors.Is(err, store.ErrNotFound) {
		return apperr.New(apperr.NotFound, "There is no such session among yours: it may have ended already.")
	}
	if err != nil {
		return apperr.Wrap(err)
	}
	s.cache.dropSession(p.Account.ID, sessionID)
	return nil
}

// RevokeOtherSessions revokes every session of the account but the current
// and returns how many it revoked.
func (s *Service) RevokeOtherSessions(ctx context.Context, p Principal, c Client) (int, error) {
	now := s.now()
	var n int
	err := s.store.InTx(ctx, func(tx store.Queries) error {
		var err error
		if n, err = tx.RevokeSessions(ctx, p.Account.ID, p.Session.ID, now); err != nil {
			return err
		}
		return s.record(ctx, tx, "session.revoked_others", p.Account, c, p.Session.DeviceID, map[string]any{"count": n})
	})
	if err != nil {
		return 0, apperr.Wrap(err)
	}
	s.cache.dropAccount(p.Account.ID)
	return n, nil
}

// Devices lists the account's devices, most recently seen first, the
// current one marked. Token hashes are left out.
func (s *Service) Devices(ctx context.Context, p Principal) ([]DeviceView, error) {
	devs, err := s.store.ListDevices(ctx, p.Account.ID)
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	out := make([]DeviceView, len(devs))
	for i, d := range devs {
		d.TokenHash = nil
		out[i] = DeviceView{Device: d, Current: d.ID == p.Session.DeviceID}
	}
	return out, nil
}

// activityPrefixes are the audit event types the activity list shows:
// sign-ins, sessions, devices and security changes.
var activityPrefixes = []string{"signin.", "session.", "device.", "password.", "account.secured", "anti_phishing.", "email.confirmed"}

// activityScan bounds how many recent audit events RecentActivity reads.
const activityScan = 500

// RecentActivity returns the latest sign-in and security events of the
// account, newest first (limit 1–100, default 20).
func (s *Service) RecentActivity(ctx context.Context, p Principal, limit int) ([]Activity, error) {
	if limit <= 0 {
		limit = 20
	}
	limit = min(limit, 100)
	evs, err := s.store.ListAudit(ctx, store.AuditFilter{AccountID: p.Account.ID, Desc: true, Limit: activityScan})
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	out := make([]Activity, 0, limit)
	for _, ev := range evs {
		if len(out) == limit {
			break
		}
		if !hasAnyPrefix(ev.Type, activityPrefixes) {
			continue
		}
		var data struct {
			Device    string `json:"device"`
			NewDevice bool   `json:"new_device"`
		}
		if ev.Data != "" {
			_ = json.Unmarshal([]byte(ev.Data), &data) // best effort: show what parses
		}
		if data.Device == "" && ev.UserAgent != "" {
			data.Device = deviceName(ev.UserAgent)
		}
		out = append(out, Activity{Time: ev.Time, Type: ev.Type, IP: ev.IP, Device: data.Device, DeviceID: ev.DeviceID, NewDevice: data.NewDevice})
	}
	return out, nil
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// SecureAccount follows the "this wasn't me" link of a security e-mail:
// revokes every session, withdraws the approval of every device, voids
// pending approval and reset links, and locks the account until support
// unlocks it.
// Returns TokenInvalid, TokenExpired or TokenUsed for a bad link.
func (s *Service) SecureAccount(ctx context.Context, linkToken string, c Client) error {
	const again = "If you think someone else is using your account, contact support now."
	if linkToken == "" || len(linkToken) > maxTokenLen {
		return tokenError(store.ErrNotFound, "link", again)
	}
	now := s.now()
	var accountID string
	err := s.store.InTx(ctx, func(tx store.Queries) error {
		t, err := tx.ConsumeToken(ctx, store.TokenSecureAccount, secrets.HashToken(linkToken), now)
		if err != nil {
			return tokenError(err, "link", again)
		}
		accountID = t.AccountID
		n, err := tx.RevokeSessions(ctx, t.AccountID, "", now)
		if err != nil {
			return err
		}
		a, err := tx.UpdateAccount(ctx, t.AccountID, func(a *store.Account) error {
			if a.LockedAt.IsZero() {
				a.LockedAt = now
				a.LockReason = "locked by owner from e-mail link"
			}
			a.UpdatedAt = now
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range []store.TokenKind{store.TokenDeviceApproval, store.TokenPasswordReset} {
			if err := tx.DeleteTokens(ctx, a.ID, k); err != nil {
				return err
			}
		}
		// Any approved device may be the intruder's: after the unlock each
		// must be approved again.
		devs, err := tx.ListDevices(ctx, a.ID)
		if err != nil {
			return err
		}
		for _, d := range devs {
			if d.ApprovedAt.IsZero() {
				continue
			}
			if _, err := tx.UpdateDevice(ctx, d.ID, func(d *store.Device) error {
				d.ApprovedAt = time.Time{}
				return nil
			}); err != nil {
				return err
			}
		}
		if err := s.mail(ctx, tx, a, notify.TemplateAccountLocked, nil); err != nil {
			return err
		}
		return s.record(ctx, tx, "account.secured", a, c, "", map[string]any{"sessions_revoked": n})
	})
	if err != nil {
		return apperr.Wrap(err)
	}
	s.cache.dropAccount(accountID)
	s.locked(accountID)
	return nil
}

// maxAntiPhishingRunes bounds the anti-phishing code.
const maxAntiPhishingRunes = 32

// SetAntiPhishingCode sets (or clears, with "") the phrase shown at the top
// of every e-mail moat sends the owner: 1–32 printable characters, no "<"
// or ">". Setting it sends an e-mail that shows the new code. Returns
// Invalid (field "anti_phishing_code") for an unacceptable phrase.
func (s *Service) SetAntiPhishingCode(ctx context.Context, p Principal, code string, c Client) error {
	code = strings.TrimSpace(code)
	if err := checkAntiPhishingCode(code); err != nil {
		return err
	}
	now := s.now()
	err := s.store.InTx(ctx, func(tx store.Queries) error {
		a, err := tx.UpdateAccount(ctx, p.Account.ID, func(a *store.Account) error {
			a.AntiPhishingCode = code
			a.UpdatedAt = now
			return nil
		})
		if err != nil {
			return err
		}
		if code == "" {
			return s.record(ctx, tx, "anti_phishing.cleared", a, c, p.Session.DeviceID, nil)
		}
		if err := s.mail(ctx, tx, a, notify.TemplateAntiPhishingSet, nil); err != nil {
			return err
		}
		// The code itself is not recorded: a phisher who read the log
		// could copy it.
		return s.record(ctx, tx, "anti_phishing.set", a, c, p.Session.DeviceID, nil)
	})
	if err != nil {
		return apperr.Wrap(err)
	}
	s.cache.dropAccount(p.Account.ID)
	return nil
}

func checkAntiPhishingCode(code string) error {
	if code == "" {
		return nil
	}
	bad := func(msg string) error { return apperr.Field(apperr.Invalid, "anti_phishing_code", msg) }
	if !utf8.ValidString(code) {
		return bad("Use ordinary letters, digits and punctuation.")
	}
	if utf8.RuneCountInString(code) > maxAntiPhishingRunes {
		return bad("Use at most 32 characters: a short word or phrase you will recognise.")
	}
	for _, r := range code {
		if r == '<' || r == '>' {
			return bad("The characters < and > cannot be used. Choose a word or phrase without them.")
		}
		if !unicode.IsPrint(r) {
			return bad("Use letters, digits, spaces and punctuation only: no line breaks or control characters.")
		}
	}
	return nil
}

// ChangePassword replaces the password after checking the current one;
// revokes the account's other sessions, voids password-reset links, starts
// the security-change hold (withdrawals pause) and e-mails the owner.
// When the account has a second factor, the session must have verified it
// recently (step-up): otherwise StepUpNeeded, before the current password
// is even looked at, so a stolen session cannot use the form to test
// passwords. Returns BadCredential (field "current_password") for a wrong
// current password, RateLimited after too many, and WeakPassword (field
// "new_password") for an unacceptable new one.
func (s *Service) ChangePassword(ctx context.Context, p Principal, current, next string, c Client) error {
	if err := s.requireStepUp(ctx, p); err != nil {
		return err
	}
	key := "pwchange:" + p.Account.ID
	n, err := s.counter.Count(ctx, key, s.cfg.ThrottleWindow)
	if err != nil {
		return apperr.Wrap(err)
	}
	now := s.now()
	if n >= passwordChangeLimit {
		wait := windowEnd(now, s.cfg.ThrottleWindow).Sub(now)
		return &apperr.Error{Code: apperr.RateLimited, RetryAfter: wait, Field: "current_password",
			Message: "Too many wrong current passwords. Try again in " + humanDuration(wait) + "."}
	}
	a, err := s.store.GetAccount(ctx, p.Account.ID)
	if err != nil {
		return apperr.Wrap(err)
	}
	ok := false
	if len(current) <= maxPasswordBytes {
		ok, _, err = s.hasher.Verify(current, a.PasswordHash)
		if err != nil {
			s.log.Error("account: stored password hash unreadable", "account", a.ID, "err", err)
		}
	}
	if !ok {
		if _, err := s.counter.Incr(ctx, key, 1, s.cfg.ThrottleWindow); err != nil {
			return apperr.Wrap(err)
		}
		return apperr.Field(apperr.BadCredential, "current_password", "That is not your current password. Check it and try again.")
	}
	if next == current {
		return apperr.Field(apperr.WeakPassword, "new_password", "The new password is the same as the current one. Choose a different one.")
	}
	if err := s.policy.Check(next, a.Email, s.cfg.Brand); err != nil {
		if e, ok := apperr.As(err); ok {
			e.Field = "new_password"
		}
		return err
	}
	hash, err := s.hasher.Hash(next)
	if err != nil {
		return apperr.Wrap(err)
	}
	err = s.store.InTx(ctx, func(tx store.Queries) error {
		a, err := tx.UpdateAccount(ctx, a.ID, func(a *store.Account) error {
			a.PasswordHash = hash
			a.PasswordChangedAt = now
			if hold := now.Add(s.cfg.SecurityChangeHold); hold.After(a.SecurityHoldUntil) {
				a.SecurityHoldUntil = hold
			}
			a.UpdatedAt = now
			return nil
		})
		if err != nil {
			return err
		}
		revoked, link, err := s.passwordWritten(ctx, tx, a, p.Session.ID, now)
		if err != nil {
			return err
		}
		if err := s.mail(ctx, tx, a, notify.TemplatePasswordChanged, map[string]string{
			"Time": notify.Time(now), "IP": notify.OrUnknown(c.IP), "SecureLink": link,
		}); err != nil {
			return err
		}
		return s.record(ctx, tx, "password.changed", a, c, p.Session.DeviceID, map[string]any{"sessions_revoked": revoked})
	})
	if err != nil {
		return apperr.Wrap(err)
	}
	s.cache.dropAccount(a.ID)
	if err := s.counter.Reset(ctx, key, s.cfg.ThrottleWindow); err != nil {
		s.log.Warn("account: resetting password-change counter failed", "err", err)
	}
	return nil
}

// passwordWritten does, in the caller's transaction, what a new password
// (changed or reset) takes with it: every session but keepSession (empty:
// all) revoked, every password-reset link voided, and a fresh "this wasn't
// me" link for the e-mail that reports the change.
func (s *Service) passwordWritten(ctx context.Context, tx store.Queries, a store.Account, keepSession string, now time.Time) (revoked int, secureLink string, err error) {
	if revoked, err = tx.RevokeSessions(ctx, a.ID, keepSession, now); err != nil {
		return 0, "", err
	}
	if err := tx.DeleteTokens(ctx, a.ID, store.TokenPasswordReset); err != nil {
		return 0, "", err
	}
	secureLink, err = s.secureLink(ctx, tx, a, now)
	return revoked, secureLink, err
}
