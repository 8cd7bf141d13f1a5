package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Interface guards: the bbolt store can be the source and the destination
// of a Transfer.
var (
	_ Exporter = (*Bolt)(nil)
	_ Importer = (*Bolt)(nil)
)

// AllSettings implements Exporter.
func (s *Bolt) AllSettings(ctx context.Context) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSettings).ForEach(func(k, v []byte) error {
			out[string(k)] = bytes.Clone(v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("storage: read the settings: %w", err)
	}
	return out, nil
}

// ExportAccount implements Exporter, in one read transaction.
func (s *Bolt) ExportAccount(ctx context.Context, username string) (AccountData, error) {
	d := AccountData{UserData: map[string][]Datum{}}
	unwritten := s.unwritten(username)
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if err := getJSON(tx.Bucket(bucketAccounts), []byte(username), &d.Account); err != nil {
			return err
		}
		if b := tx.Bucket(bucketRosters).Bucket([]byte(username)); b != nil {
			d.RosterVersion = version(b)
			var err error
			if d.Roster, err = decodeAll[RosterItem](b, keyVersion); err != nil {
				return err
			}
		}
		if b := tx.Bucket(bucketOffline).Bucket([]byte(username)); b != nil {
			var err error
			if d.Offline, err = decodeAll[OfflineMessage](b, keyUsage); err != nil {
				return err
			}
		}
		if u := tx.Bucket(bucketUserData).Bucket([]byte(username)); u != nil {
			return u.ForEach(func(k, v []byte) error {
				if v == nil {
					d.UserData[string(k)] = readData(u.Bucket(k), "")
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return AccountData{}, fmt.Errorf("storage: export %q: %w", username, err)
	}
	unwritten.apply(&d.Account)
	return d, nil
}

// ImportAccount implements Importer, in one write transaction.
func (s *Bolt) ImportAccount(ctx context.Context, d AccountData) error {
	user := []byte(d.Account.Username)
	err := s.update(ctx, func(tx *bolt.Tx) error {
		accounts := tx.Bucket(bucketAccounts)
		if accounts.Get(user) != nil {
			return ErrExists
		}
		if err := putJSON(accounts, user, d.Account); err != nil {
			return err
		}
		if len(d.Roster) > 0 || d.RosterVersion > 0 {
			b, err := tx.Bucket(bucketRosters).CreateBucketIfNotExists(user)
			if err != nil {
				return err
			}
			for _, it := range d.Roster {
				if err := putJSON(b, []byte(it.JID), it); err != nil {
					return err
				}
			}
			if err := b.Put(keyVersion, binary.BigEndian.AppendUint64(nil, d.RosterVersion)); err != nil {
				return err
			}
		}
		if len(d.Offline) > 0 {
			if err := importOffline(tx, user, d.Offline); err != nil {
				return err
			}
		}
		for bucket, ds := range d.UserData {
			if len(ds) == 0 {
				continue
			}
			u, err := tx.Bucket(bucketUserData).CreateBucketIfNotExists(user)
			if err != nil {
				return err
			}
			b, err := u.CreateBucketIfNotExists([]byte(bucket))
			if err != nil {
				return err
			}
			for _, e := range ds {
				if err := b.Put([]byte(e.Key), e.Value); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: import %q: %w", d.Account.Username, err)
	}
	return nil
}

// importOffline writes msgs in order into a new offline bucket, with the
// account's and the store's counters.
func importOffline(tx *bolt.Tx, user []byte, msgs []OfflineMessage) error {
	b, err := tx.Bucket(bucketOffline).CreateBucketIfNotExists(user)
	if err != nil {
		return err
	}
	var add usage
	for _, m := range msgs {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := putJSON(b, binary.BigEndian.AppendUint64(nil, seq), m); err != nil {
			return err
		}
		add.bytes += int64(len(m.XML))
		add.messages++
	}
	if err := b.Put(keyUsage, add.encode()); err != nil {
		return err
	}
	t := totalUsage(tx)
	return putTotal(tx, usage{bytes: t.bytes + add.bytes, messages: t.messages + add.messages})
}

// ImportArchive implements Importer. The ids keep their order and their
// stamps (a bbolt id is its stamp in nanoseconds); an id this store could
// not have made is refused.
func (s *Bolt) ImportArchive(ctx context.Context, username string, msgs []ArchivedMessage) error {
	if err := s.writeArchive(); err != nil {
		return fmt.Errorf("storage: import the archive of %q: %w", username, err)
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b, err := userBucket(tx, bucketArchive, username)
		if err != nil {
			return err
		}
		return importInto(b, msgs)
	})
	if err != nil {
		return fmt.Errorf("storage: import the archive of %q: %w", username, err)
	}
	return nil
}

// importInto writes msgs with their ids into an archive's bucket, those
// it holds already skipped, with its usage counter.
func importInto(b *bolt.Bucket, msgs []ArchivedMessage) error {
	u := decodeUsage(b.Get(keyUsage))
	for _, m := range msgs {
		k, ok := parseArchiveID(m.ID)
		if !ok {
			return fmt.Errorf("archive id %q: not 16 hex digits", m.ID)
		}
		if b.Get(k) != nil {
			continue
		}
		v, err := encodeArchived(m)
		if err != nil {
			return err
		}
		if err := b.Put(k, v); err != nil {
			return err
		}
		u.messages++
		u.bytes += int64(len(v))
	}
	return b.Put(keyUsage, u.encode())
}

// ExportRooms implements Exporter.
func (s *Bolt) ExportRooms(ctx context.Context) ([]StoredRoom, error) {
	var out []StoredRoom
	err := s.view(ctx, func(tx *bolt.Tx) error {
		parent := tx.Bucket(bucketRooms)
		for _, service := range subBuckets(parent) {
			err := parent.Bucket(service).ForEach(func(k, v []byte) error {
				out = append(out, StoredRoom{Service: string(service), Name: string(k), State: bytes.Clone(v)})
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: export rooms: %w", err)
	}
	return out, nil
}

// ImportRoom implements Importer.
func (s *Bolt) ImportRoom(ctx context.Context, r StoredRoom) error {
	err := checkRoomKey(r.Service, r.Name)
	if err == nil {
		err = s.update(ctx, func(tx *bolt.Tx) error {
			b, err := tx.Bucket(bucketRooms).CreateBucketIfNotExists([]byte(r.Service))
			if err != nil {
				return err
			}
			if b.Get([]byte(r.Name)) != nil {
				return ErrExists
			}
			return b.Put([]byte(r.Name), r.State)
		})
	}
	if err != nil {
		return fmt.Errorf("storage: import room %q of %q: %w", r.Name, r.Service, err)
	}
	return nil
}

// ImportRoomArchive implements Importer, as ImportArchive does.
func (s *Bolt) ImportRoomArchive(ctx context.Context, service, room string, msgs []ArchivedMessage) error {
	err := s.roomArchive.Flush(ctx)
	if err == nil {
		err = s.update(ctx, func(tx *bolt.Tx) error {
			rooms := tx.Bucket(bucketRooms).Bucket([]byte(service))
			if rooms == nil || rooms.Get([]byte(room)) == nil {
				return ErrNotFound
			}
			svc, err := tx.Bucket(bucketRoomArchive).CreateBucketIfNotExists([]byte(service))
			if err != nil {
				return err
			}
			b, err := svc.CreateBucketIfNotExists([]byte(room))
			if err != nil {
				return err
			}
			return importInto(b, msgs)
		})
	}
	if err != nil {
		return fmt.Errorf("storage: import the archive of room %q of %q: %w", room, service, err)
	}
	return nil
}
