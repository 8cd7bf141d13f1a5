package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Offline storage is bounded three ways: per account (messages and bytes),
// for the whole store (bytes), and by the free space left on the disk. The
// per-account and whole-store usage are counters kept in the bbolt file and
// changed in the same transaction as the messages they count, so they stay
// exact across restarts, deliveries, expiry and account deletion. A message
// counts as the bytes of its stanza as kept (OfflineMessage.XML).

// Errors of the quotas.
var (
	// ErrTotalFull is StoreOffline's answer when the message would take the
	// store's offline messages past OfflineQuota.MaxTotalBytes.
	ErrTotalFull = errors.New("storage: offline storage is full")
	// ErrNoSpace is the answer of the writes users cause (StoreOffline,
	// UpdateRosterItem) while the store's filesystem has less free space
	// than the floor (WithMinFreeDisk). It wraps syscall.ENOSPC, as a write
	// to a full disk does, so that callers answer both the same way.
	ErrNoSpace = fmt.Errorf("storage: free disk space below the floor: %w", syscall.ENOSPC)
)

// OfflineQuota bounds what StoreOffline keeps. A zero field sets no bound.
type OfflineQuota struct {
	// MaxMessages and MaxBytes bound the messages kept for one account
	// (ErrFull).
	MaxMessages int
	MaxBytes    int64
	// MaxTotalBytes bounds the bytes kept for all accounts (ErrTotalFull).
	MaxTotalBytes int64
}

// OfflineUsageReporter is implemented by stores that count what their
// offline messages take; package metrics exports it.
type OfflineUsageReporter interface {
	// OfflineUsage returns the bytes and the number of the offline messages
	// kept for all accounts.
	OfflineUsage() (bytes, messages int64)
}

// DiskFloorSetter is implemented by stores whose free-disk floor
// (WithMinFreeDisk) can change while they run, for a configuration reload.
type DiskFloorSetter interface {
	SetMinFreeDisk(min int64)
}

// Interface guards.
var (
	_ OfflineUsageReporter = (*Bolt)(nil)
	_ DiskFloorSetter      = (*Bolt)(nil)
)

var (
	// bucketMeta holds the store's own bookkeeping.
	bucketMeta = []byte("meta")
	// keyOfflineTotal, in meta, is the usage of all offline messages.
	keyOfflineTotal = []byte("offline_total")
	// keyUsage, in each account's offline bucket, is that account's usage.
	// Messages are keyed by 8-byte sequence numbers: a key of another
	// length never collides with one.
	keyUsage = []byte("\x00usage")
)

// usage is what some offline messages take.
type usage struct{ bytes, messages int64 }

func (u usage) encode() []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(u.bytes)), uint64(u.messages))
}

func decodeUsage(v []byte) usage {
	if len(v) != 16 {
		return usage{}
	}
	return usage{bytes: int64(binary.BigEndian.Uint64(v)), messages: int64(binary.BigEndian.Uint64(v[8:]))}
}

// sub removes o from u, never below zero.
func (u usage) sub(o usage) usage {
	return usage{bytes: max(u.bytes-o.bytes, 0), messages: max(u.messages-o.messages, 0)}
}

func totalUsage(tx *bolt.Tx) usage { return decodeUsage(tx.Bucket(bucketMeta).Get(keyOfflineTotal)) }

func putTotal(tx *bolt.Tx, u usage) error {
	return tx.Bucket(bucketMeta).Put(keyOfflineTotal, u.encode())
}

// isMessageKey reports whether k, in an account's offline bucket, is a
// message's.
func isMessageKey(k []byte) bool { return len(k) == 8 }

// initUsage writes the usage counters of a store made before they existed:
// it counts every offline message once.
func initUsage(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	if meta.Get(keyOfflineTotal) != nil {
		return nil
	}
	parent := tx.Bucket(bucketOffline)
	users, err := offlineUsers(parent)
	if err != nil {
		return err
	}
	var total usage
	for _, user := range users {
		b := parent.Bucket(user)
		var u usage
		err := b.ForEach(func(k, v []byte) error {
			if !isMessageKey(k) {
				return nil
			}
			var m OfflineMessage
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("decode offline message %x of %q: %w", k, user, err)
			}
			u.bytes += int64(len(m.XML))
			u.messages++
			return nil
		})
		if err != nil {
			return err
		}
		if err := b.Put(keyUsage, u.encode()); err != nil {
			return err
		}
		total.bytes += u.bytes
		total.messages += u.messages
	}
	return meta.Put(keyOfflineTotal, total.encode())
}

// OfflineUsage implements OfflineUsageReporter, from the counter in the
// file (one read transaction); (0, 0) if the store cannot be read.
func (s *Bolt) OfflineUsage() (bytes, messages int64) {
	var u usage
	_ = s.db.View(func(tx *bolt.Tx) error {
		u = totalUsage(tx)
		return nil
	})
	return u.bytes, u.messages
}

// dropOffline deletes username's offline bucket, if any, and takes what it
// held off the total.
func dropOffline(tx *bolt.Tx, username string) error {
	parent := tx.Bucket(bucketOffline)
	b := parent.Bucket([]byte(username))
	if b == nil {
		return nil
	}
	u := decodeUsage(b.Get(keyUsage))
	if err := parent.DeleteBucket([]byte(username)); err != nil {
		return err
	}
	return putTotal(tx, totalUsage(tx).sub(u))
}

// ExpireOffline removes, in one transaction, up to limit offline messages
// (of any accounts) that arrived before before, and returns how many it
// removed; a caller removes them all by calling again while it gets limit.
// The usage counters change in the same transaction.
func (s *Bolt) ExpireOffline(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, errors.New("storage: expire offline messages: limit must be positive")
	}
	n := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		n = 0
		parent := tx.Bucket(bucketOffline)
		users, err := offlineUsers(parent)
		if err != nil {
			return err
		}
		total := totalUsage(tx)
		for _, user := range users {
			if n >= limit {
				break
			}
			b := parent.Bucket(user)
			// Messages are in arrival order: the expired ones come first.
			var keys [][]byte
			var gone usage
			c := b.Cursor()
			for k, v := c.First(); k != nil && n+len(keys) < limit; k, v = c.Next() {
				if !isMessageKey(k) {
					continue
				}
				var m OfflineMessage
				if err := json.Unmarshal(v, &m); err != nil {
					return fmt.Errorf("decode offline message %x of %q: %w", k, user, err)
				}
				if !m.Stamp.Before(before) {
					break
				}
				keys = append(keys, bytes.Clone(k))
				gone.bytes += int64(len(m.XML))
				gone.messages++
			}
			if len(keys) == 0 {
				continue
			}
			left := decodeUsage(b.Get(keyUsage)).sub(gone)
			if left.messages == 0 {
				// Nothing left: no bucket, so that a login finds that out
				// without a write transaction.
				if err := parent.DeleteBucket(user); err != nil {
					return err
				}
			} else {
				for _, k := range keys {
					if err := b.Delete(k); err != nil {
						return err
					}
				}
				if err := b.Put(keyUsage, left.encode()); err != nil {
					return err
				}
			}
			total = total.sub(gone)
			n += len(keys)
		}
		if n == 0 {
			return nil
		}
		return putTotal(tx, total)
	})
	if err != nil {
		return 0, fmt.Errorf("storage: expire offline messages: %w", err)
	}
	return n, nil
}

// diskFloor refuses the writes users cause while the filesystem of the
// store's folder has less free space than min. Free space is measured with
// statfs at most once per interval; writes in between use that figure.
type diskFloor struct {
	dir      string
	interval time.Duration

	mu       sync.Mutex
	min      int64
	measured time.Time
	free     int64
	err      error
}

// freeCacheInterval is how long one measure of the free space is used.
const freeCacheInterval = time.Second

// WithMinFreeDisk sets the free-space floor of the store's filesystem:
// below min bytes free, StoreOffline and UpdateRosterItem fail with
// ErrNoSpace while other methods go on. 0 (the default) sets no floor.
func WithMinFreeDisk(min int64) Option {
	return func(o *options) { o.minFreeDisk = min }
}

// SetMinFreeDisk changes the free-space floor (WithMinFreeDisk) of a
// running store, for a configuration reload.
func (s *Bolt) SetMinFreeDisk(min int64) {
	s.floor.mu.Lock()
	s.floor.min = min
	s.floor.mu.Unlock()
}

// FreeDisk returns the free space of the store's filesystem, available to
// unprivileged users, as last measured (at most a second ago).
func (s *Bolt) FreeDisk() (int64, error) {
	s.floor.mu.Lock()
	defer s.floor.mu.Unlock()
	return s.floor.measure()
}

// measure returns the cached free space, measuring it again when the cache
// is older than the interval. The caller holds mu.
func (f *diskFloor) measure() (int64, error) {
	if now := time.Now(); f.measured.IsZero() || now.Sub(f.measured) >= f.interval {
		var st syscall.Statfs_t
		f.err = syscall.Statfs(f.dir, &st)
		f.free = int64(st.Bavail) * int64(st.Bsize)
		f.measured = now
	}
	return f.free, f.err
}

// check returns ErrNoSpace (with the figures) while the free space is below
// the floor. A filesystem that cannot be measured does not stop writes:
// the write itself then finds out whether there is room.
func (f *diskFloor) check() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.min <= 0 {
		return nil
	}
	free, err := f.measure()
	if err != nil || free >= f.min {
		return nil
	}
	return fmt.Errorf("%w (%d bytes free, the floor is %d)", ErrNoSpace, free, f.min)
}

// offlineUsers lists the accounts with a bucket of offline messages under
// parent, copied out of the transaction's pages.
func offlineUsers(parent *bolt.Bucket) ([][]byte, error) {
	var users [][]byte
	err := parent.ForEach(func(k, v []byte) error {
		if v == nil {
			users = append(users, bytes.Clone(k))
		}
		return nil
	})
	return users, err
}
