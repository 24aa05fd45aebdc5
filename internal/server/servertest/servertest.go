// Package servertest runs the whole moat server for end-to-end tests: a
// development-mode configuration on a temporary data directory, served on
// a loopback port, with an injected clock.
package servertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/server"
)

// Start serves the full server with clk (nil: the system clock) and
// returns its base URL and the server. The base URL is at localhost, not
// 127.0.0.1: WebAuthn needs a secure context, and http://localhost is one.
// The password hash costs the minimum OWASP allows (these tests sign in
// often); mutate changes anything else before the configuration is
// validated. The server stops when the test ends.
func Start(t testing.TB, clk clock.Clock, mutate ...func(*config.Config)) (string, *server.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port)
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Dev = true
	cfg.Addr = ln.Addr().String()
	cfg.PublicOrigin = base
	cfg.Security.Argon2MemoryKiB, cfg.Security.Argon2Time = 7168, 5
	for _, m := range mutate {
		m(&cfg)
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		ln.Close()
		t.Fatal(err)
	}
	var opts []server.Option
	if clk != nil {
		opts = append(opts, server.WithClock(clk))
	}
	ctx, stop := context.WithCancel(context.Background())
	s, err := server.New(ctx, cfg, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		stop()
		ln.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
		s.Close()
	})
	return base, s
}
