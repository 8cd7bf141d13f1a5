package storage_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/adhocd/adhocd/storage"
)

// message returns an offline message of exactly size bytes of XML.
func message(size int, at time.Time) storage.OfflineMessage {
	const open, close = "<message><body>", "</body></message>"
	return storage.OfflineMessage{Stamp: at, XML: open + strings.Repeat("x", size-len(open)-len(close)) + close}
}

func wantUsage(t *testing.T, st *storage.Bolt, bytes, messages int64) {
	t.Helper()
	if b, n := st.OfflineUsage(); b != bytes || n != messages {
		t.Fatalf("offline usage: %d bytes in %d messages, want %d in %d", b, n, bytes, messages)
	}
}

// TestOfflineQuotas: the per-account bytes and the store's total refuse the
// message that would pass them, with ErrFull and ErrTotalFull, and keep
// what came before; the total follows every store, delivery and account
// deletion exactly, and survives a restart.
func TestOfflineQuotas(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := open(t, dir)
	now := time.Now().UTC()
	for _, u := range []string{"bob", "carol", "dave"} {
		created(t, st, u, now)
	}
	q := storage.OfflineQuota{MaxMessages: 100, MaxBytes: 1000, MaxTotalBytes: 1800}
	for i := range 3 {
		err := st.StoreOffline(ctx, "bob", message(400, now), q)
		if want := i < 2; (err == nil) != want || (!want && !errors.Is(err, storage.ErrFull)) {
			t.Fatalf("bob's message %d of 400 bytes within 1000: %v", i, err)
		}
	}
	wantUsage(t, st, 800, 2)
	// A message that fits exactly is kept.
	if err := st.StoreOffline(ctx, "bob", message(200, now), q); err != nil {
		t.Fatalf("a message that fills bob's quota exactly: %v", err)
	}
	// carol's own quota has room, the store's total does not.
	if err := st.StoreOffline(ctx, "carol", message(700, now), q); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, st, 1700, 4)
	if err := st.StoreOffline(ctx, "carol", message(101, now), q); !errors.Is(err, storage.ErrTotalFull) || errors.Is(err, storage.ErrFull) {
		t.Fatalf("past the total: %v, want ErrTotalFull", err)
	}
	if err := st.StoreOffline(ctx, "dave", message(100, now), q); err != nil {
		t.Fatalf("a message that fills the total exactly: %v", err)
	}
	wantUsage(t, st, 1800, 5)

	// The counter is in the file.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = open(t, dir)
	wantUsage(t, st, 1800, 5)

	got, err := st.TakeOffline(ctx, "bob")
	if err != nil || len(got) != 3 {
		t.Fatalf("bob's messages: %d, %v", len(got), err)
	}
	wantUsage(t, st, 800, 2)
	// Room again: bob's quota starts over.
	for range 2 {
		if err := st.StoreOffline(ctx, "bob", message(500, now), q); err != nil {
			t.Fatalf("bob after delivery: %v", err)
		}
	}
	wantUsage(t, st, 1800, 4)
	if _, err := st.DeleteAccount(ctx, "carol", "carol@localhost"); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, st, 1100, 3)
	if _, err := st.DeleteAccount(ctx, "bob", "bob@localhost"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.TakeOffline(ctx, "dave"); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, st, 0, 0)
}

// TestExpireOffline: expired messages go a batch per call, the others stay
// and are delivered in order, and the counters stay exact.
func TestExpireOffline(t *testing.T) {
	ctx := context.Background()
	st := open(t, t.TempDir())
	now := time.Now().UTC()
	old := now.Add(-48 * time.Hour)
	for _, u := range []string{"bob", "carol"} {
		created(t, st, u, now)
	}
	// bob: 700 old then 2 new; carol: 400 old.
	for i := range 702 {
		at := old
		if i >= 700 {
			at = now.Add(time.Duration(i) * time.Millisecond)
		}
		if err := st.StoreOffline(ctx, "bob", message(100, at), storage.OfflineQuota{}); err != nil {
			t.Fatal(err)
		}
	}
	for range 400 {
		if err := st.StoreOffline(ctx, "carol", message(50, old), storage.OfflineQuota{}); err != nil {
			t.Fatal(err)
		}
	}
	wantUsage(t, st, 702*100+400*50, 1102)
	cutoff := now.Add(-24 * time.Hour)
	var batches []int
	for {
		n, err := st.ExpireOffline(ctx, cutoff, 500)
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, n)
		if n < 500 {
			break
		}
	}
	if fmt.Sprint(batches) != "[500 500 100]" {
		t.Fatalf("batches of at most 500: %v, want [500 500 100]", batches)
	}
	wantUsage(t, st, 200, 2)
	if n, err := st.ExpireOffline(ctx, cutoff, 500); err != nil || n != 0 {
		t.Fatalf("expired twice: %d %v", n, err)
	}
	got, err := st.TakeOffline(ctx, "bob")
	if err != nil || len(got) != 2 || !got[0].Stamp.Before(got[1].Stamp) || !got[0].Stamp.After(cutoff) {
		t.Fatalf("bob keeps his 2 new messages in order: %+v %v", got, err)
	}
	if got, err := st.TakeOffline(ctx, "carol"); err != nil || len(got) != 0 {
		t.Fatalf("carol's all expired: %d %v", len(got), err)
	}
	wantUsage(t, st, 0, 0)
}

// TestOfflineUsageOfAnOlderStore: a store written before the counters
// existed gets them, counted once, when opened.
func TestOfflineUsageOfAnOlderStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := open(t, dir)
	now := time.Now().UTC()
	created(t, st, "bob", now)
	for _, size := range []int{100, 250} {
		if err := st.StoreOffline(ctx, "bob", message(size, now), storage.OfflineQuota{}); err != nil {
			t.Fatal(err)
		}
	}
	// Take the counters away, as a store of an older adhocd has none.
	err := st.DB().Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte("meta")); err != nil {
			return err
		}
		return tx.Bucket([]byte("offline")).Bucket([]byte("bob")).Delete([]byte("\x00usage"))
	})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	st = open(t, dir)
	wantUsage(t, st, 350, 2)
	if got, err := st.TakeOffline(ctx, "bob"); err != nil || len(got) != 2 {
		t.Fatalf("bob's messages: %d %v", len(got), err)
	}
	wantUsage(t, st, 0, 0)
}

// TestDiskFloor: below the free-disk floor, offline messages and roster
// changes are refused with ErrNoSpace, which is ENOSPC to callers; logins,
// account updates, settings and reads go on; lowering the floor lets the
// writes through again. The floor is set above the real free space, so no
// disk is filled.
func TestDiskFloor(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	probe := open(t, t.TempDir())
	free, err := probe.FreeDisk()
	if err != nil {
		t.Fatal(err)
	}
	st, err := storage.Open(dir, time.Second, storage.WithMinFreeDisk(free+1<<30))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now().UTC()
	created(t, st, "bob", now)

	err = st.StoreOffline(ctx, "bob", message(100, now), storage.OfflineQuota{})
	if !errors.Is(err, storage.ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("offline message below the floor: %v", err)
	}
	_, err = st.UpdateRosterItem(ctx, "bob", "alice@localhost", func(it *storage.RosterItem, _ bool) (bool, error) {
		it.PendingIn = true
		return false, nil
	})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("roster change below the floor: %v", err)
	}
	wantUsage(t, st, 0, 0)

	// What is not caused by users goes on.
	if err := st.RecordLogin("bob", now.Add(time.Second)); err != nil {
		t.Fatalf("login below the floor: %v", err)
	}
	if err := st.UpdateAccount(ctx, "bob", func(a *storage.Account) error { a.Disabled = true; return nil }); err != nil {
		t.Fatalf("admin change below the floor: %v", err)
	}
	if err := st.CreateAccount(ctx, storage.Account{Username: "carol", Created: now}); err != nil {
		t.Fatalf("account creation below the floor: %v", err)
	}
	if err := st.PutSetting(ctx, storage.SettingMOTD, []byte(`{}`)); err != nil {
		t.Fatalf("setting below the floor: %v", err)
	}
	if items, _, err := st.Roster(ctx, "bob"); err != nil || len(items) != 0 {
		t.Fatalf("roster read below the floor: %+v %v", items, err)
	}
	if got, err := st.TakeOffline(ctx, "bob"); err != nil || len(got) != 0 {
		t.Fatalf("offline read below the floor: %+v %v", got, err)
	}

	st.SetMinFreeDisk(0)
	if err := st.StoreOffline(ctx, "bob", message(100, now), storage.OfflineQuota{}); err != nil {
		t.Fatalf("with no floor: %v", err)
	}
	if _, err := st.UpdateRosterItem(ctx, "bob", "alice@localhost", func(*storage.RosterItem, bool) (bool, error) { return false, nil }); err != nil {
		t.Fatalf("with no floor: %v", err)
	}
	wantUsage(t, st, 100, 1)
}
