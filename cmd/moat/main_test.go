package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

const testPassword = "violet-tractor-mango-cloud-91"

type result struct {
	code           int
	stdout, stderr string
}

// moat runs the CLI in-process with env and stdin.
func moat(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb, func(k string) string { return env[k] })
	return result{code, out.String(), errb.String()}
}

func dataEnv(t *testing.T) map[string]string {
	return map[string]string{"MOAT_DATA_DIR": t.TempDir()}
}

func TestUserLifecycleAndAudit(t *testing.T) {
	env := dataEnv(t)

	r := moat(t, env, "", "user", "list")
	if r.code != exitFail || !strings.Contains(r.stderr, "no database") {
		t.Fatalf("list before migrate: %+v", r)
	}

	r = moat(t, env, "", "migrate")
	if r.code != 0 || !strings.Contains(r.stdout, "applied 0001") {
		t.Fatalf("migrate: %+v", r)
	}
	if r = moat(t, env, "", "migrate"); r.code != 0 || !strings.Contains(r.stdout, "up to date") {
		t.Fatalf("second migrate: %+v", r)
	}

	r = moat(t, env, testPassword+"\n", "user", "create", "--email", "Admin@Example.com", "--role", "admin", "--password-stdin")
	if r.code != 0 || !strings.Contains(r.stdout, "created admin account admin@example.com") {
		t.Fatalf("user create: %+v", r)
	}
	r = moat(t, env, testPassword+"\n", "user", "create", "--email", "bob@example.com", "--password-stdin")
	if r.code != 0 {
		t.Fatalf("user create bob: %+v", r)
	}

	t.Run("create refuses", func(t *testing.T) {
		for name, tc := range map[string]struct {
			stdin string
			args  []string
			code  int
			want  string
		}{
			"duplicate":        {testPassword + "\n", []string{"--email", "bob@example.com", "--password-stdin"}, exitFail, ""},
			"weak password":    {"password123\n", []string{"--email", "carol@example.com", "--password-stdin"}, exitFail, "password"},
			"no password":      {"", []string{"--email", "carol@example.com", "--password-stdin"}, exitFail, "no password"},
			"not a terminal":   {"", []string{"--email", "carol@example.com"}, exitFail, "--password-stdin"},
			"no email":         {testPassword + "\n", []string{"--password-stdin"}, exitUsage, "--email is required"},
			"bad role":         {testPassword + "\n", []string{"--email", "c@example.com", "--role", "root", "--password-stdin"}, exitUsage, "--role"},
			"bad address":      {testPassword + "\n", []string{"--email", "not-an-address", "--password-stdin"}, exitFail, ""},
			"unknown flag":     {"", []string{"--emial", "x"}, exitUsage, "emial"},
			"stray positional": {"", []string{"carol@example.com"}, exitUsage, "--email"},
		} {
			r := moat(t, env, tc.stdin, append([]string{"user", "create"}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || r.stderr == "" {
				t.Errorf("%s: code %d stderr %q", name, r.code, r.stderr)
			}
		}
	})

	var users []userJSON
	r = moat(t, env, "", "user", "list", "--json")
	if r.code != 0 {
		t.Fatalf("user list --json: %+v", r)
	}
	if err := json.Unmarshal([]byte(r.stdout), &users); err != nil {
		t.Fatalf("list output is not JSON: %v\n%s", err, r.stdout)
	}
	if len(users) != 2 || users[0].Email != "admin@example.com" || users[0].Role != "admin" || users[0].EmailConfirmedAt == nil || users[1].Role != "user" {
		t.Fatalf("users = %+v", users)
	}
	if strings.Contains(r.stdout, "argon2") {
		t.Error("list prints password hashes")
	}

	r = moat(t, env, "", "user", "list", "--search", "BOB", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &users); err != nil || len(users) != 1 || users[0].Email != "bob@example.com" {
		t.Fatalf("search: %+v %v", r, err)
	}

	// Flags after the positional argument work too.
	r = moat(t, env, "", "user", "lock", "bob@example.com", "--reason", "stolen phone")
	if r.code != 0 || !strings.Contains(r.stdout, "locked bob@example.com") {
		t.Fatalf("lock: %+v", r)
	}
	r = moat(t, env, "", "user", "list")
	if !regexp.MustCompile(`bob@example.com\s+user\s+locked \(stolen phone\)`).MatchString(r.stdout) {
		t.Errorf("table after lock:\n%s", r.stdout)
	}
	if r = moat(t, env, "", "user", "unlock", "bob@example.com"); r.code != 0 {
		t.Fatalf("unlock: %+v", r)
	}
	r = moat(t, env, "", "user", "list", "--json")
	json.Unmarshal([]byte(r.stdout), &users)
	if users[1].LockedAt != nil {
		t.Errorf("still locked: %+v", users[1])
	}
	if r = moat(t, env, "", "user", "lock", "nobody@example.com"); r.code != exitFail || r.stderr == "" {
		t.Errorf("lock unknown account: %+v", r)
	}
	if r = moat(t, env, "", "user", "lock"); r.code != exitUsage {
		t.Errorf("lock without address: %+v", r)
	}

	r = moat(t, env, "", "audit", "verify")
	m := regexp.MustCompile(`^audit chain OK: (\d+) events\n`).FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil || m[1] == "0" {
		t.Fatalf("audit verify: %+v", r)
	}
	r = moat(t, env, "", "audit", "verify", "--json")
	var rep struct {
		OK      bool  `json:"ok"`
		Checked int64 `json:"checked"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || !rep.OK || rep.Checked == 0 {
		t.Fatalf("audit verify --json: %+v %v", r, err)
	}

	// An attacker with the database file rewrites history (the append-only
	// triggers do not stop someone who can drop them).
	db, err := sql.Open("sqlite", filepath.Join(env["MOAT_DATA_DIR"], "moat.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DROP TRIGGER audit_events_no_update`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_events SET data = '{"reason":"nothing to see"}' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	r = moat(t, env, "", "audit", "verify")
	if r.code != exitFail || !strings.HasPrefix(r.stdout, "audit chain broken at event #2: ") {
		t.Fatalf("audit verify after tampering: %+v", r)
	}
	r = moat(t, env, "", "audit", "verify", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &rep); r.code != exitFail || err != nil || rep.OK {
		t.Fatalf("audit verify --json after tampering: %+v", r)
	}
}

func TestBadConfiguration(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "moat.toml")
	writeFile(t, file, "[security]\nargon2_memory_kib = 1024\n")
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"bad file value", nil, []string{"migrate", "--config", file}, "security.argon2_memory_kib"},
		{"file via env", map[string]string{"MOAT_CONFIG": file}, []string{"user", "list"}, "security.argon2_memory_kib"},
		{"bad env", map[string]string{"MOAT_DATABASE_DRIVER": "mysql"}, []string{"serve"}, "database.driver"},
		{"bad flag", nil, []string{"serve", "--addr", "nowhere"}, "addr"},
		{"unknown flag", nil, []string{"serve", "--adress", "x"}, "adress"},
		{"stray argument", nil, []string{"serve", "now"}, "now"},
		{"unknown command", nil, []string{"frobnicate"}, "unknown command"},
		{"audit without verify", nil, []string{"audit"}, "verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"MOAT_DATA_DIR": dir}
			for k, v := range tt.env {
				env[k] = v
			}
			r := moat(t, env, "", tt.args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("code %d stderr %q, want exit 2 naming %q", r.code, r.stderr, tt.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	r := moat(t, nil, "", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "moat user create") || !strings.Contains(r.stdout, "MOAT_CONFIG") {
		t.Errorf("moat --help: %+v", r)
	}
	r = moat(t, nil, "", "serve", "--help")
	for _, want := range []string{"--addr", "--data-dir", "--config", "--public-origin", "--dev",
		"MOAT_ADDR", "MOAT_DATABASE_DSN", "MOAT_SMTP_PASSWORD", "MOAT_ENCRYPTION_KEY", "security.argon2_memory_kib"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
	if r.code != 0 {
		t.Errorf("serve --help exit %d", r.code)
	}
	for _, args := range [][]string{{"user", "create", "-h"}, {"user", "list", "--help"}, {"audit", "verify", "--help"}, {"help", "migrate"}} {
		if r := moat(t, nil, "", args...); r.code != 0 || !strings.Contains(r.stdout, "Usage: moat") {
			t.Errorf("%v: %+v", args, r)
		}
	}
	if r := moat(t, nil, "", "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "moat ") {
		t.Errorf("version: %+v", r)
	}
}

// TestServe runs `moat serve` in-process on a kernel-chosen port, reads the
// address it prints, and stops it by cancelling its context.
func TestServe(t *testing.T) {
	env := dataEnv(t)
	env["MOAT_ADDR"] = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runContext(ctx, []string{"serve"}, strings.NewReader(""), pw, &errb, func(k string) string { return env[k] })
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	var out []string
	for len(out) < 2 && lines.Scan() {
		out = append(out, lines.Text())
	}
	go io.Copy(io.Discard, pr)
	if len(out) < 2 || !strings.HasPrefix(out[0], "moat listening on http://localhost:") || !strings.HasSuffix(out[1], "/dev/mailbox") {
		cancel()
		t.Fatalf("serve printed %q (stderr %s)", out, errb.String())
	}
	base := strings.TrimPrefix(out[0], "moat listening on ")
	if out[1] != "dev mailbox: "+base+"/dev/mailbox" {
		t.Errorf("mailbox line %q does not follow the chosen port %s", out[1], base)
	}
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz: %d", resp.StatusCode)
	}
	resp, err = http.Get(base + "/dev/mailbox")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("dev mailbox: %d", resp.StatusCode)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exit %d: %s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after cancel")
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}
