package storagetest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/storage"
)

var accountCases = []testCase{
	{"Create", testAccountCreate},
	{"CreateDuplicate", testAccountCreateDuplicate},
	{"NotFound", testAccountNotFound},
	{"Credentials", testAccountCredentials},
	{"Update", testAccountUpdate},
	{"UpdateAbort", testAccountUpdateAbort},
	{"UpdateKeepsUsername", testAccountUpdateKeepsUsername},
	{"Order", testAccountOrder},
	{"LoginTimes", testAccountLoginTimes},
	{"LoginTimesSeenAtOnce", testAccountLoginTimesSeenAtOnce},
	{"LoginTimesUnknownAccount", testAccountLoginTimesUnknown},
	{"Delete", testAccountDelete},
	{"Recreate", testAccountRecreate},
}

// credential is a SCRAM credential of plausible sizes, different for each
// seed.
func credential(seed byte, keyLen int) storage.Credential {
	return storage.Credential{
		Salt:       seq(seed, 16),
		Iterations: 4096 + int(seed),
		StoredKey:  seq(seed+1, keyLen),
		ServerKey:  seq(seed+2, keyLen),
	}
}

// testAccountCreate: every field of an account comes back as it was made.
func testAccountCreate(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	created := now().Add(-time.Hour)
	want := []storage.Account{
		{Username: "alice", SHA1: credential(1, 20), SHA256: credential(2, 32), Created: created, MOTDSeen: 7, WelcomePending: true},
		{Username: "bob", SHA256: credential(3, 32), Created: created.Add(time.Minute), Disabled: true,
			LastLogin: created.Add(2 * time.Minute), LastLogout: created.Add(3 * time.Minute)},
	}
	for _, a := range want {
		must(t, s.CreateAccount(ctx, a), "CreateAccount")
	}
	for _, a := range want {
		checkAccount(t, ctx, s, a)
	}
	all, err := s.Accounts(ctx)
	must(t, err, "Accounts")
	if len(all) != len(want) {
		t.Fatalf("Accounts returned %d accounts, want %d", len(all), len(want))
	}
	for i := range want {
		if d := accountDiff(want[i], all[i]); d != "" {
			t.Errorf("Accounts()[%d]: %s", i, d)
		}
	}
}

// testAccountCreateDuplicate: a second account of the same name is
// ErrExists and changes nothing of the first.
func testAccountCreateDuplicate(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	first := storage.Account{Username: "alice", SHA256: credential(1, 32), Created: now().Add(-time.Hour), MOTDSeen: 1}
	must(t, s.CreateAccount(ctx, first), "CreateAccount")
	second := storage.Account{Username: "alice", SHA256: credential(9, 32), Created: now(), Disabled: true, MOTDSeen: 2}
	wantErr(t, s.CreateAccount(ctx, second), storage.ErrExists, "CreateAccount of an existing name")
	checkAccount(t, ctx, s, first)
	all, err := s.Accounts(ctx)
	must(t, err, "Accounts")
	if len(all) != 1 {
		t.Fatalf("Accounts after a refused duplicate: %d accounts, want 1", len(all))
	}
}

// testAccountNotFound: the methods on one account answer ErrNotFound for a
// name that has none.
func testAccountNotFound(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	all, err := s.Accounts(ctx)
	must(t, err, "Accounts of an empty store")
	if len(all) != 0 {
		t.Fatalf("a new store has accounts: %+v", all)
	}
	createAccounts(t, ctx, s, "alice")
	_, err = s.Account(ctx, "nobody")
	wantErr(t, err, storage.ErrNotFound, "Account(nobody)")
	err = s.UpdateAccount(ctx, "nobody", func(*storage.Account) error { return nil })
	wantErr(t, err, storage.ErrNotFound, "UpdateAccount(nobody)")
	if _, err := s.Account(ctx, "nobody"); err == nil {
		t.Fatal("UpdateAccount of a missing account created it")
	}
	_, err = s.DeleteAccount(ctx, "nobody", "nobody@example.org")
	wantErr(t, err, storage.ErrNotFound, "DeleteAccount(nobody)")
	// A name that is a prefix of an existing one is another name.
	_, err = s.Account(ctx, "alic")
	wantErr(t, err, storage.ErrNotFound, "Account(alic)")
}

// testAccountCredentials: credentials come back byte for byte, whatever
// bytes they hold, and an empty one stays empty.
func testAccountCredentials(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	want := storage.Account{
		Username: "alice",
		SHA1:     storage.Credential{Salt: []byte{0, 0, 0xff, 0}, Iterations: 1 << 20, StoredKey: seq(0, 20), ServerKey: seq(0xff, 20)},
		SHA256:   storage.Credential{Salt: allBytes, Iterations: 4096, StoredKey: append([]byte{0, 0}, seq(7, 30)...), ServerKey: append(seq(9, 31), 0)},
		Created:  now(),
	}
	must(t, s.CreateAccount(ctx, want), "CreateAccount")
	checkAccount(t, ctx, s, want)
	// No SHA-1 credential at all (an account made with SCRAM-SHA-256 only).
	bare := storage.Account{Username: "bob", SHA256: credential(4, 32), Created: now()}
	must(t, s.CreateAccount(ctx, bare), "CreateAccount")
	checkAccount(t, ctx, s, bare)
	// Credentials changed by UpdateAccount (a password change) too.
	want.SHA256 = storage.Credential{Salt: seq(0xf0, 24), Iterations: 10000, StoredKey: seq(0x80, 32), ServerKey: seq(0, 32)}
	must(t, s.UpdateAccount(ctx, "alice", func(a *storage.Account) error { a.SHA256 = want.SHA256; return nil }), "UpdateAccount")
	checkAccount(t, ctx, s, want)
}

// testAccountUpdate: fn gets the stored account and what it changes is
// stored.
func testAccountUpdate(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	a := storage.Account{Username: "alice", SHA256: credential(1, 32), Created: now().Add(-time.Hour), WelcomePending: true}
	must(t, s.CreateAccount(ctx, a), "CreateAccount")
	createAccounts(t, ctx, s, "bob")
	want := a
	want.Disabled, want.MOTDSeen, want.WelcomePending = true, 42, false
	err := s.UpdateAccount(ctx, "alice", func(cur *storage.Account) error {
		if d := accountDiff(a, *cur); d != "" {
			t.Errorf("fn got: %s", d)
		}
		cur.Disabled, cur.MOTDSeen, cur.WelcomePending = true, 42, false
		return nil
	})
	must(t, err, "UpdateAccount")
	checkAccount(t, ctx, s, want)
	// And back: false and zero values are stored as such.
	want.Disabled, want.MOTDSeen = false, 0
	must(t, s.UpdateAccount(ctx, "alice", func(cur *storage.Account) error {
		cur.Disabled, cur.MOTDSeen = false, 0
		return nil
	}), "UpdateAccount")
	checkAccount(t, ctx, s, want)
	// The other account is untouched.
	b, err := s.Account(ctx, "bob")
	must(t, err, "Account(bob)")
	if b.Disabled || b.MOTDSeen != 0 {
		t.Fatalf("bob changed with alice: %+v", b)
	}
}

// testAccountUpdateAbort: an error from fn is returned and nothing that fn
// did is stored.
func testAccountUpdateAbort(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	a := storage.Account{Username: "alice", SHA256: credential(1, 32), Created: now().Add(-time.Hour), MOTDSeen: 3}
	must(t, s.CreateAccount(ctx, a), "CreateAccount")
	err := s.UpdateAccount(ctx, "alice", func(cur *storage.Account) error {
		cur.Disabled, cur.MOTDSeen, cur.SHA256 = true, 99, credential(8, 32)
		return errBoom
	})
	wantErr(t, err, errBoom, "UpdateAccount with a failing fn")
	checkAccount(t, ctx, s, a)
}

// testAccountUpdateKeepsUsername: fn cannot rename the account.
func testAccountUpdateKeepsUsername(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	must(t, s.UpdateAccount(ctx, "alice", func(cur *storage.Account) error {
		cur.Username = "mallory"
		cur.MOTDSeen = 5
		return nil
	}), "UpdateAccount")
	got, err := s.Account(ctx, "alice")
	must(t, err, "Account(alice)")
	if got.Username != "alice" || got.MOTDSeen != 5 {
		t.Fatalf("after fn renamed it: %+v, want username alice with MOTDSeen 5", got)
	}
	_, err = s.Account(ctx, "mallory")
	wantErr(t, err, storage.ErrNotFound, "Account(mallory)")
	all, err := s.Accounts(ctx)
	must(t, err, "Accounts")
	if len(all) != 1 || all[0].Username != "alice" {
		t.Fatalf("Accounts after fn renamed alice: %+v", all)
	}
}

// testAccountOrder: Accounts lists every account ordered by the bytes of
// the username, whatever the order they were made in.
func testAccountOrder(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	// Punctuation and digits that a collation would order otherwise.
	names := []string{"zed", "b", "ab", "a.b", "a-c", "a_b", "a1", "alice", "a", "émile", "z9", "bob"}
	createAccounts(t, ctx, s, names...)
	all, err := s.Accounts(ctx)
	must(t, err, "Accounts")
	var got []string
	for _, a := range all {
		got = append(got, a.Username)
	}
	want := slices.Sorted(slices.Values(names))
	if !slices.Equal(got, want) {
		t.Fatalf("Accounts order:\n got  %q\n want %q", got, want)
	}
}

// testAccountLoginTimes: RecordLogin and RecordLogout keep the later time
// only, each on its own field, and every read sees them at once, an
// UpdateAccount too (which must not lose them).
func testAccountLoginTimes(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	created := now().Add(-time.Hour)
	want := storage.Account{Username: "alice", SHA256: credential(1, 32), Created: created}
	must(t, s.CreateAccount(ctx, want), "CreateAccount")
	createAccounts(t, ctx, s, "bob")
	t1 := created.Add(10 * time.Minute)
	t2, t3 := t1.Add(time.Minute), t1.Add(2*time.Minute)

	step := func(what string, rec func(string, time.Time) error, at time.Time, login, logout time.Time) {
		t.Helper()
		must(t, rec("alice", at), what)
		want.LastLogin, want.LastLogout = login, logout
		checkAccount(t, ctx, s, want)
	}
	step("RecordLogin(t2)", s.RecordLogin, t2, t2, time.Time{})
	step("RecordLogin(t1), earlier", s.RecordLogin, t1, t2, time.Time{})
	step("RecordLogout(t1)", s.RecordLogout, t1, t2, t1)
	step("RecordLogin(t3)", s.RecordLogin, t3, t3, t1)
	step("RecordLogout(t1 - 1s), earlier", s.RecordLogout, t1.Add(-time.Second), t3, t1)
	step("RecordLogout(t2)", s.RecordLogout, t2, t3, t2)

	all, err := s.Accounts(ctx)
	must(t, err, "Accounts")
	if len(all) != 2 || !all[0].LastLogin.Equal(t3) || !all[0].LastLogout.Equal(t2) {
		t.Fatalf("Accounts after the logins: %+v, want alice with LastLogin %v and LastLogout %v", all, t3, t2)
	}
	if !all[1].LastLogin.IsZero() || !all[1].LastLogout.IsZero() {
		t.Fatalf("bob has alice's login times: %+v", all[1])
	}
	err = s.UpdateAccount(ctx, "alice", func(cur *storage.Account) error {
		if !cur.LastLogin.Equal(t3) || !cur.LastLogout.Equal(t2) {
			t.Errorf("UpdateAccount's fn got LastLogin %v LastLogout %v, want %v and %v", cur.LastLogin, cur.LastLogout, t3, t2)
		}
		cur.Disabled = true
		return nil
	})
	must(t, err, "UpdateAccount")
	want.Disabled = true
	checkAccount(t, ctx, s, want)
	// And a later login after the update.
	t4 := t3.Add(time.Minute)
	step("RecordLogin(t4)", s.RecordLogin, t4, t4, t2)
}

// testAccountLoginTimesSeenAtOnce: a read right after RecordLogin sees the
// time, however the store writes the times behind the scenes. A store
// that writes them in batches and lets a read miss a batch being written
// fails some of these rounds, not all: there are many.
func testAccountLoginTimesSeenAtOnce(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	created := now().Add(-time.Hour)
	must(t, s.CreateAccount(ctx, storage.Account{Username: "alice", Created: created}), "CreateAccount")
	const rounds = 5000
	for i := 1; i <= rounds; i++ {
		at := created.Add(time.Duration(i) * time.Millisecond)
		must(t, s.RecordLogin("alice", at), "RecordLogin")
		a, err := s.Account(ctx, "alice")
		must(t, err, "Account")
		if !a.LastLogin.Equal(at) {
			t.Fatalf("round %d of %d: Account right after RecordLogin(%v) has LastLogin %v", i, rounds, at, a.LastLogin)
		}
	}
}

// testAccountLoginTimesUnknown: times recorded for a name with no account
// are ignored: no error, no account, and nothing for an account made later
// under that name.
func testAccountLoginTimesUnknown(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	at := now().Add(-time.Hour)
	must(t, s.RecordLogin("ghost", at), "RecordLogin of an unknown account")
	must(t, s.RecordLogout("ghost", at.Add(time.Minute)), "RecordLogout of an unknown account")
	_, err := s.Account(ctx, "ghost")
	wantErr(t, err, storage.ErrNotFound, "Account(ghost) after RecordLogin")
	all, err := s.Accounts(ctx)
	must(t, err, "Accounts")
	if len(all) != 0 {
		t.Fatalf("RecordLogin made accounts: %+v", all)
	}
	want := storage.Account{Username: "ghost", Created: now()}
	must(t, s.CreateAccount(ctx, want), "CreateAccount(ghost)")
	checkAccount(t, ctx, s, want)
}

// fillAccount gives username something of every kind a store keeps for an
// account: a roster item, offline messages, user data, archived messages
// and a login time.
func fillAccount(t *testing.T, ctx context.Context, s storage.Store, username string) {
	t.Helper()
	setItem(t, ctx, s, username, storage.RosterItem{JID: "zoe@example.org", Subscription: storage.SubBoth, Groups: []string{"Friends"}})
	storeOffline(t, ctx, s, username, offlineMsg(now().Add(-time.Minute), "one"), offlineMsg(now(), "two"))
	putData(t, ctx, s, username, "vcard", storage.Datum{Key: "vcard", Value: []byte("<vCard xmlns='vcard-temp'/>")})
	putData(t, ctx, s, username, "pep", storage.Datum{Key: "urn:xmpp:avatar:data\x00abc", Value: []byte{0, 1, 2}})
	for i := range 3 {
		_, err := s.AppendArchive(ctx, username, storage.ArchivedMessage{With: "zoe@example.org/phone", XML: archiveXML(i)}, storage.ArchiveQuota{})
		must(t, err, "AppendArchive")
	}
	a, err := s.Account(ctx, username)
	must(t, err, "Account")
	must(t, s.RecordLogin(username, a.Created.Add(time.Minute)), "RecordLogin")
}

// testAccountDelete: DeleteAccount removes the account and the item for it
// from every other roster, a hidden one holding its request too, and
// returns those items with their owners' new versions; rosters without it
// keep their version; the other accounts keep what they have.
func testAccountDelete(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice", "bob", "carol", "dave")
	fillAccount(t, ctx, s, "alice")
	setItem(t, ctx, s, "alice", storage.RosterItem{JID: "bob@example.org", Subscription: storage.SubBoth})

	bobsAlice := storage.RosterItem{JID: "alice@example.org", Name: "Alice", Subscription: storage.SubBoth, Groups: []string{"Work", "Friends"}}
	bobsDave := storage.RosterItem{JID: "dave@example.org", Subscription: storage.SubTo, AskOut: true}
	setItem(t, ctx, s, "bob", bobsAlice)
	bobVer := setItem(t, ctx, s, "bob", bobsDave)
	carolsAlice := storage.RosterItem{JID: "alice@example.org", Subscription: storage.SubNone, PendingIn: true, Hidden: true,
		PendingContent: "<status>hi, it's alice</status>"}
	carolVer := setItem(t, ctx, s, "carol", carolsAlice)
	davesCarol := storage.RosterItem{JID: "carol@example.org", Subscription: storage.SubFrom}
	setItem(t, ctx, s, "dave", davesCarol)
	// An item whose JID starts like alice's is another contact.
	davesAlicia := storage.RosterItem{JID: "alice@example.org.evil", Subscription: storage.SubNone}
	daveVer := setItem(t, ctx, s, "dave", davesAlicia)
	bobsMsg := offlineMsg(now(), "for bob")
	storeOffline(t, ctx, s, "bob", bobsMsg)
	putData(t, ctx, s, "bob", "vcard", storage.Datum{Key: "vcard", Value: []byte("bob's")})
	_, err := s.AppendArchive(ctx, "bob", storage.ArchivedMessage{With: "alice@example.org/home", XML: archiveXML(0)}, storage.ArchiveQuota{})
	must(t, err, "AppendArchive(bob)")

	removed, err := s.DeleteAccount(ctx, "alice", "alice@example.org")
	must(t, err, "DeleteAccount(alice)")
	slices.SortFunc(removed, func(a, b storage.RemovedItem) int { return strings.Compare(a.Owner, b.Owner) })
	want := []storage.RemovedItem{{Owner: "bob", Item: bobsAlice, Version: bobVer + 1}, {Owner: "carol", Item: carolsAlice, Version: carolVer + 1}}
	if !slices.EqualFunc(removed, want, func(a, b storage.RemovedItem) bool {
		return a.Owner == b.Owner && a.Version == b.Version && itemEqual(a.Item, b.Item)
	}) {
		t.Fatalf("DeleteAccount returned\n %+v\nwant\n %+v", removed, want)
	}
	checkRoster(t, ctx, s, "bob", []storage.RosterItem{bobsDave}, bobVer+1)
	checkRoster(t, ctx, s, "carol", nil, carolVer+1)
	checkRoster(t, ctx, s, "dave", []storage.RosterItem{davesAlicia, davesCarol}, daveVer)

	_, err = s.Account(ctx, "alice")
	wantErr(t, err, storage.ErrNotFound, "Account after DeleteAccount")
	all, err := s.Accounts(ctx)
	must(t, err, "Accounts")
	var names []string
	for _, a := range all {
		names = append(names, a.Username)
	}
	if !slices.Equal(names, []string{"bob", "carol", "dave"}) {
		t.Fatalf("Accounts after deleting alice: %q", names)
	}
	_, err = s.DeleteAccount(ctx, "alice", "alice@example.org")
	wantErr(t, err, storage.ErrNotFound, "DeleteAccount a second time")
	wantErr(t, s.StoreOffline(ctx, "alice", offlineMsg(now(), "late"), storage.OfflineQuota{}), storage.ErrNotFound, "StoreOffline for a deleted account")
	wantErr(t, s.UpdateUserData(ctx, "alice", "vcard", "", func([]storage.Datum) ([]storage.Datum, error) { return nil, nil }),
		storage.ErrNotFound, "UpdateUserData of a deleted account")

	// Bob keeps all he had.
	checkData(t, ctx, s, "bob", "vcard", "", []storage.Datum{{Key: "vcard", Value: []byte("bob's")}})
	if n, _, err := s.ArchiveSize(ctx, "bob"); err != nil || n != 1 {
		t.Fatalf("bob's archive after alice's deletion: %d messages (%v), want 1", n, err)
	}
	if r, ok := s.(storage.OfflineUsageReporter); ok {
		if bytes, n := r.OfflineUsage(); n != 1 || bytes != int64(len(bobsMsg.XML)) {
			t.Fatalf("OfflineUsage after DeleteAccount: %d bytes in %d messages, want bob's message alone", bytes, n)
		}
	}
	if r, ok := s.(storage.ArchiveUsageReporter); ok {
		n, bytes, err := r.ArchiveUsage(ctx)
		must(t, err, "ArchiveUsage")
		bn, bb, err := s.ArchiveSize(ctx, "bob")
		must(t, err, "ArchiveSize(bob)")
		if n != int64(bn) || bytes != bb {
			t.Fatalf("ArchiveUsage after DeleteAccount: %d messages %d bytes, want bob's %d and %d", n, bytes, bn, bb)
		}
	}
	checkTake(t, ctx, s, "bob", []storage.OfflineMessage{bobsMsg})
}

// testAccountRecreate: an account made again under a deleted name starts
// empty: no roster (version 0), offline messages, user data, archive or
// login times of the old one, even what was written just before the
// deletion.
func testAccountRecreate(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	fillAccount(t, ctx, s, "alice")
	_, err := s.DeleteAccount(ctx, "alice", "alice@example.org")
	must(t, err, "DeleteAccount")
	want := storage.Account{Username: "alice", SHA256: credential(5, 32), Created: now()}
	must(t, s.CreateAccount(ctx, want), "CreateAccount again")
	checkAccount(t, ctx, s, want)
	checkRoster(t, ctx, s, "alice", nil, 0)
	_, err = s.RosterItem(ctx, "alice", "zoe@example.org")
	wantErr(t, err, storage.ErrNotFound, "RosterItem of the old roster")
	checkTake(t, ctx, s, "alice", nil)
	for _, bucket := range []string{"vcard", "pep"} {
		checkData(t, ctx, s, "alice", bucket, "", nil)
		keys, err := s.UserDataKeys(ctx, "alice", bucket, "")
		must(t, err, "UserDataKeys")
		if len(keys) != 0 {
			t.Fatalf("UserDataKeys(%q) of the new account: %q", bucket, keys)
		}
		if n, err := s.UserDataSize(ctx, "alice", bucket); err != nil || n != 0 {
			t.Fatalf("UserDataSize(%q) of the new account: %d (%v), want 0", bucket, n, err)
		}
	}
	_, err = s.UserDatum(ctx, "alice", "vcard", "vcard")
	wantErr(t, err, storage.ErrNotFound, "UserDatum of the old account")
	msgs, complete, err := s.QueryArchive(ctx, "alice", storage.ArchiveQuery{Max: 100})
	must(t, err, "QueryArchive")
	if len(msgs) != 0 || !complete {
		t.Fatalf("QueryArchive of the new account: %d messages, complete %v; want none, complete", len(msgs), complete)
	}
	if n, b, err := s.ArchiveSize(ctx, "alice"); err != nil || n != 0 || b != 0 {
		t.Fatalf("ArchiveSize of the new account: %d messages %d bytes (%v), want 0 0", n, b, err)
	}
	if r, ok := s.(storage.OfflineUsageReporter); ok {
		if b, n := r.OfflineUsage(); b != 0 || n != 0 {
			t.Fatalf("OfflineUsage with the old account's messages deleted: %d bytes %d messages", b, n)
		}
	}
}
