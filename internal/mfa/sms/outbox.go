package sms

import (
	"context"
	"sync"
)

// DevOutbox is the Sender of development mode: it keeps the last messages in
// memory, newest first, for the development mailbox page, and sends nothing.
// Never use it in production: it holds codes in clear.
type DevOutbox struct {
	mu   sync.Mutex
	max  int
	msgs []Message
}

// NewDevOutbox returns an outbox that keeps the last max messages.
func NewDevOutbox(max int) *DevOutbox {
	if max <= 0 {
		max = 100
	}
	return &DevOutbox{max: max}
}

// Send records m.
func (o *DevOutbox) Send(_ context.Context, m Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.msgs = append([]Message{m}, o.msgs...)
	if len(o.msgs) > o.max {
		o.msgs = o.msgs[:o.max]
	}
	return nil
}

// Messages returns the kept messages, newest first.
func (o *DevOutbox) Messages() []Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Message(nil), o.msgs...)
}

// Last returns the newest message to number, if any.
func (o *DevOutbox) Last(to string) (Message, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range o.msgs {
		if m.To == to {
			return m, true
		}
	}
	return Message{}, false
}
