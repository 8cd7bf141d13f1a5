// Package storagetest is the conformance suite of storage.Store: what every
// backend (the bbolt file of package storage, the PostgreSQL store of
// storage/postgres) must do, as the interfaces of package storage document
// it. A backend's test calls Run with a function that opens a new, empty
// store; every case checks documented behaviour through those interfaces
// alone (storage.Store and the optional storage.OfflineUsageReporter,
// storage.ArchiveUsageReporter, storage.Exporter and storage.Importer),
// never a backend's files or tables, so that two backends that pass it can
// stand in for each other.
//
// The cases rely on these readings of the documentation:
//
//   - "Ordered" (usernames, roster JIDs, user data keys) means ordered by
//     the bytes of the strings, as Go compares them, not by a collation.
//   - A backend may keep times to the microsecond only: every time the
//     suite stores is in UTC and truncated to the microsecond, and times
//     are compared with time.Time.Equal.
//   - Archive stamps are the store's own: the cases read them back and
//     derive what a query by time must return from them. Where a case
//     needs distinct stamps it appends a millisecond apart (by the clock,
//     polled, never a fixed sleep).
//   - A store may ignore a login time from before the account's Created
//     (it belongs to a deleted account of the same name), so the cases
//     record times after Created.
//   - Each roster change (an item created, changed or removed) raises the
//     roster's version by exactly one, from 0 for a new account.
//
// A case for an optional interface the store does not implement is
// skipped, saying so.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/storage"
)

// opener makes a new, empty store for one test and closes it at the
// test's end.
type opener = func(t *testing.T) storage.Store

// testCase is one named case of an area.
type testCase struct {
	name string
	run  func(t *testing.T, open opener)
}

// Run runs every case against stores made by open; each case calls open for
// a new, empty store (and may call it twice for Transfer). open registers the
// store's Close with t.Cleanup itself.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Helper()
	areas := []struct {
		name  string
		cases []testCase
	}{
		{"Accounts", accountCases},
		{"Roster", rosterCases},
		{"Offline", offlineCases},
		{"Settings", settingCases},
		{"UserData", userDataCases},
		{"Archive", archiveCases},
		{"Rooms", roomCases},
		{"Transfer", transferCases},
		{"Concurrency", concurrencyCases},
	}
	for _, a := range areas {
		t.Run(a.name, func(t *testing.T) {
			for _, c := range a.cases {
				t.Run(c.name, func(t *testing.T) { c.run(t, open) })
			}
		})
	}
}

// testTimeout bounds each case, so that a store that hangs fails the case
// instead of the whole test binary.
const testTimeout = 30 * time.Second

// testContext returns the context of one case: cancelled when the case ends
// or after testTimeout.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// now is the current time as a backend that keeps microseconds gives it
// back.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// errBoom is what the cases' fn callbacks return to abort a change.
var errBoom = errors.New("storagetest: fn refused the change")

// createAccounts creates accounts with these names, made an hour ago.
func createAccounts(t *testing.T, ctx context.Context, s storage.Store, names ...string) {
	t.Helper()
	created := now().Add(-time.Hour)
	for _, n := range names {
		if err := s.CreateAccount(ctx, storage.Account{Username: n, Created: created}); err != nil {
			t.Fatalf("CreateAccount(%q): %v", n, err)
		}
	}
}

// wantErr fails the test unless errors.Is(err, target).
func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

// must fails the test on err.
func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// seq returns n deterministic bytes from seed, covering many byte values
// (NUL and 0xff among them for n ≥ 256).
func seq(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*37)
	}
	return b
}

// credentialDiff describes how got differs from want, or "".
func credentialDiff(name string, want, got storage.Credential) string {
	var d []string
	if !bytes.Equal(want.Salt, got.Salt) {
		d = append(d, fmt.Sprintf("%s.Salt %x, want %x", name, got.Salt, want.Salt))
	}
	if want.Iterations != got.Iterations {
		d = append(d, fmt.Sprintf("%s.Iterations %d, want %d", name, got.Iterations, want.Iterations))
	}
	if !bytes.Equal(want.StoredKey, got.StoredKey) {
		d = append(d, fmt.Sprintf("%s.StoredKey %x, want %x", name, got.StoredKey, want.StoredKey))
	}
	if !bytes.Equal(want.ServerKey, got.ServerKey) {
		d = append(d, fmt.Sprintf("%s.ServerKey %x, want %x", name, got.ServerKey, want.ServerKey))
	}
	return strings.Join(d, "; ")
}

// accountDiff describes how got differs from want, field by field, or "".
func accountDiff(want, got storage.Account) string {
	var d []string
	if want.Username != got.Username {
		d = append(d, fmt.Sprintf("Username %q, want %q", got.Username, want.Username))
	}
	for _, c := range []string{credentialDiff("SHA1", want.SHA1, got.SHA1), credentialDiff("SHA256", want.SHA256, got.SHA256)} {
		if c != "" {
			d = append(d, c)
		}
	}
	times := []struct {
		name      string
		want, got time.Time
	}{{"Created", want.Created, got.Created}, {"LastLogin", want.LastLogin, got.LastLogin}, {"LastLogout", want.LastLogout, got.LastLogout}}
	for _, tm := range times {
		if !tm.want.Equal(tm.got) {
			d = append(d, fmt.Sprintf("%s %v, want %v", tm.name, tm.got, tm.want))
		}
	}
	if want.Disabled != got.Disabled {
		d = append(d, fmt.Sprintf("Disabled %v, want %v", got.Disabled, want.Disabled))
	}
	if want.MOTDSeen != got.MOTDSeen {
		d = append(d, fmt.Sprintf("MOTDSeen %d, want %d", got.MOTDSeen, want.MOTDSeen))
	}
	if want.WelcomePending != got.WelcomePending {
		d = append(d, fmt.Sprintf("WelcomePending %v, want %v", got.WelcomePending, want.WelcomePending))
	}
	return strings.Join(d, "; ")
}

// checkAccount fails the test unless the stored account equals want.
func checkAccount(t *testing.T, ctx context.Context, s storage.Store, want storage.Account) {
	t.Helper()
	got, err := s.Account(ctx, want.Username)
	must(t, err, fmt.Sprintf("Account(%q)", want.Username))
	if d := accountDiff(want, got); d != "" {
		t.Fatalf("Account(%q): %s", want.Username, d)
	}
}

// itemEqual reports whether two roster items hold the same; nil and empty
// Groups are the same.
func itemEqual(a, b storage.RosterItem) bool {
	return a.JID == b.JID && a.Name == b.Name && a.Subscription == b.Subscription &&
		a.AskOut == b.AskOut && a.PendingIn == b.PendingIn && a.PendingContent == b.PendingContent &&
		a.Hidden == b.Hidden && slices.Equal(a.Groups, b.Groups)
}

// checkRoster fails the test unless the account's roster holds want, in
// this order, at version ver.
func checkRoster(t *testing.T, ctx context.Context, s storage.Store, username string, want []storage.RosterItem, ver uint64) {
	t.Helper()
	items, v, err := s.Roster(ctx, username)
	must(t, err, fmt.Sprintf("Roster(%q)", username))
	if !slices.EqualFunc(items, want, itemEqual) {
		t.Fatalf("Roster(%q) items:\n got  %+v\n want %+v", username, items, want)
	}
	if v != ver {
		t.Fatalf("Roster(%q) version %d, want %d", username, v, ver)
	}
}

// setItem writes it as the roster item for it.JID and returns the version.
func setItem(t *testing.T, ctx context.Context, s storage.Store, username string, it storage.RosterItem) uint64 {
	t.Helper()
	v, err := s.UpdateRosterItem(ctx, username, it.JID, func(cur *storage.RosterItem, _ bool) (bool, error) {
		*cur = it
		return false, nil
	})
	must(t, err, fmt.Sprintf("UpdateRosterItem(%q, %q)", username, it.JID))
	return v
}

// putData writes entries into the account's bucket in one change.
func putData(t *testing.T, ctx context.Context, s storage.Store, username, bucket string, ds ...storage.Datum) {
	t.Helper()
	err := s.UpdateUserData(ctx, username, bucket, "", func([]storage.Datum) ([]storage.Datum, error) {
		return ds, nil
	})
	must(t, err, fmt.Sprintf("UpdateUserData(%q, %q)", username, bucket))
}

// datumEqual reports whether two entries are the same, byte for byte.
func datumEqual(a, b storage.Datum) bool { return a.Key == b.Key && bytes.Equal(a.Value, b.Value) }

// checkData fails the test unless the entries of the account's bucket under
// prefix are want, in this order.
func checkData(t *testing.T, ctx context.Context, s storage.Store, username, bucket, prefix string, want []storage.Datum) {
	t.Helper()
	got, err := s.UserData(ctx, username, bucket, prefix)
	must(t, err, fmt.Sprintf("UserData(%q, %q, %q)", username, bucket, prefix))
	if !slices.EqualFunc(got, want, datumEqual) {
		t.Fatalf("UserData(%q, %q, %q):\n got  %q\n want %q", username, bucket, prefix, got, want)
	}
}

// offlineEqual reports whether two offline messages are the same.
func offlineEqual(a, b storage.OfflineMessage) bool { return a.XML == b.XML && a.Stamp.Equal(b.Stamp) }

// storeOffline keeps msgs for username with no bound.
func storeOffline(t *testing.T, ctx context.Context, s storage.Store, username string, msgs ...storage.OfflineMessage) {
	t.Helper()
	for _, m := range msgs {
		must(t, s.StoreOffline(ctx, username, m, storage.OfflineQuota{}), fmt.Sprintf("StoreOffline(%q)", username))
	}
}

// checkTake fails the test unless TakeOffline returns want, in this order.
func checkTake(t *testing.T, ctx context.Context, s storage.Store, username string, want []storage.OfflineMessage) {
	t.Helper()
	got, err := s.TakeOffline(ctx, username)
	must(t, err, fmt.Sprintf("TakeOffline(%q)", username))
	if !slices.EqualFunc(got, want, offlineEqual) {
		t.Fatalf("TakeOffline(%q):\n got  %+v\n want %+v", username, got, want)
	}
}

// offlineMsg is a message with a body, stamped at.
func offlineMsg(at time.Time, body string) storage.OfflineMessage {
	return storage.OfflineMessage{Stamp: at, XML: "<message from='bob@example.org/phone' to='alice@example.org' type='chat'><body>" + body + "</body></message>"}
}
