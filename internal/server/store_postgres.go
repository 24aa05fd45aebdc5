package server

import (
	"context"

	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/postgres"
)

// openPostgres opens and migrates PostgreSQL.
func openPostgres(ctx context.Context, cfg config.Config) (store.Store, []string, error) {
	st, err := postgres.Open(ctx, cfg.Database.DSN)
	if err != nil {
		return nil, nil, err
	}
	applied, err := st.Migrate(ctx)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, applied, nil
}
