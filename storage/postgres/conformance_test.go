package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/storage/postgres"
	"github.com/adhocd/adhocd/storage/postgres/pgtest"
	"github.com/adhocd/adhocd/storage/storagetest"
)

// TestConformance runs the storage conformance suite on the PostgreSQL
// store, each case on a new database.
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := postgres.Open(ctx, config.PostgresStorage{DSN: pgtest.Start(t)})
		if err != nil {
			t.Fatal(err)
		}
		s := postgres.NewStore(db)
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
