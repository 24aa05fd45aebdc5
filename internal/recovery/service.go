package recovery

// CONTRACT FILE: the signatures and doc comments are the agreement between
// the recovery service and its adapters (web, api, admin, server). The
// bodies are filled in by the recovery helper; change a signature only
// together with its callers.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/audit"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/ratelimit"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

// Config holds the tunable durations.
type Config struct {
	WaitingPeriod time.Duration // DefaultWaitingPeriod
	NoticeEvery   time.Duration // DefaultNoticeEvery
	RecoveryHold  time.Duration // DefaultRecoveryHold: withdrawals paused after completion
}

// Deps are what the service needs; every field is required except Logger.
type Deps struct {
	Store    store.Store
	Clock    clock.Clock
	Rand     io.Reader
	Box      *secrets.Box // seals documents
	Mailer   *notify.Mailer
	Audit    *audit.Log
	Counter  ratelimit.Counter
	Accounts *account.Service
	Config   Config
	Logger   *slog.Logger
}

// Service implements recovery cases. Build it with New.
type Service struct {
	d   Deps
	log *slog.Logger
}

// New returns a Service; it panics on a missing dependency (a wiring bug).
// It registers itself with Accounts.OnSignedIn so that a sign-in with a
// second factor cancels the account's open or waiting case.
//
// Zero durations in Config take the defaults.
func New(d Deps) *Service {
	var missing []string
	for name, ok := range map[string]bool{
		"Store": d.Store != nil, "Clock": d.Clock != nil, "Rand": d.Rand != nil, "Box": d.Box != nil,
		"Mailer": d.Mailer != nil, "Audit": d.Audit != nil, "Counter": d.Counter != nil, "Accounts": d.Accounts != nil,
	} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		panic(fmt.Sprintf("recovery.New: missing dependencies %v", missing))
	}
	c := &d.Config
	if c.WaitingPeriod == 0 {
		c.WaitingPeriod = DefaultWaitingPeriod
	}
	if c.NoticeEvery == 0 {
		c.NoticeEvery = DefaultNoticeEvery
	}
	if c.RecoveryHold == 0 {
		c.RecoveryHold = DefaultRecoveryHold
	}
	if c.WaitingPeriod < 0 || c.NoticeEvery < 0 || c.RecoveryHold < 0 {
		panic(fmt.Sprintf("recovery.New: unusable config %+v", *c))
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{d: d, log: log}
	d.Accounts.OnSignedIn(s.signedIn)
	return s
}

// Open opens a case for the account proof names. document is the raw
// upload (the adapter caps the read at MaxDocumentBytes+1): JPEG, PNG or
// PDF by content, whatever the file name says. Errors: TokenInvalid /
// TokenExpired for a bad proof, Invalid (Field "document" or an answer's
// JSON name) for unacceptable input, TooLarge (Field "document") over
// MaxDocumentBytes, Conflict when the account already has an open or
// waiting case, RateLimited when one IP opens too many. The owner's
// address is e-mailed at once (recovery_requested, with a cancel link).
func (s *Service) Open(ctx context.Context, proof Proof, answers Answers, document []byte, c account.Client) (Opened, error) {
	now := s.now()
	acct, via, err := s.prove(ctx, proof)
	if err != nil {
		return Opened{}, err
	}
	if answers, err = cleanAnswers(answers, now); err != nil {
		return Opened{}, err
	}
	docType, err := SniffDocument(document)
	if err != nil {
		return Opened{}, err
	}
	n, err := factorCount(ctx, s.d.Store, acct.ID)
	if err != nil {
		return Opened{}, apperr.Wrap(err)
	}
	if n == 0 {
		return Opened{}, apperr.New(apperr.Conflict,
			"This account has no two-factor methods, so there is nothing to recover: sign in with your password, "+
				"or set a new one with the link from the \u201cForgot password\u201d e-mail.")
	}
	if err := s.checkNoActiveCase(ctx, s.d.Store, acct.ID); err != nil {
		return Opened{}, err
	}
	keys, err := s.limit(ctx, c.IP, acct.ID)
	if err != nil {
		return Opened{}, err
	}
	opened := false
	defer func() {
		if !opened {
			// The limits count cases opened, not attempts that failed.
			s.unlimit(ctx, keys)
		}
	}()

	id, err := secrets.NewID(s.d.Rand)
	if err != nil {
		return Opened{}, apperr.Wrap(err)
	}
	statusToken, err := secrets.NewToken(s.d.Rand)
	if err != nil {
		return Opened{}, apperr.Wrap(err)
	}
	sealed, err := s.d.Box.Seal(document, docContext(id))
	if err != nil {
		return Opened{}, apperr.Wrap(err)
	}
	aj, err := json.Marshal(answers)
	if err != nil {
		return Opened{}, apperr.Wrap(err)
	}
	rc := store.RecoveryCase{
		ID: id, AccountID: acct.ID, State: store.RecoveryOpen, Via: via,
		StatusTokenHash: secrets.HashToken(statusToken), Answers: string(aj),
		DocumentType: docType, DocumentSize: int64(len(document)), Document: sealed,
		IP: c.IP, UserAgent: c.UserAgent, CreatedAt: now, UpdatedAt: now,
	}
	err = s.d.Store.InTx(ctx, func(tx store.Queries) error {
		// Lock the account's row: two opens for one account are serialised
		// here, so the second sees the first's case.
		a, err := tx.UpdateAccount(ctx, acct.ID, func(*store.Account) error { return nil })
		if err != nil {
			return err
		}
		if err := s.checkNoActiveCase(ctx, tx, a.ID); err != nil {
			return err
		}
		for try := 0; ; try++ {
			if rc.Reference, err = newReference(s.d.Rand); err != nil {
				return err
			}
			err = tx.CreateRecoveryCase(ctx, rc)
			if !errors.Is(err, store.ErrAlreadyExists) || try == 4 {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("recovery: create case: %w", err)
		}
		link, err := s.cancelLink(ctx, tx, rc, now)
		if err != nil {
			return err
		}
		if err := s.mail(ctx, tx, a, notify.TemplateRecoveryRequested, map[string]string{
			"Reference": rc.Reference, "Time": notify.Time(now), "IP": notify.OrUnknown(c.IP), "CancelLink": link,
		}); err != nil {
			return err
		}
		return s.record(ctx, tx, audit.Event{
			Type: EventOpened, AccountID: a.ID, IP: c.IP, UserAgent: c.UserAgent,
			Data: map[string]any{"case": rc.ID, "reference": rc.Reference, "via": via,
				"document_type": docType, "document_size": len(document)},
		})
	})
	if err != nil {
		return Opened{}, apperr.Wrap(err)
	}
	opened = true
	return Opened{Case: s.view(rc), StatusToken: statusToken}, nil
}

// Status returns the case of a status link's token; TokenInvalid if
// unknown.
func (s *Service) Status(ctx context.Context, statusToken string) (CaseView, error) {
	if statusToken == "" {
		return CaseView{}, errStatusLink
	}
	rc, err := s.d.Store.GetRecoveryCaseByStatusToken(ctx, secrets.HashToken(statusToken))
	if errors.Is(err, store.ErrNotFound) {
		return CaseView{}, errStatusLink
	}
	if err != nil {
		return CaseView{}, apperr.Wrap(err)
	}
	return s.view(rc), nil
}

// CheckCancelLink returns the case a cancel link would cancel, without
// cancelling it (for the confirmation page). TokenInvalid / TokenExpired /
// TokenUsed for a bad link; Conflict when the case has ended.
func (s *Service) CheckCancelLink(ctx context.Context, token string) (CaseView, error) {
	if token == "" {
		return CaseView{}, cancelTokenError(store.ErrNotFound)
	}
	t, err := s.d.Store.GetToken(ctx, store.TokenRecoveryCancel, secrets.HashToken(token))
	switch {
	case err != nil:
		return CaseView{}, cancelTokenError(err)
	case !t.UsedAt.IsZero():
		return CaseView{}, cancelTokenError(store.ErrTokenUsed)
	case !s.now().Before(t.ExpiresAt):
		return CaseView{}, cancelTokenError(store.ErrTokenExpired)
	}
	rc, err := s.d.Store.GetRecoveryCase(ctx, t.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return CaseView{}, cancelTokenError(err)
	}
	if err != nil {
		return CaseView{}, apperr.Wrap(err)
	}
	if !active(rc.State) {
		return CaseView{}, errEnded(rc)
	}
	return s.view(rc), nil
}

// CancelByLink cancels the case of an e-mailed cancel link (open or
// waiting). The owner is e-mailed (recovery_cancelled).
func (s *Service) CancelByLink(ctx context.Context, token string, c account.Client) (CaseView, error) {
	if token == "" {
		return CaseView{}, cancelTokenError(store.ErrNotFound)
	}
	now := s.now()
	var out store.RecoveryCase
	err := s.d.Store.InTx(ctx, func(tx store.Queries) error {
		t, err := tx.ConsumeToken(ctx, store.TokenRecoveryCancel, secrets.HashToken(token), now)
		if err != nil {
			return cancelTokenError(err)
		}
		out, err = s.cancel(ctx, tx, t.Subject, t.AccountID, cancelledByLink, "with the cancel link in our e-mail", c, now, nil)
		if errors.Is(err, store.ErrNotFound) {
			return cancelTokenError(err)
		}
		return err
	})
	if err != nil {
		return CaseView{}, apperr.Wrap(err)
	}
	return s.view(out), nil
}

// Queue lists cases for staff, newest first; states empty means open and
// waiting. Forbidden unless staff is a support or admin account.
func (s *Service) Queue(ctx context.Context, staff account.Principal, states []store.RecoveryState) ([]CaseView, error) {
	if err := requireStaff(staff); err != nil {
		return nil, err
	}
	if len(states) == 0 {
		states = activeStates
	}
	cases, err := s.d.Store.ListRecoveryCases(ctx, store.RecoveryCaseFilter{States: states, Limit: 500})
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	return s.views(cases), nil
}

// CasesOf lists one account's cases for staff (the account page).
func (s *Service) CasesOf(ctx context.Context, staff account.Principal, accountID string) ([]CaseView, error) {
	if err := requireStaff(staff); err != nil {
		return nil, err
	}
	cases, err := s.d.Store.ListRecoveryCases(ctx, store.RecoveryCaseFilter{AccountID: accountID, Limit: 500})
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	return s.views(cases), nil
}

// Review returns one case with its answers compared against the account's
// real history. Forbidden for non-staff; NotFound for an unknown ID.
func (s *Service) Review(ctx context.Context, staff account.Principal, caseID string) (Review, error) {
	if err := requireStaff(staff); err != nil {
		return Review{}, err
	}
	rc, err := s.getCase(ctx, caseID)
	if err != nil {
		return Review{}, err
	}
	acct, err := s.d.Store.GetAccount(ctx, rc.AccountID)
	if err != nil {
		return Review{}, apperr.Wrap(err)
	}
	var a Answers
	if rc.Answers != "" {
		if err := json.Unmarshal([]byte(rc.Answers), &a); err != nil {
			return Review{}, apperr.Wrap(fmt.Errorf("recovery: case %s answers: %w", rc.ID, err))
		}
	}
	cmp, err := s.compare(ctx, acct, a)
	if err != nil {
		return Review{}, apperr.Wrap(err)
	}
	// Reading someone's identity answers is a staff action like any other:
	// on the record, with who read them, before they are shown.
	if err := s.record(ctx, s.d.Store, audit.Event{
		Type: EventCaseViewed, AccountID: rc.AccountID, ActorID: staff.Account.ID,
		IP: staff.Session.IP, UserAgent: staff.Session.UserAgent,
		Data: map[string]any{"case": rc.ID, "reference": rc.Reference},
	}); err != nil {
		return Review{}, apperr.Wrap(err)
	}
	return Review{
		Case: s.view(rc), AccountEmail: acct.Email, Comparisons: cmp, Note: a.Note,
		DocumentType: rc.DocumentType, DocumentSize: rc.DocumentSize, IP: rc.IP, UserAgent: rc.UserAgent,
		FirstApproverID: rc.FirstApproverID,
	}, nil
}

// Document returns the decrypted identity document and its sniffed media
// type, for staff only; every view is audited.
func (s *Service) Document(ctx context.Context, staff account.Principal, caseID string, c account.Client) (mediaType string, data []byte, err error) {
	if err := requireStaff(staff); err != nil {
		return "", nil, err
	}
	rc, err := s.getCase(ctx, caseID)
	if err != nil {
		return "", nil, err
	}
	data, err = s.d.Box.Open(rc.Document, docContext(rc.ID))
	if err != nil {
		return "", nil, apperr.Wrap(fmt.Errorf("recovery: case %s document: %w", rc.ID, err))
	}
	// The view is on the record before anyone sees the document.
	if err := s.record(ctx, s.d.Store, audit.Event{
		Type: EventDocumentViewed, AccountID: rc.AccountID, ActorID: staff.Account.ID, IP: c.IP, UserAgent: c.UserAgent,
		Data: map[string]any{"case": rc.ID, "reference": rc.Reference},
	}); err != nil {
		return "", nil, apperr.Wrap(err)
	}
	return rc.DocumentType, data, nil
}

// Approve records staff's approval. The first approval leaves the case
// open; the second, by a different staff member, starts the waiting
// period (recovery_approved e-mail). Conflict when this staff member
// approved already, or the case is not open; Forbidden for non-staff, for
// a staff member approving a case about their own account, and for a
// support agent approving a case about a staff account (admins only).
func (s *Service) Approve(ctx context.Context, staff account.Principal, caseID string, c account.Client) (CaseView, error) {
	if err := requireStaff(staff); err != nil {
		return CaseView{}, err
	}
	now := s.now()
	var out store.RecoveryCase
	err := s.d.Store.InTx(ctx, func(tx store.Queries) error {
		var err error
		out, err = tx.UpdateRecoveryCase(ctx, caseID, func(rc *store.RecoveryCase) error {
			switch {
			case rc.AccountID == staff.Account.ID:
				return errOwnCase
			case rc.State != store.RecoveryOpen:
				return errNotOpen(*rc)
			case rc.FirstApproverID == "":
				rc.FirstApproverID, rc.FirstApprovedAt = staff.Account.ID, now
			case rc.FirstApproverID == staff.Account.ID:
				return errApprovedTwice
			default:
				rc.SecondApproverID, rc.SecondApprovedAt = staff.Account.ID, now
				rc.State = store.RecoveryWaiting
				rc.WaitUntil = now.Add(s.d.Config.WaitingPeriod)
				rc.NextNoticeAt = now.Add(s.d.Config.NoticeEvery)
			}
			rc.UpdatedAt = now
			return nil
		})
		if errors.Is(err, store.ErrNotFound) {
			return errNoCase
		}
		if err != nil {
			return err
		}
		a, err := tx.GetAccount(ctx, out.AccountID)
		if err != nil {
			return err
		}
		if a.Role != store.RoleUser && staff.Account.Role != store.RoleAdmin {
			// A staff account opens the console: handing one to whoever
			// asked takes admins, not two support agents. (The error rolls
			// the approval back.)
			return errStaffCase
		}
		approval := 1
		if out.State == store.RecoveryWaiting {
			approval = 2
			link, err := s.cancelLink(ctx, tx, out, now)
			if err != nil {
				return err
			}
			if err := s.mail(ctx, tx, a, notify.TemplateRecoveryApproved, map[string]string{
				"Reference": out.Reference, "WaitUntil": notify.Time(out.WaitUntil), "CancelLink": link,
			}); err != nil {
				return err
			}
		}
		data := map[string]any{"case": out.ID, "reference": out.Reference, "approval": approval}
		if approval == 2 {
			data["wait_until"] = out.WaitUntil.Format(time.RFC3339)
		}
		return s.record(ctx, tx, audit.Event{
			Type: EventApproved, AccountID: out.AccountID, ActorID: staff.Account.ID, IP: c.IP, UserAgent: c.UserAgent, Data: data,
		})
	})
	if err != nil {
		return CaseView{}, apperr.Wrap(err)
	}
	return s.view(out), nil
}

// Reject ends an open case with a reason the owner will read (Invalid,
// Field "reason", when empty). The owner is e-mailed.
func (s *Service) Reject(ctx context.Context, staff account.Principal, caseID, reason string, c account.Client) (CaseView, error) {
	return s.decide(ctx, staff, reason, func(tx store.Queries, reason string, now time.Time) (store.RecoveryCase, error) {
		out, err := tx.UpdateRecoveryCase(ctx, caseID, func(rc *store.RecoveryCase) error {
			if rc.State != store.RecoveryOpen {
				return errNotOpen(*rc)
			}
			rc.State, rc.RejectedBy, rc.RejectedAt, rc.RejectReason = store.RecoveryRejected, staff.Account.ID, now, reason
			rc.UpdatedAt = now
			return nil
		})
		if err != nil {
			return out, err
		}
		a, err := tx.GetAccount(ctx, out.AccountID)
		if err != nil {
			return out, err
		}
		if err := s.mail(ctx, tx, a, notify.TemplateRecoveryRejected, map[string]string{
			"Reference": out.Reference, "Reason": reason, "Link": s.d.Mailer.Link(account.PathSignIn, ""),
		}); err != nil {
			return out, err
		}
		return out, s.record(ctx, tx, audit.Event{
			Type: EventRejected, AccountID: out.AccountID, ActorID: staff.Account.ID, IP: c.IP, UserAgent: c.UserAgent,
			Data: map[string]any{"case": out.ID, "reference": out.Reference, "reason": reason},
		})
	})
}

// decide runs a staff member's reasoned decision about a case (do, in one
// transaction): staff only, a reason required (Invalid, Field "reason"),
// NotFound for an unknown case.
func (s *Service) decide(ctx context.Context, staff account.Principal, reason string,
	do func(tx store.Queries, reason string, now time.Time) (store.RecoveryCase, error)) (CaseView, error) {
	if err := requireStaff(staff); err != nil {
		return CaseView{}, err
	}
	reason, err := cleanReason(reason)
	if err != nil {
		return CaseView{}, err
	}
	now := s.now()
	var out store.RecoveryCase
	err = s.d.Store.InTx(ctx, func(tx store.Queries) error {
		var err error
		out, err = do(tx, reason, now)
		if errors.Is(err, store.ErrNotFound) {
			return errNoCase
		}
		return err
	})
	if err != nil {
		return CaseView{}, apperr.Wrap(err)
	}
	return s.view(out), nil
}

// Stop ends an open or waiting case on a staff member's word, with a
// reason recorded in the audit log (Invalid, Field "reason", when empty):
// the owner reached support another way and says the request is not
// theirs, say. Stopping is the safe direction, so one staff member
// suffices, at any time before the waiting period ends. The owner is
// e-mailed. Conflict for a case that has ended; Forbidden for non-staff.
func (s *Service) Stop(ctx context.Context, staff account.Principal, caseID, reason string, c account.Client) (CaseView, error) {
	return s.decide(ctx, staff, reason, func(tx store.Queries, reason string, now time.Time) (store.RecoveryCase, error) {
		return s.cancel(ctx, tx, caseID, "", staff.Account.ID, "by our support staff", c, now, map[string]any{"reason": reason})
	})
}

// Tick does the timed work due now: a reminder for every waiting case
// whose NextNoticeAt has passed, and completion of every waiting case
// whose WaitUntil has passed (lost factors removed, sessions revoked,
// withdrawals paused for RecoveryHold, recovery_completed e-mail). Safe to
// run on every node at once: each transition happens once. Returns how
// many cases it changed.
func (s *Service) Tick(ctx context.Context) (int, error) {
	now := s.now()
	cases, err := s.d.Store.ListRecoveryCases(ctx, store.RecoveryCaseFilter{
		States: []store.RecoveryState{store.RecoveryWaiting}, Limit: tickBatch,
	})
	if err != nil {
		return 0, apperr.Wrap(err)
	}
	changed := 0
	var errs []error
	for _, rc := range cases {
		var done bool
		switch {
		case !now.Before(rc.WaitUntil):
			done, err = s.complete(ctx, rc.ID, now)
		case !rc.NextNoticeAt.IsZero() && !now.Before(rc.NextNoticeAt):
			done, err = s.remind(ctx, rc.ID, now)
		default:
			continue
		}
		if err != nil {
			s.log.Error("recovery: timed work failed", "case", rc.ID, "err", err)
			errs = append(errs, fmt.Errorf("case %s: %w", rc.ID, err))
			continue
		}
		if done {
			changed++
		}
	}
	return changed, errors.Join(errs...)
}

// Run calls Tick every interval until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("recovery: tick", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// NeedsEnrolment implements account.EnrolmentPolicy's question for
// recovered accounts: true (any method) when the account's last case
// completed and it has no second factor since.
func (s *Service) NeedsEnrolment(ctx context.Context, acct store.Account) (bool, string, error) {
	cases, err := s.d.Store.ListRecoveryCases(ctx, store.RecoveryCaseFilter{AccountID: acct.ID, Limit: 1})
	if err != nil {
		return false, "", apperr.Wrap(err)
	}
	if len(cases) == 0 || cases[0].State != store.RecoveryCompleted {
		return false, "", nil
	}
	n, err := factorCount(ctx, s.d.Store, acct.ID)
	if err != nil {
		return false, "", apperr.Wrap(err)
	}
	return n == 0, "", nil
}
