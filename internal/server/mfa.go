package server

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/audit"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/mfa"
	"github.com/moat-dev/moat/internal/mfa/sms"
	"github.com/moat-dev/moat/internal/mfa/webauthn"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/ratelimit"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/web"
)

// This file wires two-factor authentication: the mfa service from
// [mfa] in the config, its SMS sender, the recorder that audits and
// e-mails every factor change (and pauses withdrawals after one), and the
// hooks the account service takes for sign-in, enrolment and step-up.

// Labels of the keys derived from the master key for 2FA and the pages.
const (
	// mfaHashKeyInfo keys the hashes of backup and SMS codes.
	mfaHashKeyInfo = "moat mfa hash key"
	// webFlashKeyInfo seals what a page hands to the next one through the
	// browser (backup codes shown once after a redirect).
	webFlashKeyInfo = "moat web flash key"
)

// smsTimeout bounds one call to the SMS provider.
const smsTimeout = 10 * time.Second

// devSMSKept is how many text messages development mode keeps for the
// dev mailbox.
const devSMSKept = 50

// mfaDeps is what buildMFA takes from New.
type mfaDeps struct {
	cfg       config.Config
	store     store.Store
	clock     clock.Clock
	rand      io.Reader
	box       *secrets.Box
	masterKey []byte
	counter   ratelimit.Counter
	audit     *audit.Log
	mailer    *notify.Mailer
	logger    *slog.Logger
}

// builtMFA is the wired 2FA capability.
type builtMFA struct {
	svc *mfa.Service
	// devSMS holds the text messages of development mode (nil otherwise).
	devSMS   *sms.DevOutbox
	recorder *mfaRecorder
}

// buildMFA builds the 2FA service. SMS codes go through the configured
// HTTP provider; without one, development mode keeps them in memory for
// the dev mailbox, and production does not offer SMS at all.
func buildMFA(d mfaDeps) (*builtMFA, error) {
	hashKey, err := hkdf.Key(sha256.New, d.masterKey, nil, mfaHashKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive 2FA hash key: %w", err)
	}
	b := &builtMFA{recorder: &mfaRecorder{
		audit: d.audit, mailer: d.mailer, clock: d.clock, rand: d.rand,
		hold: d.cfg.Security.SecurityChangeHold,
	}}
	var sender sms.Sender
	switch {
	case d.cfg.MFA.SMS.Configured():
		p := d.cfg.MFA.SMS
		sender, err = sms.NewHTTPSender(sms.HTTPConfig{URL: p.URL, AccountSID: p.AccountSID, AuthToken: p.AuthToken, From: p.From},
			&http.Client{Timeout: smsTimeout})
		if err != nil {
			return nil, fmt.Errorf("mfa.sms: %w", err)
		}
	case d.cfg.Dev:
		b.devSMS = sms.NewDevOutbox(devSMSKept)
		sender = b.devSMS
	}

	mc := mfa.DefaultConfig()
	mc.Issuer = d.cfg.Brand
	mc.WebAuthn = webauthn.Config{
		RPID:          d.cfg.WebAuthnRPID(),
		RPDisplayName: d.cfg.Brand,
		Origins:       d.cfg.WebAuthnOrigins(),
	}
	mc.MaxSecurityKeys = d.cfg.MFA.MaxSecurityKeys
	mc.StepUpWithin = d.cfg.MFA.StepUpWithin
	mc.Policy = mfa.Policy{
		MandatoryForAll:   d.cfg.MFA.MandatoryForAll,
		MandatoryForStaff: d.cfg.MFA.MandatoryForStaff,
		StaffSecurityKey:  d.cfg.MFA.StaffSecurityKey,
	}
	deps := mfa.Deps{
		Store: d.store, Clock: d.clock, Rand: d.rand, Box: d.box, HashKey: hashKey,
		Counter: d.counter, Recorder: b.recorder,
	}
	if sender != nil { // a nil *DevOutbox in the interface would not read as "no SMS"
		deps.SMS = sender
	}
	if b.svc, err = mfa.New(mc, deps); err != nil {
		return nil, err
	}
	if origin := d.cfg.Origin(); !strings.Contains(strings.Join(mc.WebAuthn.Origins, " "), origin) {
		d.logger.Warn("security keys and passkeys work only at the WebAuthn origins, not at the public origin",
			"public_origin", origin, "webauthn_origins", mc.WebAuthn.Origins, "rp_id", mc.WebAuthn.RPID)
	}
	return b, nil
}

// accountHooks are the account service's 2FA dependencies: sign-in asks
// the per-function policy, mandatory enrolment and step-up follow the
// platform policy, and factor challenges (security key requests, SMS
// codes) are mfa's.
func (b *builtMFA) accountHooks(d *account.Deps) {
	d.SignInPolicy = account.SignInPolicyOf(b.svc, mfa.FunctionSignIn)
	d.Enrolment = b.svc
	d.StepUp = b.svc
	d.Challenges = account.ChallengesOf[mfa.Challenge]()
}

// register adds mfa's factors to the sign-in flow and lets the recorder
// drop the account's cached sessions after a change (so the pages show
// the new withdrawal pause at once).
func (b *builtMFA) register(accounts *account.Service) {
	for _, f := range b.svc.Factors() {
		accounts.RegisterFactor(f)
	}
	b.recorder.invalidate = accounts.InvalidateAccount
}

// flashKey derives the key the pages seal their one-time hand-overs with.
func flashKey(masterKey []byte) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, masterKey, nil, webFlashKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive page flash key: %w", err)
	}
	return k, nil
}

// devSMSMessages lists development mode's text messages for the dev
// mailbox (nil when SMS is real or off).
func (b *builtMFA) devSMSMessages() []sms.Message {
	if b == nil || b.devSMS == nil {
		return nil
	}
	return b.devSMS.Messages()
}

// mfaRecorder is the mfa.Recorder of the server: each event goes to the
// audit log; a factor change (or a settings change) also pauses
// withdrawals for security.security_change_hold (DESIGN.md: 24 h after a
// 2FA change); and an event that asks for it e-mails the owner, with a
// link to review the methods and one to secure the account. Everything
// goes through the change's own transaction, so it commits with the
// change or not at all.
type mfaRecorder struct {
	audit  *audit.Log
	mailer *notify.Mailer
	clock  clock.Clock
	rand   io.Reader
	hold   time.Duration
	// invalidate drops an account's cached sessions on this node; set once
	// the account service exists.
	invalidate func(accountID string)
}

var _ mfa.Recorder = (*mfaRecorder)(nil)

// holdEvents are the changes that pause withdrawals: anything that
// changes which second factors protect the account, or where.
var holdEvents = map[string]bool{
	mfa.EventTOTPAdded: true, mfa.EventTOTPRemoved: true,
	mfa.EventKeyAdded: true, mfa.EventKeyRemoved: true,
	mfa.EventPhoneAdded: true, mfa.EventPhoneRemoved: true,
	mfa.EventBackupGenerated: true, mfa.EventSettingsChanged: true,
	mfa.EventLastFactorRemoved: true,
}

// lastFactorSentence starts what mfa appends to a summary when the last
// factor went; the mfa_off e-mail says it in its own, stronger words.
const lastFactorSentence = " Your account no longer has two-factor authentication"

// Record implements mfa.Recorder.
func (r *mfaRecorder) Record(ctx context.Context, q store.Queries, ev mfa.Event) error {
	now := r.clock.Now().UTC().Truncate(time.Microsecond)
	var holdUntil time.Time
	if holdEvents[ev.Type] && r.hold > 0 {
		a, err := q.UpdateAccount(ctx, ev.AccountID, func(a *store.Account) error {
			if until := now.Add(r.hold); until.After(a.SecurityHoldUntil) {
				a.SecurityHoldUntil = until
				a.UpdatedAt = now
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("mfa recorder: security hold: %w", err)
		}
		holdUntil = a.SecurityHoldUntil
		if r.invalidate != nil {
			r.invalidate(ev.AccountID)
		}
	}
	if ev.Notify {
		if err := r.mail(ctx, q, ev, holdUntil, now); err != nil {
			return err
		}
	}
	data := ev.Data
	if ev.LastFactorRemoved {
		data = make(map[string]any, len(ev.Data)+1)
		for k, v := range ev.Data {
			data[k] = v
		}
		data["last_factor_removed"] = true
	}
	// The audit event last: it serialises appends until commit.
	_, err := r.audit.Append(ctx, q, audit.Event{
		Type: ev.Type, AccountID: ev.AccountID, IP: ev.Client.IP, UserAgent: ev.Client.UserAgent, Data: data,
	})
	if err != nil {
		return fmt.Errorf("mfa recorder: audit %s: %w", ev.Type, err)
	}
	return nil
}

// mail queues the owner's e-mail about ev: mfa_off when no factor is
// left, mfa_changed otherwise.
func (r *mfaRecorder) mail(ctx context.Context, q store.Queries, ev mfa.Event, holdUntil, now time.Time) error {
	a, err := q.GetAccount(ctx, ev.AccountID)
	if err != nil {
		return fmt.Errorf("mfa recorder: load account: %w", err)
	}
	tok, err := secrets.NewToken(r.rand)
	if err != nil {
		return err
	}
	if err := q.CreateToken(ctx, store.Token{Hash: secrets.HashToken(tok), Kind: store.TokenSecureAccount,
		AccountID: a.ID, CreatedAt: now, ExpiresAt: now.Add(account.SecureLinkTTL)}); err != nil {
		return fmt.Errorf("mfa recorder: create secure-account token: %w", err)
	}
	ip := ev.Client.IP
	if ip == "" {
		ip = "unknown"
	}
	data := map[string]string{
		"Time":         notify.Time(now),
		"IP":           ip,
		"SecurityLink": r.mailer.Link(web.PathSecurity, ""),
		"SecureLink":   r.mailer.Link(account.PathSecureAccount, tok),
	}
	if !holdUntil.IsZero() {
		data["HoldUntil"] = notify.Time(holdUntil)
	}
	template := notify.TemplateMFAChanged
	summary := strings.TrimSpace(ev.Summary)
	if summary == "" {
		summary = "The two-factor settings of your account changed."
	}
	if ev.LastFactorRemoved {
		template = notify.TemplateMFAOff
		if before, _, ok := strings.Cut(summary, lastFactorSentence); ok {
			summary = strings.TrimSpace(before)
		}
		data["Change"] = summary
	} else {
		data["Summary"] = summary
	}
	if err := r.mailer.Enqueue(ctx, q, notify.Email{Template: template, To: a.Email, AntiPhishingCode: a.AntiPhishingCode, Data: data}); err != nil {
		return fmt.Errorf("mfa recorder: %s e-mail: %w", template, err)
	}
	return nil
}
