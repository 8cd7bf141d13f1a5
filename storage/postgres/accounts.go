package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/adhocd/adhocd/storage"
)

// accountColumns are the columns of accounts in the order scanAccount
// reads them and accountArgs writes them.
const accountColumns = `username,
	sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key,
	sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key,
	created, disabled, last_login, last_logout, motd_seen, welcome_pending`

// accountValues are the placeholders of accountColumns.
const accountValues = `$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15`

func accountArgs(a storage.Account) []any {
	return []any{a.Username,
		nonNil(a.SHA1.Salt), a.SHA1.Iterations, nonNil(a.SHA1.StoredKey), nonNil(a.SHA1.ServerKey),
		nonNil(a.SHA256.Salt), a.SHA256.Iterations, nonNil(a.SHA256.StoredKey), nonNil(a.SHA256.ServerKey),
		a.Created, a.Disabled, nullTime(a.LastLogin), nullTime(a.LastLogout), a.MOTDSeen, a.WelcomePending}
}

// nonNil is b, or an empty slice for nil: the key columns are NOT NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func scanAccount(row pgx.Row) (storage.Account, error) {
	var a storage.Account
	var login, logout *time.Time
	err := row.Scan(&a.Username,
		&a.SHA1.Salt, &a.SHA1.Iterations, &a.SHA1.StoredKey, &a.SHA1.ServerKey,
		&a.SHA256.Salt, &a.SHA256.Iterations, &a.SHA256.StoredKey, &a.SHA256.ServerKey,
		&a.Created, &a.Disabled, &login, &logout, &a.MOTDSeen, &a.WelcomePending)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, storage.ErrNotFound
	}
	a.Created = a.Created.UTC()
	a.LastLogin, a.LastLogout = fromNull(login), fromNull(logout)
	return a, err
}

// CreateAccount implements storage.Store.
func (s *Store) CreateAccount(ctx context.Context, a storage.Account) error {
	if a.Username == "" {
		return errors.New("storage: create account: empty username")
	}
	// Archived messages still queued for an account of that name that no
	// longer exists are written (and skipped) now, not kept for the new
	// one.
	if err := s.writeArchive(ctx); err != nil {
		return wrap(err, "create account %q", a.Username)
	}
	_, err := s.db.pool.Exec(ctx, `INSERT INTO accounts (`+accountColumns+`) VALUES (`+accountValues+`)`, accountArgs(a)...)
	if pgCode(err) == codeUniqueViolation {
		err = storage.ErrExists
	}
	return wrap(err, "create account %q", a.Username)
}

// Account implements storage.Store.
func (s *Store) Account(ctx context.Context, username string) (storage.Account, error) {
	a, err := scanAccount(s.db.pool.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE username = $1`, username))
	if err != nil {
		return storage.Account{}, wrap(err, "account %q", username)
	}
	return a, nil
}

// UpdateAccount implements storage.Store, on the row read FOR UPDATE.
func (s *Store) UpdateAccount(ctx context.Context, username string, fn func(*storage.Account) error) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		a, err := scanAccount(tx.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE username = $1 FOR UPDATE`, username))
		if err != nil {
			return err
		}
		if err := fn(&a); err != nil {
			return err
		}
		a.Username = username
		_, err = tx.Exec(ctx, `UPDATE accounts SET (`+accountColumns+`) = (`+accountValues+`) WHERE username = $1`, accountArgs(a)...)
		return err
	})
	return wrap(err, "update account %q", username)
}

// DeleteAccount implements storage.Store, in one transaction: the
// account's row (its roster, offline messages, user data and archive go
// with it, ON DELETE CASCADE), then its items in other rosters, each of
// those rosters' versions locked first, as UpdateRosterItem locks them.
func (s *Store) DeleteAccount(ctx context.Context, username, bare string) ([]storage.RemovedItem, error) {
	var removed []storage.RemovedItem
	// What the account's archive has queued goes in first, and then with
	// the account.
	err := s.writeArchive(ctx)
	if err != nil {
		return nil, wrap(err, "delete account %q", username)
	}
	err = s.write(ctx, func(tx pgx.Tx) error {
		removed = nil
		tag, err := tx.Exec(ctx, `DELETE FROM accounts WHERE username = $1`, username)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		// Lock the versions of the rosters that hold the account, in
		// username order; an item added meanwhile to a roster not locked
		// here is found by the DELETE, whose UPDATE then locks it.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM roster_versions
			WHERE username IN (SELECT username FROM roster_items WHERE jid = $1)
			ORDER BY username FOR UPDATE`, bare); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `DELETE FROM roster_items WHERE jid = $1 RETURNING `+rosterColumns, bare)
		if err != nil {
			return err
		}
		items, err := pgx.CollectRows(rows, scanRosterItem)
		if err != nil {
			return err
		}
		for _, it := range items {
			var ver uint64
			if err := tx.QueryRow(ctx, `UPDATE roster_versions SET version = version + 1 WHERE username = $1 RETURNING version`,
				it.owner).Scan(&ver); err != nil {
				return err
			}
			removed = append(removed, storage.RemovedItem{Owner: it.owner, Item: it.RosterItem, Version: ver})
		}
		return nil
	})
	if err != nil {
		return nil, wrap(err, "delete account %q", username)
	}
	return removed, nil
}

// Accounts implements storage.Store.
func (s *Store) Accounts(ctx context.Context) ([]storage.Account, error) {
	rows, err := s.db.pool.Query(ctx, `SELECT `+accountColumns+` FROM accounts ORDER BY username`)
	if err != nil {
		return nil, wrap(err, "accounts")
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Account, error) { return scanAccount(r) })
	return all, wrap(err, "accounts")
}

// RecordLogin implements storage.Store: one UPDATE, at once (there is no
// batch to lose when a replica dies), which keeps the later time, in one
// round trip.
func (s *Store) RecordLogin(username string, at time.Time) error {
	return s.recordTime(username, "last_login", at)
}

// RecordLogout implements storage.Store, as RecordLogin.
func (s *Store) RecordLogout(username string, at time.Time) error {
	return s.recordTime(username, "last_logout", at)
}

// recordTime sets column (last_login or last_logout, never user input) to
// at where it is earlier or unset. A time from before the account was
// created belongs to a deleted account of the same name and is ignored, as
// the bbolt store ignores it.
func (s *Store) recordTime(username, column string, at time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), statementTimeout)
	defer cancel()
	// Committed without waiting for the WAL flush (for this transaction
	// alone): a login time lost with the database server's crash is
	// worth less than a flush on the path of every login.
	var b pgx.Batch
	b.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
	b.Queue(`UPDATE accounts SET `+column+` = $2
		WHERE username = $1 AND created <= $2 AND (`+column+` IS NULL OR `+column+` < $2)`, username, at)
	err := s.db.pool.SendBatch(ctx, &b).Close()
	return wrap(err, "record %s of %q", column, username)
}
