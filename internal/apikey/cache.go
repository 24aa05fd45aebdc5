package apikey

import (
	"context"
	"errors"
	"sync"
	"time"
)

// maxCacheEntries bounds the cache's memory (an entry is well under a
// kilobyte). Beyond it, expired entries are swept, then arbitrary ones.
const maxCacheEntries = 100_000

// entry is a cached lookup: a live key's credential, or a deleted key.
type entry struct {
	accountID string
	cred      Credential
	gone      bool
	expires   time.Time
}

func (e entry) result() (Credential, error) {
	if e.gone {
		return Credential{}, ErrKeyNotFound
	}
	return e.cred, nil
}

// flight is a lookup in progress; callers asking for the same key meanwhile
// wait for it instead of querying the database too.
type flight struct {
	done chan struct{}
	e    entry
	err  error
}

// cache keeps this node's recent key lookups, keyed by public key, so the
// signed API's hot path reads the database at most once per TTL per key.
//
// Forgetting is immediate on this node. A lookup that was already reading
// the database when a key was forgotten may have read the old row, so its
// result is used for its own call but not kept: forget advances gen, and
// only a lookup that started in the current generation stores its result.
type cache struct {
	ttl time.Duration // < 0: disabled

	mu      sync.RWMutex
	entries map[string]entry
	flights map[string]*flight
	gen     uint64
}

func newCache(ttl time.Duration) *cache {
	return &cache{ttl: ttl, entries: map[string]entry{}, flights: map[string]*flight{}}
}

// get returns the credential of pub as of now, calling fetch on a miss.
func (c *cache) get(ctx context.Context, pub string, now time.Time,
	fetch func(ctx context.Context, pub string, now time.Time) (entry, error)) (Credential, error) {
	if c.ttl < 0 {
		e, err := fetch(ctx, pub, now)
		if err != nil {
			return Credential{}, err
		}
		return e.result()
	}
	c.mu.RLock()
	e, ok := c.entries[pub]
	c.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.result()
	}

	c.mu.Lock()
	if e, ok := c.entries[pub]; ok && now.Before(e.expires) {
		c.mu.Unlock()
		return e.result()
	}
	if f := c.flights[pub]; f != nil {
		c.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return Credential{}, ctx.Err()
		}
		if f.err == nil {
			return f.e.result()
		}
		if errors.Is(f.err, ErrKeyNotFound) {
			return Credential{}, f.err
		}
		// The leader failed, perhaps only because its own request was
		// cancelled: try once more with this caller's context.
		e, err := fetch(ctx, pub, now)
		if err != nil {
			return Credential{}, err
		}
		return e.result()
	}
	f := &flight{done: make(chan struct{})}
	c.flights[pub] = f
	gen := c.gen
	c.mu.Unlock()

	f.e, f.err = fetch(ctx, pub, now)

	c.mu.Lock()
	delete(c.flights, pub)
	if f.err == nil && c.gen == gen {
		f.e.expires = now.Add(c.ttl)
		c.put(pub, f.e, now)
	}
	c.mu.Unlock()
	close(f.done)
	if f.err != nil {
		return Credential{}, f.err
	}
	return f.e.result()
}

// put stores e; c.mu must be held.
func (c *cache) put(pub string, e entry, now time.Time) {
	if len(c.entries) >= maxCacheEntries {
		for k, x := range c.entries {
			if !now.Before(x.expires) {
				delete(c.entries, k)
			}
		}
		// Still full: drop an arbitrary eighth (map order is random).
		for k := range c.entries {
			if len(c.entries) < maxCacheEntries*7/8 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[pub] = e
}

// forget drops pub from the cache.
func (c *cache) forget(pub string) {
	c.mu.Lock()
	delete(c.entries, pub)
	c.gen++
	c.mu.Unlock()
}

// forgetAccount drops every cached key of the account.
func (c *cache) forgetAccount(accountID string) {
	c.mu.Lock()
	for k, e := range c.entries {
		if e.accountID == accountID {
			delete(c.entries, k)
		}
	}
	c.gen++
	c.mu.Unlock()
}
