package postgres

import (
	"context"
	"errors"
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

// The rooms' archives are written in batches as the accounts' are, by
// the same code (archive.go, roomArchives), in a queue of their own: one
// INSERT of the queued rows whose room is stored (0002_muc.sql), then the
// trim of each room past its quota; on failure each row alone, under a new
// id where its own is taken.

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
	return s.appendTo(ctx, roomArchives, &s.roomArchive, []string{service, room}, m, q)
}

// QueryRoomArchive implements storage.RoomArchive, as QueryArchive.
func (s *Store) QueryRoomArchive(ctx context.Context, service, room string, q storage.ArchiveQuery) ([]storage.ArchivedMessage, bool, error) {
	out, complete, err := s.queryIn(ctx, roomArchives, &s.roomArchive, []string{service, room}, q)
	return out, complete, wrap(err, "query the archive of room %q of %q", room, service)
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
	n, err := s.expireIn(ctx, roomArchives, &s.roomArchive, before, limit)
	return n, wrap(err, "expire room archives")
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
	return wrap(s.importIn(ctx, roomArchives, &s.roomArchive, []string{service, room}, msgs), "import the archive of room %q of %q", room, service)
}
