package main

import (
	"database/sql"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestAPIKeyCommands(t *testing.T) {
	env := dataEnv(t)
	if r := moat(t, env, "", "migrate"); r.code != 0 {
		t.Fatalf("migrate: %+v", r)
	}
	if r := moat(t, env, testPassword+"\n", "user", "create", "--email", "bot@example.com", "--password-stdin"); r.code != 0 {
		t.Fatalf("user create: %+v", r)
	}

	// Text output: the key and the secret once, the advice on stderr.
	r := moat(t, env, "", "apikey", "create", "--email", "Bot@Example.com", "--name", "grid bot",
		"--permissions", "query-funds,create-modify-orders", "--allow-ip", "203.0.113.0/24", "--allow-ip", "2001:db8::1",
		"--expires", "720h", "--nonce-window", "5")
	if r.code != 0 {
		t.Fatalf("apikey create: %+v", r)
	}
	m := regexp.MustCompile(`(?m)^API key:\s+(\S{56})\nPrivate key:\s+(\S{88})$`).FindStringSubmatch(r.stdout)
	if m == nil || !strings.Contains(r.stderr, "secret manager") {
		t.Fatalf("create output:\n%s\nstderr: %s", r.stdout, r.stderr)
	}
	pub1, secret1 := m[1], m[2]
	if !strings.Contains(r.stdout, "query-funds,create-modify-orders") || !strings.Contains(r.stdout, "203.0.113.0/24,2001:db8::1") {
		t.Errorf("create output lacks the permissions or allowlist:\n%s", r.stdout)
	}

	// JSON output for scripts.
	r = moat(t, env, "", "apikey", "create", "--email", "bot@example.com", "--name", "reader",
		"--permissions", "query-funds", "--permissions", "query-ledger", "--expires", "2099-01-01T00:00:00Z", "--json")
	var created secretJSON
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &created) != nil {
		t.Fatalf("apikey create --json: %+v", r)
	}
	if len(created.Secret) != 88 || strings.Join(created.Key.Permissions, ",") != "query-funds,query-ledger" ||
		created.Key.ExpiresAt == nil || !created.Key.ExpiresAt.Equal(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("created: %+v", created)
	}

	t.Run("create refuses", func(t *testing.T) {
		for name, tc := range map[string]struct {
			args []string
			code int
			want string
		}{
			"no email":           {[]string{"--name", "x", "--permissions", "query-funds"}, exitUsage, "--email"},
			"no name":            {[]string{"--email", "bot@example.com", "--permissions", "query-funds"}, exitUsage, "--name"},
			"no permissions":     {[]string{"--email", "bot@example.com", "--name", "x"}, exitUsage, "--permissions"},
			"unknown permission": {[]string{"--email", "bot@example.com", "--name", "x", "--permissions", "trade-everything"}, exitUsage, "trade-everything"},
			"bad expiry":         {[]string{"--email", "bot@example.com", "--name", "x", "--permissions", "query-funds", "--expires", "soon"}, exitUsage, "--expires"},
			"past expiry":        {[]string{"--email", "bot@example.com", "--name", "x", "--permissions", "query-funds", "--expires", "2001-01-01T00:00:00Z"}, exitFail, "expires"},
			"bad allowlist":      {[]string{"--email", "bot@example.com", "--name", "x", "--permissions", "query-funds", "--allow-ip", "10.0.0.1/8"}, exitFail, "allowed_ips"},
			"unknown account":    {[]string{"--email", "nobody@example.com", "--name", "x", "--permissions", "query-funds"}, exitFail, "no account"},
			"stray argument":     {[]string{"--email", "bot@example.com", "--name", "x", "--permissions", "query-funds", "extra"}, exitUsage, "extra"},
		} {
			r := moat(t, env, "", append([]string{"apikey", "create"}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%s: code %d stderr %q, want %d naming %q", name, r.code, r.stderr, tc.code, tc.want)
			}
		}
	})

	// Listing never shows a secret.
	r = moat(t, env, "", "apikey", "list", "--email", "bot@example.com")
	if r.code != 0 || !strings.Contains(r.stdout, pub1) || !strings.Contains(r.stdout, created.Key.PublicKey) ||
		!regexp.MustCompile(`grid bot\s+\S{56}\s+query-funds,create-modify-orders\s+203\.0\.113\.0/24,2001:db8::1`).MatchString(r.stdout) {
		t.Fatalf("apikey list:\n%+v", r)
	}
	var keys []keyJSON
	r2 := moat(t, env, "", "apikey", "list", "--email", "bot@example.com", "--json")
	if r2.code != 0 || json.Unmarshal([]byte(r2.stdout), &keys) != nil || len(keys) != 2 || keys[0].Name != "reader" {
		t.Fatalf("apikey list --json: %+v", r2)
	}
	for _, out := range []string{r.stdout, r2.stdout} {
		if strings.Contains(out, secret1) || strings.Contains(out, created.Secret) {
			t.Fatal("apikey list prints a secret")
		}
	}

	// The database holds no secret in plain text, not even in base64.
	db, err := sql.Open("sqlite", filepath.Join(env["MOAT_DATA_DIR"], "moat.db"))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM api_keys WHERE instr(secret_sealed, ?) > 0 OR instr(name, ?) > 0`, secret1, secret1).Scan(&n); err != nil || n != 0 {
		t.Errorf("secret stored in plain text (%d rows, %v)", n, err)
	}
	db.Close()

	// Rotate prints a new secret once.
	r = moat(t, env, "", "apikey", "rotate", pub1, "--grace", "1h", "--json")
	var rotated secretJSON
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rotated) != nil || rotated.Secret == secret1 || len(rotated.Secret) != 88 ||
		rotated.Key.OldSecretValidUntil == nil {
		t.Fatalf("apikey rotate: %+v", r)
	}
	if r = moat(t, env, "", "apikey", "rotate", pub1, "--grace", "720h"); r.code != exitUsage {
		t.Errorf("rotate with a month of grace: %+v", r)
	}

	// Revoke by public key or by ID.
	if r = moat(t, env, "", "apikey", "revoke", pub1); r.code != 0 || !strings.Contains(r.stdout, `revoked API key "grid bot"`) {
		t.Fatalf("apikey revoke: %+v", r)
	}
	if r = moat(t, env, "", "apikey", "revoke", created.Key.ID); r.code != 0 {
		t.Fatalf("apikey revoke by id: %+v", r)
	}
	if r = moat(t, env, "", "apikey", "revoke", pub1); r.code != exitFail || !strings.Contains(r.stderr, "No such API key") {
		t.Errorf("revoke twice: %+v", r)
	}
	if r = moat(t, env, "", "apikey", "revoke"); r.code != exitUsage {
		t.Errorf("revoke without a key: %+v", r)
	}
	if r = moat(t, env, "", "apikey", "list", "--email", "bot@example.com"); r.code != 0 || !strings.Contains(r.stdout, "has no API keys") {
		t.Errorf("list after revoking: %+v", r)
	}
	if r = moat(t, env, "", "apikey", "frobnicate"); r.code != exitUsage {
		t.Errorf("unknown subcommand: %+v", r)
	}
	if r = moat(t, env, "", "--help"); !strings.Contains(r.stdout, "moat apikey create") {
		t.Errorf("moat --help lacks apikey:\n%s", r.stdout)
	}
}

func TestParseExpiry(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"720h":                 now.Add(720 * time.Hour),
		"90d":                  now.Add(90 * 24 * time.Hour),
		"2031-02-03T04:05:06Z": time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC),
	} {
		got, err := parseExpiry(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseExpiry(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "-1h", "0s", "0d", "1.5d", "d", "2031-02-03"} {
		if _, err := parseExpiry(in, now); err == nil {
			t.Errorf("parseExpiry(%q) accepted", in)
		}
	}
}

func FuzzParseExpiry(f *testing.F) {
	for _, s := range []string{"720h", "90d", "2031-02-03T04:05:06Z", "-1h", "99999999999d"} {
		f.Add(s)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseExpiry(s, now)
		if err == nil && !strings.Contains(s, "T") && !got.After(now) {
			t.Errorf("parseExpiry(%q) = %v: a duration must lie ahead", s, got)
		}
	})
}
