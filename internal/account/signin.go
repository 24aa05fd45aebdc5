package account

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

// maxTokenLen bounds every token a client sends us; ours are 43 characters.
const maxTokenLen = 128

// maxPasswordBytes bounds the password hashed at sign-in; the policy allows
// 256 characters (at most 1024 bytes).
const maxPasswordBytes = 4096

func errBadCredential() error {
	return apperr.New(apperr.BadCredential, "Invalid username or password")
}

// SignIn verifies email and password and starts the state machine.
//
// Order matters: the per-IP limit first, then (unless the request comes
// from a device the owner approved) the account's delay or pause, then the
// password. Wrong e-mail or password returns BadCredential "Invalid
// username or password" either way, after the same hashing work.
// Throttling returns RateLimited or AccountLocked with RetryAfter (the same
// for addresses with and without an account). Only after a correct password
// does it say that the account is locked (AccountLocked) or unconfirmed
// (Unconfirmed).
func (s *Service) SignIn(ctx context.Context, email, password string, c Client) (*SignInResult, error) {
	now := s.now()
	if err := s.checkIP(ctx, c.IP, now); err != nil {
		return nil, err
	}
	e, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if len(password) > maxPasswordBytes {
		return nil, errBadCredential()
	}
	a, err := s.store.GetAccountByEmail(ctx, e)
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, apperr.Wrap(err)
	}

	// The device the request comes from, if the account knows it.
	var dev store.Device
	var knownDevice bool
	if exists {
		if dev, knownDevice, err = s.clientDevice(ctx, a.ID, c); err != nil {
			return nil, err
		}
	}
	trusted := knownDevice && !dev.ApprovedAt.IsZero()

	if !trusted {
		if err := s.checkAccount(ctx, e, now); err != nil {
			return nil, err
		}
	}

	ok, rehash := false, false
	if exists {
		ok, rehash, err = s.hasher.Verify(password, a.PasswordHash)
		if err != nil {
			s.log.Error("account: stored password hash unreadable", "account", a.ID, "err", err)
			ok = false
		}
	} else {
		s.hasher.DummyVerify(password)
	}
	if !ok {
		return nil, s.signInFailed(ctx, e, a, exists, trusted, dev, c, now)
	}

	if !a.LockedAt.IsZero() {
		return nil, apperr.New(apperr.AccountLocked,
			"This account is locked, so nobody can sign in to it. Contact support to unlock it.")
	}
	if a.EmailConfirmedAt.IsZero() {
		return nil, apperr.New(apperr.Unconfirmed,
			"Confirm your e-mail address first: open the link in the e-mail we sent you when you signed up. If you cannot find it or it has expired, ask for a new one.")
	}
	if rehash {
		s.rehash(ctx, a, password)
	}
	n, err := s.needs(ctx, a)
	if err != nil {
		return nil, err
	}
	if !knownDevice {
		dev = deviceFor(a.ID, c, now)
	}
	return s.begin(ctx, a, dev, knownDevice, trusted, n, signInHow{method: methodPassword}, c, now)
}

// clientDevice finds the account's device that c's device token belongs
// to; known is false when there is none.
func (s *Service) clientDevice(ctx context.Context, accountID string, c Client) (dev store.Device, known bool, err error) {
	if c.DeviceToken == "" || len(c.DeviceToken) > maxTokenLen {
		return dev, false, nil
	}
	dev, err = s.store.GetDeviceByTokenHash(ctx, accountID, secrets.HashToken(c.DeviceToken))
	switch {
	case err == nil:
		return dev, true, nil
	case errors.Is(err, store.ErrNotFound):
		return store.Device{}, false, nil
	}
	return store.Device{}, false, apperr.Wrap(err)
}

// deviceFor describes the new device c signs in from, not stored yet.
func deviceFor(accountID string, c Client, now time.Time) store.Device {
	return store.Device{AccountID: accountID, Name: deviceName(c.UserAgent), LastIP: c.IP, CreatedAt: now}
}

// Sign-in methods, as the audit log records them.
const (
	methodPassword = "password"
	methodPasskey  = "passkey"
)

// signInHow is how a sign-in proves itself, for the state machine and the
// audit log.
type signInHow struct {
	// method is methodPassword or methodPasskey.
	method string
	// factorAt is when a second factor was verified (zero: not yet). A
	// passkey is verified before the sign-in begins.
	factorAt time.Time
	// factor names the factor verified by the step that completes the
	// sign-in, if any.
	factor string
}

// signInFailed counts and records a wrong password and returns the error
// to show.
func (s *Service) signInFailed(ctx context.Context, e string, a store.Account, exists, trusted bool, dev store.Device, c Client, now time.Time) error {
	if err := s.countFailure(ctx, e, a, exists, trusted, dev.ID, c, now, "password"); err != nil {
		return err
	}
	return errBadCredential()
}

// countFailure counts a failed sign-in step (a wrong password, device code
// or second factor) against address e, unless it came from a device the
// owner approved; records it for an existing account; and when this
// failure starts a pause, e-mails the owner, once. Counting wrong codes too
// means that knowing the password does not buy unlimited guesses at the
// code: the failures add up across sign-ins until one completes.
func (s *Service) countFailure(ctx context.Context, e string, a store.Account, exists, trusted bool, deviceID string, c Client, now time.Time, step string) error {
	var n int64
	if !trusted {
		var err error
		if n, err = s.accountFailed(ctx, e, now); err != nil {
			return err
		}
	}
	if !exists {
		return nil
	}
	err := s.store.InTx(ctx, func(tx store.Queries) error {
		if err := s.record(ctx, tx, "signin.failed", a, c, deviceID, map[string]any{"step": step, "trusted_device": trusted}); err != nil {
			return err
		}
		if trusted || n != int64(s.cfg.LockAfter) {
			return nil
		}
		until := now.Add(s.cfg.LockFor)
		link, err := s.secureLink(ctx, tx, a, now)
		if err != nil {
			return err
		}
		if err := s.mail(ctx, tx, a, notify.TemplateSignInLocked, map[string]string{
			"Until": notify.Time(until), "IP": notify.OrUnknown(c.IP), "SecureLink": link,
		}); err != nil {
			return err
		}
		return s.record(ctx, tx, "signin.locked", a, c, deviceID, map[string]any{"until": until, "failures": n})
	})
	return apperr.Wrap(err)
}

// rehash replaces a hash made with old parameters or an imported scheme.
// It is best effort: failing leaves the old, still valid hash.
func (s *Service) rehash(ctx context.Context, a store.Account, password string) {
	h, err := s.hasher.Hash(password)
	if err == nil {
		_, err = s.store.UpdateAccount(ctx, a.ID, func(cur *store.Account) error {
			if cur.PasswordHash == a.PasswordHash { // not changed meanwhile
				cur.PasswordHash = h
			}
			return nil
		})
	}
	if err != nil {
		s.log.Warn("account: password rehash failed", "account", a.ID, "err", err)
	}
}

// begin continues a sign-in after the password (or the passkey): it issues
// the session at once when nothing else is required, or creates the pending
// sign-in and sends the device-approval e-mail.
func (s *Service) begin(ctx context.Context, a store.Account, dev store.Device, knownDevice, trusted bool, n signInNeeds, how signInHow, c Client, now time.Time) (*SignInResult, error) {
	newDevice := !trusted
	needApproval := newDevice && s.cfg.DeviceApproval
	needFactor := n.factor && how.factorAt.IsZero()

	if !needApproval && !needFactor {
		enrol, err := s.mustEnrol(ctx, a)
		if err != nil {
			return nil, err
		}
		var issued *IssuedSession
		err = s.store.InTx(ctx, func(tx store.Queries) error {
			deviceToken := ""
			if !trusted {
				var err error
				if deviceToken, err = secrets.NewToken(s.rand); err != nil {
					return err
				}
				if dev, err = s.saveDevice(ctx, tx, dev, knownDevice, deviceToken); err != nil {
					return err
				}
			}
			var err error
			issued, err = s.issue(ctx, tx, a, dev, newDevice, how, deviceToken, c, now)
			return err
		})
		if err != nil {
			return nil, apperr.Wrap(err)
		}
		if err := s.signedIn(ctx, a.Email, newDevice); err != nil {
			return nil, err
		}
		s.signedInWith(ctx, a.ID, issued.Session.SignInFactor)
		return enrol.done(issued), nil
	}

	pendingToken, err := secrets.NewToken(s.rand)
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	id, err := secrets.NewID(s.rand)
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	p := store.PendingSignIn{
		ID: id, TokenHash: secrets.HashToken(pendingToken), AccountID: a.ID,
		NewDevice: newDevice, Client: clientKind(c), IP: c.IP, UserAgent: c.UserAgent,
		FactorAt:  how.factorAt,
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.DeviceCodeTTL),
	}
	if needApproval {
		p.State = store.StateDeviceApproval
	} else {
		p.State = store.StateSecondFactor
	}
	err = s.store.InTx(ctx, func(tx store.Queries) error {
		if !knownDevice {
			var err error
			if dev, err = s.saveDevice(ctx, tx, dev, false, s.deviceTokenFor(pendingToken)); err != nil {
				return err
			}
		}
		p.DeviceID = dev.ID
		if needApproval {
			code, err := secrets.NewCode(s.rand, 6)
			if err != nil {
				return err
			}
			p.CodeHash = s.codeHash(p.ID, code)
			linkToken, err := s.newToken(ctx, tx, store.TokenDeviceApproval, a.ID, p.ID, now, s.cfg.DeviceCodeTTL)
			if err != nil {
				return err
			}
			secure, err := s.secureLink(ctx, tx, a, now)
			if err != nil {
				return err
			}
			if err := s.mail(ctx, tx, a, notify.TemplateNewDeviceCode, map[string]string{
				"Code": code, "Link": s.mailer.Link(PathApproveDevice, linkToken), "SecureLink": secure,
				"IP": notify.OrUnknown(c.IP), "Device": notify.OrUnknown(dev.Name), "Time": notify.Time(now),
			}); err != nil {
				return err
			}
			if err := s.record(ctx, tx, "signin.device_approval_sent", a, c, dev.ID, map[string]any{"device": dev.Name, "method": how.method}); err != nil {
				return err
			}
		} else if err := s.record(ctx, tx, "signin.second_factor_required", a, c, dev.ID, map[string]any{"device": dev.Name}); err != nil {
			return err
		}
		return tx.CreatePendingSignIn(ctx, p)
	})
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	return s.result(p, pendingToken, n.factors), nil
}

// saveDevice stores a new device (or gives a known one a new token).
func (s *Service) saveDevice(ctx context.Context, tx store.Queries, dev store.Device, known bool, token string) (store.Device, error) {
	if known {
		return tx.UpdateDevice(ctx, dev.ID, func(d *store.Device) error {
			d.TokenHash = secrets.HashToken(token)
			return nil
		})
	}
	id, err := secrets.NewID(s.rand)
	if err != nil {
		return dev, err
	}
	dev.ID, dev.TokenHash = id, secrets.HashToken(token)
	return dev, tx.CreateDevice(ctx, dev)
}

// deviceTokenFor derives the device token a pending sign-in hands out when
// it completes. The service stores only hashes, so the token cannot be kept
// until then; deriving it from the pending token (which the completing
// client presents) under the service key avoids storing it.
func (s *Service) deviceTokenFor(pendingToken string) string {
	m := hmac.New(sha256.New, s.codeKey)
	m.Write([]byte("moat device token\x00"))
	m.Write([]byte(pendingToken))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// codeHash is the stored form of a device-approval code, bound to its
// pending sign-in so a code is useless for any other.
func (s *Service) codeHash(pendingID, code string) []byte {
	return secrets.KeyedHash(s.codeKey, "device code\x00"+pendingID+"\x00"+code)
}

func clientKind(c Client) string {
	if c.Kind == "api" {
		return "api"
	}
	return "web"
}

// result describes where pending sign-in p stands.
func (s *Service) result(p store.PendingSignIn, pendingToken string, factors []string) *SignInResult {
	switch p.State {
	case store.StateDeviceApproval:
		return &SignInResult{Step: StepDeviceApproval, PendingToken: pendingToken}
	default:
		return &SignInResult{Step: StepSecondFactor, PendingToken: pendingToken, Factors: factors}
	}
}

// The pending sign-in state machine.
//
// Every transition goes through advance: it re-reads the pending sign-in
// inside one atomic store update, applies the caller's step, and lets next
// decide the new state. A session is issued only when next says every
// required step is done, in the same transaction that marks the pending
// sign-in done, so two concurrent completions cannot both issue one.

// next is the one place that decides what a pending sign-in still needs:
// device approval (when required and the device is not approved), then a
// second factor (when the account must give one at sign-in and none was
// verified), then nothing: done. StateDone is terminal.
func (s *Service) next(p *store.PendingSignIn, dev store.Device, n signInNeeds) store.SignInState {
	switch {
	case p.State == store.StateDone:
		return store.StateDone
	case s.cfg.DeviceApproval && dev.ApprovedAt.IsZero():
		return store.StateDeviceApproval
	case n.factor && p.FactorAt.IsZero():
		return store.StateSecondFactor
	}
	return store.StateDone
}

// pendingUsable says why p can no longer be used, or nil.
func pendingUsable(p *store.PendingSignIn, now time.Time) error {
	switch {
	case p.State == store.StateDone:
		return apperr.New(apperr.TokenUsed, "This sign-in is already complete. Sign in again if you were signed out.")
	case p.Attempts >= maxCodeAttempts:
		return apperr.New(apperr.TokenExpired, "Too many wrong codes: this sign-in was stopped to protect the account. Sign in again to get a new code.")
	case !now.Before(p.ExpiresAt):
		return apperr.New(apperr.TokenExpired, "This sign-in took too long and has expired. Sign in again.")
	}
	return nil
}

func errPendingUnknown() error {
	return apperr.New(apperr.Unauthorized, "This sign-in is not valid any more. Sign in again.")
}

// loadPending finds the pending sign-in of token and checks that it is
// still usable.
func (s *Service) loadPending(ctx context.Context, token string, now time.Time) (store.PendingSignIn, error) {
	if token == "" || len(token) > maxTokenLen {
		return store.PendingSignIn{}, errPendingUnknown()
	}
	p, err := s.store.GetPendingSignIn(ctx, secrets.HashToken(token))
	if errors.Is(err, store.ErrNotFound) {
		return p, errPendingUnknown()
	}
	if err != nil {
		return p, apperr.Wrap(err)
	}
	return p, pendingUsable(&p, now)
}

// stepFunc applies one step to a pending sign-in inside its atomic update.
// It may change p and dev. A *failedAttempt error is a counted failure (a
// wrong code): p is still written, with Attempts raised, and the wrapped
// error is returned. Any other error writes nothing.
type stepFunc func(p *store.PendingSignIn, dev *store.Device) error

// failedAttempt marks a step's error as a wrong answer that counts.
type failedAttempt struct{ err error }

func (f *failedAttempt) Error() string { return f.err.Error() }

// advance runs step on the pending sign-in of pendingToken (p0 is a copy
// loaded by the caller) and moves it on. factor names the second factor the
// step verifies, if it does.
//
// What the sign-in requires (second factor, enrolment) is decided before
// the transaction from the account as it is now, so a failure there writes
// nothing.
func (s *Service) advance(ctx context.Context, pendingToken string, p0 store.PendingSignIn, c Client, factor string, step stepFunc) (*SignInResult, error) {
	a0, err := s.store.GetAccount(ctx, p0.AccountID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errPendingUnknown()
	}
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	n, err := s.needs(ctx, a0)
	if err != nil {
		return nil, err
	}
	enrol, err := s.mustEnrol(ctx, a0)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var res *SignInResult
	var soft error
	var a store.Account
	var deviceID, failedStep string
	err = s.store.InTx(ctx, func(tx store.Queries) error {
		res, soft = nil, nil
		var err error
		if a, err = tx.GetAccount(ctx, p0.AccountID); err != nil {
			return err
		}
		dev, err := tx.GetDevice(ctx, p0.DeviceID)
		if err != nil {
			return err
		}
		wasApproved := !dev.ApprovedAt.IsZero()
		how := signInHow{method: methodPassword}
		p, err := tx.UpdatePendingSignIn(ctx, p0.ID, func(p *store.PendingSignIn) error {
			if err := pendingUsable(p, now); err != nil {
				return err
			}
			if !a.LockedAt.IsZero() {
				return apperr.New(apperr.AccountLocked, "This account is locked, so nobody can sign in to it. Contact support to unlock it.")
			}
			if pendingStale(p, a) {
				return errPendingStale()
			}
			// A factor verified before this step means a passkey: the
			// password flow asks for its factor only once the device is
			// approved, and the step that verifies it completes the
			// sign-in.
			how = signInHow{method: methodPassword}
			if !p.FactorAt.IsZero() {
				how.method = methodPasskey
			}
			if step != nil {
				failedStep = string(p.State)
				err := step(p, &dev)
				var f *failedAttempt
				if errors.As(err, &f) {
					soft = f.err
					p.Attempts++
					return nil
				}
				if err != nil {
					return err
				}
			}
			p.State = s.next(p, dev, n)
			return nil
		})
		if errors.Is(err, store.ErrNotFound) {
			return errPendingUnknown()
		}
		if err != nil {
			return err
		}
		deviceID = dev.ID
		if soft != nil {
			if p.Attempts >= maxCodeAttempts {
				return s.record(ctx, tx, "signin.voided", a, c, dev.ID, map[string]any{"attempts": p.Attempts})
			}
			return nil
		}
		if !wasApproved && !dev.ApprovedAt.IsZero() {
			if dev, err = tx.UpdateDevice(ctx, dev.ID, func(d *store.Device) error {
				if d.ApprovedAt.IsZero() {
					d.ApprovedAt = now
				}
				return nil
			}); err != nil {
				return err
			}
			if err := s.record(ctx, tx, "device.approved", a, c, dev.ID, map[string]any{"method": "code", "device": dev.Name}); err != nil {
				return err
			}
		}
		if p.State != store.StateDone {
			res = s.result(p, pendingToken, n.factors)
			return nil
		}
		how.factorAt = p.FactorAt
		if how.method == methodPassword {
			how.factor = factor
		}
		sess, err := s.issue(ctx, tx, a, dev, p.NewDevice, how, s.deviceTokenFor(pendingToken), c, now)
		if err != nil {
			return err
		}
		res = enrol.done(sess)
		return nil
	})
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	if soft != nil {
		if err := s.countFailure(ctx, a.Email, a, true, !p0.NewDevice, deviceID, c, now, failedStep); err != nil {
			return nil, err
		}
		return nil, soft
	}
	if res.Step == StepDone {
		if err := s.signedIn(ctx, a.Email, p0.NewDevice); err != nil {
			return nil, err
		}
		s.signedInWith(ctx, a.ID, res.SignInFactor)
	}
	return res, nil
}

// signedIn runs after a session was issued. A sign-in completed from a new
// device clears the address's failures; one from an approved device leaves
// them, so the owner signing in does not lift a pause a stranger caused.
func (s *Service) signedIn(ctx context.Context, email string, newDevice bool) error {
	if !newDevice {
		return nil
	}
	return s.clearAccount(ctx, email)
}

// ApproveDevice completes the device-approval step with the e-mailed code.
// A wrong code returns TokenInvalid (field "code"); the fifth wrong code
// voids the pending sign-in (TokenExpired from then on). Returns Conflict
// when the sign-in is not waiting for device approval.
func (s *Service) ApproveDevice(ctx context.Context, pendingToken, code string, c Client) (*SignInResult, error) {
	now := s.now()
	p0, err := s.loadPending(ctx, pendingToken, now)
	if err != nil {
		return nil, err
	}
	if p0.State != store.StateDeviceApproval {
		return nil, errNotWaitingForDevice()
	}
	code = normalizeCode(code)
	return s.advance(ctx, pendingToken, p0, c, "", func(p *store.PendingSignIn, dev *store.Device) error {
		if p.State != store.StateDeviceApproval {
			return errNotWaitingForDevice()
		}
		if !dev.ApprovedAt.IsZero() { // approved by the link meanwhile
			return nil
		}
		if !secrets.Equal(s.codeHash(p.ID, code), p.CodeHash) {
			return &failedAttempt{wrongAnswer("code", "That code is not right. Check the newest e-mail from us and type its 6-digit code.", p.Attempts+1)}
		}
		dev.ApprovedAt = now
		return nil
	})
}

func errNotWaitingForDevice() error {
	return apperr.New(apperr.Conflict, "This device is already approved. Continue with the next step of the sign-in.")
}

// wrongAnswer is the error for a wrong code; attempts counts this one.
func wrongAnswer(field, msg string, attempts int) error {
	return countedAnswer(apperr.TokenInvalid, field, msg, attempts)
}

// countedAnswer is the error for an answer refused with code (a wrong,
// reused or expired code keeps saying which), with the tries left; the
// last try stops the sign-in instead.
func countedAnswer(code apperr.Code, field, msg string, attempts int) error {
	left := maxCodeAttempts - attempts
	switch {
	case left <= 0:
		return &apperr.Error{Code: apperr.TokenExpired, Field: field,
			Message: "That was the last try: this sign-in was stopped to protect the account. Sign in again to get a new code."}
	case left == 1:
		msg += " You have 1 try left."
	default:
		msg += fmt.Sprintf(" You have %d tries left.", left)
	}
	return &apperr.Error{Code: code, Field: field, Message: msg}
}

// normalizeCode drops the spaces and dashes people type in codes.
func normalizeCode(code string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\t' {
			return -1
		}
		return r
	}, code)
}

// ApproveDeviceLink approves the device by the link in the e-mail. The
// sign-in itself then completes in the browser that started it (its next
// PendingStatus/ApproveDevice call sees the approval). The link is single
// use; returns TokenInvalid, TokenExpired or TokenUsed for a bad link and
// Conflict when the sign-in no longer waits for approval.
func (s *Service) ApproveDeviceLink(ctx context.Context, linkToken string, c Client) error {
	const again = "Sign in again to get a new e-mail."
	if linkToken == "" || len(linkToken) > maxTokenLen {
		return tokenError(store.ErrNotFound, "approval link", again)
	}
	now := s.now()
	err := s.store.InTx(ctx, func(tx store.Queries) error {
		t, err := tx.ConsumeToken(ctx, store.TokenDeviceApproval, secrets.HashToken(linkToken), now)
		if err != nil {
			return tokenError(err, "approval link", again)
		}
		p, err := tx.UpdatePendingSignIn(ctx, t.Subject, func(p *store.PendingSignIn) error {
			if err := pendingUsable(p, now); err != nil {
				return err
			}
			if p.State != store.StateDeviceApproval {
				return errNotWaitingForDevice()
			}
			return nil
		})
		if errors.Is(err, store.ErrNotFound) {
			return apperr.New(apperr.TokenExpired, "This sign-in has expired. "+again)
		}
		if err != nil {
			return err
		}
		a, err := tx.GetAccount(ctx, p.AccountID)
		if err != nil {
			return err
		}
		if !a.LockedAt.IsZero() {
			return apperr.New(apperr.AccountLocked, "This account is locked, so nobody can sign in to it. Contact support to unlock it.")
		}
		dev, err := tx.UpdateDevice(ctx, p.DeviceID, func(d *store.Device) error {
			if d.ApprovedAt.IsZero() {
				d.ApprovedAt = now
			}
			return nil
		})
		if err != nil {
			return err
		}
		return s.record(ctx, tx, "device.approved", a, c, dev.ID, map[string]any{"method": "link", "device": dev.Name})
	})
	return apperr.Wrap(err)
}

// PendingStatus re-checks a pending sign-in (e.g. after the link was
// followed on another device) and completes it when nothing is left to do.
// It never skips a step: a second factor, when enrolled, still has to be
// verified with VerifySecondFactor.
func (s *Service) PendingStatus(ctx context.Context, pendingToken string, c Client) (*SignInResult, error) {
	now := s.now()
	p0, err := s.loadPending(ctx, pendingToken, now)
	if err != nil {
		return nil, err
	}
	// A poll that changes nothing writes nothing.
	a, err := s.store.GetAccount(ctx, p0.AccountID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errPendingUnknown()
	}
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	n, err := s.needs(ctx, a)
	if err != nil {
		return nil, err
	}
	dev, err := s.store.GetDevice(ctx, p0.DeviceID)
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	if st := s.next(&p0, dev, n); st == p0.State {
		return s.result(p0, pendingToken, n.factors), nil
	}
	return s.advance(ctx, pendingToken, p0, c, "", nil)
}

// VerifySecondFactor completes the second-factor step with one factor.
// Only valid while the sign-in waits for a second factor (Conflict
// otherwise: approve the device first). A wrong, replayed or expired answer
// returns the factor's error (its code and message, with the tries left)
// and counts towards the 5 tries of the pending sign-in. The factor's other
// refusals (RateLimited, Forbidden for a security key whose signature
// counter went back, NotFound for a factor removed meanwhile) pass through
// without counting a try.
//
// For "webauthn" the response is the JSON the browser script posts after
// StartSecondFactor (mfa.KeyResponse); for the others, the typed code.
func (s *Service) VerifySecondFactor(ctx context.Context, pendingToken, factor, response string, c Client) (*SignInResult, error) {
	now := s.now()
	p0, err := s.loadPending(ctx, pendingToken, now)
	if err != nil {
		return nil, err
	}
	if p0.State != store.StateSecondFactor {
		return nil, errNotWaitingForFactor(p0.State)
	}
	enrolled, err := s.enrolledFactors(ctx, p0.AccountID)
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	f := s.factor(factor)
	if f == nil || !contains(enrolled, factor) {
		return nil, apperr.Field(apperr.Invalid, "factor", "Choose one of the ways to confirm it's you that this account has set up.")
	}
	verr := f.Verify(ctx, p0.AccountID, response)
	switch apperr.CodeOf(verr) {
	case "":
	case apperr.TokenInvalid, apperr.TokenUsed, apperr.TokenExpired, apperr.BadCredential, apperr.Invalid:
		// A wrong, replayed or stale answer: counted below.
	default:
		// Rate limits and outages are not wrong answers.
		return nil, apperr.Wrap(verr)
	}
	return s.advance(ctx, pendingToken, p0, c, factor, func(p *store.PendingSignIn, _ *store.Device) error {
		if p.State != store.StateSecondFactor {
			return errNotWaitingForFactor(p.State)
		}
		if verr != nil {
			e, _ := apperr.As(verr)
			field := e.Field
			if field == "" {
				field = "response"
			}
			return &failedAttempt{countedAnswer(e.Code, field, e.Message, p.Attempts+1)}
		}
		p.FactorAt = now
		return nil
	})
}

func errNotWaitingForFactor(st store.SignInState) error {
	if st == store.StateDeviceApproval {
		return apperr.New(apperr.Conflict, "Approve this device first: enter the code from the e-mail we sent you, or open its link.")
	}
	return apperr.New(apperr.Conflict, "This sign-in is not waiting for a second factor.")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// issue creates a session for a completed sign-in, through tx: a new random
// token every time (a token the client brought is never used), the device
// marked seen and approved, the audit event, and for a new device the
// "new sign-in" e-mail with a link to secure the account.
func (s *Service) issue(ctx context.Context, tx store.Queries, a store.Account, dev store.Device, newDevice bool, how signInHow, deviceToken string, c Client, now time.Time) (*IssuedSession, error) {
	token, err := secrets.NewToken(s.rand)
	if err != nil {
		return nil, err
	}
	id, err := secrets.NewID(s.rand)
	if err != nil {
		return nil, err
	}
	sess := store.Session{
		ID: id, TokenHash: secrets.HashToken(token), AccountID: a.ID, DeviceID: dev.ID,
		Client: clientKind(c), IP: c.IP, UserAgent: c.UserAgent,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.cfg.SessionAbsolute),
		SecondFactorAt: how.factorAt,
		SignInFactor:   how.factor,
	}
	if how.method == methodPasskey {
		sess.SignInFactor = methodPasskey
	}
	if err := tx.CreateSession(ctx, sess); err != nil {
		return nil, err
	}
	dev, err = tx.UpdateDevice(ctx, dev.ID, func(d *store.Device) error {
		d.LastSeenAt, d.LastIP = now, c.IP
		if d.ApprovedAt.IsZero() {
			d.ApprovedAt = now
		}
		if deviceToken != "" {
			d.TokenHash = secrets.HashToken(deviceToken)
		}
		if c.UserAgent != "" {
			d.Name = deviceName(c.UserAgent)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	data := map[string]any{
		"new_device": newDevice, "device": dev.Name, "session_id": sess.ID,
		"method": how.method, "second_factor": !how.factorAt.IsZero(),
	}
	if how.factor != "" {
		data["factor"] = how.factor
	}
	if err := s.record(ctx, tx, "signin.success", a, c, dev.ID, data); err != nil {
		return nil, err
	}
	if newDevice {
		link, err := s.secureLink(ctx, tx, a, now)
		if err != nil {
			return nil, err
		}
		if err := s.mail(ctx, tx, a, notify.TemplateNewSignIn, map[string]string{
			"IP": notify.OrUnknown(c.IP), "Device": notify.OrUnknown(dev.Name), "Time": notify.Time(now), "SecureLink": link,
		}); err != nil {
			return nil, err
		}
	}
	return &IssuedSession{Token: token, DeviceToken: deviceToken, Session: sess, NewDevice: newDevice}, nil
}
