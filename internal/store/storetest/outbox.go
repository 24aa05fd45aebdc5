package storetest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

// message is an unsent e-mail created at t0+created and due at once.
func message(id string, created time.Duration) store.OutboxMessage {
	return store.OutboxMessage{
		ID:            id,
		Channel:       "email",
		To:            "one@example.com",
		Subject:       "New sign-in to your account",
		Body:          "Hello,\n\nsomeone signed in.\n",
		CreatedAt:     at(created),
		NextAttemptAt: at(created),
	}
}

func enqueue(t *testing.T, q store.Queries, ms ...store.OutboxMessage) {
	t.Helper()
	for _, m := range ms {
		must(t, "EnqueueOutbox "+m.ID, q.EnqueueOutbox(context.Background(), m))
	}
}

func claim(t *testing.T, q store.Queries, now time.Time, limit int, lease time.Duration) []store.OutboxMessage {
	t.Helper()
	ms, err := q.ClaimOutbox(context.Background(), now, limit, lease)
	must(t, "ClaimOutbox", err)
	return ms
}

func ids(ms []store.OutboxMessage) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func outbox(t *testing.T, q store.Queries, channel string) map[string]store.OutboxMessage {
	t.Helper()
	ms, err := q.ListOutbox(context.Background(), channel, 1000)
	must(t, "ListOutbox", err)
	out := map[string]store.OutboxMessage{}
	for _, m := range ms {
		out[m.ID] = m
	}
	return out
}

func testOutboxRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	full := store.OutboxMessage{
		ID:            "m-full",
		Channel:       "sms",
		To:            "+15555550100",
		Subject:       "",
		Body:          "Your moat code is 123456. ✓",
		CreatedAt:     t0.In(elsewhere),
		Attempts:      3,
		NextAttemptAt: at(time.Minute),
		SentAt:        at(2 * time.Minute),
		LastError:     "550 mailbox unavailable",
	}
	due := store.OutboxMessage{ID: "m-due", Channel: "sms", To: "+15555550101", Body: "b", CreatedAt: at(time.Second)}
	enqueue(t, s, full, due)
	got := outbox(t, s, "sms")

	want := full
	want.CreatedAt = t0
	equal(t, "every field", got["m-full"], want)
	// A zero NextAttemptAt means due at once: at CreatedAt.
	wantDue := due
	wantDue.NextAttemptAt = due.CreatedAt
	equal(t, "zero NextAttemptAt", got["m-due"], wantDue)

	is(t, "same ID", s.EnqueueOutbox(ctx, message("m-full", 0)), store.ErrAlreadyExists)
	equal(t, "original", outbox(t, s, "sms")["m-full"], want)
}

func testOutboxClaim(t *testing.T, s store.Store) {
	m1 := message("m1", 0)
	m2 := message("m2", time.Second)
	m3 := message("m3", 2*time.Second)
	later := message("m-later", 3*time.Second)
	later.NextAttemptAt = at(time.Hour)
	sent := message("m-sent", -time.Second)
	sent.SentAt = at(time.Second)
	sms := message("m-sms", 500*time.Millisecond)
	sms.Channel = "sms"
	undated := message("m-undated", 5*time.Second)
	undated.CreatedAt = time.Time{} // zero is the earliest time: claimed first
	enqueue(t, s, m3, later, m1, sent, sms, undated, m2)

	now := at(10 * time.Second)
	lease := time.Minute
	equal(t, "undated first", ids(claim(t, s, now, 1, time.Hour)), []string{"m-undated"})
	got := claim(t, s, now, 2, lease)
	equal(t, "first claim: oldest first, limited", ids(got), []string{"m1", "m-sms"})
	m1.NextAttemptAt = now.Add(lease)
	equal(t, "claimed message", got[0], m1)

	equal(t, "second claim", ids(claim(t, s, now, 10, lease)), []string{"m2", "m3"})
	equal(t, "third claim: all leased", ids(claim(t, s, now, 10, lease)), nil)
	equal(t, "just before the lease ends", ids(claim(t, s, now.Add(lease-time.Microsecond), 10, lease)), nil)
	equal(t, "lease over", ids(claim(t, s, now.Add(lease), 10, 10*time.Hour)), []string{"m1", "m-sms", "m2", "m3"})
	equal(t, "the later one once due", ids(claim(t, s, at(time.Hour), 10, lease)), []string{"m-later"})
	equal(t, "limit 0 claims nothing", ids(claim(t, s, at(100*time.Hour), 0, lease)), nil)

	if m := outbox(t, s, "email")["m-sent"]; m.NextAttemptAt != sent.NextAttemptAt || m.Attempts != 0 {
		t.Errorf("sent message was touched by claims: %+v", m)
	}
}

func testOutboxSentAndFailed(t *testing.T, s store.Store) {
	ctx := context.Background()
	enqueue(t, s, message("m-sent", 0), message("m-retry", time.Second), message("m-dead", 2*time.Second))
	now := at(time.Minute)
	equal(t, "claim", ids(claim(t, s, now, 10, time.Minute)), []string{"m-sent", "m-retry", "m-dead"})

	must(t, "MarkOutboxSent", s.MarkOutboxSent(ctx, "m-sent", now.Add(time.Second).In(elsewhere)))
	retryAt := at(5 * time.Minute)
	must(t, "MarkOutboxFailed (retry)", s.MarkOutboxFailed(ctx, "m-retry", "451 try again later", retryAt))
	must(t, "MarkOutboxFailed (give up)", s.MarkOutboxFailed(ctx, "m-dead", "550 no such user", time.Time{}))

	box := outbox(t, s, "email")
	if m := box["m-sent"]; !m.SentAt.Equal(now.Add(time.Second)) || m.SentAt.Location() != time.UTC {
		t.Errorf("sent message: SentAt = %v", m.SentAt)
	}
	want := message("m-retry", time.Second)
	want.Attempts, want.LastError, want.NextAttemptAt = 1, "451 try again later", retryAt
	equal(t, "failed, to retry", box["m-retry"], want)
	want = message("m-dead", 2*time.Second)
	want.Attempts, want.LastError, want.NextAttemptAt = 1, "550 no such user", time.Time{}
	equal(t, "failed, given up", box["m-dead"], want)

	equal(t, "before the retry time", ids(claim(t, s, retryAt.Add(-time.Microsecond), 10, time.Minute)), nil)
	equal(t, "at the retry time", ids(claim(t, s, retryAt, 10, time.Minute)), []string{"m-retry"})
	must(t, "MarkOutboxFailed again", s.MarkOutboxFailed(ctx, "m-retry", "451 still", at(10*time.Minute)))
	if m := outbox(t, s, "email")["m-retry"]; m.Attempts != 2 || m.LastError != "451 still" {
		t.Errorf("after a second failure: %+v", m)
	}
	// Given up and sent messages are never claimed again, however late.
	equal(t, "much later", ids(claim(t, s, at(100*365*24*time.Hour), 10, time.Minute)), []string{"m-retry"})

	is(t, "MarkOutboxSent unknown", s.MarkOutboxSent(ctx, "m-none", now), store.ErrNotFound)
	is(t, "MarkOutboxFailed unknown", s.MarkOutboxFailed(ctx, "m-none", "x", now), store.ErrNotFound)
}

// testOutboxClaimConcurrent: workers claiming at the same moment (on one
// node or many) never get the same message.
func testOutboxClaimConcurrent(t *testing.T, s store.Store) {
	const messages, workers, limit = 40, 8, 5
	var all []string
	for i := range messages {
		m := message(fmt.Sprintf("m%02d", i), time.Duration(i)*time.Millisecond)
		enqueue(t, s, m)
		all = append(all, m.ID)
	}
	lease := time.Minute
	for round := range 3 {
		now := at(time.Second + time.Duration(round)*lease)
		results := make([][]store.OutboxMessage, workers)
		errs := race(workers, func(i int) error {
			var err error
			results[i], err = s.ClaimOutbox(context.Background(), now, limit, lease)
			return err
		})
		owner := map[string]int{}
		for w, err := range errs {
			must(t, fmt.Sprint("round ", round, " worker ", w), err)
			if len(results[w]) > limit {
				t.Errorf("worker %d claimed %d messages, limit %d", w, len(results[w]), limit)
			}
			for _, m := range results[w] {
				if prev, dup := owner[m.ID]; dup {
					t.Fatalf("round %d: message %s claimed by workers %d and %d", round, m.ID, prev, w)
				}
				owner[m.ID] = w
			}
		}
		// Whatever the workers skipped is still there to claim.
		for _, m := range claim(t, s, now, messages, lease) {
			if prev, dup := owner[m.ID]; dup {
				t.Fatalf("round %d: message %s claimed again after worker %d", round, m.ID, prev)
			}
			owner[m.ID] = -1
		}
		var got []string
		for id := range owner {
			got = append(got, id)
		}
		slices.Sort(got)
		equal(t, fmt.Sprint("round ", round, " claimed"), got, all)
	}
}

func testOutboxList(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := message("m-a", 0)
	b := message("m-b", time.Second)
	c := message("m-c", 2*time.Second)
	sms := message("m-sms", 3*time.Second)
	sms.Channel = "sms"
	undated := message("m-undated", 0)
	undated.CreatedAt = time.Time{} // zero is the earliest time: listed last
	enqueue(t, s, b, sms, undated, c, a)
	for _, tc := range []struct {
		name    string
		channel string
		limit   int
		want    []store.OutboxMessage
	}{
		{"newest first", "email", 10, []store.OutboxMessage{c, b, a, undated}},
		{"limit", "email", 2, []store.OutboxMessage{c, b}},
		{"limit 0 means the default", "email", 0, []store.OutboxMessage{c, b, a, undated}},
		{"channel", "sms", 10, []store.OutboxMessage{sms}},
		{"no such channel", "pigeon", 10, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListOutbox(ctx, tc.channel, tc.limit)
			must(t, "ListOutbox", err)
			equal(t, "messages", got, tc.want)
		})
	}
}

// testOutboxDeleteBefore: old finished messages (sent, given up) go; old
// ones still due a retry, and newer ones, stay.
func testOutboxDeleteBefore(t *testing.T, s store.Store) {
	ctx := context.Background()
	enqueue(t, s, message("old-sent", 0), message("old-dead", time.Second), message("old-retry", 2*time.Second),
		message("old-unsent", 3*time.Second), message("new-sent", time.Hour))
	must(t, "MarkOutboxSent", s.MarkOutboxSent(ctx, "old-sent", at(time.Minute)))
	must(t, "MarkOutboxSent", s.MarkOutboxSent(ctx, "new-sent", at(time.Hour+time.Minute)))
	must(t, "MarkOutboxFailed (give up)", s.MarkOutboxFailed(ctx, "old-dead", "550", time.Time{}))
	must(t, "MarkOutboxFailed (retry)", s.MarkOutboxFailed(ctx, "old-retry", "451", at(2*time.Hour)))

	n, err := s.DeleteOutboxBefore(ctx, at(30*time.Minute).In(elsewhere))
	must(t, "DeleteOutboxBefore", err)
	if n != 2 {
		t.Errorf("deleted %d, want 2", n)
	}
	left := slices.Sorted(maps.Keys(outbox(t, s, "email")))
	equal(t, "left", left, []string{"new-sent", "old-retry", "old-unsent"})
	n, err = s.DeleteOutboxBefore(ctx, at(30*time.Minute))
	must(t, "DeleteOutboxBefore again", err)
	if n != 0 {
		t.Errorf("deleted %d the second time, want 0", n)
	}
}
