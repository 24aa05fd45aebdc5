package account

import (
	"context"
	"crypto/sha256"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/store"
)

// sessionCache keeps recently used sessions of this node in memory, keyed
// by the SHA-256 of the token, so most authenticated requests cost a map
// lookup instead of two queries.
//
// An entry is trusted for SessionCacheTTL after it was loaded; then the
// next request reloads it. Changes made through this node (sign-out,
// revocation, lock, password change) drop the account's or the session's
// entries at once; other nodes notice within SessionCacheTTL.
type sessionCache struct {
	mu        sync.RWMutex
	byHash    map[[32]byte]*cacheEntry
	byAccount map[string]map[[32]byte]struct{}
	lastSweep int64
	// gen changes on every invalidation. A load that started before one
	// must not insert what it read: it may predate the change.
	gen atomic.Uint64
}

type cacheEntry struct {
	p Principal // as loaded; never modified
	// loadedAt is when p was read from the store (clock nanoseconds).
	loadedAt int64
	// lastSeen is the newest activity known on this node: the idle timeout
	// counts from it, exactly, though the store is written only every
	// touchEvery.
	lastSeen atomic.Int64
	// stored is the LastSeenAt the store holds (as far as this node knows).
	stored atomic.Int64
}

// maxCacheEntries bounds the cache; past it the cache starts over.
const maxCacheEntries = 1 << 20

func newSessionCache() *sessionCache {
	return &sessionCache{
		byHash:    make(map[[32]byte]*cacheEntry),
		byAccount: make(map[string]map[[32]byte]struct{}),
	}
}

func (c *sessionCache) get(k [32]byte) *cacheEntry {
	c.mu.RLock()
	e := c.byHash[k]
	c.mu.RUnlock()
	return e
}

// put stores e unless an invalidation happened since gen was read. It also
// drops entries idle for longer than idle, at most once a minute.
func (c *sessionCache) put(k [32]byte, e *cacheEntry, gen uint64, now int64, idle time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if len(c.byHash) >= maxCacheEntries {
		c.byHash = make(map[[32]byte]*cacheEntry)
		c.byAccount = make(map[string]map[[32]byte]struct{})
	}
	if now-c.lastSweep > int64(time.Minute) {
		c.lastSweep = now
		for hk, old := range c.byHash {
			if now-old.lastSeen.Load() > int64(idle) {
				c.deleteLocked(hk, old.p.Session.AccountID)
			}
		}
	}
	c.byHash[k] = e
	acct := e.p.Session.AccountID
	m := c.byAccount[acct]
	if m == nil {
		m = make(map[[32]byte]struct{}, 1)
		c.byAccount[acct] = m
	}
	m[k] = struct{}{}
}

func (c *sessionCache) deleteLocked(k [32]byte, accountID string) {
	delete(c.byHash, k)
	if m := c.byAccount[accountID]; m != nil {
		delete(m, k)
		if len(m) == 0 {
			delete(c.byAccount, accountID)
		}
	}
}

// dropAccount forgets every cached session of the account.
func (c *sessionCache) dropAccount(accountID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	for k := range c.byAccount[accountID] {
		delete(c.byHash, k)
	}
	delete(c.byAccount, accountID)
}

// dropSession forgets one session of the account.
func (c *sessionCache) dropSession(accountID, sessionID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	for k := range c.byAccount[accountID] {
		if e := c.byHash[k]; e != nil && e.p.Session.ID == sessionID {
			c.deleteLocked(k, accountID)
		}
	}
}

// updateSession replaces the cached copy of sess (as just written to the
// store) in place, keeping the activity this node has seen, so the change
// shows at once without a reload.
func (c *sessionCache) updateSession(sess store.Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1) // a load in flight read the old row
	for k := range c.byAccount[sess.AccountID] {
		old := c.byHash[k]
		if old == nil || old.p.Session.ID != sess.ID {
			continue
		}
		e := &cacheEntry{p: Principal{Account: old.p.Account, Session: sess}, loadedAt: old.loadedAt}
		e.lastSeen.Store(max(old.lastSeen.Load(), sess.LastSeenAt.UnixNano()))
		e.stored.Store(max(old.stored.Load(), sess.LastSeenAt.UnixNano()))
		c.byHash[k] = e
	}
}

// anyAccount returns the ID of some cached account ("" if none); for
// benchmarks.
func (c *sessionCache) anyAccount() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for a := range c.byAccount {
		return a
	}
	return ""
}

// InvalidateAccount makes this node forget what it cached about the
// account's sessions, so the next request re-reads them. Other services
// that revoke sessions or change an account through the store directly
// (password reset, recovery, the admin console) call it so this node stops
// accepting a revoked session at once instead of within SessionCacheTTL.
func (s *Service) InvalidateAccount(accountID string) { s.cache.dropAccount(accountID) }

// tokenKey is the SHA-256 of a token (what the store keeps), computed
// without allocating.
func tokenKey(token string) [32]byte {
	var buf [maxTokenLen]byte
	n := copy(buf[:], token)
	return sha256.Sum256(buf[:n])
}

func errSignedOut() error {
	return apperr.New(apperr.Unauthorized, "You are signed out. Sign in again.")
}

// Authenticate checks a session token (cookie or bearer) on every request:
// revocation, the absolute timeout (Config.SessionAbsolute after sign-in),
// the idle timeout (Config.SessionIdle after the last request) and the
// account lock. Returns Unauthorized otherwise, with a message that says
// why.
//
// It is the hot path, served from a per-node cache (see sessionCache):
//   - A sign-out, revocation, lock or password change made through this
//     node takes effect here immediately; one made on another node takes
//     effect here within Config.SessionCacheTTL (5 s by default).
//   - The idle timeout is exact (to the second) on this node. Activity is
//     written to the store at most once a minute per session
//     (write-behind), so another node may end an idle session up to a
//     minute early.
//
// The returned Principal's Session.LastSeenAt is the time of this request.
func (s *Service) Authenticate(ctx context.Context, sessionToken string, c Client) (Principal, error) {
	if sessionToken == "" || len(sessionToken) > maxTokenLen {
		return Principal{}, errSignedOut()
	}
	key := tokenKey(sessionToken)
	now := s.clock.Now().UnixNano()
	e := s.cache.get(key)
	if e == nil || now-e.loadedAt > int64(s.cfg.SessionCacheTTL) {
		var err error
		if e, err = s.loadSession(ctx, key, e, now); err != nil {
			return Principal{}, err
		}
	}
	sess := &e.p.Session
	switch {
	case !sess.RevokedAt.IsZero():
		return Principal{}, errSignedOut()
	case now >= sess.ExpiresAt.UnixNano():
		return Principal{}, apperr.New(apperr.Unauthorized, "Your session has ended: sessions last at most "+humanHours(s.cfg.SessionAbsolute)+". Sign in again.")
	case !e.p.Account.LockedAt.IsZero():
		return Principal{}, apperr.New(apperr.Unauthorized, "This account is locked, so you were signed out. Contact support to unlock it.")
	}
	last := e.lastSeen.Load()
	if now-last > int64(s.cfg.SessionIdle) {
		return Principal{}, apperr.New(apperr.Unauthorized, "You were signed out after "+humanDuration(s.cfg.SessionIdle)+" without activity. Sign in again.")
	}
	// Record the activity, to the second: a request writes the shared
	// entry at most once a second, so concurrent requests of one session
	// do not contend on it.
	for now-last >= int64(time.Second) && !e.lastSeen.CompareAndSwap(last, now) {
		last = e.lastSeen.Load()
	}
	if st := e.stored.Load(); now-st >= int64(touchEvery) && e.stored.CompareAndSwap(st, now) {
		at := time.Unix(0, now).UTC().Truncate(time.Microsecond)
		if err := s.store.TouchSession(ctx, sess.ID, at, c.IP); err != nil {
			s.log.Warn("account: recording session activity failed", "session", sess.ID, "err", err)
		}
	}
	p := e.p
	p.Session.LastSeenAt = time.Unix(0, now).UTC()
	return p, nil
}

// loadSession reads the session of key and its account and caches them.
// old is the expired cache entry, if any: its activity carries over.
func (s *Service) loadSession(ctx context.Context, key [32]byte, old *cacheEntry, now int64) (*cacheEntry, error) {
	gen := s.cache.gen.Load()
	sess, err := s.store.GetSessionByTokenHash(ctx, key[:])
	if errors.Is(err, store.ErrNotFound) {
		return nil, errSignedOut()
	}
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	a, err := s.store.GetAccount(ctx, sess.AccountID)
	if err != nil {
		return nil, apperr.Wrap(err)
	}
	e := &cacheEntry{p: Principal{Account: a, Session: sess}, loadedAt: now}
	seen := sess.LastSeenAt.UnixNano()
	stored := seen
	if old != nil && old.p.Session.ID == sess.ID {
		seen = max(seen, old.lastSeen.Load())
		stored = max(stored, old.stored.Load())
	}
	e.lastSeen.Store(seen)
	e.stored.Store(stored)
	s.cache.put(key, e, gen, now, s.cfg.SessionIdle)
	return e, nil
}

// humanHours says "12 hours" for a whole number of hours, else minutes.
func humanHours(d time.Duration) string {
	if d >= time.Hour && d%time.Hour == 0 {
		if d == time.Hour {
			return "1 hour"
		}
		return strconv.Itoa(int(d/time.Hour)) + " hours"
	}
	return humanDuration(d)
}
