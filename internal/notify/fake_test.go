package notify

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

// fakeStore is the outbox part of store.Store in memory, with rollback, for
// tests that run without a database. Any other Store method panics (nil
// embedded interface).
type fakeStore struct {
	store.Store
	mu     sync.Mutex
	outbox map[string]store.OutboxMessage
	order  []string // insertion order (CreatedAt ties)
}

func newFakeStore() *fakeStore { return &fakeStore{outbox: map[string]store.OutboxMessage{}} }

// InTx runs fn against the fake and restores the previous state if fn
// fails. (No isolation: tests using it are single-goroutine.)
func (f *fakeStore) InTx(ctx context.Context, fn func(tx store.Queries) error) error {
	f.mu.Lock()
	saved, savedOrder := maps.Clone(f.outbox), slices.Clone(f.order)
	f.mu.Unlock()
	if err := fn(f); err != nil {
		f.mu.Lock()
		f.outbox, f.order = saved, savedOrder
		f.mu.Unlock()
		return err
	}
	return nil
}

func (f *fakeStore) Close() error { return nil }

func (f *fakeStore) EnqueueOutbox(_ context.Context, m store.OutboxMessage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.outbox[m.ID]; ok {
		return store.ErrAlreadyExists
	}
	f.outbox[m.ID] = m
	f.order = append(f.order, m.ID)
	return nil
}

func (f *fakeStore) ClaimOutbox(_ context.Context, now time.Time, limit int, lease time.Duration) ([]store.OutboxMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.OutboxMessage
	for _, id := range f.order {
		m := f.outbox[id]
		if !m.SentAt.IsZero() || m.NextAttemptAt.IsZero() || m.NextAttemptAt.After(now) {
			continue
		}
		m.NextAttemptAt = now.Add(lease)
		f.outbox[id] = m
		out = append(out, m)
		if len(out) == limit {
			break
		}
	}
	return out, nil
}

func (f *fakeStore) MarkOutboxSent(_ context.Context, id string, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.outbox[id]
	if !ok {
		return store.ErrNotFound
	}
	m.SentAt = at
	f.outbox[id] = m
	return nil
}

func (f *fakeStore) MarkOutboxFailed(_ context.Context, id string, errText string, next time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.outbox[id]
	if !ok {
		return store.ErrNotFound
	}
	m.Attempts++
	m.LastError = errText
	m.NextAttemptAt = next
	f.outbox[id] = m
	return nil
}

func (f *fakeStore) ListOutbox(_ context.Context, channel string, limit int) ([]store.OutboxMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.OutboxMessage
	for _, id := range slices.Backward(f.order) {
		if m := f.outbox[id]; m.Channel == channel {
			out = append(out, m)
			if len(out) == limit {
				break
			}
		}
	}
	return out, nil
}
