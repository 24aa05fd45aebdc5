package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/audit"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/store"
)

// logStore is a store the tests can append to and, playing an attacker
// with write access to the database, tamper with.
type logStore interface {
	store.Queries
	// set overwrites one column of event seq (columns as named in the
	// SQL schema: data, event_type, ip, occurred_at (Unix micros)).
	set(t *testing.T, seq int64, column string, value any)
	remove(t *testing.T, seq int64)
	// swapSeq exchanges the sequence numbers of two events (reordering).
	swapSeq(t *testing.T, a, b int64)
}

// backends are the stores the whole suite runs against.
var backends = []struct {
	name string
	open func(t *testing.T) logStore
}{
	{"fake", func(t *testing.T) logStore { return &fakeStore{} }},
	{"sqlite", openSQLite},
}

// t0 has nanoseconds on purpose: Append must truncate them.
var t0 = time.Date(2030, 3, 4, 5, 6, 7, 891234567, time.UTC)

func forEachBackend(t *testing.T, fn func(t *testing.T, s logStore)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b.open(t)) })
	}
}

// appendN appends n events, one second apart, and returns them as stored.
func appendN(t *testing.T, s store.Queries, n int) []store.AuditEvent {
	t.Helper()
	clk := clock.NewFake(t0)
	l := audit.New(clk)
	var out []store.AuditEvent
	for i := range n {
		ev, err := l.Append(context.Background(), s, audit.Event{
			Type:      "signin.success",
			AccountID: "acct-1",
			IP:        fmt.Sprintf("198.51.100.%d", i%250),
			UserAgent: "Firefox",
			DeviceID:  "dev-1",
			Data:      map[string]any{"n": i, "method": "totp"},
		})
		if err != nil {
			t.Fatalf("Append #%d: %v", i+1, err)
		}
		out = append(out, ev)
		clk.Advance(time.Second)
	}
	return out
}

func verify(t *testing.T, s store.Queries) audit.Report {
	t.Helper()
	r, err := audit.Verify(context.Background(), s)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return r
}

func TestAppendStoresAChain(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s logStore) {
		clk := clock.NewFake(t0)
		l := audit.New(clk)
		ctx := context.Background()
		first, err := l.Append(ctx, s, audit.Event{
			Type: "account.created", AccountID: "a1", ActorID: "staff-9", IP: "203.0.113.5",
			UserAgent: "curl/8", DeviceID: "d1",
			Data: map[string]any{"z": 1, "a": "x", "m": map[string]any{"y": true, "b": nil}},
		})
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
		second, err := l.Append(ctx, s, audit.Event{Type: "signin.success", AccountID: "a1"})
		if err != nil {
			t.Fatal(err)
		}

		if first.Seq != 1 || second.Seq != 2 {
			t.Errorf("Seq = %d, %d; want 1, 2", first.Seq, second.Seq)
		}
		if want := t0.Truncate(time.Microsecond); !first.Time.Equal(want) || first.Time.Location() != time.UTC {
			t.Errorf("Time = %v, want %v in UTC", first.Time, want)
		}
		if want := `{"a":"x","m":{"b":null,"y":true},"z":1}`; first.Data != want {
			t.Errorf("Data = %s, want canonical %s", first.Data, want)
		}
		if second.Data != "{}" {
			t.Errorf("empty Data = %q, want {}", second.Data)
		}
		if len(first.PrevHash) != 0 {
			t.Errorf("first PrevHash = %x, want empty", first.PrevHash)
		}
		if !bytes.Equal(second.PrevHash, first.Hash) {
			t.Errorf("second PrevHash %x != first Hash %x", second.PrevHash, first.Hash)
		}
		if first.Type != "account.created" || first.AccountID != "a1" || first.ActorID != "staff-9" ||
			first.IP != "203.0.113.5" || first.UserAgent != "curl/8" || first.DeviceID != "d1" {
			t.Errorf("stored fields differ from the event: %+v", first)
		}

		// What the store returns hashes to what was written: every field
		// round-trips exactly.
		listed, err := s.ListAudit(ctx, store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(listed) != 2 {
			t.Fatalf("ListAudit returned %d events, want 2", len(listed))
		}
		for _, e := range listed {
			if !bytes.Equal(audit.ComputeHash(e), e.Hash) {
				t.Errorf("event %d: stored hash does not recompute from the stored row", e.Seq)
			}
		}
	})
}

func TestVerify(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s logStore) {
		t.Run("empty log", func(t *testing.T) {
			r := verify(t, s)
			if !r.OK || r.Checked != 0 || r.HeadSeq != 0 {
				t.Fatalf("empty log: %+v", r)
			}
		})
		t.Run("intact chain", func(t *testing.T) {
			evs := appendN(t, s, 5)
			r := verify(t, s)
			if !r.OK || r.Checked != 5 || r.BrokenSeq != 0 || r.Reason != "" {
				t.Fatalf("intact chain: %+v", r)
			}
			if r.HeadSeq != 5 || !bytes.Equal(r.HeadHash, evs[4].Hash) {
				t.Fatalf("head = %d %x, want 5 %x", r.HeadSeq, r.HeadHash, evs[4].Hash)
			}
		})
	})
}

// TestVerifyDetectsTampering attacks the chain the ways someone with
// database access would and checks Verify names the first broken event.
func TestVerifyDetectsTampering(t *testing.T) {
	tests := []struct {
		name       string
		tamper     func(t *testing.T, s logStore)
		wantSeq    int64
		wantReason string
	}{
		// Checked counts events read up to the broken one: the Seq for a
		// changed event, one fewer for a removed one.
		{"changed data", func(t *testing.T, s logStore) {
			s.set(t, 3, "data", `{"method":"totp","n":99}`)
		}, 3, "content"},
		{"changed type", func(t *testing.T, s logStore) {
			s.set(t, 3, "event_type", "signin.failure")
		}, 3, "content"},
		{"changed time", func(t *testing.T, s logStore) {
			s.set(t, 3, "occurred_at", t0.Add(time.Hour).UnixMicro())
		}, 3, "content"},
		{"changed time by one microsecond", func(t *testing.T, s logStore) {
			s.set(t, 3, "occurred_at", t0.Add(2*time.Second).Truncate(time.Microsecond).UnixMicro()+1)
		}, 3, "content"},
		{"changed ip", func(t *testing.T, s logStore) {
			s.set(t, 3, "ip", "192.0.2.66")
		}, 3, "content"},
		{"removed middle event", func(t *testing.T, s logStore) {
			s.remove(t, 3)
		}, 4, "gap"},
		{"removed first event", func(t *testing.T, s logStore) {
			s.remove(t, 1)
		}, 2, "gap"},
		{"reordered events", func(t *testing.T, s logStore) {
			s.swapSeq(t, 3, 4)
		}, 3, "previous-hash"},
	}
	for _, b := range backends {
		for _, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				s := b.open(t)
				appendN(t, s, 5)
				if r := verify(t, s); !r.OK {
					t.Fatalf("before tampering: %+v", r)
				}
				tt.tamper(t, s)
				r := verify(t, s)
				if r.OK {
					t.Fatalf("tampering not detected: %+v", r)
				}
				if r.BrokenSeq != tt.wantSeq || !strings.Contains(r.Reason, tt.wantReason) {
					t.Fatalf("report = %+v, want BrokenSeq %d with reason about %q", r, tt.wantSeq, tt.wantReason)
				}
				wantChecked := tt.wantSeq
				if tt.wantReason == "gap" {
					wantChecked--
				}
				if r.Checked != wantChecked {
					t.Errorf("Checked = %d, want %d", r.Checked, wantChecked)
				}
			})
		}
	}
}

// TestVerifyHeadAnchorsTheTail shows what the chain alone cannot catch
// (removing the newest event leaves a valid, shorter chain) and how the
// recorded head catches it.
func TestVerifyHeadAnchorsTheTail(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s logStore) {
		appendN(t, s, 4)
		before := verify(t, s)
		s.remove(t, 4)
		after := verify(t, s)
		if !after.OK {
			t.Fatalf("truncated chain should still link: %+v", after)
		}
		if after.HeadSeq == before.HeadSeq || bytes.Equal(after.HeadHash, before.HeadHash) {
			t.Fatal("head unchanged after removing the newest event")
		}
	})
}

func TestVerifyPages(t *testing.T) {
	// More than one page of 1000.
	forEachBackend(t, func(t *testing.T, s logStore) {
		appendN(t, s, 1234)
		if r := verify(t, s); !r.OK || r.Checked != 1234 || r.HeadSeq != 1234 {
			t.Fatalf("intact: %+v", r)
		}
		s.set(t, 1100, "ip", "192.0.2.1")
		if r := verify(t, s); r.OK || r.BrokenSeq != 1100 || r.Checked != 1100 {
			t.Fatalf("tampered on the second page: %+v", r)
		}
	})
}

func TestAppendRefuses(t *testing.T) {
	tests := []struct {
		name string
		ev   audit.Event
	}{
		{"no type", audit.Event{AccountID: "a"}},
		{"password in data", audit.Event{Type: "x", Data: map[string]any{"password": "hunter2hunter2"}}},
		{"token in nested data", audit.Event{Type: "x", Data: map[string]any{"req": map[string]any{"Token": "abc"}}}},
		{"code in a typed map in a list", audit.Event{Type: "x", Data: map[string]any{"l": []map[string]string{{"code": "123456"}}}}},
		{"unencodable data", audit.Event{Type: "x", Data: map[string]any{"f": func() {}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &fakeStore{}
			if _, err := audit.New(clock.NewFake(t0)).Append(context.Background(), s, tt.ev); err == nil {
				t.Fatal("Append accepted it")
			}
			if r := verify(t, s); r.Checked != 0 {
				t.Fatalf("something was written: %+v", r)
			}
		})
	}
}

// TestConcurrentAppends: the store serialises appends, so events written
// at once from many goroutines still form one chain.
func TestConcurrentAppends(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s logStore) {
		l := audit.New(clock.NewFake(t0))
		const n = 20
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, errs[i] = l.Append(context.Background(), s, audit.Event{Type: "t", Data: map[string]any{"i": i}})
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if r := verify(t, s); !r.OK || r.Checked != n {
			t.Fatalf("%+v", r)
		}
	})
}

// FuzzComputeHashFieldBoundaries: moving bytes from one field to the next
// must change the hash (the encoding is length-prefixed).
func FuzzComputeHashFieldBoundaries(f *testing.F) {
	f.Add("signin", ".success", []byte{1, 2})
	f.Add("", "x", []byte{})
	f.Fuzz(func(t *testing.T, a, b string, prev []byte) {
		if b == "" {
			return
		}
		base := store.AuditEvent{Seq: 7, Time: t0, PrevHash: prev}
		x, y := base, base
		x.Type, x.AccountID = a+b, ""
		y.Type, y.AccountID = a, b
		if bytes.Equal(audit.ComputeHash(x), audit.ComputeHash(y)) {
			t.Fatalf("Type/AccountID boundary not covered: %q|%q", a, b)
		}
		z := base
		z.Data, z.PrevHash = a+b, nil
		w := base
		w.Data, w.PrevHash = a, append([]byte(b), prev...)
		if bytes.Equal(audit.ComputeHash(z), audit.ComputeHash(w)) {
			t.Fatalf("Data/PrevHash boundary not covered")
		}
	})
}
