// Package config holds moat's one Config struct: loaded from a TOML file,
// then environment variables (MOAT_*), then flags, and validated at start.
package config

import "time"

// Config is every setting moat reads. The settings table in load.go gives
// each TOML key its environment variable, flag and the one-line help that
// `moat serve --help` prints (a test keeps the table and this struct in
// step); the field comments here say why a setting exists.
type Config struct {
	// Addr is the listen address.
	Addr string `toml:"addr"`
	// DataDir holds the SQLite database, the generated encryption key and
	// other local state of the embedded default.
	DataDir string `toml:"data_dir"`
	// PublicOrigin is the scheme://host[:port] users reach moat at; every
	// link in an e-mail points here, and WebAuthn origins derive from it.
	// Default: http://<Addr>.
	PublicOrigin string `toml:"public_origin"`
	// Dev enables development mode: the dev mailbox at /dev/mailbox, seeded
	// sandbox balances. When dev is not set explicitly (file, MOAT_DEV or
	// --dev), it is on exactly when the driver is sqlite and no SMTP host is
	// set: the embedded default, where e-mail has nowhere else to go. Setting
	// an SMTP host or choosing postgres turns it off unless dev = true.
	Dev bool `toml:"dev"`
	// Brand is the product name used in e-mails and page titles.
	Brand string `toml:"brand"`

	Database Database `toml:"database"`
	Redis    Redis    `toml:"redis"`
	Secrets  Secrets  `toml:"secrets"`
	SMTP     SMTP     `toml:"smtp"`
	Security Security `toml:"security"`
	HTTP     HTTP     `toml:"http"`
	Log      Log      `toml:"log"`
	// APIKeys: API keys and the signed API (apikeys.go).
	APIKeys APIKeys `toml:"apikeys"`
	// MFA: two-factor authentication (mfa.go).
	MFA MFA `toml:"mfa"`
	// Recovery: recovery cases after a lost second factor (recovery.go).
	Recovery Recovery `toml:"recovery"`
}

// Database selects the store.
type Database struct {
	// Driver is "sqlite" (default) or "postgres".
	Driver string `toml:"driver"`
	// DSN: for sqlite a file path (default <data_dir>/moat.db); for postgres a
	// connection URL.
	DSN string `toml:"dsn"`
}

// Redis is optional; when Addr is set, rate-limit counters live there so
// every node sees the same ones.
type Redis struct {
	Addr     string `toml:"addr"`
	Password string `toml:"password"`
	DB       int    `toml:"db"`
	// KeyPrefix starts every key moat writes ("moat:"), so that several
	// deployments (or test runs) can share one Redis without sharing
	// counters.
	KeyPrefix string `toml:"key_prefix"`
}

// Secrets configures encryption at rest.
type Secrets struct {
	// EncryptionKey is a base64 32-byte AES key. When empty, a key is
	// generated into <data_dir>/encryption.key on first run.
	EncryptionKey string `toml:"encryption_key"`
}

// SMTP configures real e-mail delivery. When Host is empty, e-mail goes to
// the dev mailbox (development mode) and is not delivered anywhere else.
type SMTP struct {
	Host     string `toml:"host"`
	Port     int    `toml:"port"`
	Username string `toml:"username"`
	Password string `toml:"password"`
	From     string `toml:"from"`
	// TLS is "starttls" (default), "tls" (implicit TLS) or "none" (only for
	// a relay on localhost).
	TLS string `toml:"tls"`
}

// Security holds the security defaults of DESIGN.md.
type Security struct {
	SessionIdle     time.Duration `toml:"session_idle"`
	SessionAbsolute time.Duration `toml:"session_absolute"`
	// SessionCacheTTL bounds how long another node may keep accepting a
	// session revoked elsewhere (the node that revokes stops at once).
	SessionCacheTTL time.Duration `toml:"session_cache_ttl"`
	// DeviceApproval: a sign-in from an unknown device completes only after
	// an e-mailed code or link.
	DeviceApproval bool `toml:"device_approval"`
	// Argon2id parameters.
	Argon2MemoryKiB uint32 `toml:"argon2_memory_kib"`
	Argon2Time      uint32 `toml:"argon2_time"`
	Argon2Threads   uint8  `toml:"argon2_threads"`
	// Sign-in throttling.
	ThrottleWindow       time.Duration `toml:"throttle_window"`
	ThrottleFreeAttempts int           `toml:"throttle_free_attempts"`
	LockAfter            int           `toml:"lock_after"`
	LockFor              time.Duration `toml:"lock_for"`
	IPLimit              int           `toml:"ip_limit"`
	ConfirmLinkTTL       time.Duration `toml:"confirm_link_ttl"`
	DeviceCodeTTL        time.Duration `toml:"device_code_ttl"`
	SecurityChangeHold   time.Duration `toml:"security_change_hold"`
	// TrustedProxies lists CIDRs whose X-Forwarded-For is believed. Empty:
	// the TCP peer address is the client address.
	TrustedProxies []string `toml:"trusted_proxies"`
}

// HTTP server limits.
type HTTP struct {
	MaxBodyBytes      int64         `toml:"max_body_bytes"`
	ReadHeaderTimeout time.Duration `toml:"read_header_timeout"`
	ReadTimeout       time.Duration `toml:"read_timeout"`
	WriteTimeout      time.Duration `toml:"write_timeout"`
	IdleTimeout       time.Duration `toml:"idle_timeout"`
}

// Log configures slog.
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text or json
}

// Default returns the configuration of the embedded default: SQLite in
// ./moat-data, no SMTP, so development mode is on. Derived settings
// (PublicOrigin, the SQLite path, the sender address) are left empty and
// filled in by ApplyDefaults, so that they follow Addr and DataDir.
func Default() Config {
	return Config{
		Addr:     "127.0.0.1:8080",
		Dev:      true,
		DataDir:  "moat-data",
		Brand:    "moat",
		Database: Database{Driver: "sqlite"},
		Redis:    Redis{KeyPrefix: "moat:"},
		SMTP:     SMTP{Port: 587, TLS: "starttls"},
		Security: Security{
			SessionIdle:          30 * time.Minute,
			SessionAbsolute:      12 * time.Hour,
			SessionCacheTTL:      5 * time.Second,
			DeviceApproval:       true,
			Argon2MemoryKiB:      19456,
			Argon2Time:           2,
			Argon2Threads:        1,
			ThrottleWindow:       15 * time.Minute,
			ThrottleFreeAttempts: 3,
			LockAfter:            10,
			LockFor:              15 * time.Minute,
			IPLimit:              100,
			ConfirmLinkTTL:       24 * time.Hour,
			DeviceCodeTTL:        15 * time.Minute,
			SecurityChangeHold:   24 * time.Hour,
		},
		HTTP: HTTP{
			MaxBodyBytes:      1 << 20,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       15 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       120 * time.Second,
		},
		Log:      Log{Level: "info", Format: "text"},
		APIKeys:  DefaultAPIKeys(),
		MFA:      DefaultMFA(),
		Recovery: DefaultRecovery(),
	}
}
