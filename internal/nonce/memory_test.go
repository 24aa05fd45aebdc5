package nonce

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestMemoryTracker(t *testing.T) {
	runTrackerSuite(t, func(t *testing.T, maxSeen int) Tracker { return NewMemory(maxSeen) })
}

func TestMemoryCounter(t *testing.T) {
	runCounterSuite(t, func(t *testing.T) Counter { return NewMemoryCounter() })
}

// Idle counters are swept, so distinct client addresses do not pile up.
func TestMemoryCounterSweeps(t *testing.T) {
	c := NewMemoryCounter()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	l := Limit{Max: 10, DecayPerSecond: 1}
	for i := range 3 * shards * sweepEvery {
		if _, err := c.Add(context.Background(), fmt.Sprint(i), 1, l, t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for i := range c.shard {
		n += len(c.shard[i].m)
	}
	if n > shards*sweepEvery {
		t.Fatalf("%d counters kept", n)
	}
}

func TestMemoryForget(t *testing.T) {
	m := NewMemory(0)
	ctx := context.Background()
	_ = m.CheckAndSet(ctx, "k", 10, 0)
	m.Forget("k")
	if err := m.CheckAndSet(ctx, "k", 5, 0); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkMemoryCheckAndSet(b *testing.B) {
	m := NewMemory(0)
	ctx := context.Background()
	b.ReportAllocs()
	var n uint64
	for b.Loop() {
		n++
		if err := m.CheckAndSet(ctx, "key", n, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// Reading a counter that does not exist (the lockout check on every call)
// stores nothing.
func TestMemoryCounterReadCreatesNothing(t *testing.T) {
	c := NewMemoryCounter()
	d, err := c.Add(context.Background(), "lockout:192.0.2.1", 0, Limit{Max: 9, DecayPerSecond: 1}, time.Now())
	if err != nil || !d.Allowed {
		t.Fatalf("%+v %v", d, err)
	}
	for i := range c.shard {
		if len(c.shard[i].m) != 0 {
			t.Fatal("a read created a counter")
		}
	}
}
