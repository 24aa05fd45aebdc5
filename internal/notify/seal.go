package notify

import (
	"encoding/base64"
	"errors"
	"strings"

	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

// Outbox bodies at rest.
//
// An e-mail in the outbox carries the one live link or code it exists for
// (a password-reset link works for 30 minutes, a device-approval code for
// 15) until the worker has sent it, and the row stays afterwards. Anyone who
// reads the database (a leaked backup, a read-only SQL injection elsewhere)
// must not be able to take those links. So a Mailer given a Box seals each
// body with AES-GCM, bound to the message ID, and the worker and the
// development mailbox open it just before use. Recipient and subject stay
// readable: they carry no secret and operators need them to trace delivery.

// sealedPrefix marks a sealed body; a body without it was written by a
// Mailer without a Box (or before bodies were sealed) and is plain text.
const sealedPrefix = "sealed:v1:"

// ErrSealedBody is returned by OpenBody for a sealed body it cannot open:
// no Box, the wrong key, or a body copied from another message.
var ErrSealedBody = errors.New("notify: sealed outbox body cannot be opened (no key, wrong key or tampered)")

func sealContext(id string) string { return "outbox:" + id }

// sealBody returns body sealed for message id, or body itself without a
// Box.
func sealBody(box *secrets.Box, id, body string) (string, error) {
	if box == nil {
		return body, nil
	}
	sealed, err := box.Seal([]byte(body), sealContext(id))
	if err != nil {
		return "", err
	}
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(sealed), nil
}

// OpenBody returns m with its body readable. Plain bodies pass through
// unchanged; a sealed one needs the Box it was sealed with (nil box:
// ErrSealedBody).
func OpenBody(box *secrets.Box, m store.OutboxMessage) (store.OutboxMessage, error) {
	rest, sealed := strings.CutPrefix(m.Body, sealedPrefix)
	if !sealed {
		return m, nil
	}
	if box == nil {
		return m, ErrSealedBody
	}
	raw, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil {
		return m, ErrSealedBody
	}
	plain, err := box.Open(raw, sealContext(m.ID))
	if err != nil {
		return m, ErrSealedBody
	}
	m.Body = string(plain)
	return m, nil
}
