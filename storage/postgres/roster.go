package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/adhocd/adhocd/storage"
)

// rosterColumns are the columns of roster_items in the order
// scanRosterItem reads them.
const rosterColumns = `username, jid, name, subscription, ask_out, pending_in, pending_content, hidden, groups`

// ownedItem is a roster item with the account whose roster holds it.
type ownedItem struct {
	owner string
	storage.RosterItem
}

func scanRosterItem(row pgx.CollectableRow) (ownedItem, error) {
	var it ownedItem
	var sub string
	err := row.Scan(&it.owner, &it.JID, &it.Name, &sub, &it.AskOut, &it.PendingIn, &it.PendingContent, &it.Hidden, &it.Groups)
	it.Subscription = storage.Subscription(sub)
	if len(it.Groups) == 0 {
		it.Groups = nil
	}
	return it, err
}

// Roster implements storage.Store: the items and the version in one
// statement, so that they are of one snapshot.
func (s *Store) Roster(ctx context.Context, username string) ([]storage.RosterItem, uint64, error) {
	rows, err := s.db.pool.Query(ctx, `SELECT coalesce((SELECT version FROM roster_versions WHERE username = $1), 0),
			r.jid, r.name, r.subscription, r.ask_out, r.pending_in, r.pending_content, r.hidden, r.groups
		FROM (SELECT 1) one LEFT JOIN roster_items r ON r.username = $1
		ORDER BY r.jid`, username)
	if err != nil {
		return nil, 0, wrap(err, "roster of %q", username)
	}
	defer rows.Close()
	var items []storage.RosterItem
	var ver uint64
	for rows.Next() {
		var jid, name, sub, content *string
		var ask, pending, hidden *bool
		var groups []string
		if err := rows.Scan(&ver, &jid, &name, &sub, &ask, &pending, &content, &hidden, &groups); err != nil {
			return nil, 0, wrap(err, "roster of %q", username)
		}
		if jid == nil {
			continue // no items: the LEFT JOIN's one row
		}
		if len(groups) == 0 {
			groups = nil
		}
		items = append(items, storage.RosterItem{JID: *jid, Name: *name, Subscription: storage.Subscription(*sub),
			AskOut: *ask, PendingIn: *pending, PendingContent: *content, Hidden: *hidden, Groups: groups})
	}
	if err := rows.Err(); err != nil {
		return nil, 0, wrap(err, "roster of %q", username)
	}
	return items, ver, nil
}

// RosterItem implements storage.Store.
func (s *Store) RosterItem(ctx context.Context, username, contact string) (storage.RosterItem, error) {
	rows, err := s.db.pool.Query(ctx, `SELECT `+rosterColumns+` FROM roster_items WHERE username = $1 AND jid = $2`, username, contact)
	if err == nil {
		var it ownedItem
		it, err = pgx.CollectExactlyOneRow(rows, scanRosterItem)
		if err == nil {
			return it.RosterItem, nil
		}
		if errors.Is(err, pgx.ErrNoRows) {
			err = storage.ErrNotFound
		}
	}
	return storage.RosterItem{}, wrap(err, "roster item %q of %q", contact, username)
}

// UpdateRosterItem implements storage.Store. The roster's version row,
// made at its first change, is locked first: the changes of one roster
// are serialised on it, fn runs once on the item as it is, and each change
// gets a version of its own. ErrNotFound if there is no such account.
func (s *Store) UpdateRosterItem(ctx context.Context, username, contact string, fn func(*storage.RosterItem, bool) (bool, error)) (uint64, error) {
	var ver uint64
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO roster_versions (username, version) VALUES ($1, 0) ON CONFLICT DO NOTHING`, username); err != nil {
			return missingAccount(err)
		}
		if err := tx.QueryRow(ctx, `SELECT version FROM roster_versions WHERE username = $1 FOR UPDATE`, username).Scan(&ver); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return storage.ErrNotFound // the account went meanwhile
			}
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+rosterColumns+` FROM roster_items WHERE username = $1 AND jid = $2`, username, contact)
		if err != nil {
			return err
		}
		it := storage.RosterItem{JID: contact, Subscription: storage.SubNone}
		exists := true
		switch got, err := pgx.CollectExactlyOneRow(rows, scanRosterItem); {
		case errors.Is(err, pgx.ErrNoRows):
			exists = false
		case err != nil:
			return err
		default:
			it = got.RosterItem
		}
		remove, err := fn(&it, exists)
		if err != nil {
			return err
		}
		switch {
		case remove && !exists:
			return nil
		case remove:
			_, err = tx.Exec(ctx, `DELETE FROM roster_items WHERE username = $1 AND jid = $2`, username, contact)
		default:
			if it.Subscription == "" {
				it.Subscription = storage.SubNone
			}
			_, err = tx.Exec(ctx, `INSERT INTO roster_items (`+rosterColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
				ON CONFLICT (username, jid) DO UPDATE SET name = excluded.name, subscription = excluded.subscription,
					ask_out = excluded.ask_out, pending_in = excluded.pending_in, pending_content = excluded.pending_content,
					hidden = excluded.hidden, groups = excluded.groups`,
				username, contact, it.Name, string(it.Subscription), it.AskOut, it.PendingIn, it.PendingContent, it.Hidden, groupsArg(it.Groups))
		}
		if err != nil {
			return err
		}
		ver++
		_, err = tx.Exec(ctx, `UPDATE roster_versions SET version = $2 WHERE username = $1`, username, ver)
		return err
	})
	if err != nil {
		return 0, wrap(err, "update roster item %q of %q", contact, username)
	}
	return ver, nil
}

// groupsArg is groups for the NOT NULL text[] column.
func groupsArg(groups []string) []string {
	if groups == nil {
		return []string{}
	}
	return groups
}
