package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/adhocd/adhocd/config"
)

// DB is an open PostgreSQL database whose schema is the one this build
// knows (or newer): a pool of connections for the stores built on it.
type DB struct {
	pool *pgxpool.Pool
}

// Option configures Open.
type Option func(*options)

type options struct {
	log *slog.Logger
}

// WithLogger logs through l (what Open migrated, a schema newer than this
// build); slog.Default without it. Nothing logged holds the password or
// the DSN as written.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// Open connects a pool to the database of cfg.DSN, checks that the
// database can hold what the store keeps (UTF8), and brings its schema to
// this build's version: the embedded migrations not yet applied run in
// one transaction under an advisory lock, so that replicas starting
// together migrate once (migrate.go). ctx bounds all of it.
//
// When the environment variable ADHOCD_POSTGRES_PASSWORD
// (config.PostgresPasswordEnv) is set and not empty, it is the password,
// in place of any in the DSN. cfg.MaxConns and cfg.ConnectTimeout win over
// the DSN's pool_max_conns and connect_timeout; zero takes the defaults of
// package config. An error never quotes the DSN nor the password.
func Open(ctx context.Context, cfg config.PostgresStorage, opts ...Option) (*DB, error) {
	o := options{log: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	pc, err := poolConfig(cfg, os.Getenv(config.PostgresPasswordEnv))
	if err != nil {
		return nil, err
	}
	where := fmt.Sprintf("database %q on %s:%d as %q", pc.ConnConfig.Database, pc.ConnConfig.Host, pc.ConnConfig.Port, pc.ConnConfig.User)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", where, err)
	}
	db := &DB{pool: pool}
	if err := db.init(ctx, o.log.With("database", pc.ConnConfig.Database, "host", pc.ConnConfig.Host)); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %s: %w", where, err)
	}
	return db, nil
}

// poolConfig reads the DSN and applies what config and the environment
// set over it.
func poolConfig(cfg config.PostgresStorage, password string) (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// Not pgconn's message: it quotes the DSN, with the password hidden
		// only as far as it can tell in a string that does not parse.
		return nil, errors.New("postgres: storage.postgres.dsn does not parse as a libpq URL or keyword=value string (or one of its parameters has a bad value)")
	}
	if password != "" {
		pc.ConnConfig.Password = password // fallback hosts share it
	}
	maxConns := cfg.MaxConns
	if maxConns <= 0 {
		maxConns = config.DefaultPostgresMaxConns
	}
	pc.MaxConns = int32(min(maxConns, math.MaxInt32))
	pc.MinConns = min(pc.MinConns, pc.MaxConns)
	timeout := cfg.ConnectTimeout.D()
	if timeout <= 0 {
		timeout = config.DefaultPostgresConnectTimeout
	}
	pc.ConnConfig.ConnectTimeout = timeout
	if _, ok := pc.ConnConfig.RuntimeParams["application_name"]; !ok {
		pc.ConnConfig.RuntimeParams["application_name"] = "adhocd"
	}
	return pc, nil
}

// init checks the database and migrates its schema.
func (db *DB) init(ctx context.Context, log *slog.Logger) error {
	var enc string
	if err := db.pool.QueryRow(ctx, "SHOW server_encoding").Scan(&enc); err != nil {
		return err
	}
	if enc != "UTF8" {
		return fmt.Errorf("the database's encoding is %s, the store needs UTF8 (CREATE DATABASE … ENCODING 'UTF8')", enc)
	}
	return migrate(ctx, db.pool, log)
}

// Pool returns the connection pool, for the stores built on the database.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// SchemaVersion returns the newest migration applied to the database
// (Migrations' last version, or a later one when a newer build migrated).
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := db.pool.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres: schema version: %w", err)
	}
	return v, nil
}

// Close closes the pool's connections; it waits for those in use to be
// given back.
func (db *DB) Close() { db.pool.Close() }
