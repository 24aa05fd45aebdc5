package admin

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/httpx"
	"github.com/moat-dev/moat/internal/recovery"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/web"
)

//go:embed templates/*.html
var templateFS embed.FS

// page is what every template receives.
type page struct {
	Title string
	Brand string
	CSS   string
	JS    string
	// Staff is the signed-in staff member (the header shows the console's
	// navigation when set); Nav names the current item.
	Staff *store.Account
	Nav   string
	// Notice reports what just happened (role=status); Alert is a
	// form-level error (role=alert).
	Notice string
	Alert  string
	// Errors holds per-field messages, Values refills fields.
	Errors map[string]string
	Values map[string]string
	Data   any
}

// Can reports whether the signed-in staff member's role may do action a
// (so pages offer only what will work).
func (p *page) Can(a string) bool { return p.Staff != nil && Allowed(p.Staff.Role, Action(a)) }

// reasonField is a labelled reason textarea with its hint and error.
type reasonField struct {
	ID, Label, Hint string
	Errors, Values  map[string]string
}

// Reason builds the reason field of a form (field name "reason").
func (p *page) Reason(id, label, hint string) reasonField {
	return reasonField{ID: id, Label: label, Hint: hint, Errors: p.Errors, Values: p.Values}
}

// messageData is the content of the plain message page.
type messageData struct {
	Heading           string
	Text              string
	NextURL, NextText string
	Problem           bool
}

type pages map[string]*template.Template

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2 Jan 2006, 15:04 UTC")
	},
	"datetime": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
	"size":       humanSize,
	"stateName":  stateName,
	"stateBadge": stateBadge,
	"matchName":  matchName,
	"matchBadge": matchBadge,
	"auditData":  auditData,
	"breakable":  breakable,
	"caseURL":    func(id string) string { return Path + "/cases/" + id },
	"accountURL": func(id string) string { return Path + "/accounts/" + id },
}

// parsePages builds one template set per page: the layout plus that
// page's "content", as the web pages are built.
func parsePages() (pages, error) {
	ps, err := web.ParsePages(templateFS, funcs)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	return ps, nil
}

// render writes page name with status. Console pages are never cached and
// never indexed.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	t, ok := h.pages[name]
	if !ok {
		h.internal(w, r, fmt.Errorf("admin: no page %q", name))
		return
	}
	p.Brand, p.CSS, p.JS = h.brand, h.css, h.js
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		h.internal(w, r, err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Robots-Tag", "noindex")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// internal logs err for the operator and shows a generic page.
func (h *Handler) internal(w http.ResponseWriter, r *http.Request, err error) {
	h.log.ErrorContext(r.Context(), "admin: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Something went wrong</title><link rel="stylesheet" href="%s"></head><body><main id="main" class="main main--narrow"><h1>Something went wrong</h1><p>%s</p><p>The error is in the server log%s.</p><p><a href="%s">Back to the console</a></p></main></body></html>`,
		template.HTMLEscapeString(h.css), template.HTMLEscapeString(apperr.MessageOf(err)),
		template.HTMLEscapeString(errorIDText(r)), Path)
}

func errorIDText(r *http.Request) string {
	if id := httpx.ErrorID(r); id != "" {
		return " under the id " + id
	}
	return ""
}

// fail shows a service error: client errors on the message page with
// their status, anything else as an internal error.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, staff *store.Account, title string, err error) {
	status := httpx.Status(err)
	if status >= 500 {
		h.internal(w, r, err)
		return
	}
	h.render(w, r, status, "message", &page{Title: title, Staff: staff, Data: messageData{
		Heading: title, Text: apperr.MessageOf(err), Problem: true, NextURL: Path, NextText: "Back to the case queue",
	}})
}

// Words for people.

func stateName(s store.RecoveryState) string {
	switch s {
	case store.RecoveryOpen:
		return "Open: waiting for review"
	case store.RecoveryWaiting:
		return "Approved: waiting period"
	case store.RecoveryCompleted:
		return "Completed"
	case store.RecoveryRejected:
		return "Rejected"
	case store.RecoveryCancelled:
		return "Cancelled by the owner"
	}
	return string(s)
}

// stateBadge is the badge class of a case state.
func stateBadge(s store.RecoveryState) string {
	switch s {
	case store.RecoveryOpen, store.RecoveryWaiting:
		return "badge--new"
	case store.RecoveryCompleted:
		return "badge--known"
	}
	return "badge--bad"
}

func matchName(m recovery.Match) string {
	switch m {
	case recovery.MatchYes:
		return "Matches"
	case recovery.MatchNo:
		return "Does not match"
	case recovery.MatchUnknown:
		return "Nothing on record"
	case recovery.MatchNoAnswer:
		return "Not answered"
	}
	return string(m)
}

// matchBadge is the badge class of a comparison: green for a match, red
// for a mismatch, none (plain text) otherwise.
func matchBadge(m recovery.Match) string {
	switch m {
	case recovery.MatchYes:
		return "badge badge--known"
	case recovery.MatchNo:
		return "badge badge--bad"
	}
	return "muted"
}

// breakable lets a dotted or underscored name ("recovery.document_viewed")
// wrap after its dots and underscores only.
func breakable(name string) template.HTML {
	esc := template.HTMLEscapeString(name)
	esc = strings.ReplaceAll(esc, ".", ".<wbr>")
	esc = strings.ReplaceAll(esc, "_", "_<wbr>")
	return template.HTML(esc)
}

// humanSize says "2.4 MB" for a byte count.
func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// auditData shows an audit event's JSON details as "key: value" pairs,
// sorted, on one line.
func auditData(s string) string {
	if s == "" || s == "{}" || s == "null" {
		return ""
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return s
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %v", k, m[k]))
	}
	return strings.Join(parts, "; ")
}
