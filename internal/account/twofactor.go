package account

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/store"
)

// The second factor's place in the account service: the sign-in policy,
// mandatory enrolment, challenges, passkey sign-in and step-up.
//
// internal/mfa imports this package (for Factor, Principal and Client), so
// this package cannot import it. It says what it needs as small interfaces
// that *mfa.Service satisfies as it is. Where mfa's signatures use mfa's own
// named types (mfa.Function, mfa.Challenge), which no interface here could
// spell, a generic adapter takes the type as a parameter instead:
// SignInPolicyOf and ChallengesOf.

// SignInPolicy decides whether signing in to an account takes a second
// factor. The account's settings may turn the prompt off ("2FA per
// function"); a platform that makes 2FA mandatory keeps it on.
type SignInPolicy interface {
	// RequiredAtSignIn reports whether acct must verify a second factor to
	// sign in. True for an account that has no factor the sign-in can ask
	// for refuses the sign-in (fail closed).
	RequiredAtSignIn(ctx context.Context, acct store.Account) (bool, error)
}

// FunctionPolicy is a per-function 2FA policy such as *mfa.Service: Required
// reports whether acct needs a second factor for fn. F is the policy's own
// function type (mfa.Function).
type FunctionPolicy[F any] interface {
	Required(ctx context.Context, acct store.Account, fn F) (bool, error)
}

// SignInPolicyOf is the SignInPolicy that asks p about its sign-in
// function:
//
//	account.SignInPolicyOf(mfaService, mfa.FunctionSignIn)
func SignInPolicyOf[F any](p FunctionPolicy[F], signIn F) SignInPolicy {
	return functionPolicy[F]{p: p, fn: signIn}
}

type functionPolicy[F any] struct {
	p  FunctionPolicy[F]
	fn F
}

func (f functionPolicy[F]) RequiredAtSignIn(ctx context.Context, acct store.Account) (bool, error) {
	return f.p.Required(ctx, acct, f.fn)
}

// EnrolmentPolicy says whether the platform requires an account to enrol a
// second factor before it does anything else (mandatory 2FA for everyone or
// for staff). *mfa.Service satisfies it.
type EnrolmentPolicy interface {
	// NeedsEnrolment reports whether acct must enrol now and which method
	// ("" for any, "webauthn" when staff must have a security key).
	NeedsEnrolment(ctx context.Context, acct store.Account) (must bool, method string, err error)
}

// StepUp decides whether a signed-in session may make a security change
// now: nil when its second factor is fresh or the account has none,
// otherwise an error with code apperr.StepUpNeeded. *mfa.Service satisfies
// it.
type StepUp interface {
	CheckStepUp(ctx context.Context, p Principal) error
}

// StepUpWithin is how recent a session's second factor must be for a
// security change when Deps.StepUp is nil (DESIGN.md: 5 minutes). With
// Deps.StepUp set, the 2FA service's own setting applies.
const StepUpWithin = 5 * time.Minute

// Challenger is what a Factor implements when it must send something before
// it can be answered: a security key's assertion request for the browser,
// or a code by SMS. C is the factor's challenge type (mfa.Challenge), which
// this package cannot name; mfa.Challenger is Challenger[mfa.Challenge].
type Challenger[C any] interface {
	Challenge(ctx context.Context, accountID string) (C, error)
}

// Challenges starts factor f's challenge for the account and returns it
// for the client, or nil when f needs nothing sent (it is answered with a
// typed code). Build it with ChallengesOf.
type Challenges func(ctx context.Context, f Factor, accountID string) (any, error)

// ChallengesOf returns the Challenges for factors whose challenge type is C:
// those implementing Challenger[C] are asked, the others need nothing.
//
//	Deps.Challenges = account.ChallengesOf[mfa.Challenge]()
func ChallengesOf[C any]() Challenges {
	return func(ctx context.Context, f Factor, accountID string) (any, error) {
		ch, ok := f.(Challenger[C])
		if !ok {
			return nil, nil
		}
		c, err := ch.Challenge(ctx, accountID)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// signInNeeds is what a sign-in of an account takes besides the password
// (or passkey) and device approval.
type signInNeeds struct {
	// factors are the account's enrolled factors in preference order: the
	// ones the person may choose from.
	factors []string
	// factor: a second factor must be verified.
	factor bool
}

// needs decides whether signing in to a takes a second factor. Any error
// refuses the sign-in: nothing is decided without an answer.
func (s *Service) needs(ctx context.Context, a store.Account) (signInNeeds, error) {
	var n signInNeeds
	var err error
	if n.factors, err = s.enrolledFactors(ctx, a.ID); err != nil {
		return n, apperr.Wrap(err)
	}
	if s.signInPolicy == nil {
		n.factor = len(n.factors) > 0
		return n, nil
	}
	if n.factor, err = s.signInPolicy.RequiredAtSignIn(ctx, a); err != nil {
		return n, apperr.Wrap(fmt.Errorf("account: sign-in policy: %w", err))
	}
	if n.factor && len(n.factors) == 0 {
		// The policy counts a factor no registered Factor offers (SMS with
		// no SMS provider configured, say). Asking for nothing would skip
		// the second factor; asking for it would leave no way to answer.
		s.log.Error("account: 2FA required at sign-in but no registered factor is enrolled", "account", a.ID)
		return n, apperr.New(apperr.Forbidden,
			"This account needs a second factor to sign in, but none of its two-factor methods can be used here now. Contact support.")
	}
	return n, nil
}

// enrolment is what a completed sign-in tells the adapter about mandatory
// enrolment.
type enrolment struct {
	must   bool
	method string
}

// mustEnrol asks the enrolment policy about a.
func (s *Service) mustEnrol(ctx context.Context, a store.Account) (enrolment, error) {
	if s.enrolment == nil {
		return enrolment{}, nil
	}
	must, method, err := s.enrolment.NeedsEnrolment(ctx, a)
	if err != nil {
		return enrolment{}, apperr.Wrap(fmt.Errorf("account: enrolment policy: %w", err))
	}
	return enrolment{must: must, method: method}, nil
}

// NeedsEnrolment reports whether the platform requires acct to enrol a
// second factor before anything else, and which method ("" for any), as
// the enrolment policy the service was built with says: adapters gate
// their pages with it, so every policy the server combines (mandatory 2FA,
// staff security keys, an account just recovered) applies to them too,
// not only at sign-in.
func (s *Service) NeedsEnrolment(ctx context.Context, acct store.Account) (bool, string, error) {
	e, err := s.mustEnrol(ctx, acct)
	return e.must, e.method, err
}

// done is the result of a sign-in that issued sess.
func (e enrolment) done(sess *IssuedSession) *SignInResult {
	r := &SignInResult{Step: StepDone, Session: sess, MustEnrol: e.must, SignInFactor: sess.Session.SignInFactor}
	if e.must {
		r.EnrolMethod = e.method
	}
	return r
}

// maxChallenges bounds the challenges one pending sign-in may start per
// throttle window: each may send a text message or store a WebAuthn
// ceremony, and a person needs a few at most.
const maxChallenges = 10

// StartSecondFactor starts the challenge of one of the account's factors
// for a sign-in that waits for its second factor, when the person picks
// that factor: a security key's assertion request (for "webauthn", an
// mfa.Challenge whose Ceremony and Options the browser script uses; it
// then posts the ceremony back with the assertion, which is the response
// VerifySecondFactor takes), or an SMS code sent (for "sms", an
// mfa.Challenge with the masked number). A factor answered with a typed
// code needs no challenge: the result is nil.
//
// Returns Conflict unless the sign-in waits for a second factor (approve
// the device first), Invalid (field "factor") for a factor the account has
// not enrolled, RateLimited after too many challenges for one sign-in, and
// the factor's own refusals (SMS send limits) as they are. Starting a
// challenge never counts as a wrong answer.
func (s *Service) StartSecondFactor(ctx context.Context, pendingToken, factor string, c Client) (any, error) {
	now := s.now()
	p, err := s.loadPending(ctx, pendingToken, now)
	if err != nil {
		return nil, err
	}
	if p.State != store.StateSecondFactor {
		return nil, errNotWaitingForFactor(p.State)
	}
	a, err := s.store.GetAccount(ctx, p.AccountID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errPendingUnknown()
	}
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	if !a.LockedAt.IsZero() {
		return nil, apperr.New(apperr.AccountLocked, "This account is locked, so nobody can sign in to it. Contact support to unlock it.")
	}
	if pendingStale(&p, a) {
		return nil, errPendingStale()
	}
	enrolled, err := s.enrolledFactors(ctx, p.AccountID)
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	f := s.factor(factor)
	if f == nil || !contains(enrolled, factor) {
		return nil, errChooseFactor()
	}
	n, err := s.counter.Incr(ctx, "challenge:"+p.ID, 1, s.cfg.ThrottleWindow)
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	if n > maxChallenges {
		wait := windowEnd(now, s.cfg.ThrottleWindow).Sub(now)
		return nil, &apperr.Error{Code: apperr.RateLimited, RetryAfter: wait,
			Message: "You asked for that many times already. Use the last one we sent, choose another method, or wait " + humanDuration(wait) + "."}
	}
	if s.challenges == nil {
		return nil, nil
	}
	ch, err := s.challenges(ctx, f, p.AccountID)
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	if ch != nil {
		if err := s.record(ctx, s.store, "signin.second_factor_challenge", a, c, p.DeviceID, map[string]any{"factor": factor}); err != nil {
			return nil, apperr.Wrap(err)
		}
	}
	return ch, nil
}

func errChooseFactor() error {
	return apperr.Field(apperr.Invalid, "factor", "Choose one of the ways to confirm it's you that this account has set up.")
}

// SignInWithPasskey signs in the account a passkey answered for. Call it
// only after mfa.Service.FinishPasskeySignIn returned accountID: a passkey
// with user verification proves possession and the person (PIN or
// biometric) at once, so it counts as the password and the second factor,
// and the session's SecondFactorAt is now.
//
// What still applies, as it does to a password: a locked account is
// refused (AccountLocked) and an unconfirmed address too (Unconfirmed); and
// a device the owner has not approved waits for device approval when the
// platform asks for it (StepDeviceApproval, then ApproveDevice or the link
// as usual): passkeys can be synced to new devices through a cloud
// account, and the e-mailed approval is a channel that such an account
// does not control. No second factor is asked after that. The sign-in
// throttle (failed passwords) does not apply: a stranger's guesses must
// not keep out the owner with a passkey. Audited as "signin.success" with
// method "passkey".
func (s *Service) SignInWithPasskey(ctx context.Context, accountID string, c Client) (*SignInResult, error) {
	now := s.now()
	if accountID == "" {
		return nil, errPasskeyUnknown()
	}
	a, err := s.store.GetAccount(ctx, accountID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errPasskeyUnknown()
	}
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	if !a.LockedAt.IsZero() {
		return nil, apperr.New(apperr.AccountLocked,
			"This account is locked, so nobody can sign in to it. Contact support to unlock it.")
	}
	if a.EmailConfirmedAt.IsZero() {
		return nil, apperr.New(apperr.Unconfirmed,
			"Confirm your e-mail address first: open the link in the e-mail we sent you when you signed up. If you cannot find it or it has expired, ask for a new one.")
	}
	dev, known, err := s.clientDevice(ctx, a.ID, c)
	if err != nil {
		return nil, err
	}
	if !known {
		dev = deviceFor(a.ID, c, now)
	}
	trusted := known && !dev.ApprovedAt.IsZero()
	// The passkey is the factor: the policy and the enrolled factors are
	// not asked.
	return s.begin(ctx, a, dev, known, trusted, signInNeeds{}, signInHow{method: methodPasskey, factorAt: now}, c, now)
}

func errPasskeyUnknown() error {
	return apperr.New(apperr.Unauthorized, "This passkey does not belong to an account here. Sign in with your e-mail address and password.")
}

// requireStepUp refuses a security change (password, e-mail address) unless
// p's second factor is fresh or the account has none. The adapter then
// offers the step-up (mfa.Service.StepUpChallenge and StepUp), calls
// RecordStepUp and repeats the request.
func (s *Service) requireStepUp(ctx context.Context, p Principal) error {
	if s.stepUp != nil {
		return apperr.Wrap(s.stepUp.CheckStepUp(ctx, p))
	}
	at := p.Session.SecondFactorAt
	if !at.IsZero() && s.now().Sub(at) <= StepUpWithin {
		return nil
	}
	factors, err := s.enrolledFactors(ctx, p.Account.ID)
	if err != nil {
		return apperr.Wrap(err)
	}
	if len(factors) == 0 {
		return nil
	}
	return apperr.New(apperr.StepUpNeeded, "To make this change, first confirm it's you with your second factor.")
}

// RecordStepUp records that p's session verified a second factor at `at`
// (what mfa.Service.StepUp returned): the session's SecondFactorAt moves
// forward to it (never back, and never past now), on this node at once and
// on the others within Config.SessionCacheTTL. Returns Unauthorized for a
// session that is not p's own live session.
func (s *Service) RecordStepUp(ctx context.Context, p Principal, at time.Time) error {
	if at.IsZero() {
		return apperr.Wrap(errors.New("account: RecordStepUp without a time"))
	}
	now := s.now()
	at = at.UTC().Truncate(time.Microsecond)
	if at.After(now) {
		at = now
	}
	sess, err := s.store.UpdateSession(ctx, p.Session.ID, func(x *store.Session) error {
		if x.AccountID != p.Account.ID || !x.RevokedAt.IsZero() || !now.Before(x.ExpiresAt) {
			return errSignedOut()
		}
		if at.After(x.SecondFactorAt) {
			x.SecondFactorAt = at
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return errSignedOut()
	}
	if err != nil {
		return apperr.Wrap(err)
	}
	s.cache.updateSession(sess)
	return nil
}
