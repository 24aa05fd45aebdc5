package config

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/secrets"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Key is the TOML key at fault, e.g. "security.argon2_memory_kib".
	Key     string
	Message string
}

// Error lists every problem of a configuration, so that an operator can
// fix them all in one go instead of one per restart.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration:")
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.Key)
		if env := envFor(p.Key); env != "" {
			b.WriteString(" (")
			b.WriteString(env)
			b.WriteString(")")
		}
		b.WriteString(": ")
		b.WriteString(p.Message)
	}
	return b.String()
}

func envFor(key string) string {
	for _, s := range settings {
		if s.key == key {
			return s.env
		}
	}
	return ""
}

type problems []Problem

func (ps *problems) add(key, format string, args ...any) {
	*ps = append(*ps, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
}

func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &Error{Problems: ps}
}

// argon2Minimum is OWASP's table of equivalent argon2id settings (Password
// Storage Cheat Sheet): for t iterations, at least this much memory (KiB).
// Five or more iterations need 7 MiB.
var argon2Minimum = map[uint32]uint32{1: 47104, 2: 19456, 3: 12288, 4: 9216}

const argon2MinimumLast = 7168

// Validate checks every setting and returns an *Error listing all problems,
// or nil. Call ApplyDefaults first (Load does both).
func (c Config) Validate() error {
	var ps problems

	if err := checkHostPort(c.Addr, true); err != nil {
		ps.add("addr", "%q: %v", c.Addr, err)
	}
	if strings.TrimSpace(c.DataDir) == "" {
		ps.add("data_dir", "must not be empty")
	}
	c.checkOrigin(&ps)
	if strings.TrimSpace(c.Brand) == "" {
		ps.add("brand", "must not be empty")
	}

	switch c.Database.Driver {
	case "sqlite":
		if c.Database.DSN == "" {
			ps.add("database.dsn", "sqlite needs a file path (ApplyDefaults sets <data_dir>/moat.db)")
		}
	case "postgres":
		if c.Database.DSN == "" {
			ps.add("database.dsn", "postgres needs a connection URL, e.g. postgres://user:password@host:5432/moat")
		}
		if c.Secrets.EncryptionKey == "" {
			// A generated key file is per machine: nodes sharing one database
			// would each encrypt with a different key.
			ps.add("secrets.encryption_key", "must be set with postgres, the same on every node (generate one with: head -c32 /dev/urandom | base64)")
		}
	default:
		ps.add("database.driver", "%q: must be \"sqlite\" or \"postgres\"", c.Database.Driver)
	}

	if c.Redis.Addr != "" {
		if err := checkHostPort(c.Redis.Addr, false); err != nil {
			ps.add("redis.addr", "%q: %v", c.Redis.Addr, err)
		}
	}
	if c.Redis.DB < 0 {
		ps.add("redis.db", "must not be negative")
	}
	if p := c.Redis.KeyPrefix; c.Redis.Addr != "" && (p == "" || strings.ContainsAny(p, "{} \t\r\n")) {
		// Braces would break the cluster hash tags the nonce keys use.
		ps.add("redis.key_prefix", "%q: must be non-empty, without spaces or braces", p)
	}

	if c.Secrets.EncryptionKey != "" {
		if _, err := secrets.ParseKey(c.Secrets.EncryptionKey); err != nil {
			// Never echo the key itself.
			ps.add("secrets.encryption_key", "%v (generate one with: head -c32 /dev/urandom | base64)", err)
		}
	}

	c.checkSMTP(&ps)
	c.checkSecurity(&ps)
	c.checkAPIKeys(&ps)
	c.checkMFA(&ps)
	c.checkRecovery(&ps)

	if c.HTTP.MaxBodyBytes <= 0 {
		ps.add("http.max_body_bytes", "must be positive")
	}
	for key, d := range map[string]time.Duration{
		"http.read_header_timeout": c.HTTP.ReadHeaderTimeout,
		"http.read_timeout":        c.HTTP.ReadTimeout,
		"http.write_timeout":       c.HTTP.WriteTimeout,
		"http.idle_timeout":        c.HTTP.IdleTimeout,
	} {
		positive(&ps, key, d)
	}

	if _, err := parseLevel(c.Log.Level); err != nil {
		ps.add("log.level", "%q: must be debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		ps.add("log.format", "%q: must be text or json", c.Log.Format)
	}

	sortProblems(ps)
	return ps.err()
}

func (c Config) checkOrigin(ps *problems) {
	const key = "public_origin"
	u, err := url.Parse(c.PublicOrigin)
	switch {
	case c.PublicOrigin == "":
		ps.add(key, "must be set (ApplyDefaults derives it from addr)")
		return
	case err != nil:
		ps.add(key, "%q: not a URL: %v", c.PublicOrigin, err)
		return
	case u.Scheme != "http" && u.Scheme != "https":
		ps.add(key, "%q: must start with http:// or https://", c.PublicOrigin)
		return
	case u.Host == "" || u.Hostname() == "":
		ps.add(key, "%q: must name a host", c.PublicOrigin)
		return
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		ps.add(key, "%q: must be scheme://host[:port] only, without user, path, query or fragment", c.PublicOrigin)
		return
	}
	if p := u.Port(); p != "" {
		// Port 0 is allowed only in the origin derived from an addr with
		// port 0 (the kernel picks the port): the server replaces it with
		// the real one once it listens.
		derived := p == "0" && c.PublicOrigin == OriginForAddr(c.Addr)
		if n, err := strconv.Atoi(p); !derived && (err != nil || n < 1 || n > 65535) {
			ps.add(key, "%q: bad port", c.PublicOrigin)
			return
		}
	}
	if u.Scheme == "http" && !c.Dev && !isLoopbackHost(u.Hostname()) {
		ps.add(key, "%q: must use https outside development mode (browsers drop the Secure session cookie over plain http); http is accepted for localhost", c.PublicOrigin)
	}
}

// Origin returns PublicOrigin without a trailing slash: the exact string
// browsers send in the Origin header.
func (c Config) Origin() string { return strings.TrimSuffix(c.PublicOrigin, "/") }

func (c Config) checkSMTP(ps *problems) {
	switch c.SMTP.TLS {
	case "starttls", "tls", "none":
	default:
		ps.add("smtp.tls", "%q: must be starttls, tls or none", c.SMTP.TLS)
	}
	if c.SMTP.Host == "" {
		return
	}
	if c.SMTP.Port < 1 || c.SMTP.Port > 65535 {
		ps.add("smtp.port", "%d: must be 1-65535", c.SMTP.Port)
	}
	if c.SMTP.TLS == "none" && !isLoopbackHost(c.SMTP.Host) {
		ps.add("smtp.tls", "\"none\" sends the password and every message in clear; it is only allowed for a relay on localhost (host is %q)", c.SMTP.Host)
	}
	if a, err := mail.ParseAddress(c.SMTP.From); err != nil || a.Name != "" || a.Address != c.SMTP.From {
		ps.add("smtp.from", "%q: must be a bare e-mail address such as security@example.com (the brand is shown as the sender's name)", c.SMTP.From)
	}
	if c.SMTP.TLS == "none" && c.SMTP.Username != "" {
		ps.add("smtp.username", "credentials are never sent without TLS; use smtp.tls \"starttls\" or \"tls\"")
	}
}

func (c Config) checkSecurity(ps *problems) {
	s := c.Security
	for key, d := range map[string]time.Duration{
		"security.session_idle":         s.SessionIdle,
		"security.session_absolute":     s.SessionAbsolute,
		"security.session_cache_ttl":    s.SessionCacheTTL,
		"security.throttle_window":      s.ThrottleWindow,
		"security.lock_for":             s.LockFor,
		"security.confirm_link_ttl":     s.ConfirmLinkTTL,
		"security.device_code_ttl":      s.DeviceCodeTTL,
		"security.security_change_hold": s.SecurityChangeHold,
	} {
		positive(ps, key, d)
	}
	if s.SessionIdle > 0 && s.SessionAbsolute > 0 && s.SessionIdle > s.SessionAbsolute {
		ps.add("security.session_idle", "%v is longer than session_absolute %v", s.SessionIdle, s.SessionAbsolute)
	}

	if s.Argon2Threads < 1 {
		ps.add("security.argon2_threads", "must be at least 1")
	}
	if s.Argon2Time < 1 {
		ps.add("security.argon2_time", "must be at least 1")
	} else {
		min, ok := argon2Minimum[s.Argon2Time]
		if !ok {
			min = argon2MinimumLast
		}
		if s.Argon2MemoryKiB < min {
			ps.add("security.argon2_memory_kib", "%d KiB with argon2_time %d is below the OWASP minimum of %d KiB (m=19456 t=2 p=1 is the default)", s.Argon2MemoryKiB, s.Argon2Time, min)
		}
	}

	if s.ThrottleFreeAttempts < 0 {
		ps.add("security.throttle_free_attempts", "must not be negative")
	}
	if s.LockAfter <= s.ThrottleFreeAttempts {
		ps.add("security.lock_after", "%d: must be more than throttle_free_attempts (%d)", s.LockAfter, s.ThrottleFreeAttempts)
	}
	if s.IPLimit < 1 {
		ps.add("security.ip_limit", "must be at least 1")
	}
	if _, err := s.TrustedProxyPrefixes(); err != nil {
		ps.add("security.trusted_proxies", "%v", err)
	}
}

// TrustedProxyPrefixes parses TrustedProxies; a bare address means just that
// address (/32 or /128).
func (s Security) TrustedProxyPrefixes() ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(s.TrustedProxies))
	for _, v := range s.TrustedProxies {
		v = strings.TrimSpace(v)
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR (10.0.0.0/8) nor an IP address", v)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func positive(ps *problems, key string, d time.Duration) {
	if d <= 0 {
		ps.add(key, "%v: must be a positive duration such as \"30s\" or \"15m\"", d)
	}
}

// checkHostPort accepts host:port with a numeric port; an empty host
// (":8080", all interfaces) only when emptyHostOK.
func checkHostPort(addr string, emptyHostOK bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be host:port, e.g. 127.0.0.1:8080")
	}
	if host == "" && !emptyHostOK {
		return fmt.Errorf("must name a host")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q must be a number 0-65535", port)
	}
	return nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

// sortProblems orders problems by key so the message is stable (map
// iteration above is not).
func sortProblems(ps problems) {
	slices.SortStableFunc(ps, func(a, b Problem) int { return strings.Compare(a.Key, b.Key) })
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

// SlogLevel returns the slog level (Info when Level is invalid; Validate
// reports that).
func (l Log) SlogLevel() slog.Level {
	lv, err := parseLevel(l.Level)
	if err != nil {
		return slog.LevelInfo
	}
	return lv
}

// NewLogger returns a logger writing to w in the configured format and
// level.
func (l Log) NewLogger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: l.SlogLevel()}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
