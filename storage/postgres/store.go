package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/adhocd/adhocd/storage"
)

// Store is storage.Store on PostgreSQL: every method one statement or one
// transaction over the DB's pool, so that any number of replicas share the
// data and see each other's writes at once (nothing is cached).
//
// How each method keeps the interface's atomicity where bbolt has one
// writer at a time:
//
//   - UpdateAccount reads the account's row FOR UPDATE, so that fn runs
//     once, on the row as it is, and no other change comes between.
//   - UpdateRosterItem locks the roster's row of roster_versions (made at
//     the first change), which serialises the changes of one roster: each
//     gets a version of its own.
//   - UpdateUserData takes a transaction-level advisory lock named after
//     the account and the bucket (the entries it reads may not exist yet,
//     so there is no row to lock), and locks the account's row against its
//     deletion (FOR KEY SHARE).
//   - StoreOffline locks the account's usage row, then the store's total
//     (the triggers of 0001_init.sql update both), to check the quota and
//     insert at once.
//
// Deadlocks and serialisation failures, which PostgreSQL may still report
// when transactions meet in another order (DeleteAccount and roster
// changes), are retried a few times.
//
// Times are kept to the microsecond (timestamptz); archive ids keep their
// nanoseconds.
type Store struct {
	db      *DB
	clock   storage.ArchiveClock               // the archives' ids (archive.go)
	archive storage.BatchQueue[pendingArchive] // the accounts' batches (archive.go)
	// roomArchive queues the rooms' archived messages (rooms.go).
	roomArchive storage.BatchQueue[pendingArchive]
}

// Interface guards.
var (
	_ storage.Store                = (*Store)(nil)
	_ storage.Exporter             = (*Store)(nil)
	_ storage.Importer             = (*Store)(nil)
	_ storage.OfflineUsageReporter = (*Store)(nil)
	_ storage.ArchiveUsageReporter = (*Store)(nil)
)

// NewStore returns the store on db, which it owns: Close closes db.
func NewStore(db *DB) *Store {
	s := &Store{db: db}
	s.archive.Start(archiveDelay, archiveQueueMax, "postgres archive", func(ctx context.Context, b []pendingArchive) error {
		return s.writeBatch(ctx, accountArchives, b)
	})
	s.roomArchive.Start(archiveDelay, archiveQueueMax, "postgres room archive", func(ctx context.Context, b []pendingArchive) error {
		return s.writeBatch(ctx, roomArchives, b)
	})
	return s
}

// DB returns the database the store is on.
func (s *Store) DB() *DB { return s.db }

// Close implements storage.Store: it writes the archive's queued messages
// and closes the pool, waiting for the connections in use.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), statementTimeout)
	defer cancel()
	err := errors.Join(s.archive.Close(ctx), s.roomArchive.Close(ctx))
	s.db.Close()
	return wrap(err, "close")
}

// statementTimeout bounds the methods of storage.Store that take no
// context (RecordLogin, RecordLogout, OfflineUsage).
const statementTimeout = 5 * time.Second

// retries is how many times a transaction that PostgreSQL aborted for a
// deadlock or a serialisation failure runs again.
const retries = 4

// tx runs fn in a transaction of opts and commits it; an error from fn
// rolls it back and is returned as it is. A transaction aborted for a
// deadlock or a serialisation failure runs again, fn with it.
func (s *Store) tx(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	var err error
	for range retries {
		err = pgx.BeginTxFunc(ctx, s.db.pool, opts, fn)
		if !retryable(err) {
			return err
		}
	}
	return err
}

// write runs fn in a read-write transaction (read committed).
func (s *Store) write(ctx context.Context, fn func(pgx.Tx) error) error {
	return s.tx(ctx, pgx.TxOptions{}, fn)
}

// snapshot runs fn in a read-only transaction that sees one snapshot of
// the database.
func (s *Store) snapshot(ctx context.Context, fn func(pgx.Tx) error) error {
	return s.tx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

// SQLSTATE codes the store acts on.
const (
	codeUniqueViolation      = "23505"
	codeForeignKeyViolation  = "23503"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
)

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func retryable(err error) bool {
	c := pgCode(err)
	return c == codeSerializationFailure || c == codeDeadlockDetected
}

// missingAccount turns the foreign-key violation of a row written for an
// account that does not exist (or was deleted meanwhile) into
// storage.ErrNotFound.
func missingAccount(err error) error {
	if pgCode(err) == codeForeignKeyViolation {
		return storage.ErrNotFound
	}
	return err
}

// wrap prefixes err with what failed, as the bbolt store words it; nil
// stays nil.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("storage: "+format+": %w", append(args, err)...)
}

// nullTime is t for a timestamptz column, NULL for Go's zero time.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// fromNull is the time a nullable column held, UTC; zero for NULL.
func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}
