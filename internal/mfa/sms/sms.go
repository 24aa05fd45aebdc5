// Package sms sends the text messages that carry SMS sign-in codes, and
// reads phone numbers.
//
// Sender is the edge of the system: HTTPSender posts to a Twilio-style HTTP
// API (a form POST with basic auth), DevOutbox keeps messages in memory for
// the development mailbox. Messages here carry one-time codes in clear, so
// they are never written to the database or the log; the code's hash is what
// internal/mfa keeps.
package sms

import (
	"context"
	"fmt"
)

// WeakestOptionNotice is the copy every page and API response that offers
// SMS shows next to it: SMS is the weakest second factor and the person
// should know why before choosing it.
const WeakestOptionNotice = "Text messages are the weakest way to protect your account. " +
	"Someone who persuades your mobile carrier to move your number to their SIM card (a \u201cSIM swap\u201d), " +
	"or who intercepts your texts, receives your codes. Use an authenticator app or a security key if you can, " +
	"and keep SMS only as a fallback."

// Message is one text message.
type Message struct {
	// To is an E.164 number (see ParsePhone).
	To string
	// Body is the text. It may hold a code: never log it.
	Body string
}

// Sender delivers a text message.
type Sender interface {
	// Send delivers m or returns an error saying why not (never containing
	// credentials or the message body).
	Send(ctx context.Context, m Message) error
}

// CodeBody is the text of a sign-in code message. It names the brand so the
// person knows who sent it, and warns against sharing the code, which is how
// most SMS codes are stolen.
func CodeBody(brand, code string, ttlMinutes int) string {
	return fmt.Sprintf("Your %s code is %s. It expires in %d minutes. Never share it: %s staff will never ask for it.",
		brand, code, ttlMinutes, brand)
}
