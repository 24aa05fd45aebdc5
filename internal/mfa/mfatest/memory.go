// Package mfatest has in-memory doubles for testing internal/mfa and its
// adapters before (and besides) the SQL stores: a Store that follows the
// internal/store contract for the mfa records, a ratelimit.Counter, and a
// Recorder that keeps events.
//
// The Store serialises everything with one mutex (as SQLite does), and
// InTx rolls back on error by restoring a snapshot, so transactional and
// concurrency behaviour match what the real stores promise.
package mfatest

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/moat-dev/moat/internal/mfa"
	"github.com/moat-dev/moat/internal/store"
)

// Store is an in-memory mfa.Store.
type Store struct {
	mu sync.Mutex
	d  *data
}

type data struct {
	totp       map[string]mfa.TOTPCredential
	backup     map[string][]mfa.BackupCode
	phones     map[string]mfa.SMSPhone
	smsCodes   map[string]mfa.SMSCode
	keys       map[string]mfa.WebAuthnCredential // by ID
	ceremonies map[string]mfa.WebAuthnCeremony
	settings   map[string]mfa.MFASettings
	events     []mfa.Event
}

var _ mfa.Store = (*Store)(nil)

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{d: &data{
		totp: map[string]mfa.TOTPCredential{}, backup: map[string][]mfa.BackupCode{},
		phones: map[string]mfa.SMSPhone{}, smsCodes: map[string]mfa.SMSCode{},
		keys: map[string]mfa.WebAuthnCredential{}, ceremonies: map[string]mfa.WebAuthnCeremony{},
		settings: map[string]mfa.MFASettings{},
	}}
}

func (d *data) clone() *data {
	c := &data{
		totp: maps.Clone(d.totp), backup: map[string][]mfa.BackupCode{}, phones: maps.Clone(d.phones),
		smsCodes: maps.Clone(d.smsCodes), keys: maps.Clone(d.keys), ceremonies: maps.Clone(d.ceremonies),
		settings: maps.Clone(d.settings), events: slices.Clone(d.events),
	}
	for k, v := range d.backup {
		c.backup[k] = slices.Clone(v)
	}
	return c
}

// InTx runs fn holding the store's lock; on error the data is restored.
func (s *Store) InTx(ctx context.Context, fn func(q mfa.Queries) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := s.d.clone()
	if err := fn(tx{s.d}); err != nil {
		s.d = snap
		return err
	}
	return nil
}

// do runs one query under the lock.
func do[T any](s *Store, f func(d *data) (T, error)) (T, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return f(s.d)
}

func do0(s *Store, f func(d *data) error) error {
	_, err := do(s, func(d *data) (struct{}, error) { return struct{}{}, f(d) })
	return err
}

// utc normalises times as the SQL stores do (UTC, microseconds).
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return bytes.Clone(b)
}

// Each public method takes the lock and calls the transaction's method.

func (s *Store) CreateTOTP(ctx context.Context, c mfa.TOTPCredential) error {
	return do0(s, func(d *data) error { return tx{d}.CreateTOTP(ctx, c) })
}
func (s *Store) GetTOTP(ctx context.Context, id string) (mfa.TOTPCredential, error) {
	return do(s, func(d *data) (mfa.TOTPCredential, error) { return tx{d}.GetTOTP(ctx, id) })
}
func (s *Store) UpdateTOTP(ctx context.Context, id string, fn func(*mfa.TOTPCredential) error) (mfa.TOTPCredential, error) {
	return do(s, func(d *data) (mfa.TOTPCredential, error) { return tx{d}.UpdateTOTP(ctx, id, fn) })
}
func (s *Store) DeleteTOTP(ctx context.Context, id string) error {
	return do0(s, func(d *data) error { return tx{d}.DeleteTOTP(ctx, id) })
}
func (s *Store) ReplaceBackupCodes(ctx context.Context, id string, codes []mfa.BackupCode) error {
	return do0(s, func(d *data) error { return tx{d}.ReplaceBackupCodes(ctx, id, codes) })
}
func (s *Store) SpendBackupCode(ctx context.Context, id string, hash []byte, at time.Time) error {
	return do0(s, func(d *data) error { return tx{d}.SpendBackupCode(ctx, id, hash, at) })
}
func (s *Store) CountBackupCodes(ctx context.Context, id string) (int, error) {
	return do(s, func(d *data) (int, error) { return tx{d}.CountBackupCodes(ctx, id) })
}
func (s *Store) CreateSMSPhone(ctx context.Context, p mfa.SMSPhone) error {
	return do0(s, func(d *data) error { return tx{d}.CreateSMSPhone(ctx, p) })
}
func (s *Store) GetSMSPhone(ctx context.Context, id string) (mfa.SMSPhone, error) {
	return do(s, func(d *data) (mfa.SMSPhone, error) { return tx{d}.GetSMSPhone(ctx, id) })
}
func (s *Store) UpdateSMSPhone(ctx context.Context, id string, fn func(*mfa.SMSPhone) error) (mfa.SMSPhone, error) {
	return do(s, func(d *data) (mfa.SMSPhone, error) { return tx{d}.UpdateSMSPhone(ctx, id, fn) })
}
func (s *Store) DeleteSMSPhone(ctx context.Context, id string) error {
	return do0(s, func(d *data) error { return tx{d}.DeleteSMSPhone(ctx, id) })
}
func (s *Store) PutSMSCode(ctx context.Context, c mfa.SMSCode) error {
	return do0(s, func(d *data) error { return tx{d}.PutSMSCode(ctx, c) })
}
func (s *Store) UpdateSMSCode(ctx context.Context, id string, fn func(*mfa.SMSCode) error) (mfa.SMSCode, error) {
	return do(s, func(d *data) (mfa.SMSCode, error) { return tx{d}.UpdateSMSCode(ctx, id, fn) })
}
func (s *Store) CreateWebAuthnCredential(ctx context.Context, c mfa.WebAuthnCredential) error {
	return do0(s, func(d *data) error { return tx{d}.CreateWebAuthnCredential(ctx, c) })
}
func (s *Store) ListWebAuthnCredentials(ctx context.Context, id string) ([]mfa.WebAuthnCredential, error) {
	return do(s, func(d *data) ([]mfa.WebAuthnCredential, error) { return tx{d}.ListWebAuthnCredentials(ctx, id) })
}
func (s *Store) GetWebAuthnCredentialByCredentialID(ctx context.Context, cid []byte) (mfa.WebAuthnCredential, error) {
	return do(s, func(d *data) (mfa.WebAuthnCredential, error) {
		return tx{d}.GetWebAuthnCredentialByCredentialID(ctx, cid)
	})
}
func (s *Store) UpdateWebAuthnCredential(ctx context.Context, id string, fn func(*mfa.WebAuthnCredential) error) (mfa.WebAuthnCredential, error) {
	return do(s, func(d *data) (mfa.WebAuthnCredential, error) { return tx{d}.UpdateWebAuthnCredential(ctx, id, fn) })
}
func (s *Store) DeleteWebAuthnCredential(ctx context.Context, accountID, id string) error {
	return do0(s, func(d *data) error { return tx{d}.DeleteWebAuthnCredential(ctx, accountID, id) })
}
func (s *Store) CreateWebAuthnCeremony(ctx context.Context, c mfa.WebAuthnCeremony) error {
	return do0(s, func(d *data) error { return tx{d}.CreateWebAuthnCeremony(ctx, c) })
}
func (s *Store) TakeWebAuthnCeremony(ctx context.Context, id string) (mfa.WebAuthnCeremony, error) {
	return do(s, func(d *data) (mfa.WebAuthnCeremony, error) { return tx{d}.TakeWebAuthnCeremony(ctx, id) })
}
func (s *Store) DeleteExpiredWebAuthnCeremonies(ctx context.Context, now time.Time) (int, error) {
	return do(s, func(d *data) (int, error) { return tx{d}.DeleteExpiredWebAuthnCeremonies(ctx, now) })
}
func (s *Store) GetMFASettings(ctx context.Context, id string) (mfa.MFASettings, error) {
	return do(s, func(d *data) (mfa.MFASettings, error) { return tx{d}.GetMFASettings(ctx, id) })
}
func (s *Store) UpdateMFASettings(ctx context.Context, id string, fn func(*mfa.MFASettings) error) (mfa.MFASettings, error) {
	return do(s, func(d *data) (mfa.MFASettings, error) { return tx{d}.UpdateMFASettings(ctx, id, fn) })
}

// tx implements the queries on data whose lock the caller holds.
type tx struct{ d *data }

func (t tx) CreateTOTP(_ context.Context, c mfa.TOTPCredential) error {
	if _, ok := t.d.totp[c.AccountID]; ok {
		return store.ErrAlreadyExists
	}
	t.d.totp[c.AccountID] = normTOTP(c)
	return nil
}

func normTOTP(c mfa.TOTPCredential) mfa.TOTPCredential {
	c.Secret = clone(c.Secret)
	c.ConfirmedAt, c.CreatedAt, c.LastUsedAt = utc(c.ConfirmedAt), utc(c.CreatedAt), utc(c.LastUsedAt)
	return c
}

func (t tx) GetTOTP(_ context.Context, id string) (mfa.TOTPCredential, error) {
	c, ok := t.d.totp[id]
	if !ok {
		return mfa.TOTPCredential{}, store.ErrNotFound
	}
	return normTOTP(c), nil
}

func (t tx) UpdateTOTP(_ context.Context, id string, fn func(*mfa.TOTPCredential) error) (mfa.TOTPCredential, error) {
	c, ok := t.d.totp[id]
	if !ok {
		return mfa.TOTPCredential{}, store.ErrNotFound
	}
	c = normTOTP(c)
	if err := fn(&c); err != nil {
		return mfa.TOTPCredential{}, err
	}
	c.AccountID = id
	t.d.totp[id] = normTOTP(c)
	return normTOTP(c), nil
}

func (t tx) DeleteTOTP(_ context.Context, id string) error {
	if _, ok := t.d.totp[id]; !ok {
		return store.ErrNotFound
	}
	delete(t.d.totp, id)
	return nil
}

func (t tx) ReplaceBackupCodes(_ context.Context, id string, codes []mfa.BackupCode) error {
	out := make([]mfa.BackupCode, 0, len(codes))
	for _, c := range codes {
		for _, o := range out {
			if bytes.Equal(o.Hash, c.Hash) {
				return store.ErrAlreadyExists
			}
		}
		c.AccountID, c.Hash, c.CreatedAt, c.UsedAt = id, clone(c.Hash), utc(c.CreatedAt), utc(c.UsedAt)
		out = append(out, c)
	}
	if len(out) == 0 {
		delete(t.d.backup, id)
		return nil
	}
	t.d.backup[id] = out
	return nil
}

func (t tx) SpendBackupCode(_ context.Context, id string, hash []byte, at time.Time) error {
	for i, c := range t.d.backup[id] {
		if bytes.Equal(c.Hash, hash) {
			if !c.UsedAt.IsZero() {
				return store.ErrTokenUsed
			}
			t.d.backup[id][i].UsedAt = utc(at)
			return nil
		}
	}
	return store.ErrNotFound
}

func (t tx) CountBackupCodes(_ context.Context, id string) (int, error) {
	n := 0
	for _, c := range t.d.backup[id] {
		if c.UsedAt.IsZero() {
			n++
		}
	}
	return n, nil
}

func normPhone(p mfa.SMSPhone) mfa.SMSPhone {
	p.VerifiedAt, p.CreatedAt, p.LastUsedAt = utc(p.VerifiedAt), utc(p.CreatedAt), utc(p.LastUsedAt)
	return p
}

func (t tx) CreateSMSPhone(_ context.Context, p mfa.SMSPhone) error {
	if _, ok := t.d.phones[p.AccountID]; ok {
		return store.ErrAlreadyExists
	}
	t.d.phones[p.AccountID] = normPhone(p)
	return nil
}

func (t tx) GetSMSPhone(_ context.Context, id string) (mfa.SMSPhone, error) {
	p, ok := t.d.phones[id]
	if !ok {
		return mfa.SMSPhone{}, store.ErrNotFound
	}
	return p, nil
}

func (t tx) UpdateSMSPhone(_ context.Context, id string, fn func(*mfa.SMSPhone) error) (mfa.SMSPhone, error) {
	p, ok := t.d.phones[id]
	if !ok {
		return mfa.SMSPhone{}, store.ErrNotFound
	}
	if err := fn(&p); err != nil {
		return mfa.SMSPhone{}, err
	}
	p.AccountID = id
	t.d.phones[id] = normPhone(p)
	return t.d.phones[id], nil
}

func (t tx) DeleteSMSPhone(_ context.Context, id string) error {
	if _, ok := t.d.phones[id]; !ok {
		return store.ErrNotFound
	}
	delete(t.d.phones, id)
	delete(t.d.smsCodes, id)
	return nil
}

func normSMSCode(c mfa.SMSCode) mfa.SMSCode {
	c.CodeHash = clone(c.CodeHash)
	c.CreatedAt, c.ExpiresAt, c.UsedAt = utc(c.CreatedAt), utc(c.ExpiresAt), utc(c.UsedAt)
	return c
}

func (t tx) PutSMSCode(_ context.Context, c mfa.SMSCode) error {
	t.d.smsCodes[c.AccountID] = normSMSCode(c)
	return nil
}

func (t tx) UpdateSMSCode(_ context.Context, id string, fn func(*mfa.SMSCode) error) (mfa.SMSCode, error) {
	c, ok := t.d.smsCodes[id]
	if !ok {
		return mfa.SMSCode{}, store.ErrNotFound
	}
	c = normSMSCode(c)
	if err := fn(&c); err != nil {
		return mfa.SMSCode{}, err
	}
	c.AccountID = id
	t.d.smsCodes[id] = normSMSCode(c)
	return normSMSCode(c), nil
}

func normKey(k mfa.WebAuthnCredential) mfa.WebAuthnCredential {
	k.CredentialID, k.PublicKey, k.AAGUID = clone(k.CredentialID), clone(k.PublicKey), clone(k.AAGUID)
	k.CreatedAt, k.LastUsedAt = utc(k.CreatedAt), utc(k.LastUsedAt)
	return k
}

func (t tx) CreateWebAuthnCredential(_ context.Context, c mfa.WebAuthnCredential) error {
	if _, ok := t.d.keys[c.ID]; ok {
		return store.ErrAlreadyExists
	}
	for _, k := range t.d.keys {
		if bytes.Equal(k.CredentialID, c.CredentialID) {
			return store.ErrAlreadyExists
		}
	}
	t.d.keys[c.ID] = normKey(c)
	return nil
}

func (t tx) ListWebAuthnCredentials(_ context.Context, accountID string) ([]mfa.WebAuthnCredential, error) {
	var out []mfa.WebAuthnCredential
	for _, k := range t.d.keys {
		if k.AccountID == accountID {
			out = append(out, normKey(k))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func (t tx) GetWebAuthnCredentialByCredentialID(_ context.Context, cid []byte) (mfa.WebAuthnCredential, error) {
	for _, k := range t.d.keys {
		if bytes.Equal(k.CredentialID, cid) {
			return normKey(k), nil
		}
	}
	return mfa.WebAuthnCredential{}, store.ErrNotFound
}

func (t tx) UpdateWebAuthnCredential(_ context.Context, id string, fn func(*mfa.WebAuthnCredential) error) (mfa.WebAuthnCredential, error) {
	k, ok := t.d.keys[id]
	if !ok {
		return mfa.WebAuthnCredential{}, store.ErrNotFound
	}
	k = normKey(k)
	if err := fn(&k); err != nil {
		return mfa.WebAuthnCredential{}, err
	}
	k.ID = id
	t.d.keys[id] = normKey(k)
	return normKey(k), nil
}

func (t tx) DeleteWebAuthnCredential(_ context.Context, accountID, id string) error {
	k, ok := t.d.keys[id]
	if !ok || k.AccountID != accountID {
		return store.ErrNotFound
	}
	delete(t.d.keys, id)
	return nil
}

func (t tx) CreateWebAuthnCeremony(_ context.Context, c mfa.WebAuthnCeremony) error {
	if _, ok := t.d.ceremonies[c.ID]; ok {
		return store.ErrAlreadyExists
	}
	c.Data, c.CreatedAt, c.ExpiresAt = clone(c.Data), utc(c.CreatedAt), utc(c.ExpiresAt)
	t.d.ceremonies[c.ID] = c
	return nil
}

func (t tx) TakeWebAuthnCeremony(_ context.Context, id string) (mfa.WebAuthnCeremony, error) {
	c, ok := t.d.ceremonies[id]
	if !ok {
		return mfa.WebAuthnCeremony{}, store.ErrNotFound
	}
	delete(t.d.ceremonies, id)
	return c, nil
}

func (t tx) DeleteExpiredWebAuthnCeremonies(_ context.Context, now time.Time) (int, error) {
	n := 0
	for id, c := range t.d.ceremonies {
		if c.ExpiresAt.Before(now) {
			delete(t.d.ceremonies, id)
			n++
		}
	}
	return n, nil
}

func (t tx) GetMFASettings(_ context.Context, id string) (mfa.MFASettings, error) {
	s, ok := t.d.settings[id]
	if !ok {
		return mfa.MFASettings{}, store.ErrNotFound
	}
	return s, nil
}

func (t tx) UpdateMFASettings(_ context.Context, id string, fn func(*mfa.MFASettings) error) (mfa.MFASettings, error) {
	s, ok := t.d.settings[id]
	if !ok {
		s = mfa.MFASettings{AccountID: id}
	}
	if err := fn(&s); err != nil {
		return mfa.MFASettings{}, err
	}
	s.AccountID, s.UpdatedAt, s.FactorsChangedAt = id, utc(s.UpdatedAt), utc(s.FactorsChangedAt)
	t.d.settings[id] = s
	return s, nil
}

func (t tx) appendEvent(ev mfa.Event) { t.d.events = append(t.d.events, ev) }

func (s *Store) appendEvent(ev mfa.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx{s.d}.appendEvent(ev)
}

// Events returns the committed events, oldest first.
func (s *Store) Events() []mfa.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.d.events)
}

// EventTypes returns the types of Events, in order.
func (s *Store) EventTypes() []string {
	var out []string
	for _, e := range s.Events() {
		out = append(out, e.Type)
	}
	return out
}
