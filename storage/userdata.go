package storage

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// UserData is what modules keep per account: small documents (a vCard, a
// private XML fragment, a blocklist entry, a PEP node and its items) under a
// bucket the module names, each under a key that is not empty. The store knows nothing of
// their format; what belongs to an account goes with it: DeleteAccount
// removes its user data in the same transaction.
type UserData interface {
	// UserDatum returns the value under key in the account's bucket, or
	// ErrNotFound.
	UserDatum(ctx context.Context, username, bucket, key string) ([]byte, error)
	// UserData returns the account's entries in bucket whose keys start
	// with prefix, ordered by key.
	UserData(ctx context.Context, username, bucket, prefix string) ([]Datum, error)
	// UserDataKeys returns the keys alone, ordered, of the account's
	// entries in bucket whose keys start with prefix.
	UserDataKeys(ctx context.Context, username, bucket, prefix string) ([]string, error)
	// UpdateUserData applies fn to the entries of the account's bucket
	// whose keys start with prefix, atomically: fn gets them ordered by key
	// and returns the changes, an entry with a nil Value deleting its key.
	// An error from fn aborts the change. ErrNotFound if there is no such
	// account; a store with a free-disk floor returns ErrNoSpace below it
	// (a change that only deletes goes through).
	UpdateUserData(ctx context.Context, username, bucket, prefix string, fn func(cur []Datum) ([]Datum, error)) error
	// UserDataSize returns the bytes of keys and values the account keeps
	// in bucket, for quotas and the user-stats command.
	UserDataSize(ctx context.Context, username, bucket string) (int64, error)
}

// Datum is one entry of an account's user data.
type Datum struct {
	Key   string
	Value []byte
}

// bucketUserData holds one nested bucket per account, and in it one per
// module bucket.
var bucketUserData = []byte("userdata")

// UserDatum implements UserData.
func (s *Bolt) UserDatum(ctx context.Context, username, bucket, key string) ([]byte, error) {
	var v []byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := userDataBucket(tx, username, bucket)
		if b == nil {
			return ErrNotFound
		}
		if got := b.Get([]byte(key)); got != nil {
			v = bytes.Clone(got)
			return nil
		}
		return ErrNotFound
	})
	if err != nil {
		return nil, fmt.Errorf("storage: %s %q of %q: %w", bucket, key, username, err)
	}
	return v, nil
}

// UserData implements UserData.
func (s *Bolt) UserData(ctx context.Context, username, bucket, prefix string) ([]Datum, error) {
	var out []Datum
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = readData(userDataBucket(tx, username, bucket), prefix)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: %s of %q: %w", bucket, username, err)
	}
	return out, nil
}

// UserDataKeys implements UserData.
func (s *Bolt) UserDataKeys(ctx context.Context, username, bucket, prefix string) ([]string, error) {
	var out []string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := userDataBucket(tx, username, bucket)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		p := []byte(prefix)
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			out = append(out, string(k))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: keys of %s of %q: %w", bucket, username, err)
	}
	return out, nil
}

// UpdateUserData implements UserData.
func (s *Bolt) UpdateUserData(ctx context.Context, username, bucket, prefix string, fn func([]Datum) ([]Datum, error)) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketAccounts).Get([]byte(username)) == nil {
			return ErrNotFound
		}
		cur := readData(userDataBucket(tx, username, bucket), prefix)
		changes, err := fn(cur)
		if err != nil || len(changes) == 0 {
			return err
		}
		writes := false
		for _, d := range changes {
			if !bytes.HasPrefix([]byte(d.Key), []byte(prefix)) {
				return fmt.Errorf("key %q outside the prefix %q", d.Key, prefix)
			}
			writes = writes || d.Value != nil
		}
		if writes {
			if err := s.floor.check(); err != nil {
				return err
			}
		}
		u, err := tx.Bucket(bucketUserData).CreateBucketIfNotExists([]byte(username))
		if err != nil {
			return err
		}
		b, err := u.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		for _, d := range changes {
			if d.Value == nil {
				err = b.Delete([]byte(d.Key))
			} else {
				err = b.Put([]byte(d.Key), d.Value)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: update %s of %q: %w", bucket, username, err)
	}
	return nil
}

// UserDataSize implements UserData.
func (s *Bolt) UserDataSize(ctx context.Context, username, bucket string) (int64, error) {
	var n int64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := userDataBucket(tx, username, bucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			n += int64(len(k) + len(v))
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("storage: size of %s of %q: %w", bucket, username, err)
	}
	return n, nil
}

// userDataBucket returns the account's bucket of that name, or nil.
func userDataBucket(tx *bolt.Tx, username, bucket string) *bolt.Bucket {
	u := tx.Bucket(bucketUserData).Bucket([]byte(username))
	if u == nil {
		return nil
	}
	return u.Bucket([]byte(bucket))
}

// readData copies the entries of b (which may be nil) whose keys start with
// prefix.
func readData(b *bolt.Bucket, prefix string) []Datum {
	if b == nil {
		return nil
	}
	var out []Datum
	c := b.Cursor()
	p := []byte(prefix)
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		out = append(out, Datum{Key: string(k), Value: bytes.Clone(v)})
	}
	return out
}

// dropUserData removes everything the account keeps as user data.
func dropUserData(tx *bolt.Tx, username string) error {
	parent := tx.Bucket(bucketUserData)
	if parent.Bucket([]byte(username)) == nil {
		return nil
	}
	return parent.DeleteBucket([]byte(username))
}
