// Package ratelimit counts events per key in fixed windows, in memory (one
// node) or in Redis (many nodes, every node sees the same counts). Windows
// are computed from the injected clock, so tests move time for both.
//
// A window of length w containing time t has index t.UnixNano()/w; the
// counter for (key, index) is independent of every other window. Use one
// window length per key: the index is not tied to the length, so the same
// key counted with two lengths could share a counter.
package ratelimit

import (
	"context"
	"errors"
	"time"
)

// Counter counts events per key.
type Counter interface {
	// Incr adds n to key's counter in the window containing now and returns
	// the new count.
	Incr(ctx context.Context, key string, n int64, window time.Duration) (int64, error)
	// Count returns key's count in the window containing now.
	Count(ctx context.Context, key string, window time.Duration) (int64, error)
	// Reset clears key's counter in the current window.
	Reset(ctx context.Context, key string, window time.Duration) error
}

// errWindow is returned for a window that is not positive.
var errWindow = errors.New("ratelimit: window must be positive")

// windowIndex returns the index of the window of length w containing t.
func windowIndex(t time.Time, w time.Duration) (int64, error) {
	if w <= 0 {
		return 0, errWindow
	}
	return t.UnixNano() / int64(w), nil
}
