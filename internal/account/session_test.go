package account

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/audit"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/password"
	"github.com/moat-dev/moat/internal/ratelimit"
	"github.com/moat-dev/moat/internal/store"
)

func TestIdleTimeout(t *testing.T) {
	e := newEnv(t)
	e.signUpConfirmed(e.email, goodPassword)
	c := client("192.0.2.10", "")
	s := e.signIn(e.email, goodPassword, c)

	e.clk.Advance(29 * time.Minute)
	if _, err := e.svc.Authenticate(e.ctx, s.Token, c); err != nil {
		t.Fatalf("after 29 idle minutes: %v", err)
	}
	// Activity keeps it alive: 29 more minutes from the last request.
	e.clk.Advance(29 * time.Minute)
	if _, err := e.svc.Authenticate(e.ctx, s.Token, c); err != nil {
		t.Fatalf("29 minutes after the last request: %v", err)
	}
	// Exactly 30 minutes is still fine; a moment more is not.
	e.clk.Advance(30 * time.Minute)
	if _, err := e.svc.Authenticate(e.ctx, s.Token, c); err != nil {
		t.Fatalf("exactly 30 idle minutes: %v", err)
	}
	e.clk.Advance(30*time.Minute + time.Second)
	_, err := e.svc.Authenticate(e.ctx, s.Token, c)
	if ae := wantCode(t, err, apperr.Unauthorized); !strings.Contains(ae.Message, "30 minutes") {
		t.Errorf("idle message %q", ae.Message)
	}

	// Idle time counts from the last request on this node even when the
	// store was last written up to a minute earlier (write-behind) and the
	// cache entry has been reloaded since.
	s2 := e.signIn(e.email, goodPassword, client("192.0.2.10", s.DeviceToken))
	e.clk.Advance(2 * time.Minute)
	mustAuth(t, e, s2.Token) // stored LastSeenAt now = +2m
	e.clk.Advance(50 * time.Second)
	mustAuth(t, e, s2.Token) // +2m50s: not written (under a minute)
	if got := storedLastSeen(t, e, s2.Token); !got.Equal(s2.Session.CreatedAt.Add(2 * time.Minute)) {
		t.Fatalf("stored LastSeenAt = %v: written more often than once a minute", got)
	}
	e.clk.Advance(30 * time.Minute)
	mustAuth(t, e, s2.Token) // 30m after the last request, 30m50s after the stored one
}

func mustAuth(t *testing.T, e *env, token string) Principal {
	t.Helper()
	p, err := e.svc.Authenticate(e.ctx, token, client("192.0.2.10", ""))
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	return p
}

func storedLastSeen(t *testing.T, e *env, token string) time.Time {
	t.Helper()
	k := tokenKey(token)
	s, err := e.st.GetSessionByTokenHash(e.ctx, k[:])
	if err != nil {
		t.Fatal(err)
	}
	return s.LastSeenAt
}

func TestAbsoluteTimeout(t *testing.T) {
	e := newEnv(t)
	e.signUpConfirmed(e.email, goodPassword)
	s := e.signIn(e.email, goodPassword, client("192.0.2.10", ""))
	for elapsed := 20 * time.Minute; elapsed < 12*time.Hour; elapsed += 20 * time.Minute {
		e.clk.Advance(20 * time.Minute)
		mustAuth(t, e, s.Token)
	}
	e.clk.Advance(20 * time.Minute) // 12 h after sign-in
	_, err := e.svc.Authenticate(e.ctx, s.Token, client("192.0.2.10", ""))
	if ae := wantCode(t, err, apperr.Unauthorized); !strings.Contains(ae.Message, "12 hours") {
		t.Errorf("absolute-timeout message %q", ae.Message)
	}
}

func TestAuthenticateRejectsGarbage(t *testing.T) {
	e := newEnv(t)
	for _, tok := range []string{"", "x", strings.Repeat("A", 43), strings.Repeat("A", 100000)} {
		_, err := e.svc.Authenticate(e.ctx, tok, client("192.0.2.10", ""))
		wantCode(t, err, apperr.Unauthorized)
	}
}

// Revocation on this node takes effect on the very next request, with the
// cache warm and without the clock moving.
func TestRevocationIsImmediate(t *testing.T) {
	e := newEnv(t)
	e.signUpConfirmed(e.email, goodPassword)
	c := client("192.0.2.10", "")
	s1 := e.signIn(e.email, goodPassword, c)
	c.DeviceToken = s1.DeviceToken
	s2 := e.signIn(e.email, goodPassword, c)
	s3 := e.signIn(e.email, goodPassword, c)
	p1 := mustAuth(t, e, s1.Token)
	mustAuth(t, e, s2.Token)
	mustAuth(t, e, s3.Token)

	// Another account cannot revoke them, and learns nothing.
	e.signUpConfirmed("mallory@example.com", goodPassword)
	m := e.signIn("mallory@example.com", goodPassword, client("203.0.113.9", ""))
	pm := mustAuth(t, e, m.Token)
	wantCode(t, e.svc.RevokeSession(e.ctx, pm, s2.Session.ID, c), apperr.NotFound)
	wantCode(t, e.svc.RevokeSession(e.ctx, pm, "no-such-session", c), apperr.NotFound)
	mustAuth(t, e, s2.Token)

	if err := e.svc.RevokeSession(e.ctx, p1, s2.Session.ID, c); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Authenticate(e.ctx, s2.Token, c)
	wantCode(t, err, apperr.Unauthorized)
	wantCode(t, e.svc.RevokeSession(e.ctx, p1, s2.Session.ID, c), apperr.NotFound)

	n, err := e.svc.RevokeOtherSessions(e.ctx, p1, c)
	if err != nil || n != 1 {
		t.Fatalf("RevokeOtherSessions = %d, %v; want 1", n, err)
	}
	_, err = e.svc.Authenticate(e.ctx, s3.Token, c)
	wantCode(t, err, apperr.Unauthorized)
	mustAuth(t, e, s1.Token)

	if err := e.svc.SignOut(e.ctx, s1.Token, c); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Authenticate(e.ctx, s1.Token, c)
	wantCode(t, err, apperr.Unauthorized)
	if err := e.svc.SignOut(e.ctx, s1.Token, c); err != nil {
		t.Fatalf("signing out twice: %v", err)
	}

	// A staff lock ends the session at once too.
	mustAuth(t, e, m.Token)
	if err := e.svc.Lock(e.ctx, "mallory@example.com", "", "admin@example.com"); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Authenticate(e.ctx, m.Token, c)
	wantCode(t, err, apperr.Unauthorized)

	a, _ := e.st.GetAccountByEmail(e.ctx, e.email)
	e.wantAudit(a.ID, "session.revoked", "session.revoked_others", "session.signout")
}

// A second node sharing the store stops accepting a session revoked on the
// first within SessionCacheTTL, as Authenticate documents.
func TestRevocationOnAnotherNode(t *testing.T) {
	e := newEnv(t)
	e.signUpConfirmed(e.email, goodPassword)
	s := e.signIn(e.email, goodPassword, client("192.0.2.10", ""))
	other := otherNode(t, e)
	if _, err := other.Authenticate(e.ctx, s.Token, client("192.0.2.10", "")); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SignOut(e.ctx, s.Token, client("192.0.2.10", "")); err != nil {
		t.Fatal(err)
	}
	// Within the TTL the other node may still accept it...
	if _, err := other.Authenticate(e.ctx, s.Token, client("192.0.2.10", "")); err != nil {
		t.Logf("other node already refuses: %v", err)
	}
	// ...but not after.
	e.clk.Advance(5*time.Second + time.Millisecond)
	_, err := other.Authenticate(e.ctx, s.Token, client("192.0.2.10", ""))
	wantCode(t, err, apperr.Unauthorized)
	// InvalidateAccount is the way for other services to make it immediate.
	s2 := e.signIn(e.email, goodPassword, client("192.0.2.10", s.DeviceToken))
	if _, err := other.Authenticate(e.ctx, s2.Token, client("192.0.2.10", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.RevokeSessions(e.ctx, s2.Session.AccountID, "", e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	other.InvalidateAccount(s2.Session.AccountID)
	_, err = other.Authenticate(e.ctx, s2.Token, client("192.0.2.10", ""))
	wantCode(t, err, apperr.Unauthorized)
}

// otherNode is a second Service over the same store and clock.
func otherNode(t *testing.T, e *env) *Service {
	h, _ := password.NewHasher(fastParams, rand.Reader)
	m, err := notify.NewMailer(notify.MailerConfig{Brand: "moat", PublicOrigin: "https://moat.test"}, e.clk, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return New(Deps{
		Store: e.st, Clock: e.clk, Rand: rand.Reader, Hasher: h, Mailer: m, Audit: audit.New(e.clk),
		Counter: e.ctr, Config: ConfigFrom(config.Default()), CodeKey: []byte("0123456789abcdef0123456789abcdef"),
	})
}

func TestSecureAccount(t *testing.T) {
	e := newEnv(t)
	a := e.signUpConfirmed(e.email, goodPassword)
	c := client("192.0.2.10", "")
	s1 := e.signIn(e.email, goodPassword, c)
	s2 := e.signIn(e.email, goodPassword, client("198.51.100.7", ""))
	mustAuth(t, e, s1.Token)
	mustAuth(t, e, s2.Token)

	link := linkToken(t, e.lastMail(e.email, subjNewSignIn).Body, PathSecureAccount)
	phone := client("192.0.2.77", "")
	if err := e.svc.SecureAccount(e.ctx, link, phone); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{s1.Token, s2.Token} {
		_, err := e.svc.Authenticate(e.ctx, tok, c)
		wantCode(t, err, apperr.Unauthorized)
	}
	got, _ := e.st.GetAccount(e.ctx, a.ID)
	if got.LockedAt.IsZero() || got.LockReason != "locked by owner from e-mail link" {
		t.Fatalf("account after SecureAccount: locked %v, reason %q", got.LockedAt, got.LockReason)
	}
	if e.mailsWith(e.email, subjAcctLocked) != 1 {
		t.Error("no account-locked e-mail")
	}
	e.wantAudit(a.ID, "account.secured")
	// Nobody gets in, not even from the owner's device, which must be
	// approved again after the unlock.
	_, err := e.svc.SignIn(e.ctx, e.email, goodPassword, client("192.0.2.10", s1.DeviceToken))
	wantCode(t, err, apperr.AccountLocked)
	devs, _ := e.st.ListDevices(e.ctx, a.ID)
	for _, d := range devs {
		if !d.ApprovedAt.IsZero() {
			t.Errorf("device %s still approved", d.Name)
		}
	}
	wantCode(t, e.svc.SecureAccount(e.ctx, link, phone), apperr.TokenUsed)
	wantCode(t, e.svc.SecureAccount(e.ctx, "forged", phone), apperr.TokenInvalid)

	// A pending sign-in cannot complete on a locked account either.
	if err := e.svc.Unlock(e.ctx, e.email, "support@example.com"); err != nil {
		t.Fatal(err)
	}
	res, err := e.svc.SignIn(e.ctx, e.email, goodPassword, client("203.0.113.5", ""))
	if err != nil {
		t.Fatal(err)
	}
	body := e.lastMail(e.email, subjDeviceCode).Body
	if err := e.svc.SecureAccount(e.ctx, linkToken(t, body, PathSecureAccount), phone); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.ApproveDevice(e.ctx, res.PendingToken, mailCode(t, body), client("203.0.113.5", ""))
	wantCode(t, err, apperr.AccountLocked)
	if n := len(e.liveSessions(a.ID)); n != 0 {
		t.Fatalf("%d sessions on a secured account", n)
	}
}

func TestChangePassword(t *testing.T) {
	e := newEnv(t)
	a := e.signUpConfirmed(e.email, goodPassword)
	c := client("192.0.2.10", "")
	here := e.signIn(e.email, goodPassword, c)
	there := e.signIn(e.email, goodPassword, client("198.51.100.7", ""))
	p := mustAuth(t, e, here.Token)
	mustAuth(t, e, there.Token)
	const next = "quiet harbour copper meadow"

	err := e.svc.ChangePassword(e.ctx, p, "not my password", next, c)
	if ae := wantCode(t, err, apperr.BadCredential); ae.Field != "current_password" {
		t.Errorf("field %q", ae.Field)
	}
	err = e.svc.ChangePassword(e.ctx, p, goodPassword, "password123", c)
	if ae := wantCode(t, err, apperr.WeakPassword); ae.Field != "new_password" {
		t.Errorf("field %q", ae.Field)
	}
	wantCode(t, e.svc.ChangePassword(e.ctx, p, goodPassword, goodPassword, c), apperr.WeakPassword)

	if err := e.svc.ChangePassword(e.ctx, p, goodPassword, next, c); err != nil {
		t.Fatal(err)
	}
	mustAuth(t, e, here.Token)
	_, err = e.svc.Authenticate(e.ctx, there.Token, c)
	wantCode(t, err, apperr.Unauthorized)

	got, _ := e.st.GetAccount(e.ctx, a.ID)
	if !got.PasswordChangedAt.Equal(e.clk.Now()) || !got.SecurityHoldUntil.Equal(e.clk.Now().Add(24*time.Hour)) {
		t.Errorf("PasswordChangedAt %v, SecurityHoldUntil %v", got.PasswordChangedAt, got.SecurityHoldUntil)
	}
	body := e.lastMail(e.email, subjPassword).Body
	if !strings.Contains(body, "192.0.2.10") || !strings.Contains(body, "https://moat.test"+PathSecureAccount) {
		t.Errorf("password-changed e-mail:\n%s", body)
	}
	e.wantAudit(a.ID, "password.changed")

	_, err = e.svc.SignIn(e.ctx, e.email, goodPassword, client("192.0.2.10", here.DeviceToken))
	wantCode(t, err, apperr.BadCredential)
	if res, err := e.svc.SignIn(e.ctx, e.email, next, client("192.0.2.10", here.DeviceToken)); err != nil || res.Step != StepDone {
		t.Fatalf("new password: %+v, %v", res, err)
	}

	// A stolen session is no password oracle: wrong guesses are limited.
	for range passwordChangeLimit {
		wantCode(t, e.svc.ChangePassword(e.ctx, p, "guess", "another strong passphrase", c), apperr.BadCredential)
	}
	wantCode(t, e.svc.ChangePassword(e.ctx, p, next, "another strong passphrase 2", c), apperr.RateLimited)
}

func TestAntiPhishingCode(t *testing.T) {
	e := newEnv(t)
	a := e.signUpConfirmed(e.email, goodPassword)
	c := client("192.0.2.10", "")
	s := e.signIn(e.email, goodPassword, c)
	p := mustAuth(t, e, s.Token)

	for _, bad := range []string{"<b>hi</b>", strings.Repeat("x", 33), "line\nbreak", "tab\there", "\x00"} {
		err := e.svc.SetAntiPhishingCode(e.ctx, p, bad, c)
		if ae := wantCode(t, err, apperr.Invalid); ae.Field != "anti_phishing_code" {
			t.Errorf("SetAntiPhishingCode(%q) field %q", bad, ae.Field)
		}
	}
	if err := e.svc.SetAntiPhishingCode(e.ctx, p, "  Blue Otter 42 ✓ ", c); err != nil {
		t.Fatal(err)
	}
	got, _ := e.st.GetAccount(e.ctx, a.ID)
	if got.AntiPhishingCode != "Blue Otter 42 ✓" {
		t.Fatalf("stored code %q", got.AntiPhishingCode)
	}
	if body := e.lastMail(e.email, subjAntiPhish).Body; !strings.Contains(body, "Blue Otter 42 ✓") {
		t.Errorf("confirmation e-mail does not show the code:\n%s", body)
	}
	// The next principal sees it at once (the cache was dropped), and every
	// later e-mail shows it.
	if p = mustAuth(t, e, s.Token); p.Account.AntiPhishingCode != "Blue Otter 42 ✓" {
		t.Errorf("principal has code %q", p.Account.AntiPhishingCode)
	}
	e.signIn(e.email, goodPassword, client("198.51.100.7", ""))
	if body := e.lastMail(e.email, subjNewSignIn).Body; !strings.Contains(body, "Blue Otter 42 ✓") {
		t.Errorf("later e-mail lacks the code:\n%s", body)
	}
	// The audit log does not keep the code.
	evs, _ := e.st.ListAudit(e.ctx, store.AuditFilter{AccountID: a.ID})
	for _, ev := range evs {
		if strings.Contains(ev.Data, "Otter") {
			t.Errorf("audit event %s holds the code", ev.Type)
		}
	}
	if err := e.svc.SetAntiPhishingCode(e.ctx, p, "", c); err != nil {
		t.Fatal(err)
	}
	e.wantAudit(a.ID, "anti_phishing.set", "anti_phishing.cleared")
}

func TestViews(t *testing.T) {
	e := newEnv(t)
	e.signUpConfirmed(e.email, goodPassword)
	c := client("192.0.2.10", "")
	s1 := e.signIn(e.email, goodPassword, c)
	chrome := Client{IP: "198.51.100.7", Kind: "web", UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"}
	s2 := e.signIn(e.email, goodPassword, chrome)
	p := mustAuth(t, e, s1.Token)

	sessions, err := e.svc.Sessions(e.ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 2 {
		t.Fatalf("%d sessions", len(sessions))
	}
	names := map[string]bool{}
	for _, sv := range sessions {
		if sv.TokenHash != nil {
			t.Error("session view exposes the token hash")
		}
		if sv.Current != (sv.ID == s1.Session.ID) {
			t.Errorf("session %s Current = %v", sv.ID, sv.Current)
		}
		names[sv.DeviceName] = true
	}
	if !names["Firefox on Linux"] || !names["Chrome on Windows"] {
		t.Errorf("device names %v", names)
	}
	devs, err := e.svc.Devices(e.ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 {
		t.Fatalf("%d devices", len(devs))
	}
	for _, d := range devs {
		if d.TokenHash != nil || d.ApprovedAt.IsZero() {
			t.Errorf("device view %+v", d)
		}
		if d.Current != (d.ID == s1.Session.DeviceID) {
			t.Errorf("device %s Current = %v", d.Name, d.Current)
		}
	}
	// An idle session drops out of the list.
	e.clk.Advance(20 * time.Minute)
	mustAuth(t, e, s1.Token)
	e.clk.Advance(20 * time.Minute)
	p = mustAuth(t, e, s1.Token)
	sessions, _ = e.svc.Sessions(e.ctx, p)
	if len(sessions) != 1 || sessions[0].ID != s1.Session.ID {
		t.Fatalf("after s2 went idle: %+v", sessions)
	}
	_ = s2
}

func TestAdminUsers(t *testing.T) {
	e := newEnv(t)
	a, err := e.svc.CreateConfirmedUser(e.ctx, " Admin@Example.com", goodPassword, store.RoleAdmin, "cli")
	if err != nil {
		t.Fatal(err)
	}
	if a.Email != "admin@example.com" || a.Role != store.RoleAdmin || a.EmailConfirmedAt.IsZero() {
		t.Fatalf("created %+v", a)
	}
	_, err = e.svc.CreateConfirmedUser(e.ctx, "admin@example.com", goodPassword, store.RoleUser, "cli")
	wantCode(t, err, apperr.Conflict)
	_, err = e.svc.CreateConfirmedUser(e.ctx, "x@example.com", goodPassword, "root", "cli")
	wantCode(t, err, apperr.Invalid)
	_, err = e.svc.CreateConfirmedUser(e.ctx, "x@example.com", "weak", store.RoleUser, "cli")
	wantCode(t, err, apperr.WeakPassword)
	if _, err := e.svc.CreateConfirmedUser(e.ctx, "bob@example.com", goodPassword, "", "cli"); err != nil {
		t.Fatal(err)
	}
	list, err := e.svc.ListUsers(e.ctx, store.ListAccountsOptions{EmailContains: "BOB"})
	if err != nil || len(list) != 1 || list[0].Email != "bob@example.com" || list[0].Role != store.RoleUser {
		t.Fatalf("ListUsers = %+v, %v", list, err)
	}
	wantCode(t, e.svc.Lock(e.ctx, "nobody@example.com", "", "cli"), apperr.NotFound)
	wantCode(t, e.svc.Unlock(e.ctx, "nobody@example.com", "cli"), apperr.NotFound)

	evs, _ := e.st.ListAudit(e.ctx, store.AuditFilter{AccountID: a.ID})
	if len(evs) != 1 || evs[0].Type != "account.created" || evs[0].ActorID != "cli" {
		t.Fatalf("audit %+v", evs)
	}
	// Unlock also clears throttling.
	for range 10 {
		_, err := e.svc.SignIn(e.ctx, "bob@example.com", "wrong password!!", client("198.51.100.7", ""))
		if ae, _ := apperr.As(err); ae.Code == apperr.RateLimited {
			e.clk.Advance(ae.RetryAfter)
		}
	}
	if err := e.svc.Unlock(e.ctx, "bob@example.com", "support@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SignIn(e.ctx, "bob@example.com", goodPassword, client("198.51.100.7", "")); err != nil {
		t.Fatalf("after Unlock: %v", err)
	}
}

func TestNewPanicsOnMissingDeps(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New accepted missing dependencies")
		}
	}()
	clk := clock.NewFake(start)
	New(Deps{Clock: clk, Counter: ratelimit.NewMemory(clk), Config: ConfigFrom(config.Default())})
}
