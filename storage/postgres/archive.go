package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/adhocd/adhocd/storage"
)

// The archive's ids are storage.ArchiveClock's nanoseconds, the bigint key
// of the archive table; a message's stamp is the time its id tells (the
// stamp column holds it to the microsecond, for expiry by its index).
// Replicas make ids each with their own clock: two messages of one account
// archived in the same nanosecond on two replicas collide on the primary
// key, and the second takes the next id (appendTries). Ids from replicas
// whose clocks differ interleave as those clocks do: run NTP.

// Archiving is written in batches, as the bbolt store writes it:
// AppendArchive takes the id and queues the message, and a writer commits
// what is queued in one transaction a few milliseconds later
// (archiveDelay), one INSERT of every queued row, so that archiving every
// message costs routing neither a round trip nor a commit per message. The
// transaction commits with synchronous_commit off (for it alone): a crash
// of the database server may lose the last fraction of a second of
// archive, never its consistency. A read of the archive through this
// store (a query, a size, expiry, a deletion or re-creation of the
// account) writes what is queued first; another replica sees a message
// once its batch is committed, a few milliseconds later.
//
// The batch skips rows of accounts that do not exist (an INSERT … SELECT
// joined with accounts). Should it fail (two replicas made the same id for
// one account, or an account went between the read and the write), each
// of its messages is written alone, taking a new id where its own is taken
// (appendTries); a message that still cannot be written is logged and
// lost, as bbolt loses a batch its disk refuses.

const (
	// archiveDelay is how long the first queued message waits for others.
	archiveDelay = 5 * time.Millisecond
	// archiveQueueMax is the batch past which AppendArchive writes at once.
	archiveQueueMax = 512
	// appendTries bounds the ids a message written alone tries.
	appendTries = 8
)

type pendingArchive struct {
	user string
	id   uint64
	m    storage.ArchivedMessage
	q    storage.ArchiveQuota
}

// AppendArchive implements storage.Archive: the message is queued with its
// id and written with the next batch.
func (s *Store) AppendArchive(ctx context.Context, username string, m storage.ArchivedMessage, q storage.ArchiveQuota) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	n := s.clock.Next(time.Now())
	if err := s.archive.Add(ctx, pendingArchive{user: username, id: n, m: m, q: q}); err != nil {
		return "", wrap(err, "archive for %q", username)
	}
	return storage.FormatArchiveID(n), nil
}

// writeArchive commits what is queued (archive.Flush).
func (s *Store) writeArchive(ctx context.Context) error { return s.archive.Flush(ctx) }

// writeBatch commits a batch: one INSERT of every row whose account
// exists, then the trim of each account past its quota, in one
// transaction; on failure each message alone (writeOne).
func (s *Store) writeBatch(ctx context.Context, batch []pendingArchive) error {
	users := make([]string, len(batch))
	ids := make([]int64, len(batch))
	stamps := make([]time.Time, len(batch))
	withs := make([]string, len(batch))
	xmls := make([]string, len(batch))
	quota := map[string]int{} // the last message's quota of each account
	for i, p := range batch {
		users[i], ids[i], stamps[i], withs[i], xmls[i] = p.user, int64(p.id), storage.ArchiveStamp(p.id), p.m.With, p.m.XML
		quota[p.user] = p.q.MaxMessages
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		var b pgx.Batch
		b.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
		b.Queue(`INSERT INTO archive (username, id, stamp, with_jid, xml)
			SELECT u.username, u.id, u.stamp, u.with_jid, u.xml
			FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[]) AS u(username, id, stamp, with_jid, xml)
			WHERE EXISTS (SELECT 1 FROM accounts a WHERE a.username = u.username)`, users, ids, stamps, withs, xmls)
		// In username order, as the triggers lock the usage rows: two
		// replicas' batches do not wait for each other in a circle.
		for _, user := range slices.Sorted(maps.Keys(quota)) {
			if max := quota[user]; max > 0 {
				queueTrim(&b, user, max)
			}
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	if err == nil {
		return nil
	}
	var errs []error
	for _, p := range batch {
		if err := s.writeOne(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// queueTrim queues the removal of the account's oldest messages past max.
func queueTrim(b *pgx.Batch, user string, max int) {
	b.Queue(`DELETE FROM archive WHERE username = $1 AND id IN (
		SELECT id FROM archive WHERE username = $1 ORDER BY id
		LIMIT greatest((SELECT messages FROM archive_usage WHERE username = $1) - $2, 0))`, user, max)
}

// writeOne writes one message of a batch that failed, under a new id when
// its own is taken; a message of an account that does not exist is not
// kept.
func (s *Store) writeOne(ctx context.Context, p pendingArchive) error {
	n := p.id
	for range appendTries {
		var b pgx.Batch
		b.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
		ins := b.Queue(`INSERT INTO archive (username, id, stamp, with_jid, xml) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
			p.user, int64(n), storage.ArchiveStamp(n), p.m.With, p.m.XML)
		inserted := false
		ins.Exec(func(tag pgconn.CommandTag) error {
			inserted = tag.RowsAffected() == 1
			return nil
		})
		if p.q.MaxMessages > 0 {
			queueTrim(&b, p.user, p.q.MaxMessages)
		}
		err := s.db.pool.SendBatch(ctx, &b).Close()
		switch {
		case pgCode(err) == codeForeignKeyViolation:
			return nil // no such account: not kept
		case err != nil:
			return wrap(err, "archive for %q", p.user)
		case inserted:
			return nil
		}
		n = s.clock.Next(time.Now()) // the id was taken (another replica's)
	}
	return fmt.Errorf("storage: archive for %q: %d ids taken in a row", p.user, appendTries)
}

// withFilter is the SQL condition of XEP-0313's with filter (a full JID
// matches itself, a bare JID its resources too, a domain every JID at it),
// with its argument numbered n.
func withFilter(with string, n int) (string, any) {
	switch {
	case strings.Contains(with, "/"):
		// That one alone (a resource may hold "/"); with_bare for the index.
		return fmt.Sprintf("(with_bare = split_part($%d, '/', 1) AND with_jid = $%[1]d)", n), with
	case strings.Contains(with, "@"):
		return fmt.Sprintf("with_bare = $%d", n), with
	default:
		return fmt.Sprintf("(with_bare = $%d OR right(with_bare, length($%[1]d) + 1) = '@' || $%[1]d)", n), with
	}
}

// QueryArchive implements storage.Archive: one SELECT in id order from one
// bound towards the other, a page and one more, by the primary key or, for
// a JID, by archive_with.
func (s *Store) QueryArchive(ctx context.Context, username string, q storage.ArchiveQuery) ([]storage.ArchivedMessage, bool, error) {
	if err := s.writeArchive(ctx); err != nil {
		return nil, false, wrap(err, "query the archive of %q", username)
	}
	out, complete, err := s.queryIn(ctx, archiveOf{"archive", []string{"username"}, []any{username}}, q)
	if err != nil {
		return nil, false, wrap(err, "query the archive of %q", username)
	}
	return out, complete, nil
}

// archiveOf names one archive: its table (archive, muc_archive) and the
// columns and values of its key (an account's username; a room's service
// and name).
type archiveOf struct {
	table string
	cols  []string
	vals  []any
}

// queryIn answers q from one archive (QueryArchive, QueryRoomArchive).
func (s *Store) queryIn(ctx context.Context, a archiveOf, q storage.ArchiveQuery) ([]storage.ArchivedMessage, bool, error) {
	if q.Max < 1 {
		q.Max = 1
	}
	var conds []string
	args := append([]any(nil), a.vals...)
	for i, c := range a.cols {
		conds = append(conds, fmt.Sprintf("%s = $%d", c, i+1))
	}
	key := strings.Join(conds, " AND ")
	arg := func(v any) int {
		args = append(args, v)
		return len(args)
	}
	if q.With != "" {
		cond, v := withFilter(q.With, len(args)+1)
		args = append(args, v)
		conds = append(conds, cond)
	}
	if !q.Start.IsZero() {
		conds = append(conds, fmt.Sprintf("id >= $%d", arg(q.Start.UnixNano())))
	}
	if !q.End.IsZero() {
		conds = append(conds, fmt.Sprintf("id <= $%d", arg(q.End.UnixNano())))
	}
	if len(q.IDs) > 0 {
		var ids []int64
		for _, id := range q.IDs {
			if n, ok := storage.ParseArchiveID(id); ok {
				ids = append(ids, int64(n))
			}
		}
		conds = append(conds, fmt.Sprintf("id = ANY($%d)", arg(ids)))
		out, err := s.queryArchive(ctx, `SELECT id, with_jid, xml FROM `+a.table+` WHERE `+strings.Join(conds, " AND ")+` ORDER BY id`, args)
		if err != nil {
			return nil, false, err
		}
		return out, true, nil
	}
	// A bound by id names a message in the archive (XEP-0313 §4.1.2:
	// item-not-found otherwise).
	for _, b := range []struct {
		id, op string
	}{{q.AfterID, ">"}, {q.BeforeID, "<"}} {
		if b.id == "" {
			continue
		}
		n, ok := storage.ParseArchiveID(b.id)
		if ok {
			err := s.db.pool.QueryRow(ctx, `SELECT true FROM `+a.table+` WHERE `+key+fmt.Sprintf(` AND id = $%d`, len(a.vals)+1),
				append(append([]any(nil), a.vals...), int64(n))...).Scan(&ok)
			if errors.Is(err, pgx.ErrNoRows) {
				ok = false
			} else if err != nil {
				return nil, false, err
			}
		}
		if !ok {
			return nil, false, fmt.Errorf("id %q: %w", b.id, storage.ErrNotFound)
		}
		conds = append(conds, fmt.Sprintf("id %s $%d", b.op, arg(int64(n))))
	}
	order := "ASC"
	if q.Last {
		order = "DESC"
	}
	out, err := s.queryArchive(ctx, `SELECT id, with_jid, xml FROM `+a.table+` WHERE `+strings.Join(conds, " AND ")+
		` ORDER BY id `+order+fmt.Sprintf(` LIMIT $%d`, arg(q.Max+1)), args)
	if err != nil {
		return nil, false, err
	}
	complete := len(out) <= q.Max
	if !complete {
		out = out[:q.Max]
	}
	if q.Last {
		slices.Reverse(out)
	}
	return out, complete, nil
}

func (s *Store) queryArchive(ctx context.Context, sql string, args []any) ([]storage.ArchivedMessage, error) {
	rows, err := s.db.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.ArchivedMessage, error) {
		var m storage.ArchivedMessage
		var id int64
		err := r.Scan(&id, &m.With, &m.XML)
		m.ID, m.Stamp = storage.FormatArchiveID(uint64(id)), storage.ArchiveStamp(uint64(id))
		return m, err
	})
}

// ExpireArchive implements storage.Archive: the oldest first, by the
// stamp's index, in one statement.
func (s *Store) ExpireArchive(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, errors.New("storage: expire archives: limit must be positive")
	}
	if err := s.writeArchive(ctx); err != nil {
		return 0, wrap(err, "expire archives")
	}
	tag, err := s.db.pool.Exec(ctx, `DELETE FROM archive WHERE (username, id) IN (
		SELECT username, id FROM archive WHERE stamp < $1 AND id < $2 ORDER BY stamp LIMIT $3)`,
		before, before.UnixNano(), limit)
	if err != nil {
		return 0, wrap(err, "expire archives")
	}
	return int(tag.RowsAffected()), nil
}

// ArchiveSize implements storage.Archive, from the counters the triggers
// keep: a message counts the bytes of its with and its xml.
func (s *Store) ArchiveSize(ctx context.Context, username string) (int, int64, error) {
	if err := s.writeArchive(ctx); err != nil {
		return 0, 0, wrap(err, "archive size of %q", username)
	}
	var messages, bytes int64
	err := s.db.pool.QueryRow(ctx, `SELECT messages, bytes FROM archive_usage WHERE username = $1`, username).Scan(&messages, &bytes)
	if errors.Is(err, pgx.ErrNoRows) {
		err = nil
	}
	if err != nil {
		return 0, 0, wrap(err, "archive size of %q", username)
	}
	return int(messages), bytes, nil
}

// ArchiveUsage implements storage.ArchiveUsageReporter: one sum over the
// accounts' counters.
func (s *Store) ArchiveUsage(ctx context.Context) (int64, int64, error) {
	if err := s.writeArchive(ctx); err != nil {
		return 0, 0, wrap(err, "archive usage")
	}
	var messages, bytes int64
	err := s.db.pool.QueryRow(ctx, `SELECT coalesce(sum(messages), 0)::bigint, coalesce(sum(bytes), 0)::bigint FROM archive_usage`).
		Scan(&messages, &bytes)
	if err != nil {
		return 0, 0, wrap(err, "archive usage")
	}
	return messages, bytes, nil
}
