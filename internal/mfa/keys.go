package mfa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/mfa/webauthn"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

// Challenge is what a method needs the client to do before it can answer.
type Challenge struct {
	Method string `json:"method"`
	// Ceremony identifies a WebAuthn ceremony; the client sends it back with
	// the credential.
	Ceremony string `json:"ceremony,omitempty"`
	// Options go to navigator.credentials.create or .get (WebAuthn JSON:
	// {"publicKey": {...}}, binary values base64url).
	Options json.RawMessage `json:"options,omitempty"`
	// SentTo is the masked number an SMS code went to.
	SentTo string `json:"sent_to,omitempty"`
	// ExpiresAt is when the ceremony or code expires.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// ceremonyData is what a stored ceremony holds besides the RP state.
type ceremonyData struct {
	State   []byte `json:"state"`
	Name    string `json:"name,omitempty"`
	Passkey bool   `json:"passkey,omitempty"`
}

// MaxKeyName is the longest security key name, in characters.
const MaxKeyName = 64

// cleanKeyName trims a key name and refuses control characters and
// over-long names; an empty name gets a default.
func cleanKeyName(name string, passkey bool) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		if passkey {
			return "Passkey", nil
		}
		return "Security key", nil
	}
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxKeyName {
		return "", apperr.Field(apperr.Invalid, "name", fmt.Sprintf("Use a name of at most %d characters.", MaxKeyName))
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return "", apperr.Field(apperr.Invalid, "name", "Use letters, digits and punctuation in the name.")
		}
	}
	return name, nil
}

func (s *Service) waUser(ctx context.Context, q store.Queries, accountID, email string) (webauthn.User, []store.WebAuthnCredential, error) {
	recs, err := q.ListWebAuthnCredentials(ctx, accountID)
	if err != nil {
		return webauthn.User{}, nil, apperr.Wrap(err)
	}
	u := webauthn.User{ID: []byte(accountID), Name: email}
	for _, r := range recs {
		u.Credentials = append(u.Credentials, toWA(r))
	}
	return u, recs, nil
}

func toWA(r store.WebAuthnCredential) webauthn.Credential {
	var ts []string
	if r.Transports != "" {
		ts = strings.Split(r.Transports, ",")
	}
	return webauthn.Credential{
		ID: r.CredentialID, PublicKey: r.PublicKey, AttestationType: r.AttestationType,
		AttestationFormat: r.AttestationFormat, AAGUID: r.AAGUID, Transports: ts, SignCount: uint32(r.SignCount),
		UserPresent: true, UserVerified: r.UserVerified, BackupEligible: r.BackupEligible, BackupState: r.BackupState,
		Attachment: r.Attachment, Discoverable: r.Discoverable,
	}
}

func (s *Service) saveCeremony(ctx context.Context, accountID, kind string, d ceremonyData) (string, time.Time, error) {
	id, err := secrets.NewID(s.rand)
	if err != nil {
		return "", time.Time{}, apperr.Wrap(err)
	}
	data, err := json.Marshal(d)
	if err != nil {
		return "", time.Time{}, apperr.Wrap(err)
	}
	now := s.clock.Now()
	exp := now.Add(s.cfg.CeremonyTTL)
	if err := s.store.CreateWebAuthnCeremony(ctx, store.WebAuthnCeremony{
		ID: id, AccountID: accountID, Kind: kind, Data: data, CreatedAt: now, ExpiresAt: exp,
	}); err != nil {
		return "", time.Time{}, apperr.Wrap(err)
	}
	return id, exp, nil
}

// takeCeremony consumes a ceremony of kind for accountID ("" for a
// passkey sign-in). Unknown, used, expired and someone else's ceremonies all
// answer the same.
func (s *Service) takeCeremony(ctx context.Context, id, accountID, kind string) (ceremonyData, error) {
	if id == "" || len(id) > 64 {
		return ceremonyData{}, errCeremonyGone
	}
	c, err := s.store.TakeWebAuthnCeremony(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return ceremonyData{}, errCeremonyGone
	}
	if err != nil {
		return ceremonyData{}, apperr.Wrap(err)
	}
	if c.Kind != kind || c.AccountID != accountID || !s.clock.Now().Before(c.ExpiresAt) {
		return ceremonyData{}, errCeremonyGone
	}
	var d ceremonyData
	if err := json.Unmarshal(c.Data, &d); err != nil {
		return ceremonyData{}, apperr.Wrap(err)
	}
	return d, nil
}

// BeginSecurityKey starts registering a security key (passkey false) or a
// passkey for passwordless sign-in (passkey true) under name. Needs step-up
// when the account has a factor; refuses past MaxSecurityKeys.
func (s *Service) BeginSecurityKey(ctx context.Context, p account.Principal, name string, passkey bool) (Challenge, error) {
	name, err := cleanKeyName(name, passkey)
	if err != nil {
		return Challenge{}, err
	}
	if err := s.requireStepUp(ctx, s.store, p); err != nil {
		return Challenge{}, err
	}
	u, recs, err := s.waUser(ctx, s.store, p.Account.ID, p.Account.Email)
	if err != nil {
		return Challenge{}, err
	}
	if len(recs) >= s.cfg.MaxSecurityKeys {
		return Challenge{}, s.errKeyLimit()
	}
	opts, state, err := s.rp.BeginRegistration(u, passkey)
	if err != nil {
		return Challenge{}, apperr.Wrap(err)
	}
	id, exp, err := s.saveCeremony(ctx, p.Account.ID, store.CeremonyRegister, ceremonyData{State: state, Name: name, Passkey: passkey})
	if err != nil {
		return Challenge{}, err
	}
	return Challenge{Method: MethodWebAuthn, Ceremony: id, Options: opts, ExpiresAt: exp}, nil
}

func (s *Service) errKeyLimit() error {
	return apperr.New(apperr.Conflict, fmt.Sprintf(
		"You have %d security keys and passkeys, the most an account can have. Remove one to add another.", s.cfg.MaxSecurityKeys))
}

// FinishSecurityKey completes a registration with the browser's answer
// (the PublicKeyCredential JSON). It returns the new key and, when it is the
// account's first factor, a set of backup codes to show once.
func (s *Service) FinishSecurityKey(ctx context.Context, p account.Principal, ceremony string, response []byte, c account.Client) (KeyView, []string, error) {
	d, err := s.takeCeremony(ctx, ceremony, p.Account.ID, store.CeremonyRegister)
	if err != nil {
		return KeyView{}, nil, err
	}
	u, _, err := s.waUser(ctx, s.store, p.Account.ID, p.Account.Email)
	if err != nil {
		return KeyView{}, nil, err
	}
	cred, err := s.rp.FinishRegistration(u, d.State, response)
	if err != nil {
		return KeyView{}, nil, keyError(err)
	}
	id, err := secrets.NewID(s.rand)
	if err != nil {
		return KeyView{}, nil, apperr.Wrap(err)
	}
	now := s.clock.Now()
	rec := store.WebAuthnCredential{
		ID: id, AccountID: p.Account.ID, CredentialID: cred.ID, Name: d.Name, PublicKey: cred.PublicKey,
		AttestationType: cred.AttestationType, AttestationFormat: cred.AttestationFormat, AAGUID: cred.AAGUID,
		Transports: strings.Join(cred.Transports, ","), SignCount: int64(cred.SignCount),
		UserVerified: cred.UserVerified, BackupEligible: cred.BackupEligible, BackupState: cred.BackupState,
		Attachment: cred.Attachment, Discoverable: cred.Discoverable, CreatedAt: now,
	}
	var codes []string
	err = s.store.InTx(ctx, func(q store.Queries) error {
		if err := s.lock(ctx, q, p.Account.ID); err != nil {
			return err
		}
		if err := s.requireStepUp(ctx, q, p); err != nil {
			return err
		}
		before, err := s.factors(ctx, q, p.Account.ID)
		if err != nil {
			return err
		}
		if len(before.keys) >= s.cfg.MaxSecurityKeys {
			return s.errKeyLimit()
		}
		if err := q.CreateWebAuthnCredential(ctx, rec); errors.Is(err, store.ErrAlreadyExists) {
			return apperr.New(apperr.Conflict, "That security key is already registered.")
		} else if err != nil {
			return apperr.Wrap(err)
		}
		if codes, err = s.firstFactorCodes(ctx, q, p.Account.ID, before.count() == 0); err != nil {
			return err
		}
		kind := "security key"
		if rec.Discoverable {
			kind = "passkey"
		}
		return s.record(ctx, q, Event{Type: EventKeyAdded, AccountID: p.Account.ID, Client: c, Notify: true,
			Data: map[string]any{"method": MethodWebAuthn, "key_id": rec.ID, "name": rec.Name, "passkey": rec.Discoverable,
				"backup_codes_generated": codes != nil},
			Summary: fmt.Sprintf("A %s named \u201c%s\u201d was added to your account.", kind, rec.Name)})
	})
	if err != nil {
		return KeyView{}, nil, apperr.Wrap(err)
	}
	return keyView(rec), codes, nil
}

// RenameSecurityKey changes a key's name.
func (s *Service) RenameSecurityKey(ctx context.Context, p account.Principal, id, name string, c account.Client) error {
	name, err := cleanKeyName(name, false)
	if err != nil {
		return err
	}
	return apperr.Wrap(s.store.InTx(ctx, func(q store.Queries) error {
		var old string
		_, err := q.UpdateWebAuthnCredential(ctx, id, func(k *store.WebAuthnCredential) error {
			if k.AccountID != p.Account.ID {
				return store.ErrNotFound
			}
			old, k.Name = k.Name, name
			return nil
		})
		if errors.Is(err, store.ErrNotFound) {
			return errNotEnrolled
		}
		if err != nil {
			return apperr.Wrap(err)
		}
		return s.record(ctx, q, Event{Type: EventKeyRenamed, AccountID: p.Account.ID, Client: c,
			Data: map[string]any{"key_id": id, "name": name, "old_name": old}})
	}))
}

// RemoveSecurityKey removes one of the account's keys. Needs step-up.
func (s *Service) RemoveSecurityKey(ctx context.Context, p account.Principal, id string, c account.Client) error {
	return apperr.Wrap(s.store.InTx(ctx, func(q store.Queries) error {
		if err := s.lock(ctx, q, p.Account.ID); err != nil {
			return err
		}
		if err := s.requireStepUp(ctx, q, p); err != nil {
			return err
		}
		recs, err := q.ListWebAuthnCredentials(ctx, p.Account.ID)
		if err != nil {
			return apperr.Wrap(err)
		}
		var k *store.WebAuthnCredential
		for i := range recs {
			if recs[i].ID == id {
				k = &recs[i]
			}
		}
		if k == nil {
			return errNotEnrolled
		}
		if err := s.checkRemovalPolicy(ctx, q, p, MethodWebAuthn); err != nil {
			return err
		}
		if err := q.DeleteWebAuthnCredential(ctx, p.Account.ID, id); errors.Is(err, store.ErrNotFound) {
			return errNotEnrolled
		} else if err != nil {
			return apperr.Wrap(err)
		}
		return s.removed(ctx, q, p, c, Event{Type: EventKeyRemoved,
			Data:    map[string]any{"method": MethodWebAuthn, "key_id": id, "name": k.Name},
			Summary: fmt.Sprintf("The security key \u201c%s\u201d was removed from your account.", k.Name)})
	}))
}

// beginKeyLogin starts a WebAuthn assertion for the account's keys (second
// factor at sign-in, or step-up).
func (s *Service) beginKeyLogin(ctx context.Context, accountID string) (Challenge, error) {
	u, recs, err := s.waUser(ctx, s.store, accountID, "")
	if err != nil {
		return Challenge{}, err
	}
	if len(recs) == 0 {
		return Challenge{}, errNotEnrolled
	}
	opts, state, err := s.rp.BeginLogin(u)
	if err != nil {
		return Challenge{}, apperr.Wrap(err)
	}
	id, exp, err := s.saveCeremony(ctx, accountID, store.CeremonyLogin, ceremonyData{State: state})
	if err != nil {
		return Challenge{}, err
	}
	return Challenge{Method: MethodWebAuthn, Ceremony: id, Options: opts, ExpiresAt: exp}, nil
}

// KeyResponse is the WebAuthn answer as account.Factor.Verify and StepUp take
// it: the ceremony from the Challenge and the browser's PublicKeyCredential
// JSON. The bundled script posts exactly this.
type KeyResponse struct {
	Ceremony   string          `json:"ceremony"`
	Credential json.RawMessage `json:"credential"`
}

// ParseKeyResponse reads a KeyResponse from client JSON.
func ParseKeyResponse(s string) (KeyResponse, error) {
	var r KeyResponse
	if len(s) > 64<<10 {
		return KeyResponse{}, errKeyFailed
	}
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(&r); err != nil || dec.More() || r.Ceremony == "" || len(r.Credential) == 0 {
		return KeyResponse{}, apperr.New(apperr.Invalid, "Your browser's security key answer was incomplete. Try again.")
	}
	return r, nil
}

// verifyWebAuthn checks an assertion for sign-in or step-up.
func (s *Service) verifyWebAuthn(ctx context.Context, accountID, response string) error {
	r, err := ParseKeyResponse(response)
	if err != nil {
		return err
	}
	d, err := s.takeCeremony(ctx, r.Ceremony, accountID, store.CeremonyLogin)
	if err != nil {
		return err
	}
	u, recs, err := s.waUser(ctx, s.store, accountID, "")
	if err != nil {
		return err
	}
	used, err := s.rp.FinishLogin(u, d.State, r.Credential)
	return s.afterAssertion(ctx, accountID, recs, used, err)
}

// afterAssertion stores the new counter and flags of the credential used,
// refusing (and reporting) a counter that did not increase. The counter
// check is repeated inside the atomic update, against the current value.
func (s *Service) afterAssertion(ctx context.Context, accountID string, recs []store.WebAuthnCredential, used webauthn.Credential, verr error) error {
	if verr != nil && !errors.Is(verr, webauthn.ErrSignCount) {
		return keyError(verr)
	}
	var rec *store.WebAuthnCredential
	for i := range recs {
		if string(recs[i].CredentialID) == string(used.ID) {
			rec = &recs[i]
		}
	}
	if rec == nil {
		return errKeyFailed
	}
	if verr != nil {
		return s.reportRegression(ctx, *rec, used.SignCount)
	}
	now := s.clock.Now()
	var regressed bool
	_, err := s.store.UpdateWebAuthnCredential(ctx, rec.ID, func(k *store.WebAuthnCredential) error {
		if !webauthn.CounterAdvanced(uint32(k.SignCount), used.SignCount) {
			regressed = true
			return errSignCount
		}
		k.SignCount, k.UserVerified, k.BackupState, k.LastUsedAt = int64(used.SignCount), used.UserVerified, used.BackupState, now
		return nil
	})
	if regressed {
		return s.reportRegression(ctx, *rec, used.SignCount)
	}
	if errors.Is(err, store.ErrNotFound) {
		return errNotEnrolled
	}
	return apperr.Wrap(err)
}

func (s *Service) reportRegression(ctx context.Context, rec store.WebAuthnCredential, got uint32) error {
	if err := s.record(ctx, s.store, Event{Type: EventSignCountRegress, AccountID: rec.AccountID, Notify: true,
		Data: map[string]any{"key_id": rec.ID, "name": rec.Name, "stored_count": rec.SignCount, "presented_count": got},
		Summary: fmt.Sprintf("Your security key \u201c%s\u201d was refused because it may have been copied. "+
			"If you did not just try to sign in with it, remove it and change your password.", rec.Name)}); err != nil {
		return apperr.Wrap(err)
	}
	return errSignCount
}

func keyError(err error) error {
	switch {
	case errors.Is(err, webauthn.ErrMalformed), errors.Is(err, webauthn.ErrVerify), errors.Is(err, webauthn.ErrUnknownCredential):
		e := *errKeyFailed
		e.Err = err
		return &e
	case errors.Is(err, webauthn.ErrSignCount):
		return errSignCount
	}
	return apperr.Wrap(err)
}

// PasskeyBeginLimit passwordless sign-ins may be started from one network
// per PasskeyBeginWindow (a person needs a few; a script filling the
// ceremony table needs many).
const (
	PasskeyBeginLimit  = 100
	PasskeyBeginWindow = 15 * time.Minute
)

// BeginPasskeySignIn starts a passwordless sign-in: the browser offers the
// passkeys it holds for this site.
//
// Anyone may call it, and each call stores a ceremony until it expires, so
// one network (ip; "" is not counted) may start PasskeyBeginLimit per
// PasskeyBeginWindow: RateLimited after that.
func (s *Service) BeginPasskeySignIn(ctx context.Context, ip string) (Challenge, error) {
	if ip != "" {
		n, err := s.counter.Incr(ctx, "passkey-begin:"+ip, 1, PasskeyBeginWindow)
		if err != nil {
			return Challenge{}, apperr.Wrap(err)
		}
		if n > PasskeyBeginLimit {
			retry := retryAfter(s.clock.Now(), PasskeyBeginWindow)
			e := apperr.New(apperr.RateLimited, fmt.Sprintf(
				"Too many passkey sign-ins were started from your network. Try again in %s.", humanDuration(retry)))
			e.RetryAfter = retry
			return Challenge{}, e
		}
	}
	opts, state, err := s.rp.BeginDiscoverableLogin()
	if err != nil {
		return Challenge{}, apperr.Wrap(err)
	}
	id, exp, err := s.saveCeremony(ctx, "", store.CeremonyPasskey, ceremonyData{State: state})
	if err != nil {
		return Challenge{}, err
	}
	return Challenge{Method: MethodWebAuthn, Ceremony: id, Options: opts, ExpiresAt: exp}, nil
}

// FinishPasskeySignIn checks a passkey's answer (with user verification) and
// returns the account it signs in. The caller (the account service) issues
// a session whose SecondFactorAt is now: a verified passkey is both factors.
func (s *Service) FinishPasskeySignIn(ctx context.Context, ceremony string, response []byte) (string, error) {
	d, err := s.takeCeremony(ctx, ceremony, "", store.CeremonyPasskey)
	if err != nil {
		return "", err
	}
	var recs []store.WebAuthnCredential
	var accountID string
	lookup := func(handle []byte) (webauthn.User, error) {
		accountID = string(handle)
		u, rs, err := s.waUser(ctx, s.store, accountID, "")
		if err != nil {
			return webauthn.User{}, err
		}
		if len(rs) == 0 {
			return webauthn.User{}, webauthn.ErrUnknownCredential
		}
		recs = rs
		return u, nil
	}
	u, used, err := s.rp.FinishDiscoverableLogin(d.State, response, lookup)
	if err != nil && !errors.Is(err, webauthn.ErrSignCount) {
		return "", keyError(err)
	}
	if err := s.afterAssertion(ctx, string(u.ID), recs, used, err); err != nil {
		return "", err
	}
	return accountID, nil
}

// DeleteExpiredCeremonies removes WebAuthn ceremonies that were begun but
// never finished and have expired; the server's janitor calls it now and
// then. Returns how many it removed.
func (s *Service) DeleteExpiredCeremonies(ctx context.Context) (int, error) {
	n, err := s.store.DeleteExpiredWebAuthnCeremonies(ctx, s.clock.Now())
	return n, apperr.Wrap(err)
}
