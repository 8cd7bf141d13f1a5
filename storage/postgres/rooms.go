package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/adhocd/adhocd/storage"
)

// Interface guards.
var (
	_ storage.Rooms       = (*Store)(nil)
	_ storage.RoomArchive = (*Store)(nil)
)

// The rooms' archives are written in batches as the accounts' are
// (archive.go), in a queue of their own: one INSERT of the queued rows
// whose room is stored (0002_muc.sql), then the trim of each room past its
// quota; on failure each row alone, under a new id where its own is taken.

// pendingRoomArchive is a room's message waiting for its batch.
type pendingRoomArchive struct {
	service, room string
	id            uint64
	m             storage.ArchivedMessage
	q             storage.ArchiveQuota
}

// checkRoomKey refuses the empty names no room has (the table's CHECK
// would, with a less telling error).
func checkRoomKey(service, room string) error {
	if service == "" || room == "" {
		return errors.New("empty service or room name")
	}
	return nil
}

// PutRoom implements storage.Rooms.
func (s *Store) PutRoom(ctx context.Context, service, room string, state []byte) error {
	err := checkRoomKey(service, room)
	if err == nil {
		_, err = s.db.pool.Exec(ctx, `INSERT INTO muc_rooms (service, room, state) VALUES ($1, $2, $3)
			ON CONFLICT (service, room) DO UPDATE SET state = excluded.state`, service, room, nonNil(state))
	}
	return wrap(err, "put room %q of %q", room, service)
}

// Room implements storage.Rooms.
func (s *Store) Room(ctx context.Context, service, room string) ([]byte, error) {
	var state []byte
	err := s.db.pool.QueryRow(ctx, `SELECT state FROM muc_rooms WHERE service = $1 AND room = $2`, service, room).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return nil, wrap(err, "room %q of %q", room, service)
	}
	return state, nil
}

// Rooms implements storage.Rooms.
func (s *Store) Rooms(ctx context.Context, service string) ([]storage.StoredRoom, error) {
	out, err := s.selectRooms(ctx, `SELECT service, room, state FROM muc_rooms WHERE service = $1 ORDER BY room`, service)
	return out, wrap(err, "rooms of %q", service)
}

// selectRooms runs a SELECT of muc_rooms rows.
func (s *Store) selectRooms(ctx context.Context, sql string, args ...any) ([]storage.StoredRoom, error) {
	rows, err := s.db.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.StoredRoom, error) {
		var sr storage.StoredRoom
		err := r.Scan(&sr.Service, &sr.Name, &sr.State)
		return sr, err
	})
}

// DeleteRoom implements storage.Rooms: the room's row, and with it (ON
// DELETE CASCADE) its archive, after what is queued for it is written.
func (s *Store) DeleteRoom(ctx context.Context, service, room string) error {
	err := s.roomArchive.Flush(ctx)
	if err == nil {
		_, err = s.db.pool.Exec(ctx, `DELETE FROM muc_rooms WHERE service = $1 AND room = $2`, service, room)
	}
	return wrap(err, "delete room %q of %q", room, service)
}

// AppendRoomArchive implements storage.RoomArchive: queued with its id.
func (s *Store) AppendRoomArchive(ctx context.Context, service, room string, m storage.ArchivedMessage, q storage.ArchiveQuota) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	n := s.clock.Next(time.Now())
	if err := s.roomArchive.Add(ctx, pendingRoomArchive{service: service, room: room, id: n, m: m, q: q}); err != nil {
		return "", wrap(err, "archive of room %q of %q", room, service)
	}
	return storage.FormatArchiveID(n), nil
}

// roomKey names a room in a batch.
type roomKey struct{ service, room string }

func compareRooms(a, b roomKey) int {
	if c := strings.Compare(a.service, b.service); c != 0 {
		return c
	}
	return strings.Compare(a.room, b.room)
}

// writeRoomBatch commits a batch of rooms' messages: one INSERT of the
// rows whose room is stored, then the trims, in one transaction; on
// failure each message alone.
func (s *Store) writeRoomBatch(ctx context.Context, batch []pendingRoomArchive) error {
	services := make([]string, len(batch))
	rooms := make([]string, len(batch))
	ids := make([]int64, len(batch))
	stamps := make([]time.Time, len(batch))
	withs := make([]string, len(batch))
	xmls := make([]string, len(batch))
	quota := map[roomKey]int{} // the last message's quota of each room
	for i, p := range batch {
		services[i], rooms[i], ids[i], stamps[i], withs[i], xmls[i] = p.service, p.room, int64(p.id), storage.ArchiveStamp(p.id), p.m.With, p.m.XML
		quota[roomKey{p.service, p.room}] = p.q.MaxMessages
	}
	keys := make([]roomKey, 0, len(quota))
	for k := range quota {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareRooms) // the triggers' lock order
	err := s.write(ctx, func(tx pgx.Tx) error {
		var b pgx.Batch
		b.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
		b.Queue(`INSERT INTO muc_archive (service, room, id, stamp, with_jid, xml)
			SELECT u.service, u.room, u.id, u.stamp, u.with_jid, u.xml
			FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::text[], $6::text[])
				AS u(service, room, id, stamp, with_jid, xml)
			WHERE EXISTS (SELECT 1 FROM muc_rooms r WHERE r.service = u.service AND r.room = u.room)`,
			services, rooms, ids, stamps, withs, xmls)
		for _, k := range keys {
			if max := quota[k]; max > 0 {
				queueRoomTrim(&b, k, max)
			}
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	if err == nil {
		return nil
	}
	var errs []error
	for _, p := range batch {
		if err := s.writeRoomOne(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// queueRoomTrim queues the removal of the room's oldest messages past max.
func queueRoomTrim(b *pgx.Batch, k roomKey, max int) {
	b.Queue(`DELETE FROM muc_archive WHERE service = $1 AND room = $2 AND id IN (
		SELECT id FROM muc_archive WHERE service = $1 AND room = $2 ORDER BY id
		LIMIT greatest((SELECT messages FROM muc_archive_usage WHERE service = $1 AND room = $2) - $3, 0))`, k.service, k.room, max)
}

// writeRoomOne writes one message of a batch that failed, under a new id
// when its own is taken; a message of a room not stored is not kept.
func (s *Store) writeRoomOne(ctx context.Context, p pendingRoomArchive) error {
	n := p.id
	for range appendTries {
		var b pgx.Batch
		b.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
		ins := b.Queue(`INSERT INTO muc_archive (service, room, id, stamp, with_jid, xml) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
			p.service, p.room, int64(n), storage.ArchiveStamp(n), p.m.With, p.m.XML)
		inserted := false
		ins.Exec(func(tag pgconn.CommandTag) error {
			inserted = tag.RowsAffected() == 1
			return nil
		})
		if p.q.MaxMessages > 0 {
			queueRoomTrim(&b, roomKey{p.service, p.room}, p.q.MaxMessages)
		}
		err := s.db.pool.SendBatch(ctx, &b).Close()
		switch {
		case pgCode(err) == codeForeignKeyViolation:
			return nil // no such room: not kept
		case err != nil:
			return wrap(err, "archive of room %q of %q", p.room, p.service)
		case inserted:
			return nil
		}
		n = s.clock.Next(time.Now())
	}
	return fmt.Errorf("storage: archive of room %q of %q: %d ids taken in a row", p.room, p.service, appendTries)
}

// QueryRoomArchive implements storage.RoomArchive, as QueryArchive.
func (s *Store) QueryRoomArchive(ctx context.Context, service, room string, q storage.ArchiveQuery) ([]storage.ArchivedMessage, bool, error) {
	if err := s.roomArchive.Flush(ctx); err != nil {
		return nil, false, wrap(err, "query the archive of room %q of %q", room, service)
	}
	out, complete, err := s.queryIn(ctx, archiveOf{"muc_archive", []string{"service", "room"}, []any{service, room}}, q)
	if err != nil {
		return nil, false, wrap(err, "query the archive of room %q of %q", room, service)
	}
	return out, complete, nil
}

// ReplaceRoomArchived implements storage.RoomArchive: one UPDATE of the
// row's xml.
func (s *Store) ReplaceRoomArchived(ctx context.Context, service, room, id, xml string) error {
	n, ok := storage.ParseArchiveID(id)
	err := s.roomArchive.Flush(ctx)
	if err == nil && !ok {
		err = storage.ErrNotFound
	}
	if err == nil {
		var tag pgconn.CommandTag
		tag, err = s.db.pool.Exec(ctx, `UPDATE muc_archive SET xml = $4 WHERE service = $1 AND room = $2 AND id = $3`,
			service, room, int64(n), xml)
		if err == nil && tag.RowsAffected() == 0 {
			err = storage.ErrNotFound
		}
	}
	return wrap(err, "replace %q in the archive of room %q of %q", id, room, service)
}

// ExpireRoomArchives implements storage.RoomArchive: the oldest first, by
// the stamp's index, in one statement.
func (s *Store) ExpireRoomArchives(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, errors.New("storage: expire room archives: limit must be positive")
	}
	if err := s.roomArchive.Flush(ctx); err != nil {
		return 0, wrap(err, "expire room archives")
	}
	tag, err := s.db.pool.Exec(ctx, `DELETE FROM muc_archive WHERE (service, room, id) IN (
		SELECT service, room, id FROM muc_archive WHERE stamp < $1 AND id < $2 ORDER BY stamp LIMIT $3)`,
		before, before.UnixNano(), limit)
	if err != nil {
		return 0, wrap(err, "expire room archives")
	}
	return int(tag.RowsAffected()), nil
}

// ExportRooms implements storage.Exporter.
func (s *Store) ExportRooms(ctx context.Context) ([]storage.StoredRoom, error) {
	out, err := s.selectRooms(ctx, `SELECT service, room, state FROM muc_rooms ORDER BY service, room`)
	return out, wrap(err, "export rooms")
}

// ImportRoom implements storage.Importer.
func (s *Store) ImportRoom(ctx context.Context, r storage.StoredRoom) error {
	err := checkRoomKey(r.Service, r.Name)
	if err == nil {
		var tag pgconn.CommandTag
		tag, err = s.db.pool.Exec(ctx, `INSERT INTO muc_rooms (service, room, state) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			r.Service, r.Name, nonNil(r.State))
		if err == nil && tag.RowsAffected() == 0 {
			err = storage.ErrExists
		}
	}
	return wrap(err, "import room %q of %q", r.Name, r.Service)
}

// ImportRoomArchive implements storage.Importer: the messages with their
// ids, those already there skipped.
func (s *Store) ImportRoomArchive(ctx context.Context, service, room string, msgs []storage.ArchivedMessage) error {
	ids := make([]uint64, len(msgs))
	for i, m := range msgs {
		n, ok := storage.ParseArchiveID(m.ID)
		if !ok {
			return fmt.Errorf("storage: import the archive of room %q of %q: archive id %q: not 16 hex digits", room, service, m.ID)
		}
		ids[i] = n
	}
	if err := s.roomArchive.Flush(ctx); err != nil {
		return wrap(err, "import the archive of room %q of %q", room, service)
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		var b pgx.Batch
		for i, m := range msgs {
			b.Queue(`INSERT INTO muc_archive (service, room, id, stamp, with_jid, xml) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
				service, room, int64(ids[i]), storage.ArchiveStamp(ids[i]), m.With, m.XML)
		}
		err := tx.SendBatch(ctx, &b).Close()
		if pgCode(err) == codeForeignKeyViolation {
			return storage.ErrNotFound
		}
		return err
	})
	return wrap(err, "import the archive of room %q of %q", room, service)
}
