package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

// stores are the Store implementations the worker tests run against.
var stores = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"fake", func(t *testing.T) store.Store { return newFakeStore() }},
}

func forEachStore(t *testing.T, fn func(t *testing.T, s store.Store)) {
	for _, b := range stores {
		t.Run(b.name, func(t *testing.T) { fn(t, b.open(t)) })
	}
}

// recordingSender fails its first `fails` calls with err, then records.
type recordingSender struct {
	mu    sync.Mutex
	fails int
	err   error
	calls int
	sent  []store.OutboxMessage
}

func (r *recordingSender) Send(_ context.Context, m store.OutboxMessage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.calls <= r.fails {
		return r.err
	}
	r.sent = append(r.sent, m)
	return nil
}

func (r *recordingSender) count() (calls, sent int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls, len(r.sent)
}

// enqueue writes one confirm_email message and returns its ID.
func enqueue(t *testing.T, m *Mailer, s store.Queries, to string) string {
	t.Helper()
	ctx := context.Background()
	if err := m.Enqueue(ctx, s, Email{Template: TemplateConfirmEmail, To: to,
		Data: map[string]string{"Link": m.Link("/confirm-email", "tok-"+to)}}); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.ListOutbox(ctx, ChannelEmail, 1)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("ListOutbox: %v, %v", msgs, err)
	}
	return msgs[0].ID
}

func outboxMessage(t *testing.T, s store.Queries, id string) store.OutboxMessage {
	t.Helper()
	msgs, err := s.ListOutbox(context.Background(), ChannelEmail, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("message %s not in the outbox", id)
	return store.OutboxMessage{}
}

func runOnce(t *testing.T, w *Worker, want int) {
	t.Helper()
	n, err := w.RunOnce(context.Background())
	if err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	if n != want {
		t.Fatalf("RunOnce sent %d, want %d", n, want)
	}
}

func TestWorkerSendsOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store.Store) {
		m, clk := newTestMailer(t)
		id := enqueue(t, m, s, "alice@example.com")
		snd := &recordingSender{}
		w := NewWorker(s, map[string]Sender{ChannelEmail: snd}, clk, nil, WorkerOptions{})
		runOnce(t, w, 1)
		runOnce(t, w, 0)
		clk.Advance(24 * time.Hour)
		runOnce(t, w, 0)
		if calls, _ := snd.count(); calls != 1 {
			t.Fatalf("sender called %d times, want 1", calls)
		}
		if snd.sent[0].ID != id || snd.sent[0].To != "alice@example.com" || !strings.Contains(snd.sent[0].Body, "tok-alice") {
			t.Errorf("sent %+v", snd.sent[0])
		}
		if got := outboxMessage(t, s, id); got.SentAt.IsZero() || got.Attempts != 0 {
			t.Errorf("outbox after send: %+v", got)
		}
	})
}

func TestWorkerRetriesWithBackoff(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store.Store) {
		m, clk := newTestMailer(t)
		id := enqueue(t, m, s, "alice@example.com")
		snd := &recordingSender{fails: 2, err: errors.New("451 try again later")}
		w := NewWorker(s, map[string]Sender{ChannelEmail: snd}, clk, nil, WorkerOptions{})

		runOnce(t, w, 0) // attempt 1 fails: retry in 30s
		got := outboxMessage(t, s, id)
		if got.Attempts != 1 || got.LastError != "451 try again later" || !got.NextAttemptAt.Equal(clk.Now().Truncate(time.Microsecond).Add(30*time.Second)) {
			t.Fatalf("after one failure: %+v", got)
		}
		clk.Advance(29 * time.Second)
		runOnce(t, w, 0) // not due yet
		if calls, _ := snd.count(); calls != 1 {
			t.Fatalf("retried before the backoff: %d calls", calls)
		}
		clk.Advance(time.Second)
		runOnce(t, w, 0) // attempt 2 fails: retry in 1m
		if got := outboxMessage(t, s, id); got.Attempts != 2 || !got.NextAttemptAt.Equal(clk.Now().Truncate(time.Microsecond).Add(time.Minute)) {
			t.Fatalf("after two failures: %+v", got)
		}
		clk.Advance(59 * time.Second)
		runOnce(t, w, 0)
		clk.Advance(time.Second)
		runOnce(t, w, 1) // attempt 3 succeeds
		got = outboxMessage(t, s, id)
		if got.SentAt.IsZero() || got.Attempts != 2 {
			t.Fatalf("after success: %+v", got)
		}
		if calls, sent := snd.count(); calls != 3 || sent != 1 {
			t.Fatalf("calls %d sent %d, want 3 and 1", calls, sent)
		}
	})
}

func TestWorkerGivesUp(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store.Store) {
		m, clk := newTestMailer(t)
		id := enqueue(t, m, s, "alice@example.com")
		snd := &recordingSender{fails: 1 << 30, err: errors.New("connection refused")}
		w := NewWorker(s, map[string]Sender{ChannelEmail: snd}, clk, nil, WorkerOptions{MaxAttempts: 3})
		for range 3 {
			runOnce(t, w, 0)
			clk.Advance(time.Hour)
		}
		got := outboxMessage(t, s, id)
		if got.Attempts != 3 || !got.NextAttemptAt.IsZero() || !got.SentAt.IsZero() || got.LastError != "connection refused" {
			t.Fatalf("after giving up: %+v", got)
		}
		clk.Advance(30 * 24 * time.Hour)
		runOnce(t, w, 0)
		if calls, _ := snd.count(); calls != 3 {
			t.Fatalf("sender called %d times after giving up, want 3", calls)
		}
	})
}

func TestWorkerPermanentFailureGivesUpAtOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store.Store) {
		m, clk := newTestMailer(t)
		id := enqueue(t, m, s, "gone@example.com")
		snd := &recordingSender{fails: 1 << 30, err: &PermanentError{Err: errors.New("550 no such user")}}
		w := NewWorker(s, map[string]Sender{ChannelEmail: snd}, clk, nil, WorkerOptions{})
		runOnce(t, w, 0)
		if got := outboxMessage(t, s, id); got.Attempts != 1 || !got.NextAttemptAt.IsZero() {
			t.Fatalf("%+v", got)
		}
	})
}

func TestWorkerRolledBackMessageIsNeverSent(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store.Store) {
		m, clk := newTestMailer(t)
		ctx := context.Background()
		boom := errors.New("the change failed")
		err := s.InTx(ctx, func(tx store.Queries) error {
			if err := m.Enqueue(ctx, tx, Email{Template: TemplateConfirmEmail, To: "alice@example.com",
				Data: map[string]string{"Link": m.Link("/confirm-email", "t")}}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx = %v", err)
		}
		snd := &recordingSender{}
		w := NewWorker(s, map[string]Sender{ChannelEmail: snd}, clk, nil, WorkerOptions{})
		runOnce(t, w, 0)
		clk.Advance(time.Hour)
		runOnce(t, w, 0)
		if calls, _ := snd.count(); calls != 0 {
			t.Fatalf("a rolled-back message was sent")
		}
		if msgs, _ := s.ListOutbox(ctx, ChannelEmail, 10); len(msgs) != 0 {
			t.Fatalf("outbox holds %d messages", len(msgs))
		}
	})
}

// TestWorkerReclaimsAfterLease: a worker that claimed a message and died
// before sending it (its claim is all that happened) does not lose it;
// another worker sends it once the lease has run out, and not before.
func TestWorkerReclaimsAfterLease(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store.Store) {
		m, clk := newTestMailer(t)
		id := enqueue(t, m, s, "alice@example.com")
		const lease = 2 * time.Minute
		// The worker that dies: it claims and never reports back.
		claimed, err := s.ClaimOutbox(context.Background(), clk.Now().Truncate(time.Microsecond), 10, lease)
		if err != nil || len(claimed) != 1 || claimed[0].ID != id {
			t.Fatalf("claim: %v, %v", claimed, err)
		}
		snd := &recordingSender{}
		w := NewWorker(s, map[string]Sender{ChannelEmail: snd}, clk, nil, WorkerOptions{Lease: lease})
		runOnce(t, w, 0) // still leased
		clk.Advance(lease - time.Second)
		runOnce(t, w, 0)
		clk.Advance(time.Second)
		runOnce(t, w, 1)
		if got := outboxMessage(t, s, id); got.SentAt.IsZero() {
			t.Fatalf("not marked sent: %+v", got)
		}
	})
}

func TestWorkerBatchesOldestFirst(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store.Store) {
		m, clk := newTestMailer(t)
		var ids []string
		for _, to := range []string{"a@example.com", "b@example.com", "c@example.com"} {
			ids = append(ids, enqueue(t, m, s, to))
			clk.Advance(time.Second)
		}
		snd := &recordingSender{}
		w := NewWorker(s, map[string]Sender{ChannelEmail: snd}, clk, nil, WorkerOptions{Batch: 2})
		runOnce(t, w, 2)
		runOnce(t, w, 1)
		for i, sent := range snd.sent {
			if sent.ID != ids[i] {
				t.Errorf("send #%d was %s, want %s (oldest first)", i, sent.ID, ids[i])
			}
		}
	})
}

// TestWorkersShareOneOutbox: workers on several nodes drain one outbox
// together and no message is sent twice.
func TestWorkersShareOneOutbox(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store.Store) {
		m, clk := newTestMailer(t)
		const messages, workers = 30, 4
		for i := range messages {
			enqueue(t, m, s, fmt.Sprintf("user%d@example.com", i))
		}
		snd := &recordingSender{}
		var wg sync.WaitGroup
		for range workers {
			w := NewWorker(s, map[string]Sender{ChannelEmail: snd}, clk, nil, WorkerOptions{Batch: 3})
			wg.Go(func() {
				for {
					n, err := w.RunOnce(context.Background())
					if err != nil {
						t.Error(err)
						return
					}
					if n == 0 {
						return
					}
				}
			})
		}
		wg.Wait()
		seen := map[string]int{}
		for _, m := range snd.sent {
			seen[m.ID]++
		}
		if len(seen) != messages {
			t.Errorf("%d distinct messages sent, want %d", len(seen), messages)
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("message %s sent %d times", id, n)
			}
		}
	})
}

func TestWorkerUnknownChannel(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store.Store) {
		m, clk := newTestMailer(t)
		id := enqueue(t, m, s, "alice@example.com")
		w := NewWorker(s, map[string]Sender{"sms": &recordingSender{}}, clk, nil, WorkerOptions{})
		runOnce(t, w, 0)
		if got := outboxMessage(t, s, id); got.Attempts != 1 || !strings.Contains(got.LastError, "no sender") {
			t.Fatalf("%+v", got)
		}
	})
}

// TestWorkerLogsNoContent: the body carries the link or code the message
// exists for, so failure logs name the message but never show its content.
func TestWorkerLogsNoContent(t *testing.T) {
	m, clk := newTestMailer(t)
	s := newFakeStore()
	ctx := context.Background()
	if err := m.Enqueue(ctx, s, Email{Template: TemplateNewDeviceCode, To: "alice@example.com",
		Data: map[string]string{"Code": "482913", "Link": m.Link("/approve", "approve-token"),
			"SecureLink": m.Link("/secure", "secure-token"), "IP": "198.51.100.7", "Device": "Firefox", "Time": "now"}}); err != nil {
		t.Fatal(err)
	}
	id := outboxMessage(t, s, mustFirstID(t, s)).ID
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	snd := &recordingSender{fails: 1 << 30, err: errors.New("connection refused")}
	w := NewWorker(s, map[string]Sender{ChannelEmail: snd}, clk, logger, WorkerOptions{MaxAttempts: 2})
	runOnce(t, w, 0)
	clk.Advance(time.Hour)
	runOnce(t, w, 0) // gives up: logged at error level
	out := logs.String()
	for _, want := range []string{id, "channel=email", "attempt=1", "attempt=2", "connection refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"482913", "approve-token", "secure-token", "Hello"} {
		if strings.Contains(out, secret) {
			t.Errorf("log shows message content %q:\n%s", secret, out)
		}
	}
}

func mustFirstID(t *testing.T, s store.Queries) string {
	t.Helper()
	msgs, err := s.ListOutbox(context.Background(), ChannelEmail, 1)
	if err != nil || len(msgs) == 0 {
		t.Fatalf("ListOutbox: %v %v", msgs, err)
	}
	return msgs[0].ID
}

// chanSender reports each sent message on a channel.
type chanSender chan store.OutboxMessage

func (c chanSender) Send(_ context.Context, m store.OutboxMessage) error {
	c <- m
	return nil
}

// TestRunKick: Run with an interval far longer than the test still sends a
// freshly enqueued message at once when kicked, and stops with its context.
func TestRunKick(t *testing.T) {
	m, clk := newTestMailer(t)
	s := newFakeStore()
	snd := make(chanSender, 10)
	w := NewWorker(s, map[string]Sender{ChannelEmail: snd}, clk, nil, WorkerOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		w.Run(ctx, 24*time.Hour)
		close(done)
	}()
	for _, to := range []string{"a@example.com", "b@example.com"} {
		id := enqueue(t, m, s, to)
		w.Kick()
		select {
		case got := <-snd:
			if got.ID != id {
				t.Fatalf("sent %s, want %s", got.ID, id)
			}
		case <-time.After(30 * time.Second): // a hang guard, not a timing assertion
			t.Fatal("kicked message was not sent")
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	// Kick never blocks, even with nobody running.
	for range 5 {
		w.Kick()
	}
}

func TestDefaultBackoff(t *testing.T) {
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
		16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour, time.Hour}
	for i, w := range want {
		if got := DefaultBackoff(i + 1); got != w {
			t.Errorf("DefaultBackoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := DefaultBackoff(1000); got != time.Hour {
		t.Errorf("DefaultBackoff(1000) = %v", got)
	}
}

func TestDevSender(t *testing.T) {
	if err := (DevSender{}).Send(context.Background(), sampleMessage()); err != nil {
		t.Fatal(err)
	}
}
