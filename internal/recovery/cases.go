package recovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/audit"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

// Audit event types.
const (
	EventOpened         = "recovery.opened"
	EventApproved       = "recovery.approved"
	EventRejected       = "recovery.rejected"
	EventCancelled      = "recovery.cancelled"
	EventReminded       = "recovery.reminded"
	EventCompleted      = "recovery.completed"
	EventDocumentViewed = "recovery.document_viewed"
	EventCaseViewed     = "recovery.case_viewed"
)

// Limits on opening cases: per client IP and per account, in a window.
// An open case already blocks a second one for its account; these bound
// what a person holding a password (or a mailbox) can make the owner's
// inbox and the support queue suffer by opening and cancelling.
const (
	limitWindow  = 24 * time.Hour
	ipLimit      = 5
	accountLimit = 3
	// cancelLinkSlack: a cancel link outlives the case's waiting period by
	// this much, so a link from any of its e-mails works while it matters.
	cancelLinkSlack = 30 * 24 * time.Hour
	// tickBatch bounds the waiting cases one Tick looks at.
	tickBatch = 10000
)

// Via values.
const (
	ViaPassword = "password"
	ViaEmail    = "email"
)

var activeStates = []store.RecoveryState{store.RecoveryOpen, store.RecoveryWaiting}

func active(st store.RecoveryState) bool {
	return st == store.RecoveryOpen || st == store.RecoveryWaiting
}

// now returns the clock's time at the store's precision.
func (s *Service) now() time.Time { return s.d.Clock.Now().UTC().Truncate(time.Microsecond) }

// prove returns the account the proof names and how it was proved.
func (s *Service) prove(ctx context.Context, p Proof) (store.Account, string, error) {
	switch {
	case (p.PendingToken == "") == (p.ResetToken == ""):
		return store.Account{}, "", apperr.New(apperr.TokenInvalid,
			"To open a recovery request, start from the sign-in page: sign in with your password, "+
				"or use the link from a \u201cForgot password\u201d e-mail.")
	case p.PendingToken != "":
		a, err := s.d.Accounts.PendingSecondFactorAccount(ctx, p.PendingToken)
		return a, ViaPassword, err
	default:
		a, err := s.d.Accounts.ResetLinkAccount(ctx, p.ResetToken)
		return a, ViaEmail, err
	}
}

// factorCount is the number of second factors the account has now, as
// internal/mfa counts them: a confirmed authenticator app, each security
// key or passkey, a verified phone. Backup codes are a fallback, not a
// factor of their own.
func factorCount(ctx context.Context, q store.Queries, accountID string) (int, error) {
	n := 0
	t, err := q.GetTOTP(ctx, accountID)
	switch {
	case err == nil:
		if !t.ConfirmedAt.IsZero() {
			n++
		}
	case !errors.Is(err, store.ErrNotFound):
		return 0, err
	}
	keys, err := q.ListWebAuthnCredentials(ctx, accountID)
	if err != nil {
		return 0, err
	}
	n += len(keys)
	p, err := q.GetSMSPhone(ctx, accountID)
	switch {
	case err == nil:
		if !p.VerifiedAt.IsZero() {
			n++
		}
	case !errors.Is(err, store.ErrNotFound):
		return 0, err
	}
	return n, nil
}

// checkNoActiveCase refuses a second open or waiting case. The person
// proved the password or the mailbox, so naming the reference tells them
// nothing they could not see in the owner's e-mail.
func (s *Service) checkNoActiveCase(ctx context.Context, q store.Queries, accountID string) error {
	cases, err := q.ListRecoveryCases(ctx, store.RecoveryCaseFilter{AccountID: accountID, States: activeStates, Limit: 1})
	if err != nil {
		return apperr.Wrap(err)
	}
	if len(cases) > 0 {
		return apperr.Errorf(apperr.Conflict,
			"This account already has a recovery request in progress (reference %s). "+
				"Follow it with the status link you were given, or cancel it with the link in our e-mail before opening another.",
			cases[0].Reference)
	}
	return nil
}

// limit counts one case opened from ip for the account and refuses it
// over either limit. It returns the keys it counted, for unlimit. The
// count comes first and the check after it, so parallel requests cannot
// all slip under a limit.
func (s *Service) limit(ctx context.Context, ip, accountID string) ([]string, error) {
	var counted []string
	for _, l := range []struct {
		key, from string
		max       int64
	}{{"recovery:open:ip:" + ip, "from this network", ipLimit}, {"recovery:open:acct:" + accountID, "for this account", accountLimit}} {
		n, err := s.d.Counter.Incr(ctx, l.key, 1, limitWindow)
		if err != nil {
			s.unlimit(ctx, counted)
			return nil, apperr.Wrap(err)
		}
		counted = append(counted, l.key)
		if n > l.max {
			s.unlimit(ctx, counted)
			retry := retryAfter(s.d.Clock.Now(), limitWindow)
			e := apperr.Errorf(apperr.RateLimited,
				"Too many recovery requests were opened %s recently. Try again in %s, or contact support.", l.from, humanHours(retry))
			e.RetryAfter = retry
			return nil, e
		}
	}
	return counted, nil
}

// unlimit takes back what limit counted, for an attempt that opened no
// case (refused, or lost a race with another). A failure only leaves the
// count one higher.
func (s *Service) unlimit(ctx context.Context, keys []string) {
	for _, k := range keys {
		if _, err := s.d.Counter.Incr(context.WithoutCancel(ctx), k, -1, limitWindow); err != nil {
			s.log.Warn("recovery: rate counter", "err", err)
		}
	}
}

// retryAfter is the time left in the counter's fixed window containing now.
func retryAfter(now time.Time, w time.Duration) time.Duration {
	left := w - time.Duration(now.UnixNano()%int64(w))
	if left <= 0 {
		left = w
	}
	return left
}

func humanHours(d time.Duration) string {
	h := int((d + time.Hour - 1) / time.Hour)
	if h <= 1 {
		return "an hour"
	}
	return fmt.Sprintf("%d hours", h)
}

// crockford is Crockford's base-32 alphabet: no I, L, O or U, so a
// reference read out on the phone is not misheard or mistyped.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// newReference returns "RC-XXXX-XXXX" (40 random bits).
func newReference(r io.Reader) (string, error) {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("recovery: read random: %w", err)
	}
	out := []byte("RC-XXXX-XXXX")
	pos := []int{3, 4, 5, 6, 8, 9, 10, 11}
	for i, v := range b {
		out[pos[i]] = crockford[v&31] // 256 is a multiple of 32: uniform
	}
	return string(out), nil
}

func docContext(caseID string) string { return "recovery-document:" + caseID }

// cancelLink makes a new cancel link for the case.
func (s *Service) cancelLink(ctx context.Context, q store.Queries, rc store.RecoveryCase, now time.Time) (string, error) {
	tok, err := secrets.NewToken(s.d.Rand)
	if err != nil {
		return "", err
	}
	err = q.CreateToken(ctx, store.Token{
		Hash: secrets.HashToken(tok), Kind: store.TokenRecoveryCancel, AccountID: rc.AccountID, Subject: rc.ID,
		CreatedAt: now, ExpiresAt: now.Add(s.d.Config.WaitingPeriod + cancelLinkSlack),
	})
	if err != nil {
		return "", fmt.Errorf("recovery: create cancel link: %w", err)
	}
	return s.d.Mailer.Link(PathCancel, tok), nil
}

// mail queues one e-mail to the account's owner through q.
func (s *Service) mail(ctx context.Context, q store.Queries, a store.Account, template string, data map[string]string) error {
	err := s.d.Mailer.Enqueue(ctx, q, notify.Email{Template: template, To: a.Email, AntiPhishingCode: a.AntiPhishingCode, Data: data})
	if err != nil {
		return fmt.Errorf("recovery: %s e-mail: %w", template, err)
	}
	return nil
}

// record appends an audit event through q (last in a transaction: appends
// are serialised until commit).
func (s *Service) record(ctx context.Context, q store.Queries, ev audit.Event) error {
	if _, err := s.d.Audit.Append(ctx, q, ev); err != nil {
		return fmt.Errorf("recovery: audit %s: %w", ev.Type, err)
	}
	return nil
}

var errStatusLink = apperr.New(apperr.TokenInvalid,
	"This status link is not valid. Check that you opened the whole link you were given when you opened the request.")

var errNoCase = apperr.New(apperr.NotFound, "There is no recovery case with that ID.")

var errOwnCase = apperr.New(apperr.Forbidden,
	"This recovery case is about your own account: another staff member must review it.")

var errApprovedTwice = apperr.New(apperr.Conflict,
	"You approved this case already. A second approval must come from a different staff member.")

var errStaffOnly = apperr.New(apperr.Forbidden, "Only support staff can work recovery cases.")

var errStaffCase = apperr.New(apperr.Forbidden,
	"This case is about a staff account: only admins can approve it.")

func errNotOpen(rc store.RecoveryCase) error {
	return apperr.Errorf(apperr.Conflict, "Case %s is %s, no longer open for review.", rc.Reference, rc.State)
}

// errEnded is the answer to a cancel link of a case that is over.
func errEnded(rc store.RecoveryCase) error {
	var what string
	switch rc.State {
	case store.RecoveryCancelled:
		what = "was already cancelled; nothing about your account changed"
	case store.RecoveryRejected:
		what = "was rejected by support; nothing about your account changed"
	case store.RecoveryCompleted:
		what = "has already been completed: the waiting period ended and the two-factor methods were removed. " +
			"If you did not ask for this, change your password and contact support at once"
	default:
		what = "has ended"
	}
	return apperr.Errorf(apperr.Conflict, "The recovery request %s %s.", rc.Reference, what)
}

// cancelTokenError maps a cancel link's store error.
func cancelTokenError(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return apperr.New(apperr.TokenInvalid,
			"This cancel link is not valid. Check that you opened the whole link from the e-mail, or use the link in our latest e-mail about the request.")
	case errors.Is(err, store.ErrTokenExpired):
		return apperr.New(apperr.TokenExpired,
			"This cancel link has expired. Use the link in our latest e-mail about the request, or contact support.")
	case errors.Is(err, store.ErrTokenUsed):
		return apperr.New(apperr.TokenUsed,
			"This cancel link was already used: the request it belongs to was cancelled.")
	}
	return apperr.Wrap(err)
}

func requireStaff(p account.Principal) error {
	if p.Account.ID == "" || (p.Account.Role != store.RoleSupport && p.Account.Role != store.RoleAdmin) {
		return errStaffOnly
	}
	return nil
}

func (s *Service) getCase(ctx context.Context, id string) (store.RecoveryCase, error) {
	rc, err := s.d.Store.GetRecoveryCase(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return rc, errNoCase
	}
	return rc, apperr.Wrap(err)
}

// view is a case as its owner and the staff queue see it.
func (s *Service) view(rc store.RecoveryCase) CaseView {
	v := CaseView{
		ID: rc.ID, Reference: rc.Reference, AccountID: rc.AccountID, State: rc.State, Via: rc.Via,
		CreatedAt: rc.CreatedAt, WaitUntil: rc.WaitUntil, RejectReason: rc.RejectReason,
		CancelledAt: rc.CancelledAt, CancelledBy: rc.CancelledBy, CompletedAt: rc.CompletedAt,
	}
	if rc.FirstApproverID != "" {
		v.Approvals++
	}
	if rc.SecondApproverID != "" {
		v.Approvals++
	}
	days := int(s.d.Config.RecoveryHold / (24 * time.Hour))
	switch rc.State {
	case store.RecoveryOpen:
		v.NextStep = "Support staff will check your document and answers; two staff members must approve the request. " +
			"We will e-mail you when they decide. Nothing about your account changes until then."
	case store.RecoveryWaiting:
		v.NextStep = fmt.Sprintf("Approved. The waiting period ends on %s; then sign in with your password and set up a new second factor. "+
			"Withdrawals stay paused for %d days after that.", notify.Time(rc.WaitUntil), days)
	case store.RecoveryCompleted:
		v.NextStep = fmt.Sprintf("Your lost two-factor methods were removed. Sign in with your password and set up a new second factor; "+
			"you will be asked to before anything else. Withdrawals stay paused until %s.",
			notify.Time(rc.CompletedAt.Add(s.d.Config.RecoveryHold)))
	case store.RecoveryRejected:
		v.NextStep = fmt.Sprintf("Support staff could not approve this request. If you still cannot sign in, open a new request "+
			"from the sign-in page with what the reason asks for (for example a clearer photo of your identity document), "+
			"or contact support quoting reference %s.", rc.Reference)
	case store.RecoveryCancelled:
		v.NextStep = "This request was cancelled and nothing about your account changed. " +
			"If you still cannot sign in, you can open a new request from the sign-in page."
	}
	return v
}

func (s *Service) views(cases []store.RecoveryCase) []CaseView {
	out := make([]CaseView, len(cases))
	for i, rc := range cases {
		out[i] = s.view(rc)
	}
	return out
}

// How a case was cancelled, when not by a staff member (whose account ID
// is recorded instead).
const (
	cancelledByLink   = "link"
	cancelledBySignIn = "signin"
)

// cancel ends an open or waiting case through q: the owner is e-mailed
// and the cancellation audited. by is "link", "signin" or a staff ID;
// how finishes the e-mail's sentence. accountID, when set, must be the
// case's account. Returns errEnded for a case that is over. A staff ID in
// by is also the audit event's actor.
func (s *Service) cancel(ctx context.Context, q store.Queries, caseID, accountID, by, how string, c account.Client, now time.Time, data map[string]any) (store.RecoveryCase, error) {
	rc, err := q.UpdateRecoveryCase(ctx, caseID, func(rc *store.RecoveryCase) error {
		if accountID != "" && rc.AccountID != accountID {
			return store.ErrNotFound
		}
		if !active(rc.State) {
			return errEnded(*rc)
		}
		rc.State, rc.CancelledAt, rc.CancelledBy, rc.UpdatedAt = store.RecoveryCancelled, now, by, now
		return nil
	})
	if err != nil {
		return rc, err
	}
	a, err := q.GetAccount(ctx, rc.AccountID)
	if err != nil {
		return rc, err
	}
	if err := s.mail(ctx, q, a, notify.TemplateRecoveryCancelled, map[string]string{
		"Reference": rc.Reference, "How": how,
	}); err != nil {
		return rc, err
	}
	d := map[string]any{"case": rc.ID, "reference": rc.Reference, "by": by}
	actor := by
	if by == cancelledByLink || by == cancelledBySignIn {
		actor = ""
	}
	for k, v := range data {
		d[k] = v
	}
	return rc, s.record(ctx, q, audit.Event{
		Type: EventCancelled, AccountID: rc.AccountID, ActorID: actor, IP: c.IP, UserAgent: c.UserAgent, Data: d,
	})
}

// factorWords names a factor in an e-mail.
var factorWords = map[string]string{
	"totp": "authenticator app", "webauthn": "security key", "passkey": "passkey",
	"sms": "text message code", "backup_code": "backup code",
}

// signedIn is the account hook: a sign-in completed with a second factor
// (or a passkey) proves the owner still has it, so any open or waiting
// case of the account is cancelled. It runs after the sign-in committed;
// failures are logged, never returned to the sign-in.
func (s *Service) signedIn(ctx context.Context, accountID, factor string) {
	cases, err := s.d.Store.ListRecoveryCases(ctx, store.RecoveryCaseFilter{AccountID: accountID, States: activeStates})
	if err != nil {
		s.log.Error("recovery: cases of a signed-in account", "account", accountID, "err", err)
		return
	}
	what := factorWords[factor]
	if what == "" {
		what = "second factor"
	}
	for _, rc := range cases {
		now := s.now()
		err := s.d.Store.InTx(ctx, func(tx store.Queries) error {
			_, err := s.cancel(ctx, tx, rc.ID, accountID, cancelledBySignIn,
				"someone signed in with the account's current "+what, account.Client{}, now, map[string]any{"factor": factor})
			return err
		})
		if _, ended := apperr.As(err); ended {
			continue // it ended meanwhile
		}
		if err != nil {
			s.log.Error("recovery: cancel after sign-in", "account", accountID, "case", rc.ID, "err", err)
		}
	}
}

// remind sends the reminder of a waiting case if it is still due; false
// when another node sent it or the case moved on.
func (s *Service) remind(ctx context.Context, caseID string, now time.Time) (bool, error) {
	err := s.d.Store.InTx(ctx, func(tx store.Queries) error {
		rc, err := tx.UpdateRecoveryCase(ctx, caseID, func(rc *store.RecoveryCase) error {
			if rc.State != store.RecoveryWaiting || rc.NextNoticeAt.IsZero() || now.Before(rc.NextNoticeAt) || !now.Before(rc.WaitUntil) {
				return errSkip
			}
			// One reminder however long the worker was down; the next
			// stays on the approval's 24-hour rhythm.
			next := rc.NextNoticeAt.Add(s.d.Config.NoticeEvery)
			for !next.After(now) {
				next = next.Add(s.d.Config.NoticeEvery)
			}
			rc.NextNoticeAt, rc.UpdatedAt = next, now
			return nil
		})
		if err != nil {
			return err
		}
		a, err := tx.GetAccount(ctx, rc.AccountID)
		if err != nil {
			return err
		}
		link, err := s.cancelLink(ctx, tx, rc, now)
		if err != nil {
			return err
		}
		if err := s.mail(ctx, tx, a, notify.TemplateRecoveryReminder, map[string]string{
			"Reference": rc.Reference, "WaitUntil": notify.Time(rc.WaitUntil), "CancelLink": link,
		}); err != nil {
			return err
		}
		return s.record(ctx, tx, audit.Event{
			Type: EventReminded, AccountID: rc.AccountID,
			Data: map[string]any{"case": rc.ID, "reference": rc.Reference},
		})
	})
	if errors.Is(err, errSkip) {
		return false, nil
	}
	return err == nil, err
}

// complete ends the waiting period of a case if it is still due: every
// second factor goes, every session is revoked, withdrawals pause for
// RecoveryHold, and the owner is e-mailed. False when the case moved on
// (cancelled meanwhile, or another node completed it).
func (s *Service) complete(ctx context.Context, caseID string, now time.Time) (bool, error) {
	var accountID string
	err := s.d.Store.InTx(ctx, func(tx store.Queries) error {
		rc, err := tx.UpdateRecoveryCase(ctx, caseID, func(rc *store.RecoveryCase) error {
			if rc.State != store.RecoveryWaiting || now.Before(rc.WaitUntil) {
				return errSkip
			}
			rc.State, rc.CompletedAt, rc.NextNoticeAt, rc.UpdatedAt = store.RecoveryCompleted, now, time.Time{}, now
			return nil
		})
		if err != nil {
			return err
		}
		accountID = rc.AccountID
		// Serialise with factor changes of the account (internal/mfa's
		// lock) and record that its factors changed.
		if _, err := tx.UpdateMFASettings(ctx, rc.AccountID, func(st *store.MFASettings) error {
			st.FactorsChangedAt = now
			return nil
		}); err != nil {
			return err
		}
		removed, err := removeFactors(ctx, tx, rc.AccountID)
		if err != nil {
			return err
		}
		a, err := tx.UpdateAccount(ctx, rc.AccountID, func(a *store.Account) error {
			if hold := now.Add(s.d.Config.RecoveryHold); hold.After(a.SecurityHoldUntil) {
				a.SecurityHoldUntil = hold
			}
			a.UpdatedAt = now
			return nil
		})
		if err != nil {
			return err
		}
		revoked, err := tx.RevokeSessions(ctx, rc.AccountID, "", now)
		if err != nil {
			return err
		}
		if err := s.mail(ctx, tx, a, notify.TemplateRecoveryCompleted, map[string]string{
			"Reference": rc.Reference, "HoldUntil": notify.Time(a.SecurityHoldUntil),
			"SignInLink": s.d.Mailer.Link(account.PathSignIn, ""),
		}); err != nil {
			return err
		}
		return s.record(ctx, tx, audit.Event{
			Type: EventCompleted, AccountID: rc.AccountID,
			Data: map[string]any{"case": rc.ID, "reference": rc.Reference, "removed": removed,
				"sessions_revoked": revoked, "hold_until": a.SecurityHoldUntil.Format(time.RFC3339)},
		})
	})
	if errors.Is(err, errSkip) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	s.d.Accounts.DropSessions(accountID)
	return true, nil
}

// removeFactors deletes every second factor of the account and its backup
// codes, and returns the names of the methods it removed.
func removeFactors(ctx context.Context, q store.Queries, accountID string) ([]string, error) {
	removed := []string{}
	switch err := q.DeleteTOTP(ctx, accountID); {
	case err == nil:
		removed = append(removed, "totp")
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	keys, err := q.ListWebAuthnCredentials(ctx, accountID)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := q.DeleteWebAuthnCredential(ctx, accountID, k.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	if len(keys) > 0 {
		removed = append(removed, "webauthn")
	}
	switch err := q.DeleteSMSPhone(ctx, accountID); {
	case err == nil:
		removed = append(removed, "sms")
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	n, err := q.CountBackupCodes(ctx, accountID)
	if err != nil {
		return nil, err
	}
	if err := q.ReplaceBackupCodes(ctx, accountID, nil); err != nil {
		return nil, err
	}
	if n > 0 {
		removed = append(removed, "backup_code")
	}
	return removed, nil
}
