package storage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/adhocd/adhocd/server/storage"
)

func open(t *testing.T, dir string) *storage.Bolt {
	t.Helper()
	st, err := storage.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestAccounts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := open(t, dir)
	a := storage.Account{Username: "alice", Created: time.Now().UTC().Truncate(time.Second)}
	if err := st.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAccount(ctx, a); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("duplicate account: %v", err)
	}
	if _, err := st.Account(ctx, "bob"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing account: %v", err)
	}
	if err := st.UpdateAccount(ctx, "alice", func(a *storage.Account) error { a.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := st.UpdateAccount(ctx, "alice", func(a *storage.Account) error { a.Disabled = false; return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error not returned: %v", err)
	}
	got, err := st.Account(ctx, "alice")
	if err != nil || !got.Disabled || !got.Created.Equal(a.Created) {
		t.Fatalf("after update (the failed one must not apply): %+v %v", got, err)
	}

	// The data survives closing and reopening the file.
	st.Close()
	st = open(t, dir)
	all, err := st.Accounts(ctx)
	if err != nil || len(all) != 1 || all[0].Username != "alice" {
		t.Fatalf("after reopen: %+v %v", all, err)
	}
}

func TestRosterAndDelete(t *testing.T) {
	ctx := context.Background()
	st := open(t, t.TempDir())
	if _, err := st.UpdateRosterItem(ctx, "ghost", "x@y", func(*storage.RosterItem, bool) (bool, error) { return false, nil }); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("roster of a missing account: %v", err)
	}
	if err := st.CreateAccount(ctx, storage.Account{Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	var versions []uint64
	for _, c := range []string{"carol@localhost", "bob@localhost"} {
		v, err := st.UpdateRosterItem(ctx, "alice", c, func(it *storage.RosterItem, exists bool) (bool, error) {
			if exists {
				t.Errorf("%s exists before it was added", c)
			}
			it.Name = "friend"
			return false, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	items, ver, err := st.Roster(ctx, "alice")
	if err != nil || len(items) != 2 || items[0].JID != "bob@localhost" || items[0].Subscription != storage.SubNone {
		t.Fatalf("roster %+v %v", items, err)
	}
	if versions[0] != 1 || versions[1] != 2 || ver != 2 {
		t.Fatalf("versions %v, current %d", versions, ver)
	}
	if _, err := st.UpdateRosterItem(ctx, "alice", "bob@localhost", func(*storage.RosterItem, bool) (bool, error) { return true, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RosterItem(ctx, "alice", "bob@localhost"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("removed item: %v", err)
	}
	if err := st.DeleteAccount(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAccount(ctx, storage.Account{Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	if items, _, _ := st.Roster(ctx, "alice"); len(items) != 0 {
		t.Fatalf("a deleted account's roster came back: %+v", items)
	}
	if err := st.DeleteAccount(ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("delete missing: %v", err)
	}
}

func TestSettings(t *testing.T) {
	ctx := context.Background()
	st := open(t, t.TempDir())
	if _, err := st.Setting(ctx, "motd"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	if err := st.PutSetting(ctx, "motd", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if v, err := st.Setting(ctx, "motd"); err != nil || string(v) != "hello" {
		t.Fatalf("%q %v", v, err)
	}
	if err := st.PutSetting(ctx, "motd", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Setting(ctx, "motd"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleted setting: %v", err)
	}
}

func TestSecondOpenFailsWhileLocked(t *testing.T) {
	dir := t.TempDir()
	open(t, dir)
	if _, err := storage.Open(dir, 200*time.Millisecond); err == nil {
		t.Fatal("a second process opened a locked store")
	}
}
