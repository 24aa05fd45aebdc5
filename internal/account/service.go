package account

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/audit"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/password"
	"github.com/moat-dev/moat/internal/ratelimit"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

// Paths of the pages that e-mailed links open (internal/web serves them;
// each shows a confirmation button that POSTs the token, so mail scanners
// that fetch links change nothing). The token goes in the "token" query
// parameter.
const (
	PathConfirmEmail  = "/confirm"
	PathApproveDevice = "/login/approve"
	PathSecureAccount = "/secure"
	PathSignIn        = "/login"
)

// Fixed security constants (DESIGN.md); the tunable ones are in Config.
const (
	// SecureLinkTTL is how long a "this wasn't me" link works.
	SecureLinkTTL = 7 * 24 * time.Hour
	// maxCodeAttempts wrong device codes or second-factor answers void a
	// pending sign-in.
	maxCodeAttempts = 5
	// maxDelay caps the growing delay between failed sign-ins.
	maxDelay = 5 * time.Minute
	// touchEvery is how stale a session's stored LastSeenAt may get before
	// Authenticate writes it again.
	touchEvery = time.Minute
	// mailLimit bounds unsolicited e-mails (sign-up of an existing address,
	// resent confirmations) to one address per throttle window, so the
	// forms cannot be used to flood someone's inbox.
	mailLimit = 5
	// passwordChangeLimit bounds wrong current passwords on the change
	// form per window: a stolen session must not become a password oracle.
	passwordChangeLimit = 5
)

// Config holds the account service's limits and durations. ConfigFrom
// builds it from the application configuration.
type Config struct {
	// SessionIdle ends a session this long after its last request.
	SessionIdle time.Duration
	// SessionAbsolute ends a session this long after sign-in, however busy.
	SessionAbsolute time.Duration
	// SessionCacheTTL is how long a node trusts its cached copy of a
	// session: the most another node may lag behind a revocation.
	SessionCacheTTL time.Duration
	// DeviceApproval makes sign-ins from unknown devices wait for an
	// e-mailed code or link.
	DeviceApproval bool
	// ThrottleWindow is the window of the per-IP and per-account counters.
	ThrottleWindow time.Duration
	// ThrottleFreeAttempts failed sign-ins per account go without delay;
	// after that each waits 2^(n-free) seconds (at most 5 minutes).
	ThrottleFreeAttempts int
	// LockAfter failed sign-ins in a window pause sign-in to the account
	// for LockFor (an e-mail tells the owner).
	LockAfter int
	LockFor   time.Duration
	// IPLimit is the number of sign-in attempts one IP may make per window.
	IPLimit int
	// ConfirmLinkTTL is how long an e-mail confirmation link works.
	ConfirmLinkTTL time.Duration
	// DeviceCodeTTL is how long a pending sign-in (and its e-mailed code
	// and link) lives.
	DeviceCodeTTL time.Duration
	// SecurityChangeHold pauses withdrawals after a password change.
	SecurityChangeHold time.Duration
	// Brand is the product name; passwords built from it are refused.
	Brand string
}

// ConfigFrom takes the account settings out of the application config.
func ConfigFrom(c config.Config) Config {
	s := c.Security
	return Config{
		SessionIdle:          s.SessionIdle,
		SessionAbsolute:      s.SessionAbsolute,
		SessionCacheTTL:      s.SessionCacheTTL,
		DeviceApproval:       s.DeviceApproval,
		ThrottleWindow:       s.ThrottleWindow,
		ThrottleFreeAttempts: s.ThrottleFreeAttempts,
		LockAfter:            s.LockAfter,
		LockFor:              s.LockFor,
		IPLimit:              s.IPLimit,
		ConfirmLinkTTL:       s.ConfirmLinkTTL,
		DeviceCodeTTL:        s.DeviceCodeTTL,
		SecurityChangeHold:   s.SecurityChangeHold,
		Brand:                c.Brand,
	}
}

// Deps are what the service needs. Every field is required except Logger
// (nil discards), Policy (the zero value means password.DefaultPolicy())
// and the 2FA interfaces at the end.
type Deps struct {
	Store   store.Store
	Clock   clock.Clock
	Rand    io.Reader // crypto/rand.Reader in production
	Hasher  *password.Hasher
	Policy  password.Policy
	Mailer  *notify.Mailer
	Audit   *audit.Log
	Counter ratelimit.Counter
	Config  Config
	// CodeKey is a secret HMAC key (at least 32 bytes, the same on every
	// node) for the e-mailed device codes, which are short enough that
	// their stored form must not be brute-forced from a database dump.
	// Derive it from the master encryption key with its own label.
	CodeKey []byte
	// Logger receives operator diagnostics (never secrets); nil discards.
	Logger *slog.Logger
	// Background, when set, runs work off the request path whose timing
	// would otherwise tell an observer something the answer does not: a
	// password-reset request writes a link and an e-mail for an address
	// with an account and nothing for one without. The task gets a context
	// that outlives the request. Nil runs that work inline (tests, where
	// errors then come back to the caller).
	Background func(task func(ctx context.Context))

	// The 2FA service (internal/mfa's Service), as sign-in and step-up see
	// it. Each is optional; nil keeps the behaviour without 2FA settings:
	//
	//   - SignInPolicy nil: a second factor is asked at sign-in whenever
	//     the account has one of the registered factors enrolled.
	//   - Enrolment nil: no account is ever told it must enrol.
	//   - StepUp nil: ChangePassword needs a second factor verified within
	//     StepUpWithin when the account has a registered factor enrolled
	//     (nothing, with no factors registered).
	//   - Challenges nil: StartSecondFactor sends nothing (fine for typed
	//     codes only; set it when registering mfa's factors).
	//
	// Wiring with internal/mfa:
	//
	//	SignInPolicy: account.SignInPolicyOf(mfaService, mfa.FunctionSignIn),
	//	Enrolment:    mfaService,
	//	StepUp:       mfaService,
	//	Challenges:   account.ChallengesOf[mfa.Challenge](),
	//
	// and RegisterFactor for each of mfaService.Factors().
	SignInPolicy SignInPolicy
	Enrolment    EnrolmentPolicy
	StepUp       StepUp
	Challenges   Challenges
}

// Service implements the account capability. Build it with New.
type Service struct {
	store   store.Store
	clock   clock.Clock
	rand    io.Reader
	hasher  *password.Hasher
	policy  password.Policy
	mailer  *notify.Mailer
	audit   *audit.Log
	counter ratelimit.Counter
	cfg     Config
	codeKey []byte
	log     *slog.Logger

	background func(task func(ctx context.Context))

	signInPolicy SignInPolicy
	enrolment    EnrolmentPolicy
	stepUp       StepUp
	challenges   Challenges

	factorsMu sync.RWMutex
	factors   []Factor

	throttle *throttle
	cache    *sessionCache

	// onLock are the OnLock hooks (onlock.go).
	onLock []func(accountID string)
	// onSignedIn are the OnSignedIn hooks (reset.go).
	onSignedIn []func(ctx context.Context, accountID, factor string)
}

// New returns a Service. It panics if a required dependency is missing or
// the configuration is unusable: that is a wiring bug, not a runtime
// condition.
func New(d Deps) *Service {
	var missing []string
	for name, ok := range map[string]bool{
		"Store": d.Store != nil, "Clock": d.Clock != nil, "Rand": d.Rand != nil,
		"Hasher": d.Hasher != nil, "Mailer": d.Mailer != nil, "Audit": d.Audit != nil,
		"Counter": d.Counter != nil,
	} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		panic(fmt.Sprintf("account.New: missing dependencies %v", missing))
	}
	if len(d.CodeKey) < 32 {
		panic("account.New: CodeKey must be at least 32 secret bytes")
	}
	c := d.Config
	if c.SessionIdle <= 0 || c.SessionAbsolute <= 0 || c.SessionCacheTTL < 0 || c.ThrottleWindow <= 0 ||
		c.LockFor <= 0 || c.ConfirmLinkTTL <= 0 || c.DeviceCodeTTL <= 0 || c.SecurityChangeHold < 0 ||
		c.ThrottleFreeAttempts < 0 || c.LockAfter <= c.ThrottleFreeAttempts || c.IPLimit <= 0 {
		panic(fmt.Sprintf("account.New: unusable config %+v", c))
	}
	if d.Policy.MaxLength == 0 {
		d.Policy = password.DefaultPolicy()
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{
		store: d.Store, clock: d.Clock, rand: d.Rand, hasher: d.Hasher, policy: d.Policy,
		mailer: d.Mailer, audit: d.Audit, counter: d.Counter, cfg: c,
		codeKey: slices.Clone(d.CodeKey), log: log, background: d.Background,
		signInPolicy: d.SignInPolicy, enrolment: d.Enrolment, stepUp: d.StepUp, challenges: d.Challenges,
		throttle: newThrottle(),
		cache:    newSessionCache(),
	}
}

// RegisterFactor adds a second factor to the sign-in flow. Register every
// factor before serving requests.
func (s *Service) RegisterFactor(f Factor) {
	s.factorsMu.Lock()
	defer s.factorsMu.Unlock()
	s.factors = append(s.factors, f)
	slices.SortStableFunc(s.factors, func(a, b Factor) int {
		return factorRank(a.Name()) - factorRank(b.Name())
	})
}

// factorRank orders factors by preference: phishing-resistant first, SMS
// (weakest) and backup codes (last resort) last.
func factorRank(name string) int {
	switch name {
	case "webauthn":
		return 0
	case "totp":
		return 1
	case "sms":
		return 2
	case "backup_code":
		return 4
	}
	return 3
}

// enrolledFactors returns the names of the account's enrolled factors in
// preference order. An error fails the sign-in closed.
func (s *Service) enrolledFactors(ctx context.Context, accountID string) ([]string, error) {
	s.factorsMu.RLock()
	fs := slices.Clone(s.factors)
	s.factorsMu.RUnlock()
	var names []string
	for _, f := range fs {
		ok, err := f.Enrolled(ctx, accountID)
		if err != nil {
			return nil, fmt.Errorf("account: factor %s: %w", f.Name(), err)
		}
		if ok {
			names = append(names, f.Name())
		}
	}
	return names, nil
}

func (s *Service) factor(name string) Factor {
	s.factorsMu.RLock()
	defer s.factorsMu.RUnlock()
	for _, f := range s.factors {
		if f.Name() == name {
			return f
		}
	}
	return nil
}

// PurgeExpired deletes pending sign-ins that have expired; run it
// periodically.
func (s *Service) PurgeExpired(ctx context.Context) (int, error) {
	return s.store.DeleteExpiredPendingSignIns(ctx, s.clock.Now())
}

// now returns the clock's time at the store's precision, so what is kept
// in memory equals what comes back from the store.
func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

// newToken makes a one-time link token and stores its hash.
func (s *Service) newToken(ctx context.Context, q store.Queries, kind store.TokenKind, accountID, subject string, now time.Time, ttl time.Duration) (string, error) {
	tok, err := secrets.NewToken(s.rand)
	if err != nil {
		return "", err
	}
	err = q.CreateToken(ctx, store.Token{
		Hash: secrets.HashToken(tok), Kind: kind, AccountID: accountID, Subject: subject,
		CreatedAt: now, ExpiresAt: now.Add(ttl),
	})
	if err != nil {
		return "", fmt.Errorf("account: create %s token: %w", kind, err)
	}
	return tok, nil
}

// mail renders and queues one e-mail to the account's owner.
func (s *Service) mail(ctx context.Context, q store.Queries, a store.Account, template string, data map[string]string) error {
	err := s.mailer.Enqueue(ctx, q, notify.Email{Template: template, To: a.Email, AntiPhishingCode: a.AntiPhishingCode, Data: data})
	if err != nil {
		return fmt.Errorf("account: %s e-mail: %w", template, err)
	}
	return nil
}

// secureLink makes a "this wasn't me" link for a where a is.
func (s *Service) secureLink(ctx context.Context, q store.Queries, a store.Account, now time.Time) (string, error) {
	tok, err := s.newToken(ctx, q, store.TokenSecureAccount, a.ID, "", now, SecureLinkTTL)
	if err != nil {
		return "", err
	}
	return s.mailer.Link(PathSecureAccount, tok), nil
}

// record appends an audit event through q.
func (s *Service) record(ctx context.Context, q store.Queries, typ string, a store.Account, c Client, deviceID string, data map[string]any) error {
	_, err := s.audit.Append(ctx, q, audit.Event{
		Type: typ, AccountID: a.ID, IP: c.IP, UserAgent: c.UserAgent, DeviceID: deviceID, Data: data,
	})
	if err != nil {
		return fmt.Errorf("account: audit %s: %w", typ, err)
	}
	return nil
}

// tokenError maps ConsumeToken's errors for a link of the given purpose.
func tokenError(err error, what, again string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return apperr.New(apperr.TokenInvalid, "This "+what+" is not valid. Check that you opened the whole link from the e-mail. "+again)
	case errors.Is(err, store.ErrTokenExpired):
		return apperr.New(apperr.TokenExpired, "This "+what+" has expired. "+again)
	case errors.Is(err, store.ErrTokenUsed):
		return apperr.New(apperr.TokenUsed, "This "+what+" was already used; each link works once. "+again)
	}
	return apperr.Wrap(err)
}
