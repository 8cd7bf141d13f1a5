package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The schema's migrations are the files migrations/NNNN_name.sql, numbered
// from 0001 without gaps and applied in that order. A file is never changed
// once released: a change of the schema is a new file. What one migration
// does must suit the build before it too, which goes on running beside the
// new one during a rolling update (add a column with a default, not rename
// one; drop what the old build used one release later).
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one step of the schema.
type Migration struct {
	// Version is the file's number; Name the rest of its name.
	Version int
	Name    string
	sql     string
}

var loadMigrations = sync.OnceValues(func() ([]Migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || len(num) != 4 || name == "" {
			return nil, fmt.Errorf("migration %s: want NNNN_name.sql", n)
		}
		b, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: name, sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %04d_%s: want version %d (numbered from 1 without gaps)", m.Version, m.Name, i+1)
		}
	}
	return ms, nil
})

// Migrations returns the migrations this build applies, in order.
func Migrations() []Migration {
	ms, err := loadMigrations()
	if err != nil {
		panic("postgres: " + err.Error()) // the embedded files are wrong: TestMigrationFiles fails
	}
	return slices.Clone(ms)
}

// migrateLock is the key of the transaction-level advisory lock that
// serialises migrations: "adhocd" and 1, in the 64-bit key space that
// every database has of its own.
const migrateLock int64 = 0x6164686f63640001

// migrate applies, in one transaction holding migrateLock, the migrations
// that schema_migrations does not list. A replica that starts while another
// migrates waits for the lock, then finds them applied. A database that
// lists migrations newer than this build's is used as it is (an older
// build during a rolling update, or a roll-back), and logged.
func migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLock); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	// Under the lock: two CREATE TABLE IF NOT EXISTS at once can still
	// collide on the catalog.
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	rows, err := tx.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var ran []int
	for _, m := range ms {
		if slices.Contains(applied, m.Version) {
			continue
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return fmt.Errorf("migrate: %04d_%s: %w", m.Version, m.Name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
			return fmt.Errorf("migrate: %04d_%s: %w", m.Version, m.Name, err)
		}
		ran = append(ran, m.Version)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	latest := ms[len(ms)-1].Version
	if len(ran) > 0 {
		log.Info("postgres: schema migrated", "applied", ran, "version", latest)
	}
	if newest := slices.Max(append(applied, latest)); newest > latest {
		log.Warn("postgres: the schema is newer than this build; using it as it is", "schema_version", newest, "build_version", latest)
	}
	return nil
}
