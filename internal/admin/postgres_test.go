package admin_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/recovery"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/postgres/pgtest"
	"github.com/moat-dev/moat/internal/testenv"
)

// TestConsoleOnTwoNodes: the console on two nodes over one PostgreSQL
// database and Redis. Four-eyes holds across nodes (Sam's second approval
// on the other node is refused), the role matrix too, and every action is
// audited with its staff member whichever node served it.
func TestConsoleOnTwoNodes(t *testing.T) {
	testenv.PostgresDSN(t)
	redisAddr := testenv.RedisAddr(t)
	redisPrefix := testenv.RedisKeyPrefix(t)
	dsn := pgtest.NewDB(t).DSN(t)
	shared := func(c *config.Config) {
		c.Database.Driver = "postgres"
		c.Database.DSN = dsn
		c.Redis.Addr, c.Redis.KeyPrefix = redisAddr, redisPrefix
		c.Secrets.EncryptionKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	}
	a := newEnv(t, shared)
	b := newEnvClock(t, a.clock, shared)

	// The user's own key session opens the console on neither node.
	user := a.create("ursula@example.com", store.RoleUser)
	a.addKey(user, a.passwordSession(user))
	userKey := b.keySession(user)
	for _, e := range []*env{a, b} {
		expect(t, e.get("/admin", userKey), http.StatusNotFound)
	}
	// (Signing in with the key cancels an open case, so the case comes
	// after it.)
	opened := a.openCase(user)
	caseURL := "/admin/cases/" + opened.Case.ID
	sam, samKey := a.staff("sam@example.com", store.RoleSupport)
	ada, adaKey := b.staff("ada@example.com", store.RoleAdmin)

	// The document, sealed by node A, opens on node B.
	if r := b.get(caseURL+"/document", samKey); r.status != 200 || r.body != string(tinyPNG) {
		t.Fatalf("document on B: %d, %d bytes", r.status, len(r.body))
	}

	expectRedirect(t, a.post(caseURL+"/approve", samKey, nil), caseURL+"?n=approved-first")
	expect(t, b.post(caseURL+"/approve", samKey, nil), http.StatusConflict, "You approved this case already")
	expectRedirect(t, b.post(caseURL+"/approve", adaKey, nil), caseURL+"?n=approved-final")
	if c := a.caseOf(opened.Case.ID); c.State != store.RecoveryWaiting || c.FirstApproverID != sam.acct.ID || c.SecondApproverID != ada.acct.ID {
		t.Fatalf("after approvals on two nodes: %+v", c)
	}
	if evs := a.audit(user.acct.ID, recovery.EventApproved); len(evs) != 2 || evs[0].ActorID != sam.acct.ID || evs[1].ActorID != ada.acct.ID {
		t.Errorf("approvals audited as %+v", evs)
	}

	acctURL := "/admin/accounts/" + user.acct.ID
	expectRedirect(t, b.post(acctURL+"/lock", samKey, url.Values{"reason": {"reported stolen"}}), acctURL+"?n=locked")
	expect(t, a.post(acctURL+"/unlock", samKey, nil), http.StatusForbidden)
	if a.account(user.acct.ID).LockedAt.IsZero() {
		t.Fatal("support unlocked the account")
	}
	expectRedirect(t, a.post(acctURL+"/unlock", adaKey, nil), acctURL+"?n=unlocked")
	if evs := a.audit(user.acct.ID, "account.locked"); len(evs) != 1 || evs[0].ActorID != sam.acct.ID {
		t.Errorf("lock audited as %+v", evs)
	}
	if evs := b.audit(user.acct.ID, "account.unlocked"); len(evs) != 1 || evs[0].ActorID != ada.acct.ID {
		t.Errorf("unlock audited as %+v", evs)
	}
	expect(t, b.get(acctURL, adaKey), http.StatusOK, opened.Case.Reference, `data-event="account.unlocked"`, `data-event="recovery.approved"`)
}
