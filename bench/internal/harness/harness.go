// Package harness starts moat in-process for the benchmarks: the real
// server.New wiring on a temporary data directory with SQLite, listening on
// 127.0.0.1 with a kernel-chosen port.
package harness

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/server"
)

// Moat is a running in-process moat.
type Moat struct {
	URL    string
	Server *server.Server
	dir    string
	cancel context.CancelFunc
	done   chan error
}

// Start builds and serves moat. mutate adjusts the benchmark's config
// (the defaults are the embedded default with warn-level logs).
func Start(mutate func(*config.Config)) (*Moat, error) {
	dir, err := os.MkdirTemp("", "moat-bench-")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Addr = ln.Addr().String()
	cfg.Log.Level = "warn"
	if mutate != nil {
		mutate(&cfg)
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		ln.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	logger := cfg.Log.NewLogger(os.Stderr).With(slog.String("in", "moat"))
	srv, err := server.New(context.Background(), cfg, logger)
	if err != nil {
		ln.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("server.New: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Moat{URL: "http://" + cfg.Addr, Server: srv, dir: dir, cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- srv.Serve(ctx, ln) }()
	return m, nil
}

// Close stops the server and removes its data directory.
func (m *Moat) Close() error {
	m.cancel()
	err := <-m.done
	m.Server.Close()
	os.RemoveAll(m.dir)
	return err
}
