package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// A setting is one configurable value: its TOML key, its environment
// variable and, for the settings an operator changes per run, a flag.
//
// Secrets (passwords, the encryption key, the database DSN which may hold a
// password) have no flag on purpose: command lines are visible to every user
// of the machine in ps(1) and /proc.
type setting struct {
	key   string // TOML key, e.g. "security.session_idle"
	env   string // environment variable
	flag  string // flag name without dashes; "" for file/env only
	usage string
}

// settings lists every key of Config. One table drives the environment, the
// flags and the help text; a test checks it covers every field.
var settings = []setting{
	{"addr", "MOAT_ADDR", "addr", "listen address, host:port"},
	{"data_dir", "MOAT_DATA_DIR", "data-dir", "directory for the SQLite database and the generated encryption key"},
	{"public_origin", "MOAT_PUBLIC_ORIGIN", "public-origin", "scheme://host[:port] users reach moat at (default http://<addr>); links in e-mails point here"},
	{"dev", "MOAT_DEV", "dev", "development mode: dev mailbox at /dev/mailbox (default: on with sqlite and no SMTP host)"},
	{"brand", "MOAT_BRAND", "brand", "product name in e-mails and page titles"},
	{"database.driver", "MOAT_DATABASE_DRIVER", "database-driver", `"sqlite" or "postgres"`},
	{"database.dsn", "MOAT_DATABASE_DSN", "", "sqlite: file path (default <data_dir>/moat.db); postgres: connection URL (required)"},
	{"redis.addr", "MOAT_REDIS_ADDR", "redis-addr", "host:port of Redis for rate-limit counters shared by every node (default: in memory)"},
	{"redis.password", "MOAT_REDIS_PASSWORD", "", "Redis password"},
	{"redis.db", "MOAT_REDIS_DB", "", "Redis database number"},
	{"redis.key_prefix", "MOAT_REDIS_KEY_PREFIX", "", "prefix of every Redis key moat writes, to share one Redis between deployments"},
	{"secrets.encryption_key", "MOAT_ENCRYPTION_KEY", "", "base64 32-byte master key (default: generated into <data_dir>/encryption.key)"},
	{"smtp.host", "MOAT_SMTP_HOST", "", "SMTP relay host; empty: e-mail only goes to the dev mailbox"},
	{"smtp.port", "MOAT_SMTP_PORT", "", "SMTP port"},
	{"smtp.username", "MOAT_SMTP_USERNAME", "", "SMTP user name"},
	{"smtp.password", "MOAT_SMTP_PASSWORD", "", "SMTP password"},
	{"smtp.from", "MOAT_SMTP_FROM", "", "sender address (default noreply@<public origin host>)"},
	{"smtp.tls", "MOAT_SMTP_TLS", "", `"starttls", "tls" (implicit) or "none" (localhost relay only)`},
	{"security.session_idle", "MOAT_SECURITY_SESSION_IDLE", "", "session idle timeout"},
	{"security.session_absolute", "MOAT_SECURITY_SESSION_ABSOLUTE", "", "session absolute timeout"},
	{"security.session_cache_ttl", "MOAT_SECURITY_SESSION_CACHE_TTL", "", "how long another node may still accept a revoked session"},
	{"security.device_approval", "MOAT_SECURITY_DEVICE_APPROVAL", "", "sign-ins from unknown devices need an e-mailed code or link"},
	{"security.argon2_memory_kib", "MOAT_SECURITY_ARGON2_MEMORY_KIB", "", "argon2id memory in KiB"},
	{"security.argon2_time", "MOAT_SECURITY_ARGON2_TIME", "", "argon2id iterations"},
	{"security.argon2_threads", "MOAT_SECURITY_ARGON2_THREADS", "", "argon2id parallelism"},
	{"security.throttle_window", "MOAT_SECURITY_THROTTLE_WINDOW", "", "sign-in throttling window"},
	{"security.throttle_free_attempts", "MOAT_SECURITY_THROTTLE_FREE_ATTEMPTS", "", "failed sign-ins per window before delays start"},
	{"security.lock_after", "MOAT_SECURITY_LOCK_AFTER", "", "failed sign-ins per window before a temporary lock"},
	{"security.lock_for", "MOAT_SECURITY_LOCK_FOR", "", "temporary lock duration"},
	{"security.ip_limit", "MOAT_SECURITY_IP_LIMIT", "", "failed sign-ins per IP per window"},
	{"security.confirm_link_ttl", "MOAT_SECURITY_CONFIRM_LINK_TTL", "", "e-mail confirmation link lifetime"},
	{"security.device_code_ttl", "MOAT_SECURITY_DEVICE_CODE_TTL", "", "device approval code lifetime"},
	{"security.security_change_hold", "MOAT_SECURITY_SECURITY_CHANGE_HOLD", "", "withdrawal pause after a security change"},
	{"security.trusted_proxies", "MOAT_SECURITY_TRUSTED_PROXIES", "trusted-proxies", "comma-separated CIDRs or IPs whose X-Forwarded-For is believed"},
	{"http.max_body_bytes", "MOAT_HTTP_MAX_BODY_BYTES", "", "largest request body accepted"},
	{"http.read_header_timeout", "MOAT_HTTP_READ_HEADER_TIMEOUT", "", "time to read request headers"},
	{"http.read_timeout", "MOAT_HTTP_READ_TIMEOUT", "", "time to read a whole request"},
	{"http.write_timeout", "MOAT_HTTP_WRITE_TIMEOUT", "", "time to write a response"},
	{"http.idle_timeout", "MOAT_HTTP_IDLE_TIMEOUT", "", "keep-alive idle timeout"},
	{"log.level", "MOAT_LOG_LEVEL", "log-level", "debug, info, warn or error"},
	{"log.format", "MOAT_LOG_FORMAT", "log-format", "text or json"},
	// API keys and the signed API (apikeys.go). Maps come from the
	// environment as JSON objects.
	{"apikeys.upstream", "MOAT_APIKEYS_UPSTREAM", "apikeys-upstream", "URL of the exchange backend signed API calls go to; empty: the built-in sandbox exchange"},
	{"apikeys.identity_key", "MOAT_APIKEYS_IDENTITY_KEY", "", "base64 key (>= 32 bytes) signing the identity headers sent upstream; required with apikeys.upstream (default with the sandbox: derived from the master key)"},
	{"apikeys.routes", "MOAT_APIKEYS_ROUTES", "", `per-method overrides of the routes table, e.g. {"AddOrder":{"cost":0},"TradeBalance":{"permissions":"query-funds"}}`},
	{"apikeys.tiers", "MOAT_APIKEYS_TIERS", "", `rate-limit tiers, e.g. {"pro":{"max":20,"decay_per_second":1}} (default: Kraken's starter, intermediate, pro)`},
	{"apikeys.default_tier", "MOAT_APIKEYS_DEFAULT_TIER", "", "rate-limit tier of every key"},
	{"apikeys.lockout.after", "MOAT_APIKEYS_LOCKOUT_AFTER", "", "invalid key or signature answers from one address before it is locked out (0: never)"},
	{"apikeys.lockout.decay_per_second", "MOAT_APIKEYS_LOCKOUT_DECAY_PER_SECOND", "", "how fast an address's failure count decays"},
	{"apikeys.lockout.for", "MOAT_APIKEYS_LOCKOUT_FOR", "", "how long a locked-out address is refused"},
	{"apikeys.max_body_bytes", "MOAT_APIKEYS_MAX_BODY_BYTES", "", "largest signed API request body"},
	{"apikeys.unused_after", "MOAT_APIKEYS_UNUSED_AFTER", "", "flag keys not used for this long (0: never)"},
	{"apikeys.cache_ttl", "MOAT_APIKEYS_CACHE_TTL", "", "how long another node may still accept a key changed or deleted elsewhere"},
	{"apikeys.nonce_max_seen", "MOAT_APIKEYS_NONCE_MAX_SEEN", "", "nonces remembered per key below its highest (keys with a nonce window)"},
	// Two-factor authentication (mfa.go).
	{"mfa.rp_id", "MOAT_MFA_RP_ID", "", "WebAuthn relying party ID, a domain (default: the host of public_origin; localhost for a loopback IP)"},
	{"mfa.origins", "MOAT_MFA_ORIGINS", "", "comma-separated origins WebAuthn accepts (default: public_origin)"},
	{"mfa.max_security_keys", "MOAT_MFA_MAX_SECURITY_KEYS", "", "most security keys and passkeys per account"},
	{"mfa.mandatory_for_all", "MOAT_MFA_MANDATORY_FOR_ALL", "", "every account must enrol a second factor"},
	{"mfa.mandatory_for_staff", "MOAT_MFA_MANDATORY_FOR_STAFF", "", "support and admin accounts must enrol a second factor"},
	{"mfa.staff_security_key", "MOAT_MFA_STAFF_SECURITY_KEY", "", "staff must use (and keep) a security key"},
	{"mfa.step_up_within", "MOAT_MFA_STEP_UP_WITHIN", "", "how recent a second factor must be for security changes"},
	{"mfa.sms.url", "MOAT_MFA_SMS_URL", "", "Twilio-style send-message URL ({account_sid} is replaced); empty: no SMS codes (dev mode: dev mailbox)"},
	{"mfa.sms.account_sid", "MOAT_MFA_SMS_ACCOUNT_SID", "", "SMS provider account SID (basic-auth user)"},
	{"mfa.sms.auth_token", "MOAT_MFA_SMS_AUTH_TOKEN", "", "SMS provider auth token (secret: environment or file, never a flag)"},
	{"mfa.sms.from", "MOAT_MFA_SMS_FROM", "", "sending number or sender ID"},
	// Recovery after a lost second factor (recovery.go).
	{"recovery.waiting_period", "MOAT_RECOVERY_WAITING_PERIOD", "", "time from the second staff approval to the removal of the lost factors; the owner can cancel meanwhile"},
	{"recovery.notice_every", "MOAT_RECOVERY_NOTICE_EVERY", "", "how often the owner is e-mailed during the waiting period"},
	{"recovery.hold", "MOAT_RECOVERY_HOLD", "", "withdrawal pause after a completed recovery"},
}

// ConfigEnv names the environment variable holding the config file path.
const ConfigEnv = "MOAT_CONFIG"

// Loader reads a Config from defaults, a TOML file, the environment and the
// flags it registered, in that order; each later source overrides the earlier
// ones key by key.
//
// Use it when a command has flags of its own:
//
//	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
//	l := config.NewLoader(fs)
//	fs.Parse(args)
//	cfg, err := l.Load(os.Getenv)
type Loader struct {
	fs         *flag.FlagSet
	configPath string
	flags      map[string]*flagValue // by flag name
}

// flagValue remembers a flag's raw text; it is applied after the
// environment so that flags win.
type flagValue struct {
	s      string
	isBool bool
}

func (v *flagValue) String() string {
	if v == nil {
		return ""
	}
	return v.s
}
func (v *flagValue) Set(s string) error { v.s = s; return nil }
func (v *flagValue) IsBoolFlag() bool   { return v.isBool }

// NewLoader registers --config and every setting that has a flag on fs.
func NewLoader(fs *flag.FlagSet) *Loader {
	l := &Loader{fs: fs, flags: map[string]*flagValue{}}
	fs.StringVar(&l.configPath, "config", "", "`path` of a TOML config file (env "+ConfigEnv+")")
	def := Default()
	for _, s := range settings {
		if s.flag == "" {
			continue
		}
		v := &flagValue{isBool: fieldByKey(&def, s.key).Kind() == reflect.Bool}
		l.flags[s.flag] = v
		usage := s.usage + " (env " + s.env + ")"
		fs.Var(v, s.flag, usage)
	}
	return l
}

// Owns reports whether the flag called name is one of the loader's (a
// config setting or --config), for help output that groups them.
func (l *Loader) Owns(name string) bool {
	_, ok := l.flags[name]
	return ok || name == "config"
}

// Load parses args with moat's config flags and loads a Config. It is the
// whole loader for commands without flags of their own.
func Load(args []string, env func(string) string) (Config, error) {
	fs := flag.NewFlagSet("moat", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	l := NewLoader(fs)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return l.Load(env)
}

// Load builds the Config: defaults, then the file named by --config or
// MOAT_CONFIG, then MOAT_* variables (an empty variable counts as unset),
// then the flags that were given. It fills derived defaults (ApplyDefaults)
// and validates the result; every problem is reported in one error.
func (l *Loader) Load(env func(string) string) (Config, error) {
	if env == nil {
		env = func(string) string { return "" }
	}
	cfg := Default()
	var probs problems
	devSet := false

	path := l.configPath
	if path == "" {
		path = env(ConfigEnv)
	}
	if path != "" {
		set, err := decodeFile(path, &cfg)
		if err != nil {
			return Config{}, err
		}
		devSet = set["dev"]
	}

	for _, s := range settings {
		v := env(s.env)
		if v == "" {
			continue
		}
		if err := setKey(&cfg, s.key, v); err != nil {
			probs.add(s.key, "%s=%q: %v", s.env, v, err)
		}
		if s.key == "dev" {
			devSet = true
		}
	}

	visited := map[string]bool{}
	l.fs.Visit(func(f *flag.Flag) { visited[f.Name] = true })
	for _, s := range settings {
		if s.flag == "" || !visited[s.flag] {
			continue
		}
		v := l.flags[s.flag].s
		if err := setKey(&cfg, s.key, v); err != nil {
			probs.add(s.key, "--%s=%q: %v", s.flag, v, err)
		}
		if s.key == "dev" {
			devSet = true
		}
	}
	if len(probs) > 0 {
		return Config{}, probs.err()
	}

	if !devSet {
		cfg.Dev = cfg.Database.Driver == "sqlite" && cfg.SMTP.Host == ""
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// decodeFile decodes the TOML file at path over cfg and reports which keys
// it set. Unknown keys and integer durations are errors that name the key.
func decodeFile(path string, cfg *Config) (map[string]bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	md, err := toml.Decode(string(data), cfg)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			msg := pe.Message
			if pe.LastKey != "" {
				return nil, fmt.Errorf("config file %s, line %d, key %s: %s", path, pe.Position.Line, pe.LastKey, msg)
			}
			return nil, fmt.Errorf("config file %s, line %d: %s", path, pe.Position.Line, msg)
		}
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	var probs problems
	unknown := map[string]bool{}
	for _, k := range md.Undecoded() {
		unknown[k.String()] = true
		if len(k) > 1 && unknown[k[:len(k)-1].String()] {
			continue // its table is unknown already
		}
		probs.add(k.String(), "unknown key %q in %s", k.String(), path)
	}
	set := map[string]bool{}
	for _, k := range md.Keys() {
		key := k.String()
		set[key] = true
		f := fieldByKey(cfg, key)
		if f.IsValid() && f.Type() == durationType && md.Type(k...) != "String" {
			probs.add(key, "%s in %s: write durations as strings such as \"30m\" or \"12h\" (a bare number would mean nanoseconds)", key, path)
		}
	}
	if len(probs) > 0 {
		return nil, probs.err()
	}
	return set, nil
}

var durationType = reflect.TypeFor[time.Duration]()

// fieldByKey returns the settable field of cfg whose TOML key path is key,
// or an invalid Value.
func fieldByKey(cfg *Config, key string) reflect.Value {
	v := reflect.ValueOf(cfg).Elem()
	for part := range strings.SplitSeq(key, ".") {
		if v.Kind() != reflect.Struct {
			return reflect.Value{}
		}
		t := v.Type()
		found := false
		for i := range t.NumField() {
			if tomlName(t.Field(i)) == part {
				v = v.Field(i)
				found = true
				break
			}
		}
		if !found {
			return reflect.Value{}
		}
	}
	return v
}

func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

// setKey parses s into the field at key according to its type.
func setKey(cfg *Config, key, s string) error {
	f := fieldByKey(cfg, key)
	if !f.IsValid() {
		return fmt.Errorf("unknown setting %s", key)
	}
	s = strings.TrimSpace(s)
	switch {
	case f.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("not a duration (use e.g. 30s, 15m, 12h)")
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(s)
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("not a boolean (use true or false)")
		}
		f.SetBool(b)
	case f.CanInt():
		n, err := strconv.ParseInt(s, 10, f.Type().Bits())
		if err != nil {
			return fmt.Errorf("not an integer in range")
		}
		f.SetInt(n)
	case f.CanUint():
		n, err := strconv.ParseUint(s, 10, f.Type().Bits())
		if err != nil {
			return fmt.Errorf("not a non-negative integer in range")
		}
		f.SetUint(n)
	case f.CanFloat():
		n, err := strconv.ParseFloat(s, f.Type().Bits())
		if err != nil {
			return fmt.Errorf("not a number")
		}
		f.SetFloat(n)
	case f.Kind() == reflect.Map:
		// Tables (apikeys.routes, apikeys.tiers) come as a JSON object.
		m := reflect.New(f.Type())
		dec := json.NewDecoder(strings.NewReader(s))
		dec.DisallowUnknownFields()
		if err := dec.Decode(m.Interface()); err != nil {
			return fmt.Errorf("not a JSON object of the right shape: %v", err)
		}
		f.Set(m.Elem())
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		var list []string
		for p := range strings.SplitSeq(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				list = append(list, p)
			}
		}
		f.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("unsupported type %s", f.Type())
	}
	return nil
}

// ApplyDefaults fills the settings whose defaults derive from others, when
// they are empty:
//   - PublicOrigin: "http://" + Addr, with a wildcard or empty host
//     (":8080", "0.0.0.0:8080", "[::]:8080") replaced by localhost;
//   - Database.DSN for sqlite: <DataDir>/moat.db;
//   - SMTP.From: noreply@<public origin host>.
func (c *Config) ApplyDefaults() {
	if c.PublicOrigin == "" {
		c.PublicOrigin = OriginForAddr(c.Addr)
	}
	if c.Database.Driver == "sqlite" && c.Database.DSN == "" {
		c.Database.DSN = joinPath(c.DataDir, "moat.db")
	}
	if c.SMTP.From == "" {
		host := "localhost"
		if u, err := url.Parse(c.PublicOrigin); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		}
		c.SMTP.From = "noreply@" + host
	}
}

// OriginForAddr is the default public origin for a listen address:
// "http://" + addr, with a wildcard or empty host replaced by localhost.
func OriginForAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	// Loopback and wildcard addresses become "localhost": browsers treat
	// http://localhost as a secure context (WebAuthn, __Host- cookies need
	// one) but not http://127.0.0.1, so a newcomer's security keys work.
	switch host {
	case "", "0.0.0.0", "::", "127.0.0.1", "::1":
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return strings.TrimRight(dir, "/") + "/" + name
}

// PrintSettings writes every setting — TOML key, environment variable,
// flag, default and meaning — for --help.
func PrintSettings(w io.Writer) {
	def := Default()
	for _, s := range settings {
		where := s.env
		if s.flag != "" {
			where += ", --" + s.flag
		}
		f := fieldByKey(&def, s.key)
		d := fmt.Sprint(f.Interface())
		if f.Type() == durationType {
			d = shortDuration(time.Duration(f.Int()))
		}
		switch {
		case s.key == "dev":
			d = "auto"
		case d == "" || d == "[]" || d == "map[]" || d == "0" && strings.HasPrefix(s.key, "redis."):
			d = ""
		}
		if d != "" {
			d = "  [default " + d + "]"
		}
		fmt.Fprintf(w, "  %s  (%s)%s\n      %s\n", s.key, where, d, s.usage)
	}
}

// shortDuration prints 30m instead of 30m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
