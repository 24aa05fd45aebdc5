package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// HTTPConfig configures HTTPSender.
type HTTPConfig struct {
	// URL is the provider's send-message endpoint. "{account_sid}" in it is
	// replaced by AccountSID; for Twilio it is
	// https://api.twilio.com/2010-04-01/Accounts/{account_sid}/Messages.json.
	URL string
	// AccountSID and AuthToken are the basic-auth user and password.
	AccountSID string
	AuthToken  string
	// From is the sending number (or sender ID) the provider assigned.
	From string
}

// HTTPSender sends through a Twilio-style HTTP API: POST of the form fields
// To, From and Body with basic auth, and a 2xx answer on success.
type HTTPSender struct {
	cfg    HTTPConfig
	url    string
	client *http.Client
}

// NewHTTPSender checks cfg and returns a sender that uses client (which
// should have a timeout).
func NewHTTPSender(cfg HTTPConfig, client *http.Client) (*HTTPSender, error) {
	if cfg.URL == "" || cfg.AccountSID == "" || cfg.AuthToken == "" || cfg.From == "" {
		return nil, errors.New("sms: url, account_sid, auth_token and from are required")
	}
	u := strings.ReplaceAll(cfg.URL, "{account_sid}", url.PathEscape(cfg.AccountSID))
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
		return nil, fmt.Errorf("sms: url %q is not an http(s) URL", cfg.URL)
	}
	if client == nil {
		return nil, errors.New("sms: an http.Client is required")
	}
	return &HTTPSender{cfg: cfg, url: u, client: client}, nil
}

// Send posts m. Errors carry the provider's status and its own error message
// (Twilio's JSON "message"), never the credentials or the body.
func (s *HTTPSender) Send(ctx context.Context, m Message) error {
	form := url.Values{"To": {m.To}, "From": {s.cfg.From}, "Body": {m.Body}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("sms: build request: %w", err)
	}
	req.SetBasicAuth(s.cfg.AccountSID, s.cfg.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		// url.Error repeats the URL, which holds the account SID but no
		// secret; drop it anyway to keep errors short.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("sms: send: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	var pe struct {
		Code    json.Number `json:"code"`
		Message string      `json:"message"`
	}
	detail := ""
	if json.Unmarshal(body, &pe) == nil && pe.Message != "" {
		detail = ": " + pe.Message
		if pe.Code != "" {
			detail += " (code " + pe.Code.String() + ")"
		}
	}
	return fmt.Errorf("sms: provider answered %s%s", resp.Status, redact(detail, s.cfg.AuthToken))
}

func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}
