package adhoc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket and keys of BoltStore in a bbolt file shared with other data.
var (
	bucketSessions = []byte("adhoc_sessions")
	keySecret      = []byte("\x00secret")
)

// BoltStore keeps sessions in a bbolt bucket so that multi-stage sessions
// survive a restart, with a MemoryStore in front of it: reads of live
// sessions come from memory, every change is written through. Memory stays
// bounded by the MemoryStore's size; on disk a session lives until it ends or
// its TTL runs out (expired ones are swept when the store opens and dropped
// when met).
type BoltStore struct {
	db  *bolt.DB
	mem *MemoryStore
	ttl time.Duration
	now func() time.Time
}

var (
	_ Store         = (*BoltStore)(nil)
	_ StatsReporter = (*BoltStore)(nil)
)

// NewBoltStore opens the session bucket in db (creating it) with mem in
// front, and removes sessions that expired while the process was down.
func NewBoltStore(db *bolt.DB, mem *MemoryStore) (*BoltStore, error) {
	s := &BoltStore{db: db, mem: mem, ttl: mem.ttl, now: time.Now}
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketSessions)
		if err != nil {
			return err
		}
		var expired [][]byte
		err = b.ForEach(func(k, v []byte) error {
			if bytes.Equal(k, keySecret) {
				return nil
			}
			var sess Session
			if json.Unmarshal(v, &sess) != nil || s.now().After(sess.Expires) {
				expired = append(expired, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range expired {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("adhoc: open session bucket: %w", err)
	}
	return s, nil
}

// Secret returns the key for session ids kept in the bucket (made on first
// use), so that ids issued before a restart are still recognised.
func (s *BoltStore) Secret() ([]byte, error) {
	var secret []byte
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		if v := b.Get(keySecret); len(v) == 32 {
			secret = bytes.Clone(v)
			return nil
		}
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return err
		}
		return b.Put(keySecret, secret)
	})
	if err != nil {
		return nil, fmt.Errorf("adhoc: session secret: %w", err)
	}
	return secret, nil
}

// Get implements Store.
func (s *BoltStore) Get(ctx context.Context, id string) (*Session, error) {
	sess, err := s.mem.Get(ctx, id)
	if !errors.Is(err, ErrNoSession) && !errors.Is(err, ErrSessionEnded) {
		return sess, err
	}
	// Not in memory: never loaded since a restart, or evicted from the LRU
	// (which then remembers it as ended). The bucket decides; sessions ended
	// on purpose were deleted from it.
	missing := err
	var stored *Session
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSessions).Get([]byte(id))
		if v == nil || bytes.Equal([]byte(id), keySecret) {
			return nil
		}
		stored = &Session{}
		return json.Unmarshal(v, stored)
	})
	if err != nil {
		return nil, fmt.Errorf("adhoc: load session: %w", err)
	}
	if stored == nil {
		return nil, missing
	}
	if s.now().After(stored.Expires) {
		_ = s.End(ctx, id)
		return nil, ErrSessionEnded
	}
	// Back into memory (a restart, or an eviction from the LRU).
	if err := s.mem.Put(ctx, stored); err != nil {
		return nil, err
	}
	return stored, nil
}

// Put implements Store: memory first (it applies the per-owner cap), then
// the bucket.
func (s *BoltStore) Put(ctx context.Context, sess *Session) error {
	if err := s.mem.Put(ctx, sess); err != nil {
		return err
	}
	cp := *sess
	cp.Expires = s.now().Add(s.ttl)
	v, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("adhoc: encode session: %w", err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Put([]byte(sess.ID), v) }); err != nil {
		_ = s.mem.End(ctx, sess.ID)
		return fmt.Errorf("adhoc: store session: %w", err)
	}
	return nil
}

// End implements Store.
func (s *BoltStore) End(ctx context.Context, id string) error {
	_ = s.mem.End(ctx, id)
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Delete([]byte(id)) }); err != nil {
		return fmt.Errorf("adhoc: end session: %w", err)
	}
	return nil
}

// Stats implements StatsReporter (the memory tier's counters).
func (s *BoltStore) Stats() StoreStats { return s.mem.Stats() }
