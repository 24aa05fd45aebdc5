package config

import (
	"net"
	"net/url"
	"strings"
	"time"
)

// MFA configures two-factor authentication (internal/mfa): the WebAuthn
// relying party, limits, the platform's 2FA policy, step-up and the SMS
// provider.
type MFA struct {
	// RPID is the WebAuthn relying party ID: the registrable domain security
	// keys and passkeys are bound to. Default: the host of PublicOrigin
	// ("localhost" when that is a loopback IP address, because browsers
	// refuse WebAuthn on bare IP addresses). Changing it later orphans
	// every registered key, so choose the parent domain when moat may move
	// between subdomains.
	RPID string `toml:"rp_id"`
	// Origins are the exact scheme://host[:port] values the pages run at.
	// Default: PublicOrigin (with localhost for a loopback IP, as RPID).
	Origins []string `toml:"origins"`
	// MaxSecurityKeys is the most security keys and passkeys an account may
	// register.
	MaxSecurityKeys int `toml:"max_security_keys"`
	// MandatoryForAll makes every account enrol a second factor before it
	// can do anything else, and keeps sign-in 2FA on.
	MandatoryForAll bool `toml:"mandatory_for_all"`
	// MandatoryForStaff does the same for support and admin accounts.
	MandatoryForStaff bool `toml:"mandatory_for_staff"`
	// StaffSecurityKey: staff must use a security key (not only an app or
	// SMS), and cannot remove their last one.
	StaffSecurityKey bool `toml:"staff_security_key"`
	// StepUpWithin is how recent a second factor must be for a security
	// change (adding or removing a factor, password, API keys, withdrawals).
	StepUpWithin time.Duration `toml:"step_up_within"`
	// SMS is the text-message provider. Without one, SMS codes are not
	// offered (development mode keeps them in memory for the dev mailbox).
	SMS SMSProvider `toml:"sms"`
}

// SMSProvider is a Twilio-style HTTP API: a form POST of To, From and Body
// with basic auth (account SID and auth token).
type SMSProvider struct {
	// URL is the send endpoint; "{account_sid}" in it is replaced, e.g.
	// https://api.twilio.com/2010-04-01/Accounts/{account_sid}/Messages.json
	URL        string `toml:"url"`
	AccountSID string `toml:"account_sid"`
	// AuthToken is a secret: set it through MOAT_MFA_SMS_AUTH_TOKEN (or the
	// file), never a flag.
	AuthToken string `toml:"auth_token"`
	// From is the sending number or sender ID.
	From string `toml:"from"`
}

// Configured reports whether an SMS provider is set up.
func (p SMSProvider) Configured() bool {
	return p.URL != "" || p.AccountSID != "" || p.AuthToken != "" || p.From != ""
}

// DefaultMFA is the [mfa] section of Default.
func DefaultMFA() MFA {
	return MFA{
		MaxSecurityKeys:   5,
		MandatoryForStaff: true,
		StaffSecurityKey:  true,
		StepUpWithin:      5 * time.Minute,
	}
}

// maxStepUpWithin bounds step_up_within: a long window turns step-up into
// a second session cookie.
const maxStepUpWithin = time.Hour

// WebAuthnRPID returns the relying party ID: MFA.RPID, or the host of the
// public origin (localhost for a loopback IP address).
func (c Config) WebAuthnRPID() string {
	if c.MFA.RPID != "" {
		return strings.ToLower(c.MFA.RPID)
	}
	u, err := url.Parse(c.Origin())
	if err != nil {
		return ""
	}
	host := strings.ToLower(u.Hostname())
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return "localhost"
	}
	return host
}

// WebAuthnOrigins returns the origins WebAuthn accepts: MFA.Origins, or the
// public origin (at localhost for a loopback IP address, as WebAuthnRPID).
func (c Config) WebAuthnOrigins() []string {
	if len(c.MFA.Origins) > 0 {
		out := make([]string, len(c.MFA.Origins))
		for i, o := range c.MFA.Origins {
			out[i] = strings.TrimSuffix(o, "/")
		}
		return out
	}
	origin := c.Origin()
	u, err := url.Parse(origin)
	if err != nil {
		return []string{origin}
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsLoopback() {
		host := "localhost"
		if p := u.Port(); p != "" {
			host = net.JoinHostPort(host, p)
		}
		return []string{u.Scheme + "://" + host}
	}
	return []string{origin}
}

func (c Config) checkMFA(ps *problems) {
	m := c.MFA
	if m.MaxSecurityKeys < 1 || m.MaxSecurityKeys > 100 {
		ps.add("mfa.max_security_keys", "%d: must be 1-100", m.MaxSecurityKeys)
	}
	if m.StepUpWithin <= 0 || m.StepUpWithin > maxStepUpWithin {
		ps.add("mfa.step_up_within", "%v: must be a positive duration of at most %v (DESIGN.md: 5m)", m.StepUpWithin, maxStepUpWithin)
	}

	rpID := c.WebAuthnRPID()
	if m.RPID != "" {
		switch {
		case strings.ContainsAny(m.RPID, ":/?#@ ") || strings.Trim(m.RPID, ".") != m.RPID:
			ps.add("mfa.rp_id", "%q: must be a bare domain name such as example.com (no scheme, port or path)", m.RPID)
		case net.ParseIP(m.RPID) != nil:
			ps.add("mfa.rp_id", "%q: browsers refuse WebAuthn on IP addresses; use a domain name (localhost for development)", m.RPID)
		}
	}
	for _, o := range m.Origins {
		u, err := url.Parse(strings.TrimSuffix(o, "/"))
		switch {
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "":
			ps.add("mfa.origins", "%q: must be scheme://host[:port]", o)
			continue
		case u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "":
			ps.add("mfa.origins", "%q: must be scheme://host[:port] only, without path, query or fragment", o)
			continue
		case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
			ps.add("mfa.origins", "%q: browsers allow WebAuthn over http only on localhost; use https", o)
			continue
		}
		if h := strings.ToLower(u.Hostname()); rpID != "" && h != rpID && !strings.HasSuffix(h, "."+rpID) {
			ps.add("mfa.origins", "%q is not at the relying party ID %q or one of its subdomains", o, rpID)
		}
	}

	s := m.SMS
	if s.Configured() {
		for key, v := range map[string]string{
			"mfa.sms.url": s.URL, "mfa.sms.account_sid": s.AccountSID,
			"mfa.sms.auth_token": s.AuthToken, "mfa.sms.from": s.From,
		} {
			if strings.TrimSpace(v) == "" {
				ps.add(key, "must be set with the other mfa.sms settings (url, account_sid, auth_token, from)")
			}
		}
		if s.URL != "" {
			u, err := url.Parse(strings.ReplaceAll(s.URL, "{account_sid}", "x"))
			switch {
			case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
				ps.add("mfa.sms.url", "%q: must be an https:// URL of the provider's send-message endpoint", s.URL)
			case u.User != nil:
				ps.add("mfa.sms.url", "must not hold credentials; use mfa.sms.account_sid and mfa.sms.auth_token")
			case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
				ps.add("mfa.sms.url", "%q: must use https (the auth token travels with every message)", s.URL)
			}
		}
	}
}
