package mfatest

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/audit"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/mfa"
	"github.com/moat-dev/moat/internal/mfa/webauthn"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/password"
	"github.com/moat-dev/moat/internal/ratelimit"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

// Origin is the public (and WebAuthn) origin of Services.
const Origin = "http://localhost:8080"

// Services are the account and 2FA services wired to each other as the
// server wires them, over one store: for tests of the account service's
// second-factor paths and of what sits on top of both (recovery).
type Services struct {
	Accounts *account.Service
	MFA      *mfa.Service
	Mailer   *notify.Mailer
	// Box is the AES-GCM box the 2FA service seals with (fixed test key).
	Box *secrets.Box
}

// NewServices builds them over st and ctr with clk and the 2FA policy:
// WebAuthn for Origin, a deliberately cheap password hash (the tests are
// not about argon2's cost), and device approval off (the account tests
// cover it on their own).
func NewServices(t testing.TB, st store.Store, ctr ratelimit.Counter, clk clock.Clock, policy mfa.Policy) Services {
	t.Helper()
	box, err := secrets.NewBox(bytes.Repeat([]byte{1}, 32), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg := mfa.DefaultConfig()
	cfg.WebAuthn = webauthn.Config{RPID: "localhost", Origins: []string{Origin}}
	cfg.Policy = policy
	m, err := mfa.New(cfg, mfa.Deps{
		Store: st, Clock: clk, Rand: rand.Reader, Box: box, HashKey: bytes.Repeat([]byte{2}, 32),
		Counter: ctr, Recorder: NewRecorder(clk),
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := password.NewHasher(password.Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mailer, err := notify.NewMailer(notify.MailerConfig{Brand: "moat", PublicOrigin: Origin}, clk, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	acfg := account.ConfigFrom(config.Default())
	acfg.DeviceApproval = false
	svc := account.New(account.Deps{
		Store: st, Clock: clk, Rand: rand.Reader, Hasher: h, Mailer: mailer, Audit: audit.New(clk),
		Counter: ctr, Config: acfg, CodeKey: bytes.Repeat([]byte{3}, 32),
		SignInPolicy: account.SignInPolicyOf(m, mfa.FunctionSignIn),
		Enrolment:    m,
		StepUp:       m,
		Challenges:   account.ChallengesOf[mfa.Challenge](),
	})
	for _, f := range m.Factors() {
		svc.RegisterFactor(f)
	}
	return Services{Accounts: svc, MFA: m, Mailer: mailer, Box: box}
}
