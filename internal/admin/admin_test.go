package admin_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/recovery"
	"github.com/moat-dev/moat/internal/store"
)

// TestWhoGetsIn: no session goes to sign-in; an ordinary account gets the
// same 404 as a path that does not exist (the console does not reveal
// itself), even signed in with a key; staff signed in with the password
// alone get 403 and the way to fix it; staff signed in with a key get in.
func TestWhoGetsIn(t *testing.T) {
	e := newEnv(t)
	user := e.create("ursula@example.com", store.RoleUser)
	e.addKey(user, e.passwordSession(user))
	userKey := e.keySession(user)
	sam := e.create("sam@example.com", store.RoleSupport)
	samPassword := e.passwordSession(sam)
	e.addKey(sam, samPassword)
	samKey := e.keySession(sam)

	expectRedirect(t, e.get("/admin", ""), "/login?n=signin-required")
	expectRedirect(t, e.get("/admin/accounts", "not-a-session"), "/login?n=session-ended")

	notFound := e.get("/no-such-page", "")
	for _, path := range []string{"/admin", "/admin/", "/admin/accounts?q=a", "/admin/cases/x"} {
		r := e.get(path, userKey)
		if r.status != http.StatusNotFound || r.body != notFound.body {
			t.Errorf("user at %s: %d %q, want the plain 404 %q", path, r.status, r.body, notFound.body)
		}
	}
	r := e.post("/admin/accounts/"+sam.acct.ID+"/lock", userKey, url.Values{"reason": {"mine now"}})
	if r.status != http.StatusNotFound || !e.account(sam.acct.ID).LockedAt.IsZero() {
		t.Errorf("a user's lock: %d, locked %v", r.status, e.account(sam.acct.ID).LockedAt)
	}

	// Staff signed in with the password only (before registering the key;
	// the session is still valid).
	for _, path := range []string{"/admin", "/admin/accounts"} {
		expect(t, e.get(path, samPassword), http.StatusForbidden, "Sign in with your security key", `href="/account/security"`)
	}
	expect(t, e.post("/admin/accounts/"+user.acct.ID+"/lock", samPassword, url.Values{"reason": {"x"}}), http.StatusForbidden)
	if !e.account(user.acct.ID).LockedAt.IsZero() {
		t.Error("a password-only staff session locked an account")
	}

	r = e.get("/admin", samKey)
	expect(t, r, http.StatusOK, "Recovery cases", "sam@example.com", "(support)")
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
	}
	expect(t, e.get("/admin/", samKey), http.StatusOK, "Recovery cases")
	expect(t, e.get("/admin/nothing-here", samKey), http.StatusNotFound)
}

// TestAccountActions: the role matrix over HTTP. Support search, lock and
// sign out accounts but cannot unlock (403, nothing changes); an admin
// can. Each action is in the audit log with the staff member as actor.
func TestAccountActions(t *testing.T) {
	e := newEnv(t)
	bob := e.create("bob@example.com", store.RoleUser)
	sam, samKey := e.staff("sam@example.com", store.RoleSupport)
	ada, adaKey := e.staff("ada@example.com", store.RoleAdmin)
	acctURL := "/admin/accounts/" + bob.acct.ID

	r := e.get("/admin/accounts?q=BOB", samKey)
	expect(t, r, http.StatusOK, `href="`+acctURL+`"`, "bob@example.com")
	if strings.Contains(r.body, "sam@example.com</a>") {
		t.Error("search lists accounts that do not match")
	}
	expect(t, e.get("/admin/accounts?q=nobody", samKey), http.StatusOK, "No account")

	expect(t, e.get(acctURL, samKey), http.StatusOK, "bob@example.com", "Not locked", `action="`+acctURL+`/lock"`)
	// Looking is on the record, with who looked.
	if evs := e.audit(bob.acct.ID, "staff.viewed_account"); len(evs) != 1 || evs[0].ActorID != sam.acct.ID {
		t.Errorf("account view audited as %+v, want one by %s", evs, sam.acct.ID)
	}

	// A lock needs a reason.
	expect(t, e.post(acctURL+"/lock", samKey, url.Values{"reason": {"  "}}), http.StatusBadRequest, "Write why")
	if !e.account(bob.acct.ID).LockedAt.IsZero() {
		t.Fatal("locked without a reason")
	}
	expectRedirect(t, e.post(acctURL+"/lock", samKey, url.Values{"reason": {"phished, per ticket 4711"}}), acctURL+"?n=locked")
	if a := e.account(bob.acct.ID); a.LockedAt.IsZero() || a.LockReason != "phished, per ticket 4711" {
		t.Fatalf("after lock: %+v", a)
	}
	if evs := e.audit(bob.acct.ID, "account.locked"); len(evs) != 1 || evs[0].ActorID != sam.acct.ID {
		t.Errorf("lock audited as %+v, want actor %s", evs, sam.acct.ID)
	}
	r = e.get(acctURL+"?n=locked", samKey)
	expect(t, r, http.StatusOK, "The account is locked", "phished, per ticket 4711", "Only an admin can unlock", `data-event="account.locked"`)
	if strings.Contains(r.body, `action="`+acctURL+`/unlock"`) {
		t.Error("support is offered the unlock button")
	}

	// Support cannot unlock: 403, still locked, nothing audited.
	expect(t, e.post(acctURL+"/unlock", samKey, nil), http.StatusForbidden, "Only admins can do this")
	if e.account(bob.acct.ID).LockedAt.IsZero() || len(e.audit(bob.acct.ID, "account.unlocked")) != 0 {
		t.Fatal("support unlocked the account")
	}
	// An admin can.
	expect(t, e.get(acctURL, adaKey), http.StatusOK, `action="`+acctURL+`/unlock"`)
	expectRedirect(t, e.post(acctURL+"/unlock", adaKey, nil), acctURL+"?n=unlocked")
	if !e.account(bob.acct.ID).LockedAt.IsZero() {
		t.Fatal("still locked after the admin's unlock")
	}
	if evs := e.audit(bob.acct.ID, "account.unlocked"); len(evs) != 1 || evs[0].ActorID != ada.acct.ID {
		t.Errorf("unlock audited as %+v, want actor %s", evs, ada.acct.ID)
	}

	// Sign out everywhere.
	bobSession := e.passwordSession(bob)
	if st, _ := e.api("/api/v1/settings/anti-phishing", map[string]string{"code": "x"}, bobSession); st == http.StatusUnauthorized {
		t.Fatal("bob's new session does not work")
	}
	expectRedirect(t, e.post(acctURL+"/revoke-sessions", samKey, nil), acctURL+"?n=revoked")
	if r := e.get("/account", bobSession); r.status != http.StatusSeeOther {
		t.Errorf("bob's session still works after the revocation: %d", r.status)
	}
	found := false
	evs, err := e.srv.Store().ListAudit(t.Context(), store.AuditFilter{AccountID: bob.acct.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		found = found || (strings.HasPrefix(ev.Type, "session.") && ev.ActorID == sam.acct.ID)
	}
	if !found {
		t.Errorf("no session event with actor %s in %+v", sam.acct.ID, evs)
	}

	// Staff accounts: support may not lock or sign out another staff
	// member (or an admin); an admin may.
	tess, _ := e.staff("tess@example.com", store.RoleSupport)
	for _, target := range []*person{ada, tess} {
		u := "/admin/accounts/" + target.acct.ID
		expect(t, e.post(u+"/lock", samKey, url.Values{"reason": {"x"}}), http.StatusForbidden, "Only admins can act on staff accounts")
		expect(t, e.post(u+"/revoke-sessions", samKey, nil), http.StatusForbidden, "Only admins can act on staff accounts")
		if !e.account(target.acct.ID).LockedAt.IsZero() || len(e.audit(target.acct.ID, "account.locked")) != 0 {
			t.Fatalf("support locked staff account %s", target.acct.Email)
		}
	}
	expectRedirect(t, e.post("/admin/accounts/"+tess.acct.ID+"/lock", adaKey, url.Values{"reason": {"left the company"}}),
		"/admin/accounts/"+tess.acct.ID+"?n=locked")
	if e.account(tess.acct.ID).LockedAt.IsZero() {
		t.Error("an admin could not lock a support account")
	}

	// Unknown accounts.
	expect(t, e.get("/admin/accounts/nope", samKey), http.StatusNotFound)
	expect(t, e.post("/admin/accounts/nope/lock", samKey, url.Values{"reason": {"x"}}), http.StatusNotFound)
}

// TestCaseReview: a case in the queue, its review with the answers next
// to the history, the document as a sandboxed download, a reason required
// to reject, four-eyes approval (the same person twice is refused), and
// the audit log naming each staff member.
func TestCaseReview(t *testing.T) {
	e := newEnv(t)
	user := e.create("ursula@example.com", store.RoleUser)
	opened := e.openCase(user)
	id := opened.Case.ID
	caseURL := "/admin/cases/" + id
	sam, samKey := e.staff("sam@example.com", store.RoleSupport)
	ada, adaKey := e.staff("ada@example.com", store.RoleAdmin)

	expect(t, e.get("/admin", samKey), http.StatusOK, opened.Case.Reference, `href="`+caseURL+`"`, "0 of 2")

	r := e.get(caseURL, samKey)
	expect(t, r, http.StatusOK, opened.Case.Reference, "ursula@example.com", "2026-03", "Matches",
		"Lost my key on a train.", "PNG image", `href="`+caseURL+`/document"`, `action="`+caseURL+`/approve"`, e.caseIP)

	// The document: the bytes uploaded, as an attachment that is never
	// sniffed, cached or run.
	r = e.get(caseURL+"/document", samKey)
	if r.status != 200 || r.body != string(tinyPNG) {
		t.Fatalf("document: %d, %d bytes", r.status, len(r.body))
	}
	for h, want := range map[string]string{
		"Content-Type":           "image/png",
		"X-Content-Type-Options": "nosniff",
		"Cache-Control":          "no-store",
	} {
		if got := r.header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if cd := r.header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") {
		t.Errorf("Content-Disposition %q", cd)
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "sandbox") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if evs := e.audit(user.acct.ID, recovery.EventDocumentViewed); len(evs) != 1 || evs[0].ActorID != sam.acct.ID {
		t.Errorf("document view audited as %+v", evs)
	}
	expect(t, e.get("/admin/cases/nope/document", samKey), http.StatusNotFound)

	// Rejecting needs a reason; without one nothing changes.
	expect(t, e.post(caseURL+"/reject", samKey, url.Values{"reason": {""}}), http.StatusBadRequest, "Write the reason")
	if c := e.caseOf(id); c.State != store.RecoveryOpen {
		t.Fatalf("state %s after a reject without reason", c.State)
	}

	// Four eyes: Sam approves; Sam again is refused; Ada's approval starts
	// the waiting period.
	expectRedirect(t, e.post(caseURL+"/approve", samKey, nil), caseURL+"?n=approved-first")
	expect(t, e.get(caseURL+"?n=approved-first", samKey), http.StatusOK, "Your approval is recorded", "You approved this case already", "1 of 2")
	r = e.post(caseURL+"/approve", samKey, nil)
	expect(t, r, http.StatusConflict)
	if c := e.caseOf(id); c.State != store.RecoveryOpen || c.SecondApproverID != "" {
		t.Fatalf("after Sam's second approval: %s, second approver %q", c.State, c.SecondApproverID)
	}
	r = e.get(caseURL, adaKey)
	expect(t, r, http.StatusOK, "Your approval is the second")
	if strings.Contains(r.body, "You approved this case already") {
		t.Error("Ada is told she approved already")
	}
	expectRedirect(t, e.post(caseURL+"/approve", adaKey, nil), caseURL+"?n=approved-final")
	c := e.caseOf(id)
	if c.State != store.RecoveryWaiting || c.FirstApproverID != sam.acct.ID || c.SecondApproverID != ada.acct.ID {
		t.Fatalf("after two approvals: %+v", c)
	}
	evs := e.audit(user.acct.ID, recovery.EventApproved)
	if len(evs) != 2 || evs[0].ActorID != sam.acct.ID || evs[1].ActorID != ada.acct.ID {
		t.Errorf("approvals audited as %+v", evs)
	}
	expect(t, e.get(caseURL, samKey), http.StatusOK, "Approved by two staff members")
	// A waiting case can no longer be rejected.
	expect(t, e.post(caseURL+"/reject", samKey, url.Values{"reason": {"changed my mind"}}), http.StatusConflict)

	// The account page lists the case.
	expect(t, e.get("/admin/accounts/"+user.acct.ID, samKey), http.StatusOK, opened.Case.Reference, `data-event="recovery.approved"`)

	// The other views of the queue.
	expect(t, e.get("/admin?state=rejected", samKey), http.StatusOK, "No rejected cases")
	expectRedirect(t, e.get("/admin?state=bogus", samKey), "/admin")
}

// TestReject: a rejection with a reason ends the case and is audited.
func TestReject(t *testing.T) {
	e := newEnv(t)
	user := e.create("ursula@example.com", store.RoleUser)
	opened := e.openCase(user)
	caseURL := "/admin/cases/" + opened.Case.ID
	sam, samKey := e.staff("sam@example.com", store.RoleSupport)
	expectRedirect(t, e.post(caseURL+"/reject", samKey, url.Values{"reason": {"The document is unreadable; open a new case with a sharper photo."}}), caseURL+"?n=rejected")
	c := e.caseOf(opened.Case.ID)
	if c.State != store.RecoveryRejected || c.RejectedBy != sam.acct.ID {
		t.Fatalf("after reject: %+v", c)
	}
	if evs := e.audit(user.acct.ID, recovery.EventRejected); len(evs) != 1 || evs[0].ActorID != sam.acct.ID {
		t.Errorf("rejection audited as %+v", evs)
	}
	expect(t, e.get(caseURL, samKey), http.StatusOK, "sharper photo")
	expect(t, e.post(caseURL+"/approve", samKey, nil), http.StatusConflict)
}

// TestStopWaitingCase: the owner phones support about an approved case
// that is not theirs. One staff member stops it with a reason: the case
// is cancelled, the waiting period never completes, the owner is told,
// and the audit log names who stopped it.
func TestStopWaitingCase(t *testing.T) {
	e := newEnv(t)
	user := e.create("ursula@example.com", store.RoleUser)
	opened := e.openCase(user)
	id := opened.Case.ID
	caseURL := "/admin/cases/" + id
	_, samKey := e.staff("sam@example.com", store.RoleSupport)
	_, adaKey := e.staff("ada@example.com", store.RoleAdmin)
	tess, tessKey := e.staff("tess@example.com", store.RoleSupport)

	// An open case offers Reject, not Stop.
	if r := e.get(caseURL, tessKey); strings.Contains(r.body, `action="`+caseURL+`/stop"`) {
		t.Error("an open case offers the stop form")
	}
	expectRedirect(t, e.post(caseURL+"/approve", samKey, nil), caseURL+"?n=approved-first")
	expectRedirect(t, e.post(caseURL+"/approve", adaKey, nil), caseURL+"?n=approved-final")
	expect(t, e.get(caseURL, tessKey), http.StatusOK, `action="`+caseURL+`/stop"`, "Stop the recovery")

	// A reason is required; without one nothing changes.
	expect(t, e.post(caseURL+"/stop", tessKey, url.Values{"reason": {" "}}), http.StatusBadRequest, "Write why the recovery is stopped")
	if c := e.caseOf(id); c.State != store.RecoveryWaiting {
		t.Fatalf("state %s after a stop without reason", c.State)
	}
	const why = "Owner called from the number on file (ticket 5120): not their request"
	expectRedirect(t, e.post(caseURL+"/stop", tessKey, url.Values{"reason": {why}}), caseURL+"?n=stopped")
	c := e.caseOf(id)
	if c.State != store.RecoveryCancelled || c.CancelledBy != tess.acct.ID {
		t.Fatalf("after stop: %s by %q", c.State, c.CancelledBy)
	}
	evs := e.audit(user.acct.ID, recovery.EventCancelled)
	if len(evs) != 1 || evs[0].ActorID != tess.acct.ID || !strings.Contains(evs[0].Data, "ticket 5120") {
		t.Errorf("stop audited as %+v", evs)
	}
	expect(t, e.get(caseURL+"?n=stopped", samKey), http.StatusOK, "The recovery is stopped", "by a staff member")
	// Stopped is final: nothing more to stop, and the timer completes nothing.
	expect(t, e.post(caseURL+"/stop", samKey, url.Values{"reason": {"again"}}), http.StatusConflict)
	e.clock.Advance(73 * time.Hour)
	if _, err := e.srv.Recovery().Tick(t.Context()); err != nil {
		t.Fatal(err)
	}
	if c := e.caseOf(id); c.State != store.RecoveryCancelled {
		t.Fatalf("after the waiting period: %s", c.State)
	}
}

// TestConsoleRefusesCrossSite: a page on another site cannot make a staff
// member's browser approve a case or unlock an account (cross-site
// request forgery), even with the staff member's cookie attached.
func TestConsoleRefusesCrossSite(t *testing.T) {
	e := newEnv(t)
	user := e.create("ursula@example.com", store.RoleUser)
	opened := e.openCase(user)
	_, adaKey := e.staff("ada@example.com", store.RoleAdmin)
	if err := e.srv.Accounts().Lock(t.Context(), user.acct.Email, "test", "test"); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/admin/cases/" + opened.Case.ID + "/approve", "/admin/accounts/" + user.acct.ID + "/unlock"} {
		r := httptest.NewRequest("POST", origin+path, strings.NewReader(""))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Origin", "https://evil.example")
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		r.AddCookie(&http.Cookie{Name: cookieName, Value: adaKey})
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		if w.Code != http.StatusForbidden {
			t.Errorf("cross-site POST %s: %d, want 403", path, w.Code)
		}
	}
	if c := e.caseOf(opened.Case.ID); c.FirstApproverID != "" {
		t.Error("a cross-site request approved the case")
	}
	if e.account(user.acct.ID).LockedAt.IsZero() {
		t.Error("a cross-site request unlocked the account")
	}
}
