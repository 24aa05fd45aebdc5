package server

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
)

// TestBackground: every task runs exactly once, queued or (when the queue
// is full) inline; Close waits for the queue; after Close tasks still run
// (inline) rather than being dropped; a panicking task does not take the
// pool down.
func TestBackground(t *testing.T) {
	b := newBackground(slog.New(slog.DiscardHandler))
	var ran atomic.Int64
	block := make(chan struct{})
	var once sync.Once
	// Occupy every worker, then overfill the queue.
	for range backgroundWorkers {
		b.Run(func(context.Context) { <-block; ran.Add(1) })
	}
	b.Run(func(context.Context) { panic("boom") })
	const extra = backgroundQueue + 50
	for range extra {
		b.Run(func(context.Context) { ran.Add(1) })
	}
	once.Do(func() { close(block) })
	b.Close()
	if got, want := ran.Load(), int64(backgroundWorkers+extra); got != want {
		t.Fatalf("ran %d tasks, want %d", got, want)
	}
	b.Run(func(ctx context.Context) { ran.Add(1) })
	if got := ran.Load(); got != int64(backgroundWorkers+extra+1) {
		t.Fatalf("a task after Close did not run: %d", got)
	}
	b.Close() // twice is fine
}
