package account

// CONTRACT FILE: signatures agreed with internal/recovery, internal/web,
// internal/api and internal/admin; the account helper fills in the bodies.

import (
	"context"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

// Password reset by e-mailed link.
//
// RequestPasswordReset answers every address alike and e-mails a link
// (ResetLinkTTL, single use, stored hashed) only through the outbox, inside
// the transaction that makes it, so neither the answer nor its timing says
// whether the address has an account. With Deps.Background set (the
// server sets it) even the database work happens after the answer: making
// a link and an e-mail costs about 15 times looking up an address that has
// no account (BenchmarkRequestPasswordReset), and a request must not take
// longer for the one than for the other. CheckResetLink shows the form;
// ResetPassword sets the password. A second factor is never skipped: an
// account with one must answer it (a backup code counts) before anything
// changes, and wrong answers are counted per link (the fifth voids it).
//
// Locked accounts. An account locked by staff (Lock) or by its owner's
// "this wasn't me" link (SecureAccount) cannot be reset, and a reset never
// unlocks it. SecureAccount tells the owner that support checks it is them
// and unlocks the account, and that they then choose a new password; a
// reset that worked on a locked account would let whoever reads the
// mailbox (possibly the intruder the owner just locked out) choose the
// password that becomes live the moment staff unlock it. So
// RequestPasswordReset sends no link to a locked account (answering as
// always), and a link made before the lock is refused with AccountLocked,
// "contact support". Once support has unlocked the account, the owner asks
// for a new link. (SecureAccount deletes outstanding reset links itself;
// a staff Lock does not, hence the check on every use.)

// Paths of the password-reset pages (internal/web serves them; the e-mailed
// link opens PathResetPassword with the token in the "token" query
// parameter, and the page confirms with a POST).
const (
	PathForgotPassword = "/forgot"
	PathResetPassword  = "/reset"
)

// ResetLinkTTL is how long a password-reset link works (DESIGN.md).
const ResetLinkTTL = 30 * time.Minute

// ResetLink is what the reset page needs to know about a valid link.
type ResetLink struct {
	// Email is the account's address, masked for display ("a•••@example.com").
	Email string
	// Factors are the account's enrolled second factors in preference
	// order (as SignInResult.Factors); empty when it has none, and then
	// the new password alone is enough.
	Factors []string
}

// ResetDone is the result of a successful reset.
type ResetDone struct {
	// HoldUntil is when withdrawals resume.
	HoldUntil time.Time
}

// RequestPasswordReset e-mails a reset link to the account with this
// address, through the outbox, and answers exactly the same way whether or
// not an account exists (nil, or Invalid for a malformed address, or
// RateLimited per IP). A new link voids the older ones.
//
// The per-IP counter counts every request; the per-address e-mail limit
// (mailLimit per throttle window, shared with the other unsolicited
// e-mails) is counted for every address too and drops extra requests
// silently. Unconfirmed accounts get a link as well: following it proves
// the address. Locked accounts get none (see "Locked accounts" above).
// With Deps.Background the work runs there and its errors are logged.
func (s *Service) RequestPasswordReset(ctx context.Context, email string, c Client) error {
	now := s.now()
	if err := s.checkResetIP(ctx, c.IP, now); err != nil {
		return err
	}
	if _, err := NormalizeEmail(email); err != nil {
		return err // depends on the input only
	}
	unlocked := func(a store.Account) bool { return a.LockedAt.IsZero() }
	send := func(ctx context.Context) error {
		return s.mailIfAccount(ctx, email, unlocked, func(tx store.Queries, a store.Account) error {
			if err := tx.DeleteTokens(ctx, a.ID, store.TokenPasswordReset); err != nil {
				return err
			}
			tok, err := s.newToken(ctx, tx, store.TokenPasswordReset, a.ID, "", now, ResetLinkTTL)
			if err != nil {
				return err
			}
			if err := s.mail(ctx, tx, a, notify.TemplatePasswordReset, map[string]string{
				"Link": s.mailer.Link(PathResetPassword, tok), "Time": notify.Time(now), "IP": notify.OrUnknown(c.IP),
			}); err != nil {
				return err
			}
			return s.record(ctx, tx, "password.reset_requested", a, c, "", nil)
		})
	}
	if s.background == nil {
		return send(ctx)
	}
	// The answer goes back now, the same for every address; whether there
	// is an account to write a link for is found out afterwards.
	s.background(func(ctx context.Context) {
		if err := send(ctx); err != nil {
			s.log.Error("account: password-reset request", "err", err)
		}
	})
	return nil
}

// checkResetIP counts a reset request from ip and refuses it past the
// limit (the sign-in limit, on a counter of its own).
func (s *Service) checkResetIP(ctx context.Context, ip string, now time.Time) error {
	return s.limitIP(ctx, "reset-ip:", ip, now, "password-reset requests")
}

// resetLink is a reset link as found in the store, not used.
type resetLink struct {
	hash    []byte
	token   store.Token
	account store.Account
}

// counterKey is the prefix of the link's counters (wrong answers,
// challenges): a hash of its stored hash, so not even that is kept there.
func (l resetLink) counterKey(kind string) string {
	return "reset-" + kind + ":" + hex.EncodeToString(secrets.HashToken(hex.EncodeToString(l.hash))[:16])
}

// window is the counter window of the link's counters: one that holds the
// link's whole life, so nothing it counts starts over before it expires.
//
// Counter windows are aligned to the Unix epoch, and a link may be made at
// any time, so a fixed window length would split some links' lives in
// two. The length is chosen per link instead, from its creation time (so
// every node chooses the same): the first of 2×TTL, 2×TTL+1s, … whose
// window containing CreatedAt ends after ExpiresAt. About every other
// length fits, so the loop ends within a few steps; the fallback (never
// reached in practice) still counts, only per window.
func (l resetLink) window() time.Duration {
	ttl := l.token.ExpiresAt.Sub(l.token.CreatedAt)
	if ttl <= 0 {
		ttl = ResetLinkTTL
	}
	created := l.token.CreatedAt.UnixNano()
	for i := range 256 {
		w := 2*ttl + time.Duration(i)*time.Second
		if created%int64(w) < int64(w-ttl) {
			return w
		}
	}
	return 2 * ttl
}

// maxResetBytes bounds the new password read on the reset form, as sign-in
// does.
const maxResetBytes = maxPasswordBytes

// loadResetLink finds an unused, unexpired reset link and its account,
// and refuses one the account's state has voided.
func (s *Service) loadResetLink(ctx context.Context, token string, now time.Time) (resetLink, error) {
	if token == "" || len(token) > maxTokenLen {
		return resetLink{}, resetLinkError(store.ErrNotFound)
	}
	l := resetLink{hash: secrets.HashToken(token)}
	var err error
	l.token, err = s.store.GetToken(ctx, store.TokenPasswordReset, l.hash)
	if err != nil {
		return l, resetLinkError(err)
	}
	if !l.token.UsedAt.IsZero() {
		n, err := s.counter.Count(ctx, l.counterKey("fail"), l.window())
		if err == nil && n >= maxCodeAttempts {
			return l, errResetVoided()
		}
		return l, resetLinkError(store.ErrTokenUsed)
	}
	if !now.Before(l.token.ExpiresAt) {
		return l, resetLinkError(store.ErrTokenExpired)
	}
	l.account, err = s.store.GetAccount(ctx, l.token.AccountID)
	if err != nil {
		return l, resetLinkError(err)
	}
	return l, resetUsable(l.account, l.token)
}

// resetUsable refuses link t of account a when the password changed after
// the link was made (a password change and a reset also delete the links;
// this covers one that raced them) or the account is locked.
func resetUsable(a store.Account, t store.Token) error {
	if a.PasswordChangedAt.After(t.CreatedAt) {
		return apperr.New(apperr.TokenInvalid,
			"This password-reset link no longer works: the password was changed after it was sent. If you still cannot sign in, ask for a new link.")
	}
	if !a.LockedAt.IsZero() {
		return apperr.New(apperr.AccountLocked,
			"This account is locked, so its password cannot be reset. Contact support: they will check that it is you and unlock it, and you can then ask for a new link.")
	}
	return nil
}

// resetLinkError maps the store's token errors for a reset link.
func resetLinkError(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return apperr.New(apperr.TokenInvalid,
			"This password-reset link is not valid. Check that you opened the whole link from the e-mail: only the newest link works, and a password change voids it. Ask for a new link if you need one.")
	case errors.Is(err, store.ErrTokenExpired):
		return apperr.New(apperr.TokenExpired,
			"This password-reset link has expired: links work for 30 minutes. Ask for a new link.")
	case errors.Is(err, store.ErrTokenUsed):
		return apperr.New(apperr.TokenUsed,
			"This password-reset link was already used; each link works once. If you reset your password, sign in with the new one; otherwise ask for a new link.")
	}
	return apperr.Wrap(err)
}

func errResetVoided() error {
	return apperr.New(apperr.TokenUsed,
		"This password-reset link was stopped after too many wrong codes, to protect your account. Ask for a new link.")
}

// CheckResetLink validates a reset link without using it. TokenInvalid,
// TokenExpired or TokenUsed for a bad one; AccountLocked for a locked
// account.
func (s *Service) CheckResetLink(ctx context.Context, token string) (ResetLink, error) {
	l, err := s.loadResetLink(ctx, token, s.now())
	if err != nil {
		return ResetLink{}, err
	}
	n, err := s.needs(ctx, l.account)
	if err != nil {
		return ResetLink{}, err
	}
	return ResetLink{Email: maskEmail(l.account.Email), Factors: n.factors}, nil
}

// maskEmail shows the first character of the local part and the domain:
// "a•••@example.com".
func maskEmail(e string) string {
	local, domain, ok := strings.Cut(e, "@")
	if !ok || local == "" {
		return "•••"
	}
	r, _ := utf8.DecodeRuneInString(local)
	return string(r) + "•••@" + domain
}

// StartResetFactor starts the challenge of one of the account's factors
// for a reset (a WebAuthn request, or an SMS code sent), as
// StartSecondFactor does for a sign-in.
//
// Returns the link's errors, Invalid (field "factor") for a factor the
// account has not enrolled, RateLimited after maxChallenges for one link,
// and the factor's own refusals (SMS send limits) as they are.
func (s *Service) StartResetFactor(ctx context.Context, token, factor string, c Client) (any, error) {
	now := s.now()
	l, err := s.loadResetLink(ctx, token, now)
	if err != nil {
		return nil, err
	}
	enrolled, err := s.enrolledFactors(ctx, l.account.ID)
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	f := s.factor(factor)
	if f == nil || !contains(enrolled, factor) {
		return nil, errChooseFactor()
	}
	n, err := s.counter.Incr(ctx, l.counterKey("challenge"), 1, l.window())
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	if n > maxChallenges {
		return nil, &apperr.Error{Code: apperr.RateLimited, RetryAfter: l.token.ExpiresAt.Sub(now),
			Message: "You asked for that many times already with this link. Use the last one we sent, choose another method, or ask for a new link."}
	}
	if s.challenges == nil {
		return nil, nil
	}
	ch, err := s.challenges(ctx, f, l.account.ID)
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	if ch != nil {
		if err := s.record(ctx, s.store, "password.reset_challenge", l.account, c, "", map[string]any{"factor": factor}); err != nil {
			return nil, apperr.Wrap(err)
		}
	}
	return ch, nil
}

// ResetPassword sets a new password with a reset link. When the account
// has a second factor, factor and response must verify one of them (a
// backup code counts) before anything changes. On success: the link and
// every other reset link are used up, every session is revoked, the
// security-change hold starts, and the owner is e-mailed.
//
// Checked in this order, each refusal changing nothing: the link
// (TokenInvalid, TokenExpired, TokenUsed, AccountLocked); the new password
// (WeakPassword or Invalid, field "new_password", the sign-up rules); then,
// for an account with a second factor, the factor (Invalid, field
// "factor", when missing or not one the account has; Invalid, field
// "response", for an empty answer) and its answer. A wrong, replayed or
// expired answer returns the factor's error with the tries left (field
// "response") and counts against the link: the fifth voids it
// (TokenExpired, no field). The factor's other refusals (RateLimited, …)
// pass through without counting. Of two concurrent resets with one link,
// exactly one succeeds; the other gets TokenUsed.
//
// The reset also confirms an unconfirmed address (the link proved it),
// clears the address's sign-in throttling, and voids pending sign-ins that
// began with the old password (see pendingStale).
func (s *Service) ResetPassword(ctx context.Context, token, newPassword, factor, response string, c Client) (ResetDone, error) {
	now := s.now()
	l, err := s.loadResetLink(ctx, token, now)
	if err != nil {
		return ResetDone{}, err
	}
	if err := s.checkNewPassword(newPassword, l.account.Email); err != nil {
		return ResetDone{}, err
	}
	n, err := s.needs(ctx, l.account)
	if err != nil {
		return ResetDone{}, err
	}
	if len(n.factors) > 0 {
		if err := s.resetFactor(ctx, l, n.factors, factor, response, c, now); err != nil {
			return ResetDone{}, err
		}
	} else {
		factor = ""
	}
	hash, err := s.hasher.Hash(newPassword)
	if err != nil {
		return ResetDone{}, apperr.Wrap(err)
	}
	var hold time.Time
	var a store.Account
	err = s.store.InTx(ctx, func(tx store.Queries) error {
		if _, err := tx.ConsumeToken(ctx, store.TokenPasswordReset, l.hash, now); err != nil {
			return resetLinkError(err)
		}
		confirmed := false
		var err error
		a, err = tx.UpdateAccount(ctx, l.account.ID, func(x *store.Account) error {
			if err := resetUsable(*x, l.token); err != nil {
				return err
			}
			x.PasswordHash = hash
			x.PasswordChangedAt = now
			hold = now.Add(s.cfg.SecurityChangeHold)
			if x.SecurityHoldUntil.After(hold) {
				hold = x.SecurityHoldUntil
			}
			x.SecurityHoldUntil = hold
			if x.EmailConfirmedAt.IsZero() {
				x.EmailConfirmedAt = now
				confirmed = true
			}
			x.UpdatedAt = now
			return nil
		})
		if err != nil {
			return err
		}
		revoked, link, err := s.passwordWritten(ctx, tx, a, "", now)
		if err != nil {
			return err
		}
		if err := s.mail(ctx, tx, a, notify.TemplatePasswordResetDone, map[string]string{
			"Time": notify.Time(now), "IP": notify.OrUnknown(c.IP), "SecureLink": link, "HoldUntil": notify.Time(hold),
		}); err != nil {
			return err
		}
		data := map[string]any{"sessions_revoked": revoked, "hold_until": hold}
		if factor != "" {
			data["factor"] = factor
		}
		if confirmed {
			data["email_confirmed"] = true
		}
		return s.record(ctx, tx, "password.reset", a, c, "", data)
	})
	if err != nil {
		return ResetDone{}, apperr.Wrap(err)
	}
	s.cache.dropAccount(a.ID)
	if err := s.clearAccount(ctx, a.Email); err != nil {
		// The reset is done; a stale pause ends by itself.
		s.log.Warn("account: clearing sign-in throttling after a reset failed", "account", a.ID, "err", err)
	}
	return ResetDone{HoldUntil: hold}, nil
}

// checkNewPassword applies the sign-up rules to a new password, on field
// "new_password".
func (s *Service) checkNewPassword(pw, email string) error {
	if len(pw) > maxResetBytes {
		return apperr.Field(apperr.WeakPassword, "new_password", "Use a password of at most 256 characters.")
	}
	if err := s.policy.Check(pw, email, s.cfg.Brand); err != nil {
		if e, ok := apperr.As(err); ok {
			c := *e
			c.Field = "new_password"
			return &c
		}
		return apperr.Wrap(err)
	}
	return nil
}

// resetFactor verifies the second factor of a reset, counting a wrong
// answer against the link and voiding the link at the last try.
func (s *Service) resetFactor(ctx context.Context, l resetLink, enrolled []string, factor, response string, c Client, now time.Time) error {
	f := s.factor(factor)
	if factor == "" || f == nil || !contains(enrolled, factor) {
		return apperr.Field(apperr.Invalid, "factor",
			"Your account has two-factor authentication: confirm it's you with one of your methods, or a backup code, to reset the password.")
	}
	if strings.TrimSpace(response) == "" {
		return apperr.Field(apperr.Invalid, "response", "Enter the code.")
	}
	key, window := l.counterKey("fail"), l.window()
	n, err := s.counter.Count(ctx, key, window)
	if err != nil {
		return apperr.Wrap(err)
	}
	if n >= maxCodeAttempts {
		return errResetVoided()
	}
	verr := f.Verify(ctx, l.account.ID, response)
	switch apperr.CodeOf(verr) {
	case "":
		return nil
	case apperr.TokenInvalid, apperr.TokenUsed, apperr.TokenExpired, apperr.BadCredential, apperr.Invalid:
		// A wrong, replayed or stale answer: counted below.
	default:
		// Rate limits and outages are not wrong answers.
		return apperr.Wrap(verr)
	}
	if n, err = s.counter.Incr(ctx, key, 1, window); err != nil {
		return apperr.Wrap(err)
	}
	if err := s.recordResetFailure(ctx, l, factor, n, c, now); err != nil {
		return err
	}
	e, _ := apperr.As(verr)
	switch left := maxCodeAttempts - n; {
	case left <= 0:
		return apperr.New(apperr.TokenExpired,
			"That was the last try: this password-reset link was stopped to protect your account. Ask for a new link.")
	case left == 1:
		return &apperr.Error{Code: e.Code, Field: "response", Message: e.Message + " You have 1 try left."}
	default:
		return &apperr.Error{Code: e.Code, Field: "response", Message: e.Message + " You have " + strconv.FormatInt(left, 10) + " tries left."}
	}
}

// recordResetFailure audits a wrong answer on a reset link, and at the
// last try uses the link up.
func (s *Service) recordResetFailure(ctx context.Context, l resetLink, factor string, attempts int64, c Client, now time.Time) error {
	err := s.store.InTx(ctx, func(tx store.Queries) error {
		if attempts < maxCodeAttempts {
			return s.record(ctx, tx, "password.reset_failed", l.account, c, "", map[string]any{"factor": factor, "attempts": attempts})
		}
		_, err := tx.ConsumeToken(ctx, store.TokenPasswordReset, l.hash, now)
		if err != nil && !errors.Is(err, store.ErrTokenUsed) && !errors.Is(err, store.ErrTokenExpired) && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return s.record(ctx, tx, "password.reset_voided", l.account, c, "", map[string]any{"factor": factor, "attempts": attempts})
	})
	return apperr.Wrap(err)
}

// ResetLinkAccount returns the account of a valid, unused reset link
// without using it (a recovery case opened by someone who lost both the
// password and the second factor proves the e-mail address this way).
// The link's errors as CheckResetLink's, AccountLocked included.
func (s *Service) ResetLinkAccount(ctx context.Context, token string) (store.Account, error) {
	l, err := s.loadResetLink(ctx, token, s.now())
	if err != nil {
		return store.Account{}, err
	}
	return l.account, nil
}

// PendingSecondFactorAccount returns the account of a pending sign-in that
// passed the password and waits for its second factor (a recovery case
// opened from the second-factor prompt proves the password this way).
// TokenInvalid otherwise (AccountLocked for a locked account).
func (s *Service) PendingSecondFactorAccount(ctx context.Context, pendingToken string) (store.Account, error) {
	notWaiting := apperr.New(apperr.TokenInvalid,
		"This sign-in is not waiting for a second factor any more: it expired, was completed or was stopped. Sign in again.")
	p, err := s.loadPending(ctx, pendingToken, s.now())
	if err != nil {
		if apperr.CodeOf(err) == apperr.Internal {
			return store.Account{}, err
		}
		return store.Account{}, notWaiting
	}
	if p.State != store.StateSecondFactor {
		return store.Account{}, notWaiting
	}
	a, err := s.store.GetAccount(ctx, p.AccountID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Account{}, notWaiting
	}
	if err != nil {
		return store.Account{}, apperr.Wrap(err)
	}
	if pendingStale(&p, a) {
		return store.Account{}, notWaiting
	}
	if !a.LockedAt.IsZero() {
		return store.Account{}, errLocked()
	}
	return a, nil
}

// pendingStale reports whether pending sign-in p began before a's password
// last changed: it proved a password that no longer works, so it cannot
// go on.
func pendingStale(p *store.PendingSignIn, a store.Account) bool {
	return p.CreatedAt.Before(a.PasswordChangedAt)
}

func errPendingStale() error {
	return apperr.New(apperr.TokenExpired, "The password was changed after this sign-in began. Sign in again with the new password.")
}

func errLocked() error {
	return apperr.New(apperr.AccountLocked, "This account is locked, so nobody can sign in to it. Contact support to unlock it.")
}

// OnSignedIn registers fn to be called after a sign-in completed with a
// second factor or a passkey, with the factor's name ("totp", "webauthn",
// "sms", "backup_code", "passkey"). internal/recovery cancels a pending
// recovery case this way: the owner evidently still has the factor.
// Register hooks before serving requests.
//
// fn runs after the sign-in's transaction committed, on the request's
// goroutine, with a context that is not cancelled when the request is; it
// must not call back into the sign-in.
func (s *Service) OnSignedIn(fn func(ctx context.Context, accountID, factor string)) {
	s.onSignedIn = append(s.onSignedIn, fn)
}

// signedInWith tells the OnSignedIn hooks about a completed sign-in whose
// session records factor (nothing for a password-only one).
func (s *Service) signedInWith(ctx context.Context, accountID, factor string) {
	if factor == "" {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for _, fn := range s.onSignedIn {
		fn(ctx, accountID, factor)
	}
}

// RevokeAllSessions revokes every session of the account (staff action or
// completed recovery) and records it with actor ("session.revoked_all",
// which the owner sees in the activity list). NotFound for an unknown
// account.
func (s *Service) RevokeAllSessions(ctx context.Context, accountID, actor string) (int, error) {
	now := s.now()
	var n int
	err := s.store.InTx(ctx, func(tx store.Queries) error {
		if _, err := tx.GetAccount(ctx, accountID); err != nil {
			return err
		}
		var err error
		if n, err = tx.RevokeSessions(ctx, accountID, "", now); err != nil {
			return err
		}
		return s.recordActor(ctx, tx, "session.revoked_all", accountID, actor, map[string]any{"count": n})
	})
	if errors.Is(err, store.ErrNotFound) {
		return 0, errNoAccount()
	}
	if err != nil {
		return 0, apperr.Wrap(err)
	}
	s.cache.dropAccount(accountID)
	return n, nil
}

func errNoAccount() error {
	return apperr.New(apperr.NotFound, "There is no such account.")
}

// DropSessions forgets this node's cached sessions of the account, after
// another service revoked them in its own transaction.
func (s *Service) DropSessions(accountID string) { s.cache.dropAccount(accountID) }

// GetUser returns an account by ID (NotFound if unknown).
func (s *Service) GetUser(ctx context.Context, accountID string) (store.Account, error) {
	if accountID == "" {
		return store.Account{}, errNoAccount()
	}
	a, err := s.store.GetAccount(ctx, accountID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Account{}, errNoAccount()
	}
	if err != nil {
		return store.Account{}, apperr.Wrap(err)
	}
	return a, nil
}

// maxAuditTrail bounds one AuditTrail read.
const maxAuditTrail = 1000

// AuditTrail returns the account's audit events, newest first (at most
// limit, 0 meaning 200, never more than 1000), for the staff member viewer
// (an account ID). Looking is on the record too: the view is audited
// ("staff.viewed_account", actor viewer) before the trail is read, so it
// heads the list it returns. The owner's activity page does not show it.
func (s *Service) AuditTrail(ctx context.Context, accountID, viewer string, limit int) ([]store.AuditEvent, error) {
	if accountID == "" {
		return nil, errNoAccount()
	}
	if err := s.recordActor(ctx, s.store, "staff.viewed_account", accountID, viewer, nil); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 200
	}
	limit = min(limit, maxAuditTrail)
	evs, err := s.store.ListAudit(ctx, store.AuditFilter{AccountID: accountID, Desc: true, Limit: limit})
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	return evs, nil
}
