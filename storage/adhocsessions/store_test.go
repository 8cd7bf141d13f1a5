package adhocsessions_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/storage/adhocsessions"
)

func openBolt(t *testing.T, path string, ttl time.Duration, max int) (*adhocsessions.Store, *bolt.DB) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := adhocsessions.New(db, adhoc.NewMemoryStore(max, ttl, 100))
	if err != nil {
		t.Fatal(err)
	}
	return st, db
}

func TestStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	st, db := openBolt(t, path, time.Minute, 2)
	secret, err := st.Secret()
	if err != nil || len(secret) != 32 {
		t.Fatalf("secret %x %v", secret, err)
	}
	for _, id := range []string{"a", "b", "c"} {
		s := &adhoc.Session{ID: id, Node: "n", Owner: "o@x", Stage: 1, Values: []adhoc.Values{{"k": {id}}}}
		if err := st.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	// "a" left memory (the LRU holds 2) but is read back from disk.
	if got, err := st.Get(ctx, "a"); err != nil || got.Values[0].Get("k") != "a" {
		t.Fatalf("evicted session: %+v %v", got, err)
	}
	if err := st.End(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// Reopened: the secret is the same, ended sessions stay ended, live ones are there.
	st2, _ := openBolt(t, path, time.Minute, 2)
	secret2, err := st2.Secret()
	if err != nil || !bytes.Equal(secret, secret2) {
		t.Fatal("the secret changed across a reopen")
	}
	if got, err := st2.Get(ctx, "c"); err != nil || got.Stage != 1 {
		t.Fatalf("after reopen: %+v %v", got, err)
	}
	if _, err := st2.Get(ctx, "b"); !errors.Is(err, adhoc.ErrNoSession) {
		t.Fatalf("an ended session came back: %v", err)
	}
}

func TestStoreDropsExpired(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	st, db := openBolt(t, path, 50*time.Millisecond, 10)
	if err := st.Put(ctx, &adhoc.Session{ID: "old", Owner: "o@x"}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	time.Sleep(100 * time.Millisecond)
	st2, db2 := openBolt(t, path, 50*time.Millisecond, 10)
	if _, err := st2.Get(ctx, "old"); !errors.Is(err, adhoc.ErrNoSession) {
		t.Fatalf("an expired session survived the reopen: %v", err)
	}
	n := 0
	_ = db2.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("adhoc_sessions")).ForEach(func(k, _ []byte) error { n++; return nil })
	})
	if n != 0 {
		t.Fatalf("%d keys left in the bucket", n)
	}
}
