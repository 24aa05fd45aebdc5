package sms

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParsePhone(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"+14155552671", "+14155552671"},
		{"+1 (415) 555-2671", "+14155552671"},
		{" +44 20 7946 0958 ", "+442079460958"},
		{"0044 20 7946 0958", "+442079460958"},
		{"+49.30.1234567", "+49301234567"},
		{"+2901234", "+2901234"},                 // 7 digits: Saint Helena
		{"+123456789012345", "+123456789012345"}, // 15 digits
		{"+1234567890123456", ""},                // 16 digits
		{"+123456", ""},                          // too short
		{"4155552671", ""},                       // no country code
		{"020 7946 0958", ""},                    // national format
		{"+0441234567", ""},                      // country code cannot start with 0
		{"+44 20 7946 0958 ext 12", ""},
		{"++4420794609", ""},
		{"+44+2079460958", ""},
		{"+４４２０７９４６０９５８", ""}, // full-width digits
		{"", ""},
		{"+", ""},
	} {
		got, err := ParsePhone(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("ParsePhone(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

func FuzzParsePhone(f *testing.F) {
	for _, s := range []string{"+1 (415) 555-2671", "0044 20 7946 0958", "4155552671", "+", "00", "+0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParsePhone(s)
		if err != nil {
			return
		}
		if !e164.MatchString(got) {
			t.Fatalf("ParsePhone(%q) = %q: not E.164", s, got)
		}
		if again, err := ParsePhone(got); err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q, %v", got, again, err)
		}
		m := MaskPhone(got)
		if strings.Contains(m, got[2:len(got)-2]) && len(got) > 6 {
			t.Fatalf("MaskPhone(%q) = %q reveals the number", got, m)
		}
	})
}

func TestMaskPhone(t *testing.T) {
	if got := MaskPhone("+442079460958"); got != "+4•••••••••58" {
		t.Errorf("MaskPhone = %q", got)
	}
}

func TestNoticeSaysWhy(t *testing.T) {
	for _, w := range []string{"weakest", "SIM", "intercept", "authenticator app", "security key"} {
		if !strings.Contains(WeakestOptionNotice, w) {
			t.Errorf("notice does not mention %q", w)
		}
	}
	b := CodeBody("moat", "123456", 5)
	if !strings.Contains(b, "123456") || !strings.Contains(b, "moat") || !strings.Contains(b, "5 minutes") {
		t.Errorf("CodeBody = %q", b)
	}
}

// provider is a fake Twilio-style endpoint.
type provider struct {
	mu     sync.Mutex
	got    []http.Request
	forms  []map[string]string
	status int
	body   string
}

func (p *provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := r.ParseForm(); err != nil {
		w.WriteHeader(400)
		return
	}
	p.got = append(p.got, *r)
	p.forms = append(p.forms, map[string]string{"To": r.PostForm.Get("To"), "From": r.PostForm.Get("From"), "Body": r.PostForm.Get("Body")})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(p.status)
	fmt.Fprint(w, p.body)
}

func TestHTTPSender(t *testing.T) {
	p := &provider{status: 201, body: `{"sid":"SM1","status":"queued"}`}
	srv := httptest.NewServer(p)
	defer srv.Close()
	s, err := NewHTTPSender(HTTPConfig{
		URL: srv.URL + "/2010-04-01/Accounts/{account_sid}/Messages.json", AccountSID: "AC123",
		AuthToken: "s3cret-token", From: "+15005550006",
	}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), Message{To: "+14155552671", Body: "Your moat code is 123456."}); err != nil {
		t.Fatal(err)
	}
	if len(p.got) != 1 {
		t.Fatalf("%d requests", len(p.got))
	}
	r := p.got[0]
	if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/AC123/Messages.json" {
		t.Errorf("%s %s", r.Method, r.URL.Path)
	}
	if u, pw, ok := r.BasicAuth(); !ok || u != "AC123" || pw != "s3cret-token" {
		t.Errorf("basic auth %q %q %v", u, pw, ok)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("content type %q", ct)
	}
	if f := p.forms[0]; f["To"] != "+14155552671" || f["From"] != "+15005550006" || f["Body"] != "Your moat code is 123456." {
		t.Errorf("form %v", f)
	}
}

func TestHTTPSenderErrors(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   string
	}{
		{400, `{"code":21211,"message":"The 'To' number +1555 is not a valid phone number.","status":400}`, "400 Bad Request: The 'To' number +1555 is not a valid phone number. (code 21211)"},
		{401, `{"code":20003,"message":"Authenticate s3cret-token"}`, "401 Unauthorized: Authenticate [redacted] (code 20003)"},
		{500, `<html>oops</html>`, "500 Internal Server Error"},
	} {
		p := &provider{status: tc.status, body: tc.body}
		srv := httptest.NewServer(p)
		s, _ := NewHTTPSender(HTTPConfig{URL: srv.URL + "/{account_sid}", AccountSID: "AC1", AuthToken: "s3cret-token", From: "+15005550006"}, srv.Client())
		err := s.Send(context.Background(), Message{To: "+1555", Body: "code 654321"})
		srv.Close()
		if err == nil {
			t.Errorf("status %d: no error", tc.status)
			continue
		}
		if !strings.HasSuffix(err.Error(), tc.want) {
			t.Errorf("status %d: error %q, want suffix %q", tc.status, err, tc.want)
		}
		if strings.Contains(err.Error(), "s3cret-token") || strings.Contains(err.Error(), "654321") {
			t.Errorf("error leaks a secret: %q", err)
		}
	}
}

func TestHTTPSenderUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	url := srv.URL
	srv.Close()
	s, _ := NewHTTPSender(HTTPConfig{URL: url + "/x", AccountSID: "AC1", AuthToken: "tok", From: "+1"}, &http.Client{Timeout: 5 * time.Second})
	err := s.Send(context.Background(), Message{To: "+14155552671", Body: "b"})
	if err == nil || strings.Contains(err.Error(), "tok") {
		t.Errorf("err = %v", err)
	}
}

func TestNewHTTPSenderValidates(t *testing.T) {
	good := HTTPConfig{URL: "https://sms.example/{account_sid}", AccountSID: "AC", AuthToken: "t", From: "+1"}
	for name, mut := range map[string]func(*HTTPConfig){
		"no url":    func(c *HTTPConfig) { c.URL = "" },
		"no sid":    func(c *HTTPConfig) { c.AccountSID = "" },
		"no token":  func(c *HTTPConfig) { c.AuthToken = "" },
		"no from":   func(c *HTTPConfig) { c.From = "" },
		"bad url":   func(c *HTTPConfig) { c.URL = "ftp://x/y" },
		"no scheme": func(c *HTTPConfig) { c.URL = "sms.example/x" },
	} {
		c := good
		mut(&c)
		if _, err := NewHTTPSender(c, http.DefaultClient); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewHTTPSender(good, nil); err == nil {
		t.Error("nil client accepted")
	}
	if _, err := NewHTTPSender(good, http.DefaultClient); err != nil {
		t.Error(err)
	}
}

func TestDevOutbox(t *testing.T) {
	o := NewDevOutbox(2)
	ctx := context.Background()
	for i := range 3 {
		if err := o.Send(ctx, Message{To: fmt.Sprintf("+1555000000%d", i), Body: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	ms := o.Messages()
	if len(ms) != 2 || ms[0].Body != "2" || ms[1].Body != "1" {
		t.Errorf("messages %v", ms)
	}
	if m, ok := o.Last("+15550000001"); !ok || m.Body != "1" {
		t.Errorf("Last = %v %v", m, ok)
	}
	if _, ok := o.Last("+15550000000"); ok {
		t.Error("evicted message still there")
	}
}
