// Package notify renders moat's messages and delivers them through a
// transactional outbox: a message is written in the same transaction as the
// event that causes it, and a worker sends it later with retries, so a crash
// between commit and send loses nothing.
//
// The pieces:
//   - Mailer renders an Email from a template (templates.go) and writes it
//     to the outbox through the caller's transaction (Enqueue).
//   - Worker claims due outbox messages, hands each to the Sender for its
//     channel, and records success or schedules a retry with backoff. Call
//     Worker.Kick after the transaction commits so the message goes out at
//     once.
//   - SMTPSender delivers e-mail; DevSender delivers nothing (development
//     mode shows e-mail from the outbox in the dev mailbox).
package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"text/template"
	"time"
	"unicode"

	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

// ChannelEmail is the outbox channel of e-mail.
const ChannelEmail = "email"

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

// MailerConfig configures a Mailer.
type MailerConfig struct {
	// Brand is the product name shown in subjects and the footer.
	Brand string
	// PublicOrigin is scheme://host[:port] (http or https, nothing after
	// the host). Every link in every e-mail points under it.
	PublicOrigin string
	// From is the address e-mail is sent from, named in the footer so
	// people can tell real messages from fakes. Optional.
	From string
	// Box, when set, seals every body in the outbox (seal.go); give the
	// Worker (WorkerOptions.Box) and anything else that reads the outbox
	// the same Box. Nil stores bodies in plain text (tests).
	Box *secrets.Box
}

// Mailer renders e-mails and writes them to the outbox.
type Mailer struct {
	brand  string
	origin string // scheme://host[:port], no trailing slash
	from   string
	clock  clock.Clock
	rand   io.Reader
	box    *secrets.Box
	tmpls  map[string]parsedTemplate
}

type parsedTemplate struct {
	spec    templateSpec
	subject *template.Template
	body    *template.Template
}

// Limits on values shown in e-mails.
const (
	maxValueRunes = 200 // a Data value that is not a link
	maxCodeRunes  = 64  // the anti-phishing code
)

// NewMailer checks cfg, parses the templates, and returns a Mailer that
// stamps messages with clk and draws message IDs from rand.
func NewMailer(cfg MailerConfig, clk clock.Clock, rand io.Reader) (*Mailer, error) {
	origin, err := parseOrigin(cfg.PublicOrigin)
	if err != nil {
		return nil, err
	}
	brand := strings.TrimSpace(cfg.Brand)
	if brand == "" || brand != cleanText(brand, maxValueRunes) {
		return nil, fmt.Errorf("notify: brand %q must be non-empty plain text on one line", cfg.Brand)
	}
	if cfg.From != "" {
		if err := checkAddress(cfg.From); err != nil {
			return nil, fmt.Errorf("notify: from address: %w", err)
		}
	}
	m := &Mailer{brand: brand, origin: origin, from: cfg.From, clock: clk, rand: rand, box: cfg.Box,
		tmpls: make(map[string]parsedTemplate, len(templateSpecs))}
	for name, spec := range templateSpecs {
		subj, err := template.New(name + ".subject").Option("missingkey=error").Parse(spec.subject)
		if err != nil {
			return nil, fmt.Errorf("notify: template %s: %w", name, err)
		}
		body, err := template.New(name).Option("missingkey=error").Parse(spec.body)
		if err != nil {
			return nil, fmt.Errorf("notify: template %s: %w", name, err)
		}
		m.tmpls[name] = parsedTemplate{spec: spec, subject: subj, body: body}
	}
	return m, nil
}

// parseOrigin accepts exactly scheme://host[:port] (an optional trailing
// "/" is dropped) and returns it with scheme and host lower-cased.
func parseOrigin(s string) (string, error) {
	u, err := url.Parse(strings.TrimSuffix(s, "/"))
	if err != nil {
		return "", fmt.Errorf("notify: public origin %q: %w", s, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || strings.ContainsAny(s, "?#") {
		return "", fmt.Errorf("notify: public origin %q must be http(s)://host[:port] and nothing else", s)
	}
	return u.Scheme + "://" + strings.ToLower(u.Host), nil
}

// checkAddress accepts a bare address ("a@example.com", no display name).
func checkAddress(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return fmt.Errorf("%q is not an e-mail address: %w", s, err)
	}
	if a.Name != "" || a.Address != s {
		return fmt.Errorf("%q must be a bare address", s)
	}
	return nil
}

// Link returns an absolute URL at the public origin for path (which must
// start with "/") and an optional token parameter. It returns "" when path
// is not an absolute path without query or fragment; Enqueue refuses an
// empty link, so a mistake fails loudly rather than mailing a broken link.
func (m *Mailer) Link(path, token string) string {
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "?#") {
		return ""
	}
	u := m.origin + (&url.URL{Path: path}).EscapedPath()
	if token != "" {
		u += "?token=" + url.QueryEscape(token)
	}
	return u
}

// Enqueue renders e and writes it to the outbox through q (pass the
// transaction's Queries). It returns an error, and writes nothing, for an
// unknown template, a missing, unknown or invalid Data value, a link that
// is not at the public origin, or a bad recipient address.
func (m *Mailer) Enqueue(ctx context.Context, q store.Queries, e Email) error {
	if err := checkAddress(e.To); err != nil {
		return fmt.Errorf("notify: recipient: %w", err)
	}
	subject, body, err := m.render(e)
	if err != nil {
		return err
	}
	id, err := secrets.NewID(m.rand)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	if body, err = sealBody(m.box, id, body); err != nil {
		return fmt.Errorf("notify: seal %s: %w", e.Template, err)
	}
	now := m.clock.Now().UTC().Truncate(time.Microsecond)
	err = q.EnqueueOutbox(ctx, store.OutboxMessage{
		ID:            id,
		Channel:       ChannelEmail,
		To:            e.To,
		Subject:       subject,
		Body:          body,
		CreatedAt:     now,
		NextAttemptAt: now,
	})
	if err != nil {
		return fmt.Errorf("notify: enqueue %s: %w", e.Template, err)
	}
	return nil
}

// render returns the subject and body of e.
func (m *Mailer) render(e Email) (subject, body string, err error) {
	t, ok := m.tmpls[e.Template]
	if !ok {
		return "", "", fmt.Errorf("notify: unknown template %q", e.Template)
	}
	vals, err := m.values(e.Template, t.spec, e.Data)
	if err != nil {
		return "", "", err
	}
	var sb, bb bytes.Buffer
	if err := t.subject.Execute(&sb, vals); err != nil {
		return "", "", fmt.Errorf("notify: render %s: %w", e.Template, err)
	}
	if err := t.body.Execute(&bb, vals); err != nil {
		return "", "", fmt.Errorf("notify: render %s: %w", e.Template, err)
	}

	var out strings.Builder
	if code := cleanText(e.AntiPhishingCode, maxCodeRunes); code != "" {
		fmt.Fprintf(&out, "Your anti-phishing code: %s\n\n", code)
	}
	out.WriteString("Hello,\n\n")
	out.WriteString(strings.TrimSpace(bb.String()))
	out.WriteString("\n\n-- \n")
	home := m.origin + "/"
	fmt.Fprintf(&out, "%s · %s\n", m.brand, home)
	fmt.Fprintf(&out, "%s will never ask for your password, two-step verification codes or backup codes, by e-mail, phone or chat.\n", m.brand)
	fmt.Fprintf(&out, "Links in our e-mails always start with %s\n", home)
	if m.from != "" {
		fmt.Fprintf(&out, "Our e-mails come from %s.\n", m.from)
	}
	return strings.TrimSpace(sb.String()), out.String(), nil
}

// values checks data against the template's keys and returns what the
// template sees: cleaned values, links checked, Brand and Home added.
func (m *Mailer) values(name string, spec templateSpec, data map[string]string) (map[string]string, error) {
	vals := map[string]string{"Brand": m.brand, "Home": m.origin + "/"}
	for k := range data {
		if !slices.Contains(spec.required, k) && !slices.Contains(spec.optional, k) {
			return nil, fmt.Errorf("notify: template %s does not use data key %q", name, k)
		}
	}
	for _, k := range spec.optional {
		vals[k] = ""
	}
	for k, v := range data {
		if strings.HasSuffix(k, "Link") {
			if v == "" && slices.Contains(spec.optional, k) {
				continue
			}
			if err := m.checkLink(v); err != nil {
				return nil, fmt.Errorf("notify: template %s, %s: %w", name, k, err)
			}
			vals[k] = v
			continue
		}
		vals[k] = cleanText(v, maxValueRunes)
	}
	for _, k := range spec.required {
		if vals[k] == "" {
			return nil, fmt.Errorf("notify: template %s needs data key %q", name, k)
		}
	}
	return vals, nil
}

// checkLink accepts only an absolute URL under the public origin, with no
// spaces or control characters.
func (m *Mailer) checkLink(v string) error {
	if !strings.HasPrefix(v, m.origin+"/") {
		return fmt.Errorf("link %q is not at the public origin %s", v, m.origin)
	}
	if strings.IndexFunc(v, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("link %q contains spaces or control characters", v)
	}
	if _, err := url.Parse(v); err != nil {
		return fmt.Errorf("link %q: %w", v, err)
	}
	return nil
}

// cleanText makes an untrusted value (a device name from a User-Agent, an
// anti-phishing phrase) safe to show inside an e-mail: invalid UTF-8,
// control and invisible formatting characters (newlines, bidi overrides)
// are dropped so it cannot add lines or disguise itself; runs of spaces
// collapse; it is cut to max runes; and "://" becomes "[:]//" so a URL in
// it is not made clickable by mail clients (only our own links are).
func cleanText(s string, max int) string {
	s = strings.ToValidUTF8(s, "")
	var b strings.Builder
	n := 0
	space := false
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r), !unicode.IsPrint(r):
			continue
		}
		if n >= max || (space && n+1 >= max) {
			break
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return strings.ReplaceAll(b.String(), "://", "[:]//")
}

// errNoSender is recorded when no Sender is configured for a channel.
var errNoSender = errors.New("notify: no sender for this channel")

// Time formats a time for people reading an e-mail: the same words in
// every message ("Wed 25 Nov 2026 14:05 UTC").
func Time(t time.Time) string { return t.UTC().Format("Mon 2 Jan 2006 15:04 MST") }

// OrUnknown keeps a required value non-empty: "unknown" for "" (an IP
// address or device a request did not reveal).
func OrUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
