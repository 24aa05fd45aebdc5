package apikey_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/apikey"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/audit"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
)

// TestCreateShowsSecretOnce: Create returns an 88-character base64 secret
// (64 random bytes) that signs calls; nothing the service returns or
// writes afterwards contains it.
func TestCreateShowsSecretOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	v, secret := e.create(nil, "query-funds", "Query Open Orders & Trades")
	raw, err := base64.StdEncoding.DecodeString(secret)
	if len(secret) != 88 || err != nil || len(raw) != apikey.SecretBytes {
		t.Fatalf("secret %q: %d characters, %d bytes, %v; want 88 characters of base64 for 64 bytes", secret, len(secret), len(raw), err)
	}
	if len(v.PublicKey) != 56 || v.ID == "" || v.AccountID != owner || v.Name != "grid bot" ||
		v.Permissions != apikey.PermissionsOf(apikey.QueryFunds, apikey.QueryOpenOrders) ||
		!v.CreatedAt.Equal(t0) || v.HasPassword || len(v.AllowedIPs) != 0 || v.Unused || v.Expired {
		t.Fatalf("view %+v", v)
	}
	if got := e.bot(v, secret).balance(); got["ZUSD"] != seedUSD {
		t.Fatalf("Balance with the new key: %v", got)
	}

	e.clock.Advance(time.Second)
	_, secret2 := e.create(nil, "query-funds")
	if secret2 == secret {
		t.Fatal("two keys got the same secret")
	}

	list, err := e.svc.List(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.svc.Get(ctx, owner, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := e.db.GetAPIKey(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	for what, x := range map[string]any{"List": list, "Get": got, "audit log": e.audit(), "outbox": e.mail(), "stored record": stored} {
		b, _ := json.Marshal(x)
		for _, s := range []string{secret, secret2, base64.RawURLEncoding.EncodeToString(raw), fmt.Sprintf("%x", raw)} {
			if strings.Contains(string(b), s) {
				t.Errorf("%s shows the secret", what)
			}
		}
	}
	if len(list) != 2 || list[1].ID != v.ID {
		t.Fatalf("List: %+v", list)
	}
	// Stored sealed, bound to the key's ID.
	box, _ := secrets.NewBox(boxKey, nil)
	if opened, err := apikey.OpenSecret(box, v.ID, stored.SecretSealed); err != nil || string(opened) != string(raw) {
		t.Fatalf("stored secret does not open to the one shown: %v", err)
	}
	if _, err := apikey.OpenSecret(box, list[0].ID, stored.SecretSealed); err == nil {
		t.Fatal("the sealed secret opens under another key's ID")
	}
}

// seedUSD is sandbox.DefaultSeed()'s dollars.
const seedUSD = "10000.0000"

// TestSecretNotInDatabaseFile creates a key with a password through the
// service and reads the SQLite file and its write-ahead log byte by byte:
// the secret (raw, base64 in any alphabet, hex) and the password are not
// there, while the public key is (the dump sees the data).
func TestSecretNotInDatabaseFile(t *testing.T) {
	e := newEnv(t)
	const password = "key-password-7Yq"
	v, secret := e.create(func(in *apikey.CreateInput) { in.Password = password }, "query-funds")
	rotated, secret2, err := e.svc.Rotate(context.Background(), owner, v.ID, e.actor, time.Hour)
	if err != nil || rotated.OldSecretValidUntil.IsZero() {
		t.Fatalf("Rotate: %+v %v", rotated, err)
	}
	var dump []byte
	for _, p := range []string{e.path, e.path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		dump = append(dump, b...)
	}
	if !strings.Contains(string(dump), v.PublicKey) {
		t.Fatal("the dump does not contain the public key: it proves nothing")
	}
	for _, s := range []string{secret, secret2} {
		raw, _ := apikey.DecodeSecret(s)
		for _, form := range []string{s, string(raw), base64.RawURLEncoding.EncodeToString(raw), fmt.Sprintf("%x", raw)} {
			if strings.Contains(string(dump), form[:24]) {
				t.Errorf("the database file holds a secret in plain text")
			}
		}
	}
	if strings.Contains(string(dump), password) {
		t.Error("the database file holds the key password")
	}
}

func TestCreateValidation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ok := apikey.CreateInput{Name: "bot", Permissions: []string{"query-funds"}}
	for _, tc := range []struct {
		name   string
		mutate func(in *apikey.CreateInput)
		field  string // "" means accepted
	}{
		{"minimal", func(*apikey.CreateInput) {}, ""},
		{"everything", func(in *apikey.CreateInput) {
			in.Permissions = apikey.AllPermissionSet.Slugs()
			in.AllowedIPs = []string{"203.0.113.7", "198.51.100.0/24, 2001:db8::/48\n2001:db8:1::1"}
			in.ExpiresAt = t0.Add(time.Hour)
			in.NonceWindow = 10_000
			in.Password = "correct horse"
			in.QueryStart, in.QueryEnd = t0.Add(-time.Hour), t0.Add(time.Hour)
		}, ""},
		{"display names", func(in *apikey.CreateInput) { in.Permissions = []string{"Query Funds", "cancel/close orders"} }, ""},
		{"name of 64 characters", func(in *apikey.CreateInput) { in.Name = strings.Repeat("é", 64) }, ""},
		{"largest nonce window", func(in *apikey.CreateInput) { in.NonceWindow = math.MaxInt64 }, ""},

		{"no name", func(in *apikey.CreateInput) { in.Name = "" }, "name"},
		{"blank name", func(in *apikey.CreateInput) { in.Name = " \t " }, "name"},
		{"name of 65 characters", func(in *apikey.CreateInput) { in.Name = strings.Repeat("x", 65) }, "name"},
		{"control character in name", func(in *apikey.CreateInput) { in.Name = "bot\x1b[31m" }, "name"},
		{"no permission", func(in *apikey.CreateInput) { in.Permissions = nil }, "permissions"},
		{"only empty permissions", func(in *apikey.CreateInput) { in.Permissions = []string{"", " "} }, "permissions"},
		{"unknown permission", func(in *apikey.CreateInput) { in.Permissions = []string{"query-funds", "admin"} }, "permissions"},
		{"not an address", func(in *apikey.CreateInput) { in.AllowedIPs = []string{"example.com"} }, "allowed_ips"},
		{"host bits set", func(in *apikey.CreateInput) { in.AllowedIPs = []string{"10.0.0.5/8"} }, "allowed_ips"},
		{"prefix too long", func(in *apikey.CreateInput) { in.AllowedIPs = []string{"10.0.0.0/33"} }, "allowed_ips"},
		{"zone", func(in *apikey.CreateInput) { in.AllowedIPs = []string{"fe80::1%eth0"} }, "allowed_ips"},
		{"too many addresses", func(in *apikey.CreateInput) {
			for i := range apikey.MaxAllowedIPs + 1 {
				in.AllowedIPs = append(in.AllowedIPs, fmt.Sprintf("10.0.%d.%d", i/256, i%256))
			}
		}, "allowed_ips"},
		{"expiry now", func(in *apikey.CreateInput) { in.ExpiresAt = t0 }, "expires_at"},
		{"expiry past", func(in *apikey.CreateInput) { in.ExpiresAt = t0.Add(-time.Second) }, "expires_at"},
		{"nonce window beyond 63 bits", func(in *apikey.CreateInput) { in.NonceWindow = math.MaxInt64 + 1 }, "nonce_window"},
		{"short password", func(in *apikey.CreateInput) { in.Password = "short" }, "password"},
		{"password with &", func(in *apikey.CreateInput) { in.Password = "long&enough=1" }, "password"},
		{"query end before start", func(in *apikey.CreateInput) { in.QueryStart, in.QueryEnd = t0, t0.Add(-time.Hour) }, "query_end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := ok
			in.Permissions = slices.Clone(ok.Permissions)
			tc.mutate(&in)
			before := len(e.audit())
			v, secret, err := e.svc.Create(ctx, owner, e.actor, in)
			if tc.field == "" {
				if err != nil || secret == "" || v.ID == "" {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if c, f := code(err); c != apperr.Invalid || f != tc.field {
				t.Fatalf("got %v (code %q, field %q), want invalid %s", err, c, f, tc.field)
			}
			if secret != "" || v.ID != "" {
				t.Fatal("a refused key came back")
			}
			if len(e.audit()) != before {
				t.Fatal("a refused key was audited")
			}
		})
	}
	// The accepted ones are stored as given.
	list, err := e.svc.List(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 5 {
		t.Fatalf("%d keys stored, want the 5 accepted", len(list))
	}
	for _, v := range list {
		if v.Name == "bot" && v.NonceWindow == 10_000 {
			want := []string{"203.0.113.7", "198.51.100.0/24", "2001:db8::/48", "2001:db8:1::1"}
			if !slices.Equal(v.AllowedIPs, want) || !v.HasPassword || !v.ExpiresAt.Equal(t0.Add(time.Hour)) ||
				v.Permissions != apikey.AllPermissionSet || !v.QueryStart.Equal(t0.Add(-time.Hour)) {
				t.Errorf("stored %+v", v)
			}
		}
	}
}

func TestCreateAccountChecks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := apikey.CreateInput{Name: "bot", Permissions: []string{"query-funds"}}
	if _, _, err := e.svc.Create(ctx, "acc-missing", e.actor, in); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("create for a missing account: %v", err)
	}
	e.lock(owner)
	if _, _, err := e.svc.Create(ctx, owner, e.actor, in); apperr.CodeOf(err) != apperr.AccountLocked {
		t.Fatalf("create for a locked account: %v", err)
	}
	if _, _, err := e.svc.OperatorCreate(ctx, owner, in); apperr.CodeOf(err) != apperr.AccountLocked {
		t.Fatalf("operator create for a locked account: %v", err)
	}
	if list, _ := e.svc.List(ctx, owner); len(list) != 0 {
		t.Fatalf("keys created: %+v", list)
	}
}

func TestUpdate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	v, secret := e.create(nil, "query-funds")
	b := e.bot(v, secret)
	e.clock.Advance(time.Minute)

	name := "  renamed bot "
	perms := []string{"query-funds", "withdraw-funds"}
	ips := []string{"198.51.100.0/24"}
	got, err := e.svc.Update(ctx, owner, v.ID, e.actor, apikey.UpdateInput{Name: &name, Permissions: &perms, AllowedIPs: &ips})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "renamed bot" || got.Permissions != apikey.PermissionsOf(apikey.QueryFunds, apikey.WithdrawFunds) ||
		!slices.Equal(got.AllowedIPs, ips) || !got.UpdatedAt.Equal(t0.Add(time.Minute)) || got.PublicKey != v.PublicKey {
		t.Fatalf("updated %+v", got)
	}
	// The new allowlist applies at once: the bot's address is not on it.
	b.refused(apikey.ErrPermission)
	b.ip = "198.51.100.77"
	b.balance()

	// Nothing changed: nothing written.
	events, mails := len(e.audit()), len(e.mail())
	same := []string{"Withdraw Funds", "query-funds"}
	if _, err := e.svc.Update(ctx, owner, v.ID, e.actor, apikey.UpdateInput{Permissions: &same}); err != nil {
		t.Fatal(err)
	}
	if len(e.audit()) != events || len(e.mail()) != mails {
		t.Fatal("an update that changed nothing was recorded")
	}

	// An empty allowlist allows any address again.
	none := []string{}
	if got, err = e.svc.Update(ctx, owner, v.ID, e.actor, apikey.UpdateInput{AllowedIPs: &none}); err != nil || len(got.AllowedIPs) != 0 {
		t.Fatalf("clearing the allowlist: %+v %v", got, err)
	}
	b.ip = clientIP
	b.balance()

	for _, tc := range []struct {
		name  string
		in    apikey.UpdateInput
		field string
	}{
		{"empty name", apikey.UpdateInput{Name: new("")}, "name"},
		{"no permissions", apikey.UpdateInput{Permissions: &[]string{}}, "permissions"},
		{"unknown permission", apikey.UpdateInput{Permissions: &[]string{"trade-everything"}}, "permissions"},
		{"bad address", apikey.UpdateInput{AllowedIPs: &[]string{"300.1.1.1"}}, "allowed_ips"},
	} {
		_, err := e.svc.Update(ctx, owner, v.ID, e.actor, tc.in)
		if c, f := code(err); c != apperr.Invalid || f != tc.field {
			t.Errorf("%s: %v, want invalid %s", tc.name, err, tc.field)
		}
	}
	if now, _ := e.svc.Get(ctx, owner, v.ID); now.Name != "renamed bot" || now.Permissions.Len() != 2 {
		t.Fatalf("refused updates changed the key: %+v", now)
	}

	// Another account's key, or a key that does not exist, is not found.
	for _, tc := range []struct{ account, key string }{{other, v.ID}, {owner, "no-such-key"}} {
		if _, err := e.svc.Update(ctx, tc.account, tc.key, e.actor, apikey.UpdateInput{Name: &name}); apperr.CodeOf(err) != apperr.NotFound {
			t.Errorf("Update(%s, %s): %v, want not found", tc.account, tc.key, err)
		}
		if _, err := e.svc.Get(ctx, tc.account, tc.key); apperr.CodeOf(err) != apperr.NotFound {
			t.Errorf("Get(%s, %s): %v, want not found", tc.account, tc.key, err)
		}
		if err := e.svc.Delete(ctx, tc.account, tc.key, e.actor); apperr.CodeOf(err) != apperr.NotFound {
			t.Errorf("Delete(%s, %s): %v, want not found", tc.account, tc.key, err)
		}
		if _, _, err := e.svc.Rotate(ctx, tc.account, tc.key, e.actor, 0); apperr.CodeOf(err) != apperr.NotFound {
			t.Errorf("Rotate(%s, %s): %v, want not found", tc.account, tc.key, err)
		}
	}
	b.balance() // still the owner's, still working
}

// TestRotate goes through the gateway end to end: during the grace period
// both secrets sign valid calls, after it only the new one; with no grace
// the old secret fails on the next call.
func TestRotate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	v, secret := e.create(nil, "query-funds")
	old := e.bot(v, secret)
	old.balance()

	v2, secret2, err := e.svc.Rotate(ctx, owner, v.ID, e.actor, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if secret2 == secret || len(secret2) != 88 || v2.PublicKey != v.PublicKey ||
		!v2.RotatedAt.Equal(t0) || !v2.OldSecretValidUntil.Equal(t0.Add(time.Hour)) {
		t.Fatalf("rotated %+v", v2)
	}
	cur := e.bot(v, secret2)
	cur.balance()
	old.balance()
	e.clock.Advance(time.Hour - time.Second)
	old.balance()
	cur.balance()
	e.clock.Advance(time.Second) // the grace period is over, cache or not
	old.refused(apikey.ErrInvalidSignature)
	cur.balance()
	if got, _ := e.svc.Get(ctx, owner, v.ID); !got.OldSecretValidUntil.IsZero() {
		t.Fatalf("grace shown after it ended: %+v", got)
	}

	_, secret3, err := e.svc.Rotate(ctx, owner, v.ID, e.actor, 0)
	if err != nil {
		t.Fatal(err)
	}
	cur.refused(apikey.ErrInvalidSignature) // at once, on this node
	e.bot(v, secret3).balance()

	for _, grace := range []time.Duration{-time.Second, apikey.MaxRotateGrace + time.Second} {
		if _, _, err := e.svc.Rotate(ctx, owner, v.ID, e.actor, grace); apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("grace %v: %v, want invalid", grace, err)
		}
	}
	e.bot(v, secret3).balance()
	if evs := e.audit(apikey.EventRotated); len(evs) != 2 {
		t.Fatalf("%d rotation events, want 2", len(evs))
	}
}

// TestKeyStopsWorking: a deleted, expired or revoked key, or one whose
// account is locked, fails through the gateway.
func TestKeyStopsWorking(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		stop func(e *env, v apikey.View)
		want apikey.KrakenError
	}{
		{"deleted", func(e *env, v apikey.View) {
			if err := e.svc.Delete(ctx, owner, v.ID, e.actor); err != nil {
				t.Fatal(err)
			}
		}, apikey.ErrInvalidKey},
		{"expired", func(e *env, v apikey.View) { e.clock.Set(v.ExpiresAt) }, apikey.ErrInvalidKey},
		{"revoked by ID", func(e *env, v apikey.View) {
			if _, err := e.svc.OperatorRevoke(ctx, v.ID); err != nil {
				t.Fatal(err)
			}
		}, apikey.ErrInvalidKey},
		{"revoked by public key", func(e *env, v apikey.View) {
			if _, err := e.svc.OperatorRevoke(ctx, " "+v.PublicKey+"\n"); err != nil {
				t.Fatal(err)
			}
		}, apikey.ErrInvalidKey},
		{"account locked, seen within the cache TTL", func(e *env, v apikey.View) {
			e.lock(owner)
			e.clock.Advance(ttl)
		}, apikey.ErrPermission},
		{"account locked, this node told", func(e *env, v apikey.View) {
			e.lock(owner)
			e.svc.InvalidateAccount(owner)
		}, apikey.ErrPermission},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			v, secret := e.create(func(in *apikey.CreateInput) { in.ExpiresAt = t0.Add(24 * time.Hour) }, "query-funds")
			b := e.bot(v, secret)
			b.balance()
			e.clock.Advance(time.Minute)
			b.balance() // cached now
			tc.stop(e, v)
			b.refused(tc.want)
			e.clock.Advance(ttl)
			b.refused(tc.want)
		})
	}
}

// TestKeyPassword: a key with a password needs it as otp.
func TestKeyPassword(t *testing.T) {
	e := newEnv(t)
	v, secret := e.create(func(in *apikey.CreateInput) { in.Password = "hunter2-but-longer" }, "query-funds")
	b := e.bot(v, secret)
	b.refused(apikey.ErrInvalidSignature)
	b.otp = "hunter2-but-LONGER"
	b.refused(apikey.ErrInvalidSignature)
	b.otp = "hunter2-but-longer"
	b.balance()
}

// TestStepUpGuardsEveryUserChange: when the gate refuses, Create, Update,
// Rotate and Delete return its error and change nothing; the gate is asked
// with the account and session of the actor; operator actions do not ask.
func TestStepUpGuardsEveryUserChange(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	v, secret := e.create(nil, "query-funds")
	b := e.bot(v, secret)
	events, mails := len(e.audit()), len(e.mail())

	stepUp := apperr.New(apperr.StepUpNeeded, "Confirm it is you first.")
	e.gate.set(stepUp)
	asked := e.gate.count()
	name := "hijacked"
	perms := []string{"withdraw-funds"}
	for what, call := range map[string]func() error{
		"Create": func() error {
			_, s, err := e.svc.Create(ctx, owner, e.actor, apikey.CreateInput{Name: "x", Permissions: perms})
			if s != "" {
				t.Error("Create returned a secret")
			}
			return err
		},
		"Create with invalid input": func() error {
			_, _, err := e.svc.Create(ctx, owner, e.actor, apikey.CreateInput{})
			return err
		},
		"Update": func() error {
			_, err := e.svc.Update(ctx, owner, v.ID, e.actor, apikey.UpdateInput{Name: &name, Permissions: &perms})
			return err
		},
		"Rotate": func() error {
			_, s, err := e.svc.Rotate(ctx, owner, v.ID, e.actor, 0)
			if s != "" {
				t.Error("Rotate returned a secret")
			}
			return err
		},
		"Delete": func() error { return e.svc.Delete(ctx, owner, v.ID, e.actor) },
	} {
		if err := call(); err != stepUp {
			t.Errorf("%s: %v, want the gate's error", what, err)
		}
	}
	if n := e.gate.count() - asked; n != 5 {
		t.Fatalf("the gate was asked %d times for 5 changes", n)
	}
	for _, a := range e.gate.asked {
		if a != owner+"/sess-1" {
			t.Fatalf("the gate was asked about %q", a)
		}
	}
	if len(e.audit()) != events || len(e.mail()) != mails {
		t.Fatal("refused changes were recorded")
	}
	list, _ := e.svc.List(ctx, owner)
	if len(list) != 1 || list[0].Name != "grid bot" || list[0].Permissions != apikey.PermissionsOf(apikey.QueryFunds) {
		t.Fatalf("keys after refused changes: %+v", list)
	}
	b.balance() // neither rotated nor deleted

	// Operators (the CLI) are not asked.
	asked = e.gate.count()
	ov, osecret, err := e.svc.OperatorCreate(ctx, owner, apikey.CreateInput{Name: "ops", Permissions: []string{"query-funds"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.OperatorRotate(ctx, ov.PublicKey, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.OperatorRevoke(ctx, ov.ID); err != nil {
		t.Fatal(err)
	}
	if e.gate.count() != asked {
		t.Fatal("operator actions asked the step-up gate")
	}
	e.bot(ov, osecret).refused(apikey.ErrInvalidKey)
}

// TestNoGateRefusesUserChanges: a service wired without a gate does not
// treat that as "no step-up needed".
func TestNoGateRefusesUserChanges(t *testing.T) {
	e := newEnv(t)
	box, _ := secrets.NewBox(boxKey, strings.NewReader(strings.Repeat("x", 1000)))
	mailer, _ := notify.NewMailer(notify.MailerConfig{Brand: "Moat", PublicOrigin: "https://moat.example"}, e.clock, strings.NewReader(""))
	svc, err := apikey.NewService(apikey.ServiceDeps{Store: e.db, Clock: e.clock, Rand: strings.NewReader(strings.Repeat("r", 1000)),
		Box: box, Pepper: testPepper, Audit: audit.New(e.clock), Mailer: mailer})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = svc.Create(context.Background(), owner, e.actor, apikey.CreateInput{Name: "x", Permissions: []string{"query-funds"}})
	if err == nil {
		t.Fatal("created a key without a step-up gate")
	}
	if _, err := apikey.NewService(apikey.ServiceDeps{Store: e.db}); err == nil {
		t.Fatal("NewService accepted missing dependencies")
	}
}

// TestAuditAndMail: every change writes its audit event (name, key ID,
// permissions, never a secret) and an e-mail to the owner, with the
// anti-phishing code and a secure-account link that works.
func TestAuditAndMail(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	v, secret := e.create(func(in *apikey.CreateInput) {
		in.AllowedIPs = []string{"203.0.113.0/24"}
		in.Password = "a key password"
	}, "query-funds", "withdraw-funds")
	// A second between changes, so the outbox lists them in order.
	name := "renamed"
	e.clock.Advance(time.Second)
	if _, err := e.svc.Update(ctx, owner, v.ID, e.actor, apikey.UpdateInput{Name: &name}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	_, secret2, err := e.svc.Rotate(ctx, owner, v.ID, e.actor, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	if err := e.svc.Delete(ctx, owner, v.ID, e.actor); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	ov, osecret, err := e.svc.OperatorCreate(ctx, owner, apikey.CreateInput{Name: "ops key", Permissions: []string{"export-data"}})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	if _, err := e.svc.OperatorRevoke(ctx, ov.ID); err != nil {
		t.Fatal(err)
	}

	evs := e.audit(apikey.EventCreated, apikey.EventUpdated, apikey.EventRotated, apikey.EventDeleted)
	var types []string
	for _, ev := range evs {
		types = append(types, ev.Type)
		var d map[string]any
		if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
			t.Fatal(err)
		}
		if ev.AccountID != owner || d["key_id"] == nil || d["name"] == nil || d["permissions"] == nil {
			t.Errorf("%s: account %q, data %s: want the account, key ID, name and permissions", ev.Type, ev.AccountID, ev.Data)
		}
		operator := d["key_id"] == ov.ID
		if operator && (ev.ActorID != apikey.OperatorActor || ev.IP != "") {
			t.Errorf("%s by the operator: actor %q, IP %q", ev.Type, ev.ActorID, ev.IP)
		}
		if !operator && (ev.ActorID != "" || ev.IP != clientIP || ev.UserAgent != e.actor.UserAgent || ev.DeviceID != "dev-1") {
			t.Errorf("%s by the owner: actor %q, IP %q, UA %q, device %q", ev.Type, ev.ActorID, ev.IP, ev.UserAgent, ev.DeviceID)
		}
	}
	want := []string{apikey.EventCreated, apikey.EventUpdated, apikey.EventRotated, apikey.EventDeleted, apikey.EventCreated, apikey.EventDeleted}
	if !slices.Equal(types, want) {
		t.Fatalf("events %q, want %q", types, want)
	}
	if !strings.Contains(evs[0].Data, `"permissions":["query-funds","withdraw-funds"]`) || !strings.Contains(evs[0].Data, `"has_password":true`) ||
		!strings.Contains(evs[1].Data, `"old_name":"grid bot"`) || !strings.Contains(evs[2].Data, `"grace_seconds":86400`) {
		t.Errorf("event data: %s / %s / %s", evs[0].Data, evs[1].Data, evs[2].Data)
	}
	if r, err := audit.Verify(ctx, e.db); err != nil || !r.OK {
		t.Fatalf("audit chain: %+v %v", r, err)
	}

	mails := e.mail()
	slices.Reverse(mails) // oldest first
	subjects := []string{"A new API key was created", "An API key on your Moat account was changed", "An API key on your Moat account was changed",
		"An API key on your Moat account was deleted", "A new API key was created", "An API key on your Moat account was deleted"}
	if len(mails) != len(subjects) {
		t.Fatalf("%d e-mails, want %d", len(mails), len(subjects))
	}
	for i, m := range mails {
		if m.To != ownerTo || !strings.Contains(m.Subject, subjects[i]) || !strings.Contains(m.Body, "Your anti-phishing code: blue heron 42") ||
			!strings.Contains(m.Body, "https://moat.example/security/apikeys") {
			t.Errorf("e-mail %d to %s: %q\n%s", i, m.To, m.Subject, m.Body)
		}
	}
	for _, s := range []string{"Withdraw Funds", "Warning: this key can withdraw funds", "203.0.113.0/24", "IP address " + clientIP} {
		if !strings.Contains(mails[0].Body, s) {
			t.Errorf("creation e-mail lacks %q:\n%s", s, mails[0].Body)
		}
	}
	if !strings.Contains(mails[1].Body, `Renamed from "grid bot"`) || !strings.Contains(mails[2].Body, "keeps working until") ||
		!strings.Contains(mails[4].Body, "an administrator, from the command line") {
		t.Errorf("change e-mails:\n%s\n%s\n%s", mails[1].Body, mails[2].Body, mails[4].Body)
	}
	all, _ := json.Marshal([]any{evs, mails})
	for _, s := range []string{secret, secret2, osecret, "a key password"} {
		if strings.Contains(string(all), s) {
			t.Error("a secret or password is in the audit log or an e-mail")
		}
	}

	// The "wasn't me" link is a real secure-account token.
	i := strings.Index(mails[0].Body, "https://moat.example/secure?token=")
	if i < 0 {
		t.Fatalf("no secure-account link:\n%s", mails[0].Body)
	}
	tok := strings.Fields(mails[0].Body[i+len("https://moat.example/secure?token="):])[0]
	got, err := e.db.ConsumeToken(ctx, store.TokenSecureAccount, secrets.HashToken(tok), e.clock.Now())
	if err != nil || got.AccountID != owner || !got.ExpiresAt.Equal(t0.Add(7*24*time.Hour)) {
		t.Fatalf("secure-account token: %+v %v", got, err)
	}
}

// TestCacheSameNodeImmediate: on the node that makes a change, the next
// call sees it, though the key was cached a moment before.
func TestCacheSameNodeImmediate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	v, secret := e.create(nil, "query-funds")
	b := e.bot(v, secret)
	b.balance()
	perms := []string{"export-data"}
	if _, err := e.svc.Update(ctx, owner, v.ID, e.actor, apikey.UpdateInput{Permissions: &perms}); err != nil {
		t.Fatal(err)
	}
	b.refused(apikey.ErrPermission) // Balance needs query-funds, gone at once
	perms = []string{"query-funds"}
	if _, err := e.svc.Update(ctx, owner, v.ID, e.actor, apikey.UpdateInput{Permissions: &perms}); err != nil {
		t.Fatal(err)
	}
	b.balance()
	if _, err := e.svc.OperatorRevoke(ctx, v.PublicKey); err != nil {
		t.Fatal(err)
	}
	b.refused(apikey.ErrInvalidKey)
}

// TestCacheOtherNodeBoundedByTTL: two nodes over one database. A change on
// one reaches the other's cached copy within the TTL, not later.
func TestCacheOtherNodeBoundedByTTL(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	nodeB, _ := e.node()
	gwB := e.gateway(nodeB)
	v, secret := e.create(nil, "query-funds")
	onA, onB := e.bot(v, secret), e.bot(v, secret)
	onB.gw = gwB
	onB.balance() // B caches the key

	if err := e.svc.Delete(ctx, owner, v.ID, e.actor); err != nil {
		t.Fatal(err)
	}
	onA.refused(apikey.ErrInvalidKey)
	// B may still accept the key until its copy is TTL old.
	e.clock.Advance(ttl - time.Microsecond)
	if _, err := nodeB.LookupKey(ctx, v.PublicKey); err != nil {
		t.Fatalf("node B dropped its copy early (%v): the cache is not caching", err)
	}
	e.clock.Advance(time.Microsecond)
	onB.refused(apikey.ErrInvalidKey)
	if _, err := nodeB.LookupKey(ctx, v.PublicKey); !isNotFound(err) {
		t.Fatalf("node B after the TTL: %v", err)
	}
}

// TestCacheOneLookupPerTTL: the hot path reads the database once per key
// per TTL, however many calls (sequential or concurrent) arrive.
func TestCacheOneLookupPerTTL(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	v, _ := e.create(nil, "query-funds")
	v2, _ := e.create(nil, "query-funds")
	e.count.lookups.Store(0)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			for _, pub := range []string{v.PublicKey, v2.PublicKey} {
				if _, err := e.svc.LookupKey(ctx, pub); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for range 100 {
		if _, err := e.svc.LookupKey(ctx, v.PublicKey); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.count.lookups.Load(); n != 2 {
		t.Fatalf("%d database lookups for 2 keys within one TTL, want 2", n)
	}
	e.clock.Advance(ttl)
	if _, err := e.svc.LookupKey(ctx, v.PublicKey); err != nil {
		t.Fatal(err)
	}
	if n := e.count.lookups.Load(); n != 3 {
		t.Fatalf("%d database lookups after the TTL, want 3", n)
	}

	// A deleted key is remembered as deleted; an unknown one is not
	// remembered at all (random keys must not fill the cache).
	if err := e.svc.Delete(ctx, owner, v2.ID, e.actor); err != nil {
		t.Fatal(err)
	}
	e.count.lookups.Store(0)
	for range 10 {
		if _, err := e.svc.LookupKey(ctx, v2.PublicKey); !isNotFound(err) {
			t.Fatalf("deleted key: %v", err)
		}
		if _, err := e.svc.LookupKey(ctx, "no-such-key"); !isNotFound(err) {
			t.Fatalf("unknown key: %v", err)
		}
	}
	if n := e.count.lookups.Load(); n != 11 {
		t.Fatalf("%d lookups for 10 calls with a deleted and 10 with an unknown key, want 1 + 10", n)
	}
}

// TestUnusedAndLastUse: the gateway's OnUse records the last use; a key
// unused for the configured time (from creation, or from its last use) is
// flagged.
func TestUnusedAndLastUse(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	used, secret := e.create(nil, "query-funds")
	idle, _ := e.create(nil, "query-funds")
	e.clock.Advance(time.Hour)
	e.bot(used, secret).balance()
	get := func(id string) apikey.View {
		t.Helper()
		v, err := e.svc.Get(ctx, owner, id)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := get(used.ID); !v.LastUsedAt.Equal(t0.Add(time.Hour)) || v.LastUsedIP != clientIP || v.Unused {
		t.Fatalf("after use: %+v", v)
	}
	e.clock.Set(t0.Add(apikey.DefaultUnusedAfter - time.Second))
	if get(idle.ID).Unused || get(used.ID).Unused {
		t.Fatal("flagged before the time")
	}
	e.clock.Set(t0.Add(apikey.DefaultUnusedAfter))
	if !get(idle.ID).Unused || get(used.ID).Unused {
		t.Fatal("a key never used is not flagged after the time, or a used one is flagged early")
	}
	e.clock.Set(t0.Add(time.Hour + apikey.DefaultUnusedAfter))
	list, _ := e.svc.List(ctx, owner)
	for _, v := range list {
		if !v.Unused {
			t.Errorf("%s not flagged %v after its last use", v.ID, apikey.DefaultUnusedAfter)
		}
	}
}

// TestOperatorFind: revoking needs an exact ID or public key.
func TestOperatorFind(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	v, _ := e.create(nil, "query-funds")
	for _, ref := range []string{"", "  ", v.PublicKey[:20], strings.ToLower(v.PublicKey), "nope"} {
		if _, err := e.svc.OperatorRevoke(ctx, ref); apperr.CodeOf(err) != apperr.NotFound && apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("OperatorRevoke(%q): %v", ref, err)
		}
	}
	got, err := e.svc.OperatorRevoke(ctx, v.PublicKey)
	if err != nil || got.ID != v.ID {
		t.Fatalf("OperatorRevoke: %+v %v", got, err)
	}
	if _, err := e.svc.OperatorRevoke(ctx, v.ID); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("revoking twice: %v", err)
	}
	if _, err := e.svc.Get(ctx, owner, v.ID); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("Get of a revoked key: %v", err)
	}
}
