package apikey

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/audit"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

// This file is the API key service: what the web pages, the JSON API and
// the CLI call to create, list, change, rotate and delete keys, and what
// the gateway calls (LookupKey, OnUse) on every signed call. Every change
// is written together with its audit event and the e-mail to the owner in
// one transaction, so none of the three can happen without the others.

// Defaults and bounds of the service.
const (
	// DefaultCacheTTL bounds how long a node keeps using its copy of a key:
	// the most another node may lag behind a change (this node forgets its
	// copy at once).
	DefaultCacheTTL = 5 * time.Second
	// DefaultUnusedAfter is when a key that has not been used is flagged.
	DefaultUnusedAfter = 90 * 24 * time.Hour
	// MaxRotateGrace is the longest the previous secret may keep working
	// after a rotation.
	MaxRotateGrace = 7 * 24 * time.Hour
	// OperatorActor is the audit ActorID of changes made from the command
	// line.
	OperatorActor = "cli"
	// PathKeys is the page listing the owner's keys (linked from e-mails).
	PathKeys = "/security/apikeys"
	// pathSecureAccount is account.PathSecureAccount: the "this wasn't me"
	// page that locks the account (kept here so this package does not
	// depend on the account service).
	pathSecureAccount = "/secure"
	// secureLinkTTL is account.SecureLinkTTL.
	secureLinkTTL = 7 * 24 * time.Hour
)

// Audit event types.
const (
	EventCreated = "apikey.created"
	EventUpdated = "apikey.updated"
	EventRotated = "apikey.rotated"
	EventDeleted = "apikey.deleted"
)

// StepUpGate decides whether a session may make a security change now
// (a fresh second factor, or a fresh password confirmation when the account
// has none). Check returns nil to allow it, or the error to give the user,
// normally an *apperr.Error with code apperr.StepUpNeeded.
type StepUpGate interface {
	Check(ctx context.Context, accountID string, sessionID string) error
}

// StepUpFunc adapts a function to StepUpGate.
type StepUpFunc func(ctx context.Context, accountID, sessionID string) error

// Check implements StepUpGate.
func (f StepUpFunc) Check(ctx context.Context, accountID, sessionID string) error {
	return f(ctx, accountID, sessionID)
}

// ServiceDeps are what the service needs. Store, Clock, Rand, Box, Pepper,
// Audit and Mailer are required.
type ServiceDeps struct {
	Store store.Store
	Clock clock.Clock
	Rand  io.Reader // crypto/rand.Reader in production
	// Box seals secrets at rest.
	Box *secrets.Box
	// Pepper is the server-side key of HashPassword (the gateway's
	// PasswordPepper).
	Pepper []byte
	Audit  *audit.Log
	Mailer *notify.Mailer
	// StepUp is asked before every change a user makes (not before
	// operator changes). Nil refuses every user change: a missing gate must
	// not mean "no step-up".
	StepUp StepUpGate
	// CacheTTL: 0 means DefaultCacheTTL; negative disables the cache
	// (every signed call reads the database).
	CacheTTL time.Duration
	// UnusedAfter: 0 means DefaultUnusedAfter; negative never flags.
	UnusedAfter time.Duration
	// Logger receives failures nobody else sees (recording a key's use);
	// default discards.
	Logger *slog.Logger
}

// Service manages API keys. It is safe for concurrent use.
type Service struct {
	store       store.Store
	clock       clock.Clock
	rand        io.Reader
	box         *secrets.Box
	pepper      []byte
	audit       *audit.Log
	mailer      *notify.Mailer
	stepUp      StepUpGate
	unusedAfter time.Duration
	log         *slog.Logger
	cache       *cache
}

// NewService checks d and returns a Service.
func NewService(d ServiceDeps) (*Service, error) {
	if d.Store == nil || d.Clock == nil || d.Rand == nil || d.Box == nil || len(d.Pepper) == 0 ||
		d.Audit == nil || d.Mailer == nil {
		return nil, errors.New("apikey: Store, Clock, Rand, Box, Pepper, Audit and Mailer are required")
	}
	s := &Service{store: d.Store, clock: d.Clock, rand: d.Rand, box: d.Box, pepper: d.Pepper,
		audit: d.Audit, mailer: d.Mailer, stepUp: d.StepUp, unusedAfter: d.UnusedAfter, log: d.Logger}
	if s.unusedAfter == 0 {
		s.unusedAfter = DefaultUnusedAfter
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	ttl := d.CacheTTL
	if ttl == 0 {
		ttl = DefaultCacheTTL
	}
	s.cache = newCache(ttl)
	return s, nil
}

// Actor is who asks for a change, as the adapter knows them.
type Actor struct {
	// IP is the client address (as the trusted-proxy setting decides).
	IP        string
	UserAgent string
	// SessionID is the session making the change; the step-up gate checks
	// it.
	SessionID string
	DeviceID  string
}

// CreateInput is what the owner chose for a new key. Nothing has a default
// a person did not choose: in particular no permission is implied.
type CreateInput struct {
	// Name says which application uses the key (1 to MaxNameLen
	// characters, trimmed).
	Name string
	// Permissions are slugs ("query-funds") or Kraken's display names; at
	// least one.
	Permissions []string
	// AllowedIPs are addresses and CIDR ranges (items may also hold several
	// separated by commas or spaces); empty allows any address.
	AllowedIPs []string
	// ExpiresAt must be in the future; zero means the key does not expire.
	ExpiresAt time.Time
	// NonceWindow: 0 means every nonce must exceed the last one.
	NonceWindow uint64
	// Password is the optional key password clients send as otp; empty
	// means none.
	Password string
	// QueryStart and QueryEnd limit the history the key may read (zero:
	// open).
	QueryStart time.Time
	QueryEnd   time.Time
}

// UpdateInput changes a key; nil fields stay as they are.
type UpdateInput struct {
	Name        *string
	Permissions *[]string
	// AllowedIPs: a pointer to an empty list allows any address.
	AllowedIPs *[]string
}

// View is a key as its owner (or an operator) sees it. It never holds the
// secret, sealed or not.
type View struct {
	ID          string
	AccountID   string
	Name        string
	PublicKey   string
	Permissions Permissions
	// AllowedIPs as FormatAllowedIPs writes them; empty means any address.
	AllowedIPs  []string
	ExpiresAt   time.Time
	NonceWindow uint64
	HasPassword bool
	QueryStart  time.Time
	QueryEnd    time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
	LastUsedAt  time.Time
	LastUsedIP  string
	RotatedAt   time.Time
	// OldSecretValidUntil is when the previous secret stops working, while
	// it still does; zero otherwise.
	OldSecretValidUntil time.Time
	DeletedAt           time.Time
	// Expired: ExpiresAt has passed.
	Expired bool
	// Unused: not used for the configured time (counted from creation if
	// never used); the UI flags such keys as candidates for deletion.
	Unused bool
}

// Create makes a key for the signed-in owner of accountID, after the
// step-up gate allowed it. It returns the key and its secret in the form
// the owner copies (EncodeSecret): the only time the secret is available.
func (s *Service) Create(ctx context.Context, accountID string, actor Actor, in CreateInput) (View, string, error) {
	if err := s.checkStepUp(ctx, accountID, actor); err != nil {
		return View{}, "", err
	}
	return s.create(ctx, accountID, actor, "", in)
}

// OperatorCreate makes a key for accountID from the command line (no
// step-up; the audit event names OperatorActor). The owner is e-mailed as
// for any other change.
func (s *Service) OperatorCreate(ctx context.Context, accountID string, in CreateInput) (View, string, error) {
	return s.create(ctx, accountID, Actor{}, OperatorActor, in)
}

// List returns the account's keys that are not deleted, newest first (for
// the owner and for operators alike).
func (s *Service) List(ctx context.Context, accountID string) ([]View, error) {
	recs, err := s.store.ListAPIKeys(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("apikey: list keys: %w", err)
	}
	now := s.now()
	out := make([]View, 0, len(recs))
	for _, r := range recs {
		k, err := keyFromRecord(r)
		if err != nil {
			return nil, err
		}
		out = append(out, s.view(k, now))
	}
	return out, nil
}

// Get returns one of the account's keys; NotFound if it is deleted or
// belongs to another account.
func (s *Service) Get(ctx context.Context, accountID, keyID string) (View, error) {
	r, err := s.store.GetAPIKey(ctx, keyID)
	if err != nil || r.AccountID != accountID || !r.DeletedAt.IsZero() {
		return View{}, notFound(err)
	}
	k, err := keyFromRecord(r)
	if err != nil {
		return View{}, err
	}
	return s.view(k, s.now()), nil
}

// Update changes a key's name, permissions or allowlist. A call that
// changes nothing writes nothing.
func (s *Service) Update(ctx context.Context, accountID, keyID string, actor Actor, in UpdateInput) (View, error) {
	if err := s.checkStepUp(ctx, accountID, actor); err != nil {
		return View{}, err
	}
	// Parse before the transaction, so bad input costs no write lock.
	var perms *Permissions
	var allow *[]netip.Prefix
	if in.Permissions != nil {
		p, err := parsePermissions(*in.Permissions)
		if err != nil {
			return View{}, err
		}
		perms = &p
	}
	if in.AllowedIPs != nil {
		ps, err := ParseAllowedIPs(*in.AllowedIPs...)
		if err != nil {
			return View{}, err
		}
		allow = &ps
	}
	var out View
	err := s.change(ctx, keyID, func(tx store.Queries, a store.Account, k *Key, now time.Time) (*change, error) {
		if k.AccountID != accountID {
			return nil, notFound(store.ErrNotFound)
		}
		old := *k
		if in.Name != nil {
			k.Name = strings.TrimSpace(*in.Name)
		}
		if perms != nil {
			k.Permissions = *perms
		}
		if allow != nil {
			k.AllowedIPs = *allow
		}
		if err := k.Validate(); err != nil {
			return nil, err
		}
		c := describeUpdate(old, *k)
		if c == nil {
			out = s.view(old, now)
			return nil, nil
		}
		k.UpdatedAt = now
		return c, nil
	}, actor, "", &out)
	return out, err
}

// Rotate replaces a key's secret and returns the new one (shown once). The
// previous secret keeps working for grace (0: it stops at once; at most
// MaxRotateGrace), so a bot can be redeployed without downtime.
func (s *Service) Rotate(ctx context.Context, accountID, keyID string, actor Actor, grace time.Duration) (View, string, error) {
	if err := s.checkStepUp(ctx, accountID, actor); err != nil {
		return View{}, "", err
	}
	return s.rotate(ctx, keyID, func(k *Key) bool { return k.AccountID == accountID }, actor, "", grace)
}

// Delete deletes a key: it stops working at once on this node and within
// the cache TTL on every other.
func (s *Service) Delete(ctx context.Context, accountID, keyID string, actor Actor) error {
	if err := s.checkStepUp(ctx, accountID, actor); err != nil {
		return err
	}
	return s.change(ctx, keyID, func(tx store.Queries, a store.Account, k *Key, now time.Time) (*change, error) {
		if k.AccountID != accountID {
			return nil, notFound(store.ErrNotFound)
		}
		return s.deleteKey(k, now), nil
	}, actor, "", nil)
}

// OperatorRevoke deletes the key whose ID or public key is ref, from the
// command line, and returns it as it was.
func (s *Service) OperatorRevoke(ctx context.Context, ref string) (View, error) {
	r, err := s.find(ctx, ref)
	if err != nil {
		return View{}, err
	}
	var out View
	err = s.change(ctx, r.ID, func(tx store.Queries, a store.Account, k *Key, now time.Time) (*change, error) {
		out = s.view(*k, now)
		return s.deleteKey(k, now), nil
	}, Actor{}, OperatorActor, nil)
	return out, err
}

// OperatorRotate rotates the key whose ID or public key is ref, from the
// command line.
func (s *Service) OperatorRotate(ctx context.Context, ref string, grace time.Duration) (View, string, error) {
	r, err := s.find(ctx, ref)
	if err != nil {
		return View{}, "", err
	}
	return s.rotate(ctx, r.ID, func(*Key) bool { return true }, Actor{}, OperatorActor, grace)
}

// InvalidateAccount makes this node forget its cached keys of the account,
// so that a change made elsewhere (the account was locked) applies to the
// next signed call instead of within the cache TTL.
func (s *Service) InvalidateAccount(accountID string) { s.cache.forgetAccount(accountID) }

// LookupKey implements gateway.KeyLookup: the key with its secrets opened
// and the owning account's lock state, from this node's cache when it is
// fresh, else with one indexed lookup of the key and one of its account.
// Deleted and unknown keys are ErrKeyNotFound.
func (s *Service) LookupKey(ctx context.Context, publicKey string) (Credential, error) {
	return s.cache.get(ctx, publicKey, s.clock.Now(), s.fetch)
}

// OnUse records that a key was used (the gateway's Config.OnUse, which
// throttles the calls). It outlives the request: the answer has been sent.
func (s *Service) OnUse(ctx context.Context, keyID string, at time.Time, ip string) {
	err := s.store.TouchAPIKey(context.WithoutCancel(ctx), keyID, at.UTC().Truncate(time.Microsecond), ip)
	if err != nil {
		s.log.WarnContext(ctx, "apikey: record key use", "key", keyID, "err", err)
	}
}

// fetch reads a key for the cache. A deleted key comes back with gone set
// (cached like a live one, so a forgotten bot hammering it does not reach
// the database on every call); an unknown key is ErrKeyNotFound.
func (s *Service) fetch(ctx context.Context, publicKey string, now time.Time) (entry, error) {
	r, err := s.store.GetAPIKeyByPublicKey(ctx, publicKey)
	if errors.Is(err, store.ErrNotFound) {
		return entry{}, ErrKeyNotFound
	}
	if err != nil {
		return entry{}, fmt.Errorf("apikey: look up key: %w", err)
	}
	if !r.DeletedAt.IsZero() {
		return entry{accountID: r.AccountID, gone: true}, nil
	}
	k, err := keyFromRecord(r)
	if err != nil {
		return entry{}, err
	}
	a, err := s.store.GetAccount(ctx, r.AccountID)
	if err != nil {
		return entry{}, fmt.Errorf("apikey: look up the account of key %s: %w", r.ID, err)
	}
	c, err := OpenCredential(s.box, k, !a.LockedAt.IsZero(), now)
	if err != nil {
		return entry{}, fmt.Errorf("apikey: open the secret of key %s: %w", r.ID, err)
	}
	return entry{accountID: r.AccountID, cred: c}, nil
}

// create is Create and OperatorCreate.
func (s *Service) create(ctx context.Context, accountID string, actor Actor, actorID string, in CreateInput) (View, string, error) {
	now := s.now()
	k, err := buildKey(in, now)
	if err != nil {
		return View{}, "", err
	}
	k.AccountID = accountID
	if k.ID, err = secrets.NewID(s.rand); err != nil {
		return View{}, "", err
	}
	if k.PublicKey, err = NewPublicKey(s.rand); err != nil {
		return View{}, "", err
	}
	secret, err := NewSecret(s.rand)
	if err != nil {
		return View{}, "", err
	}
	if k.SecretSealed, err = SealSecret(s.box, k.ID, secret); err != nil {
		return View{}, "", fmt.Errorf("apikey: seal secret: %w", err)
	}
	if in.Password != "" {
		k.PasswordHash = HashPassword(s.pepper, k.ID, in.Password)
	}
	err = s.store.InTx(ctx, func(tx store.Queries) error {
		a, err := tx.GetAccount(ctx, accountID)
		if errors.Is(err, store.ErrNotFound) {
			return apperr.New(apperr.NotFound, "No such account.")
		}
		if err != nil {
			return err
		}
		if !a.LockedAt.IsZero() {
			return apperr.New(apperr.AccountLocked, "The account is locked: it cannot get new API keys.")
		}
		if err := tx.CreateAPIKey(ctx, recordFromKey(k)); err != nil {
			return fmt.Errorf("apikey: create key: %w", err)
		}
		data := keyData(k)
		mail := map[string]string{
			"Name":        k.Name,
			"Permissions": permissionNames(k.Permissions),
			"AllowedIPs":  allowlistText(k),
			"Expires":     "never",
		}
		if !k.ExpiresAt.IsZero() {
			mail["Expires"] = notify.Time(k.ExpiresAt)
		}
		if k.Permissions.Has(WithdrawFunds) {
			mail["Warning"] = "Warning: this key can withdraw funds from your account."
		}
		return s.record(ctx, tx, a, actor, actorID, EventCreated, data, notify.TemplateAPIKeyCreated, mail, now)
	})
	if err != nil {
		return View{}, "", s.fail("create", err)
	}
	return s.view(k, now), EncodeSecret(secret), nil
}

// rotate is Rotate and OperatorRotate; mine says whether the caller may
// touch the key.
func (s *Service) rotate(ctx context.Context, keyID string, mine func(k *Key) bool, actor Actor, actorID string, grace time.Duration) (View, string, error) {
	if grace < 0 || grace > MaxRotateGrace {
		return View{}, "", apperr.Field(apperr.Invalid, "grace", "Choose how long the old secret keeps working: from none up to 7 days.")
	}
	secret, err := NewSecret(s.rand)
	if err != nil {
		return View{}, "", err
	}
	var out View
	err = s.change(ctx, keyID, func(tx store.Queries, a store.Account, k *Key, now time.Time) (*change, error) {
		if !mine(k) {
			return nil, notFound(store.ErrNotFound)
		}
		sealed, err := SealSecret(s.box, k.ID, secret)
		if err != nil {
			return nil, fmt.Errorf("apikey: seal secret: %w", err)
		}
		k.OldSecretSealed, k.OldSecretValidUntil = nil, time.Time{}
		text := "The secret was replaced. The old secret stopped working at once."
		if grace > 0 {
			k.OldSecretSealed, k.OldSecretValidUntil = k.SecretSealed, now.Add(grace)
			text = "The secret was replaced. The old secret keeps working until " + notify.Time(k.OldSecretValidUntil) + "."
		}
		k.SecretSealed = sealed
		k.RotatedAt, k.UpdatedAt = now, now
		out = s.view(*k, now)
		data := map[string]any{"key_id": k.ID, "name": k.Name, "permissions": k.Permissions.Slugs(),
			"grace_seconds": int64(grace / time.Second)}
		if grace > 0 {
			data["old_secret_valid_until"] = k.OldSecretValidUntil.Format(time.RFC3339)
		}
		return &change{event: EventRotated, data: data, template: notify.TemplateAPIKeyChanged,
			mail: map[string]string{"Change": text}}, nil
	}, actor, actorID, nil)
	if err != nil {
		return View{}, "", err
	}
	return out, EncodeSecret(secret), nil
}

// change is what a modification of a key records.
type change struct {
	event    string
	data     map[string]any
	template string
	mail     map[string]string // the template's values besides the common ones
}

// change applies fn to the key keyID in one transaction and writes the
// change fn describes with its audit event and e-mail; fn returning a nil
// change writes nothing. It then drops the key from this node's cache. If
// out is set it receives the key as stored.
func (s *Service) change(ctx context.Context, keyID string, fn func(tx store.Queries, a store.Account, k *Key, now time.Time) (*change, error),
	actor Actor, actorID string, out *View) error {
	now := s.now()
	var pub string
	err := s.store.InTx(ctx, func(tx store.Queries) error {
		r, err := tx.GetAPIKey(ctx, keyID)
		if err != nil || !r.DeletedAt.IsZero() {
			return notFound(err)
		}
		a, err := tx.GetAccount(ctx, r.AccountID)
		if err != nil {
			return err
		}
		var c *change
		rec, err := tx.UpdateAPIKey(ctx, keyID, func(r *store.APIKey) error {
			if !r.DeletedAt.IsZero() {
				return notFound(store.ErrNotFound)
			}
			k, err := keyFromRecord(*r)
			if err != nil {
				return err
			}
			if c, err = fn(tx, a, &k, now); err != nil {
				return err
			}
			if c == nil {
				return errNoChange
			}
			*r = recordFromKey(k)
			return nil
		})
		if errors.Is(err, errNoChange) {
			return nil
		}
		if err != nil {
			return err
		}
		pub = rec.PublicKey
		if out != nil {
			k, err := keyFromRecord(rec)
			if err != nil {
				return err
			}
			*out = s.view(k, now)
		}
		c.mail["Name"] = rec.Name
		return s.record(ctx, tx, a, actor, actorID, c.event, c.data, c.template, c.mail, now)
	})
	if pub != "" {
		s.cache.forget(pub)
	}
	if err != nil {
		return s.fail("change", err)
	}
	return nil
}

// errNoChange tells change that fn found nothing to write.
var errNoChange = errors.New("apikey: no change")

// deleteKey marks k deleted and describes it.
func (s *Service) deleteKey(k *Key, now time.Time) *change {
	k.DeletedAt, k.UpdatedAt = now, now
	k.OldSecretSealed, k.OldSecretValidUntil = nil, time.Time{}
	return &change{event: EventDeleted, template: notify.TemplateAPIKeyDeleted, mail: map[string]string{},
		data: map[string]any{"key_id": k.ID, "name": k.Name, "permissions": k.Permissions.Slugs()}}
}

// record writes the audit event and the owner's e-mail of a change through
// tx, the audit event last (it serialises appends until commit).
func (s *Service) record(ctx context.Context, tx store.Queries, a store.Account, actor Actor, actorID, event string,
	data map[string]any, template string, mail map[string]string, now time.Time) error {
	tok, err := secrets.NewToken(s.rand)
	if err != nil {
		return err
	}
	err = tx.CreateToken(ctx, store.Token{Hash: secrets.HashToken(tok), Kind: store.TokenSecureAccount,
		AccountID: a.ID, CreatedAt: now, ExpiresAt: now.Add(secureLinkTTL)})
	if err != nil {
		return fmt.Errorf("apikey: create secure-account token: %w", err)
	}
	mail["From"] = "IP address " + notify.OrUnknown(actor.IP)
	if actorID == OperatorActor {
		mail["From"] = "an administrator, from the command line"
	}
	mail["Time"] = notify.Time(now)
	mail["KeysLink"] = s.mailer.Link(PathKeys, "")
	mail["SecureLink"] = s.mailer.Link(pathSecureAccount, tok)
	err = s.mailer.Enqueue(ctx, tx, notify.Email{Template: template, To: a.Email, AntiPhishingCode: a.AntiPhishingCode, Data: mail})
	if err != nil {
		return fmt.Errorf("apikey: %s e-mail: %w", template, err)
	}
	_, err = s.audit.Append(ctx, tx, audit.Event{Type: event, AccountID: a.ID, ActorID: actorID,
		IP: actor.IP, UserAgent: actor.UserAgent, DeviceID: actor.DeviceID, Data: data})
	if err != nil {
		return fmt.Errorf("apikey: audit %s: %w", event, err)
	}
	return nil
}

// checkStepUp asks the gate; without one every user change is refused.
func (s *Service) checkStepUp(ctx context.Context, accountID string, actor Actor) error {
	if s.stepUp == nil {
		return errors.New("apikey: no step-up gate configured; refusing a user change")
	}
	return s.stepUp.Check(ctx, accountID, actor.SessionID)
}

// find resolves an operator's reference: a key ID or a public key.
func (s *Service) find(ctx context.Context, ref string) (store.APIKey, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return store.APIKey{}, apperr.Field(apperr.Invalid, "key", "Name the key by its ID or its public key.")
	}
	r, err := s.store.GetAPIKey(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		r, err = s.store.GetAPIKeyByPublicKey(ctx, ref)
	}
	if err != nil || !r.DeletedAt.IsZero() {
		return store.APIKey{}, notFound(err)
	}
	return r, nil
}

// fail passes *apperr.Error values through and wraps anything else.
func (s *Service) fail(what string, err error) error {
	if _, ok := apperr.As(err); ok {
		return err
	}
	return fmt.Errorf("apikey: %s: %w", what, err)
}

func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

// view is k as shown to people.
func (s *Service) view(k Key, now time.Time) View {
	v := View{
		ID: k.ID, AccountID: k.AccountID, Name: k.Name, PublicKey: k.PublicKey, Permissions: k.Permissions,
		AllowedIPs: FormatAllowedIPs(k.AllowedIPs), ExpiresAt: k.ExpiresAt, NonceWindow: k.NonceWindow,
		HasPassword: len(k.PasswordHash) > 0, QueryStart: k.QueryStart, QueryEnd: k.QueryEnd,
		CreatedAt: k.CreatedAt, UpdatedAt: k.UpdatedAt, LastUsedAt: k.LastUsedAt, LastUsedIP: k.LastUsedIP,
		RotatedAt: k.RotatedAt, DeletedAt: k.DeletedAt,
		Expired: !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt),
		Unused:  s.unusedAfter > 0 && k.Unused(now, s.unusedAfter),
	}
	if len(k.OldSecretSealed) > 0 && now.Before(k.OldSecretValidUntil) {
		v.OldSecretValidUntil = k.OldSecretValidUntil
	}
	return v
}

// buildKey validates what a person chose for a new key, at now, and
// returns the key without its ID, account and key material.
func buildKey(in CreateInput, now time.Time) (Key, error) {
	perms, err := parsePermissions(in.Permissions)
	if err != nil {
		return Key{}, err
	}
	allow, err := ParseAllowedIPs(in.AllowedIPs...)
	if err != nil {
		return Key{}, err
	}
	k := Key{
		Name:        strings.TrimSpace(in.Name),
		Permissions: perms,
		AllowedIPs:  allow,
		ExpiresAt:   micro(in.ExpiresAt),
		NonceWindow: in.NonceWindow,
		QueryStart:  micro(in.QueryStart),
		QueryEnd:    micro(in.QueryEnd),
		CreatedAt:   now,
		UpdatedAt:   now,
	}
	if err := k.Validate(); err != nil {
		return Key{}, err
	}
	if in.Password != "" {
		if err := ValidatePassword(in.Password); err != nil {
			return Key{}, err
		}
	}
	return k, nil
}

// micro is t in UTC at the stores' precision (zero stays zero).
func micro(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

// parsePermissions parses a form's or a request's permission list; an
// empty list is an error, never a default.
func parsePermissions(items []string) (Permissions, error) {
	p, err := ParsePermissionList(items)
	if err != nil {
		return 0, apperr.Field(apperr.Invalid, "permissions", "Unknown permission. Choose from: "+allSlugs()+".")
	}
	if p == 0 {
		return 0, apperr.Field(apperr.Invalid, "permissions", "Choose at least one permission.")
	}
	return p, nil
}

// describeUpdate is the record of an update from old to k, or nil when
// nothing changed.
func describeUpdate(old, k Key) *change {
	data := map[string]any{"key_id": k.ID, "name": k.Name, "permissions": k.Permissions.Slugs(),
		"allowed_ips": FormatAllowedIPs(k.AllowedIPs)}
	var changed, text []string
	if k.Name != old.Name {
		changed = append(changed, "name")
		data["old_name"] = old.Name
		text = append(text, fmt.Sprintf("renamed from %q", old.Name))
	}
	if k.Permissions != old.Permissions {
		changed = append(changed, "permissions")
		data["old_permissions"] = old.Permissions.Slugs()
		text = append(text, "permissions are now "+permissionNames(k.Permissions))
	}
	if strings.Join(FormatAllowedIPs(k.AllowedIPs), ",") != strings.Join(FormatAllowedIPs(old.AllowedIPs), ",") {
		changed = append(changed, "allowed_ips")
		data["old_allowed_ips"] = FormatAllowedIPs(old.AllowedIPs)
		text = append(text, "allowed IPs are now "+allowlistText(k))
	}
	if len(changed) == 0 {
		return nil
	}
	data["changed"] = changed
	t := strings.Join(text, "; ")
	return &change{event: EventUpdated, data: data, template: notify.TemplateAPIKeyChanged,
		mail: map[string]string{"Change": strings.ToUpper(t[:1]) + t[1:] + "."}}
}

// keyData is the audit description of a new key: everything but secrets.
func keyData(k Key) map[string]any {
	d := map[string]any{
		"key_id":       k.ID,
		"name":         k.Name,
		"permissions":  k.Permissions.Slugs(),
		"allowed_ips":  FormatAllowedIPs(k.AllowedIPs),
		"nonce_window": k.NonceWindow,
		"has_password": len(k.PasswordHash) > 0,
	}
	for name, t := range map[string]time.Time{"expires_at": k.ExpiresAt, "query_start": k.QueryStart, "query_end": k.QueryEnd} {
		if !t.IsZero() {
			d[name] = t.Format(time.RFC3339)
		}
	}
	return d
}

// permissionNames lists permissions as Kraken names them, for people.
func permissionNames(p Permissions) string {
	var names []string
	for _, x := range p.List() {
		names = append(names, x.Name())
	}
	return strings.Join(names, ", ")
}

// allowlistText describes the allowlist in an e-mail (which shows at most
// a couple of hundred characters of a value).
func allowlistText(k Key) string {
	ips := FormatAllowedIPs(k.AllowedIPs)
	switch {
	case len(ips) == 0:
		return "any address"
	case len(ips) > 5:
		return strings.Join(ips[:5], ", ") + fmt.Sprintf(" and %d more", len(ips)-5)
	}
	return strings.Join(ips, ", ")
}

// notFound maps a missing key (or one the caller may not see) to the
// NotFound the user is shown; other errors pass through.
func notFound(err error) error {
	if err == nil || errors.Is(err, store.ErrNotFound) {
		return apperr.New(apperr.NotFound, "No such API key.")
	}
	return err
}

// keyFromRecord is the domain form of a stored key.
func keyFromRecord(r store.APIKey) (Key, error) {
	perms, err := ParsePermissions(r.Permissions)
	if err != nil {
		return Key{}, fmt.Errorf("apikey: key %s: stored permissions: %w", r.ID, err)
	}
	ips, err := ParseAllowedIPs(r.AllowedIPs)
	if err != nil {
		return Key{}, fmt.Errorf("apikey: key %s: stored allowlist: %w", r.ID, err)
	}
	if r.NonceWindow < 0 {
		return Key{}, fmt.Errorf("apikey: key %s: negative nonce window", r.ID)
	}
	return Key{
		ID: r.ID, AccountID: r.AccountID, Name: r.Name, PublicKey: r.PublicKey, SecretSealed: r.SecretSealed,
		Permissions: perms, AllowedIPs: ips, ExpiresAt: r.ExpiresAt, NonceWindow: uint64(r.NonceWindow),
		PasswordHash: r.PasswordHash, QueryStart: r.QueryStart, QueryEnd: r.QueryEnd,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, LastUsedAt: r.LastUsedAt, LastUsedIP: r.LastUsedIP,
		RotatedAt: r.RotatedAt, OldSecretSealed: r.OldSecretSealed, OldSecretValidUntil: r.OldSecretValidUntil,
		DeletedAt: r.DeletedAt,
	}, nil
}

// recordFromKey is the stored form of k (Validate bounds NonceWindow to
// a signed 64-bit value).
func recordFromKey(k Key) store.APIKey {
	return store.APIKey{
		ID: k.ID, AccountID: k.AccountID, Name: k.Name, PublicKey: k.PublicKey, SecretSealed: k.SecretSealed,
		Permissions: k.Permissions.String(), AllowedIPs: strings.Join(FormatAllowedIPs(k.AllowedIPs), ","),
		ExpiresAt: k.ExpiresAt, NonceWindow: int64(min(k.NonceWindow, math.MaxInt64)),
		PasswordHash: k.PasswordHash, QueryStart: k.QueryStart, QueryEnd: k.QueryEnd,
		CreatedAt: k.CreatedAt, UpdatedAt: k.UpdatedAt, LastUsedAt: k.LastUsedAt, LastUsedIP: k.LastUsedIP,
		RotatedAt: k.RotatedAt, OldSecretSealed: k.OldSecretSealed, OldSecretValidUntil: k.OldSecretValidUntil,
		DeletedAt: k.DeletedAt,
	}
}
