// Package backend opens the store that storage.backend names: the bbolt
// file under storage.path (package storage), or the PostgreSQL database of
// storage.postgres (package storage/postgres). It is the one place that
// knows both, so that the server, `adhocd user` and `adhocd migrate` open
// a store the same way, and package storage links no database driver.
package backend

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/storage/postgres"
)

// Options tune Open.
type Options struct {
	// Wait bounds how long Open waits for a bbolt file another process
	// holds (then storage.ErrLocked); 5 s when zero.
	Wait time.Duration
	// Log receives what the PostgreSQL backend logs (its migrations);
	// slog.Default when nil.
	Log *slog.Logger
}

// Open opens the store of cfg.Storage, with the bounds of cfg.Limits that
// the store enforces itself (the free-disk floor of the bbolt file). ctx
// bounds connecting to PostgreSQL and migrating its schema.
func Open(ctx context.Context, cfg config.Config, o Options) (storage.Store, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Wait <= 0 {
		o.Wait = 5 * time.Second
	}
	switch b := cfg.Storage.Backend; b {
	case config.BackendPostgres:
		db, err := postgres.Open(ctx, cfg.Storage.Postgres, postgres.WithLogger(o.Log))
		if err != nil {
			return nil, err
		}
		return postgres.NewStore(db), nil
	case config.BackendBolt, "":
		return storage.Open(cfg.Storage.Path, o.Wait, storage.WithLoginTimeDelay(cfg.Storage.LoginTimeDelay.D()),
			storage.WithMinFreeDisk(cfg.Limits.MinFreeDiskBytes))
	default:
		return nil, fmt.Errorf("storage.backend %q: unknown backend", b)
	}
}
