package mfatest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/mfa"
	"github.com/moat-dev/moat/internal/ratelimit"
)

// Counter is a ratelimit.Counter over an injected clock with the package's
// fixed windows (index = now.UnixNano()/window).
type Counter struct {
	clock clock.Clock
	mu    sync.Mutex
	n     map[counterKey]int64
}

type counterKey struct {
	key   string
	index int64
}

var _ ratelimit.Counter = (*Counter)(nil)

// NewCounter returns an empty counter.
func NewCounter(clk clock.Clock) *Counter {
	return &Counter{clock: clk, n: map[counterKey]int64{}}
}

func (c *Counter) k(key string, w time.Duration) (counterKey, error) {
	if w <= 0 {
		return counterKey{}, errors.New("mfatest: window must be positive")
	}
	return counterKey{key, c.clock.Now().UnixNano() / int64(w)}, nil
}

// Incr adds n and returns the new count.
func (c *Counter) Incr(_ context.Context, key string, n int64, w time.Duration) (int64, error) {
	k, err := c.k(key, w)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[k] += n
	return c.n[k], nil
}

// Count returns the count.
func (c *Counter) Count(_ context.Context, key string, w time.Duration) (int64, error) {
	k, err := c.k(key, w)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k], nil
}

// Reset clears the count.
func (c *Counter) Reset(_ context.Context, key string, w time.Duration) error {
	k, err := c.k(key, w)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.n, k)
	return nil
}

// Recorder writes events into the Store they are recorded through, like the
// real audit log: an event recorded in a transaction that rolls back is
// gone with it. Read them with Store.Events.
type Recorder struct {
	// Fail, when set, is returned by Record (to test that a failed audit
	// write undoes the change).
	Fail error
}

var _ mfa.Recorder = (*Recorder)(nil)

type eventAppender interface{ appendEvent(mfa.Event) }

// Record appends ev through q, which must be this package's Store or one of
// its transactions.
func (r *Recorder) Record(_ context.Context, q mfa.Queries, ev mfa.Event) error {
	if r.Fail != nil {
		return r.Fail
	}
	a, ok := q.(eventAppender)
	if !ok {
		return errors.New("mfatest: Recorder needs a mfatest.Store")
	}
	a.appendEvent(ev)
	return nil
}
