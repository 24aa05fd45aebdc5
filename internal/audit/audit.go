// Package audit writes moat's append-only, hash-chained audit log and checks
// the chain. Each event's hash covers its content and the previous event's
// hash, so changing, removing or reordering any stored event breaks every
// link after it.
package audit

import (
	"context"
	"errors"

	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/store"
)

// Event is what a service records. Data must never hold a password, token,
// code or secret.
type Event struct {
	Type      string
	AccountID string
	ActorID   string
	IP        string
	UserAgent string
	DeviceID  string
	Data      map[string]any
}

// Log appends events.
type Log struct {
	clock clock.Clock
}

// New returns a Log that stamps events with clk.
func New(clk clock.Clock) *Log { return &Log{clock: clk} }

// Append writes ev through q (pass the transaction's Queries so the event
// commits with the change it records) and returns the stored event.
func (l *Log) Append(ctx context.Context, q store.Queries, ev Event) (store.AuditEvent, error) {
	return store.AuditEvent{}, errors.New("audit: not implemented")
}

// Report is the result of Verify.
type Report struct {
	// Checked is how many events were checked.
	Checked int64
	// OK is true when every link holds.
	OK bool
	// BrokenSeq is the Seq of the first event whose hash or link is wrong.
	BrokenSeq int64
	// Reason says what is wrong with it.
	Reason string
}

// Verify walks the whole chain in pages and reports the first broken link.
func Verify(ctx context.Context, q store.Queries) (Report, error) {
	return Report{}, errors.New("audit: not implemented")
}
