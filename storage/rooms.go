package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Rooms is what a group chat service (modules/muc) keeps of its
// persistent rooms: each room's state under the service's domain and the
// room's name (its JID's local part). The state is a document the module
// owns (its JSON), stored and returned as it is: the module reads and
// writes it whole, under the room's lock, and nothing selects rooms by
// what is in it, so the store need not know its fields, and a field the
// module adds needs no migration of the schema.
type Rooms interface {
	// PutRoom stores the room's state, in place of what was stored. A
	// store with a free-disk floor returns ErrNoSpace below it.
	PutRoom(ctx context.Context, service, room string, state []byte) error
	// Room returns the room's state, or ErrNotFound.
	Room(ctx context.Context, service, room string) ([]byte, error)
	// Rooms returns every room of the service, ordered by name.
	Rooms(ctx context.Context, service string) ([]StoredRoom, error)
	// DeleteRoom removes the room and its archive in one transaction;
	// removing a room that is not stored is no error. Archived messages
	// of the room still waiting to be written are dropped, so that a room
	// made again under that name starts with an empty archive.
	DeleteRoom(ctx context.Context, service, room string) error
}

// StoredRoom is one room of Rooms.Rooms.
type StoredRoom struct {
	// Service is the service's domain, Name the room's local part.
	Service, Name string
	// State is what PutRoom stored.
	State []byte
}

// RoomArchive is the message archive of each stored room (XEP-0313 on the
// room's JID): what was said in the room, each message once, under an id
// of its own (the XEP-0359 stanza-id the room adds to what it relays).
// Its ids, paging and bounds are those of Archive; a room's archive goes
// with the room (DeleteRoom).
type RoomArchive interface {
	// AppendRoomArchive adds m to the room's archive and returns its id
	// (m.ID is ignored); past q.MaxMessages the oldest go. It may return
	// before the message is written (in a batch): every read of the
	// archive sees it. A message for a room that is not stored is not
	// kept (it may still get an id); a store with a free-disk floor
	// returns ErrNoSpace below it.
	AppendRoomArchive(ctx context.Context, service, room string, m ArchivedMessage, q ArchiveQuota) (string, error)
	// QueryRoomArchive returns a page of the room's archive as
	// QueryArchive returns an account's.
	QueryRoomArchive(ctx context.Context, service, room string, q ArchiveQuery) ([]ArchivedMessage, bool, error)
	// ReplaceRoomArchived puts xml in the place of the archived message
	// id of the room, which keeps its id, stamp and With (a XEP-0425
	// tombstone); ErrNotFound if the room's archive has no such message.
	ReplaceRoomArchived(ctx context.Context, service, room, id, xml string) error
	// ExpireRoomArchives removes up to limit archived messages of any
	// rooms older than before, and returns how many it removed.
	ExpireRoomArchives(ctx context.Context, before time.Time, limit int) (int, error)
}

// Interface guards.
var (
	_ Rooms       = (*Bolt)(nil)
	_ RoomArchive = (*Bolt)(nil)
)

// The bbolt file keeps rooms in one nested bucket per service under
// bucketRooms (key the room's name, value its state), and their archives
// under bucketRoomArchive, one bucket per service and in it one per room,
// laid out as an account's archive (8-byte ids, keyUsage).
var (
	bucketRooms       = []byte("muc_rooms")
	bucketRoomArchive = []byte("muc_archive")
)

// checkRoomKey refuses the empty names no room has.
func checkRoomKey(service, room string) error {
	if service == "" || room == "" {
		return errors.New("empty service or room name")
	}
	return nil
}

// PutRoom implements Rooms.
func (s *Bolt) PutRoom(ctx context.Context, service, room string, state []byte) error {
	err := checkRoomKey(service, room)
	if err == nil {
		err = s.floor.check()
	}
	if err == nil {
		err = s.update(ctx, func(tx *bolt.Tx) error {
			b, err := tx.Bucket(bucketRooms).CreateBucketIfNotExists([]byte(service))
			if err != nil {
				return err
			}
			return b.Put([]byte(room), state)
		})
	}
	if err != nil {
		return fmt.Errorf("storage: put room %q of %q: %w", room, service, err)
	}
	return nil
}

// Room implements Rooms.
func (s *Bolt) Room(ctx context.Context, service, room string) ([]byte, error) {
	var out []byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketRooms).Bucket([]byte(service)); b != nil {
			if v := b.Get([]byte(room)); v != nil {
				out = bytes.Clone(v)
				return nil
			}
		}
		return ErrNotFound
	})
	if err != nil {
		return nil, fmt.Errorf("storage: room %q of %q: %w", room, service, err)
	}
	return out, nil
}

// Rooms implements Rooms.
func (s *Bolt) Rooms(ctx context.Context, service string) ([]StoredRoom, error) {
	var out []StoredRoom
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRooms).Bucket([]byte(service))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out = append(out, StoredRoom{Service: service, Name: string(k), State: bytes.Clone(v)})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("storage: rooms of %q: %w", service, err)
	}
	return out, nil
}

// DeleteRoom implements Rooms.
func (s *Bolt) DeleteRoom(ctx context.Context, service, room string) error {
	err := s.roomArchive.Flush(ctx)
	if err == nil {
		err = s.update(ctx, func(tx *bolt.Tx) error {
			if b := tx.Bucket(bucketRooms).Bucket([]byte(service)); b != nil {
				if err := b.Delete([]byte(room)); err != nil {
					return err
				}
			}
			a := tx.Bucket(bucketRoomArchive).Bucket([]byte(service))
			if a == nil || a.Bucket([]byte(room)) == nil {
				return nil
			}
			return a.DeleteBucket([]byte(room))
		})
	}
	if err != nil {
		return fmt.Errorf("storage: delete room %q of %q: %w", room, service, err)
	}
	return nil
}

// pendingRoomArchive is a room's message waiting for its batch.
type pendingRoomArchive struct {
	service, room string
	p             pendingArchive
}

// AppendRoomArchive implements RoomArchive: queued as an account's
// message is (archive.go), in a queue of its own.
func (s *Bolt) AppendRoomArchive(ctx context.Context, service, room string, m ArchivedMessage, q ArchiveQuota) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := s.floor.check(); err != nil {
		return "", fmt.Errorf("storage: archive of room %q of %q: %w", room, service, err)
	}
	val, err := encodeArchived(m)
	if err != nil {
		return "", fmt.Errorf("storage: archive of room %q of %q: %w", room, service, err)
	}
	key := archiveKey(s.archiveIDs.Next(time.Now()))
	p := pendingRoomArchive{service: service, room: room, p: pendingArchive{key: key, val: val, q: q}}
	if err := s.roomArchive.Add(ctx, p); err != nil {
		return "", fmt.Errorf("storage: archive of room %q of %q: %w", room, service, err)
	}
	return archiveID(key), nil
}

// writeRoomBatch commits a batch of rooms' messages in one transaction:
// for each room still stored, its messages and counters, and the oldest
// beyond its quota.
func (s *Bolt) writeRoomBatch(_ context.Context, batch []pendingRoomArchive) error {
	type key struct{ service, room string }
	byRoom := make(map[key][]pendingArchive)
	var order []key
	for _, p := range batch {
		k := key{p.service, p.room}
		if _, ok := byRoom[k]; !ok {
			order = append(order, k)
		}
		byRoom[k] = append(byRoom[k], p.p)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, k := range order {
			rooms := tx.Bucket(bucketRooms).Bucket([]byte(k.service))
			if rooms == nil || rooms.Get([]byte(k.room)) == nil {
				continue // not stored, or deleted meanwhile
			}
			svc, err := tx.Bucket(bucketRoomArchive).CreateBucketIfNotExists([]byte(k.service))
			if err != nil {
				return err
			}
			b, err := svc.CreateBucketIfNotExists([]byte(k.room))
			if err != nil {
				return err
			}
			if err := appendTo(b, byRoom[k]); err != nil {
				return err
			}
		}
		return nil
	})
}

// roomArchiveBucket is the room's archive bucket, or nil.
func roomArchiveBucket(tx *bolt.Tx, service, room string) *bolt.Bucket {
	svc := tx.Bucket(bucketRoomArchive).Bucket([]byte(service))
	if svc == nil {
		return nil
	}
	return svc.Bucket([]byte(room))
}

// QueryRoomArchive implements RoomArchive.
func (s *Bolt) QueryRoomArchive(ctx context.Context, service, room string, q ArchiveQuery) ([]ArchivedMessage, bool, error) {
	if err := s.roomArchive.Flush(ctx); err != nil {
		return nil, false, fmt.Errorf("storage: query the archive of room %q of %q: %w", room, service, err)
	}
	var out []ArchivedMessage
	complete := true
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		out, complete, err = queryBucket(roomArchiveBucket(tx, service, room), q)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("storage: query the archive of room %q of %q: %w", room, service, err)
	}
	return out, complete, nil
}

// ReplaceRoomArchived implements RoomArchive.
func (s *Bolt) ReplaceRoomArchived(ctx context.Context, service, room, id, xml string) error {
	err := s.roomArchive.Flush(ctx)
	if err == nil {
		err = s.update(ctx, func(tx *bolt.Tx) error {
			b := roomArchiveBucket(tx, service, room)
			k, ok := parseArchiveID(id)
			if b == nil || !ok {
				return ErrNotFound
			}
			old := b.Get(k)
			if old == nil {
				return ErrNotFound
			}
			var m ArchivedMessage
			if err := decodeArchived(old, &m); err != nil {
				return err
			}
			m.XML = xml
			v, err := encodeArchived(m)
			if err != nil {
				return err
			}
			u := decodeUsage(b.Get(keyUsage))
			u.bytes += int64(len(v) - len(old))
			if err := b.Put(k, v); err != nil {
				return err
			}
			return b.Put(keyUsage, u.encode())
		})
	}
	if err != nil {
		return fmt.Errorf("storage: replace %q in the archive of room %q of %q: %w", id, room, service, err)
	}
	return nil
}

// ExpireRoomArchives implements RoomArchive, a batch at a time in one
// transaction.
func (s *Bolt) ExpireRoomArchives(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, errors.New("storage: expire room archives: limit must be positive")
	}
	if err := s.roomArchive.Flush(ctx); err != nil {
		return 0, fmt.Errorf("storage: expire room archives: %w", err)
	}
	n := 0
	bound := archiveKey(uint64(before.UnixNano()))
	err := s.update(ctx, func(tx *bolt.Tx) error {
		n = 0
		parent := tx.Bucket(bucketRoomArchive)
		for _, service := range subBuckets(parent) {
			svc := parent.Bucket(service)
			for _, room := range subBuckets(svc) {
				gone, err := expireBucket(svc.Bucket(room), bound, limit-n)
				if err != nil {
					return err
				}
				if n += gone; n >= limit {
					return nil
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: expire room archives: %w", err)
	}
	return n, nil
}

// subBuckets lists the names of b's nested buckets.
func subBuckets(b *bolt.Bucket) [][]byte {
	var out [][]byte
	_ = b.ForEach(func(k, v []byte) error {
		if v == nil {
			out = append(out, bytes.Clone(k))
		}
		return nil
	})
	return out
}
