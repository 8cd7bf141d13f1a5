package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/adhocd/adhocd/storage"
)

// StoreOffline implements storage.Store. The account's usage row (made at
// its first message) is locked, then the store's total when q bounds it,
// in the order the triggers that count the insert lock them: the check of
// q and the insert are one step for every replica.
func (s *Store) StoreOffline(ctx context.Context, username string, m storage.OfflineMessage, q storage.OfflineQuota) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO offline_usage (username) VALUES ($1) ON CONFLICT DO NOTHING`, username); err != nil {
			return missingAccount(err)
		}
		var messages, bytes int64
		if err := tx.QueryRow(ctx, `SELECT messages, bytes FROM offline_usage WHERE username = $1 FOR UPDATE`, username).
			Scan(&messages, &bytes); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return storage.ErrNotFound
			}
			return err
		}
		size := int64(len(m.XML))
		if q.MaxMessages > 0 && messages >= int64(q.MaxMessages) || q.MaxBytes > 0 && bytes+size > q.MaxBytes {
			return storage.ErrFull
		}
		if q.MaxTotalBytes > 0 {
			var total int64
			if err := tx.QueryRow(ctx, `SELECT bytes FROM offline_total FOR UPDATE`).Scan(&total); err != nil {
				return err
			}
			if total+size > q.MaxTotalBytes {
				return storage.ErrTotalFull
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO offline_messages (username, stamp, xml) VALUES ($1, $2, $3)`, username, m.Stamp, m.XML)
		return missingAccount(err)
	})
	return wrap(err, "offline message for %q", username)
}

// TakeOffline implements storage.Store: one DELETE … RETURNING.
func (s *Store) TakeOffline(ctx context.Context, username string) ([]storage.OfflineMessage, error) {
	rows, err := s.db.pool.Query(ctx, `WITH gone AS (DELETE FROM offline_messages WHERE username = $1 RETURNING id, stamp, xml)
		SELECT stamp, xml FROM gone ORDER BY id`, username)
	if err != nil {
		return nil, wrap(err, "take offline messages of %q", username)
	}
	out, err := pgx.CollectRows(rows, scanOffline)
	if err != nil {
		return nil, wrap(err, "take offline messages of %q", username)
	}
	return out, nil
}

func scanOffline(r pgx.CollectableRow) (storage.OfflineMessage, error) {
	var m storage.OfflineMessage
	err := r.Scan(&m.Stamp, &m.XML)
	m.Stamp = m.Stamp.UTC()
	return m, err
}

// ExpireOffline implements storage.Store: the oldest first, by the stamp's
// index, in one statement.
func (s *Store) ExpireOffline(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, errors.New("storage: expire offline messages: limit must be positive")
	}
	tag, err := s.db.pool.Exec(ctx, `DELETE FROM offline_messages WHERE (username, id) IN (
		SELECT username, id FROM offline_messages WHERE stamp < $1 ORDER BY stamp LIMIT $2)`, before, limit)
	if err != nil {
		return 0, wrap(err, "expire offline messages")
	}
	return int(tag.RowsAffected()), nil
}

// OfflineUsage implements storage.OfflineUsageReporter from the counters
// the triggers keep; (0, 0) if the database cannot be read.
func (s *Store) OfflineUsage() (bytes, messages int64) {
	ctx, cancel := context.WithTimeout(context.Background(), statementTimeout)
	defer cancel()
	if err := s.db.pool.QueryRow(ctx, `SELECT bytes, messages FROM offline_total`).Scan(&bytes, &messages); err != nil {
		return 0, 0
	}
	return bytes, messages
}

// Setting implements storage.Store.
func (s *Store) Setting(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.db.pool.QueryRow(ctx, `SELECT value FROM settings WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return nil, wrap(err, "setting %q", key)
	}
	return v, nil
}

// PutSetting implements storage.Store.
func (s *Store) PutSetting(ctx context.Context, key string, value []byte) error {
	var err error
	if value == nil {
		_, err = s.db.pool.Exec(ctx, `DELETE FROM settings WHERE key = $1`, key)
	} else {
		_, err = s.db.pool.Exec(ctx, `INSERT INTO settings (key, value) VALUES ($1, $2)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	}
	return wrap(err, "put setting %q", key)
}

// AllSettings implements storage.Exporter.
func (s *Store) AllSettings(ctx context.Context) (map[string][]byte, error) {
	rows, err := s.db.pool.Query(ctx, `SELECT key, value FROM settings`)
	if err != nil {
		return nil, wrap(err, "read the settings")
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, wrap(err, "read the settings")
		}
		out[k] = v
	}
	return out, wrap(rows.Err(), "read the settings")
}
