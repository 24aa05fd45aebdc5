package server

import (
	"context"
	"log/slog"
	"sync"
)

// background runs work that must not hold up (or show in the timing of)
// the request that caused it: today, the database work of a password-reset
// request, which differs between an address with an account and one
// without while the answer must not. A few workers take tasks from a
// bounded queue; when the queue is full a task runs in the caller, so a
// flood degrades to the inline behaviour instead of growing memory. Tasks
// are not durable: a process that dies with tasks queued loses them (the
// person asks again, as for a lost e-mail).
type background struct {
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger
	tasks  chan func(context.Context)

	mu     sync.RWMutex // guards closed against Run sending on a closed channel
	closed bool
	wg     sync.WaitGroup
}

// Sizes of the pool: resets are rare, and each task is one short
// transaction.
const (
	backgroundWorkers = 4
	backgroundQueue   = 256
)

func newBackground(log *slog.Logger) *background {
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{ctx: ctx, cancel: cancel, log: log, tasks: make(chan func(context.Context), backgroundQueue)}
	for range backgroundWorkers {
		b.wg.Go(func() {
			for task := range b.tasks {
				b.run(task)
			}
		})
	}
	return b
}

// Run queues task, or runs it now when the queue is full or the pool is
// closed.
func (b *background) Run(task func(context.Context)) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.closed {
		select {
		case b.tasks <- task:
			return
		default:
		}
	}
	b.run(task)
}

func (b *background) run(task func(context.Context)) {
	defer func() {
		if p := recover(); p != nil {
			b.log.Error("background task panicked", "panic", p)
		}
	}()
	task(b.ctx)
}

// Close lets the queued tasks finish, then stops the workers. Call it
// before closing what the tasks use (the store).
func (b *background) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	close(b.tasks)
	b.mu.Unlock()
	b.wg.Wait()
	b.cancel()
}
