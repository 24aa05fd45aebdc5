// Package ratelimit counts events per key in fixed windows, in memory (one
// node) or in Redis (many nodes, every node sees the same counts). Windows
// are computed from the injected clock, so tests move time for both.
package ratelimit

import (
	"context"
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
