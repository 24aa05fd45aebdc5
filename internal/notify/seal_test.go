package notify

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

func testBox(t *testing.T, b byte) *secrets.Box {
	t.Helper()
	box, err := secrets.NewBox(bytes.Repeat([]byte{b}, secrets.KeySize), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return box
}

// TestSealedOutbox: with a Box, the outbox row holds no trace of the link
// the e-mail carries; the worker opens it and the sender gets exactly what
// a Mailer without a Box would have stored.
func TestSealedOutbox(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store.Store) {
		box := testBox(t, 1)
		plainMailer, _ := newTestMailer(t)
		m, clk := newTestMailer(t)
		m.box = box

		id := enqueue(t, m, s, "alice@example.com")
		stored := outboxMessage(t, s, id)
		if strings.Contains(stored.Body, "tok-alice") || !strings.HasPrefix(stored.Body, sealedPrefix) {
			t.Fatalf("the stored body is readable: %q", stored.Body)
		}
		if stored.To != "alice@example.com" || stored.Subject == "" {
			t.Errorf("recipient and subject should stay readable: %+v", stored)
		}

		plainStore := newFakeStore()
		plainID := enqueue(t, plainMailer, plainStore, "alice@example.com")
		want := outboxMessage(t, plainStore, plainID).Body

		opened, err := OpenBody(box, stored)
		if err != nil || opened.Body != want {
			t.Fatalf("OpenBody = %q, %v; want %q", opened.Body, err, want)
		}

		snd := &recordingSender{}
		w := NewWorker(s, map[string]Sender{ChannelEmail: snd}, clk, nil, WorkerOptions{Box: box})
		runOnce(t, w, 1)
		if len(snd.sent) != 1 || snd.sent[0].Body != want {
			t.Fatalf("sent %+v, want body %q", snd.sent, want)
		}
	})
}

// TestSealedOutboxRefusesToSendWhatItCannotOpen: no Box, the wrong Box, a
// tampered body, or a body moved to another message: never sent (ciphertext
// in an e-mail helps nobody), recorded as a permanent failure.
func TestSealedOutboxRefusesToSendWhatItCannotOpen(t *testing.T) {
	box := testBox(t, 1)
	for _, tc := range []struct {
		name string
		box  *secrets.Box
		// mangle changes the stored message id and returns the one to
		// check (nil: leave it).
		mangle func(t *testing.T, m *Mailer, s *fakeStore, id string) string
	}{
		{"no box", nil, nil},
		{"wrong key", testBox(t, 2), nil},
		{"tampered", box, func(_ *testing.T, _ *Mailer, s *fakeStore, id string) string {
			msg := s.outbox[id]
			msg.Body = msg.Body[:len(msg.Body)-4] + "AAAA"
			s.outbox[id] = msg
			return id
		}},
		{"moved to another message", box, func(t *testing.T, m *Mailer, s *fakeStore, id string) string {
			other := enqueue(t, m, s, "carol@example.com")
			msg := s.outbox[other]
			msg.Body = s.outbox[id].Body
			s.outbox[other] = msg
			s.outbox[id] = store.OutboxMessage{ID: id, Channel: "none"} // out of the way
			return other
		}},
		{"not base64", box, func(_ *testing.T, _ *Mailer, s *fakeStore, id string) string {
			msg := s.outbox[id]
			msg.Body = sealedPrefix + "%%%"
			s.outbox[id] = msg
			return id
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeStore()
			m, clk := newTestMailer(t)
			m.box = box
			id := enqueue(t, m, s, "bob@example.com")
			if tc.mangle != nil {
				id = tc.mangle(t, m, s, id)
			}
			if _, err := OpenBody(tc.box, s.outbox[id]); !errors.Is(err, ErrSealedBody) {
				t.Fatalf("OpenBody: %v, want ErrSealedBody", err)
			}
			snd := &recordingSender{}
			w := NewWorker(s, map[string]Sender{ChannelEmail: snd}, clk, nil, WorkerOptions{Box: tc.box})
			runOnce(t, w, 0)
			if calls, _ := snd.count(); calls != 0 {
				t.Fatalf("the sender was called %d times", calls)
			}
			got := outboxMessage(t, s, id)
			if got.Attempts != 1 || !got.NextAttemptAt.IsZero() || !strings.Contains(got.LastError, "cannot be opened") {
				t.Errorf("outbox after the refusal: %+v", got)
			}
			if strings.Contains(got.LastError, "tok-") {
				t.Errorf("the error text carries content: %q", got.LastError)
			}
		})
	}
}

// TestOpenBodyPlainPassesThrough: rows written before bodies were sealed
// (or by a Mailer without a Box) are delivered as they are.
func TestOpenBodyPlainPassesThrough(t *testing.T) {
	m := store.OutboxMessage{ID: "x", Body: "hello"}
	for _, box := range []*secrets.Box{nil, testBox(t, 1)} {
		if got, err := OpenBody(box, m); err != nil || got != m {
			t.Errorf("OpenBody(%v) = %+v, %v", box != nil, got, err)
		}
	}
}
