package nonce

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// runTrackerSuite is the one set of tests every Tracker passes.
func runTrackerSuite(t *testing.T, newTracker func(t *testing.T, maxSeen int) Tracker) {
	ctx := context.Background()
	type step struct {
		n, w uint64
		want error
	}
	run := func(t *testing.T, tr Tracker, key string, steps []step) {
		t.Helper()
		for i, s := range steps {
			if err := tr.CheckAndSet(ctx, key, s.n, s.w); !errors.Is(err, s.want) || (s.want == nil && err != nil) {
				t.Fatalf("step %d: CheckAndSet(%d, window %d) = %v, want %v", i, s.n, s.w, err, s.want)
			}
		}
	}

	t.Run("strictly increasing", func(t *testing.T) {
		run(t, newTracker(t, 0), "k", []step{
			{0, 0, ErrReplayed}, // the mark starts at 0, so 0 is never fresh
			{1616492376594, 0, nil},
			{1616492376594, 0, ErrReplayed},
			{1616492376593, 0, ErrStale},
			{1, 0, ErrStale},
			{1616492376595, 0, nil},
			{1616492376594, 0, ErrStale},
		})
	})
	t.Run("keys are independent", func(t *testing.T) {
		tr := newTracker(t, 0)
		run(t, tr, "a", []step{{10, 0, nil}})
		run(t, tr, "b", []step{{5, 0, nil}, {10, 0, nil}})
		run(t, tr, "a", []step{{10, 0, ErrReplayed}, {11, 0, nil}})
	})
	t.Run("above 2^53", func(t *testing.T) {
		// Doubles cannot tell these apart; the trackers must.
		run(t, newTracker(t, 0), "k", []step{
			{1<<53 + 1, 0, nil},
			{1 << 53, 0, ErrStale},
			{1<<53 + 1, 0, ErrReplayed},
			{1<<53 + 2, 0, nil},
			{170000000000000001, 0, nil}, // python-kraken-sdk's time×1e8
			{170000000000000000, 0, ErrStale},
		})
	})
	t.Run("max uint64", func(t *testing.T) {
		run(t, newTracker(t, 0), "k", []step{
			{math.MaxUint64 - 1, 10, nil},
			{math.MaxUint64 - 5, 10, nil}, // n+window overflows 64 bits
			{math.MaxUint64 - 5, 10, ErrReplayed},
			{math.MaxUint64, 0, nil},
			{math.MaxUint64, 0, ErrReplayed},
			{math.MaxUint64 - 2, 10, ErrStale}, // strict mode left nothing open below the mark
		})
	})
	t.Run("window", func(t *testing.T) {
		run(t, newTracker(t, 0), "k", []step{
			{100, 10, nil},
			{95, 10, nil},
			{95, 10, ErrReplayed},
			{90, 10, ErrStale}, // 100-90 = 10 is outside a window of 10
			{91, 10, nil},
			{100, 10, ErrReplayed},
			{105, 10, nil},
			{96, 10, nil},
			{95, 10, ErrStale}, // now 10 below 105
			{91, 10, ErrStale},
			{104, 10, nil},
			{104, 10, ErrReplayed},
		})
	})
	t.Run("window enabled after strict use", func(t *testing.T) {
		// Strict mode does not remember which nonces below the mark it saw,
		// so switching a window on must not re-open them.
		run(t, newTracker(t, 0), "k", []step{
			{100, 0, nil}, {101, 0, nil},
			{100, 10, ErrStale}, {101, 10, ErrStale}, {99, 10, ErrStale},
			{105, 10, nil}, {103, 10, nil}, {102, 10, nil}, {103, 10, ErrReplayed},
			{106, 0, nil}, {104, 10, ErrStale}, {107, 10, nil},
		})
	})
	t.Run("bounded memory never re-opens a nonce", func(t *testing.T) {
		run(t, newTracker(t, 3), "k", []step{
			{100, 1000, nil}, {99, 1000, nil}, {98, 1000, nil},
			{97, 1000, nil}, // four seen: the oldest (97) is forgotten and becomes the floor
			{97, 1000, ErrStale},
			{96, 1000, ErrStale},
			{98, 1000, ErrReplayed},
			{150, 1000, nil}, // seen 98 99 100 150 → 98 forgotten
			{98, 1000, ErrStale},
			{99, 1000, ErrReplayed},
			{120, 1000, nil},
		})
	})
	t.Run("random sequences against a model", func(t *testing.T) {
		tr := newTracker(t, 10000)
		r := rand.New(rand.NewPCG(7, 7))
		n := 3000
		if testing.Short() {
			n = 500
		}
		for k := 0; k < 4; k++ {
			key := string(rune('a' + k))
			window := []uint64{0, 1, 5, 50}[k]
			accepted := map[uint64]bool{}
			var high uint64
			for i := 0; i < n; i++ {
				v := uint64(1000 + i/2 + r.IntN(60)) // drifts upwards, often out of order
				err := tr.CheckAndSet(ctx, key, v, window)
				want := !accepted[v] && (v > high || (window > 0 && high-v < window))
				if (err == nil) != want {
					t.Fatalf("key %s window %d: nonce %d (high %d, seen %v) → %v, want accepted=%v", key, window, v, high, accepted[v], err, want)
				}
				if err == nil {
					accepted[v] = true
					high = max(high, v)
				}
			}
		}
	})
	for _, window := range []uint64{0, 1000} {
		t.Run("50 concurrent requests with one nonce", func(t *testing.T) {
			tr := newTracker(t, 0)
			if window > 0 {
				run(t, tr, "k", []step{{5000, window, nil}})
			}
			for round, n := range []uint64{7777, 7776, 9000} {
				var wg sync.WaitGroup
				var mu sync.Mutex
				wins, other := 0, 0
				for range 50 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						err := tr.CheckAndSet(ctx, "k", n, window)
						mu.Lock()
						defer mu.Unlock()
						switch {
						case err == nil:
							wins++
						case errors.Is(err, ErrReplayed) || errors.Is(err, ErrStale):
						default:
							other++
						}
					}()
				}
				wg.Wait()
				want := 1
				if window == 0 && round == 1 {
					want = 0 // 7776 < 7777 in strict mode
				}
				if wins != want || other != 0 {
					t.Fatalf("window %d nonce %d: %d winners, %d odd errors; want %d winner", window, n, wins, other, want)
				}
			}
		})
	}
}

// runCounterSuite is the one set of tests every Counter passes.
func runCounterSuite(t *testing.T, newCounter func(t *testing.T) Counter) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	starter := Limit{Max: 15, DecayPerSecond: 0.33}
	add := func(t *testing.T, c Counter, key string, cost float64, l Limit, now time.Time) Decision {
		t.Helper()
		d, err := c.Add(ctx, key, cost, l, now)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	t.Run("kraken starter tier", func(t *testing.T) {
		c := newCounter(t)
		for i := 1; i <= 15; i++ {
			if d := add(t, c, "k", 1, starter, t0); !d.Allowed || d.Level != float64(i) {
				t.Fatalf("call %d: %+v", i, d)
			}
		}
		if d := add(t, c, "k", 1, starter, t0); d.Allowed {
			t.Fatalf("16th call allowed: %+v", d)
		}
		// One call's worth decays in 1/0.33 s ≈ 3.03 s.
		if d := add(t, c, "k", 1, starter, t0.Add(3*time.Second)); d.Allowed {
			t.Fatalf("allowed after 3 s: %+v", d)
		}
		if d := add(t, c, "k", 1, starter, t0.Add(3100*time.Millisecond)); !d.Allowed {
			t.Fatalf("refused after 3.1 s: %+v", d)
		}
		// A ledger query costs 2 and needs two calls' worth of room.
		if d := add(t, c, "k", 2, starter, t0.Add(6200*time.Millisecond)); d.Allowed {
			t.Fatalf("cost 2 allowed with one call of room: %+v", d)
		}
		if d := add(t, c, "k", 2, starter, t0.Add(9300*time.Millisecond)); !d.Allowed {
			t.Fatalf("cost 2 refused with two calls of room: %+v", d)
		}
		// After a long pause the counter is empty again.
		if d := add(t, c, "k", 0, starter, t0.Add(time.Hour)); !d.Allowed || d.Level != 0 {
			t.Fatalf("after an hour: %+v", d)
		}
	})
	t.Run("tiers decay at their rate", func(t *testing.T) {
		c := newCounter(t)
		pro := Limit{Max: 20, DecayPerSecond: 1}
		for range 20 {
			add(t, c, "k", 1, pro, t0)
		}
		d := add(t, c, "k", 0, pro, t0.Add(5*time.Second))
		if d.Level < 14.99 || d.Level > 15.01 {
			t.Fatalf("level after 5 s at 1/s = %v, want 15", d.Level)
		}
	})
	t.Run("cost 0 reads", func(t *testing.T) {
		c := newCounter(t)
		add(t, c, "k", 3, starter, t0)
		for range 5 {
			if d := add(t, c, "k", 0, starter, t0); !d.Allowed || d.Level != 3 {
				t.Fatalf("peek: %+v", d)
			}
		}
	})
	t.Run("clock going backwards does not add room", func(t *testing.T) {
		c := newCounter(t)
		add(t, c, "k", 15, starter, t0)
		if d := add(t, c, "k", 1, starter, t0.Add(-time.Minute)); d.Allowed || d.Level != 15 {
			t.Fatalf("earlier clock: %+v", d)
		}
	})
	t.Run("lock", func(t *testing.T) {
		c := newCounter(t)
		l := Limit{Max: 2, DecayPerSecond: 1.0 / 60, LockFor: 15 * time.Minute}
		add(t, c, "ip", 1, l, t0)
		add(t, c, "ip", 1, l, t0)
		d := add(t, c, "ip", 1, l, t0)
		if d.Allowed || !d.LockedUntil.Equal(t0.Add(15*time.Minute)) {
			t.Fatalf("third failure: %+v", d)
		}
		// Locked even for reads, and even after the level decayed.
		if d := add(t, c, "ip", 0, l, t0.Add(14*time.Minute)); d.Allowed || d.LockedUntil.IsZero() {
			t.Fatalf("during lock: %+v", d)
		}
		if d := add(t, c, "ip", 0, l, t0.Add(15*time.Minute)); !d.Allowed || !d.LockedUntil.IsZero() {
			t.Fatalf("after lock: %+v", d)
		}
		if d := add(t, c, "other", 0, l, t0); !d.Allowed {
			t.Fatal("lock leaked to another key")
		}
	})
	t.Run("concurrent calls are counted exactly", func(t *testing.T) {
		c := newCounter(t)
		var wg sync.WaitGroup
		var mu sync.Mutex
		allowed := 0
		for range 60 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, err := c.Add(ctx, "k", 1, starter, t0)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if allowed != 15 {
			t.Fatalf("%d of 60 concurrent calls allowed, want 15", allowed)
		}
	})
}
