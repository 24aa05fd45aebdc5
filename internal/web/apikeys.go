package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apikey"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/httpx"
)

// The API key pages under /security/apikeys: the list, the new-key form,
// the page that shows a secret once, and editing, rotating and deleting a
// key. Every change asks for a step-up (KeyStepUp) in the same form.

// PathAPIKeys is the key list (apikey.PathKeys, linked from e-mails).
const PathAPIKeys = apikey.PathKeys

// KeyStepUp confirms an API key change; internal/server implements it.
// The account password confirms changes of accounts without a second
// factor; accounts with one need it fresh (or a code typed into the form).
type KeyStepUp interface {
	// StepUpAsk says what the form must ask p for: "" (nothing: the second
	// factor is fresh), "password", or "second_factor" with the methods
	// that take a typed code.
	StepUpAsk(ctx context.Context, p account.Principal) (ask string, methods []string, err error)
	// StepUpConfirm checks what the form carried and returns the context
	// to make the change with.
	StepUpConfirm(ctx context.Context, p account.Principal, password, method, code string, c account.Client) (context.Context, error)
}

// useAPIKeys takes the API key dependencies from d.
func (h *Handler) useAPIKeys(d Deps) error {
	if d.APIKeys != nil && d.KeyStepUp == nil {
		return errors.New("web: Deps.KeyStepUp is required with Deps.APIKeys")
	}
	h.apiKeys, h.keyStepUp = d.APIKeys, d.KeyStepUp
	return nil
}

// registerAPIKeys mounts the key pages when the service is there.
func (h *Handler) registerAPIKeys(mux *http.ServeMux) {
	if h.apiKeys == nil {
		return
	}
	mux.HandleFunc("GET "+PathAPIKeys, h.auth(h.keysPage))
	mux.HandleFunc("GET "+PathAPIKeys+"/new", h.auth(h.newKeyPage))
	mux.HandleFunc("POST "+PathAPIKeys+"/new", h.form(h.auth(h.createKey)))
	mux.HandleFunc("GET "+PathAPIKeys+"/{id}/edit", h.auth(h.editKeyPage))
	mux.HandleFunc("POST "+PathAPIKeys+"/{id}/edit", h.form(h.auth(h.updateKey)))
	mux.HandleFunc("GET "+PathAPIKeys+"/{id}/rotate", h.auth(h.rotateKeyPage))
	mux.HandleFunc("POST "+PathAPIKeys+"/{id}/rotate", h.form(h.auth(h.rotateKey)))
	mux.HandleFunc("GET "+PathAPIKeys+"/{id}/delete", h.auth(h.deleteKeyPage))
	mux.HandleFunc("POST "+PathAPIKeys+"/{id}/delete", h.form(h.auth(h.deleteKey)))
}

// keyNotices are the messages the list shows after a redirect (?n=).
var keyNotices = map[string]string{
	"updated": "The API key is saved. Bots using it keep working with the new permissions and allowlist at once.",
	"deleted": "The API key is deleted. Any program still using it is now refused.",
}

// Views.

// keyRow is one key in the list.
type keyRow struct {
	apikey.View
	Names []string // permissions as Kraken names them
	// Withdraw: the key can move money out (shown with a warning).
	Withdraw bool
	// IdleDays counts the days since the key was last used (or created).
	IdleDays int
}

type keysData struct {
	Keys []keyRow
}

// permOption is one permission checkbox.
type permOption struct {
	Slug, Name string
	Checked    bool
	Danger     bool
}

// stepUpView is the step-up part of a key form.
type stepUpView struct {
	// Ask is "", "password" or "second_factor".
	Ask string
	// Methods take a typed code (the form then has a code field).
	Methods []string
	// Next is this page, where the step-up page sends the person back.
	Next string
}

// keyFormData is the new-key and edit forms' content.
type keyFormData struct {
	Key    *apikey.View // nil on the new-key form
	Perms  []permOption
	StepUp stepUpView
	// Expiry choices (new-key form).
	Expiries []choice
}

type choice struct {
	Value, Label string
	Checked      bool
}

// secretData is the page that shows a secret once.
type secretData struct {
	Key     apikey.View
	Secret  string
	Rotated bool
}

// keyActionData is the rotate and delete pages' content.
type keyActionData struct {
	Key    apikey.View
	Names  []string
	Graces []choice
	StepUp stepUpView
}

// Pages.

func (h *Handler) keysPage(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	views, err := h.apiKeys.List(r.Context(), pr.Account.ID)
	if err != nil {
		h.fail(w, r, "API keys", err)
		return
	}
	now := h.clock.Now()
	d := keysData{Keys: make([]keyRow, 0, len(views))}
	for _, v := range views {
		last := v.LastUsedAt
		if last.IsZero() {
			last = v.CreatedAt
		}
		d.Keys = append(d.Keys, keyRow{View: v, Names: permNames(v.Permissions),
			Withdraw: v.Permissions.Has(apikey.WithdrawFunds), IdleDays: int(now.Sub(last) / (24 * time.Hour))})
	}
	h.render(w, r, http.StatusOK, "apikeys", &page{Title: "API keys", Account: &pr.Account, Nav: "apikeys",
		Notice: keyNotices[r.URL.Query().Get("n")], Data: d})
}

func (h *Handler) newKeyPage(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	h.showNewKey(w, r, pr, http.StatusOK, &page{}, nil)
}

// showNewKey renders the new-key form with the permissions in checked
// (none on a fresh form: nothing is pre-selected).
func (h *Handler) showNewKey(w http.ResponseWriter, r *http.Request, pr account.Principal, status int, p *page, checked []string) {
	su, err := h.stepUpView(r, pr)
	if err != nil {
		h.fail(w, r, "New API key", err)
		return
	}
	if p.Values == nil {
		p.Values = map[string]string{}
	}
	exp := p.Values["expires"]
	if exp == "" {
		exp = "never"
	}
	d := keyFormData{Perms: permOptions(checked), StepUp: su}
	for _, c := range expiryChoices {
		d.Expiries = append(d.Expiries, choice{Value: c.value, Label: c.label, Checked: c.value == exp})
	}
	p.Title, p.Account, p.Nav, p.Data = "New API key", &pr.Account, "apikeys", d
	h.render(w, r, status, "apikeys_new", p)
}

// newKeyFields are the new-key form's fields (errors elsewhere go above it).
var newKeyFields = []string{"name", "permissions", "allowed_ips", "expires", "expires_on", "nonce_window",
	"key_password", "query_start", "query_end", "confirm_password", "step_up_code"}

func (h *Handler) createKey(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	form := r.PostForm
	p := &page{Values: keyFormValues(form)}
	in, err := parseCreateForm(form, h.clock.Now())
	if err != nil {
		h.keyFormError(w, r, pr, p, err, func(status int) { h.showNewKey(w, r, pr, status, p, form["permissions"]) })
		return
	}
	ctx, err := h.keyStepUp.StepUpConfirm(r.Context(), pr, form.Get("confirm_password"), form.Get("step_up_method"), form.Get("step_up_code"), h.client(r))
	if err == nil {
		var v apikey.View
		var secret string
		v, secret, err = h.apiKeys.Create(ctx, pr.Account.ID, h.keyActor(r, pr), in)
		if err == nil {
			h.showSecret(w, r, pr, secretData{Key: v, Secret: secret})
			return
		}
	}
	h.keyFormError(w, r, pr, p, err, func(status int) { h.showNewKey(w, r, pr, status, p, form["permissions"]) })
}

// keyFormError shows err on a key form: next to its field (the service's
// names mapped to the form's), or above the form.
func (h *Handler) keyFormError(w http.ResponseWriter, r *http.Request, pr account.Principal, p *page, err error, show func(status int)) {
	status := httpx.Status(err)
	if status >= 500 {
		h.internal(w, r, err)
		return
	}
	e, _ := apperr.As(err)
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter.Seconds()+0.999)))
	}
	field := e.Field
	switch field {
	case "password":
		field = "key_password"
	case "expires_at":
		field = "expires"
	}
	p.fieldErr(field, e.Message, newKeyFields...)
	show(status)
}

// showSecret renders the new secret: the only time anyone sees it. The
// page (like every page) is sent with Cache-Control: no-store, so the
// browser keeps no copy to show again from its history.
func (h *Handler) showSecret(w http.ResponseWriter, r *http.Request, pr account.Principal, d secretData) {
	w.Header().Set("Pragma", "no-cache")
	title := "Your new API key"
	if d.Rotated {
		title = "Your new API secret"
	}
	h.render(w, r, http.StatusOK, "apikeys_secret", &page{Title: title, Account: &pr.Account, Nav: "apikeys", Data: d})
}

// loadKey returns the key in the path when it is the principal's.
func (h *Handler) loadKey(w http.ResponseWriter, r *http.Request, pr account.Principal, title string) (apikey.View, bool) {
	v, err := h.apiKeys.Get(r.Context(), pr.Account.ID, r.PathValue("id"))
	if err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			h.render(w, r, http.StatusNotFound, "message", &page{Title: title, Account: &pr.Account, Nav: "apikeys", Data: messageData{
				Heading: "There is no such API key", Problem: true,
				Text:    "It may have been deleted already. The list shows the keys you have now.",
				NextURL: PathAPIKeys, NextText: "See your API keys",
			}})
			return apikey.View{}, false
		}
		h.fail(w, r, title, err)
		return apikey.View{}, false
	}
	return v, true
}

func (h *Handler) editKeyPage(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	v, ok := h.loadKey(w, r, pr, "Edit API key")
	if !ok {
		return
	}
	p := &page{Values: map[string]string{"name": v.Name, "allowed_ips": strings.Join(v.AllowedIPs, "\n")}}
	h.showEditKey(w, r, pr, v, http.StatusOK, p, v.Permissions.Slugs())
}

func (h *Handler) showEditKey(w http.ResponseWriter, r *http.Request, pr account.Principal, v apikey.View, status int, p *page, checked []string) {
	su, err := h.stepUpView(r, pr)
	if err != nil {
		h.fail(w, r, "Edit API key", err)
		return
	}
	p.Title, p.Account, p.Nav = "Edit API key", &pr.Account, "apikeys"
	p.Data = keyFormData{Key: &v, Perms: permOptions(checked), StepUp: su}
	h.render(w, r, status, "apikeys_edit", p)
}

func (h *Handler) updateKey(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	v, ok := h.loadKey(w, r, pr, "Edit API key")
	if !ok {
		return
	}
	form := r.PostForm
	p := &page{Values: keyFormValues(form)}
	name := form.Get("name")
	perms := form["permissions"]
	if perms == nil {
		perms = []string{}
	}
	allow := []string{form.Get("allowed_ips")}
	show := func(status int) { h.showEditKey(w, r, pr, v, status, p, form["permissions"]) }
	ctx, err := h.keyStepUp.StepUpConfirm(r.Context(), pr, form.Get("confirm_password"), form.Get("step_up_method"), form.Get("step_up_code"), h.client(r))
	if err == nil {
		_, err = h.apiKeys.Update(ctx, pr.Account.ID, v.ID, h.keyActor(r, pr),
			apikey.UpdateInput{Name: &name, Permissions: &perms, AllowedIPs: &allow})
		if err == nil {
			see(w, r, PathAPIKeys+"?n=updated")
			return
		}
	}
	h.keyFormError(w, r, pr, p, err, show)
}

// graceChoices are the rotate form's options for the old secret.
var graceChoices = []struct {
	value string
	d     time.Duration
	label string
}{
	{"0", 0, "Stop the old secret now"},
	{"1h", time.Hour, "Keep the old secret working for 1 hour"},
	{"24h", 24 * time.Hour, "Keep the old secret working for 24 hours"},
	{"168h", 7 * 24 * time.Hour, "Keep the old secret working for 7 days"},
}

func (h *Handler) rotateKeyPage(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	v, ok := h.loadKey(w, r, pr, "Rotate API secret")
	if !ok {
		return
	}
	h.showKeyAction(w, r, pr, v, "apikeys_rotate", "Rotate API secret", http.StatusOK, &page{Values: map[string]string{"grace": "0"}})
}

func (h *Handler) showKeyAction(w http.ResponseWriter, r *http.Request, pr account.Principal, v apikey.View, name, title string, status int, p *page) {
	su, err := h.stepUpView(r, pr)
	if err != nil {
		h.fail(w, r, title, err)
		return
	}
	d := keyActionData{Key: v, Names: permNames(v.Permissions), StepUp: su}
	for _, g := range graceChoices {
		d.Graces = append(d.Graces, choice{Value: g.value, Label: g.label, Checked: p.Values["grace"] == g.value})
	}
	p.Title, p.Account, p.Nav, p.Data = title, &pr.Account, "apikeys", d
	h.render(w, r, status, name, p)
}

func (h *Handler) rotateKey(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	v, ok := h.loadKey(w, r, pr, "Rotate API secret")
	if !ok {
		return
	}
	form := r.PostForm
	p := &page{Values: map[string]string{"grace": form.Get("grace")}}
	show := func(status int) { h.showKeyAction(w, r, pr, v, "apikeys_rotate", "Rotate API secret", status, p) }
	grace, known := time.Duration(0), false
	for _, g := range graceChoices {
		if form.Get("grace") == g.value {
			grace, known = g.d, true
		}
	}
	if !known {
		p.Errors = map[string]string{"grace": "Choose how long the old secret keeps working."}
		show(http.StatusBadRequest)
		return
	}
	ctx, err := h.keyStepUp.StepUpConfirm(r.Context(), pr, form.Get("confirm_password"), form.Get("step_up_method"), form.Get("step_up_code"), h.client(r))
	if err == nil {
		var nv apikey.View
		var secret string
		nv, secret, err = h.apiKeys.Rotate(ctx, pr.Account.ID, v.ID, h.keyActor(r, pr), grace)
		if err == nil {
			h.showSecret(w, r, pr, secretData{Key: nv, Secret: secret, Rotated: true})
			return
		}
	}
	h.keyFormError(w, r, pr, p, err, show)
}

func (h *Handler) deleteKeyPage(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	v, ok := h.loadKey(w, r, pr, "Delete API key")
	if !ok {
		return
	}
	h.showKeyAction(w, r, pr, v, "apikeys_delete", "Delete API key", http.StatusOK, &page{})
}

func (h *Handler) deleteKey(w http.ResponseWriter, r *http.Request, pr account.Principal) {
	v, ok := h.loadKey(w, r, pr, "Delete API key")
	if !ok {
		return
	}
	form := r.PostForm
	p := &page{}
	show := func(status int) { h.showKeyAction(w, r, pr, v, "apikeys_delete", "Delete API key", status, p) }
	ctx, err := h.keyStepUp.StepUpConfirm(r.Context(), pr, form.Get("confirm_password"), form.Get("step_up_method"), form.Get("step_up_code"), h.client(r))
	if err == nil {
		if err = h.apiKeys.Delete(ctx, pr.Account.ID, v.ID, h.keyActor(r, pr)); err == nil {
			see(w, r, PathAPIKeys+"?n=deleted")
			return
		}
	}
	h.keyFormError(w, r, pr, p, err, show)
}

// Helpers.

func (h *Handler) stepUpView(r *http.Request, pr account.Principal) (stepUpView, error) {
	ask, methods, err := h.keyStepUp.StepUpAsk(r.Context(), pr)
	return stepUpView{Ask: ask, Methods: methods, Next: r.URL.Path}, err
}

func (h *Handler) keyActor(r *http.Request, pr account.Principal) apikey.Actor {
	c := h.client(r)
	return apikey.Actor{IP: c.IP, UserAgent: c.UserAgent, SessionID: pr.Session.ID, DeviceID: pr.Session.DeviceID}
}

// keyFormValues refills a key form after an error; never the passwords or
// the step-up code.
func keyFormValues(form url.Values) map[string]string {
	v := map[string]string{}
	for _, k := range []string{"name", "allowed_ips", "expires", "expires_on", "nonce_window", "query_start", "query_end"} {
		v[k] = form.Get(k)
	}
	return v
}

// permOptions are the ten permission checkboxes, in Kraken's order, with
// those in checked ticked.
func permOptions(checked []string) []permOption {
	set, _ := apikey.ParsePermissionList(checked)
	out := make([]permOption, 0, len(apikey.AllPermissions()))
	for _, p := range apikey.AllPermissions() {
		out = append(out, permOption{Slug: p.Slug(), Name: p.Name(), Checked: set.Has(p), Danger: p.Dangerous()})
	}
	return out
}

func permNames(ps apikey.Permissions) []string {
	var out []string
	for _, p := range ps.List() {
		out = append(out, p.Name())
	}
	return out
}

// expiryChoices are the new-key form's expiry options.
var expiryChoices = []struct{ value, label string }{
	{"never", "Never"},
	{"7d", "In 7 days"},
	{"30d", "In 30 days"},
	{"90d", "In 90 days"},
	{"365d", "In 1 year"},
	{"date", "On a date I choose (below)"},
}

// maxFormYear bounds dates typed into the key forms.
const maxFormYear = 9999

// parseCreateForm reads the new-key form into the service's input (which
// validates the rest). It returns an *apperr.Error naming the form field
// for input it cannot read.
func parseCreateForm(form url.Values, now time.Time) (apikey.CreateInput, error) {
	in := apikey.CreateInput{
		Name:        form.Get("name"),
		Permissions: form["permissions"],
		AllowedIPs:  []string{form.Get("allowed_ips")},
		Password:    form.Get("key_password"),
	}
	if len(in.Permissions) == 0 {
		return in, apperr.Field(apperr.Invalid, "permissions", "Choose at least one permission. None is chosen for you: pick only what the program needs.")
	}
	switch exp := form.Get("expires"); exp {
	case "", "never":
		if strings.TrimSpace(form.Get("expires_on")) != "" {
			return in, apperr.Field(apperr.Invalid, "expires", "You typed an expiry date: choose \"On a date I choose\", or clear the date.")
		}
	case "date":
		t, err := parseFormDate(form.Get("expires_on"))
		if err != nil || t.IsZero() {
			return in, apperr.Field(apperr.Invalid, "expires_on", "Enter the expiry date as YYYY-MM-DD, for example 2030-01-31.")
		}
		in.ExpiresAt = t
	default:
		days, ok := strings.CutSuffix(exp, "d")
		n, err := strconv.Atoi(days)
		if !ok || err != nil || n < 1 || n > 3660 {
			return in, apperr.Field(apperr.Invalid, "expires", "Choose when the key expires.")
		}
		in.ExpiresAt = now.Add(time.Duration(n) * 24 * time.Hour)
	}
	if s := strings.TrimSpace(form.Get("nonce_window")); s != "" {
		n, err := strconv.ParseUint(s, 10, 63)
		if err != nil {
			return in, apperr.Field(apperr.Invalid, "nonce_window", "Enter the nonce window as a whole number (0 or empty: every nonce must be higher than the last).")
		}
		in.NonceWindow = n
	}
	var err error
	if in.QueryStart, err = parseFormDate(form.Get("query_start")); err != nil {
		return in, apperr.Field(apperr.Invalid, "query_start", "Enter the date as YYYY-MM-DD, or leave it empty.")
	}
	if in.QueryEnd, err = parseFormDate(form.Get("query_end")); err != nil {
		return in, apperr.Field(apperr.Invalid, "query_end", "Enter the date as YYYY-MM-DD, or leave it empty.")
	}
	return in, nil
}

// parseFormDate reads an <input type="date"> value (YYYY-MM-DD) as
// midnight UTC; empty is the zero time.
func parseFormDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, err
	}
	if t.Year() < 1970 || t.Year() > maxFormYear {
		return time.Time{}, errors.New("date out of range")
	}
	return t, nil
}
