package notify

import (
	"bytes"
	"context"
	"errors"
	"maps"
	mrand "math/rand/v2"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/store"
)

const origin = "https://moat.example"

var t0 = time.Date(2030, 3, 4, 5, 6, 7, 891234567, time.UTC)

func newTestMailer(t *testing.T) (*Mailer, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(t0)
	m, err := NewMailer(MailerConfig{Brand: "Moat", PublicOrigin: origin, From: "security@moat.example"},
		clk, mrand.NewChaCha8([32]byte{7})) // deterministic, distinct IDs
	if err != nil {
		t.Fatal(err)
	}
	return m, clk
}

// fullData returns a value for every key the template uses: links built
// with Link, plain values made recognisable.
func fullData(m *Mailer, spec templateSpec) map[string]string {
	d := map[string]string{}
	for _, k := range append(slices.Clone(spec.required), spec.optional...) {
		switch {
		case strings.HasSuffix(k, "Link"):
			d[k] = m.Link("/"+strings.ToLower(k), "tok-"+k)
		case k == "Code":
			d[k] = "482913"
		default:
			d[k] = "value-of-" + k
		}
	}
	return d
}

var urlRE = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s]*`)

func TestTemplates(t *testing.T) {
	m, _ := newTestMailer(t)
	names := slices.Sorted(maps.Keys(templateSpecs))
	if len(names) < 8 {
		t.Fatalf("only %d templates", len(names))
	}
	for _, name := range names {
		spec := templateSpecs[name]
		for _, code := range []string{"", "blue falcon 42"} {
			t.Run(name+"/code="+code, func(t *testing.T) {
				data := fullData(m, spec)
				subject, body, err := m.render(Email{Template: name, To: "a@b.example", AntiPhishingCode: code, Data: data})
				if err != nil {
					t.Fatal(err)
				}
				if subject == "" || strings.ContainsAny(subject, "\r\n") || !strings.Contains(subject, "Moat") {
					t.Errorf("subject %q: want one non-empty line naming the brand", subject)
				}
				lines := strings.Split(body, "\n")
				codeLine := "Your anti-phishing code: " + code
				if code != "" {
					if lines[0] != codeLine {
						t.Errorf("first line %q, want %q", lines[0], codeLine)
					}
					lines = lines[2:]
				}
				if c := strings.Count(body, "anti-phishing code: "); (code != "") != (c == 1) || c > 1 {
					t.Errorf("anti-phishing line appears %d times with code %q", c, code)
				}
				if lines[0] != "Hello," {
					t.Errorf("greeting %q, want Hello,", lines[0])
				}
				if !strings.Contains(body, "\n-- \nMoat · "+origin+"/\n") {
					t.Errorf("footer with brand missing:\n%s", body)
				}
				// Every value is shown; links and the code exactly.
				for k, v := range data {
					if !strings.Contains(body, v) {
						t.Errorf("%s (%q) missing from body", k, v)
					}
				}
				// The only links are at the public origin.
				for _, u := range urlRE.FindAllString(body, -1) {
					if !strings.HasPrefix(u, origin+"/") {
						t.Errorf("link %q is not at %s/", u, origin)
					}
				}
				if strings.Contains(body, "{{") || strings.Contains(body, "<no value>") {
					t.Errorf("unrendered template text:\n%s", body)
				}
				if !utf8.ValidString(body) {
					t.Error("body is not valid UTF-8")
				}
			})
		}
	}
}

func TestTemplateErrors(t *testing.T) {
	m, _ := newTestMailer(t)
	for name, spec := range templateSpecs {
		t.Run(name, func(t *testing.T) {
			for _, k := range spec.required {
				d := fullData(m, spec)
				delete(d, k)
				if _, _, err := m.render(Email{Template: name, Data: d}); err == nil {
					t.Errorf("missing %s accepted", k)
				}
				d = fullData(m, spec)
				d[k] = ""
				if _, _, err := m.render(Email{Template: name, Data: d}); err == nil {
					t.Errorf("empty %s accepted", k)
				}
			}
			d := fullData(m, spec)
			d["Typo"] = "x"
			if _, _, err := m.render(Email{Template: name, Data: d}); err == nil {
				t.Error("unknown data key accepted")
			}
			// Links that leave the public origin, however they try.
			for k := range fullData(m, spec) {
				if !strings.HasSuffix(k, "Link") {
					continue
				}
				for _, evil := range []string{
					"https://evil.example/secure",
					"https://moat.example.evil.example/secure",
					"https://moat.example@evil.example/secure",
					"http://moat.example/secure", // downgraded scheme
					"//evil.example/secure",
					"/secure",
					"javascript:alert(1)",
					"https://moat.example",
					"https://moat.example/ok\nhttps://evil.example/",
					"https://moat.example/ok https://evil.example/",
				} {
					d := fullData(m, spec)
					d[k] = evil
					if _, _, err := m.render(Email{Template: name, Data: d}); err == nil {
						t.Errorf("%s = %q accepted", k, evil)
					}
				}
			}
		})
	}
	if _, _, err := m.render(Email{Template: "nope"}); err == nil {
		t.Error("unknown template accepted")
	}
}

func TestSignInLockedOptionalSecureLink(t *testing.T) {
	m, _ := newTestMailer(t)
	_, body, err := m.render(Email{Template: TemplateSignInLocked,
		Data: map[string]string{"Until": "05:21 UTC", "IP": "198.51.100.7"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(body, "secure your account now") {
		t.Errorf("secure-account paragraph without a link:\n%s", body)
	}
	_, body, err = m.render(Email{Template: TemplateSignInLocked,
		Data: map[string]string{"Until": "05:21 UTC", "IP": "198.51.100.7", "SecureLink": m.Link("/secure", "t")}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "secure your account now") || !strings.Contains(body, origin+"/secure?token=t") {
		t.Errorf("secure-account paragraph missing:\n%s", body)
	}
}

// TestUntrustedValuesStayInert: a device name comes from the User-Agent,
// which an attacker chooses. It must not add lines (a fake anti-phishing
// line, a fake paragraph) or a clickable link to the victim's e-mail.
func TestUntrustedValuesStayInert(t *testing.T) {
	m, _ := newTestMailer(t)
	evilUA := "Firefox\n\nYour anti-phishing code: blue falcon 42\r\nSecure your account at https://evil.example/x \u202egnp.exe"
	_, body, err := m.render(Email{Template: TemplateNewSignIn, AntiPhishingCode: "real code", Data: map[string]string{
		"IP": "198.51.100.7", "Device": evilUA, "Time": "now", "SecureLink": m.Link("/secure", "t"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(body, "Your anti-phishing code: real code\n") {
		t.Errorf("forged anti-phishing line got through:\n%s", body)
	}
	if strings.Contains(body, "https://evil.example") || strings.ContainsRune(body, '\u202e') || strings.Contains(body, "\r") {
		t.Errorf("live link or control characters got through:\n%s", body)
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "Your anti-phishing code: blue") {
			t.Errorf("forged line %q", line)
		}
	}
	// The anti-phishing code itself is cleaned too.
	_, body, _ = m.render(Email{Template: TemplateAntiPhishingSet, AntiPhishingCode: "a\nb"})
	if !strings.HasPrefix(body, "Your anti-phishing code: a b\n") {
		t.Errorf("code not kept on one line:\n%s", body)
	}
}

func TestEnqueue(t *testing.T) {
	m, clk := newTestMailer(t)
	s := newFakeStore()
	ctx := context.Background()
	link := m.Link("/confirm-email", "secret-token")
	if err := m.Enqueue(ctx, s, Email{Template: TemplateConfirmEmail, To: "alice@example.com",
		AntiPhishingCode: "otter", Data: map[string]string{"Link": link}}); err != nil {
		t.Fatal(err)
	}
	msgs, _ := s.ListOutbox(ctx, ChannelEmail, 10)
	if len(msgs) != 1 {
		t.Fatalf("%d messages in the outbox", len(msgs))
	}
	got := msgs[0]
	now := clk.Now().Truncate(time.Microsecond)
	if got.ID == "" || got.Channel != "email" || got.To != "alice@example.com" ||
		!got.CreatedAt.Equal(now) || !got.NextAttemptAt.Equal(now) || got.Attempts != 0 || !got.SentAt.IsZero() {
		t.Errorf("outbox message = %+v", got)
	}
	if !strings.Contains(got.Body, link) || !strings.HasPrefix(got.Body, "Your anti-phishing code: otter\n") {
		t.Errorf("body:\n%s", got.Body)
	}

	// Refusals write nothing.
	for _, e := range []Email{
		{Template: TemplateConfirmEmail, To: "bob@example.com"},
		{Template: "nope", To: "bob@example.com"},
		{Template: TemplateConfirmEmail, To: "bob@example.com", Data: map[string]string{"Link": "https://evil.example/"}},
		{Template: TemplateConfirmEmail, To: "not an address", Data: map[string]string{"Link": link}},
		{Template: TemplateConfirmEmail, To: "bob@example.com\r\nBcc: eve@example.com", Data: map[string]string{"Link": link}},
		{Template: TemplateConfirmEmail, To: "Bob <bob@example.com>", Data: map[string]string{"Link": link}},
	} {
		if err := m.Enqueue(ctx, s, e); err == nil {
			t.Errorf("Enqueue(%+v) accepted", e)
		}
	}
	if msgs, _ := s.ListOutbox(ctx, ChannelEmail, 10); len(msgs) != 1 {
		t.Errorf("refused e-mails were written: %d messages", len(msgs))
	}

	// A store error is returned.
	broken := errors.New("disk full")
	if err := m.Enqueue(ctx, failingEnqueue{err: broken}, Email{Template: TemplateConfirmEmail, To: "a@b.example",
		Data: map[string]string{"Link": link}}); !errors.Is(err, broken) {
		t.Errorf("store error = %v, want %v", err, broken)
	}
}

type failingEnqueue struct {
	store.Queries
	err error
}

func (f failingEnqueue) EnqueueOutbox(context.Context, store.OutboxMessage) error { return f.err }

func TestLink(t *testing.T) {
	m, _ := newTestMailer(t)
	tests := []struct{ path, token, want string }{
		{"/confirm-email", "ab+c/=d", origin + "/confirm-email?token=ab%2Bc%2F%3Dd"},
		{"/signin", "", origin + "/signin"},
		{"/a b", "", origin + "/a%20b"},
		{"confirm", "x", ""},
		{"/a?b=c", "", ""},
		{"/a#frag", "", ""},
		{"", "x", ""},
	}
	for _, tt := range tests {
		if got := m.Link(tt.path, tt.token); got != tt.want {
			t.Errorf("Link(%q, %q) = %q, want %q", tt.path, tt.token, got, tt.want)
		}
	}
}

func TestNewMailerConfig(t *testing.T) {
	ok := MailerConfig{Brand: "Moat", PublicOrigin: origin}
	tests := []struct {
		name    string
		change  func(c *MailerConfig)
		wantErr bool
		origin  string
	}{
		{"https", func(c *MailerConfig) {}, false, origin},
		{"trailing slash", func(c *MailerConfig) { c.PublicOrigin = origin + "/" }, false, origin},
		{"http with port", func(c *MailerConfig) { c.PublicOrigin = "http://localhost:8080" }, false, "http://localhost:8080"},
		{"upper case", func(c *MailerConfig) { c.PublicOrigin = "HTTPS://Moat.Example" }, false, origin},
		{"with from", func(c *MailerConfig) { c.From = "security@moat.example" }, false, origin},
		{"empty origin", func(c *MailerConfig) { c.PublicOrigin = "" }, true, ""},
		{"no scheme", func(c *MailerConfig) { c.PublicOrigin = "moat.example" }, true, ""},
		{"ftp", func(c *MailerConfig) { c.PublicOrigin = "ftp://moat.example" }, true, ""},
		{"path", func(c *MailerConfig) { c.PublicOrigin = origin + "/app" }, true, ""},
		{"query", func(c *MailerConfig) { c.PublicOrigin = origin + "?x=1" }, true, ""},
		{"empty query", func(c *MailerConfig) { c.PublicOrigin = origin + "?" }, true, ""},
		{"fragment", func(c *MailerConfig) { c.PublicOrigin = origin + "#x" }, true, ""},
		{"userinfo", func(c *MailerConfig) { c.PublicOrigin = "https://u:p@moat.example" }, true, ""},
		{"no brand", func(c *MailerConfig) { c.Brand = " " }, true, ""},
		{"two-line brand", func(c *MailerConfig) { c.Brand = "Moat\nBcc: x" }, true, ""},
		{"bad from", func(c *MailerConfig) { c.From = "Moat <security@moat.example>" }, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.change(&c)
			m, err := NewMailer(c, clock.NewFake(t0), bytes.NewReader(nil))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && m.origin != tt.origin {
				t.Fatalf("origin = %q, want %q", m.origin, tt.origin)
			}
		})
	}
}

func TestCleanText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Firefox on Linux", "Firefox on Linux"},
		{"  a \n\t b  ", "a b"},
		{"a\x00b\x1b[31mc", "ab[31mc"},
		{"see https://evil.example/x", "see https[:]//evil.example/x"},
		{"r\u202eev", "rev"},
		{"Zürich — 東京", "Zürich — 東京"},
		{"bad\xffutf8", "badutf8"},
		{strings.Repeat("x", 300), strings.Repeat("x", maxValueRunes)},
	}
	for _, tt := range tests {
		if got := cleanText(tt.in, maxValueRunes); got != tt.want {
			t.Errorf("cleanText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzCleanText: whatever a client sends as its User-Agent, the shown text
// is one line of printable, valid UTF-8, within the limit, with no live
// URL scheme separator.
func FuzzCleanText(f *testing.F) {
	f.Add("Mozilla/5.0 (X11; Linux x86_64)\r\nhttps://evil.example")
	f.Add(":/\u200b/")
	f.Fuzz(func(t *testing.T, s string) {
		out := cleanText(s, 50)
		if !utf8.ValidString(out) || strings.ContainsAny(out, "\r\n\t\x00") || strings.Contains(out, "://") {
			t.Fatalf("cleanText(%q) = %q", s, out)
		}
		if utf8.RuneCountInString(out) > 50+2*strings.Count(out, "[:]//") {
			t.Fatalf("cleanText(%q) too long: %q", s, out)
		}
		if out != strings.TrimSpace(out) {
			t.Fatalf("cleanText(%q) = %q has outer spaces", s, out)
		}
	})
}

// FuzzLinkCheck: a link that passes the check always names the public
// origin as its host when parsed.
func FuzzLinkCheck(f *testing.F) {
	m, err := NewMailer(MailerConfig{Brand: "Moat", PublicOrigin: origin}, clock.NewFake(t0), bytes.NewReader(nil))
	if err != nil {
		f.Fatal(err)
	}
	f.Add("https://moat.example/x?token=1")
	f.Add("https://moat.example/@evil.example")
	f.Add("https://moat.example\\@evil.example/")
	f.Fuzz(func(t *testing.T, s string) {
		if m.checkLink(s) != nil {
			return
		}
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "https" || u.Host != "moat.example" || u.User != nil {
			t.Fatalf("checkLink accepted %q (parsed %+v, %v)", s, u, err)
		}
	})
}
