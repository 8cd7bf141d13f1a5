package storage_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/adhocd/adhocd/storage"
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
	if _, err := st.DeleteAccount(ctx, "alice", "alice@localhost"); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAccount(ctx, storage.Account{Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	if items, _, _ := st.Roster(ctx, "alice"); len(items) != 0 {
		t.Fatalf("a deleted account's roster came back: %+v", items)
	}
	if _, err := st.DeleteAccount(ctx, "nobody", "nobody@localhost"); !errors.Is(err, storage.ErrNotFound) {
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

// raw reads an account from the file as it is, without the times still
// waiting in memory.
func raw(t *testing.T, st *storage.Bolt, username string) storage.Account {
	t.Helper()
	var a storage.Account
	err := st.DB().View(func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte("accounts")).Get([]byte(username))
		if v == nil {
			return storage.ErrNotFound
		}
		return json.Unmarshal(v, &a)
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func created(t *testing.T, st *storage.Bolt, username string, at time.Time) {
	t.Helper()
	if err := st.CreateAccount(context.Background(), storage.Account{Username: username, Created: at}); err != nil {
		t.Fatal(err)
	}
}

// TestLoginTimesWaitThenAreWritten: a recorded login is seen at once through
// the store, reaches the file after the delay without anything else
// happening, and a logout recorded before Close is on disk after it.
func TestLoginTimesWaitThenAreWritten(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := storage.Open(dir, time.Second, storage.WithLoginTimeDelay(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	created(t, st, "alice", now.Add(-time.Hour))
	login := now.Add(time.Second)
	if err := st.RecordLogin("alice", login); err != nil {
		t.Fatal(err)
	}
	if a, err := st.Account(ctx, "alice"); err != nil || !a.LastLogin.Equal(login) {
		t.Fatalf("Account right after RecordLogin: %v %v, want LastLogin %v", a.LastLogin, err, login)
	}
	if all, err := st.Accounts(ctx); err != nil || len(all) != 1 || !all[0].LastLogin.Equal(login) {
		t.Fatalf("Accounts right after RecordLogin: %+v %v", all, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !raw(t, st, "alice").LastLogin.Equal(login) {
		if time.Now().After(deadline) {
			t.Fatal("the login time never reached the file")
		}
		time.Sleep(20 * time.Millisecond)
	}
	logout := login.Add(time.Minute)
	if err := st.RecordLogout("alice", logout); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordLogin("alice", logout); err == nil {
		t.Error("RecordLogin after Close succeeded")
	}
	a, err := open(t, dir).Account(ctx, "alice")
	if err != nil || !a.LastLogin.Equal(login) || !a.LastLogout.Equal(logout) {
		t.Fatalf("after a restart: login %v logout %v (%v), want %v and %v", a.LastLogin, a.LastLogout, err, login, logout)
	}
}

// TestLoginTimesAtOnce: with no delay each time is in the file on return.
func TestLoginTimesAtOnce(t *testing.T) {
	st, err := storage.Open(t.TempDir(), time.Second, storage.WithLoginTimeDelay(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now().UTC()
	created(t, st, "alice", now)
	if err := st.RecordLogout("alice", now); err != nil {
		t.Fatal(err)
	}
	if got := raw(t, st, "alice").LastLogout; !got.Equal(now) {
		t.Fatalf("LastLogout in the file %v, want %v", got, now)
	}
	if err := st.RecordLogin("nobody", now); err != nil {
		t.Errorf("an unknown account: %v", err)
	}
}

// TestLoginTimesAndAccountChanges: an update sees the pending times and
// keeps them; only later times win; a deleted account is not brought back,
// and one created again under the same name does not inherit its times.
func TestLoginTimesAndAccountChanges(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := storage.Open(dir, time.Second, storage.WithLoginTimeDelay(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Add(-time.Hour)
	created(t, st, "alice", t0)
	created(t, st, "bob", t0)
	login := t0.Add(time.Minute)
	if err := st.RecordLogin("alice", login); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordLogin("alice", login.Add(-time.Second)); err != nil { // older: ignored
		t.Fatal(err)
	}
	err = st.UpdateAccount(ctx, "alice", func(a *storage.Account) error {
		if !a.LastLogin.Equal(login) {
			t.Errorf("UpdateAccount sees LastLogin %v, want %v", a.LastLogin, login)
		}
		a.Disabled = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if a := raw(t, st, "alice"); !a.Disabled || !a.LastLogin.Equal(login) {
		t.Fatalf("after UpdateAccount the file has %+v", a)
	}
	if err := st.RecordLogin("bob", login); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DeleteAccount(ctx, "bob", "bob@localhost"); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordLogout("carol", login); err != nil { // never existed
		t.Fatal(err)
	}
	if err := st.RecordLogout("alice", login); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DeleteAccount(ctx, "alice", "alice@localhost"); err != nil {
		t.Fatal(err)
	}
	created(t, st, "alice", login.Add(time.Second))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = open(t, dir)
	if _, err := st.Account(ctx, "bob"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("bob, deleted with a login pending: %v", err)
	}
	if _, err := st.Account(ctx, "carol"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("carol, never created: %v", err)
	}
	if a, err := st.Account(ctx, "alice"); err != nil || !a.LastLogin.IsZero() || !a.LastLogout.IsZero() {
		t.Errorf("alice created again: %+v %v, want no times of the deleted account", a, err)
	}
}

// TestOfflineMessages: messages come back in order, once; the limit holds;
// an unknown account keeps nothing; deleting an account deletes its
// messages.
func TestOfflineMessages(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := open(t, dir)
	now := time.Now().UTC()
	created(t, st, "bob", now)
	for i, body := range []string{"one", "two", "three"} {
		m := storage.OfflineMessage{Stamp: now.Add(time.Duration(i) * time.Second), XML: "<message><body>" + body + "</body></message>"}
		err := st.StoreOffline(ctx, "bob", m, storage.OfflineQuota{MaxMessages: 2})
		if want := i < 2; (err == nil) != want || (!want && !errors.Is(err, storage.ErrFull)) {
			t.Fatalf("message %d with a limit of 2: %v", i, err)
		}
	}
	if err := st.StoreOffline(ctx, "nobody", storage.OfflineMessage{XML: "<message/>"}, storage.OfflineQuota{MaxMessages: 2}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an unknown account: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = open(t, dir)
	got, err := st.TakeOffline(ctx, "bob")
	if err != nil || len(got) != 2 || !strings.Contains(got[0].XML, "one") || !strings.Contains(got[1].XML, "two") || !got[1].Stamp.Equal(now.Add(time.Second)) {
		t.Fatalf("after a restart: %+v %v", got, err)
	}
	if again, err := st.TakeOffline(ctx, "bob"); err != nil || len(again) != 0 {
		t.Fatalf("taken twice: %+v %v", again, err)
	}
	if err := st.StoreOffline(ctx, "bob", storage.OfflineMessage{XML: "<message/>"}, storage.OfflineQuota{MaxMessages: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DeleteAccount(ctx, "bob", "bob@localhost"); err != nil {
		t.Fatal(err)
	}
	created(t, st, "bob", now)
	if got, err := st.TakeOffline(ctx, "bob"); err != nil || len(got) != 0 {
		t.Fatalf("a new bob inherits %+v %v", got, err)
	}
}

// TestDeleteAccountLeavesOtherRosters: deleting an account removes its item
// from every other roster in the same transaction, bumps those rosters'
// versions and returns the items as they were; rosters without it and items
// for other contacts stay.
func TestDeleteAccountLeavesOtherRosters(t *testing.T) {
	ctx := context.Background()
	st := open(t, t.TempDir())
	now := time.Now().UTC()
	for _, u := range []string{"bob", "carol", "dave", "erin"} {
		created(t, st, u, now)
	}
	set := func(owner, contact string, it storage.RosterItem) uint64 {
		t.Helper()
		ver, err := st.UpdateRosterItem(ctx, owner, contact, func(p *storage.RosterItem, _ bool) (bool, error) {
			*p = it
			return false, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return ver
	}
	set("carol", "bob@localhost", storage.RosterItem{Subscription: storage.SubBoth, Name: "Bob"})
	carolVer := set("carol", "erin@localhost", storage.RosterItem{Subscription: storage.SubTo})
	set("dave", "bob@localhost", storage.RosterItem{Hidden: true, PendingIn: true})
	set("bob", "carol@localhost", storage.RosterItem{Subscription: storage.SubBoth})
	erinVer := set("erin", "carol@localhost", storage.RosterItem{Subscription: storage.SubFrom})

	removed, err := st.DeleteAccount(ctx, "bob", "bob@localhost")
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 || removed[0].Owner != "carol" || removed[1].Owner != "dave" {
		t.Fatalf("removed %+v, want carol's and dave's items", removed)
	}
	if it := removed[0].Item; it.JID != "bob@localhost" || it.Subscription != storage.SubBoth || it.Name != "Bob" {
		t.Fatalf("carol's removed item %+v", it)
	}
	if it := removed[1].Item; !it.Hidden || !it.PendingIn {
		t.Fatalf("dave's removed item %+v", it)
	}
	items, ver, err := st.Roster(ctx, "carol")
	if err != nil || len(items) != 1 || items[0].JID != "erin@localhost" || ver != carolVer+1 || removed[0].Version != ver {
		t.Fatalf("carol's roster %+v at %d (%v), want erin alone at %d", items, ver, err, carolVer+1)
	}
	if items, _, _ := st.Roster(ctx, "dave"); len(items) != 0 {
		t.Fatalf("dave's roster %+v", items)
	}
	if _, ver, _ := st.Roster(ctx, "erin"); ver != erinVer {
		t.Fatalf("erin's roster changed version: %d, was %d", ver, erinVer)
	}
	created(t, st, "bob", now)
	if items, _, _ := st.Roster(ctx, "bob"); len(items) != 0 {
		t.Fatalf("a new bob inherits the roster %+v", items)
	}
}
