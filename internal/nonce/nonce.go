// Package nonce keeps the hot per-key state of the signed API: nonce
// high-water marks (so a captured request cannot be replayed) and Kraken's
// decaying call counters (rate limits and the invalid-key lockout). Both sit
// behind small interfaces with an in-memory implementation for one node and
// a Redis implementation, atomic through Lua scripts, for many nodes: a
// nonce used on one node is refused on every other.
//
// Time comes from the caller (an injected clock), never from the server, so
// tests move it and nodes agree on the arithmetic.
package nonce

import (
	"context"
	"errors"
	"time"
)

// Errors returned by Tracker.CheckAndSet. The gateway answers both with
// EAPI:Invalid nonce.
var (
	// ErrReplayed: this exact nonce was already accepted.
	ErrReplayed = errors.New("nonce: already used")
	// ErrStale: the nonce is not above the high-water mark (strict mode) or
	// is further below it than the key's window allows.
	ErrStale = errors.New("nonce: too old")
)

// DefaultMaxSeen bounds how many nonces below the high-water mark a tracker
// remembers per key in window mode. When more arrive, the oldest is
// forgotten and everything at or below it becomes stale: the bound can make
// a late nonce fail, never let a replay through.
const DefaultMaxSeen = 1024

// Tracker accepts each nonce of a key at most once.
type Tracker interface {
	// CheckAndSet atomically accepts nonce for keyID or refuses it.
	//
	// With window 0 a nonce is accepted only if it is greater than every
	// nonce accepted before for the key. With window w > 0 a nonce is also
	// accepted if it is less than w below the highest one (high - nonce < w)
	// and has not been accepted before. Concurrent calls with the same nonce:
	// exactly one succeeds. Returns ErrReplayed, ErrStale, or an error from
	// the backing store.
	CheckAndSet(ctx context.Context, keyID string, nonce uint64, window uint64) error
}

// Limit is a decaying counter's shape.
type Limit struct {
	// Max is the highest level a counter may reach; an Add that would
	// exceed it is refused.
	Max float64
	// DecayPerSecond is how fast the level falls back towards zero.
	DecayPerSecond float64
	// LockFor, when positive, locks the counter for that long after a
	// refused Add: every Add until then is refused.
	LockFor time.Duration
}

// Decision is the outcome of Counter.Add.
type Decision struct {
	Allowed bool
	// Level is the counter after the call (after decay, plus the cost when
	// allowed).
	Level float64
	// LockedUntil is set while the counter is locked.
	LockedUntil time.Time
}

// Counter is a set of decaying counters (Kraken's call-counter model),
// keyed by string.
type Counter interface {
	// Add decays key's level for the time since its last change, then adds
	// cost if the result stays at or below l.Max. Cost 0 only reads (and is
	// refused while the counter is locked). now is the caller's clock.
	Add(ctx context.Context, key string, cost float64, l Limit, now time.Time) (Decision, error)
}

// decay is the level after dt at rate r, never below zero.
func decay(level float64, dt time.Duration, r float64) float64 {
	if dt <= 0 || r <= 0 {
		return level
	}
	level -= dt.Seconds() * r
	if level < 0 {
		return 0
	}
	return level
}
