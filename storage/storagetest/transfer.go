package storagetest

import (
	"context"
	"testing"
	"time"

	"github.com/adhocd/adhocd/storage"
)

var transferCases = []testCase{
	{"Copy", testTransferCopy},
	{"Again", testTransferAgain},
	{"ImportExisting", testTransferImportExisting},
	{"Export", testTransferExport},
}

// transferArchived is the size of alice's archive in the source: more than
// one page of storage.Transfer's.
const transferArchived = 520

// transferBuckets are the user data buckets the source fills.
var transferBuckets = []string{"vcard", "pep"}

// transferSource is what fillSource put in a store, to check the copy
// against.
type transferSource struct {
	settings map[string][]byte
	accounts []storage.Account
	rosters  map[string][]storage.RosterItem
	versions map[string]uint64
	offline  map[string][]storage.OfflineMessage
}

// transferStores opens the source and the destination, or skips the test
// if the store cannot be both.
func transferStores(t *testing.T, open opener) (storage.Store, storage.Store) {
	a := open(t)
	if _, ok := a.(storage.Exporter); !ok {
		t.Skip("the store does not implement storage.Exporter")
	}
	b := open(t)
	if _, ok := b.(storage.Importer); !ok {
		t.Skip("the store does not implement storage.Importer")
	}
	return a, b
}

// fillSource gives s settings, three accounts with rosters (one at a
// version above its number of items), offline messages, user data in two
// buckets and archives, one longer than a page of Transfer.
func fillSource(t *testing.T, ctx context.Context, s storage.Store) transferSource {
	t.Helper()
	src := transferSource{
		settings: map[string][]byte{
			storage.SettingMOTD:    []byte(`{"text":"Hello","version":3}`),
			storage.SettingWelcome: []byte("Welcome ☃"),
			"binary":               {0, 0xff, 0, 'x', 0xfe},
		},
		rosters:  map[string][]storage.RosterItem{},
		versions: map[string]uint64{},
		offline:  map[string][]storage.OfflineMessage{},
	}
	for k, v := range src.settings {
		must(t, s.PutSetting(ctx, k, v), "PutSetting")
	}
	created := now().Add(-24 * time.Hour)
	src.accounts = []storage.Account{
		{Username: "alice", SHA1: credential(1, 20), SHA256: credential(2, 32), Created: created, MOTDSeen: 3, WelcomePending: true,
			LastLogin: created.Add(time.Hour), LastLogout: created.Add(2 * time.Hour)},
		{Username: "bob", SHA256: credential(3, 32), Created: created.Add(time.Minute), Disabled: true},
		{Username: "carol", Created: created.Add(2 * time.Minute)},
	}
	for _, a := range src.accounts {
		must(t, s.CreateAccount(ctx, a), "CreateAccount")
	}
	// alice: five changes leave two items.
	setItem(t, ctx, s, "alice", storage.RosterItem{JID: "bob@example.org", Subscription: storage.SubTo})
	setItem(t, ctx, s, "alice", storage.RosterItem{JID: "dave@example.org", Subscription: storage.SubNone})
	carol := storage.RosterItem{JID: "carol@example.org", Name: "Carol", Subscription: storage.SubFrom, Groups: []string{"Z", "A"}}
	setItem(t, ctx, s, "alice", carol)
	bob := storage.RosterItem{JID: "bob@example.org", Name: "Bob", Subscription: storage.SubBoth, Groups: []string{"Friends"}}
	setItem(t, ctx, s, "alice", bob)
	_, err := s.UpdateRosterItem(ctx, "alice", "dave@example.org", func(*storage.RosterItem, bool) (bool, error) { return true, nil })
	must(t, err, "UpdateRosterItem (remove)")
	src.rosters["alice"], src.versions["alice"] = []storage.RosterItem{bob, carol}, 5
	pending := storage.RosterItem{JID: "alice@example.org", Subscription: storage.SubNone, PendingIn: true, Hidden: true, PendingContent: "<status>hi</status>"}
	setItem(t, ctx, s, "bob", pending)
	src.rosters["bob"], src.versions["bob"] = []storage.RosterItem{pending}, 1

	base := now().Add(-time.Hour)
	src.offline["alice"] = []storage.OfflineMessage{offlineMsg(base, "o1"), offlineMsg(base.Add(time.Second), "o2"), offlineMsg(base.Add(2*time.Second), "o3")}
	src.offline["bob"] = []storage.OfflineMessage{offlineMsg(base, "for bob")}
	for u, msgs := range src.offline {
		storeOffline(t, ctx, s, u, msgs...)
	}

	putData(t, ctx, s, "alice", "vcard", storage.Datum{Key: "vcard", Value: []byte("<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")})
	putAwkward(t, ctx, s, "alice", "pep")
	putData(t, ctx, s, "bob", "pep", storage.Datum{Key: "node\x00item", Value: []byte{0xff}})

	appendArchive(t, ctx, s, "alice", storage.ArchiveQuota{}, archived(transferArchived, "bob@example.org/phone", "carol@example.org", "example.org")...)
	appendArchive(t, ctx, s, "bob", storage.ArchiveQuota{}, archived(3, "alice@example.org/home")...)
	return src
}

// checkCopy fails the test unless b holds what a holds for src: settings,
// accounts, rosters with their versions, user data and archives with
// their ids and stamps. Offline messages are checked by the caller, as
// reading them takes them.
func checkCopy(t *testing.T, ctx context.Context, a, b storage.Store, src transferSource) {
	t.Helper()
	for k, v := range src.settings {
		checkSetting(t, ctx, b, k, v)
	}
	want, err := a.Accounts(ctx)
	must(t, err, "Accounts of the source")
	got, err := b.Accounts(ctx)
	must(t, err, "Accounts of the copy")
	if len(got) != len(want) {
		t.Fatalf("the copy has %d accounts, the source %d", len(got), len(want))
	}
	for i := range want {
		if d := accountDiff(want[i], got[i]); d != "" {
			t.Fatalf("account %q in the copy: %s", want[i].Username, d)
		}
	}
	for _, acc := range want {
		u := acc.Username
		items, ver, err := a.Roster(ctx, u)
		must(t, err, "Roster of the source")
		checkRoster(t, ctx, b, u, items, ver)
		for _, bucket := range transferBuckets {
			ds, err := a.UserData(ctx, u, bucket, "")
			must(t, err, "UserData of the source")
			checkData(t, ctx, b, u, bucket, "", ds)
		}
		msgs := archiveAll(t, ctx, a, u)
		checkQuery(t, ctx, b, u, storage.ArchiveQuery{Max: len(msgs) + 1}, msgs, true)
		checkSize(t, ctx, b, u, msgs)
	}
	// And the source's figures are the ones fillSource wrote.
	for _, acc := range src.accounts {
		checkAccount(t, ctx, b, acc)
	}
	for u, items := range src.rosters {
		checkRoster(t, ctx, b, u, items, src.versions[u])
	}
	if n := len(archiveAll(t, ctx, b, "alice")); n < transferArchived {
		t.Fatalf("alice's archive in the copy holds %d messages, want at least %d", n, transferArchived)
	}
}

// testTransferCopy: storage.Transfer copies everything into an empty
// store, counts it, and leaves the source as it was.
func testTransferCopy(t *testing.T, open opener) {
	a, b := transferStores(t, open)
	ctx := testContext(t)
	src := fillSource(t, ctx, a)
	r, err := storage.Transfer(ctx, a, b, nil)
	must(t, err, "Transfer")
	want := storage.TransferReport{Settings: 3, Accounts: 3, RosterItems: 3, Offline: 4, UserData: len(awkwardKeys) + 2, Archived: transferArchived + 3}
	if r != want {
		t.Fatalf("Transfer report %+v, want %+v", r, want)
	}
	checkCopy(t, ctx, a, b, src)
	if r, ok := b.(storage.OfflineUsageReporter); ok {
		if bytes, n := r.OfflineUsage(); n != 4 || bytes != offlineBytes(src.offline) {
			t.Fatalf("OfflineUsage of the copy: %d bytes in %d messages, want %d in 4", bytes, n, offlineBytes(src.offline))
		}
	}
	for u, msgs := range src.offline {
		checkTake(t, ctx, b, u, msgs)
		checkTake(t, ctx, a, u, msgs) // the export left them
	}
}

// offlineBytes is the bytes of the XML of every message in m.
func offlineBytes(m map[string][]storage.OfflineMessage) int64 {
	var n int64
	for _, msgs := range m {
		for _, msg := range msgs {
			n += int64(len(msg.XML))
		}
	}
	return n
}

// testTransferAgain: a second Transfer after the source changed writes the
// settings over, creates the new accounts, completes the archives of the
// accounts already there without doubling a message, and leaves the rest
// of those accounts as they are.
func testTransferAgain(t *testing.T, open opener) {
	a, b := transferStores(t, open)
	ctx := testContext(t)
	src := fillSource(t, ctx, a)
	_, err := storage.Transfer(ctx, a, b, nil)
	must(t, err, "Transfer")

	// The source goes on; the copy's alice changes too.
	src.settings[storage.SettingMOTD] = []byte(`{"text":"Changed","version":4}`)
	must(t, a.PutSetting(ctx, storage.SettingMOTD, src.settings[storage.SettingMOTD]), "PutSetting")
	appendArchive(t, ctx, a, "alice", storage.ArchiveQuota{}, archived(5, "carol@example.org/new")...)
	storeOffline(t, ctx, a, "alice", offlineMsg(now(), "after the first transfer"))
	dave := storage.Account{Username: "dave", SHA256: credential(7, 32), Created: now()}
	must(t, a.CreateAccount(ctx, dave), "CreateAccount")
	setItem(t, ctx, a, "dave", storage.RosterItem{JID: "alice@example.org", Subscription: storage.SubBoth})
	storeOffline(t, ctx, a, "dave", offlineMsg(now(), "for dave"))
	putData(t, ctx, a, "dave", "vcard", storage.Datum{Key: "vcard", Value: []byte("dave")})
	appendArchive(t, ctx, a, "dave", storage.ArchiveQuota{}, archived(2, "alice@example.org")...)
	must(t, b.UpdateAccount(ctx, "alice", func(acc *storage.Account) error { acc.MOTDSeen = 100; return nil }), "UpdateAccount in the copy")

	r, err := storage.Transfer(ctx, a, b, nil)
	must(t, err, "Transfer again")
	if r.Settings != 3 || r.Accounts != 1 || r.Existing != 3 || r.RosterItems != 1 || r.Offline != 1 || r.UserData != 1 {
		t.Fatalf("second Transfer report %+v, want 3 settings, 1 account (1 roster item, 1 offline message, 1 datum), 3 existing", r)
	}
	checkSetting(t, ctx, b, storage.SettingMOTD, src.settings[storage.SettingMOTD])
	for _, u := range []string{"alice", "bob", "dave"} {
		msgs := archiveAll(t, ctx, a, u)
		checkQuery(t, ctx, b, u, storage.ArchiveQuery{Max: len(msgs) + 1}, msgs, true)
		checkSize(t, ctx, b, u, msgs)
	}
	if n := len(archiveAll(t, ctx, b, "alice")); n != transferArchived+5 {
		t.Fatalf("alice's archive in the copy holds %d messages after two transfers, want %d", n, transferArchived+5)
	}
	alice := src.accounts[0]
	alice.MOTDSeen = 100
	checkAccount(t, ctx, b, alice)
	checkAccount(t, ctx, b, dave)
	checkRoster(t, ctx, b, "alice", src.rosters["alice"], src.versions["alice"])
	checkRoster(t, ctx, b, "dave", []storage.RosterItem{{JID: "alice@example.org", Subscription: storage.SubBoth}}, 1)
	checkData(t, ctx, b, "dave", "vcard", "", []storage.Datum{{Key: "vcard", Value: []byte("dave")}})
	checkTake(t, ctx, b, "alice", src.offline["alice"])
	checkTake(t, ctx, b, "bob", src.offline["bob"])
	dm, err := a.TakeOffline(ctx, "dave")
	must(t, err, "TakeOffline of the source")
	checkTake(t, ctx, b, "dave", dm)

	// A third run with nothing new changes nothing.
	_, err = storage.Transfer(ctx, a, b, nil)
	must(t, err, "Transfer a third time")
	if n := len(archiveAll(t, ctx, b, "alice")); n != transferArchived+5 {
		t.Fatalf("alice's archive in the copy holds %d messages after three transfers, want %d", n, transferArchived+5)
	}
}

// testTransferImportExisting: ImportAccount of an account that exists is
// ErrExists and changes nothing of it.
func testTransferImportExisting(t *testing.T, open opener) {
	s := open(t)
	im, ok := s.(storage.Importer)
	if !ok {
		t.Skip("the store does not implement storage.Importer")
	}
	ctx := testContext(t)
	alice := storage.Account{Username: "alice", SHA256: credential(1, 32), Created: now().Add(-time.Hour), MOTDSeen: 1}
	must(t, s.CreateAccount(ctx, alice), "CreateAccount")
	item := storage.RosterItem{JID: "bob@example.org", Subscription: storage.SubBoth}
	setItem(t, ctx, s, "alice", item)
	putData(t, ctx, s, "alice", "vcard", storage.Datum{Key: "vcard", Value: []byte("mine")})
	err := im.ImportAccount(ctx, storage.AccountData{
		Account:       storage.Account{Username: "alice", SHA256: credential(9, 32), Created: now(), Disabled: true, MOTDSeen: 50},
		Roster:        []storage.RosterItem{{JID: "mallory@example.org", Subscription: storage.SubBoth}},
		RosterVersion: 40,
		Offline:       []storage.OfflineMessage{offlineMsg(now(), "imported")},
		UserData:      map[string][]storage.Datum{"vcard": {{Key: "vcard", Value: []byte("theirs")}}, "pep": {{Key: "k", Value: []byte("v")}}},
	})
	wantErr(t, err, storage.ErrExists, "ImportAccount of an existing account")
	checkAccount(t, ctx, s, alice)
	checkRoster(t, ctx, s, "alice", []storage.RosterItem{item}, 1)
	checkData(t, ctx, s, "alice", "vcard", "", []storage.Datum{{Key: "vcard", Value: []byte("mine")}})
	checkData(t, ctx, s, "alice", "pep", "", nil)
	checkTake(t, ctx, s, "alice", nil)
}

// testTransferExport: ExportAccount of an account that does not exist is
// ErrNotFound; of one that does, it returns what the store holds, offline
// messages oldest first, and leaves them there.
func testTransferExport(t *testing.T, open opener) {
	s := open(t)
	ex, ok := s.(storage.Exporter)
	if !ok {
		t.Skip("the store does not implement storage.Exporter")
	}
	ctx := testContext(t)
	_, err := ex.ExportAccount(ctx, "nobody")
	wantErr(t, err, storage.ErrNotFound, "ExportAccount of an unknown account")
	settings, err := ex.AllSettings(ctx)
	must(t, err, "AllSettings")
	if len(settings) != 0 {
		t.Fatalf("AllSettings of a new store: %q", settings)
	}
	createAccounts(t, ctx, s, "alice")
	storeOffline(t, ctx, s, "alice", offlineMsg(now(), "one"), offlineMsg(now().Add(time.Second), "two"))
	d, err := ex.ExportAccount(ctx, "alice")
	must(t, err, "ExportAccount")
	if d.Account.Username != "alice" || len(d.Roster) != 0 || d.RosterVersion != 0 || len(d.Offline) != 2 || d.Offline[0].XML != offlineMsg(now(), "one").XML {
		t.Fatalf("ExportAccount: %+v", d)
	}
	for bucket, ds := range d.UserData {
		if len(ds) > 0 {
			t.Fatalf("ExportAccount of an account without user data: bucket %q holds %q", bucket, ds)
		}
	}
	checkTake(t, ctx, s, "alice", d.Offline)
}
