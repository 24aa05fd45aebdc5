// Package server builds moat from a Config — store, keys, services,
// adapters, routes — by hand, in one place, top to bottom, and runs the HTTP
// server and the background workers.
//
// Nothing else in moat constructs services: cmd/moat, the benchmarks and
// end-to-end tests all go through New, so what they exercise is what
// production runs.
package server

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/admin"
	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/audit"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/httpx"
	"github.com/moat-dev/moat/internal/notify"
	"github.com/moat-dev/moat/internal/password"
	"github.com/moat-dev/moat/internal/ratelimit"
	"github.com/moat-dev/moat/internal/recovery"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/web"
)

// Option changes how New builds the server; tests use them.
type Option func(*options)

type options struct {
	clock  clock.Clock
	rand   io.Reader
	sender notify.Sender
}

// WithClock replaces the system clock (tests move a clock.Fake).
func WithClock(c clock.Clock) Option { return func(o *options) { o.clock = c } }

// WithRand replaces crypto/rand.Reader as the source of every token, id,
// salt and key.
func WithRand(r io.Reader) Option { return func(o *options) { o.rand = r } }

// WithEmailSender replaces the e-mail sender the config would choose (SMTP
// or the dev mailbox's no-op).
func WithEmailSender(s notify.Sender) Option { return func(o *options) { o.sender = s } }

// Server is a built moat: every service wired, routes mounted.
type Server struct {
	cfg      config.Config
	log      *slog.Logger
	clock    clock.Clock
	rand     io.Reader
	store    store.Store
	redis    *redis.Client // nil without Redis
	accounts *account.Service
	mfa      *builtMFA
	keys     *apiKeys // API keys and the signed API (apikeys.go)
	recovery *recovery.Service
	worker   *notify.Worker
	bg       *background  // work kept off the request path
	box      *secrets.Box // seals outbox bodies (and other secrets) at rest
	registry *prometheus.Registry
	handler  http.Handler

	closeOnce sync.Once
	closeErr  error
}

// outboxInterval is how often the outbox worker looks for due messages
// when nothing kicked it.
const outboxInterval = 2 * time.Second

// outboxRetention is how long a delivered (or given up) e-mail stays in
// the outbox: long enough for an operator to trace a delivery complaint,
// no longer, since each body held a link or code (sealed, but a leaked
// master key would open them).
const outboxRetention = 30 * 24 * time.Hour

// codeKeyInfo labels the HMAC key for e-mailed codes derived from the
// master key, so it is independent of every other use of that key.
const codeKeyInfo = "moat code key"

// New builds moat from cfg (which must have passed config.Load or Validate):
// it opens and migrates the store and wires every service and route. It
// starts no goroutine; Run does. Close releases what New opened.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger, opts ...Option) (_ *Server, err error) {
	o := options{clock: clock.System{}, rand: rand.Reader}
	for _, opt := range opts {
		opt(&o)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: logger, clock: o.clock, rand: o.rand}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	// Store: an embedded SQLite file, or PostgreSQL shared by every node.
	s.store, err = OpenStore(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}

	// Keys: the master key encrypts secrets at rest (API secrets, TOTP
	// seeds); a key derived from it hashes the short e-mailed codes.
	masterKey, err := loadMasterKey(cfg, o.rand)
	if err != nil {
		return nil, err
	}
	box, err := secrets.NewBox(masterKey, o.rand)
	if err != nil {
		return nil, err
	}
	s.box = box
	codeKey, err := hkdf.Key(sha256.New, masterKey, nil, codeKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive code key: %w", err)
	}

	// Passwords.
	hasher, err := password.NewHasher(password.Params{
		MemoryKiB: cfg.Security.Argon2MemoryKiB,
		Time:      cfg.Security.Argon2Time,
		Threads:   cfg.Security.Argon2Threads,
		SaltLen:   password.DefaultParams().SaltLen,
		KeyLen:    password.DefaultParams().KeyLen,
	}, o.rand)
	if err != nil {
		return nil, err
	}
	policy := password.DefaultPolicy(cfg.Brand)

	// E-mail: rendered into the outbox inside each transaction, delivered
	// by the worker (SMTP, or nowhere in dev mode: the dev mailbox reads the
	// outbox).
	mailer, err := notify.NewMailer(notify.MailerConfig{
		Brand: cfg.Brand, PublicOrigin: cfg.Origin(), From: cfg.SMTP.From,
		// Bodies are sealed at rest: each carries a live link or code.
		Box: box,
	}, o.clock, o.rand)
	if err != nil {
		return nil, err
	}
	sender := o.sender
	if sender == nil {
		sender, err = emailSender(cfg, o.clock)
		if err != nil {
			return nil, err
		}
	}
	s.worker = notify.NewWorker(s.store, map[string]notify.Sender{notify.ChannelEmail: sender},
		o.clock, logger.With("component", "outbox"), notify.WorkerOptions{Box: box})

	// Audit log and counters (Redis when configured, so every node sees the
	// same throttling counts).
	auditLog := audit.New(o.clock)
	var counter ratelimit.Counter = ratelimit.NewMemory(o.clock)
	if cfg.Redis.Addr != "" {
		s.redis = redis.NewClient(&redis.Options{Addr: cfg.Redis.Addr, Password: cfg.Redis.Password, DB: cfg.Redis.DB})
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := s.redis.Ping(pingCtx).Err(); err != nil {
			return nil, fmt.Errorf("redis %s: %w", cfg.Redis.Addr, err)
		}
		counter = ratelimit.NewRedis(s.redis, o.clock, cfg.Redis.KeyPrefix+"rl:")
	}

	// Services. Two-factor authentication first: the account service's
	// sign-in and step-up ask it.
	s.mfa, err = buildMFA(mfaDeps{cfg: cfg, store: s.store, clock: o.clock, rand: o.rand, box: box,
		masterKey: masterKey, counter: counter, audit: auditLog, mailer: mailer, logger: logger.With("component", "mfa")})
	if err != nil {
		return nil, err
	}
	accountDeps := account.Deps{
		Store:   s.store,
		Clock:   o.clock,
		Rand:    o.rand,
		Hasher:  hasher,
		Policy:  policy,
		Mailer:  mailer,
		Audit:   auditLog,
		Counter: counter,
		Config:  account.ConfigFrom(cfg),
		CodeKey: codeKey,
		Logger:  logger.With("component", "account"),
	}
	s.bg = newBackground(logger.With("component", "background"))
	accountDeps.Background = s.bg.Run
	s.mfa.accountHooks(&accountDeps)
	// Enrolment asks mfa's policy and, once it exists, recovery's
	// (recovery.go explains the order).
	enrolment := &enrolmentPolicies{}
	enrolment.add(accountDeps.Enrolment)
	accountDeps.Enrolment = enrolment
	s.accounts = account.New(accountDeps)
	s.mfa.register(s.accounts)
	// Recovery of a lost second factor: cases, four-eyes review, the
	// waiting period. New registers it with the account service, so that
	// signing in with the old factor cancels a pending case.
	s.recovery = recovery.New(recovery.Deps{
		Store:    s.store,
		Clock:    o.clock,
		Rand:     o.rand,
		Box:      box,
		Mailer:   mailer,
		Audit:    auditLog,
		Counter:  counter,
		Accounts: s.accounts,
		Config:   recoveryConfig(cfg),
		Logger:   logger.With("component", "recovery"),
	})
	enrolment.add(s.recovery)
	s.keys, err = buildAPIKeys(apiKeyDeps{cfg: cfg, store: s.store, clock: o.clock, rand: o.rand, box: box,
		masterKey: masterKey, audit: auditLog, mailer: mailer, accounts: s.accounts, hasher: hasher,
		counter: counter, redis: s.redis, mfa: s.mfa.svc, logger: logger})
	if err != nil {
		return nil, err
	}

	// Adapters and routes.
	trusted, err := cfg.Security.TrustedProxyPrefixes()
	if err != nil {
		return nil, err
	}
	secure := isHTTPS(cfg.PublicOrigin)
	pageFlashKey, err := flashKey(masterKey)
	if err != nil {
		return nil, err
	}
	pages, err := web.New(web.Deps{
		Accounts:       s.accounts,
		Brand:          cfg.Brand,
		Secure:         secure,
		TrustedProxies: trusted,
		Logger:         logger.With("component", "web"),
		Dev:            cfg.Dev,
		MFA:            s.mfa.svc,
		FlashKey:       pageFlashKey,
		PublicOrigin:   cfg.Origin(),
		APIKeys:        s.keys.svc,
		KeyStepUp:      s.keys.stepUp,
		Recovery:       s.recovery,
	})
	if err != nil {
		return nil, err
	}
	jsonAPI := api.New(api.Deps{
		Accounts:       s.accounts,
		MFA:            s.mfa.svc,
		APIKeys:        s.keys.svc,
		KeyStepUp:      s.keys.stepUp,
		Recovery:       s.recovery,
		TrustedProxies: trusted,
		Logger:         logger.With("component", "api"),
	})
	// The support console: staff signed in with a security key.
	console, err := admin.New(admin.Deps{
		Accounts:       s.accounts,
		Recovery:       s.recovery,
		Brand:          cfg.Brand,
		Secure:         secure,
		TrustedProxies: trusted,
		Logger:         logger.With("component", "admin"),
		Clock:          o.clock,
		AssetURL:       pages.AssetURL,
	})
	if err != nil {
		return nil, err
	}

	s.registry = prometheus.NewRegistry()
	s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := httpx.NewMetrics(s.registry)
	if err != nil {
		return nil, err
	}
	s.registry.MustRegister(s.keys.calls)

	mux := http.NewServeMux()
	pages.Register(mux)
	console.Register(mux)
	// The JSON API gets its own mux behind RequireJSON: an HTML form cannot
	// send application/json, so no cross-site form can reach it.
	apiMux := http.NewServeMux()
	jsonAPI.Register(apiMux)
	mux.Handle("/api/", httpx.RequireJSON(apiMux))
	mux.Handle("/auth/verify", forwardAuth(s.accounts, trusted, web.SessionCookieName(secure)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry}))
	if cfg.Dev {
		mux.Handle("GET /dev/mailbox", devMailbox(s.Mail, cfg.Brand, s.mfa.devSMSMessages))
	}

	h, err := httpx.Stack(kickOutbox(mux, s.worker), httpx.Options{
		Logger:       logger,
		Metrics:      metrics,
		Rand:         o.rand,
		PublicOrigin: cfg.Origin(),
		MaxBodyBytes: cfg.HTTP.MaxBodyBytes,
		// Recovery cases carry an identity document of up to 10 MB.
		BodyLimits: map[string]int64{
			web.PathRecoveryNew:   web.MaxRecoveryFormBytes,
			api.PathRecoveryCases: api.MaxRecoveryCaseBytes,
		},
	})
	if err != nil {
		return nil, err
	}
	// The signed API (/0/private/) bypasses the browser middleware.
	s.handler = withSignedAPI(h, s.keys.handler(logger, metrics, o.rand, secure))
	return s, nil
}

// loadMasterKey returns the configured key, or the one in
// <data_dir>/encryption.key (created on first run).
func loadMasterKey(cfg config.Config, r io.Reader) ([]byte, error) {
	if cfg.Secrets.EncryptionKey != "" {
		k, err := secrets.ParseKey(cfg.Secrets.EncryptionKey)
		if err != nil {
			return nil, fmt.Errorf("secrets.encryption_key: %w", err)
		}
		return k, nil
	}
	path := filepath.Join(cfg.DataDir, "encryption.key")
	k, err := secrets.LoadOrCreateKeyFile(path, r)
	if err != nil {
		return nil, fmt.Errorf("encryption key file %s: %w", path, err)
	}
	return k, nil
}

// emailSender picks SMTP when a host is configured, otherwise the dev
// sender (messages stay in the outbox for the dev mailbox).
func emailSender(cfg config.Config, clk clock.Clock) (notify.Sender, error) {
	if cfg.SMTP.Host == "" {
		return notify.DevSender{}, nil
	}
	return notify.NewSMTPSender(notify.SMTPConfig{
		Host:     cfg.SMTP.Host,
		Port:     cfg.SMTP.Port,
		Username: cfg.SMTP.Username,
		Password: cfg.SMTP.Password,
		From:     cfg.SMTP.From,
		Brand:    cfg.Brand,
		TLS:      cfg.SMTP.TLS,
	}, clk)
}

// kickOutbox wakes the outbox worker after every state-changing request:
// any of them may have committed an e-mail, and the user is waiting for
// it. Kick never blocks, so this costs a channel send per POST.
func kickOutbox(next http.Handler, w *notify.Worker) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(rw, r)
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			w.Kick()
		}
	})
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.store.Ping(ctx); err != nil {
		httpx.Logger(r).Warn("readyz: store not ready", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("store unavailable\n"))
		return
	}
	if s.redis != nil {
		if err := s.redis.Ping(ctx).Err(); err != nil {
			httpx.Logger(r).Warn("readyz: redis not ready", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("redis unavailable\n"))
			return
		}
	}
	w.Write([]byte("ok\n"))
}

// Handler is every route behind the middleware stack.
func (s *Server) Handler() http.Handler { return s.handler }

// Accounts is the account service (the CLI and benchmarks call it).
func (s *Server) Accounts() *account.Service { return s.accounts }

// Store is the open store.
func (s *Server) Store() store.Store { return s.store }

// Mail returns the newest e-mails of the outbox (at most limit), newest
// first, with their bodies opened: what the development mailbox shows, and
// how tests read the links moat sends. A body that cannot be opened is
// shown as such, not returned as ciphertext.
func (s *Server) Mail(ctx context.Context, limit int) ([]store.OutboxMessage, error) {
	msgs, err := s.store.ListOutbox(ctx, notify.ChannelEmail, limit)
	if err != nil {
		return nil, err
	}
	for i, m := range msgs {
		if msgs[i], err = notify.OpenBody(s.box, m); err != nil {
			msgs[i].Body = "(this message cannot be opened with the current encryption key)"
		}
	}
	return msgs, nil
}

// Registry is the Prometheus registry /metrics serves.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// Run serves on cfg.Addr until ctx is cancelled, then shuts down
// gracefully. See Serve.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// shutdownGrace bounds how long in-flight requests may take to finish
// after ctx is cancelled.
const shutdownGrace = 10 * time.Second

// Serve serves on ln (which it closes) with the timeouts of cfg.HTTP, runs
// the outbox worker, the pending sign-in sweeper and the recovery timers,
// and returns nil after
// ctx is cancelled and in-flight requests finished (at most shutdownGrace),
// or the error that stopped the server.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.HTTP.ReadTimeout,
		WriteTimeout:      s.cfg.HTTP.WriteTimeout,
		IdleTimeout:       s.cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}

	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { s.worker.Run(bg, outboxInterval) })
	wg.Go(func() { s.sweep(bg) })
	wg.Go(func() { s.runRecovery(bg) })
	defer func() {
		stopBG()
		wg.Wait()
	}()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// sweepInterval is how often expired pending sign-ins are deleted.
const sweepInterval = 10 * time.Minute

func (s *Server) sweep(ctx context.Context) {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.accounts.PurgeExpired(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("purge expired sign-ins", "err", err)
			} else if n > 0 {
				s.log.Debug("purged expired sign-ins", "count", n)
			}
			if n, err := s.mfa.svc.DeleteExpiredCeremonies(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("delete expired WebAuthn ceremonies", "err", err)
			} else if n > 0 {
				s.log.Debug("deleted expired WebAuthn ceremonies", "count", n)
			}
			if n, err := s.store.DeleteOutboxBefore(ctx, s.clock.Now().Add(-outboxRetention)); err != nil && ctx.Err() == nil {
				s.log.Error("delete old outbox messages", "err", err)
			} else if n > 0 {
				s.log.Debug("deleted old outbox messages", "count", n)
			}
		}
	}
}

// Close releases the store and the Redis client. It is safe to call more
// than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.bg != nil {
			s.bg.Close() // its tasks use the store
		}
		var errs []error
		if s.redis != nil {
			errs = append(errs, s.redis.Close())
		}
		if s.store != nil {
			errs = append(errs, s.store.Close())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

func isHTTPS(origin string) bool {
	return len(origin) > 8 && origin[:8] == "https://"
}
