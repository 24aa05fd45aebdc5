package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/testenv"
)

// start is aligned to a minute so window boundaries are easy to reason
// about.
var start = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// newCounterFunc builds a fresh, empty Counter on clk. Two calls in one
// test share state for implementations where that is the point (Redis with
// the same prefix); see TestRedisNodesShareCounts.
type newCounterFunc func(t *testing.T, clk clock.Clock) Counter

func TestMemory(t *testing.T) {
	runSuite(t, func(t *testing.T, clk clock.Clock) Counter { return NewMemory(clk) })
}

func TestRedis(t *testing.T) {
	client := testenv.Redis(t)
	runSuite(t, func(t *testing.T, clk clock.Clock) Counter {
		return NewRedis(client, clk, testPrefix(t, client))
	})
}

// runSuite is the behaviour every Counter promises.
func runSuite(t *testing.T, newCounter newCounterFunc) {
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T, c Counter, clk *clock.Fake)
	}{
		{"counts per key", func(t *testing.T, c Counter, clk *clock.Fake) {
			mustIncr(t, c, "a", 1, time.Minute, 1)
			mustIncr(t, c, "a", 2, time.Minute, 3)
			mustCount(t, c, "a", time.Minute, 3)
			mustCount(t, c, "b", time.Minute, 0)
			mustIncr(t, c, "b", 1, time.Minute, 1)
			mustCount(t, c, "a", time.Minute, 3)
		}},
		{"window rollover", func(t *testing.T, c Counter, clk *clock.Fake) {
			mustIncr(t, c, "k", 3, time.Minute, 3)
			clk.Advance(59*time.Second + 999*time.Millisecond)
			mustCount(t, c, "k", time.Minute, 3) // still the same window
			mustIncr(t, c, "k", 1, time.Minute, 4)
			clk.Advance(time.Millisecond) // the next window starts
			mustCount(t, c, "k", time.Minute, 0)
			mustIncr(t, c, "k", 1, time.Minute, 1)
			clk.Advance(5 * time.Minute)
			mustCount(t, c, "k", time.Minute, 0)
		}},
		{"windows of different keys are independent of length", func(t *testing.T, c Counter, clk *clock.Fake) {
			mustIncr(t, c, "short", 1, time.Second, 1)
			mustIncr(t, c, "long", 1, time.Hour, 1)
			clk.Advance(2 * time.Second)
			mustCount(t, c, "short", time.Second, 0)
			mustCount(t, c, "long", time.Hour, 1)
		}},
		{"reset clears the key's current window only", func(t *testing.T, c Counter, clk *clock.Fake) {
			mustIncr(t, c, "r", 5, time.Minute, 5)
			mustIncr(t, c, "other", 4, time.Minute, 4)
			if err := c.Reset(ctx, "r", time.Minute); err != nil {
				t.Fatal(err)
			}
			mustCount(t, c, "r", time.Minute, 0)
			mustCount(t, c, "other", time.Minute, 4)
			mustIncr(t, c, "r", 1, time.Minute, 1)
			if err := c.Reset(ctx, "never-counted", time.Minute); err != nil {
				t.Fatalf("Reset of an unknown key: %v", err)
			}
		}},
		{"non-positive window is an error", func(t *testing.T, c Counter, clk *clock.Fake) {
			for _, w := range []time.Duration{0, -time.Second} {
				if _, err := c.Incr(ctx, "x", 1, w); err == nil {
					t.Errorf("Incr with window %v: no error", w)
				}
				if _, err := c.Count(ctx, "x", w); err == nil {
					t.Errorf("Count with window %v: no error", w)
				}
				if err := c.Reset(ctx, "x", w); err == nil {
					t.Errorf("Reset with window %v: no error", w)
				}
			}
		}},
		{"concurrent increments are all counted", func(t *testing.T, c Counter, clk *clock.Fake) {
			const n = 50
			got := make([]int64, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { got[i], errs[i] = c.Incr(ctx, "race", 1, time.Minute) })
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			// Every caller saw a distinct value: no two increments were
			// lost or merged.
			sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
			for i, v := range got {
				if v != int64(i+1) {
					t.Fatalf("returned counts %v, want 1..%d each once", got, n)
				}
			}
			mustCount(t, c, "race", time.Minute, n)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(start)
			tt.run(t, newCounter(t, clk), clk)
		})
	}
}

func TestRedisNodesShareCounts(t *testing.T) {
	client := testenv.Redis(t)
	// Two nodes: separate connections, separate clocks that agree.
	other := redis.NewClient(&redis.Options{Addr: client.Options().Addr})
	t.Cleanup(func() { other.Close() })
	prefix := testPrefix(t, client)
	clkA, clkB := clock.NewFake(start), clock.NewFake(start)
	a := NewRedis(client, clkA, prefix)
	b := NewRedis(other, clkB, prefix)

	mustIncr(t, a, "ip:198.51.100.7", 2, time.Minute, 2)
	mustIncr(t, b, "ip:198.51.100.7", 1, time.Minute, 3)
	mustCount(t, a, "ip:198.51.100.7", time.Minute, 3)
	if err := b.Reset(context.Background(), "ip:198.51.100.7", time.Minute); err != nil {
		t.Fatal(err)
	}
	mustCount(t, a, "ip:198.51.100.7", time.Minute, 0)
}

func TestRedisKeysExpire(t *testing.T) {
	client := testenv.Redis(t)
	prefix := testPrefix(t, client)
	c := NewRedis(client, clock.NewFake(start), prefix)
	mustIncr(t, c, "e", 1, time.Minute, 1)
	keys, err := client.Keys(context.Background(), prefix+"*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys = %v, %v; want one", keys, err)
	}
	ttl, err := client.PTTL(context.Background(), keys[0]).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > 2*time.Minute {
		t.Fatalf("PTTL = %v, want in (0, 2m]", ttl)
	}
}

func TestMemorySweepsEndedWindows(t *testing.T) {
	clk := clock.NewFake(start)
	m := NewMemory(clk)
	ctx := context.Background()
	for i := range 1000 {
		if _, err := m.Incr(ctx, fmt.Sprintf("ip:%d", i), 1, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.size(); got != 1000 {
		t.Fatalf("size = %d, want 1000", got)
	}
	clk.Advance(sweepEvery)
	mustIncr(t, m, "fresh", 1, time.Second, 1)
	if got := m.size(); got != 1 {
		t.Fatalf("after a sweep size = %d, want 1 (only the live counter)", got)
	}
}

func (m *Memory) size() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.counts)
}

func mustIncr(t *testing.T, c Counter, key string, n int64, w time.Duration, want int64) {
	t.Helper()
	got, err := c.Incr(context.Background(), key, n, w)
	if err != nil {
		t.Fatalf("Incr(%q): %v", key, err)
	}
	if got != want {
		t.Fatalf("Incr(%q, %d) = %d, want %d", key, n, got, want)
	}
}

func mustCount(t *testing.T, c Counter, key string, w time.Duration, want int64) {
	t.Helper()
	got, err := c.Count(context.Background(), key, w)
	if err != nil {
		t.Fatalf("Count(%q): %v", key, err)
	}
	if got != want {
		t.Fatalf("Count(%q) = %d, want %d", key, got, want)
	}
}

// testPrefix returns a random key prefix and deletes its keys when the test
// ends, so runs never see each other's counters.
func testPrefix(t *testing.T, client *redis.Client) string {
	t.Helper()
	b := make([]byte, 8)
	rand.Read(b)
	prefix := "moat-test:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := client.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("cleaning up %s*: %v", prefix, err)
		}
	})
	return prefix
}
