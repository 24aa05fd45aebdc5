package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAdminCommands: `moat admin create` makes staff accounts through the
// user-create path (confirmed, password rules), refuses the user role,
// prints the way to the console; `moat admin list` lists staff only.
func TestAdminCommands(t *testing.T) {
	env := dataEnv(t)
	env["MOAT_PUBLIC_ORIGIN"] = "https://moat.example.com"
	env["MOAT_DEV"] = "true"
	if r := moat(t, env, "", "migrate"); r.code != 0 {
		t.Fatalf("migrate: %+v", r)
	}

	r := moat(t, env, testPassword+"\n", "admin", "create", "--email", "Sam@Example.com", "--role", "support", "--password-stdin")
	if r.code != 0 {
		t.Fatalf("admin create: %+v", r)
	}
	for _, want := range []string{
		"created support account sam@example.com",
		"https://moat.example.com/login",
		"Security settings (https://moat.example.com/account/security)",
		"sign in again with the key, then open https://moat.example.com/admin",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("admin create output lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := moat(t, env, testPassword+"\n", "admin", "create", "--email", "ada@example.com", "--role", "admin", "--password-stdin"); r.code != 0 {
		t.Fatalf("admin create admin: %+v", r)
	}
	if r := moat(t, env, testPassword+"\n", "user", "create", "--email", "bob@example.com", "--password-stdin"); r.code != 0 {
		t.Fatalf("user create: %+v", r)
	}

	for name, tc := range map[string]struct {
		stdin string
		args  []string
		code  int
		want  string
	}{
		"user role":      {testPassword + "\n", []string{"--email", "c@example.com", "--role", "user", "--password-stdin"}, exitUsage, "want support or admin"},
		"no role":        {testPassword + "\n", []string{"--email", "c@example.com", "--password-stdin"}, exitUsage, "--role is required"},
		"no email":       {testPassword + "\n", []string{"--role", "admin", "--password-stdin"}, exitUsage, "--email is required"},
		"weak password":  {"password123\n", []string{"--email", "c@example.com", "--role", "admin", "--password-stdin"}, exitFail, "password"},
		"duplicate":      {testPassword + "\n", []string{"--email", "sam@example.com", "--role", "admin", "--password-stdin"}, exitFail, "exists"},
		"not a terminal": {"", []string{"--email", "c@example.com", "--role", "admin"}, exitFail, "--password-stdin"},
	} {
		r := moat(t, env, tc.stdin, append([]string{"admin", "create"}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: code %d stderr %q", name, r.code, r.stderr)
		}
	}

	r = moat(t, env, "", "admin", "list", "--json")
	var staff []userJSON
	if err := json.Unmarshal([]byte(r.stdout), &staff); err != nil || r.code != 0 {
		t.Fatalf("admin list --json: %+v %v", r, err)
	}
	if len(staff) != 2 || staff[0].Email != "ada@example.com" || staff[0].Role != "admin" ||
		staff[1].Email != "sam@example.com" || staff[1].Role != "support" || staff[1].EmailConfirmedAt == nil {
		t.Errorf("staff = %+v", staff)
	}
	r = moat(t, env, "", "admin", "list")
	if r.code != 0 || strings.Contains(r.stdout, "bob@example.com") || !strings.Contains(r.stdout, "sam@example.com") {
		t.Errorf("admin list:\n%s", r.stdout)
	}
	if r := moat(t, env, "", "admin", "promote"); r.code != exitUsage || !strings.Contains(r.stderr, "create or list") {
		t.Errorf("unknown subcommand: %+v", r)
	}
	if r := moat(t, env, "", "admin", "create", "--help"); r.code != 0 || !strings.Contains(r.stdout, "security key") {
		t.Errorf("help: %+v", r)
	}
}
