package nonce

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/moat-dev/moat/internal/testenv"
)

// testRedis connects to MOAT_TEST_REDIS_ADDR and returns a client and a
// random key prefix whose keys are deleted when the test ends.
func testRedis(t *testing.T) (*redis.Client, string) {
	t.Helper()
	addr := testenv.RedisAddr(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis at %s: %v", addr, err)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	prefix := "moat-test-" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		rdb.Close()
	})
	return rdb, prefix
}

func TestRedisTracker(t *testing.T) {
	rdb, prefix := testRedis(t)
	i := 0
	runTrackerSuite(t, func(t *testing.T, maxSeen int) Tracker {
		i++
		return NewRedis(rdb, prefix+string(rune('a'+i%26))+hex.EncodeToString([]byte{byte(i)})+":", maxSeen)
	})
}

func TestRedisCounter(t *testing.T) {
	rdb, prefix := testRedis(t)
	i := 0
	runCounterSuite(t, func(t *testing.T) Counter {
		i++
		return NewRedisCounter(rdb, prefix+hex.EncodeToString([]byte{byte(i)})+":")
	})
}

// Two nodes share one Redis: a nonce accepted by one is refused by the other,
// and so is a stale one; rate counters are shared the same way.
func TestRedisTwoNodes(t *testing.T) {
	addr := testenv.RedisAddr(t)
	_, prefix := testRedis(t)
	ctx := context.Background()
	node := func() (*Redis, *RedisCounter) {
		c := redis.NewClient(&redis.Options{Addr: addr}) // a connection of its own, like another process
		t.Cleanup(func() { c.Close() })
		return NewRedis(c, prefix, 0), NewRedisCounter(c, prefix)
	}
	a, ca := node()
	b, cb := node()

	if err := a.CheckAndSet(ctx, "key1", 1616492376594, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.CheckAndSet(ctx, "key1", 1616492376594, 0); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay on node b: %v", err)
	}
	if err := b.CheckAndSet(ctx, "key1", 1616492376500, 0); !errors.Is(err, ErrStale) {
		t.Fatalf("stale on node b: %v", err)
	}
	if err := b.CheckAndSet(ctx, "key1", 1616492376600, 0); err != nil {
		t.Fatal(err)
	}
	if err := a.CheckAndSet(ctx, "key1", 1616492376600, 0); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay on node a: %v", err)
	}

	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	l := Limit{Max: 15, DecayPerSecond: 0.33}
	for i := range 15 {
		c := Counter(ca)
		if i%2 == 1 {
			c = cb
		}
		if d, err := c.Add(ctx, "key1", 1, l, now); err != nil || !d.Allowed {
			t.Fatalf("call %d: %+v %v", i, d, err)
		}
	}
	if d, _ := cb.Add(ctx, "key1", 1, l, now); d.Allowed {
		t.Fatal("16th call across nodes allowed")
	}

	if err := a.Forget(ctx, "key1"); err != nil {
		t.Fatal(err)
	}
	if err := b.CheckAndSet(ctx, "key1", 1, 0); err != nil {
		t.Fatalf("after Forget: %v", err)
	}
}

// Idle counters expire in Redis once decayed.
func TestRedisCounterExpires(t *testing.T) {
	rdb, prefix := testRedis(t)
	c := NewRedisCounter(rdb, prefix)
	ctx := context.Background()
	if _, err := c.Add(ctx, "k", 2, Limit{Max: 10, DecayPerSecond: 1}, time.Now()); err != nil {
		t.Fatal(err)
	}
	ttl, err := rdb.PTTL(ctx, prefix+"rate:{k}").Result()
	if err != nil || ttl <= 0 || ttl > 3100*time.Millisecond {
		t.Fatalf("ttl %v, %v; want about 3 s", ttl, err)
	}
}

func TestRedisCounterReadCreatesNothing(t *testing.T) {
	rdb, prefix := testRedis(t)
	c := NewRedisCounter(rdb, prefix)
	ctx := context.Background()
	d, err := c.Add(ctx, "lockout:192.0.2.1", 0, Limit{Max: 9, DecayPerSecond: 1}, time.Now())
	if err != nil || !d.Allowed {
		t.Fatalf("%+v %v", d, err)
	}
	if n, _ := rdb.Exists(ctx, prefix+"rate:{lockout:192.0.2.1}").Result(); n != 0 {
		t.Fatal("a read created a counter")
	}
}
