package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/adhocd/adhocd/storage"
)

// A prefix of user data keys is a range of user_data's primary key: bytea
// compares byte by byte, as bbolt does, so the keys that start with p are
// those from p (included) to prefixEnd(p) (excluded).

// prefixEnd is the least key greater than every key that starts with p:
// p with its last byte below 0xff incremented and what follows dropped.
// ok is false when there is none (p is empty or all 0xff): no upper bound.
func prefixEnd(p string) (end []byte, ok bool) {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return b[:i+1], true
		}
	}
	return nil, false
}

// keyRange is the SQL condition on user_data.key for the keys that start
// with prefix, with its arguments numbered from n.
func keyRange(prefix string, n int) (string, []any) {
	if prefix == "" {
		return "true", nil
	}
	if end, ok := prefixEnd(prefix); ok {
		return fmt.Sprintf("key >= $%d AND key < $%d", n, n+1), []any{[]byte(prefix), end}
	}
	return fmt.Sprintf("key >= $%d", n), []any{[]byte(prefix)}
}

// UserDatum implements storage.UserData.
func (s *Store) UserDatum(ctx context.Context, username, bucket, key string) ([]byte, error) {
	var v []byte
	err := s.db.pool.QueryRow(ctx, `SELECT value FROM user_data WHERE username = $1 AND bucket = $2 AND key = $3`,
		username, bucket, []byte(key)).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return nil, wrap(err, "%s %q of %q", bucket, key, username)
	}
	return v, nil
}

// UserData implements storage.UserData.
func (s *Store) UserData(ctx context.Context, username, bucket, prefix string) ([]storage.Datum, error) {
	out, err := readData(ctx, s.db.pool, username, bucket, prefix)
	return out, wrap(err, "%s of %q", bucket, username)
}

// UserDataKeys implements storage.UserData.
func (s *Store) UserDataKeys(ctx context.Context, username, bucket, prefix string) ([]string, error) {
	cond, args := keyRange(prefix, 3)
	rows, err := s.db.pool.Query(ctx, `SELECT key FROM user_data WHERE username = $1 AND bucket = $2 AND `+cond+` ORDER BY key`,
		append([]any{username, bucket}, args...)...)
	if err != nil {
		return nil, wrap(err, "keys of %s of %q", bucket, username)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var k []byte
		err := r.Scan(&k)
		return string(k), err
	})
	if err != nil {
		return nil, wrap(err, "keys of %s of %q", bucket, username)
	}
	return keys, nil
}

// querier is what a pool and a transaction both do.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// readData returns the entries of the bucket whose keys start with
// prefix, ordered by key.
func readData(ctx context.Context, q querier, username, bucket, prefix string) ([]storage.Datum, error) {
	cond, args := keyRange(prefix, 3)
	rows, err := q.Query(ctx, `SELECT key, value FROM user_data WHERE username = $1 AND bucket = $2 AND `+cond+` ORDER BY key`,
		append([]any{username, bucket}, args...)...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Datum, error) {
		var k, v []byte
		err := r.Scan(&k, &v)
		return storage.Datum{Key: string(k), Value: v}, err
	})
}

// UpdateUserData implements storage.UserData. The entries under prefix
// need not exist, so no row can be locked for them: a transaction-level
// advisory lock named after the account and the bucket serialises the
// updates of one bucket (two names that hash alike only wait for each
// other), and the account's row is locked against its deletion.
func (s *Store) UpdateUserData(ctx context.Context, username, bucket, prefix string, fn func([]storage.Datum) ([]storage.Datum, error)) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM accounts WHERE username = $1 FOR KEY SHARE`, username).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))`, username, bucket); err != nil {
			return err
		}
		cur, err := readData(ctx, tx, username, bucket, prefix)
		if err != nil {
			return err
		}
		changes, err := fn(cur)
		if err != nil || len(changes) == 0 {
			return err
		}
		for _, d := range changes {
			if !strings.HasPrefix(d.Key, prefix) {
				return fmt.Errorf("key %q outside the prefix %q", d.Key, prefix)
			}
			if d.Key == "" {
				return errors.New("empty key")
			}
		}
		var b pgx.Batch
		for _, d := range changes {
			if d.Value == nil {
				b.Queue(`DELETE FROM user_data WHERE username = $1 AND bucket = $2 AND key = $3`, username, bucket, []byte(d.Key))
			} else {
				b.Queue(`INSERT INTO user_data (username, bucket, key, value) VALUES ($1, $2, $3, $4)
					ON CONFLICT (username, bucket, key) DO UPDATE SET value = excluded.value`, username, bucket, []byte(d.Key), d.Value)
			}
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	return wrap(err, "update %s of %q", bucket, username)
}

// UserDataSize implements storage.UserData.
func (s *Store) UserDataSize(ctx context.Context, username, bucket string) (int64, error) {
	var n int64
	err := s.db.pool.QueryRow(ctx, `SELECT coalesce(sum(octet_length(key) + octet_length(value)), 0)
		FROM user_data WHERE username = $1 AND bucket = $2`, username, bucket).Scan(&n)
	return n, wrap(err, "size of %s of %q", bucket, username)
}
