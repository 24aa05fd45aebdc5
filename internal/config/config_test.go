package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "moat.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsLoad(t *testing.T) {
	cfg, err := Load(nil, nil)
	if err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if !cfg.Dev {
		t.Error("embedded default (sqlite, no SMTP) should be in dev mode")
	}
	if cfg.PublicOrigin != "http://localhost:8080" {
		t.Errorf("PublicOrigin = %q", cfg.PublicOrigin)
	}
	if cfg.Database.DSN != "moat-data/moat.db" {
		t.Errorf("sqlite DSN = %q", cfg.Database.DSN)
	}
	if cfg.SMTP.From != "noreply@localhost" {
		t.Errorf("SMTP.From = %q", cfg.SMTP.From)
	}
}

// TestPrecedence: defaults < file < environment < flags, key by key.
func TestPrecedence(t *testing.T) {
	file := writeFile(t, `
addr = "127.0.0.1:9001"
brand = "FileBrand"
data_dir = "/tmp/file-dir"
[log]
level = "warn"
[security]
session_idle = "10m"
`)
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, c Config)
	}{
		{"file only", []string{"--config", file}, nil, func(t *testing.T, c Config) {
			if c.Addr != "127.0.0.1:9001" || c.Brand != "FileBrand" || c.Log.Level != "warn" || c.Security.SessionIdle != 10*time.Minute {
				t.Errorf("file values not applied: %+v", c)
			}
			if c.Security.SessionAbsolute != 12*time.Hour {
				t.Errorf("unset key lost its default: %v", c.Security.SessionAbsolute)
			}
			if c.PublicOrigin != "http://localhost:9001" {
				t.Errorf("PublicOrigin should follow addr: %q", c.PublicOrigin)
			}
		}},
		{"file via MOAT_CONFIG", nil, map[string]string{"MOAT_CONFIG": file}, func(t *testing.T, c Config) {
			if c.Brand != "FileBrand" {
				t.Errorf("MOAT_CONFIG not read: brand %q", c.Brand)
			}
		}},
		{"env beats file", []string{"--config", file}, map[string]string{
			"MOAT_ADDR": "127.0.0.1:9002", "MOAT_LOG_LEVEL": "debug", "MOAT_SECURITY_SESSION_IDLE": "5m",
		}, func(t *testing.T, c Config) {
			if c.Addr != "127.0.0.1:9002" || c.Log.Level != "debug" || c.Security.SessionIdle != 5*time.Minute {
				t.Errorf("env not applied over file: %+v", c)
			}
			if c.Brand != "FileBrand" {
				t.Errorf("file key not overridden by env was lost: %q", c.Brand)
			}
		}},
		{"flags beat env", []string{"--config", file, "--addr", "127.0.0.1:9003", "--log-level=error"},
			map[string]string{"MOAT_ADDR": "127.0.0.1:9002", "MOAT_LOG_LEVEL": "debug"},
			func(t *testing.T, c Config) {
				if c.Addr != "127.0.0.1:9003" || c.Log.Level != "error" {
					t.Errorf("flags not applied over env: addr %q level %q", c.Addr, c.Log.Level)
				}
			}},
		{"empty env var counts as unset", nil, map[string]string{"MOAT_ADDR": ""}, func(t *testing.T, c Config) {
			if c.Addr != "127.0.0.1:8080" {
				t.Errorf("addr = %q", c.Addr)
			}
		}},
		{"trusted proxies list", []string{"--trusted-proxies", "10.0.0.0/8, 192.168.1.1"}, nil, func(t *testing.T, c Config) {
			if !reflect.DeepEqual(c.Security.TrustedProxies, []string{"10.0.0.0/8", "192.168.1.1"}) {
				t.Errorf("TrustedProxies = %q", c.Security.TrustedProxies)
			}
			ps, err := c.Security.TrustedProxyPrefixes()
			if err != nil || len(ps) != 2 || ps[1].Bits() != 32 {
				t.Errorf("prefixes = %v, %v", ps, err)
			}
		}},
		{"public origin from wildcard addr", []string{"--addr", ":9000"}, nil, func(t *testing.T, c Config) {
			if c.PublicOrigin != "http://localhost:9000" {
				t.Errorf("PublicOrigin = %q", c.PublicOrigin)
			}
		}},
		{"explicit public origin kept", []string{"--public-origin", "https://id.example.com"}, nil, func(t *testing.T, c Config) {
			if c.PublicOrigin != "https://id.example.com" || c.SMTP.From != "noreply@id.example.com" {
				t.Errorf("PublicOrigin = %q From = %q", c.PublicOrigin, c.SMTP.From)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.args, envMap(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// TestDevDefault: dev mode is on by default exactly for sqlite without an
// SMTP host, and an explicit setting always wins.
func TestDevDefault(t *testing.T) {
	pg := "postgres://u@127.0.0.1/db"
	key := testKey
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want bool
	}{
		{"sqlite, no smtp", nil, nil, true},
		{"smtp host set", nil, map[string]string{"MOAT_SMTP_HOST": "mail.example.com"}, false},
		{"postgres", nil, map[string]string{"MOAT_DATABASE_DRIVER": "postgres", "MOAT_DATABASE_DSN": pg, "MOAT_ENCRYPTION_KEY": key}, false},
		{"explicit env on with smtp", nil, map[string]string{"MOAT_SMTP_HOST": "mail.example.com", "MOAT_DEV": "true"}, true},
		{"explicit flag off", []string{"--dev=false"}, nil, false},
		{"flag on beats env off", []string{"--dev"}, map[string]string{"MOAT_DEV": "false", "MOAT_SMTP_HOST": "mail.example.com"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.args, envMap(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if c.Dev != tt.want {
				t.Errorf("Dev = %v, want %v", c.Dev, tt.want)
			}
		})
	}
	t.Run("explicit in file", func(t *testing.T) {
		c, err := Load([]string{"--config", writeFile(t, "dev = false\n")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Dev {
			t.Error("dev = false in the file was ignored")
		}
	})
}

// testKey is a valid base64 32-byte key.
const testKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

func validConfig() Config {
	c := Default()
	c.ApplyDefaults()
	return c
}

// TestValidate: each broken setting is reported under its key.
func TestValidate(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		key    string
	}{
		{"addr without port", func(c *Config) { c.Addr = "localhost" }, "addr"},
		{"addr bad port", func(c *Config) { c.Addr = "127.0.0.1:http" }, "addr"},
		{"addr port range", func(c *Config) { c.Addr = "127.0.0.1:70000" }, "addr"},
		{"origin not absolute", func(c *Config) { c.PublicOrigin = "example.com" }, "public_origin"},
		{"origin ftp", func(c *Config) { c.PublicOrigin = "ftp://example.com" }, "public_origin"},
		{"origin with path", func(c *Config) { c.PublicOrigin = "https://example.com/moat" }, "public_origin"},
		{"origin with query", func(c *Config) { c.PublicOrigin = "https://example.com?x=1" }, "public_origin"},
		{"origin with user", func(c *Config) { c.PublicOrigin = "https://u:p@example.com" }, "public_origin"},
		{"origin http outside dev", func(c *Config) { c.Dev = false; c.PublicOrigin = "http://example.com" }, "public_origin"},
		{"driver", func(c *Config) { c.Database.Driver = "mysql" }, "database.driver"},
		{"postgres without dsn", func(c *Config) {
			c.Database.Driver = "postgres"
			c.Database.DSN = ""
			c.Secrets.EncryptionKey = testKey
		}, "database.dsn"},
		{"postgres without a shared key", func(c *Config) { c.Database.Driver = "postgres"; c.Database.DSN = "postgres://db/moat" }, "secrets.encryption_key"},
		{"key not base64", func(c *Config) { c.Secrets.EncryptionKey = "not base64!!" }, "secrets.encryption_key"},
		{"key too short", func(c *Config) { c.Secrets.EncryptionKey = "c2hvcnQ=" }, "secrets.encryption_key"},
		{"idle zero", func(c *Config) { c.Security.SessionIdle = 0 }, "security.session_idle"},
		{"idle longer than absolute", func(c *Config) { c.Security.SessionIdle = 13 * time.Hour }, "security.session_idle"},
		{"lock_for negative", func(c *Config) { c.Security.LockFor = -time.Second }, "security.lock_for"},
		{"read timeout zero", func(c *Config) { c.HTTP.ReadTimeout = 0 }, "http.read_timeout"},
		{"argon2 memory", func(c *Config) { c.Security.Argon2MemoryKiB = 19455 }, "security.argon2_memory_kib"},
		{"argon2 t=1 needs 46 MiB", func(c *Config) { c.Security.Argon2Time = 1 }, "security.argon2_memory_kib"},
		{"argon2 time zero", func(c *Config) { c.Security.Argon2Time = 0 }, "security.argon2_time"},
		{"argon2 threads zero", func(c *Config) { c.Security.Argon2Threads = 0 }, "security.argon2_threads"},
		{"lock_after zero", func(c *Config) { c.Security.LockAfter = 0 }, "security.lock_after"},
		{"lock_after not above free attempts", func(c *Config) { c.Security.LockAfter = 3 }, "security.lock_after"},
		{"trusted proxy", func(c *Config) { c.Security.TrustedProxies = []string{"10.0.0.0/33"} }, "security.trusted_proxies"},
		{"smtp tls", func(c *Config) { c.SMTP.TLS = "ssl" }, "smtp.tls"},
		{"smtp clear text to remote host", func(c *Config) { c.SMTP.Host = "mail.example.com"; c.SMTP.TLS = "none" }, "smtp.tls"},
		{"smtp port", func(c *Config) { c.SMTP.Host = "mail.example.com"; c.SMTP.Port = 0 }, "smtp.port"},
		{"smtp from", func(c *Config) { c.SMTP.Host = "mail.example.com"; c.SMTP.From = "nobody" }, "smtp.from"},
		{"smtp from with a name", func(c *Config) { c.SMTP.Host = "mail.example.com"; c.SMTP.From = "Moat <a@example.com>" }, "smtp.from"},
		{"smtp credentials in clear", func(c *Config) { c.SMTP.Host = "localhost"; c.SMTP.TLS = "none"; c.SMTP.Username = "u" }, "smtp.username"},
		{"redis addr", func(c *Config) { c.Redis.Addr = "redis" }, "redis.addr"},
		{"redis key prefix empty", func(c *Config) { c.Redis.Addr, c.Redis.KeyPrefix = "redis:6379", "" }, "redis.key_prefix"},
		{"redis key prefix with a brace", func(c *Config) { c.Redis.Addr, c.Redis.KeyPrefix = "redis:6379", "moat{a}:" }, "redis.key_prefix"},
		{"body limit", func(c *Config) { c.HTTP.MaxBodyBytes = 0 }, "http.max_body_bytes"},
		{"log level", func(c *Config) { c.Log.Level = "loud" }, "log.level"},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, "log.format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c)
			err := c.Validate()
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Validate() = %v, want *Error", err)
			}
			if len(ce.Problems) != 1 || ce.Problems[0].Key != tt.key {
				t.Fatalf("problems = %+v, want one for %s", ce.Problems, tt.key)
			}
			if !strings.Contains(err.Error(), tt.key) {
				t.Errorf("message does not name %s: %v", tt.key, err)
			}
		})
	}
	t.Run("accepted edge cases", func(t *testing.T) {
		for _, mutate := range []func(c *Config){
			func(c *Config) { c.Security.Argon2Time = 1; c.Security.Argon2MemoryKiB = 47104 },
			func(c *Config) { c.Security.Argon2Time = 5; c.Security.Argon2MemoryKiB = 7168 },
			func(c *Config) { c.PublicOrigin = "https://example.com/" },
			func(c *Config) { c.Dev = false; c.PublicOrigin = "http://localhost:8080" },
			func(c *Config) { c.SMTP.Host = "127.0.0.1"; c.SMTP.TLS = "none" },
			func(c *Config) { c.Addr = ":0" },
		} {
			c := validConfig()
			mutate(&c)
			if err := c.Validate(); err != nil {
				t.Errorf("rejected: %v", err)
			}
		}
	})
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := validConfig()
	c.Addr = "nope"
	c.Database.Driver = "oracle"
	c.Security.Argon2MemoryKiB = 1024
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"addr (MOAT_ADDR)", "database.driver (MOAT_DATABASE_DRIVER)", "security.argon2_memory_kib"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestKeyNeverEchoed(t *testing.T) {
	secret := "c3VwZXItc2VjcmV0LWJ1dC13cm9uZy1sZW5ndGg="
	_, err := Load(nil, envMap(map[string]string{"MOAT_ENCRYPTION_KEY": secret}))
	if err == nil {
		t.Fatal("short key accepted")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error echoes the key: %v", err)
	}
}

// TestBadSources: a bad file, variable or flag fails with the key named.
func TestBadSources(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		env   map[string]string
		args  []string
		wants []string
	}{
		{name: "unknown key", file: "[security]\nsesion_idle = \"5m\"\n", wants: []string{"security.sesion_idle", "unknown key"}},
		{name: "unknown table reported once", file: "[smpt]\nhost = \"x\"\nport = 25\n", wants: []string{`"smpt"`}},
		{name: "wrong type", file: "addr = 8080\n", wants: []string{"addr"}},
		{name: "integer duration", file: "[security]\nsession_idle = 30\n", wants: []string{"security.session_idle", "as strings"}},
		{name: "syntax error", file: "addr = \"127.0.0.1:8080\nbrand = 1\n", wants: []string{"line 1"}},
		{name: "valid file, invalid value", file: "[database]\ndriver = \"mysql\"\n", wants: []string{"database.driver", "mysql"}},
		{name: "missing file", args: []string{"--config", "/nonexistent/moat.toml"}, wants: []string{"/nonexistent/moat.toml"}},
		{name: "bad env duration", env: map[string]string{"MOAT_SECURITY_LOCK_FOR": "soon"}, wants: []string{"MOAT_SECURITY_LOCK_FOR", "duration"}},
		{name: "bad env bool", env: map[string]string{"MOAT_DEV": "yes please"}, wants: []string{"MOAT_DEV"}},
		{name: "bad env int", env: map[string]string{"MOAT_SMTP_PORT": "twenty-five"}, wants: []string{"MOAT_SMTP_PORT"}},
		{name: "uint8 overflow", env: map[string]string{"MOAT_SECURITY_ARGON2_THREADS": "256"}, wants: []string{"argon2_threads"}},
		{name: "bad flag value", args: []string{"--addr", "nowhere"}, wants: []string{"addr"}},
		{name: "unknown flag", args: []string{"--adr", "x"}, wants: []string{"adr"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				args = append([]string{"--config", writeFile(t, tt.file)}, args...)
			}
			_, err := Load(args, envMap(tt.env))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q: %v", w, err)
				}
			}
		})
	}
}

// TestSettingsCoverEveryField guards the one table against drifting from
// the struct: every leaf field has exactly one setting, and every setting a
// field.
func TestSettingsCoverEveryField(t *testing.T) {
	var keys []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			k := prefix + tomlName(f)
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				walk(k+".", f.Type)
				continue
			}
			keys = append(keys, k)
		}
	}
	walk("", reflect.TypeFor[Config]())
	seen := map[string]bool{}
	for _, s := range settings {
		if seen[s.key] {
			t.Errorf("setting %s listed twice", s.key)
		}
		seen[s.key] = true
		c := Default()
		if !fieldByKey(&c, s.key).IsValid() {
			t.Errorf("setting %s has no field", s.key)
		}
		if !strings.HasPrefix(s.env, "MOAT_") {
			t.Errorf("setting %s env %q", s.key, s.env)
		}
	}
	for _, k := range keys {
		if !seen[k] {
			t.Errorf("field %s has no setting (add it to settings)", k)
		}
	}
}

func TestLoaderWithCommandFlags(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	l := NewLoader(fs)
	verbose := fs.Bool("verbose", false, "own flag")
	if err := fs.Parse([]string{"--verbose", "--brand", "Acme"}); err != nil {
		t.Fatal(err)
	}
	c, err := l.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !*verbose || c.Brand != "Acme" {
		t.Errorf("verbose %v brand %q", *verbose, c.Brand)
	}
}

func TestPrintSettings(t *testing.T) {
	var b strings.Builder
	PrintSettings(&b)
	for _, s := range settings {
		if !strings.Contains(b.String(), s.env) {
			t.Errorf("help lacks %s", s.env)
		}
	}
}
