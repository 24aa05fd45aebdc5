package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/moat-dev/moat/internal/clock"
)

// incrScript adds to a counter and (re)sets its expiry in one atomic step,
// so a counter can never be left without an expiry by a crash between the
// two commands.
const incrScript = `
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n`

// Redis is a Counter shared by every node using the same Redis and prefix.
// Each (key, window) counter is one Redis key,
// prefix + key + ":" + windowIndex, that expires two windows after it was
// last incremented. The window index comes from the injected clock, not
// from Redis's clock, so all nodes must keep reasonable time (as they must
// for TOTP anyway).
type Redis struct {
	client *redis.Client
	clock  clock.Clock
	prefix string
	incr   *redis.Script
}

var _ Counter = (*Redis)(nil)

// NewRedis returns a Counter that keeps its counters in Redis under keys
// starting with prefix (e.g. "moat:rl:").
func NewRedis(client *redis.Client, clk clock.Clock, prefix string) *Redis {
	return &Redis{client: client, clock: clk, prefix: prefix, incr: redis.NewScript(incrScript)}
}

func (r *Redis) key(key string, window time.Duration) (string, error) {
	idx, err := windowIndex(r.clock.Now(), window)
	if err != nil {
		return "", err
	}
	return r.prefix + key + ":" + strconv.FormatInt(idx, 10), nil
}

// Incr adds n to key's counter in the current window and returns the new
// count, atomically across nodes.
func (r *Redis) Incr(ctx context.Context, key string, n int64, window time.Duration) (int64, error) {
	k, err := r.key(key, window)
	if err != nil {
		return 0, err
	}
	ttl := (2 * window).Milliseconds()
	if ttl < 1 {
		ttl = 1
	}
	v, err := r.incr.Run(ctx, r.client, []string{k}, n, ttl).Int64()
	if err != nil {
		return 0, fmt.Errorf("ratelimit: redis incr: %w", err)
	}
	return v, nil
}

// Count returns key's count in the current window.
func (r *Redis) Count(ctx context.Context, key string, window time.Duration) (int64, error) {
	k, err := r.key(key, window)
	if err != nil {
		return 0, err
	}
	v, err := r.client.Get(ctx, k).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("ratelimit: redis get: %w", err)
	}
	return v, nil
}

// Reset clears key's counter in the current window.
func (r *Redis) Reset(ctx context.Context, key string, window time.Duration) error {
	k, err := r.key(key, window)
	if err != nil {
		return err
	}
	if err := r.client.Del(ctx, k).Err(); err != nil {
		return fmt.Errorf("ratelimit: redis del: %w", err)
	}
	return nil
}
