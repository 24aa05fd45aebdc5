package web

import (
	"net/url"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
)

func TestParseCreateForm(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	in, err := parseCreateForm(url.Values{
		"name": {"bot"}, "permissions": {"query-funds", "export-data"}, "allowed_ips": {"10.0.0.0/8\n192.0.2.1"},
		"expires": {"30d"}, "nonce_window": {"7"}, "key_password": {"pw-pw-pw-pw"},
		"query_start": {"2029-01-01"}, "query_end": {"2029-12-31"},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	if in.Name != "bot" || len(in.Permissions) != 2 || in.AllowedIPs[0] != "10.0.0.0/8\n192.0.2.1" ||
		!in.ExpiresAt.Equal(now.Add(30*24*time.Hour)) || in.NonceWindow != 7 || in.Password != "pw-pw-pw-pw" ||
		!in.QueryStart.Equal(time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC)) || !in.QueryEnd.Equal(time.Date(2029, 12, 31, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("parsed %+v", in)
	}
	in, err = parseCreateForm(url.Values{"name": {"bot"}, "permissions": {"query-funds"}, "expires": {"date"}, "expires_on": {"2031-06-01"}}, now)
	if err != nil || !in.ExpiresAt.Equal(time.Date(2031, 6, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("expiry date: %v %v", in.ExpiresAt, err)
	}
	in, err = parseCreateForm(url.Values{"name": {"bot"}, "permissions": {"query-funds"}}, now)
	if err != nil || !in.ExpiresAt.IsZero() || in.NonceWindow != 0 {
		t.Errorf("defaults: %+v %v", in, err)
	}

	for name, tc := range map[string]struct {
		form  url.Values
		field string
	}{
		"no permission":       {url.Values{"name": {"bot"}}, "permissions"},
		"unknown expiry":      {url.Values{"permissions": {"query-funds"}, "expires": {"forever"}}, "expires"},
		"expiry days too far": {url.Values{"permissions": {"query-funds"}, "expires": {"99999d"}}, "expires"},
		"date without choice": {url.Values{"permissions": {"query-funds"}, "expires_on": {"2031-01-01"}}, "expires"},
		"bad date":            {url.Values{"permissions": {"query-funds"}, "expires": {"date"}, "expires_on": {"01/02/2031"}}, "expires_on"},
		"no date":             {url.Values{"permissions": {"query-funds"}, "expires": {"date"}}, "expires_on"},
		"year 0":              {url.Values{"permissions": {"query-funds"}, "query_start": {"0000-01-01"}}, "query_start"},
		"window not a number": {url.Values{"permissions": {"query-funds"}, "nonce_window": {"ten"}}, "nonce_window"},
		"window negative":     {url.Values{"permissions": {"query-funds"}, "nonce_window": {"-1"}}, "nonce_window"},
		"window too big":      {url.Values{"permissions": {"query-funds"}, "nonce_window": {"18446744073709551615"}}, "nonce_window"},
		"bad query end":       {url.Values{"permissions": {"query-funds"}, "query_end": {"soon"}}, "query_end"},
	} {
		_, err := parseCreateForm(tc.form, now)
		if e, ok := apperr.As(err); !ok || e.Field != tc.field || e.Code != apperr.Invalid {
			t.Errorf("%s: %v, want invalid %s", name, err, tc.field)
		}
	}
}

// FuzzParseCreateForm: any form body parses to an input or to an Invalid
// error naming a field of the form; it never panics.
func FuzzParseCreateForm(f *testing.F) {
	for _, s := range []string{
		"name=bot&permissions=query-funds&expires=30d&nonce_window=5&query_start=2029-01-01",
		"permissions=x&expires=date&expires_on=2031-02-30",
		"expires=-5d&permissions=a", "nonce_window=%00&permissions=a", "permissions=a&query_end=9999-12-31",
	} {
		f.Add(s)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	fields := map[string]bool{}
	for _, f := range newKeyFields {
		fields[f] = true
	}
	f.Fuzz(func(t *testing.T, body string) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		in, err := parseCreateForm(form, now)
		if err != nil {
			e, ok := apperr.As(err)
			if !ok || e.Code != apperr.Invalid || !fields[e.Field] {
				t.Fatalf("%q: %v", body, err)
			}
			return
		}
		if len(in.Permissions) == 0 {
			t.Fatalf("%q: accepted without permissions", body)
		}
		if !in.ExpiresAt.IsZero() && in.ExpiresAt.Year() > maxFormYear {
			t.Fatalf("%q: expiry %v", body, in.ExpiresAt)
		}
	})
}
