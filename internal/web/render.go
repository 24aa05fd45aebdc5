package web

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/httpx"
	"github.com/moat-dev/moat/internal/store"
)

// page is what every template receives.
type page struct {
	Title string
	Brand string
	Dev   bool
	// Account is set on signed-in pages; the header then shows the account
	// navigation. Nav names the current item.
	Account *store.Account
	Nav     string
	// KeysNav shows the API keys item in the account navigation.
	KeysNav bool
	// MFA: the 2FA pages are there (Security in the navigation, passkey
	// sign-in, the WebAuthn script).
	MFA bool
	// Recovery: the recovery-case pages are there (the second-factor page
	// links to them).
	Recovery bool
	// Notice reports what just happened (role=status).
	Notice string
	// Alert is a form-level error (role=alert), used when the problem is not
	// one field's, e.g. "Invalid username or password".
	Alert string
	// Values refills a form after an error (never passwords); Errors holds
	// per-field messages.
	Values map[string]string
	Errors map[string]string
	// Data is the page's own content.
	Data any

	focused bool
}

// fieldView is one labelled form input with its hint and error.
type fieldView struct {
	ID, Name, Label, Type, Autocomplete string
	Value, Hint, Error                  string
	InputMode                           string
	MinLength, MaxLength                int
	Required, Autofocus                 bool
}

// DescribedBy lists the ids of the hint and error, for aria-describedby.
func (f fieldView) DescribedBy() string {
	var ids []string
	if f.Hint != "" {
		ids = append(ids, f.ID+"-hint")
	}
	if f.Error != "" {
		ids = append(ids, f.ID+"-error")
	}
	return strings.Join(ids, " ")
}

// Field builds the view of the input called name. The first field with an
// error gets autofocus, so keyboard and screen-reader users land on it.
func (p *page) Field(name, label, typ, autocomplete string) fieldView {
	f := fieldView{
		ID: name, Name: name, Label: label, Type: typ, Autocomplete: autocomplete,
		Error: p.Errors[name], Required: true,
	}
	if typ != "password" {
		f.Value = p.Values[name]
	}
	if f.Error != "" && !p.focused {
		f.Autofocus = true
		p.focused = true
	}
	return f
}

// fieldErr records a field error, or a form-level alert when the field is
// not on the form.
func (p *page) fieldErr(field, msg string, onForm ...string) {
	for _, f := range onForm {
		if f == field {
			if p.Errors == nil {
				p.Errors = map[string]string{}
			}
			p.Errors[field] = msg
			return
		}
	}
	p.Alert = msg
}

func (h *Handler) funcs() template.FuncMap {
	return template.FuncMap{
		"asset": h.assetURL,
		"hint": func(s string, f fieldView) fieldView {
			f.Hint = s
			return f
		},
		"optional": func(f fieldView) fieldView {
			f.Required = false
			return f
		},
		"numeric": func(f fieldView) fieldView {
			f.InputMode = "numeric"
			return f
		},
		"lengths": func(min, max int, f fieldView) fieldView {
			f.MinLength, f.MaxLength = min, max
			return f
		},
		"datetime": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.RFC3339)
		},
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2 Jan 2006, 15:04 UTC")
		},
		"eventName":  eventName,
		"factorName": factorName,
	}
}

// parsePages builds the pages of this package's templates.
func parsePages(funcs template.FuncMap) (map[string]*template.Template, error) {
	return ParsePages(templateFS, funcs)
}

// ParsePages builds one template set per page from fsys: the shared
// layout and partials (templates/_*.html) plus that page's "content"
// (every other templates/*.html, named by its file name without .html).
// The support console builds its own pages the same way.
func ParsePages(fsys fs.FS, funcs template.FuncMap) (map[string]*template.Template, error) {
	base, err := template.New("").Funcs(funcs).ParseFS(fsys, "templates/_*.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(fsys, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if strings.HasPrefix(name, "_") {
			continue
		}
		t, err := base.Clone()
		if err != nil {
			return nil, err
		}
		if _, err := t.ParseFS(fsys, n); err != nil {
			return nil, fmt.Errorf("template %s: %w", n, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// render writes page name with status. Pages are never cached: they show
// account data or carry one-time tokens.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	t, ok := h.pages[name]
	if !ok {
		h.internal(w, r, fmt.Errorf("web: no page %q", name))
		return
	}
	p.Brand = h.brand
	p.Dev = h.dev
	p.KeysNav = h.apiKeys != nil
	p.MFA = h.mfa != nil
	p.Recovery = h.recovery != nil
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		h.internal(w, r, err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// internal logs err for the operator and shows a generic page.
func (h *Handler) internal(w http.ResponseWriter, r *http.Request, err error) {
	h.log.ErrorContext(r.Context(), "web: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusInternalServerError)
	// A fixed page: rendering a template could be what failed.
	fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Something went wrong</title><link rel="stylesheet" href="%s"></head><body><main id="main" class="wrap narrow"><h1>Something went wrong</h1><p>%s</p><p><a href="/">Go to the start page</a></p></main></body></html>`,
		template.HTMLEscapeString(h.cssURL()), template.HTMLEscapeString(apperr.MessageOf(err)))
}

func (h *Handler) cssURL() string {
	u, _ := h.assetURL("moat.css")
	return u
}

// fail shows a service error: client errors on the error page with their
// status, anything else as an internal error.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, title string, err error) {
	status := httpx.Status(err)
	if status >= 500 {
		h.internal(w, r, err)
		return
	}
	h.render(w, r, status, "message", &page{Title: title, Data: messageData{Heading: title, Text: apperr.MessageOf(err), Problem: true}})
}

// messageData is the content of the plain message page.
type messageData struct {
	Heading string
	Text    string
	// Next is a follow-up link.
	NextURL, NextText string
	Problem           bool
}

// eventNames turns the audit event types the activity list shows into
// words; an unknown type is shown as it is.
var eventNames = map[string]string{
	"signin.success":                "Signed in",
	"signin.failed":                 "Wrong password entered",
	"signin.locked":                 "Sign-in paused after failed attempts",
	"signin.voided":                 "Sign-in stopped after wrong codes",
	"signin.device_approval_sent":   "New device: approval e-mail sent",
	"signin.second_factor_required": "Password accepted; second step asked",
	"device.approved":               "Device approved",
	"session.signout":               "Signed out",
	"session.revoked":               "Session signed out",
	"session.revoked_others":        "Other sessions signed out",
	"password.changed":              "Password changed",
	"password.reset_requested":      "Password-reset link requested",
	"password.reset":                "Password reset with an e-mailed link",
	"password.reset_failed":         "Wrong code on a password reset",
	"password.reset_voided":         "Password-reset link stopped after wrong codes",
	"password.reset_challenge":      "Password reset: second factor asked",
	"session.revoked_all":           "All sessions signed out by support",
	"anti_phishing.set":             "Anti-phishing code set",
	"anti_phishing.cleared":         "Anti-phishing code removed",
	"account.secured":               "Account secured and locked",
	"email.confirmed":               "E-mail address confirmed",
}

func eventName(typ string) string {
	if n, ok := eventNames[typ]; ok {
		return n
	}
	return typ
}

// factorName names a second factor for people.
func factorName(name string) string {
	switch name {
	case "totp":
		return "Authenticator app code"
	case "webauthn":
		return "Security key or passkey"
	case "sms":
		return "Text message (SMS) code — less secure"
	case "backup_code":
		return "Backup code"
	}
	return name
}
