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

// archiveTable is one kind of archive, an account's or a room's: the
// table of its messages, the columns that name its owner, and its SQL. One
// code writes, queries, expires and imports both kinds.
type archiveTable struct {
	table string
	cols  []string                  // the columns of its owner's key, in the primary key's order
	what  func(key []string) string // the archive of the owner with this key, in an error message

	insertBatch, insertOne, trim, expire string
}

// The two kinds of archive.
var (
	accountArchives = newArchiveTable("archive", "archive_usage", "accounts", []string{"username"},
		func(key []string) string { return fmt.Sprintf("archive for %q", key[0]) })
	roomArchives = newArchiveTable("muc_archive", "muc_archive_usage", "muc_rooms", []string{"service", "room"},
		func(key []string) string { return fmt.Sprintf("archive of room %q of %q", key[1], key[0]) })
)

// newArchiveTable makes the SQL of one kind of archive from its tables:
// the messages, the counters its triggers keep (usage), and the owners,
// all three with the owner's key columns (0001_init.sql, 0002_muc.sql). In
// each statement the owner's key comes first ($1…$k), the row's values
// after.
func newArchiveTable(table, usage, owner string, cols []string, what func([]string) string) *archiveTable {
	k := len(cols)
	names := strings.Join(cols, ", ")
	match := ownerMatch(cols)
	var arrays, fromOwner []string
	for i, c := range cols {
		arrays = append(arrays, fmt.Sprintf("$%d::text[]", i+1))
		fromOwner = append(fromOwner, fmt.Sprintf("o.%s = u.%[1]s", c))
	}
	arrays = append(arrays, fmt.Sprintf("$%d::bigint[], $%d::timestamptz[], $%d::text[], $%d::text[]", k+1, k+2, k+3, k+4))
	return &archiveTable{
		table: table, cols: cols, what: what,
		// One INSERT of a batch's rows whose owner exists (the others
		// are not kept).
		insertBatch: fmt.Sprintf(`INSERT INTO %[1]s (%[2]s, id, stamp, with_jid, xml)
			SELECT %[3]s, u.id, u.stamp, u.with_jid, u.xml
			FROM unnest(%[4]s) AS u(%[2]s, id, stamp, with_jid, xml)
			WHERE EXISTS (SELECT 1 FROM %[5]s o WHERE %[6]s)`,
			table, names, "u."+strings.Join(cols, ", u."), strings.Join(arrays, ", "), owner, strings.Join(fromOwner, " AND ")),
		insertOne: fmt.Sprintf(`INSERT INTO %s (%s, id, stamp, with_jid, xml) VALUES (%s, $%d, $%d, $%d, $%d) ON CONFLICT DO NOTHING`,
			table, names, placeholders(1, k), k+1, k+2, k+3, k+4),
		// The owner's oldest messages past $k+1.
		trim: fmt.Sprintf(`DELETE FROM %s WHERE %s AND id IN (
			SELECT id FROM %[1]s WHERE %[2]s ORDER BY id
			LIMIT greatest((SELECT messages FROM %[3]s WHERE %[2]s) - $%[4]d, 0))`, table, match, usage, k+1),
		// Every owner's messages stamped before $1 (and so with ids below
		// $2), the oldest first by the stamp's index, at most $3.
		expire: fmt.Sprintf(`DELETE FROM %s WHERE (%s, id) IN (
			SELECT %[2]s, id FROM %[1]s WHERE stamp < $1 AND id < $2 ORDER BY stamp LIMIT $3)`, table, names),
	}
}

// ownerMatch is the SQL condition that the key's columns are $1…$k.
func ownerMatch(cols []string) string {
	conds := make([]string, len(cols))
	for i, c := range cols {
		conds[i] = fmt.Sprintf("%s = $%d", c, i+1)
	}
	return strings.Join(conds, " AND ")
}

// placeholders lists the parameters $from…$to.
func placeholders(from, to int) string {
	var ps []string
	for i := from; i <= to; i++ {
		ps = append(ps, fmt.Sprintf("$%d", i))
	}
	return strings.Join(ps, ", ")
}

// keyArgs is the arguments of a statement: the owner's key, then more.
func keyArgs(key []string, more ...any) []any {
	args := make([]any, 0, len(key)+len(more))
	for _, v := range key {
		args = append(args, v)
	}
	return append(args, more...)
}

// pendingArchive is a message waiting for its batch: key names its owner
// (an account's username; a room's service and name).
type pendingArchive struct {
	key []string
	id  uint64
	m   storage.ArchivedMessage
	q   storage.ArchiveQuota
}

// AppendArchive implements storage.Archive: the message is queued with its
// id and written with the next batch.
func (s *Store) AppendArchive(ctx context.Context, username string, m storage.ArchivedMessage, q storage.ArchiveQuota) (string, error) {
	return s.appendTo(ctx, accountArchives, &s.archive, []string{username}, m, q)
}

// appendTo queues m for the owner's archive with its id (AppendArchive,
// AppendRoomArchive).
func (s *Store) appendTo(ctx context.Context, a *archiveTable, queue *storage.BatchQueue[pendingArchive], key []string, m storage.ArchivedMessage, q storage.ArchiveQuota) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	n := s.clock.Next(time.Now())
	if err := queue.Add(ctx, pendingArchive{key: key, id: n, m: m, q: q}); err != nil {
		return "", wrap(err, "%s", a.what(key))
	}
	return storage.FormatArchiveID(n), nil
}

// writeArchive commits what is queued (archive.Flush).
func (s *Store) writeArchive(ctx context.Context) error { return s.archive.Flush(ctx) }

// writeBatch commits a batch of a's messages: one INSERT of every row
// whose owner exists, then the trim of each owner past its quota, in one
// transaction; on failure each message alone (writeOne).
func (s *Store) writeBatch(ctx context.Context, a *archiveTable, batch []pendingArchive) error {
	owners := make([][]string, len(a.cols)) // a column of the owners' names per key column
	for c := range owners {
		owners[c] = make([]string, len(batch))
	}
	ids := make([]int64, len(batch))
	stamps := make([]time.Time, len(batch))
	withs := make([]string, len(batch))
	xmls := make([]string, len(batch))
	type trim struct {
		key []string
		max int
	}
	// The last message's quota of each owner, by its key's names joined
	// with NUL, which no text value holds: the joined keys sort as the
	// keys do under COLLATE "C".
	quota := map[string]trim{}
	for i, p := range batch {
		for c := range owners {
			owners[c][i] = p.key[c]
		}
		ids[i], stamps[i], withs[i], xmls[i] = int64(p.id), storage.ArchiveStamp(p.id), p.m.With, p.m.XML
		quota[strings.Join(p.key, "\x00")] = trim{p.key, p.q.MaxMessages}
	}
	args := make([]any, 0, len(owners)+4)
	for _, col := range owners {
		args = append(args, col)
	}
	args = append(args, ids, stamps, withs, xmls)
	err := s.write(ctx, func(tx pgx.Tx) error {
		var b pgx.Batch
		b.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
		b.Queue(a.insertBatch, args...)
		// In the owners' order, as the triggers lock the usage rows: two
		// replicas' batches do not wait for each other in a circle.
		for _, k := range slices.Sorted(maps.Keys(quota)) {
			if t := quota[k]; t.max > 0 {
				b.Queue(a.trim, keyArgs(t.key, t.max)...)
			}
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	if err == nil {
		return nil
	}
	var errs []error
	for _, p := range batch {
		if err := s.writeOne(ctx, a, p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// writeOne writes one message of a batch that failed, under a new id when
// its own is taken; a message of an owner that does not exist is not kept.
func (s *Store) writeOne(ctx context.Context, a *archiveTable, p pendingArchive) error {
	n := p.id
	for range appendTries {
		var b pgx.Batch
		b.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
		ins := b.Queue(a.insertOne, keyArgs(p.key, int64(n), storage.ArchiveStamp(n), p.m.With, p.m.XML)...)
		inserted := false
		ins.Exec(func(tag pgconn.CommandTag) error {
			inserted = tag.RowsAffected() == 1
			return nil
		})
		if p.q.MaxMessages > 0 {
			b.Queue(a.trim, keyArgs(p.key, p.q.MaxMessages)...)
		}
		err := s.db.pool.SendBatch(ctx, &b).Close()
		switch {
		case pgCode(err) == codeForeignKeyViolation:
			return nil // no such owner: not kept
		case err != nil:
			return wrap(err, "%s", a.what(p.key))
		case inserted:
			return nil
		}
		n = s.clock.Next(time.Now()) // the id was taken (another replica's)
	}
	return fmt.Errorf("storage: %s: %d ids taken in a row", a.what(p.key), appendTries)
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
	out, complete, err := s.queryIn(ctx, accountArchives, &s.archive, []string{username}, q)
	return out, complete, wrap(err, "query the archive of %q", username)
}

// queryIn answers q from the owner's archive (QueryArchive,
// QueryRoomArchive), after what is queued is written.
func (s *Store) queryIn(ctx context.Context, a *archiveTable, queue *storage.BatchQueue[pendingArchive], key []string, q storage.ArchiveQuery) ([]storage.ArchivedMessage, bool, error) {
	if err := queue.Flush(ctx); err != nil {
		return nil, false, err
	}
	if q.Max < 1 {
		q.Max = 1
	}
	match := ownerMatch(a.cols)
	conds := []string{match}
	args := keyArgs(key)
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
			err := s.db.pool.QueryRow(ctx, `SELECT true FROM `+a.table+` WHERE `+match+fmt.Sprintf(` AND id = $%d`, len(key)+1),
				keyArgs(key, int64(n))...).Scan(&ok)
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
	n, err := s.expireIn(ctx, accountArchives, &s.archive, before, limit)
	return n, wrap(err, "expire archives")
}

// expireIn removes at most limit messages stamped before before from the
// archives of a's kind, after what is queued is written (ExpireArchive,
// ExpireRoomArchives).
func (s *Store) expireIn(ctx context.Context, a *archiveTable, queue *storage.BatchQueue[pendingArchive], before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, errors.New("limit must be positive")
	}
	if err := queue.Flush(ctx); err != nil {
		return 0, err
	}
	tag, err := s.db.pool.Exec(ctx, a.expire, before, before.UnixNano(), limit)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// importIn writes msgs with their ids (and so their stamps) to the
// owner's archive in one transaction, those already there skipped, after
// what is queued is written; ErrNotFound for an owner that does not exist
// (ImportArchive, ImportRoomArchive).
func (s *Store) importIn(ctx context.Context, a *archiveTable, queue *storage.BatchQueue[pendingArchive], key []string, msgs []storage.ArchivedMessage) error {
	ids := make([]uint64, len(msgs))
	for i, m := range msgs {
		n, ok := storage.ParseArchiveID(m.ID)
		if !ok {
			return fmt.Errorf("archive id %q: not 16 hex digits", m.ID)
		}
		ids[i] = n
	}
	if err := queue.Flush(ctx); err != nil {
		return err
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		var b pgx.Batch
		for i, m := range msgs {
			b.Queue(a.insertOne, keyArgs(key, int64(ids[i]), storage.ArchiveStamp(ids[i]), m.With, m.XML)...)
		}
		err := tx.SendBatch(ctx, &b).Close()
		if pgCode(err) == codeForeignKeyViolation {
			return storage.ErrNotFound
		}
		return err
	})
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
