// Package notify renders moat's messages and delivers them through a
// transactional outbox: a message is written in the same transaction as the
// event that causes it, and a worker sends it later with retries, so a crash
// between commit and send loses nothing.
package notify

import (
	"context"
	"errors"

	"github.com/moat-dev/moat/internal/store"
)

// Email is a message to render from one of the templates.
type Email struct {
	// Template names the message: see templates.go for the list and the
	// Data keys each uses.
	Template string
	To       string
	// AntiPhishingCode is the recipient's phrase; shown in every message
	// once set.
	AntiPhishingCode string
	// Data holds the template's values (links are absolute URLs built with
	// Mailer.Link).
	Data map[string]string
}

// Sender delivers one message; it is what the worker calls.
type Sender interface {
	Send(ctx context.Context, m store.OutboxMessage) error
}

// Mailer renders e-mails and writes them to the outbox.
type Mailer struct{}

// Enqueue renders e and writes it to the outbox through q (pass the
// transaction's Queries).
func (m *Mailer) Enqueue(ctx context.Context, q store.Queries, e Email) error {
	return errors.New("notify: not implemented")
}

// Link returns an absolute URL at the public origin for path (which must
// start with "/") and an optional token parameter.
func (m *Mailer) Link(path, token string) string { return "" }
