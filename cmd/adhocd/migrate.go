package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/storage/postgres"
)

const migrateUsage = "bolt-to-postgres [--from DIR] [--dsn DSN] [--config FILE]"

// migrateCmd copies a single node's bbolt store into a PostgreSQL
// database (storage.Transfer): accounts with their SCRAM keys (the old
// passwords log in), rosters with their versions, offline messages, what
// modules keep, settings and the archive with its ids. The bbolt folder is
// --from or storage.path, the database --dsn or storage.postgres.dsn (the
// password also from ADHOCD_POSTGRES_PASSWORD); the configuration file is
// read when it exists. The server of that folder must be stopped. Run
// again after an interruption, it completes what is missing.
func migrateCmd(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("migrate", migrateUsage, stderr)
	from := fs.String("from", "", "the bbolt store's folder (default: storage.path of the configuration)")
	dsn := fs.String("dsn", "", "the PostgreSQL database (default: storage.postgres.dsn of the configuration)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 || rest[0] != "bolt-to-postgres" {
		return usagef("usage: adhocd migrate %s", migrateUsage)
	}
	cfg := config.Default()
	if _, err := os.Stat(*cfgPath); err == nil {
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	} else if fs.Lookup("config").Value.String() != fs.Lookup("config").DefValue {
		return fmt.Errorf("--config %s: %w", *cfgPath, err)
	}
	if *from != "" {
		cfg.Storage.Path = *from
	}
	if *dsn != "" {
		cfg.Storage.Postgres.DSN = *dsn
	}
	if cfg.Storage.Postgres.DSN == "" {
		return usagef("no database: give --dsn, or storage.postgres.dsn in the configuration")
	}
	if _, err := os.Stat(cfg.Storage.Path); err != nil {
		return fmt.Errorf("the bbolt store %s: %w", cfg.Storage.Path, err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	src, err := storage.Open(cfg.Storage.Path, time.Second)
	if errors.Is(err, storage.ErrLocked) {
		return fmt.Errorf("%w: stop the server that uses it first", err)
	}
	if err != nil {
		return err
	}
	defer src.Close()
	db, err := postgres.Open(ctx, cfg.Storage.Postgres)
	if err != nil {
		return err
	}
	dst := postgres.NewStore(db)
	defer dst.Close()

	fmt.Fprintf(stdout, "copying %s into %s\n", cfg.Storage.Path, cfg.Storage.Postgres.RedactedDSN())
	last := time.Now()
	r, err := storage.Transfer(ctx, src, dst, func(r storage.TransferReport) {
		if time.Since(last) >= 2*time.Second {
			last = time.Now()
			fmt.Fprintf(stdout, "… %d accounts so far\n", r.Accounts+r.Existing)
		}
	})
	fmt.Fprintf(stdout, "settings: %d\naccounts: %d copied, %d there already\nroster items: %d\noffline messages: %d\nuser data entries: %d\narchived messages: %d\n",
		r.Settings, r.Accounts, r.Existing, r.RosterItems, r.Offline, r.UserData, r.Archived)
	if err != nil {
		return fmt.Errorf("migrate: %w (run it again to complete what is missing)", err)
	}
	fmt.Fprintln(stdout, "done: set storage.backend: postgres and storage.postgres.dsn, then start the server")
	return nil
}
