package recovery_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/mfa/totp"
	"github.com/moat-dev/moat/internal/recovery"
	"github.com/moat-dev/moat/internal/recovery/recoverytest"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

var refRe = regexp.MustCompile(`^RC-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$`)

// From the second-factor prompt: the case is open, the owner e-mailed at
// once with a cancel link, the status link works, the opening audited.
func TestOpenWithPassword(t *testing.T) {
	w := newWorld(t)
	p := w.user("jane@example.com", store.RoleUser)
	o := w.open(p)
	c := o.Case
	if !refRe.MatchString(c.Reference) || c.State != store.RecoveryOpen || c.Via != "password" ||
		c.AccountID != p.acct.ID || c.Approvals != 0 || c.NextStep == "" || o.StatusToken == "" {
		t.Fatalf("opened %+v", o)
	}
	m := w.lastMail(p.acct.Email, subjRequested)
	for _, s := range []string{c.Reference, w.web.IP, origin + recovery.PathCancel + "?token="} {
		if !strings.Contains(m.Body, s) {
			t.Errorf("e-mail lacks %q:\n%s", s, m.Body)
		}
	}
	st, err := w.rec.Status(w.ctx, o.StatusToken)
	if err != nil || st.ID != c.ID || st.State != store.RecoveryOpen {
		t.Fatalf("Status: %+v, %v", st, err)
	}
	_, err = w.rec.Status(w.ctx, o.StatusToken+"x")
	wantCode(t, err, apperr.TokenInvalid)
	_, err = w.rec.Status(w.ctx, "")
	wantCode(t, err, apperr.TokenInvalid)

	rc := w.getCase(c.ID)
	if !bytes.Equal(rc.StatusTokenHash, secrets.HashToken(o.StatusToken)) || rc.DocumentType != recovery.TypePNG ||
		rc.DocumentSize != int64(len(recoverytest.PNG())) || rc.IP != w.web.IP || rc.UserAgent != w.web.UserAgent {
		t.Errorf("stored %+v", rc)
	}
	if evs := w.auditEvents(p.acct.ID, recovery.EventOpened); len(evs) != 1 || !strings.Contains(evs[0].Data, c.Reference) {
		t.Errorf("audit %+v", evs)
	}
	// The pending sign-in itself is untouched: the case does not sign in.
	if _, err := w.acct.Authenticate(w.ctx, "", w.web); err == nil {
		t.Error("authenticated without a session")
	}
}

// With the link from a "Forgot password" e-mail (lost both): the link is
// not used up by the case.
func TestOpenWithResetLink(t *testing.T) {
	w := newWorld(t)
	p := w.user("jane@example.com", store.RoleUser)
	tok := w.resetToken(p)
	o, err := w.rec.Open(w.ctx, recovery.Proof{ResetToken: tok}, answers, recoverytest.JPEG(), w.web)
	if err != nil || o.Case.Via != "email" || w.getCase(o.Case.ID).DocumentType != recovery.TypeJPEG {
		t.Fatalf("Open: %+v, %v", o, err)
	}
	if _, err := w.acct.CheckResetLink(w.ctx, tok); err != nil {
		t.Errorf("the reset link was used up: %v", err)
	}
}

func TestOpenBadProof(t *testing.T) {
	w := newWorld(t)
	p := w.user("jane@example.com", store.RoleUser)
	pend := w.pending(p)
	reset := w.resetToken(p)
	for name, proof := range map[string]recovery.Proof{
		"none":            {},
		"both":            {PendingToken: pend, ResetToken: reset},
		"unknown sign-in": {PendingToken: "x" + pend},
		"unknown reset":   {ResetToken: "x" + reset},
		"swapped":         {PendingToken: reset},
	} {
		_, err := w.rec.Open(w.ctx, proof, answers, recoverytest.PNG(), w.web)
		if c := apperr.CodeOf(err); c != apperr.TokenInvalid && c != apperr.TokenExpired {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A sign-in that completed is no proof any more.
	done, err := w.acct.VerifySecondFactor(w.ctx, pend, "totp", p.app(), w.web)
	if err != nil || done.Step != account.StepDone {
		t.Fatalf("VerifySecondFactor: %+v, %v", done, err)
	}
	_, err = w.rec.Open(w.ctx, recovery.Proof{PendingToken: pend}, answers, recoverytest.PNG(), w.web)
	wantCode(t, err, apperr.TokenInvalid)
	// An expired reset link neither.
	w.clk.Advance(account.ResetLinkTTL + time.Minute)
	_, err = w.rec.Open(w.ctx, recovery.Proof{ResetToken: reset}, answers, recoverytest.PNG(), w.web)
	if c := apperr.CodeOf(err); c != apperr.TokenExpired && c != apperr.TokenInvalid {
		t.Errorf("expired reset link: %v", err)
	}
	if n := len(w.mails(p.acct.Email, subjRequested)); n != 0 {
		t.Errorf("%d e-mails", n)
	}
}

func TestAnswers(t *testing.T) {
	w := newWorld(t)
	p := w.user("jane@example.com", store.RoleUser)
	long := strings.Repeat("a", 301)
	for _, tc := range []struct {
		a     recovery.Answers
		field string
	}{
		{recovery.Answers{}, "account_created"},
		{recovery.Answers{AccountCreated: "March 2030"}, "account_created"},
		{recovery.Answers{AccountCreated: "2030-3"}, "account_created"},
		{recovery.Answers{AccountCreated: "2030-13"}, "account_created"},
		{recovery.Answers{AccountCreated: "2030-04"}, "account_created"}, // next month
		{recovery.Answers{AccountCreated: "1999-12"}, "account_created"},
		{recovery.Answers{AccountCreated: "2030-03", Devices: long}, "devices"},
		{recovery.Answers{AccountCreated: "2030-03", WithdrawalAddress: "bc1q\x00evil"}, "withdrawal_address"},
		{recovery.Answers{AccountCreated: "2030-03", APIKeyName: "bot\nname"}, "api_key_name"},
		{recovery.Answers{AccountCreated: "2030-03", LastDepositAsset: "\u202eCTB"}, "last_deposit_asset"},
		{recovery.Answers{AccountCreated: "2030-03", Note: "bad \xff utf-8"}, "note"},
	} {
		_, err := w.rec.Open(w.ctx, recovery.Proof{PendingToken: w.pending(p)}, tc.a, recoverytest.PNG(), w.web)
		if ae := wantCode(t, err, apperr.Invalid); ae.Field != tc.field {
			t.Errorf("%+v: field %q, want %q", tc.a, ae.Field, tc.field)
		}
	}
	// Optional answers may be blank; a note may have lines; the current
	// month is fine.
	a := recovery.Answers{AccountCreated: " 2030-03 ", Note: "Lost my phone.\nNew number since."}
	o, err := w.rec.Open(w.ctx, recovery.Proof{PendingToken: w.pending(p)}, a, recoverytest.PNG(), w.web)
	if err != nil {
		t.Fatal(err)
	}
	r, err := w.rec.Review(w.ctx, w.staffOnce("s1@moat.test"), o.Case.ID)
	if err != nil || r.Note != a.Note || r.Comparisons[0].Answer != "2030-03" {
		t.Fatalf("Review: %+v, %v", r, err)
	}
}

// One open or waiting case per account, also when opened at once.
func TestOneCasePerAccount(t *testing.T) {
	w := newWorld(t)
	p := w.user("jane@example.com", store.RoleUser)
	const n = 3
	proofs := make([]string, n)
	for i := range proofs {
		proofs[i] = w.pending(p)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = w.rec.Open(w.ctx, recovery.Proof{PendingToken: proofs[i]}, answers, recoverytest.PNG(), w.web)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if apperr.CodeOf(err) != apperr.Conflict {
			t.Errorf("concurrent open: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent opens succeeded: %v", ok, n, errs)
	}
	cases, err := w.st.ListRecoveryCases(w.ctx, store.RecoveryCaseFilter{AccountID: p.acct.ID})
	if err != nil || len(cases) != 1 {
		t.Fatalf("cases %d, %v", len(cases), err)
	}
	_, err = w.rec.Open(w.ctx, recovery.Proof{PendingToken: w.pending(p)}, answers, recoverytest.PNG(), w.web)
	if ae := wantCode(t, err, apperr.Conflict); !strings.Contains(ae.Message, cases[0].Reference) {
		t.Errorf("message %q", ae.Message)
	}
	// Once it is over, a new one may be opened.
	if _, err := w.rec.CancelByLink(w.ctx, linkToken(t, w.lastMail(p.acct.Email, subjRequested).Body, recovery.PathCancel), w.web); err != nil {
		t.Fatal(err)
	}
	w.open(p)
}

func TestPerIPLimit(t *testing.T) {
	w := newWorld(t)
	var people []person
	for i := range 6 {
		people = append(people, w.user(fmt.Sprintf("u%d@example.com", i), store.RoleUser))
	}
	for _, p := range people[:5] {
		w.open(p)
	}
	_, err := w.rec.Open(w.ctx, recovery.Proof{PendingToken: w.pending(people[5])}, answers, recoverytest.PNG(), w.web)
	if ae := wantCode(t, err, apperr.RateLimited); ae.RetryAfter <= 0 {
		t.Errorf("RetryAfter %v", ae.RetryAfter)
	}
	// Another address is not affected; a day later this one may again.
	other := w.web
	other.IP = "198.51.100.1"
	if _, err := w.rec.Open(w.ctx, recovery.Proof{PendingToken: w.pending(people[5])}, answers, recoverytest.PNG(), other); err != nil {
		t.Fatal(err)
	}
}

func TestFourEyes(t *testing.T) {
	w := newWorld(t)
	p := w.user("jane@example.com", store.RoleUser)
	o := w.open(p)
	s1 := w.staffOnce("s1@moat.test")
	admin := w.staff("admin@moat.test", store.RoleAdmin)
	user := account.Principal{Account: p.acct}
	other := w.user("other@example.com", store.RoleUser)

	// Not staff: nothing.
	_, err := w.rec.Approve(w.ctx, account.Principal{Account: other.acct}, o.Case.ID, w.web)
	wantCode(t, err, apperr.Forbidden)
	_, err = w.rec.Approve(w.ctx, user, o.Case.ID, w.web)
	wantCode(t, err, apperr.Forbidden)
	_, err = w.rec.Queue(w.ctx, user, nil)
	wantCode(t, err, apperr.Forbidden)
	_, err = w.rec.Review(w.ctx, user, o.Case.ID)
	wantCode(t, err, apperr.Forbidden)
	_, _, err = w.rec.Document(w.ctx, user, o.Case.ID, w.web)
	wantCode(t, err, apperr.Forbidden)
	_, err = w.rec.Reject(w.ctx, user, o.Case.ID, "no", w.web)
	wantCode(t, err, apperr.Forbidden)
	_, err = w.rec.Approve(w.ctx, s1, "nope", w.web)
	wantCode(t, err, apperr.NotFound)

	c, err := w.rec.Approve(w.ctx, s1, o.Case.ID, w.web)
	if err != nil || c.State != store.RecoveryOpen || c.Approvals != 1 {
		t.Fatalf("first approval: %+v, %v", c, err)
	}
	_, err = w.rec.Approve(w.ctx, s1, o.Case.ID, w.web)
	if ae := wantCode(t, err, apperr.Conflict); !strings.Contains(ae.Message, "different staff member") {
		t.Errorf("message %q", ae.Message)
	}
	if r, err := w.rec.Review(w.ctx, admin, o.Case.ID); err != nil || r.FirstApproverID != s1.Account.ID {
		t.Fatalf("Review: %+v, %v", r, err)
	}
	if n := len(w.mails(p.acct.Email, subjApproved)); n != 0 {
		t.Fatalf("approved e-mail after one approval")
	}

	// A staff member's own case: another staff member must review it.
	staffer := w.user("staffer@moat.test", store.RoleSupport)
	own := w.open(staffer)
	_, err = w.rec.Approve(w.ctx, account.Principal{Account: staffer.acct}, own.Case.ID, w.web)
	wantCode(t, err, apperr.Forbidden)

	now := w.clk.Now()
	c, err = w.rec.Approve(w.ctx, admin, o.Case.ID, w.web)
	if err != nil || c.State != store.RecoveryWaiting || c.Approvals != 2 ||
		!c.WaitUntil.Equal(now.Add(recovery.DefaultWaitingPeriod)) {
		t.Fatalf("second approval: %+v, %v", c, err)
	}
	if rc := w.getCase(o.Case.ID); rc.FirstApproverID != s1.Account.ID || rc.SecondApproverID != admin.Account.ID ||
		!rc.NextNoticeAt.Equal(now.Add(recovery.DefaultNoticeEvery)) {
		t.Errorf("stored %+v", rc)
	}
	m := w.lastMail(p.acct.Email, subjApproved)
	if !strings.Contains(m.Body, o.Case.Reference) || !strings.Contains(m.Body, origin+recovery.PathCancel+"?token=") {
		t.Errorf("approved e-mail:\n%s", m.Body)
	}
	_, err = w.rec.Approve(w.ctx, w.staffOnce("s3@moat.test"), o.Case.ID, w.web)
	wantCode(t, err, apperr.Conflict)
	evs := w.auditEvents(p.acct.ID, recovery.EventApproved)
	if len(evs) != 2 || evs[0].ActorID != s1.Account.ID || evs[1].ActorID != admin.Account.ID {
		t.Errorf("audit %+v", evs)
	}
	st, _ := w.rec.Status(w.ctx, o.StatusToken)
	if !strings.Contains(st.NextStep, "waiting period ends") {
		t.Errorf("NextStep %q", st.NextStep)
	}
}

// Several staff members approve at once: exactly two approvals count,
// from two different people, and one approved e-mail goes out.
func TestConcurrentApprovals(t *testing.T) {
	w := newWorld(t)
	p := w.user("jane@example.com", store.RoleUser)
	o := w.open(p)
	const n = 6
	staff := make([]account.Principal, n)
	for i := range staff {
		staff[i] = w.staffOnce(fmt.Sprintf("s%d@moat.test", i))
	}
	var wg sync.WaitGroup
	errs := make([]error, 2*n)
	for i := range 2 * n { // each staff member twice
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = w.rec.Approve(w.ctx, staff[i%n], o.Case.ID, w.web)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch apperr.CodeOf(err) {
		case "":
			ok++
		case apperr.Conflict:
		default:
			t.Errorf("approve: %v", err)
		}
	}
	rc := w.getCase(o.Case.ID)
	if ok != 2 || rc.State != store.RecoveryWaiting || rc.FirstApproverID == "" || rc.FirstApproverID == rc.SecondApproverID {
		t.Fatalf("%d approvals succeeded; case %+v", ok, rc)
	}
	if m := len(w.mails(p.acct.Email, subjApproved)); m != 1 {
		t.Errorf("%d approved e-mails", m)
	}
	if evs := w.auditEvents(p.acct.ID, recovery.EventApproved); len(evs) != 2 {
		t.Errorf("%d approval events", len(evs))
	}
}

func TestReject(t *testing.T) {
	w := newWorld(t)
	p := w.user("jane@example.com", store.RoleUser)
	o := w.open(p)
	s1 := w.staffOnce("s1@moat.test")
	if _, err := w.rec.Approve(w.ctx, s1, o.Case.ID, w.web); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"", "   ", strings.Repeat("x", 201)} {
		_, err := w.rec.Reject(w.ctx, s1, o.Case.ID, r, w.web)
		if ae := wantCode(t, err, apperr.Invalid); ae.Field != "reason" {
			t.Errorf("field %q", ae.Field)
		}
	}
	reason := "The photo of the passport is too blurred to read."
	c, err := w.rec.Reject(w.ctx, w.staffOnce("s2@moat.test"), o.Case.ID, reason, w.web)
	if err != nil || c.State != store.RecoveryRejected || c.RejectReason != reason {
		t.Fatalf("Reject: %+v, %v", c, err)
	}
	m := w.lastMail(p.acct.Email, subjRejected)
	if !strings.Contains(m.Body, reason) || !strings.Contains(m.Body, origin+account.PathSignIn) {
		t.Errorf("rejected e-mail:\n%s", m.Body)
	}
	st, err := w.rec.Status(w.ctx, o.StatusToken)
	if err != nil || st.RejectReason != reason || !strings.Contains(st.NextStep, "new request") {
		t.Errorf("Status: %+v, %v", st, err)
	}
	_, err = w.rec.Approve(w.ctx, w.staffOnce("s3@moat.test"), o.Case.ID, w.web)
	wantCode(t, err, apperr.Conflict)
	_, err = w.rec.Reject(w.ctx, s1, o.Case.ID, reason, w.web)
	wantCode(t, err, apperr.Conflict)
	if evs := w.auditEvents(p.acct.ID, recovery.EventRejected); len(evs) != 1 || evs[0].ActorID == "" {
		t.Errorf("audit %+v", evs)
	}
	// The cancel link of a rejected case says it is over.
	_, err = w.rec.CheckCancelLink(w.ctx, linkToken(t, w.lastMail(p.acct.Email, subjRequested).Body, recovery.PathCancel))
	wantCode(t, err, apperr.Conflict)
	// The owner may try again.
	w.open(p)
}

// The waiting period: reminders every 24 h, completion at 72 h.
func TestRemindersAndCompletion(t *testing.T) {
	w := newWorld(t)
	p := w.user("jane@example.com", store.RoleUser)
	if n, err := w.st.CountBackupCodes(w.ctx, p.acct.ID); err != nil || n == 0 {
		t.Fatalf("backup codes before: %d, %v", n, err)
	}
	o := w.waiting(p)
	approved := w.clk.Now()
	if n := w.tick(); n != 0 {
		t.Fatalf("tick at once changed %d", n)
	}
	for h := 1; h < 72; h++ {
		w.clk.Set(approved.Add(time.Duration(h) * time.Hour))
		w.tick()
		want := h / 24
		if got := len(w.mails(p.acct.Email, subjReminder)); got != want {
			t.Fatalf("after %d h: %d reminders, want %d", h, got, want)
		}
		if w.getCase(o.Case.ID).State != store.RecoveryWaiting {
			t.Fatalf("not waiting after %d h", h)
		}
	}
	if m := w.lastMail(p.acct.Email, subjReminder); !strings.Contains(m.Body, origin+recovery.PathCancel+"?token=") {
		t.Errorf("reminder:\n%s", m.Body)
	}
	// A session (signed in before the case, say on a phone) works until
	// completion.
	w.clk.Set(approved.Add(72*time.Hour - 10*time.Minute))
	session := w.session(p)
	w.auth(session)

	w.clk.Set(approved.Add(72 * time.Hour))
	if n := w.tick(); n != 1 {
		t.Fatalf("completion tick changed %d", n)
	}
	now := w.clk.Now()
	rc := w.getCase(o.Case.ID)
	if rc.State != store.RecoveryCompleted || !rc.CompletedAt.Equal(now) {
		t.Fatalf("case %+v", rc)
	}
	if ms, err := w.mfa.EnrolledMethods(w.ctx, p.acct.ID); err != nil || len(ms) != 0 {
		t.Errorf("factors left: %v, %v", ms, err)
	}
	if n, err := w.st.CountBackupCodes(w.ctx, p.acct.ID); err != nil || n != 0 {
		t.Errorf("backup codes left: %d, %v", n, err)
	}
	a, err := w.st.GetAccount(w.ctx, p.acct.ID)
	if err != nil || !a.SecurityHoldUntil.Equal(now.Add(recovery.DefaultRecoveryHold)) {
		t.Errorf("hold %v, %v", a.SecurityHoldUntil, err)
	}
	if _, err := w.acct.Authenticate(w.ctx, session, w.web); err == nil {
		t.Error("a session from before the recovery still works")
	}
	if got := len(w.mails(p.acct.Email, subjReminder)); got != 2 {
		t.Errorf("%d reminders in all", got)
	}
	m := w.lastMail(p.acct.Email, subjCompleted)
	if !strings.Contains(m.Body, origin+account.PathSignIn) || !strings.Contains(m.Body, a.SecurityHoldUntil.Format("2 Jan 2006")) {
		t.Errorf("completed e-mail:\n%s", m.Body)
	}
	if evs := w.auditEvents(p.acct.ID, recovery.EventCompleted); len(evs) != 1 {
		t.Errorf("audit %+v", evs)
	}
	if n := w.tick(); n != 0 {
		t.Errorf("a second tick changed %d", n)
	}
	st, _ := w.rec.Status(w.ctx, o.StatusToken)
	if st.State != store.RecoveryCompleted || !strings.Contains(st.NextStep, "new second factor") {
		t.Errorf("status %+v", st)
	}

	// The person signs in with the password alone and must enrol.
	must, method, err := w.rec.NeedsEnrolment(w.ctx, a)
	if err != nil || !must || method != "" {
		t.Fatalf("NeedsEnrolment: %v %q %v", must, method, err)
	}
	res, err := w.acct.SignIn(w.ctx, p.acct.Email, password1, w.web)
	if err != nil || res.Step != account.StepDone {
		t.Fatalf("sign-in after recovery: %+v, %v", res, err)
	}
	pr := w.auth(res.Session.Token)
	en, err := w.mfa.BeginTOTP(w.ctx, pr)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := totp.ParseSecret(en.ManualKey)
	if _, err := w.mfa.ConfirmTOTP(w.ctx, pr, totp.Code(seed, totp.Step(w.clk.Now())), w.web); err != nil {
		t.Fatal(err)
	}
	if must, _, err := w.rec.NeedsEnrolment(w.ctx, a); err != nil || must {
		t.Errorf("NeedsEnrolment after enrolling: %v, %v", must, err)
	}
	// Others are never asked.
	other := w.user("other@example.com", store.RoleUser)
	if must, _, err := w.rec.NeedsEnrolment(w.ctx, other.acct); err != nil || must {
		t.Errorf("NeedsEnrolment of another account: %v, %v", must, err)
	}
}

// A worker that was down sends one reminder, not one per missed day, and
// the rhythm stays on the approval's 24 hours.
func TestReminderCatchesUpOnce(t *testing.T) {
	w := newWorld(t)
	p := w.user("jane@example.com", store.RoleUser)
	o := w.waiting(p)
	approved := w.clk.Now()
	w.clk.Set(approved.Add(50 * time.Hour))
	if n := w.tick(); n != 1 {
		t.Fatalf("tick changed %d", n)
	}
	if n := w.tick(); n != 0 {
		t.Fatalf("second tick changed %d", n)
	}
	if got := len(w.mails(p.acct.Email, subjReminder)); got != 1 {
		t.Fatalf("%d reminders", got)
	}
	if rc := w.getCase(o.Case.ID); !rc.NextNoticeAt.Equal(approved.Add(72 * time.Hour)) {
		t.Errorf("next notice %v", rc.NextNoticeAt.Sub(approved))
	}
	// Down past the end: completion, no reminder first.
	w.clk.Set(approved.Add(100 * time.Hour))
	if n := w.tick(); n != 1 {
		t.Fatalf("tick changed %d", n)
	}
	if got := len(w.mails(p.acct.Email, subjReminder)); got != 1 {
		t.Errorf("%d reminders", got)
	}
	if w.getCase(o.Case.ID).State != store.RecoveryCompleted {
		t.Error("not completed")
	}
}

func TestCancelByLink(t *testing.T) {
	w := newWorld(t)
	p := w.user("jane@example.com", store.RoleUser)
	o := w.waiting(p)
	reqLink := linkToken(t, w.lastMail(p.acct.Email, subjRequested).Body, recovery.PathCancel)
	apprLink := linkToken(t, w.lastMail(p.acct.Email, subjApproved).Body, recovery.PathCancel)

	for _, bad := range []string{"", "nope", apprLink + "x"} {
		_, err := w.rec.CheckCancelLink(w.ctx, bad)
		wantCode(t, err, apperr.TokenInvalid)
		_, err = w.rec.CancelByLink(w.ctx, bad, w.web)
		wantCode(t, err, apperr.TokenInvalid)
	}
	c, err := w.rec.CheckCancelLink(w.ctx, reqLink)
	if err != nil || c.ID != o.Case.ID || c.State != store.RecoveryWaiting {
		t.Fatalf("CheckCancelLink: %+v, %v", c, err)
	}
	if w.getCase(o.Case.ID).State != store.RecoveryWaiting {
		t.Fatal("checking the link cancelled")
	}
	c, err = w.rec.CancelByLink(w.ctx, reqLink, w.web)
	if err != nil || c.State != store.RecoveryCancelled || c.CancelledBy != "link" {
		t.Fatalf("CancelByLink: %+v, %v", c, err)
	}
	if m := w.lastMail(p.acct.Email, subjCancelled); !strings.Contains(m.Body, o.Case.Reference) {
		t.Errorf("cancelled e-mail:\n%s", m.Body)
	}
	_, err = w.rec.CancelByLink(w.ctx, reqLink, w.web)
	wantCode(t, err, apperr.TokenUsed)
	_, err = w.rec.CheckCancelLink(w.ctx, reqLink)
	wantCode(t, err, apperr.TokenUsed)
	// The other e-mail's link: the case is over.
	_, err = w.rec.CancelByLink(w.ctx, apprLink, w.web)
	wantCode(t, err, apperr.Conflict)
	if evs := w.auditEvents(p.acct.ID, recovery.EventCancelled); len(evs) != 1 {
		t.Errorf("audit %+v", evs)
	}

	w.clk.Advance(73 * time.Hour)
	if n := w.tick(); n != 0 {
		t.Fatalf("tick after cancel changed %d", n)
	}
	if ms, err := w.mfa.EnrolledMethods(w.ctx, p.acct.ID); err != nil || len(ms) == 0 {
		t.Errorf("factors after a cancelled case: %v, %v", ms, err)
	}
	if n := len(w.mails(p.acct.Email, subjCompleted)); n != 0 {
		t.Error("completed e-mail")
	}
	st, _ := w.rec.Status(w.ctx, o.StatusToken)
	if st.State != store.RecoveryCancelled || st.NextStep == "" {
		t.Errorf("status %+v", st)
	}
	// An expired link.
	q := w.user("q@example.com", store.RoleUser)
	w.open(q)
	link := linkToken(t, w.lastMail(q.acct.Email, subjRequested).Body, recovery.PathCancel)
	w.clk.Advance(recovery.DefaultWaitingPeriod + 31*24*time.Hour)
	_, err = w.rec.CheckCancelLink(w.ctx, link)
	wantCode(t, err, apperr.TokenExpired)
}

// Signing in with the old factor cancels the case, open or waiting.
func TestCancelBySignIn(t *testing.T) {
	w := newWorld(t)
	p := w.user("jane@example.com", store.RoleUser)
	o := w.waiting(p)
	pend := w.pending(p)
	done, err := w.acct.VerifySecondFactor(w.ctx, pend, "totp", p.app(), w.web)
	if err != nil || done.Step != account.StepDone {
		t.Fatalf("VerifySecondFactor: %+v, %v", done, err)
	}
	rc := w.getCase(o.Case.ID)
	if rc.State != store.RecoveryCancelled || rc.CancelledBy != "signin" {
		t.Fatalf("case %+v", rc)
	}
	if m := w.lastMail(p.acct.Email, subjCancelled); !strings.Contains(m.Body, "authenticator app") {
		t.Errorf("cancelled e-mail:\n%s", m.Body)
	}
	w.clk.Advance(73 * time.Hour)
	if n := w.tick(); n != 0 {
		t.Fatalf("tick changed %d", n)
	}
	// An open case too; a password-only sign-in of another account does
	// nothing to it.
	w.clk.Advance(totp.Period)
	o2 := w.open(p)
	w.clk.Advance(totp.Period)
	if _, err := w.acct.VerifySecondFactor(w.ctx, w.pending(p), "totp", p.app(), w.web); err != nil {
		t.Fatal(err)
	}
	if rc := w.getCase(o2.Case.ID); rc.State != store.RecoveryCancelled {
		t.Fatalf("open case %+v", rc)
	}
}

// The owner's cancel and the worker's completion at the same moment:
// exactly one of them happens.
func TestCancelRacesCompletion(t *testing.T) {
	for i := range 5 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			w := newWorld(t)
			p := w.user("jane@example.com", store.RoleUser)
			o := w.waiting(p)
			link := linkToken(t, w.lastMail(p.acct.Email, subjApproved).Body, recovery.PathCancel)
			w.clk.Advance(recovery.DefaultWaitingPeriod)
			other := w.newService() // another node
			var wg sync.WaitGroup
			var cancelErr error
			var ticked [2]int
			wg.Add(3)
			go func() { defer wg.Done(); _, cancelErr = w.rec.CancelByLink(w.ctx, link, w.web) }()
			go func() { defer wg.Done(); ticked[0], _ = w.rec.Tick(w.ctx) }()
			go func() { defer wg.Done(); ticked[1], _ = other.Tick(w.ctx) }()
			wg.Wait()
			rc := w.getCase(o.Case.ID)
			ms, err := w.mfa.EnrolledMethods(w.ctx, p.acct.ID)
			if err != nil {
				t.Fatal(err)
			}
			switch rc.State {
			case store.RecoveryCancelled:
				if cancelErr != nil || ticked[0]+ticked[1] != 0 || len(ms) == 0 {
					t.Fatalf("cancelled, but cancel %v, ticks %v, factors %v", cancelErr, ticked, ms)
				}
			case store.RecoveryCompleted:
				if apperr.CodeOf(cancelErr) != apperr.Conflict || ticked[0]+ticked[1] != 1 || len(ms) != 0 {
					t.Fatalf("completed, but cancel %v, ticks %v, factors %v", cancelErr, ticked, ms)
				}
			default:
				t.Fatalf("state %s", rc.State)
			}
			if n := len(w.mails(p.acct.Email, subjCancelled)) + len(w.mails(p.acct.Email, subjCompleted)); n != 1 {
				t.Errorf("%d final e-mails", n)
			}
		})
	}
}

// The timers are in the store: a new service (a restart, or another node)
// carries on where the old one stopped.
func TestRestart(t *testing.T) {
	w := newWorld(t)
	p := w.user("jane@example.com", store.RoleUser)
	o := w.waiting(p)
	approved := w.clk.Now()
	w.clk.Set(approved.Add(25 * time.Hour))
	w.tick()
	w.rec = w.newService()
	w.clk.Set(approved.Add(26 * time.Hour))
	if n := w.tick(); n != 0 {
		t.Fatalf("restarted tick changed %d", n)
	}
	w.clk.Set(approved.Add(49 * time.Hour))
	w.tick()
	w.rec = w.newService()
	w.clk.Set(approved.Add(72 * time.Hour))
	if n := w.tick(); n != 1 {
		t.Fatalf("completion after restart changed %d", n)
	}
	if got := len(w.mails(p.acct.Email, subjReminder)); got != 2 {
		t.Errorf("%d reminders", got)
	}
	if w.getCase(o.Case.ID).State != store.RecoveryCompleted {
		t.Error("not completed")
	}
}

// Staff see the answers next to the account's real history.
func TestReview(t *testing.T) {
	w := newWorld(t)
	p := w.user("jane@example.com", store.RoleUser)
	now := w.clk.Now()
	if err := w.st.CreateAPIKey(w.ctx, store.APIKey{ID: "k1", AccountID: p.acct.ID, Name: "Trading Bot",
		PublicKey: "pub1", SecretSealed: []byte{1}, Permissions: "query-funds", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	s1 := w.staffOnce("s1@moat.test")
	check := func(a recovery.Answers, want map[string]recovery.Match) {
		t.Helper()
		o, err := w.rec.Open(w.ctx, recovery.Proof{PendingToken: w.pending(p)}, a, recoverytest.PNG(), w.web)
		if err != nil {
			t.Fatal(err)
		}
		r, err := w.rec.Review(w.ctx, s1, o.Case.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.AccountEmail != p.acct.Email || r.DocumentType != recovery.TypePNG || r.IP != w.web.IP {
			t.Errorf("review %+v", r)
		}
		got := map[string]recovery.Match{}
		for _, c := range r.Comparisons {
			got[c.Question] = c.Match
		}
		for q, m := range want {
			if got[q] != m {
				t.Errorf("%+v: %q is %q, want %q (all %+v)", a, q, got[q], m, r.Comparisons)
			}
		}
		if _, err := w.rec.Reject(w.ctx, s1, o.Case.ID, "test", w.web); err != nil {
			t.Fatal(err)
		}
	}
	const (
		month  = "Month the account was opened"
		device = "Devices used to sign in"
		dep    = "Last deposit (amount and asset)"
		addr   = "A withdrawal address used"
		key    = "Name of an API key"
	)
	check(recovery.Answers{AccountCreated: "2030-02", Devices: "firefox on my laptop", LastDepositAmount: "0.5",
		LastDepositAsset: "BTC", WithdrawalAddress: "bc1qxyz", APIKeyName: "trading bot"},
		map[string]recovery.Match{month: recovery.MatchYes, device: recovery.MatchYes, dep: recovery.MatchUnknown,
			addr: recovery.MatchUnknown, key: recovery.MatchYes})
	check(recovery.Answers{AccountCreated: "2029-12", Devices: "Safari on an iPhone", APIKeyName: "bot"},
		map[string]recovery.Match{month: recovery.MatchNo, device: recovery.MatchNo, dep: recovery.MatchNoAnswer,
			addr: recovery.MatchNoAnswer, key: recovery.MatchNo})
	check(recovery.Answers{AccountCreated: "2030-03"},
		map[string]recovery.Match{month: recovery.MatchYes, device: recovery.MatchNoAnswer, key: recovery.MatchNoAnswer})

	// Every review is on the record with who read it (three cases, one
	// review each).
	if evs := w.auditEvents(p.acct.ID, recovery.EventCaseViewed); len(evs) != 3 || evs[0].ActorID != s1.Account.ID {
		t.Errorf("case views audited as %+v, want 3 by %s", evs, s1.Account.ID)
	}

	_, err := w.rec.Review(w.ctx, s1, "nope")
	wantCode(t, err, apperr.NotFound)
	qs, err := w.rec.Queue(w.ctx, s1, []store.RecoveryState{store.RecoveryRejected})
	if err != nil || len(qs) != 3 {
		t.Errorf("Queue: %d, %v", len(qs), err)
	}
	if qs, err := w.rec.Queue(w.ctx, s1, nil); err != nil || len(qs) != 0 {
		t.Errorf("Queue of open cases: %d, %v", len(qs), err)
	}
	if cs, err := w.rec.CasesOf(w.ctx, s1, p.acct.ID); err != nil || len(cs) != 3 {
		t.Errorf("CasesOf: %d, %v", len(cs), err)
	}
}

// The document is sealed at rest, comes back whole to staff, and every
// view is audited with who looked.
func TestDocumentSealed(t *testing.T) {
	w := newWorld(t)
	p := w.user("jane@example.com", store.RoleUser)
	doc := recoverytest.PDF()
	o, err := w.rec.Open(w.ctx, recovery.Proof{PendingToken: w.pending(p)}, answers, doc, w.web)
	if err != nil {
		t.Fatal(err)
	}
	rc := w.getCase(o.Case.ID)
	if len(rc.Document) == 0 || bytes.Contains(rc.Document, []byte(recoverytest.PDFMarker)) || bytes.Contains(rc.Document, []byte("%PDF")) {
		t.Fatalf("document stored in the clear")
	}
	if w.dbPath != "" {
		for _, f := range []string{w.dbPath, w.dbPath + "-wal"} {
			raw, err := os.ReadFile(f)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(raw, []byte(recoverytest.PDFMarker)) {
				t.Errorf("%s holds the document in the clear", filepath.Base(f))
			}
		}
	}
	s1 := w.staffOnce("s1@moat.test")
	typ, got, err := w.rec.Document(w.ctx, s1, o.Case.ID, w.web)
	if err != nil || typ != recovery.TypePDF || !bytes.Equal(got, doc) {
		t.Fatalf("Document: %q, %d bytes, %v", typ, len(got), err)
	}
	evs := w.auditEvents(p.acct.ID, recovery.EventDocumentViewed)
	if len(evs) != 1 || evs[0].ActorID != s1.Account.ID {
		t.Errorf("audit %+v", evs)
	}
	_, _, err = w.rec.Document(w.ctx, s1, "nope", w.web)
	wantCode(t, err, apperr.NotFound)
}

// Opening and cancelling over and over (someone with the password
// flooding the owner's inbox) stops after a few cases a day, whatever the
// address.
func TestPerAccountLimit(t *testing.T) {
	w := newWorld(t)
	p := w.user("jane@example.com", store.RoleUser)
	for i := range 4 {
		c := w.web
		c.IP = fmt.Sprintf("198.51.100.%d", i+1)
		w.clk.Advance(time.Minute) // so the newest e-mail is the newest
		_, err := w.rec.Open(w.ctx, recovery.Proof{PendingToken: w.pending(p)}, answers, recoverytest.PNG(), c)
		if i == 3 {
			if ae := wantCode(t, err, apperr.RateLimited); !strings.Contains(ae.Message, "this account") {
				t.Errorf("message %q", ae.Message)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.rec.CancelByLink(w.ctx, linkToken(t, w.lastMail(p.acct.Email, subjRequested).Body, recovery.PathCancel), c); err != nil {
			t.Fatal(err)
		}
	}
	w.clk.Advance(24 * time.Hour)
	w.open(p)
}

// TestStop: one staff member stops an approved case on the owner's word;
// non-staff cannot, a reason is required, an ended case cannot be stopped,
// and the timer then completes nothing.
func TestStop(t *testing.T) {
	w := newWorld(t)
	p := w.user("jane@example.com", store.RoleUser)
	o := w.waiting(p)
	s3 := w.staffOnce("s3@moat.test")

	_, err := w.rec.Stop(w.ctx, account.Principal{Account: p.acct}, o.Case.ID, "not mine", w.web)
	wantCode(t, err, apperr.Forbidden)
	_, err = w.rec.Stop(w.ctx, s3, o.Case.ID, "  ", w.web)
	wantCode(t, err, apperr.Invalid)
	_, err = w.rec.Stop(w.ctx, s3, "nope", "not mine", w.web)
	wantCode(t, err, apperr.NotFound)
	if c := w.getCase(o.Case.ID); c.State != store.RecoveryWaiting {
		t.Fatalf("refused stops changed the case: %s", c.State)
	}

	c, err := w.rec.Stop(w.ctx, s3, o.Case.ID, "owner phoned, ticket 77", w.web)
	if err != nil || c.State != store.RecoveryCancelled || c.CancelledBy != s3.Account.ID {
		t.Fatalf("Stop: %+v, %v", c, err)
	}
	if evs := w.auditEvents(p.acct.ID, recovery.EventCancelled); len(evs) != 1 || evs[0].ActorID != s3.Account.ID ||
		!strings.Contains(evs[0].Data, "ticket 77") {
		t.Errorf("stop audited as %+v", evs)
	}
	if m := w.lastMail(p.acct.Email, subjCancelled); !strings.Contains(m.Body, "support staff") {
		t.Errorf("cancellation e-mail: %s", m.Body)
	}
	_, err = w.rec.Stop(w.ctx, s3, o.Case.ID, "again", w.web)
	wantCode(t, err, apperr.Conflict)

	w.clk.Advance(recovery.DefaultWaitingPeriod + time.Hour)
	w.tick()
	if c := w.getCase(o.Case.ID); c.State != store.RecoveryCancelled {
		t.Fatalf("after the waiting period: %s", c.State)
	}
}

// TestStaffAccountCase: a case about a staff account hands over a key to
// the console, so support agents cannot approve it, not even the second
// time round; two admins can. A refused approval leaves the case as it was.
func TestStaffAccountCase(t *testing.T) {
	w := newWorld(t)
	p := w.user("agent@moat.test", store.RoleSupport)
	o := w.open(p)
	support := w.staffOnce("s1@moat.test")
	a1 := w.staff("admin1@moat.test", store.RoleAdmin)
	a2 := w.staff("admin2@moat.test", store.RoleAdmin)

	_, err := w.rec.Approve(w.ctx, support, o.Case.ID, w.web)
	if ae := wantCode(t, err, apperr.Forbidden); !strings.Contains(ae.Message, "only admins") {
		t.Errorf("message %q", ae.Message)
	}
	if rc := w.getCase(o.Case.ID); rc.FirstApproverID != "" || rc.State != store.RecoveryOpen {
		t.Fatalf("the refused approval was kept: %+v", rc)
	}
	if _, err := w.rec.Approve(w.ctx, a1, o.Case.ID, w.web); err != nil {
		t.Fatal(err)
	}
	_, err = w.rec.Approve(w.ctx, support, o.Case.ID, w.web)
	wantCode(t, err, apperr.Forbidden)
	c, err := w.rec.Approve(w.ctx, a2, o.Case.ID, w.web)
	if err != nil || c.State != store.RecoveryWaiting {
		t.Fatalf("two admins: %+v, %v", c, err)
	}
	// Support may still stop it (the safe direction).
	if _, err := w.rec.Stop(w.ctx, support, o.Case.ID, "the agent is at their desk with their key", w.web); err != nil {
		t.Fatalf("support stopping a staff case: %v", err)
	}
}
