// Package mfatest helps test internal/mfa and the adapters over it against
// the real store: OpenStore gives a migrated SQLite store in a temporary
// file, and Recorder writes the service's events into that store's audit
// log through the transaction it is handed, so a test sees exactly the
// events whose change committed (an event recorded in a transaction that
// rolls back is gone with it).
package mfatest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"sync"
	"testing"

	"github.com/moat-dev/moat/internal/audit"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/mfa"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/sqlite"
)

// OpenStore returns a migrated SQLite store on a new file in t.TempDir(),
// closed when t ends.
func OpenStore(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.OpenAndMigrate(context.Background(), filepath.Join(t.TempDir(), "moat.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// refKey is the audit data key that points back at the recorded mfa.Event.
const refKey = "mfatest_ref"

// Recorder is an mfa.Recorder over the real audit log (audit.Log.Append,
// which also refuses data keys that name secrets). Each audit entry carries
// a reference to the mfa.Event it records, which the Recorder keeps, so
// Events returns the events exactly as the service passed them (the audit
// log's JSON would turn their numbers into float64).
type Recorder struct {
	// Fail, when set, is returned by Record instead of writing (to test
	// that a failed audit write undoes the change).
	Fail error

	log    *audit.Log
	mu     sync.Mutex
	events []mfa.Event // reference n is events[n-1]
}

var _ mfa.Recorder = (*Recorder)(nil)

// NewRecorder returns a Recorder whose audit entries are stamped by clk.
func NewRecorder(clk clock.Clock) *Recorder {
	return &Recorder{log: audit.New(clk)}
}

// Record appends ev to the audit log through q.
func (r *Recorder) Record(ctx context.Context, q store.Queries, ev mfa.Event) error {
	if r.Fail != nil {
		return r.Fail
	}
	r.mu.Lock()
	r.events = append(r.events, ev)
	ref := len(r.events)
	r.mu.Unlock()
	data := maps.Clone(ev.Data)
	if data == nil {
		data = map[string]any{}
	}
	data[refKey] = ref
	_, err := r.log.Append(ctx, q, audit.Event{
		Type: ev.Type, AccountID: ev.AccountID, IP: ev.Client.IP, UserAgent: ev.Client.UserAgent, Data: data,
	})
	return err
}

// Events returns the events in q's audit log that this Recorder wrote,
// oldest first: those whose transaction committed.
func (r *Recorder) Events(ctx context.Context, q store.Queries) ([]mfa.Event, error) {
	entries, err := q.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []mfa.Event
	for _, e := range entries {
		var d struct {
			Ref int `json:"mfatest_ref"`
		}
		if err := json.Unmarshal([]byte(e.Data), &d); err != nil {
			return nil, fmt.Errorf("mfatest: audit entry %d: %w", e.Seq, err)
		}
		if d.Ref < 1 || d.Ref > len(r.events) {
			continue // not written by this Recorder
		}
		out = append(out, r.events[d.Ref-1])
	}
	return out, nil
}
