package notify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/store"
)

// smtpServer is a real SMTP server (emersion/go-smtp) on 127.0.0.1 that
// keeps what it receives.
type smtpServer struct {
	host string
	port int

	// user/pass, when set, are required before MAIL FROM.
	user, pass string
	// rcptErr, when set, answers RCPT TO for that address.
	rcptErr map[string]*smtp.SMTPError

	mu       sync.Mutex
	received []receivedMail
}

type receivedMail struct {
	from   string
	to     []string
	data   []byte
	tls    bool
	authed string
}

type serverOptions struct {
	tls        *tls.Config
	user, pass string
	rcptErr    map[string]*smtp.SMTPError
}

func startSMTP(t *testing.T, o serverOptions) *smtpServer {
	t.Helper()
	s := &smtpServer{user: o.user, pass: o.pass, rcptErr: o.rcptErr}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &smtpSession{srv: s, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.TLSConfig = o.tls
	srv.AllowInsecureAuth = false
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().(*net.TCPAddr)
	s.host, s.port = "127.0.0.1", addr.Port
	return s
}

func (s *smtpServer) messages() []receivedMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]receivedMail(nil), s.received...)
}

type smtpSession struct {
	srv  *smtpServer
	conn *smtp.Conn
	cur  receivedMail
}

func (s *smtpSession) AuthMechanisms() []string {
	if s.srv.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != s.srv.user || password != s.srv.pass {
			return smtp.ErrAuthFailed
		}
		s.cur.authed = username
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.srv.user != "" && s.cur.authed == "" {
		return smtp.ErrAuthRequired
	}
	s.cur.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := s.srv.rcptErr[to]; err != nil {
		return err
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = b
	_, s.cur.tls = s.conn.TLSConnectionState()
	s.srv.mu.Lock()
	s.srv.received = append(s.srv.received, s.cur)
	s.srv.mu.Unlock()
	s.cur = receivedMail{authed: s.cur.authed}
	return nil
}

func (s *smtpSession) Reset()        { s.cur = receivedMail{authed: s.cur.authed} }
func (s *smtpSession) Logout() error { return nil }

// selfSigned returns a server TLS config for 127.0.0.1 and a pool that
// trusts it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "moat test smtp"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

// sampleMessage is an outbox message as the Mailer writes it, with
// non-ASCII text to check the UTF-8 path.
func sampleMessage() store.OutboxMessage {
	return store.OutboxMessage{
		ID:      "Abc-123_xyz",
		Channel: ChannelEmail,
		To:      "alice@example.com",
		Subject: "New sign-in to your Moat account",
		Body: "Hello,\n\nYour account was signed in from Zürich — 東京.\n\n" +
			"https://moat.example/secure?token=" + strings.Repeat("t", 43) + "\n\n-- \nMoat · https://moat.example/\n",
	}
}

// checkDelivered parses what the server received and checks headers and
// body against m.
func checkDelivered(t *testing.T, got receivedMail, m store.OutboxMessage, clk clock.Clock) {
	t.Helper()
	if got.from != "security@moat.example" || len(got.to) != 1 || got.to[0] != m.To {
		t.Errorf("envelope from %q to %v", got.from, got.to)
	}
	msg, err := mail.ReadMessage(strings.NewReader(string(got.data)))
	if err != nil {
		t.Fatalf("received message does not parse: %v\n%s", err, got.data)
	}
	h := msg.Header
	from, err := mail.ParseAddress(h.Get("From"))
	if err != nil || from.Name != "Moat" || from.Address != "security@moat.example" {
		t.Errorf("From = %q (%v)", h.Get("From"), err)
	}
	if to, err := mail.ParseAddress(h.Get("To")); err != nil || to.Address != m.To {
		t.Errorf("To = %q (%v)", h.Get("To"), err)
	}
	if h.Get("Subject") != m.Subject {
		t.Errorf("Subject = %q, want %q", h.Get("Subject"), m.Subject)
	}
	if want := "<" + m.ID + "@moat.example>"; h.Get("Message-Id") != want {
		t.Errorf("Message-ID = %q, want %q", h.Get("Message-Id"), want)
	}
	if d, err := h.Date(); err != nil || !d.Equal(clk.Now().Truncate(time.Second)) {
		t.Errorf("Date = %q (%v), want %v", h.Get("Date"), err, clk.Now())
	}
	if ct := strings.ToLower(h.Get("Content-Type")); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(ct, "charset=utf-8") {
		t.Errorf("Content-Type = %q, want text/plain UTF-8", h.Get("Content-Type"))
	}
	if h.Get("Auto-Submitted") != "auto-generated" {
		t.Errorf("Auto-Submitted = %q", h.Get("Auto-Submitted"))
	}
	if h.Get("X-Mailer") != "" || h.Get("User-Agent") != "" {
		t.Errorf("mailer software advertised: %q %q", h.Get("X-Mailer"), h.Get("User-Agent"))
	}
	var body []byte
	switch cte := strings.ToLower(h.Get("Content-Transfer-Encoding")); cte {
	case "quoted-printable":
		body, err = io.ReadAll(quotedprintable.NewReader(msg.Body))
	case "", "7bit", "8bit":
		body, err = io.ReadAll(msg.Body)
	default:
		t.Fatalf("unexpected Content-Transfer-Encoding %q", cte)
	}
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.ReplaceAll(string(body), "\r\n", "\n"); strings.TrimRight(got, "\n") != strings.TrimRight(m.Body, "\n") {
		t.Errorf("body =\n%q\nwant\n%q", got, m.Body)
	}
}

func TestSMTPSenderLocalhostRelay(t *testing.T) {
	srv := startSMTP(t, serverOptions{})
	clk := clock.NewFake(t0)
	s, err := NewSMTPSender(SMTPConfig{Host: srv.host, Port: srv.port, From: "security@moat.example",
		Brand: "Moat", TLS: "none", Timeout: 10 * time.Second}, clk)
	if err != nil {
		t.Fatal(err)
	}
	m := sampleMessage()
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := srv.messages()
	if len(got) != 1 {
		t.Fatalf("server received %d messages", len(got))
	}
	if got[0].tls {
		t.Error("TLS used with tls=none")
	}
	checkDelivered(t, got[0], m, clk)
}

func TestSMTPSenderSTARTTLSWithAuth(t *testing.T) {
	serverTLS, roots := selfSigned(t)
	srv := startSMTP(t, serverOptions{tls: serverTLS, user: "moat", pass: "relay-password"})
	clk := clock.NewFake(t0)
	s, err := NewSMTPSender(SMTPConfig{Host: srv.host, Port: srv.port, From: "security@moat.example",
		Brand: "Moat", TLS: "starttls", Username: "moat", Password: "relay-password", RootCAs: roots,
		Timeout: 10 * time.Second}, clk)
	if err != nil {
		t.Fatal(err)
	}
	m := sampleMessage()
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := srv.messages()
	if len(got) != 1 {
		t.Fatalf("server received %d messages", len(got))
	}
	if !got[0].tls || got[0].authed != "moat" {
		t.Errorf("tls=%v authed=%q, want TLS and user moat", got[0].tls, got[0].authed)
	}
	checkDelivered(t, got[0], m, clk)
}

// TestSMTPSenderRefusesDowngrade: with tls=starttls, a server (or a
// man in the middle) that does not offer STARTTLS, or offers a certificate
// we do not trust, gets nothing: no message, no password.
func TestSMTPSenderRefusesDowngrade(t *testing.T) {
	serverTLS, roots := selfSigned(t)
	tests := []struct {
		name   string
		server serverOptions
		roots  *x509.CertPool
	}{
		{"no STARTTLS offered", serverOptions{user: "moat", pass: "pw"}, roots},
		{"untrusted certificate", serverOptions{tls: serverTLS, user: "moat", pass: "pw"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startSMTP(t, tt.server)
			s, err := NewSMTPSender(SMTPConfig{Host: srv.host, Port: srv.port, From: "security@moat.example",
				TLS: "starttls", Username: "moat", Password: "pw", RootCAs: tt.roots, Timeout: 10 * time.Second},
				clock.NewFake(t0))
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(context.Background(), sampleMessage())
			if err == nil {
				t.Fatal("sent without a trusted TLS connection")
			}
			t.Logf("refused as expected: %v", err)
			if got := srv.messages(); len(got) != 0 {
				t.Fatalf("server received %d messages", len(got))
			}
		})
	}
}

func TestSMTPSenderRefusedRecipient(t *testing.T) {
	srv := startSMTP(t, serverOptions{rcptErr: map[string]*smtp.SMTPError{
		"gone@example.com": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"},
		"busy@example.com": {Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"},
	}})
	s, err := NewSMTPSender(SMTPConfig{Host: srv.host, Port: srv.port, From: "security@moat.example",
		TLS: "none", Timeout: 10 * time.Second}, clock.NewFake(t0))
	if err != nil {
		t.Fatal(err)
	}
	for to, wantPermanent := range map[string]bool{"gone@example.com": true, "busy@example.com": false} {
		m := sampleMessage()
		m.To = to
		err := s.Send(context.Background(), m)
		if err == nil {
			t.Fatalf("%s: accepted", to)
		}
		var p *PermanentError
		if errors.As(err, &p) != wantPermanent {
			t.Errorf("%s: permanent = %v, want %v (%v)", to, !wantPermanent, wantPermanent, err)
		}
	}
}

func TestNewSMTPSenderRefuses(t *testing.T) {
	ok := SMTPConfig{Host: "smtp.example.com", From: "security@moat.example"}
	tests := []struct {
		name   string
		change func(c *SMTPConfig)
	}{
		{"no host", func(c *SMTPConfig) { c.Host = "" }},
		{"no from", func(c *SMTPConfig) { c.From = "" }},
		{"from with name", func(c *SMTPConfig) { c.From = "Moat <security@moat.example>" }},
		{"plain text to a remote host", func(c *SMTPConfig) { c.TLS = "none" }},
		{"plain text to a host that resolves locally", func(c *SMTPConfig) { c.TLS = "none"; c.Host = "localhost.evil.example" }},
		{"credentials in plain text", func(c *SMTPConfig) { c.TLS = "none"; c.Host = "127.0.0.1"; c.Username = "u" }},
		{"unknown tls mode", func(c *SMTPConfig) { c.TLS = "opportunistic" }},
		{"bad port", func(c *SMTPConfig) { c.Port = 70000 }},
		{"two-line brand", func(c *SMTPConfig) { c.Brand = "Moat\r\nBcc: eve@example.com" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.change(&c)
			if _, err := NewSMTPSender(c, clock.NewFake(t0)); err == nil {
				t.Fatalf("accepted %+v", c)
			}
		})
	}
	for _, c := range []SMTPConfig{
		ok,
		{Host: "smtp.example.com", From: "a@b.example", TLS: "tls", Username: "u", Password: "p"},
		{Host: "localhost", From: "a@b.example", TLS: "none"},
		{Host: "::1", From: "a@b.example", TLS: "none", Port: 2525},
	} {
		if _, err := NewSMTPSender(c, clock.NewFake(t0)); err != nil {
			t.Errorf("refused %+v: %v", c, err)
		}
	}
}

// TestEndToEndSMTP: Mailer → outbox → Worker → SMTPSender → a real SMTP
// server, and the outbox records the delivery.
func TestEndToEndSMTP(t *testing.T) {
	srv := startSMTP(t, serverOptions{})
	m, clk := newTestMailer(t)
	st := newFakeStore()
	sender, err := NewSMTPSender(SMTPConfig{Host: srv.host, Port: srv.port, From: "security@moat.example",
		Brand: "Moat", TLS: "none", Timeout: 10 * time.Second}, clk)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err = st.InTx(ctx, func(tx store.Queries) error {
		return m.Enqueue(ctx, tx, Email{Template: TemplateNewDeviceCode, To: "alice@example.com", AntiPhishingCode: "otter",
			Data: map[string]string{"Code": "482913", "Link": m.Link("/approve", "a"), "SecureLink": m.Link("/secure", "s"),
				"IP": "198.51.100.7", "Device": "Safari on iPhone", "Time": "4 March 2030, 05:06 UTC"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWorker(st, map[string]Sender{ChannelEmail: sender}, clk, nil, WorkerOptions{})
	if n, err := w.RunOnce(ctx); n != 1 || err != nil {
		t.Fatalf("RunOnce = %d, %v", n, err)
	}
	outbox, _ := st.ListOutbox(ctx, ChannelEmail, 10)
	if len(outbox) != 1 || outbox[0].SentAt.IsZero() {
		t.Fatalf("outbox = %+v", outbox)
	}
	got := srv.messages()
	if len(got) != 1 {
		t.Fatalf("server received %d messages", len(got))
	}
	checkDelivered(t, got[0], outbox[0], clk)
	if !strings.Contains(string(got[0].data), "482913") {
		t.Error("code missing from the delivered e-mail")
	}
}
