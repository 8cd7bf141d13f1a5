package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/adhocd/adhocd/storage"
)

// ExportAccount implements storage.Exporter, in one read-only snapshot.
func (s *Store) ExportAccount(ctx context.Context, username string) (storage.AccountData, error) {
	var d storage.AccountData
	err := s.snapshot(ctx, func(tx pgx.Tx) error {
		d = storage.AccountData{UserData: map[string][]storage.Datum{}}
		var err error
		if d.Account, err = scanAccount(tx.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE username = $1`, username)); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT version FROM roster_versions WHERE username = $1), 0)`, username).
			Scan(&d.RosterVersion); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+rosterColumns+` FROM roster_items WHERE username = $1 ORDER BY jid`, username)
		if err != nil {
			return err
		}
		items, err := pgx.CollectRows(rows, scanRosterItem)
		if err != nil {
			return err
		}
		for _, it := range items {
			d.Roster = append(d.Roster, it.RosterItem)
		}
		rows, err = tx.Query(ctx, `SELECT stamp, xml FROM offline_messages WHERE username = $1 ORDER BY id`, username)
		if err != nil {
			return err
		}
		if d.Offline, err = pgx.CollectRows(rows, scanOffline); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT bucket, key, value FROM user_data WHERE username = $1 ORDER BY bucket, key`, username)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var bucket string
			var k, v []byte
			if err := rows.Scan(&bucket, &k, &v); err != nil {
				return err
			}
			d.UserData[bucket] = append(d.UserData[bucket], storage.Datum{Key: string(k), Value: v})
		}
		return rows.Err()
	})
	if err != nil {
		return storage.AccountData{}, wrap(err, "export %q", username)
	}
	return d, nil
}

// ImportAccount implements storage.Importer, in one transaction; the
// triggers count the offline messages.
func (s *Store) ImportAccount(ctx context.Context, d storage.AccountData) error {
	a := d.Account
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO accounts (`+accountColumns+`) VALUES (`+accountValues+`) ON CONFLICT DO NOTHING`, accountArgs(a)...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrExists
		}
		var b pgx.Batch
		if len(d.Roster) > 0 || d.RosterVersion > 0 {
			b.Queue(`INSERT INTO roster_versions (username, version) VALUES ($1, $2)`, a.Username, d.RosterVersion)
		}
		for _, it := range d.Roster {
			sub := it.Subscription
			if sub == "" {
				sub = storage.SubNone
			}
			b.Queue(`INSERT INTO roster_items (`+rosterColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				a.Username, it.JID, it.Name, string(sub), it.AskOut, it.PendingIn, it.PendingContent, it.Hidden, groupsArg(it.Groups))
		}
		for _, m := range d.Offline {
			// One by one, in order: each takes the next id.
			b.Queue(`INSERT INTO offline_messages (username, stamp, xml) VALUES ($1, $2, $3)`, a.Username, m.Stamp, m.XML)
		}
		for bucket, ds := range d.UserData {
			for _, e := range ds {
				b.Queue(`INSERT INTO user_data (username, bucket, key, value) VALUES ($1, $2, $3, $4)`,
					a.Username, bucket, []byte(e.Key), nonNil(e.Value))
			}
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	return wrap(err, "import %q", a.Username)
}

// ImportArchive implements storage.Importer: the messages with their ids
// (and so their stamps), those already there skipped.
func (s *Store) ImportArchive(ctx context.Context, username string, msgs []storage.ArchivedMessage) error {
	return wrap(s.importIn(ctx, accountArchives, &s.archive, []string{username}, msgs), "import the archive of %q", username)
}
