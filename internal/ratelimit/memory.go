package ratelimit

import (
	"context"
	"sync"
	"time"

	"github.com/moat-dev/moat/internal/clock"
)

// sweepEvery is how often (by the injected clock) Memory drops counters of
// windows that have ended. Sweeping is O(counters), so doing it at most
// this often keeps Incr cheap while bounding memory to the keys of roughly
// the last sweepEvery plus the longest window.
const sweepEvery = time.Minute

// Memory is a Counter for a single node: a mutex-guarded map. Counters of
// ended windows are dropped lazily, during Incr, at most once per
// sweepEvery.
type Memory struct {
	clock clock.Clock

	mu        sync.Mutex
	counts    map[memKey]*memCount
	lastSweep time.Time
}

type memKey struct {
	key   string
	index int64
}

type memCount struct {
	n int64
	// end is when the window closes; after it the counter is garbage.
	end time.Time
}

var _ Counter = (*Memory)(nil)

// NewMemory returns an empty in-memory Counter whose windows follow clk.
func NewMemory(clk clock.Clock) *Memory {
	return &Memory{clock: clk, counts: make(map[memKey]*memCount), lastSweep: clk.Now()}
}

// Incr adds n to key's counter in the current window and returns the new
// count.
func (m *Memory) Incr(_ context.Context, key string, n int64, window time.Duration) (int64, error) {
	now := m.clock.Now()
	idx, err := windowIndex(now, window)
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked(now)
	k := memKey{key, idx}
	c := m.counts[k]
	if c == nil {
		c = &memCount{end: time.Unix(0, (idx+1)*int64(window))}
		m.counts[k] = c
	}
	c.n += n
	return c.n, nil
}

// Count returns key's count in the current window.
func (m *Memory) Count(_ context.Context, key string, window time.Duration) (int64, error) {
	idx, err := windowIndex(m.clock.Now(), window)
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.counts[memKey{key, idx}]; c != nil {
		return c.n, nil
	}
	return 0, nil
}

// Reset clears key's counter in the current window.
func (m *Memory) Reset(_ context.Context, key string, window time.Duration) error {
	idx, err := windowIndex(m.clock.Now(), window)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.counts, memKey{key, idx})
	return nil
}

// sweepLocked drops counters whose window ended, if the last sweep was at
// least sweepEvery ago. m.mu must be held.
func (m *Memory) sweepLocked(now time.Time) {
	if now.Sub(m.lastSweep) < sweepEvery {
		return
	}
	m.lastSweep = now
	for k, c := range m.counts {
		if !now.Before(c.end) {
			delete(m.counts, k)
		}
	}
}
