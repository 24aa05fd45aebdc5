// Package audit writes moat's append-only, hash-chained audit log and checks
// the chain. Each event's hash covers its content and the previous event's
// hash, so changing, removing or reordering any stored event breaks every
// link after it.
//
// The chain proves integrity against anyone who can edit rows but does not
// rewrite every later hash. Someone with database access could recompute
// the whole tail; to catch that, record Report.HeadHash somewhere the
// database cannot reach (a log shipper, a ticket, a printout) and compare
// it with a later run of Verify.
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/store"
)

// Event is what a service records. Data must never hold a password, token,
// code or secret: the log is read by support staff and exported, and it
// cannot be edited afterwards (that is its point), so a secret written
// there stays there. Append refuses Data keys that name such values (see
// forbiddenKeys) as a safety net, not as a licence to rely on it.
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

// forbiddenKeys are Data keys (compared case-insensitively, at any depth)
// that name secrets. Append refuses them so a careless caller fails in its
// tests instead of writing a secret into a log that cannot be edited.
var forbiddenKeys = map[string]bool{
	"password": true, "new_password": true, "old_password": true,
	"secret": true, "api_secret": true, "totp_secret": true,
	"token": true, "session_token": true, "reset_token": true,
	"code": true, "otp": true, "backup_code": true,
}

// Append writes ev through q (pass the transaction's Queries so the event
// commits with the change it records) and returns the stored event.
//
// The stored event's Time is the clock's now in UTC, truncated to
// microseconds so that every store returns exactly what was hashed. Data is
// stored as canonical JSON (object keys sorted). Seq is assigned by the
// store as last.Seq+1; build sets the same value itself so that the hash
// covers the sequence number (a store that assigned a different Seq would
// make the event fail Verify, which is what we want).
func (l *Log) Append(ctx context.Context, q store.Queries, ev Event) (store.AuditEvent, error) {
	if ev.Type == "" {
		return store.AuditEvent{}, errors.New("audit: event type is required")
	}
	data, err := canonicalData(ev.Data)
	if err != nil {
		return store.AuditEvent{}, err
	}
	now := l.clock.Now().UTC().Truncate(time.Microsecond)
	return q.AppendAudit(ctx, func(last store.AuditEvent) (store.AuditEvent, error) {
		e := store.AuditEvent{
			Seq:       last.Seq + 1,
			Time:      now,
			Type:      ev.Type,
			AccountID: ev.AccountID,
			ActorID:   ev.ActorID,
			IP:        ev.IP,
			UserAgent: ev.UserAgent,
			DeviceID:  ev.DeviceID,
			Data:      data,
			PrevHash:  bytes.Clone(last.Hash),
		}
		e.Hash = ComputeHash(e)
		return e, nil
	})
}

// canonicalData encodes d as JSON with sorted keys ("{}" when empty) after
// checking it names no secret.
func canonicalData(d map[string]any) (string, error) {
	if len(d) == 0 {
		return "{}", nil
	}
	// encoding/json writes map keys sorted, at every depth, so equal maps
	// always encode to equal strings.
	b, err := json.Marshal(d)
	if err != nil {
		return "", fmt.Errorf("audit: encode data: %w", err)
	}
	// Check the keys on the decoded form so nested structs and typed maps
	// are covered too.
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		return "", fmt.Errorf("audit: encode data: %w", err)
	}
	if err := checkKeys(generic); err != nil {
		return "", err
	}
	return string(b), nil
}

func checkKeys(v any) error {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if forbiddenKeys[strings.ToLower(k)] {
				return fmt.Errorf("audit: data key %q names a secret; secrets never go in the audit log", k)
			}
			if err := checkKeys(x); err != nil {
				return err
			}
		}
	case []any:
		for _, x := range v {
			if err := checkKeys(x); err != nil {
				return err
			}
		}
	}
	return nil
}

// hashDomain separates these hashes from any other SHA-256 use and names
// the encoding version.
const hashDomain = "moat-audit-v1"

// ComputeHash returns the SHA-256 of a canonical encoding of ev's Seq, Time
// (Unix microseconds), Type, AccountID, ActorID, IP, UserAgent, DeviceID,
// Data and PrevHash. Integers are 8 bytes big-endian; every string and byte
// field is preceded by its length (8 bytes big-endian), so no two distinct
// events encode the same way (moving bytes between adjacent fields changes
// the lengths). ev.Hash is ignored.
func ComputeHash(ev store.AuditEvent) []byte {
	h := sha256.New()
	var n [8]byte
	writeInt := func(v int64) {
		binary.BigEndian.PutUint64(n[:], uint64(v))
		h.Write(n[:])
	}
	writeBytes := func(b []byte) {
		writeInt(int64(len(b)))
		h.Write(b)
	}
	writeBytes([]byte(hashDomain))
	writeInt(ev.Seq)
	writeInt(ev.Time.UnixMicro())
	for _, s := range []string{ev.Type, ev.AccountID, ev.ActorID, ev.IP, ev.UserAgent, ev.DeviceID, ev.Data} {
		writeBytes([]byte(s))
	}
	writeBytes(ev.PrevHash)
	return h.Sum(nil)
}

// Report is the result of Verify.
type Report struct {
	// Checked is how many events were checked (including the broken one,
	// if any).
	Checked int64
	// OK is true when every link holds.
	OK bool
	// BrokenSeq is the Seq of the first event whose hash or link is wrong.
	BrokenSeq int64
	// Reason says what is wrong with it.
	Reason string
	// HeadSeq and HeadHash identify the last event of an intact chain
	// (zero for an empty log). Keep them outside the database to detect a
	// later rewrite of the whole chain.
	HeadSeq  int64
	HeadHash []byte
}

// verifyPage is how many events Verify reads per query.
const verifyPage = 1000

// Verify walks the whole chain in pages and reports the first broken link:
// an event whose Seq is not the previous Seq+1 (a removed or reordered
// event), whose PrevHash is not the previous event's Hash, or whose Hash
// does not match its content. The first event must have Seq 1 and an empty
// PrevHash. An error means the log could not be read, not that it is
// broken.
func Verify(ctx context.Context, q store.Queries) (Report, error) {
	var r Report
	var prev store.AuditEvent // zero: the chain starts at Seq 1 with no PrevHash
	for {
		page, err := q.ListAudit(ctx, store.AuditFilter{AfterSeq: prev.Seq, Limit: verifyPage})
		if err != nil {
			return Report{}, fmt.Errorf("audit: read log: %w", err)
		}
		for _, ev := range page {
			r.Checked++
			if reason := checkLink(prev, ev); reason != "" {
				r.BrokenSeq, r.Reason = ev.Seq, reason
				return r, nil
			}
			prev = ev
		}
		if len(page) < verifyPage {
			break
		}
	}
	r.OK = true
	r.HeadSeq, r.HeadHash = prev.Seq, prev.Hash
	return r, nil
}

// checkLink returns why ev does not follow prev, or "".
func checkLink(prev, ev store.AuditEvent) string {
	switch {
	case ev.Seq != prev.Seq+1:
		return fmt.Sprintf("sequence gap: event %d follows event %d (an event was removed or moved)", ev.Seq, prev.Seq)
	case !bytes.Equal(ev.PrevHash, prev.Hash):
		return "previous-hash link does not match the previous event's hash"
	case !bytes.Equal(ev.Hash, ComputeHash(ev)):
		return "hash does not match the event's content (the event was changed)"
	}
	return ""
}
