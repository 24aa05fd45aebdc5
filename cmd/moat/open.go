package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/server"
)

// open builds moat for an operator command. Warnings go to stderr; routine
// logs are suppressed. An SQLite database that does not exist yet is an
// error rather than silently created, since it usually means a wrong
// --data-dir.
func (c *cli) open(name string, cfg config.Config) (*server.Server, error) {
	if cfg.Database.Driver == "sqlite" {
		if _, err := os.Stat(cfg.Database.DSN); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no database at %s: check --data-dir (or MOAT_DATA_DIR), or create it with \"moat migrate\"", cfg.Database.DSN)
		}
	}
	lc := cfg.Log
	if lc.SlogLevel() < slog.LevelWarn {
		lc.Level = "warn"
	}
	return server.New(c.ctx, cfg, lc.NewLogger(c.stderr))
}

// openFor loads cmd's configuration and opens the server for an operator
// command, reporting any failure; ok is false when the command should stop
// with code.
func (c *cli) openFor(name string, cmd *command) (srv *server.Server, code int, ok bool) {
	cfg, code, ok := c.load(cmd)
	if !ok {
		return nil, code, false
	}
	srv, err := c.open(name, cfg)
	if err != nil {
		return nil, c.fail(name, err), false
	}
	return srv, exitOK, true
}
