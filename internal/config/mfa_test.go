package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMFADefaults(t *testing.T) {
	c, err := Load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := c.MFA
	if m.MaxSecurityKeys != 5 || m.MandatoryForAll || !m.MandatoryForStaff || !m.StaffSecurityKey || m.StepUpWithin != 5*time.Minute {
		t.Errorf("defaults %+v", m)
	}
	if m.SMS.Configured() {
		t.Error("SMS configured by default")
	}
}

// TestWebAuthnRelyingParty: the RP ID and origins follow the public origin
// unless set; a loopback IP becomes localhost, where browsers allow
// WebAuthn.
func TestWebAuthnRelyingParty(t *testing.T) {
	for _, tc := range []struct {
		origin, rpID string
		origins      []string
		wantID       string
		wantOrigins  []string
	}{
		{"https://moat.example.com", "", nil, "moat.example.com", []string{"https://moat.example.com"}},
		{"https://Moat.Example.com/", "", nil, "moat.example.com", []string{"https://Moat.Example.com"}},
		{"http://127.0.0.1:8080", "", nil, "localhost", []string{"http://localhost:8080"}},
		{"http://[::1]:9000", "", nil, "localhost", []string{"http://localhost:9000"}},
		{"http://localhost:8080", "", nil, "localhost", []string{"http://localhost:8080"}},
		{"https://login.example.com", "example.com", []string{"https://login.example.com", "https://app.example.com/"},
			"example.com", []string{"https://login.example.com", "https://app.example.com"}},
	} {
		c := Default()
		c.PublicOrigin, c.MFA.RPID, c.MFA.Origins = tc.origin, tc.rpID, tc.origins
		if got := c.WebAuthnRPID(); got != tc.wantID {
			t.Errorf("%s: RP ID %q, want %q", tc.origin, got, tc.wantID)
		}
		if got := c.WebAuthnOrigins(); !slices.Equal(got, tc.wantOrigins) {
			t.Errorf("%s: origins %q, want %q", tc.origin, got, tc.wantOrigins)
		}
	}
}

func TestMFAValidation(t *testing.T) {
	sms := func(c *Config) {
		c.MFA.SMS = SMSProvider{URL: "https://api.twilio.com/2010-04-01/Accounts/{account_sid}/Messages.json",
			AccountSID: "AC123", AuthToken: "tok-secret-value", From: "+15005550006"}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		key    string // "" means valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"sms complete", sms, ""},
		{"no keys allowed", func(c *Config) { c.MFA.MaxSecurityKeys = 0 }, "mfa.max_security_keys"},
		{"step-up off", func(c *Config) { c.MFA.StepUpWithin = 0 }, "mfa.step_up_within"},
		{"step-up a day", func(c *Config) { c.MFA.StepUpWithin = 24 * time.Hour }, "mfa.step_up_within"},
		{"rp id with scheme", func(c *Config) { c.MFA.RPID = "https://example.com" }, "mfa.rp_id"},
		{"rp id an IP", func(c *Config) { c.MFA.RPID = "10.0.0.1" }, "mfa.rp_id"},
		{"origin elsewhere", func(c *Config) {
			c.PublicOrigin, c.MFA.Origins = "https://moat.example.com", []string{"https://evil.example.net"}
		}, "mfa.origins"},
		{"origin over http", func(c *Config) {
			c.PublicOrigin, c.MFA.RPID, c.MFA.Origins = "https://moat.example.com", "example.com", []string{"http://moat.example.com"}
		}, "mfa.origins"},
		{"origin with path", func(c *Config) { c.MFA.Origins = []string{"http://localhost:8080/login"} }, "mfa.origins"},
		{"sms without token", func(c *Config) { sms(c); c.MFA.SMS.AuthToken = "" }, "mfa.sms.auth_token"},
		{"sms over http", func(c *Config) { sms(c); c.MFA.SMS.URL = "http://sms.example.com/send" }, "mfa.sms.url"},
		{"sms url with password", func(c *Config) { sms(c); c.MFA.SMS.URL = "https://u:p@sms.example.com/send" }, "mfa.sms.url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mutate(&c)
			c.ApplyDefaults()
			err := c.Validate()
			if tc.key == "" {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			ce, ok := err.(*Error)
			if !ok {
				t.Fatalf("want a problem with %s, got %v", tc.key, err)
			}
			found := false
			for _, p := range ce.Problems {
				found = found || p.Key == tc.key
			}
			if !found {
				t.Errorf("want a problem with %s, got %v", tc.key, err)
			}
			if strings.Contains(err.Error(), "tok-secret-value") || strings.Contains(err.Error(), "u:p@") {
				t.Errorf("the error repeats a secret: %v", err)
			}
		})
	}
}

// TestMFAFromEnvironment: the SMS secret comes from the environment and
// has no flag.
func TestMFAFromEnvironment(t *testing.T) {
	c, err := Load(nil, envMap(map[string]string{
		"MOAT_MFA_SMS_URL": "https://sms.example.com/{account_sid}/send", "MOAT_MFA_SMS_ACCOUNT_SID": "AC1",
		"MOAT_MFA_SMS_AUTH_TOKEN": "secret", "MOAT_MFA_SMS_FROM": "Moat",
		"MOAT_MFA_MANDATORY_FOR_ALL": "true", "MOAT_MFA_STEP_UP_WITHIN": "2m",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.MFA.SMS.Configured() || c.MFA.SMS.AuthToken != "secret" || !c.MFA.MandatoryForAll || c.MFA.StepUpWithin != 2*time.Minute {
		t.Errorf("environment not applied: %+v", c.MFA)
	}
	for _, s := range settings {
		if strings.HasPrefix(s.key, "mfa.sms.") && s.flag != "" {
			t.Errorf("%s has a flag; SMS settings (with the auth token) are file and environment only", s.key)
		}
	}
}
