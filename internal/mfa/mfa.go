// Package mfa is moat's second-factor service: authenticator apps (TOTP),
// security keys and passkeys (WebAuthn), SMS codes, backup codes, step-up,
// and the per-account and platform 2FA settings.
//
// Adapters (web pages, JSON API) call Service; the sign-in state machine in
// internal/account calls the Factors (account.Factor). The algorithms live in
// subpackages (totp, webauthn, sms, backup); this package holds the rules:
//
//   - A code works once. A TOTP time step is accepted once ever per account,
//     an SMS or backup code once; the check-and-spend is one atomic store
//     update, so of concurrent requests with the same code exactly one wins.
//   - Wrong codes are throttled per account (every attempt counts before it
//     is checked, so parallel guessing gains nothing).
//   - Adding or removing a factor, regenerating backup codes and changing
//     2FA settings need a fresh second factor (step-up) once the account has
//     one; every factor change is audited and e-mailed to the owner (through
//     the Recorder, inside the change's transaction).
//   - Secrets at rest: TOTP seeds are sealed (secrets.Box), codes are kept
//     only as keyed hashes.
package mfa

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/mfa/backup"
	"github.com/moat-dev/moat/internal/mfa/sms"
	"github.com/moat-dev/moat/internal/mfa/webauthn"
	"github.com/moat-dev/moat/internal/ratelimit"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

// Method names: the stable values of account.Factor.Name, API fields and
// form values. Listed in the order the sign-in page offers them.
const (
	MethodWebAuthn   = "webauthn"
	MethodTOTP       = "totp"
	MethodSMS        = "sms"
	MethodBackupCode = "backup_code"
)

// Config holds the service's settings. DefaultConfig has DESIGN.md's values.
type Config struct {
	// Issuer names moat in authenticator apps and text messages (the brand).
	Issuer string
	// WebAuthn is the relying party (RP ID and origins from the public
	// origin).
	WebAuthn webauthn.Config
	// MaxSecurityKeys is the most security keys and passkeys an account may
	// register.
	MaxSecurityKeys int
	// StepUpWithin is how recent a second factor must be for security
	// changes.
	StepUpWithin time.Duration
	// CodeAttempts wrong-or-right code attempts (TOTP, SMS, backup) per
	// account are allowed per CodeWindow; a success starts over.
	CodeAttempts int
	CodeWindow   time.Duration
	// SMS: a code lives SMSCodeTTL, allows SMSCodeTries guesses, and at most
	// SMSSends codes go to an account (and to a number) per SMSSendWindow.
	SMSCodeTTL    time.Duration
	SMSCodeTries  int
	SMSSends      int
	SMSSendWindow time.Duration
	// CeremonyTTL bounds a WebAuthn ceremony from begin to finish.
	CeremonyTTL time.Duration
	// BackupCodes is how many codes a set has.
	BackupCodes int
	// QRCodeSize is the TOTP QR image's width and height in pixels.
	QRCodeSize int
	// Policy is the platform's 2FA policy.
	Policy Policy
}

// DefaultConfig returns DESIGN.md's defaults. WebAuthn must still be filled
// from the public origin.
func DefaultConfig() Config {
	return Config{
		Issuer:          "moat",
		MaxSecurityKeys: 5,
		StepUpWithin:    5 * time.Minute,
		CodeAttempts:    5,
		CodeWindow:      15 * time.Minute,
		SMSCodeTTL:      5 * time.Minute,
		SMSCodeTries:    5,
		SMSSends:        3,
		SMSSendWindow:   15 * time.Minute,
		CeremonyTTL:     5 * time.Minute,
		BackupCodes:     backup.Count,
		QRCodeSize:      256,
		Policy:          Policy{StaffSecurityKey: true},
	}
}

// Deps are the service's collaborators.
type Deps struct {
	// Store holds the factors (store.MFAQueries), in the same database as
	// the accounts they belong to.
	Store store.Store
	Clock clock.Clock
	// Rand is the source of every secret and ID (crypto/rand.Reader).
	Rand io.Reader
	// Box seals TOTP seeds.
	Box *secrets.Box
	// HashKey keys the hashes of backup and SMS codes (at least 32 bytes,
	// derived from the master key).
	HashKey []byte
	// Counter holds the throttling counters (Redis when there are several
	// nodes).
	Counter ratelimit.Counter
	// SMS sends text messages; nil disables SMS as a method.
	SMS sms.Sender
	// Recorder audits and e-mails factor changes.
	Recorder Recorder
}

// Service is the second-factor capability.
type Service struct {
	cfg      Config
	store    store.Store
	clock    clock.Clock
	rand     io.Reader
	box      *secrets.Box
	hashKey  []byte
	counter  ratelimit.Counter
	sms      sms.Sender
	recorder Recorder
	rp       *webauthn.RP
}

// New checks cfg and d and returns the service.
func New(cfg Config, d Deps) (*Service, error) {
	switch {
	case d.Store == nil, d.Clock == nil, d.Rand == nil, d.Box == nil, d.Counter == nil, d.Recorder == nil:
		return nil, errors.New("mfa: Store, Clock, Rand, Box, Counter and Recorder are required")
	case len(d.HashKey) < 32:
		return nil, errors.New("mfa: HashKey must be at least 32 bytes")
	case cfg.Issuer == "":
		return nil, errors.New("mfa: Issuer is required")
	case cfg.MaxSecurityKeys < 1, cfg.StepUpWithin <= 0, cfg.CodeAttempts < 1, cfg.CodeWindow <= 0,
		cfg.SMSCodeTTL <= 0, cfg.SMSCodeTries < 1, cfg.SMSSends < 1, cfg.SMSSendWindow <= 0,
		cfg.CeremonyTTL <= 0, cfg.BackupCodes < 1, cfg.QRCodeSize < 64:
		return nil, fmt.Errorf("mfa: config out of range: %+v", cfg)
	}
	if cfg.WebAuthn.RPDisplayName == "" {
		cfg.WebAuthn.RPDisplayName = cfg.Issuer
	}
	rp, err := webauthn.New(cfg.WebAuthn, d.Rand)
	if err != nil {
		return nil, err
	}
	return &Service{
		cfg: cfg, store: d.Store, clock: d.Clock, rand: d.Rand, box: d.Box, hashKey: d.HashKey,
		counter: d.Counter, sms: d.SMS, recorder: d.Recorder, rp: rp,
	}, nil
}

// Factors returns the second factors for account.Service.RegisterFactor, in
// the order the sign-in page offers them: security key, app, SMS (when a
// sender is configured), backup code.
func (s *Service) Factors() []account.Factor {
	fs := []account.Factor{webauthnFactor{s}, totpFactor{s}}
	if s.sms != nil {
		fs = append(fs, smsFactor{s})
	}
	return append(fs, backupFactor{s})
}
