package audit_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

// fakeStore is the audit part of store.Queries, in memory, for tests that
// run without a database. Calling any other Queries method panics (nil
// embedded interface).
type fakeStore struct {
	store.Queries
	mu     sync.Mutex
	events []store.AuditEvent
}

func (f *fakeStore) AppendAudit(_ context.Context, build func(last store.AuditEvent) (store.AuditEvent, error)) (store.AuditEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var last store.AuditEvent
	if n := len(f.events); n > 0 {
		last = f.events[n-1]
	}
	e, err := build(last)
	if err != nil {
		return store.AuditEvent{}, err
	}
	e.Seq = last.Seq + 1
	f.events = append(f.events, e)
	return e, nil
}

func (f *fakeStore) ListAudit(_ context.Context, flt store.AuditFilter) ([]store.AuditEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sorted := slices.Clone(f.events)
	slices.SortFunc(sorted, func(a, b store.AuditEvent) int { return int(a.Seq - b.Seq) })
	var out []store.AuditEvent
	for _, e := range sorted {
		if e.Seq <= flt.AfterSeq || (flt.AccountID != "" && e.AccountID != flt.AccountID) {
			continue
		}
		out = append(out, e)
		if flt.Limit > 0 && len(out) == flt.Limit {
			break
		}
	}
	return out, nil
}

// The tamper methods play an attacker with write access to the database.

func (f *fakeStore) set(t *testing.T, seq int64, column string, value any) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.index(t, seq)
	e := &f.events[i]
	switch column {
	case "data":
		e.Data = value.(string)
	case "event_type":
		e.Type = value.(string)
	case "ip":
		e.IP = value.(string)
	case "occurred_at":
		e.Time = time.UnixMicro(value.(int64)).UTC()
	default:
		t.Fatalf("fake: unknown column %q", column)
	}
}

func (f *fakeStore) remove(t *testing.T, seq int64) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.index(t, seq)
	f.events = slices.Delete(f.events, i, i+1)
}

func (f *fakeStore) swapSeq(t *testing.T, a, b int64) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	i, j := f.index(t, a), f.index(t, b)
	f.events[i].Seq, f.events[j].Seq = b, a
}

func (f *fakeStore) index(t *testing.T, seq int64) int {
	t.Helper()
	for i, e := range f.events {
		if e.Seq == seq {
			return i
		}
	}
	t.Fatalf("fake: no event %d", seq)
	return -1
}
