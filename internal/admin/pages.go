package admin

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/httpx"
	"github.com/moat-dev/moat/internal/recovery"
	"github.com/moat-dev/moat/internal/store"
)

// notices are the fixed messages a redirect may ask a page to show (?n=).
// Only these keys are accepted, so a crafted link cannot put words on a
// page.
var notices = map[string]string{
	"approved-first": "Your approval is recorded. A second staff member must approve the case too before the waiting period starts.",
	"approved-final": "The case is approved by two staff members. The waiting period has started and the owner was e-mailed; they can still cancel it.",
	"rejected":       "The case is rejected. The owner was e-mailed your reason.",
	"stopped":        "The recovery is stopped. Nothing about the account changed; the owner was e-mailed.",
	"locked":         "The account is locked and all its sessions are signed out.",
	"unlocked":       "The account is unlocked. Its owner can sign in again.",
	"revoked":        "All the account's sessions are signed out.",
}

func notice(r *http.Request) string { return notices[r.URL.Query().Get("n")] }

func see(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// Case queue.

// queueFilters are the queue's views: the work to do first.
var queueFilters = []struct {
	Key, Label, Empty string
	States            []store.RecoveryState
}{
	{"", "Open and waiting", "No open or waiting cases: nothing to review.", nil},
	{"completed", "Completed", "No completed cases.", []store.RecoveryState{store.RecoveryCompleted}},
	{"rejected", "Rejected", "No rejected cases.", []store.RecoveryState{store.RecoveryRejected}},
	{"cancelled", "Cancelled", "No cancelled cases.", []store.RecoveryState{store.RecoveryCancelled}},
}

type queueData struct {
	Cases   []recovery.CaseView
	Filter  string
	Empty   string
	Filters []filterLink
}

type filterLink struct {
	Label, URL string
	Current    bool
}

func (h *Handler) queuePage(w http.ResponseWriter, r *http.Request, staff account.Principal) {
	key := r.URL.Query().Get("state")
	var states []store.RecoveryState
	found := false
	d := queueData{}
	for _, f := range queueFilters {
		u := Path
		if f.Key != "" {
			u += "?state=" + f.Key
		}
		d.Filters = append(d.Filters, filterLink{Label: f.Label, URL: u, Current: f.Key == key})
		if f.Key == key {
			states, found, d.Filter, d.Empty = f.States, true, f.Label, f.Empty
		}
	}
	if !found {
		http.Redirect(w, r, Path, http.StatusSeeOther)
		return
	}
	cases, err := h.recovery.Queue(r.Context(), staff, states)
	if err != nil {
		h.fail(w, r, &staff.Account, "Recovery cases", err)
		return
	}
	d.Cases = cases
	h.render(w, r, http.StatusOK, "queue", &page{Title: "Recovery cases", Staff: &staff.Account, Nav: "cases", Notice: notice(r), Data: d})
}

// Case review.

type caseData struct {
	Review recovery.Review
	// ApprovedByMe: this staff member gave the first approval, so only a
	// different one can give the second.
	ApprovedByMe bool
	// OwnAccount: the case is about the staff member's own account.
	OwnAccount bool
}

func (h *Handler) casePage(w http.ResponseWriter, r *http.Request, staff account.Principal) {
	h.showCase(w, r, staff, http.StatusOK, &page{Notice: notice(r)})
}

// showCase renders the review of the case in the path with p's notice,
// alert or field errors.
func (h *Handler) showCase(w http.ResponseWriter, r *http.Request, staff account.Principal, status int, p *page) {
	rv, err := h.recovery.Review(r.Context(), staff, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, &staff.Account, "Recovery case", err)
		return
	}
	p.Title = "Case " + rv.Case.Reference
	p.Staff, p.Nav = &staff.Account, "cases"
	p.Data = caseData{
		Review:       rv,
		ApprovedByMe: rv.FirstApproverID != "" && rv.FirstApproverID == staff.Account.ID,
		OwnAccount:   rv.Case.AccountID == staff.Account.ID,
	}
	h.render(w, r, status, "case", p)
}

// document sends the identity document as a download: never rendered
// inline by the console's origin, never sniffed, never cached, and
// sandboxed should a browser open it anyway.
func (h *Handler) document(w http.ResponseWriter, r *http.Request, staff account.Principal) {
	id := r.PathValue("id")
	typ, data, err := h.recovery.Document(r.Context(), staff, id, h.client(r))
	if err != nil {
		h.fail(w, r, &staff.Account, "Identity document", err)
		return
	}
	ext := map[string]string{"image/jpeg": "jpg", "image/png": "png", "application/pdf": "pdf"}[typ]
	if ext == "" {
		// Only the three accepted types are ever stored; anything else is
		// served as opaque bytes.
		typ, ext = "application/octet-stream", "bin"
	}
	hd := w.Header()
	hd.Set("Content-Type", typ)
	hd.Set("Content-Length", strconv.Itoa(len(data)))
	hd.Set("Content-Disposition", `attachment; filename="recovery-document-`+safeName(id)+`.`+ext+`"`)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Security-Policy", "sandbox; default-src 'none'; frame-ancestors 'none'")
	hd.Set("X-Robots-Tag", "noindex")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(data)
	}
}

// safeName keeps the letters and digits of s (for a file name).
func safeName(s string) string {
	return strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' {
			return c
		}
		return -1
	}, s)
}

func (h *Handler) approve(w http.ResponseWriter, r *http.Request, staff account.Principal) {
	id := r.PathValue("id")
	c, err := h.recovery.Approve(r.Context(), staff, id, h.client(r))
	if err != nil {
		h.caseError(w, r, staff, err)
		return
	}
	n := "approved-first"
	if c.State == store.RecoveryWaiting {
		n = "approved-final"
	}
	see(w, r, Path+"/cases/"+url.PathEscape(id)+"?n="+n)
}

func (h *Handler) reject(w http.ResponseWriter, r *http.Request, staff account.Principal) {
	id := r.PathValue("id")
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if reason == "" {
		h.showCase(w, r, staff, http.StatusBadRequest, &page{
			Errors: map[string]string{"reason": "Write the reason. The owner reads it, so say what they can do next."},
		})
		return
	}
	if _, err := h.recovery.Reject(r.Context(), staff, id, reason, h.client(r)); err != nil {
		h.caseError(w, r, staff, err)
		return
	}
	see(w, r, Path+"/cases/"+url.PathEscape(id)+"?n=rejected")
}

func (h *Handler) stop(w http.ResponseWriter, r *http.Request, staff account.Principal) {
	id := r.PathValue("id")
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if reason == "" {
		h.showCase(w, r, staff, http.StatusBadRequest, &page{
			Errors: map[string]string{"reason": "Write why the recovery is stopped (who asked, how you checked). It goes in the audit log."},
		})
		return
	}
	if _, err := h.recovery.Stop(r.Context(), staff, id, reason, h.client(r)); err != nil {
		h.caseError(w, r, staff, err)
		return
	}
	see(w, r, Path+"/cases/"+url.PathEscape(id)+"?n=stopped")
}

// caseError shows a refused approval or rejection on the case page itself
// (approved already, no longer open, not allowed), with its status.
func (h *Handler) caseError(w http.ResponseWriter, r *http.Request, staff account.Principal, err error) {
	status := httpx.Status(err)
	if status >= 500 || status == http.StatusNotFound {
		h.fail(w, r, &staff.Account, "Recovery case", err)
		return
	}
	e, _ := apperr.As(err)
	p := &page{Values: map[string]string{"reason": r.PostForm.Get("reason")}}
	if e.Field == "reason" {
		p.Errors = map[string]string{"reason": e.Message}
	} else {
		p.Alert = apperr.MessageOf(err)
	}
	h.showCase(w, r, staff, status, p)
}

// Accounts.

// searchLimit is how many accounts a search shows.
const searchLimit = 50

type searchData struct {
	Query    string
	Accounts []store.Account
	More     bool
}

func (h *Handler) searchPage(w http.ResponseWriter, r *http.Request, staff account.Principal) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	d := searchData{Query: q}
	if q != "" {
		list, err := h.accounts.ListUsers(r.Context(), store.ListAccountsOptions{EmailContains: q, Limit: searchLimit + 1})
		if err != nil {
			h.fail(w, r, &staff.Account, "Accounts", err)
			return
		}
		if len(list) > searchLimit {
			list, d.More = list[:searchLimit], true
		}
		d.Accounts = list
	}
	h.render(w, r, http.StatusOK, "search", &page{Title: "Accounts", Staff: &staff.Account, Nav: "accounts", Data: d})
}

// auditLimit is how many audit events the account page shows.
const auditLimit = 100

type accountData struct {
	Account store.Account
	HoldOn  bool
	Cases   []recovery.CaseView
	Audit   []store.AuditEvent
	// Actors are the e-mail addresses of the staff accounts in the audit
	// trail, by account ID.
	Actors map[string]string
	Self   bool
}

func (h *Handler) accountPage(w http.ResponseWriter, r *http.Request, staff account.Principal) {
	h.showAccount(w, r, staff, http.StatusOK, &page{Notice: notice(r)})
}

func (h *Handler) showAccount(w http.ResponseWriter, r *http.Request, staff account.Principal, status int, p *page) {
	ctx := r.Context()
	a, err := h.accounts.GetUser(ctx, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, &staff.Account, "Account", err)
		return
	}
	cases, err := h.recovery.CasesOf(ctx, staff, a.ID)
	if err != nil {
		h.fail(w, r, &staff.Account, "Account", err)
		return
	}
	trail, err := h.accounts.AuditTrail(ctx, a.ID, staff.Account.ID, auditLimit)
	if err != nil {
		h.fail(w, r, &staff.Account, "Account", err)
		return
	}
	p.Title = a.Email
	p.Staff, p.Nav = &staff.Account, "accounts"
	p.Data = accountData{
		Account: a,
		HoldOn:  a.SecurityHoldUntil.After(h.clock.Now()),
		Cases:   cases,
		Audit:   trail,
		Actors:  h.actors(r, trail),
		Self:    a.ID == staff.Account.ID,
	}
	h.render(w, r, status, "account", p)
}

// actors looks up the accounts that acted in the trail (staff), so the
// page names them by e-mail. An actor that is not an account ("cli") or
// cannot be read is left out, and the page shows the raw actor.
func (h *Handler) actors(r *http.Request, trail []store.AuditEvent) map[string]string {
	names := map[string]string{}
	tried := map[string]bool{}
	for _, ev := range trail {
		id := ev.ActorID
		if id == "" || tried[id] || len(tried) >= maxActorLookups {
			continue
		}
		tried[id] = true
		if a, err := h.accounts.GetUser(r.Context(), id); err == nil {
			names[id] = a.Email
		}
	}
	return names
}

// maxActorLookups bounds the accounts one page looks up for the trail.
const maxActorLookups = 20

func (h *Handler) lock(w http.ResponseWriter, r *http.Request, staff account.Principal) {
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if reason == "" {
		h.showAccount(w, r, staff, http.StatusBadRequest, &page{
			Errors: map[string]string{"reason": "Write why the account is locked. It is kept with the account and in the audit log."},
		})
		return
	}
	h.accountAction(w, r, staff, "locked", func(a store.Account) error {
		return h.accounts.Lock(r.Context(), a.Email, reason, staff.Account.ID)
	})
}

func (h *Handler) unlock(w http.ResponseWriter, r *http.Request, staff account.Principal) {
	h.accountAction(w, r, staff, "unlocked", func(a store.Account) error {
		return h.accounts.Unlock(r.Context(), a.Email, staff.Account.ID)
	})
}

func (h *Handler) revokeSessions(w http.ResponseWriter, r *http.Request, staff account.Principal) {
	h.accountAction(w, r, staff, "revoked", func(a store.Account) error {
		_, err := h.accounts.RevokeAllSessions(r.Context(), a.ID, staff.Account.ID)
		return err
	})
}

// accountAction runs do on the account in the path and returns to its
// page with notice n, or shows the error there.
func (h *Handler) accountAction(w http.ResponseWriter, r *http.Request, staff account.Principal, n string, do func(store.Account) error) {
	a, err := h.accounts.GetUser(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, &staff.Account, "Account", err)
		return
	}
	if isStaff(a.Role) && staff.Account.Role != store.RoleAdmin {
		// A staff account is someone's key to the console: only an admin
		// may lock one or sign it out, so a single support agent cannot
		// take the reviewers of their own cases out of the way.
		h.log.WarnContext(r.Context(), "admin: support acting on a staff account refused",
			"staff", staff.Account.ID, "target", a.ID, "path", r.URL.Path)
		h.render(w, r, http.StatusForbidden, "message", &page{Title: "Not allowed", Staff: &staff.Account, Data: messageData{
			Heading: "Only admins can act on staff accounts", Problem: true,
			Text: "This account belongs to a staff member. Nothing was changed. Ask an admin if it needs doing.",
		}})
		return
	}
	if err := do(a); err != nil {
		status := httpx.Status(err)
		if status >= 500 {
			h.internal(w, r, err)
			return
		}
		h.showAccount(w, r, staff, status, &page{Alert: apperr.MessageOf(err)})
		return
	}
	see(w, r, Path+"/accounts/"+url.PathEscape(a.ID)+"?n="+n)
}
