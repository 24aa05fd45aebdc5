package nonce

import (
	"context"
	"hash/maphash"
	"slices"
	"sync"
	"time"
)

// shards spreads keys over independent locks so concurrent calls for
// different keys do not wait on each other.
const shards = 64

var seed = maphash.MakeSeed()

func shardOf(key string) int { return int(maphash.String(seed, key) % shards) }

// Memory is a Tracker for a single node. State lives in this process and is
// lost when it exits: after a restart a request captured before it could be
// replayed once. Deployments that care run the Redis tracker (with Redis
// persistence on), which also serves many nodes.
type Memory struct {
	maxSeen int
	shard   [shards]struct {
		mu   sync.Mutex
		keys map[string]*nonceState
	}
}

type nonceState struct {
	high  uint64
	floor uint64   // everything at or below is stale
	seen  []uint64 // sorted, all in (floor, high], window mode only
}

// NewMemory returns an in-memory Tracker remembering at most maxSeen nonces
// per key in window mode (0 means DefaultMaxSeen).
func NewMemory(maxSeen int) *Memory {
	if maxSeen <= 0 {
		maxSeen = DefaultMaxSeen
	}
	m := &Memory{maxSeen: maxSeen}
	for i := range m.shard {
		m.shard[i].keys = map[string]*nonceState{}
	}
	return m
}

// CheckAndSet implements Tracker.
func (m *Memory) CheckAndSet(_ context.Context, keyID string, n, window uint64) error {
	sh := &m.shard[shardOf(keyID)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.keys[keyID]
	if st == nil {
		st = &nonceState{}
		sh.keys[keyID] = st
	}
	return st.accept(n, window, m.maxSeen)
}

// Forget drops a key's state (when the key is deleted).
func (m *Memory) Forget(keyID string) {
	sh := &m.shard[shardOf(keyID)]
	sh.mu.Lock()
	delete(sh.keys, keyID)
	sh.mu.Unlock()
}

// accept is the one statement of the nonce rule; the Redis script mirrors it.
func (st *nonceState) accept(n, window uint64, maxSeen int) error {
	if window == 0 {
		if n <= st.high {
			if n == st.high {
				return ErrReplayed
			}
			return ErrStale
		}
		// Strict mode remembers nothing below high; if a window is enabled
		// later, nothing at or below this nonce may come back.
		st.high, st.floor, st.seen = n, n, st.seen[:0]
		return nil
	}
	if n <= st.floor {
		return ErrStale
	}
	if n > st.high {
		st.high = n
		st.insert(n)
		// Forget what the window no longer reaches: s <= n - window.
		if n > window {
			cut := n - window
			i, _ := slices.BinarySearch(st.seen, cut+1)
			st.seen = st.seen[i:]
		}
	} else {
		if n == st.high {
			return ErrReplayed
		}
		if st.high-n >= window {
			return ErrStale
		}
		if _, found := slices.BinarySearch(st.seen, n); found {
			return ErrReplayed
		}
		st.insert(n)
	}
	if len(st.seen) > maxSeen {
		st.floor = st.seen[0]
		st.seen = slices.Delete(st.seen, 0, 1)
	}
	return nil
}

func (st *nonceState) insert(n uint64) {
	i, _ := slices.BinarySearch(st.seen, n)
	st.seen = slices.Insert(st.seen, i, n)
}

// MemoryCounter is a Counter for a single node. Counters that have decayed
// to zero and are not locked are swept away as the map is used, so a flood
// of distinct keys (client addresses) does not grow it without bound.
type MemoryCounter struct {
	shard [shards]struct {
		mu    sync.Mutex
		m     map[string]*counterState
		calls int
	}
}

type counterState struct {
	level  float64
	last   time.Time
	locked time.Time
	rate   float64
}

// NewMemoryCounter returns an empty in-memory Counter.
func NewMemoryCounter() *MemoryCounter {
	c := &MemoryCounter{}
	for i := range c.shard {
		c.shard[i].m = map[string]*counterState{}
	}
	return c
}

// sweepEvery is how many Adds on a shard pass between sweeps.
const sweepEvery = 4096

// Add implements Counter.
func (c *MemoryCounter) Add(_ context.Context, key string, cost float64, l Limit, now time.Time) (Decision, error) {
	sh := &c.shard[shardOf(key)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.calls++; sh.calls >= sweepEvery {
		sh.calls = 0
		for k, st := range sh.m {
			if now.After(st.locked) && decay(st.level, now.Sub(st.last), st.rate) == 0 {
				delete(sh.m, k)
			}
		}
	}
	st := sh.m[key]
	if st == nil {
		if cost == 0 { // a read of a counter that does not exist: nothing to keep
			return Decision{Allowed: l.Max >= 0}, nil
		}
		st = &counterState{last: now}
		sh.m[key] = st
	}
	st.rate = l.DecayPerSecond
	st.level = decay(st.level, now.Sub(st.last), l.DecayPerSecond)
	if now.After(st.last) {
		st.last = now
	}
	if now.Before(st.locked) {
		return Decision{Level: st.level, LockedUntil: st.locked}, nil
	}
	if st.level+cost > l.Max {
		if l.LockFor > 0 {
			st.locked = now.Add(l.LockFor)
			return Decision{Level: st.level, LockedUntil: st.locked}, nil
		}
		return Decision{Level: st.level}, nil
	}
	st.level += cost
	return Decision{Allowed: true, Level: st.level}, nil
}
