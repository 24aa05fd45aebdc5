package notify

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/clock"
)

// A new-device e-mail as the account service enqueues it, and the text the
// recipient reads.
func ExampleMailer_Enqueue() {
	clk := clock.NewFake(time.Date(2030, 3, 4, 5, 6, 0, 0, time.UTC))
	m, err := NewMailer(MailerConfig{Brand: "Moat", PublicOrigin: "https://moat.example", From: "security@moat.example"},
		clk, mrand.NewChaCha8([32]byte{})) // crypto/rand.Reader in production
	if err != nil {
		panic(err)
	}
	outbox := newFakeStore() // in the service: the transaction's store.Queries
	err = m.Enqueue(context.Background(), outbox, Email{
		Template:         TemplateNewDeviceCode,
		To:               "alice@example.com",
		AntiPhishingCode: "purple otter",
		Data: map[string]string{
			"Code":       "482913",
			"Link":       m.Link("/signin/approve", "q9J2"),
			"SecureLink": m.Link("/account/secure", "Zx81"),
			"IP":         "198.51.100.7",
			"Device":     "Firefox on Linux",
			"Time":       "4 March 2030, 05:06 UTC",
		},
	})
	if err != nil {
		panic(err)
	}
	msgs, _ := outbox.ListOutbox(context.Background(), ChannelEmail, 1)
	fmt.Println("Subject:", msgs[0].Subject)
	fmt.Println()
	// (The signature separator is "-- " with a trailing space, which an
	// example's expected output cannot show.)
	fmt.Print(strings.ReplaceAll(msgs[0].Body, "-- \n", "--\n"))
	// Output:
	// Subject: Approve a sign-in to Moat from a new device
	//
	// Your anti-phishing code: purple otter
	//
	// Hello,
	//
	// Your password was just used to sign in to Moat from a device we have not seen before:
	//
	//   Device:     Firefox on Linux
	//   IP address: 198.51.100.7
	//   Time:       4 March 2030, 05:06 UTC
	//
	// If this was you, enter this code on the sign-in page:
	//
	//   482913
	//
	// or approve the device by opening this link:
	//
	// https://moat.example/signin/approve?token=q9J2
	//
	// The code and the link work once and expire in a few minutes. Never give this code to anyone, including anyone who says they work for Moat.
	//
	// Wasn't you? Then someone knows your password. Secure your account now: this signs out every session and locks the account so nobody can sign in.
	//
	// https://moat.example/account/secure?token=Zx81
	//
	// --
	// Moat · https://moat.example/
	// Moat will never ask for your password, two-step verification codes or backup codes, by e-mail, phone or chat.
	// Links in our e-mails always start with https://moat.example/
	// Our e-mails come from security@moat.example.
}
