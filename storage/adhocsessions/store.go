// Package adhocsessions keeps XEP-0050 command sessions (adhoc.Session) in a
// bucket of the server's bbolt file, so that a multi-stage command survives a
// restart (config adhoc.persist), with an adhoc.MemoryStore in front of it.
//
// It lives under storage rather than under adhoc because what it owns
// is a bucket of the bbolt file whose other buckets (accounts, rosters,
// offline messages) package storage owns: the file's layout is read in one
// tree, and package adhoc, its requester and everything under adhoc/ link no
// database, so a terminal client such as adhocctl built on them does not
// either.
package adhocsessions

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/adhocd/adhocd/adhoc"
)

// Bucket and keys of Store in a bbolt file shared with other data.
var (
	bucketSessions = []byte("adhoc_sessions")
	keySecret      = []byte("\x00secret")
)

// Store keeps sessions in a bbolt bucket so that multi-stage sessions
// survive a restart, with an adhoc.MemoryStore in front of it: reads of live
// sessions come from memory, every change is written through. Memory stays
// bounded by the MemoryStore's size; on disk a session lives until it ends or
// its TTL runs out (expired ones are swept when the store opens and dropped
// when met).
type Store struct {
	db  *bolt.DB
	mem *adhoc.MemoryStore
	ttl time.Duration
	now func() time.Time
}

var (
	_ adhoc.Store         = (*Store)(nil)
	_ adhoc.StatsReporter = (*Store)(nil)
)

// New opens the session bucket in db (creating it) with mem in front, and
// removes sessions that expired while the process was down.
func New(db *bolt.DB, mem *adhoc.MemoryStore) (*Store, error) {
	s := &Store{db: db, mem: mem, ttl: mem.TTL(), now: time.Now}
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
			var sess adhoc.Session
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
		return nil, fmt.Errorf("adhocsessions: open session bucket: %w", err)
	}
	return s, nil
}

// Secret returns the key for session ids kept in the bucket (made on first
// use), so that ids issued before a restart are still recognised.
func (s *Store) Secret() ([]byte, error) {
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
		return nil, fmt.Errorf("adhocsessions: session secret: %w", err)
	}
	return secret, nil
}

// Get implements adhoc.Store.
func (s *Store) Get(ctx context.Context, id string) (*adhoc.Session, error) {
	sess, err := s.mem.Get(ctx, id)
	if !errors.Is(err, adhoc.ErrNoSession) && !errors.Is(err, adhoc.ErrSessionEnded) {
		return sess, err
	}
	// Not in memory: never loaded since a restart, or evicted from the LRU
	// (which then remembers it as ended). The bucket decides; sessions ended
	// on purpose were deleted from it.
	missing := err
	var stored *adhoc.Session
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSessions).Get([]byte(id))
		if v == nil || bytes.Equal([]byte(id), keySecret) {
			return nil
		}
		stored = &adhoc.Session{}
		return json.Unmarshal(v, stored)
	})
	if err != nil {
		return nil, fmt.Errorf("adhocsessions: load session: %w", err)
	}
	if stored == nil {
		return nil, missing
	}
	if s.now().After(stored.Expires) {
		_ = s.End(ctx, id)
		return nil, adhoc.ErrSessionEnded
	}
	// Back into memory (a restart, or an eviction from the LRU).
	if err := s.mem.Put(ctx, stored); err != nil {
		return nil, err
	}
	return stored, nil
}

// Put implements adhoc.Store: memory first (it applies the per-owner cap), then
// the bucket.
func (s *Store) Put(ctx context.Context, sess *adhoc.Session) error {
	if err := s.mem.Put(ctx, sess); err != nil {
		return err
	}
	cp := *sess
	cp.Expires = s.now().Add(s.ttl)
	v, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("adhocsessions: encode session: %w", err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Put([]byte(sess.ID), v) }); err != nil {
		_ = s.mem.End(ctx, sess.ID)
		return fmt.Errorf("adhocsessions: store session: %w", err)
	}
	return nil
}

// End implements adhoc.Store.
func (s *Store) End(ctx context.Context, id string) error {
	_ = s.mem.End(ctx, id)
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Delete([]byte(id)) }); err != nil {
		return fmt.Errorf("adhocsessions: end session: %w", err)
	}
	return nil
}

// Stats implements adhoc.StatsReporter (the memory tier's counters).
func (s *Store) Stats() adhoc.StoreStats { return s.mem.Stats() }

var _ adhoc.OwnerEnder = (*Store)(nil)

// EndOwner implements adhoc.OwnerEnder: in memory and in the bucket, where
// sessions not loaded since a restart are found too.
func (s *Store) EndOwner(ctx context.Context, owner string) error {
	_ = s.mem.EndOwner(ctx, owner)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		var ended [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var sess adhoc.Session
			if !bytes.Equal(k, keySecret) && json.Unmarshal(v, &sess) == nil && sess.Owner == owner {
				ended = append(ended, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range ended {
			if err := b.Delete(k); err != nil {
				return err
			}
			_ = s.mem.End(ctx, string(k))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("adhocsessions: end the sessions of %s: %w", owner, err)
	}
	return nil
}
