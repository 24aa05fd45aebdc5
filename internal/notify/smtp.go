package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	mail "github.com/wneessen/go-mail"

	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/store"
)

// SMTPConfig configures an SMTPSender.
type SMTPConfig struct {
	Host string
	// Port defaults to 587 for "starttls", 465 for "tls" and 25 for "none".
	Port     int
	Username string
	Password string
	// From is the bare sender address, e.g. "security@exchange.example".
	From string
	// Brand is shown as the sender's name: "Brand <From>".
	Brand string
	// TLS is "starttls" (the default when empty: the server must offer
	// STARTTLS or nothing is sent), "tls" (implicit TLS, usually port 465)
	// or "none" (plain text; only to a relay on localhost).
	TLS string
	// RootCAs verifies the server's certificate; nil means the system
	// roots. Set it for a private CA (and in tests).
	RootCAs *x509.CertPool
	// Timeout bounds connecting and each SMTP command (default 30s).
	Timeout time.Duration
}

// SMTPSender delivers e-mail through an SMTP server. The server's
// certificate is always verified; credentials are only ever sent over TLS.
type SMTPSender struct {
	cfg   SMTPConfig
	opts  []mail.Option
	clock clock.Clock
}

var _ Sender = (*SMTPSender)(nil)

// NewSMTPSender checks cfg and returns a sender that dates messages with
// clk.
func NewSMTPSender(cfg SMTPConfig, clk clock.Clock) (*SMTPSender, error) {
	if cfg.Host == "" {
		return nil, errors.New("notify: smtp host is required")
	}
	if err := checkAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("notify: smtp from: %w", err)
	}
	if strings.ContainsAny(cfg.Brand, "\r\n") {
		return nil, errors.New("notify: smtp brand must be one line")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.TLS == "" {
		cfg.TLS = "starttls"
	}
	opts := []mail.Option{mail.WithTimeout(cfg.Timeout)}
	port := cfg.Port
	switch cfg.TLS {
	case "starttls":
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
		if port == 0 {
			port = 587
		}
	case "tls":
		opts = append(opts, mail.WithSSL())
		if port == 0 {
			port = 465
		}
	case "none":
		if !isLoopback(cfg.Host) {
			return nil, fmt.Errorf("notify: smtp tls \"none\" is only allowed for a relay on localhost, not %q", cfg.Host)
		}
		if cfg.Username != "" {
			return nil, errors.New("notify: smtp credentials need tls \"starttls\" or \"tls\"; they are never sent in plain text")
		}
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
		if port == 0 {
			port = 25
		}
	default:
		return nil, fmt.Errorf("notify: smtp tls %q: want starttls, tls or none", cfg.TLS)
	}
	opts = append(opts, mail.WithPort(port), mail.WithTLSConfig(&tls.Config{
		ServerName: cfg.Host,
		RootCAs:    cfg.RootCAs,
		MinVersion: tls.VersionTLS12,
	}))
	if cfg.Username != "" {
		// PLAIN or LOGIN, whichever the server offers; go-mail refuses both
		// on an unencrypted connection.
		opts = append(opts,
			mail.WithOpportunisticSMTPAuth(mail.SMTPAuthPlain, mail.SMTPAuthLogin),
			mail.WithUsername(cfg.Username), mail.WithPassword(cfg.Password))
	}
	// Build a client once now so that option errors surface at start-up.
	if _, err := mail.NewClient(cfg.Host, opts...); err != nil {
		return nil, fmt.Errorf("notify: smtp: %w", err)
	}
	return &SMTPSender{cfg: cfg, opts: opts, clock: clk}, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Send delivers m as a plain-text UTF-8 e-mail. Its Message-ID is derived
// from the outbox ID, so a retried message keeps its identity. A recipient
// or sender the server refuses for good (5xx) comes back as a
// *PermanentError so the worker does not retry it.
func (s *SMTPSender) Send(ctx context.Context, m store.OutboxMessage) error {
	msg := mail.NewMsg(mail.WithNoDefaultUserAgent(), mail.WithCharset(mail.CharsetUTF8))
	if err := msg.FromFormat(s.cfg.Brand, s.cfg.From); err != nil {
		return fmt.Errorf("notify: from: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return &PermanentError{Err: fmt.Errorf("notify: recipient: %w", err)}
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(m.ID + "@" + domainOf(s.cfg.From))
	msg.SetDateWithValue(s.clock.Now())
	// Automated message: ask mail systems not to send auto-replies.
	msg.SetGenHeader(mail.Header("Auto-Submitted"), "auto-generated")
	msg.SetBodyString(mail.TypeTextPlain, m.Body)

	client, err := mail.NewClient(s.cfg.Host, s.opts...)
	if err != nil {
		return fmt.Errorf("notify: smtp: %w", err)
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		var se *mail.SendError
		if errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500 &&
			(se.Reason == mail.ErrSMTPRcptTo || se.Reason == mail.ErrSMTPMailFrom) {
			return &PermanentError{Err: fmt.Errorf("notify: smtp: %w", err)}
		}
		return fmt.Errorf("notify: smtp: %w", err)
	}
	return nil
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return "localhost"
}

// DevSender accepts every message and delivers none: in development mode
// the dev mailbox page shows e-mail straight from the outbox
// (store.ListOutbox), so marking it sent is all that is needed.
type DevSender struct{}

var _ Sender = DevSender{}

// Send returns nil.
func (DevSender) Send(context.Context, store.OutboxMessage) error { return nil }
