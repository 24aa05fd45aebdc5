package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/sqlite"
)

// OpenStore opens the configured store and brings its schema up to date.
// For SQLite it creates the data directory (mode 0700: it holds the
// database and the key file) when needed.
func OpenStore(ctx context.Context, cfg config.Config, logger *slog.Logger) (store.Store, error) {
	st, applied, err := openAndMigrate(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if len(applied) > 0 && logger != nil {
		logger.Info("database migrated", "driver", cfg.Database.Driver, "applied", applied)
	}
	return st, nil
}

// Migrate opens the store, applies the migrations it lacks, closes it, and
// returns the versions it applied.
func Migrate(ctx context.Context, cfg config.Config) ([]string, error) {
	st, applied, err := openAndMigrate(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return applied, st.Close()
}

func openAndMigrate(ctx context.Context, cfg config.Config) (store.Store, []string, error) {
	switch cfg.Database.Driver {
	case "sqlite":
		if dir := filepath.Dir(cfg.Database.DSN); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, nil, fmt.Errorf("data directory: %w", err)
			}
		}
		st, err := sqlite.Open(ctx, cfg.Database.DSN)
		if err != nil {
			return nil, nil, err
		}
		applied, err := st.Migrate(ctx)
		if err != nil {
			st.Close()
			return nil, nil, err
		}
		return st, applied, nil
	case "postgres":
		return openPostgres(ctx, cfg)
	}
	return nil, nil, fmt.Errorf("unknown database driver %q", cfg.Database.Driver)
}
