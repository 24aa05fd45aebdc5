package notify

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

// WorkerOptions tune a Worker; zero fields take the defaults.
type WorkerOptions struct {
	// Batch is how many messages one RunOnce claims (default 20).
	Batch int
	// Lease is how long a claimed message is reserved for this worker
	// (default 2 minutes). It must exceed the time a send can take: a
	// message whose lease runs out before it is marked sent may be sent
	// again by another worker. A worker that dies mid-send leaves its
	// messages to be claimed again once the lease has passed.
	Lease time.Duration
	// MaxAttempts is how many failed sends a message gets before the worker
	// gives up on it (default 10).
	MaxAttempts int
	// Backoff is the wait before retrying after the given number of failed
	// attempts (1 after the first failure). Default DefaultBackoff.
	Backoff func(attempt int) time.Duration
	// Box opens bodies the Mailer sealed (MailerConfig.Box). A sealed body
	// the worker cannot open is never sent: the message fails for good.
	Box *secrets.Box
}

// DefaultBackoff doubles from 30 seconds after the first failure (30s, 1m,
// 2m, 4m, …) up to an hour.
func DefaultBackoff(attempt int) time.Duration {
	const first, limit = 30 * time.Second, time.Hour
	d := first
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// maxErrorText bounds the error stored with a failed message.
const maxErrorText = 1000

// Worker delivers outbox messages. Any number of workers, on any number of
// nodes, may run against one store: ClaimOutbox leases each message to one
// of them. Delivery is at least once: a worker that dies after sending but
// before recording it causes a second send after the lease.
type Worker struct {
	store   store.Store
	senders map[string]Sender
	clock   clock.Clock
	log     *slog.Logger
	opts    WorkerOptions
	kick    chan struct{}
}

// NewWorker returns a Worker that sends each message with the Sender for
// its channel (e.g. senders[ChannelEmail]). A nil logger discards logs.
func NewWorker(q store.Store, senders map[string]Sender, clk clock.Clock, logger *slog.Logger, opts WorkerOptions) *Worker {
	if opts.Batch <= 0 {
		opts.Batch = 20
	}
	if opts.Lease <= 0 {
		opts.Lease = 2 * time.Minute
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 10
	}
	if opts.Backoff == nil {
		opts.Backoff = DefaultBackoff
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Worker{store: q, senders: senders, clock: clk, log: logger, opts: opts, kick: make(chan struct{}, 1)}
}

// Kick wakes Run early. Call it after committing a transaction that
// enqueued a message. It never blocks.
func (w *Worker) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// RunOnce claims the messages that are due (at most one batch), sends each,
// and records the outcome: sent, or failed with the next attempt scheduled
// by the backoff (or never, after MaxAttempts). It returns how many were
// sent. A failed send is not an error of RunOnce (it is recorded and
// logged); an error means the store could not be read or written.
func (w *Worker) RunOnce(ctx context.Context) (sent int, err error) {
	sent, _, err = w.runOnce(ctx)
	return sent, err
}

func (w *Worker) runOnce(ctx context.Context) (sent, claimed int, err error) {
	msgs, err := w.store.ClaimOutbox(ctx, w.now(), w.opts.Batch, w.opts.Lease)
	if err != nil {
		return 0, 0, err
	}
	var errs []error
	for _, m := range msgs {
		if ctx.Err() != nil {
			// Unsent claimed messages return after their lease.
			errs = append(errs, ctx.Err())
			break
		}
		ok, err := w.deliver(ctx, m)
		if ok {
			sent++
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return sent, len(msgs), errors.Join(errs...)
}

// deliver sends one message and records the outcome. It reports whether
// the message was sent, and an error only when recording failed.
func (w *Worker) deliver(ctx context.Context, m store.OutboxMessage) (bool, error) {
	var sendErr error
	s := w.senders[m.Channel]
	switch open, err := OpenBody(w.opts.Box, m); {
	case err != nil:
		sendErr = &PermanentError{Err: err}
	case s == nil:
		sendErr = errNoSender
	default:
		sendErr = s.Send(ctx, open)
	}
	if sendErr == nil {
		if err := w.store.MarkOutboxSent(ctx, m.ID, w.now()); err != nil {
			w.log.Error("outbox: sent but not recorded; it may be sent again", "id", m.ID, "channel", m.Channel, "error", err)
			return true, err
		}
		return true, nil
	}

	attempt := m.Attempts + 1
	var next time.Time
	permanent := isPermanent(sendErr)
	if attempt < w.opts.MaxAttempts && !permanent {
		next = w.now().Add(w.opts.Backoff(attempt))
	}
	// Never log or store the body: it carries the link or code the message
	// exists for. Sender errors name the server and the failure, not the
	// content.
	attrs := []any{"id", m.ID, "channel", m.Channel, "attempt", attempt, "error", sendErr}
	if next.IsZero() {
		w.log.Error("outbox: giving up on message", append(attrs, "permanent", permanent)...)
	} else {
		w.log.Warn("outbox: send failed; will retry", append(attrs, "next_attempt", next)...)
	}
	if err := w.store.MarkOutboxFailed(ctx, m.ID, errorText(sendErr), next); err != nil {
		return false, err
	}
	return false, nil
}

// now is the clock's time at the precision every store keeps
// (microseconds), so what is scheduled is exactly what is stored.
func (w *Worker) now() time.Time { return w.clock.Now().UTC().Truncate(time.Microsecond) }

func errorText(err error) string {
	s := strings.ToValidUTF8(err.Error(), "?")
	if len(s) > maxErrorText {
		s = strings.ToValidUTF8(s[:maxErrorText], "")
	}
	return s
}

// Run sends due messages every interval, and at once after Kick, until ctx
// is done. A full batch is followed immediately by another. Store errors
// are logged and retried at the next tick.
func (w *Worker) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.kick:
		}
		for ctx.Err() == nil {
			_, claimed, err := w.runOnce(ctx)
			if err != nil && ctx.Err() == nil {
				w.log.Error("outbox: run failed", "error", err)
			}
			if err != nil || claimed < w.opts.Batch {
				break
			}
		}
		// Since Go 1.23 Reset discards a pending tick; no draining needed.
		t.Reset(interval)
	}
}

// PermanentError marks a send failure that retrying cannot fix (the
// server refused the recipient for good); the worker gives up on the
// message at once.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

func isPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
