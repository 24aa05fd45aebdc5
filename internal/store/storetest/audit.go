package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

// chainHash is the suite's stand-in for internal/audit's hash:
// sha256(prev || data).
func chainHash(prev []byte, data string) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// link returns a build func that chains ev after whatever event is last.
func link(ev store.AuditEvent) func(last store.AuditEvent) (store.AuditEvent, error) {
	return func(last store.AuditEvent) (store.AuditEvent, error) {
		ev.PrevHash = last.Hash
		ev.Hash = chainHash(last.Hash, ev.Data)
		return ev, nil
	}
}

func event(typ, accountID string, n int) store.AuditEvent {
	return store.AuditEvent{
		Time:      at(time.Duration(n) * time.Second),
		Type:      typ,
		AccountID: accountID,
		Data:      fmt.Sprintf(`{"n":%d}`, n),
	}
}

func appendEvent(t *testing.T, q store.Queries, ev store.AuditEvent) store.AuditEvent {
	t.Helper()
	got, err := q.AppendAudit(context.Background(), link(ev))
	must(t, "AppendAudit", err)
	return got
}

func listAudit(t *testing.T, q store.Queries, f store.AuditFilter) []store.AuditEvent {
	t.Helper()
	evs, err := q.ListAudit(context.Background(), f)
	must(t, "ListAudit", err)
	return evs
}

// checkChain fails unless evs are Seq 1..len(evs), each linked to the one
// before.
func checkChain(t *testing.T, evs []store.AuditEvent) {
	t.Helper()
	var prev []byte
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has Seq %d: the log has a gap or a duplicate", i+1, e.Seq)
		}
		if !bytes.Equal(e.PrevHash, prev) {
			t.Fatalf("event %d: PrevHash %x, but event %d's Hash is %x", e.Seq, e.PrevHash, e.Seq-1, prev)
		}
		if want := chainHash(prev, e.Data); !bytes.Equal(e.Hash, want) {
			t.Fatalf("event %d: Hash %x does not cover its predecessor (want %x)", e.Seq, e.Hash, want)
		}
		prev = e.Hash
	}
}

func testAuditAppend(t *testing.T, s store.Store) {
	ctx := context.Background()
	full := store.AuditEvent{
		Time:      t0.In(elsewhere),
		Type:      "signin.success",
		AccountID: "acc-1",
		ActorID:   "staff-3",
		IP:        "2001:db8::1",
		UserAgent: "Mozilla/5.0",
		DeviceID:  "dev-2",
		Data:      `{"method":"totp"}`,
	}
	var sawLast []store.AuditEvent
	first, err := s.AppendAudit(ctx, func(last store.AuditEvent) (store.AuditEvent, error) {
		sawLast = append(sawLast, last)
		e, _ := link(full)(last)
		e.Seq = 99 // the store assigns Seq itself
		return e, nil
	})
	must(t, "AppendAudit", err)
	equal(t, "last on an empty log", sawLast, []store.AuditEvent{{}})
	want := full
	want.Seq = 1
	want.Time = t0
	want.Hash = chainHash(nil, full.Data)
	equal(t, "first event", first, want)

	second, err := s.AppendAudit(ctx, func(last store.AuditEvent) (store.AuditEvent, error) {
		equal(t, "last", last, want)
		return link(store.AuditEvent{Type: "session.revoked"})(last)
	})
	must(t, "AppendAudit", err)
	want2 := store.AuditEvent{Seq: 2, Type: "session.revoked", PrevHash: want.Hash, Hash: chainHash(want.Hash, "")}
	equal(t, "second event (zero time, empty strings)", second, want2)

	equal(t, "ListAudit", listAudit(t, s, store.AuditFilter{}), []store.AuditEvent{want, want2})
}

func testAuditBuildError(t *testing.T, s store.Store) {
	ctx := context.Background()
	first := appendEvent(t, s, event("a", "acc-1", 1))
	refuse := errors.New("cannot encode data")
	_, err := s.AppendAudit(ctx, func(store.AuditEvent) (store.AuditEvent, error) {
		return event("b", "acc-1", 2), refuse
	})
	if err != refuse {
		t.Fatalf("AppendAudit returned %v, want build's error unchanged", err)
	}
	equal(t, "log after the refused append", listAudit(t, s, store.AuditFilter{}), []store.AuditEvent{first})
	second := appendEvent(t, s, event("c", "acc-1", 3))
	if second.Seq != 2 {
		t.Errorf("next append got Seq %d, want 2", second.Seq)
	}
	checkChain(t, listAudit(t, s, store.AuditFilter{}))
}

// testAuditSubMicrosecond: stores keep microseconds, so an event time with
// nanoseconds would come back different from what build hashed and the
// chain would not verify. The store refuses it instead.
func testAuditSubMicrosecond(t *testing.T, s store.Store) {
	ctx := context.Background()
	ev := event("a", "acc-1", 1)
	ev.Time = ev.Time.Add(time.Nanosecond)
	if _, err := s.AppendAudit(ctx, link(ev)); err == nil {
		t.Fatal("AppendAudit stored a time finer than a microsecond")
	}
	if evs := listAudit(t, s, store.AuditFilter{}); len(evs) != 0 {
		t.Fatalf("log after the refused append: %+v", evs)
	}
}

// testAuditAppendConcurrent: appends from many goroutines still form one
// gap-free chain.
func testAuditAppendConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	errs := race(concurrency, func(i int) error {
		_, err := s.AppendAudit(ctx, link(event("signin.failure", "acc-1", i)))
		return err
	})
	for i, err := range errs {
		must(t, fmt.Sprint("AppendAudit #", i), err)
	}
	evs := listAudit(t, s, store.AuditFilter{})
	if len(evs) != concurrency {
		t.Fatalf("%d events after %d appends", len(evs), concurrency)
	}
	checkChain(t, evs)
	seen := map[string]bool{}
	for _, e := range evs {
		if seen[e.Data] {
			t.Errorf("event %s stored twice", e.Data)
		}
		seen[e.Data] = true
	}
}

func testAuditList(t *testing.T, s store.Store) {
	for i, e := range []struct{ typ, account string }{
		{"signin.success", "acc-1"},  // 1
		{"signin.success", "acc-2"},  // 2
		{"session.revoked", "acc-1"}, // 3
		{"system.start", ""},         // 4
		{"signin.failure", "acc-1"},  // 5
		{"session.revoked", "acc-2"}, // 6
		{"signin.success", "acc-1"},  // 7
	} {
		appendEvent(t, s, event(e.typ, e.account, i+1))
	}
	all := listAudit(t, s, store.AuditFilter{})
	checkChain(t, all)
	if len(all) != 7 || all[3].AccountID != "" || all[4].Type != "signin.failure" {
		t.Fatalf("ListAudit({}) = %+v", all)
	}
	for _, tc := range []struct {
		name string
		f    store.AuditFilter
		want []int64
	}{
		{"all", store.AuditFilter{}, []int64{1, 2, 3, 4, 5, 6, 7}},
		{"account", store.AuditFilter{AccountID: "acc-1"}, []int64{1, 3, 5, 7}},
		{"one type", store.AuditFilter{Types: []string{"signin.success"}}, []int64{1, 2, 7}},
		{"two types", store.AuditFilter{Types: []string{"signin.success", "session.revoked"}}, []int64{1, 2, 3, 6, 7}},
		{"type is exact", store.AuditFilter{Types: []string{"signin"}}, nil},
		{"after seq", store.AuditFilter{AfterSeq: 3}, []int64{4, 5, 6, 7}},
		{"desc", store.AuditFilter{Desc: true}, []int64{7, 6, 5, 4, 3, 2, 1}},
		{"limit", store.AuditFilter{Limit: 2}, []int64{1, 2}},
		{"desc limit", store.AuditFilter{Desc: true, Limit: 2}, []int64{7, 6}},
		{"page", store.AuditFilter{AfterSeq: 2, Limit: 2}, []int64{3, 4}},
		{"account desc limit", store.AuditFilter{AccountID: "acc-1", Desc: true, Limit: 2}, []int64{7, 5}},
		{"account after seq limit", store.AuditFilter{AccountID: "acc-1", AfterSeq: 3, Limit: 1}, []int64{5}},
		{"account and type", store.AuditFilter{AccountID: "acc-1", Types: []string{"session.revoked", "signin.failure"}}, []int64{3, 5}},
		{"everything", store.AuditFilter{AccountID: "acc-2", Types: []string{"session.revoked"}, AfterSeq: 1, Desc: true, Limit: 5}, []int64{6}},
		{"unknown account", store.AuditFilter{AccountID: "acc-3"}, nil},
		{"past the end", store.AuditFilter{AfterSeq: 7}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []int64
			for _, e := range listAudit(t, s, tc.f) {
				got = append(got, e.Seq)
				if want := all[e.Seq-1]; !bytes.Equal(e.Hash, want.Hash) || e.Type != want.Type {
					t.Errorf("event %d differs from ListAudit({})", e.Seq)
				}
			}
			equal(t, "seqs", got, tc.want)
		})
	}
}
