package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Bucket names of the bbolt file. Rosters live in one nested bucket per user
// under rosters, so that deleting an account deletes its roster in the same
// transaction.
var (
	bucketAccounts = []byte("accounts")
	bucketRosters  = []byte("rosters")
	bucketSettings = []byte("settings")
	bucketOffline  = []byte("offline")
	keyVersion     = []byte("\x00version")
)

// Bolt is the bbolt implementation of Store.
type Bolt struct {
	db      *bolt.DB
	times   *sessionTimes // nil when login times are written at once
	pidFile string
	floor   diskFloor
	// archiveIDs makes the archive's time-ordered ids, archive queues
	// what waits to be written (archive.go).
	archiveIDs ArchiveClock
	archive    BatchQueue[pendingArchive]
	// roomArchive queues the rooms' archived messages (rooms.go).
	roomArchive BatchQueue[pendingRoomArchive]
}

// ErrLocked is what Open returns when another process holds the store.
var ErrLocked = errors.New("storage: the store is in use")

// lockedError says which process holds the store, as far as the pid file
// beside it knows (a process killed hard leaves a stale one).
type lockedError struct{ path, holder string }

func (e lockedError) Error() string {
	return "storage: " + e.path + " is in use by another adhocd" + e.holder
}

func (e lockedError) Unwrap() error { return ErrLocked }

var _ Store = (*Bolt)(nil)

// Open opens (creating if needed) the store in folder dir, in the file
// adhocd.db. The file is locked: a second process opening it waits up to
// timeout and then fails.
func Open(dir string, timeout time.Duration, opts ...Option) (*Bolt, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("storage: create %s: %w", dir, err)
	}
	path := filepath.Join(dir, "adhocd.db")
	pidFile := filepath.Join(dir, "adhocd.pid")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		holder := ""
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid := strings.TrimSpace(string(b)); pid != "" {
				holder = " (pid " + pid + "?)"
			}
		}
		return nil, lockedError{path: path, holder: holder}
	}
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	// A hint for the next process that finds the file locked. The lock is
	// bbolt's flock; this only names its probable holder.
	_ = os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketAccounts, bucketRosters, bucketSettings, bucketOffline, bucketUserData, bucketArchive, bucketRooms, bucketRoomArchive} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return initUsage(tx)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("storage: init %s: %w", path, err)
	}
	o := options{loginTimeDelay: DefaultLoginTimeDelay}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Bolt{db: db, pidFile: pidFile, floor: diskFloor{dir: dir, interval: freeCacheInterval, min: o.minFreeDisk}}
	if o.loginTimeDelay > 0 {
		s.times = newSessionTimes(o.loginTimeDelay)
		go s.flushLoop()
	}
	s.archive.Start(archiveDelay, archiveQueueMax, "archive", s.writeBatch)
	s.roomArchive.Start(archiveDelay, archiveQueueMax, "room archive", s.writeRoomBatch)
	return s, nil
}

// DB exposes the underlying database to packages that keep their own buckets
// in the same file (the adhoc session store).
func (s *Bolt) DB() *bolt.DB { return s.db }

// Close implements Store: it writes the login and logout times still
// pending, then closes the file.
func (s *Bolt) Close() error {
	flushErr := errors.Join(s.closeTimes(), s.archive.Close(context.Background()), s.roomArchive.Close(context.Background()))
	if b, err := os.ReadFile(s.pidFile); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		_ = os.Remove(s.pidFile)
	}
	if err := s.db.Close(); err != nil {
		return errors.Join(flushErr, fmt.Errorf("storage: close: %w", err))
	}
	return flushErr
}

func (s *Bolt) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

func (s *Bolt) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(fn)
}

// CreateAccount implements Store.
func (s *Bolt) CreateAccount(ctx context.Context, a Account) error {
	if a.Username == "" {
		return errors.New("storage: create account: empty username")
	}
	// Archived messages still queued for an account of that name that
	// no longer exists are dropped now, not kept for the new one.
	if err := s.writeArchive(); err != nil {
		return fmt.Errorf("storage: create account %q: %w", a.Username, err)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		if b.Get([]byte(a.Username)) != nil {
			return fmt.Errorf("storage: create account %q: %w", a.Username, ErrExists)
		}
		return putJSON(b, []byte(a.Username), a)
	})
}

// Account implements Store.
func (s *Bolt) Account(ctx context.Context, username string) (Account, error) {
	var a Account
	unwritten := s.unwritten(username)
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketAccounts), []byte(username), &a)
	})
	if err != nil {
		return Account{}, fmt.Errorf("storage: account %q: %w", username, err)
	}
	unwritten.apply(&a)
	return a, nil
}

// UpdateAccount implements Store.
func (s *Bolt) UpdateAccount(ctx context.Context, username string, fn func(*Account) error) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		var a Account
		if err := getJSON(b, []byte(username), &a); err != nil {
			return err
		}
		s.unwritten(username).apply(&a)
		if err := fn(&a); err != nil {
			return err
		}
		a.Username = username
		return putJSON(b, []byte(username), a)
	})
	if err != nil {
		return fmt.Errorf("storage: update account %q: %w", username, err)
	}
	return nil
}

// DeleteAccount implements Store. Finding the rosters that hold the account
// reads every roster's bucket once (a key lookup in each), which a rare
// administrative operation can afford; an index would cost every roster
// change.
func (s *Bolt) DeleteAccount(ctx context.Context, username, bare string) ([]RemovedItem, error) {
	var removed []RemovedItem
	// What the account's archive has queued goes to disk first, and then
	// with the account.
	err := s.writeArchive()
	if err == nil {
		err = s.update(ctx, func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketAccounts)
			if b.Get([]byte(username)) == nil {
				return ErrNotFound
			}
			if err := b.Delete([]byte(username)); err != nil {
				return err
			}
			if r := tx.Bucket(bucketRosters); r.Bucket([]byte(username)) != nil {
				if err := r.DeleteBucket([]byte(username)); err != nil {
					return err
				}
			}
			if err := dropOffline(tx, username); err != nil {
				return err
			}
			if err := dropUserData(tx, username); err != nil {
				return err
			}
			if err := dropArchive(tx, username); err != nil {
				return err
			}
			var err error
			removed, err = removeContact(tx.Bucket(bucketRosters), []byte(bare))
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("storage: delete account %q: %w", username, err)
	}
	s.forget(username)
	return removed, nil
}

// removeContact deletes the item for contact from every roster under
// rosters, bumping each changed roster's version, and returns what it
// removed.
func removeContact(rosters *bolt.Bucket, contact []byte) ([]RemovedItem, error) {
	// Owners first: a bucket is not changed while a cursor walks its parent.
	var owners [][]byte
	err := rosters.ForEach(func(k, v []byte) error {
		if v == nil && rosters.Bucket(k).Get(contact) != nil {
			owners = append(owners, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var removed []RemovedItem
	for _, owner := range owners {
		b := rosters.Bucket(owner)
		var it RosterItem
		if err := getJSON(b, contact, &it); err != nil {
			return nil, err
		}
		if err := b.Delete(contact); err != nil {
			return nil, err
		}
		ver := version(b) + 1
		if err := b.Put(keyVersion, binary.BigEndian.AppendUint64(nil, ver)); err != nil {
			return nil, err
		}
		removed = append(removed, RemovedItem{Owner: string(owner), Item: it, Version: ver})
	}
	return removed, nil
}

// Accounts implements Store.
func (s *Bolt) Accounts(ctx context.Context) ([]Account, error) {
	var all []Account
	unwritten := s.unwritten("")
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		all, err = decodeAll[Account](tx.Bucket(bucketAccounts), nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("storage: accounts: %w", err)
	}
	for i := range all {
		unwritten.apply(&all[i])
	}
	return all, nil
}

// Roster implements Store.
func (s *Bolt) Roster(ctx context.Context, username string) ([]RosterItem, uint64, error) {
	var items []RosterItem
	var ver uint64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRosters).Bucket([]byte(username))
		if b == nil {
			return nil
		}
		ver = version(b)
		var err error
		items, err = decodeAll[RosterItem](b, keyVersion)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("storage: roster of %q: %w", username, err)
	}
	return items, ver, nil
}

// RosterItem implements Store.
func (s *Bolt) RosterItem(ctx context.Context, username, contact string) (RosterItem, error) {
	var it RosterItem
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRosters).Bucket([]byte(username))
		if b == nil {
			return ErrNotFound
		}
		return getJSON(b, []byte(contact), &it)
	})
	if err != nil {
		return RosterItem{}, fmt.Errorf("storage: roster item %q of %q: %w", contact, username, err)
	}
	return it, nil
}

// UpdateRosterItem implements Store. Below the free-disk floor it fails
// with ErrNoSpace.
func (s *Bolt) UpdateRosterItem(ctx context.Context, username, contact string, fn func(*RosterItem, bool) (bool, error)) (uint64, error) {
	var ver uint64
	err := s.floor.check()
	if err == nil {
		err = s.update(ctx, func(tx *bolt.Tx) error {
			return s.updateRosterItem(tx, username, contact, fn, &ver)
		})
	}
	if err != nil {
		return 0, fmt.Errorf("storage: update roster item %q of %q: %w", contact, username, err)
	}
	return ver, nil
}

func (s *Bolt) updateRosterItem(tx *bolt.Tx, username, contact string, fn func(*RosterItem, bool) (bool, error), ver *uint64) error {
	b, err := userBucket(tx, bucketRosters, username)
	if err != nil {
		return err
	}
	it := RosterItem{JID: contact, Subscription: SubNone}
	exists := true
	if err := getJSON(b, []byte(contact), &it); errors.Is(err, ErrNotFound) {
		exists = false
	} else if err != nil {
		return err
	}
	remove, err := fn(&it, exists)
	if err != nil {
		return err
	}
	if remove {
		if !exists {
			*ver = version(b)
			return nil
		}
		if err := b.Delete([]byte(contact)); err != nil {
			return err
		}
	} else {
		it.JID = contact
		if it.Subscription == "" {
			it.Subscription = SubNone
		}
		if err := putJSON(b, []byte(contact), it); err != nil {
			return err
		}
	}
	*ver = version(b) + 1
	return b.Put(keyVersion, binary.BigEndian.AppendUint64(nil, *ver))
}

// StoreOffline implements Store. Messages live in one nested bucket per
// user under offline, keyed by a sequence number so that they come back in
// order, beside the account's usage counter; the store's total is in meta.
// Below the free-disk floor it fails with ErrNoSpace.
func (s *Bolt) StoreOffline(ctx context.Context, username string, m OfflineMessage, q OfflineQuota) error {
	err := s.floor.check()
	if err == nil {
		err = s.update(ctx, func(tx *bolt.Tx) error {
			b, err := userBucket(tx, bucketOffline, username)
			if err != nil {
				return err
			}
			u, total := decodeUsage(b.Get(keyUsage)), totalUsage(tx)
			size := int64(len(m.XML))
			switch {
			case q.MaxMessages > 0 && u.messages >= int64(q.MaxMessages),
				q.MaxBytes > 0 && u.bytes+size > q.MaxBytes:
				return ErrFull
			case q.MaxTotalBytes > 0 && total.bytes+size > q.MaxTotalBytes:
				return ErrTotalFull
			}
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			if err := putJSON(b, binary.BigEndian.AppendUint64(nil, seq), m); err != nil {
				return err
			}
			add := usage{bytes: size, messages: 1}
			if err := b.Put(keyUsage, usage{bytes: u.bytes + add.bytes, messages: u.messages + add.messages}.encode()); err != nil {
				return err
			}
			return putTotal(tx, usage{bytes: total.bytes + add.bytes, messages: total.messages + add.messages})
		})
	}
	if err != nil {
		return fmt.Errorf("storage: offline message for %q: %w", username, err)
	}
	return nil
}

// TakeOffline implements Store. Most sessions have nothing kept: a read
// transaction finds that out without the write transaction's fsync.
func (s *Bolt) TakeOffline(ctx context.Context, username string) ([]OfflineMessage, error) {
	kept := false
	err := s.view(ctx, func(tx *bolt.Tx) error {
		kept = tx.Bucket(bucketOffline).Bucket([]byte(username)) != nil
		return nil
	})
	var out []OfflineMessage
	if err == nil && kept {
		err = s.update(ctx, func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketOffline).Bucket([]byte(username))
			if b == nil {
				return nil
			}
			var err error
			if out, err = decodeAll[OfflineMessage](b, keyUsage); err != nil {
				return err
			}
			return dropOffline(tx, username)
		})
	}
	if err != nil {
		return nil, fmt.Errorf("storage: take offline messages of %q: %w", username, err)
	}
	return out, nil
}

// Setting implements Store.
func (s *Bolt) Setting(ctx context.Context, key string) ([]byte, error) {
	var out []byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSettings).Get([]byte(key))
		if v == nil {
			return ErrNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: setting %q: %w", key, err)
	}
	return out, nil
}

// PutSetting implements Store.
func (s *Bolt) PutSetting(ctx context.Context, key string, value []byte) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSettings)
		if value == nil {
			return b.Delete([]byte(key))
		}
		return b.Put([]byte(key), value)
	})
	if err != nil {
		return fmt.Errorf("storage: put setting %q: %w", key, err)
	}
	return nil
}

func version(b *bolt.Bucket) uint64 {
	v := b.Get(keyVersion)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// userBucket returns the account's own bucket under parent, creating it;
// ErrNotFound if there is no such account.
func userBucket(tx *bolt.Tx, parent []byte, username string) (*bolt.Bucket, error) {
	if tx.Bucket(bucketAccounts).Get([]byte(username)) == nil {
		return nil, ErrNotFound
	}
	return tx.Bucket(parent).CreateBucketIfNotExists([]byte(username))
}

// decodeAll decodes every value of b, in key order, but the one under skip.
func decodeAll[T any](b *bolt.Bucket, skip []byte) ([]T, error) {
	var all []T
	err := b.ForEach(func(k, v []byte) error {
		if skip != nil && bytes.Equal(k, skip) {
			return nil
		}
		var x T
		if err := json.Unmarshal(v, &x); err != nil {
			return fmt.Errorf("decode %q: %w", k, err)
		}
		all = append(all, x)
		return nil
	})
	return all, err
}

func getJSON(b *bolt.Bucket, key []byte, v any) error {
	raw := b.Get(key)
	if raw == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %q: %w", key, err)
	}
	return nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", key, err)
	}
	return b.Put(key, raw)
}
