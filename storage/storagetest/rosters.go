package storagetest

import (
	"slices"
	"strings"
	"testing"

	"github.com/adhocd/adhocd/storage"
)

var rosterCases = []testCase{
	{"New", testRosterNew},
	{"Create", testRosterCreate},
	{"Fields", testRosterFields},
	{"Update", testRosterUpdate},
	{"Remove", testRosterRemove},
	{"Versions", testRosterVersions},
	{"Order", testRosterOrder},
	{"Abort", testRosterAbort},
	{"UnknownAccount", testRosterUnknownAccount},
}

// testRosterNew: a new account's roster is empty at version 0, and has no
// items to read.
func testRosterNew(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	checkRoster(t, ctx, s, "alice", nil, 0)
	_, err := s.RosterItem(ctx, "alice", "bob@example.org")
	wantErr(t, err, storage.ErrNotFound, "RosterItem of an empty roster")
	_, err = s.RosterItem(ctx, "nobody", "bob@example.org")
	wantErr(t, err, storage.ErrNotFound, "RosterItem of an unknown account")
}

// testRosterCreate: fn gets the zero item with the JID set (subscription
// none) and exists false; what it sets is stored as the first change.
func testRosterCreate(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	calls := 0
	v, err := s.UpdateRosterItem(ctx, "alice", "bob@example.org", func(it *storage.RosterItem, exists bool) (bool, error) {
		calls++
		if exists {
			t.Errorf("exists is true for an item never made")
		}
		if want := (storage.RosterItem{JID: "bob@example.org", Subscription: storage.SubNone}); !itemEqual(*it, want) {
			t.Errorf("fn got %+v, want %+v", *it, want)
		}
		it.Name = "Bob"
		it.AskOut = true
		return false, nil
	})
	must(t, err, "UpdateRosterItem")
	if calls != 1 {
		t.Fatalf("fn called %d times, want once", calls)
	}
	if v != 1 {
		t.Fatalf("version after the first change %d, want 1", v)
	}
	want := storage.RosterItem{JID: "bob@example.org", Name: "Bob", Subscription: storage.SubNone, AskOut: true}
	got, err := s.RosterItem(ctx, "alice", "bob@example.org")
	must(t, err, "RosterItem")
	if !itemEqual(got, want) {
		t.Fatalf("RosterItem %+v, want %+v", got, want)
	}
	checkRoster(t, ctx, s, "alice", []storage.RosterItem{want}, 1)
}

// testRosterFields: every field of an item comes back as written, groups
// in their order, through Roster, RosterItem and the next fn; and fields
// set back to their zero values come back so.
func testRosterFields(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	items := []storage.RosterItem{
		{
			JID:            "a@example.org",
			Name:           "Ann ☃ <&> \"quoted\" 'too'",
			Subscription:   storage.SubBoth,
			AskOut:         true,
			PendingIn:      true,
			PendingContent: "<status>hi &amp; bye</status><nick xmlns='http://jabber.org/protocol/nick'>Ann</nick>",
			Hidden:         true,
			Groups:         []string{"Zeta", "alpha", "Beta", "Ünïcode", "with space"},
		},
		{JID: "b@example.org", Subscription: storage.SubTo, Groups: []string{"one"}},
		{JID: "c@example.org", Subscription: storage.SubFrom, PendingIn: true},
		{JID: "d@example.org", Subscription: storage.SubNone, Hidden: true, PendingIn: true, PendingContent: "<status/>"},
	}
	for _, it := range items {
		setItem(t, ctx, s, "alice", it)
	}
	checkRoster(t, ctx, s, "alice", items, uint64(len(items)))
	for _, want := range items {
		got, err := s.RosterItem(ctx, "alice", want.JID)
		must(t, err, "RosterItem")
		if !itemEqual(got, want) {
			t.Fatalf("RosterItem(%q) %+v, want %+v", want.JID, got, want)
		}
		_, err = s.UpdateRosterItem(ctx, "alice", want.JID, func(it *storage.RosterItem, exists bool) (bool, error) {
			if !exists || !itemEqual(*it, want) {
				t.Errorf("fn for %q got %+v (exists %v), want %+v", want.JID, *it, exists, want)
			}
			return false, nil
		})
		must(t, err, "UpdateRosterItem")
	}
	cleared := storage.RosterItem{JID: "a@example.org", Subscription: storage.SubNone}
	setItem(t, ctx, s, "alice", cleared)
	got, err := s.RosterItem(ctx, "alice", "a@example.org")
	must(t, err, "RosterItem")
	if !itemEqual(got, cleared) {
		t.Fatalf("item with its fields cleared: %+v, want %+v", got, cleared)
	}
}

// testRosterUpdate: fn gets the stored item with exists true, and its
// change replaces it.
func testRosterUpdate(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	first := storage.RosterItem{JID: "bob@example.org", Subscription: storage.SubNone, AskOut: true, Groups: []string{"Friends"}}
	setItem(t, ctx, s, "alice", first)
	v, err := s.UpdateRosterItem(ctx, "alice", "bob@example.org", func(it *storage.RosterItem, exists bool) (bool, error) {
		if !exists || !itemEqual(*it, first) {
			t.Errorf("fn got %+v (exists %v), want %+v", *it, exists, first)
		}
		it.Subscription, it.AskOut = storage.SubTo, false
		it.Groups = append(it.Groups, "Work")
		return false, nil
	})
	must(t, err, "UpdateRosterItem")
	if v != 2 {
		t.Fatalf("version after the second change %d, want 2", v)
	}
	want := storage.RosterItem{JID: "bob@example.org", Subscription: storage.SubTo, Groups: []string{"Friends", "Work"}}
	checkRoster(t, ctx, s, "alice", []storage.RosterItem{want}, 2)
}

// testRosterRemove: fn's remove deletes the item and raises the version;
// removing an item that is not there changes nothing, the version neither.
func testRosterRemove(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	bob := storage.RosterItem{JID: "bob@example.org", Subscription: storage.SubBoth}
	carol := storage.RosterItem{JID: "carol@example.org", Subscription: storage.SubFrom}
	setItem(t, ctx, s, "alice", bob)
	setItem(t, ctx, s, "alice", carol)
	remove := func(contact string, wantExists bool) uint64 {
		t.Helper()
		v, err := s.UpdateRosterItem(ctx, "alice", contact, func(_ *storage.RosterItem, exists bool) (bool, error) {
			if exists != wantExists {
				t.Errorf("fn for %q: exists %v, want %v", contact, exists, wantExists)
			}
			return true, nil
		})
		must(t, err, "UpdateRosterItem (remove)")
		return v
	}
	if v := remove("bob@example.org", true); v != 3 {
		t.Fatalf("version after removing bob %d, want 3", v)
	}
	_, err := s.RosterItem(ctx, "alice", "bob@example.org")
	wantErr(t, err, storage.ErrNotFound, "RosterItem of a removed item")
	checkRoster(t, ctx, s, "alice", []storage.RosterItem{carol}, 3)
	if v := remove("bob@example.org", false); v != 3 {
		t.Fatalf("removing an absent item returned version %d, want 3 (unchanged)", v)
	}
	if v := remove("nobody@example.org", false); v != 3 {
		t.Fatalf("removing an item never made returned version %d, want 3 (unchanged)", v)
	}
	checkRoster(t, ctx, s, "alice", []storage.RosterItem{carol}, 3)
	// Added again after its removal, it starts from the zero item.
	_, err = s.UpdateRosterItem(ctx, "alice", "bob@example.org", func(it *storage.RosterItem, exists bool) (bool, error) {
		if want := (storage.RosterItem{JID: "bob@example.org", Subscription: storage.SubNone}); exists || !itemEqual(*it, want) {
			t.Errorf("fn after the removal got %+v (exists %v), want %+v", *it, exists, want)
		}
		return false, nil
	})
	must(t, err, "UpdateRosterItem")
	remove("carol@example.org", true)
	_, ver, err := s.Roster(ctx, "alice")
	must(t, err, "Roster")
	if ver != 5 {
		t.Fatalf("version %d after five changes, want 5", ver)
	}
}

// testRosterVersions: each change returns the version after it, one more
// than before; Roster reports the last; each account's roster counts its
// own changes.
func testRosterVersions(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice", "bob")
	contacts := []string{"c@example.org", "a@example.org", "c@example.org", "b@example.org", "a@example.org"}
	for i, c := range contacts {
		v := setItem(t, ctx, s, "alice", storage.RosterItem{JID: c, Subscription: storage.SubNone, Name: strings.Repeat("x", i)})
		if v != uint64(i+1) {
			t.Fatalf("change %d returned version %d, want %d", i+1, v, i+1)
		}
		_, ver, err := s.Roster(ctx, "alice")
		must(t, err, "Roster")
		if ver != v {
			t.Fatalf("Roster version %d after a change that returned %d", ver, v)
		}
	}
	checkRoster(t, ctx, s, "bob", nil, 0)
	if v := setItem(t, ctx, s, "bob", storage.RosterItem{JID: "a@example.org", Subscription: storage.SubNone}); v != 1 {
		t.Fatalf("bob's first change returned version %d, want 1", v)
	}
	_, ver, err := s.Roster(ctx, "alice")
	must(t, err, "Roster")
	if ver != uint64(len(contacts)) {
		t.Fatalf("alice's version %d after a change of bob's, want %d", ver, len(contacts))
	}
}

// testRosterOrder: Roster lists the items ordered by the bytes of the JID,
// whatever the order they were made in.
func testRosterOrder(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	jids := []string{"zed@example.org", "bob@example.org", "a-b@example.org", "a.b@example.org", "ab@example.org",
		"a@example.org", "example.org", "bob@a.example", "Émile@example.org", "a_b@example.org"}
	for _, j := range jids {
		setItem(t, ctx, s, "alice", storage.RosterItem{JID: j, Subscription: storage.SubNone})
	}
	items, _, err := s.Roster(ctx, "alice")
	must(t, err, "Roster")
	var got []string
	for _, it := range items {
		got = append(got, it.JID)
	}
	if want := slices.Sorted(slices.Values(jids)); !slices.Equal(got, want) {
		t.Fatalf("Roster order:\n got  %q\n want %q", got, want)
	}
}

// testRosterAbort: an error from fn is returned, the item stays as it was
// (or absent) and the version does not move.
func testRosterAbort(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	bob := storage.RosterItem{JID: "bob@example.org", Subscription: storage.SubBoth, Groups: []string{"Friends"}}
	setItem(t, ctx, s, "alice", bob)
	_, err := s.UpdateRosterItem(ctx, "alice", "bob@example.org", func(it *storage.RosterItem, _ bool) (bool, error) {
		it.Name, it.Subscription, it.Groups = "changed", storage.SubNone, nil
		return false, errBoom
	})
	wantErr(t, err, errBoom, "UpdateRosterItem with a failing fn")
	_, err = s.UpdateRosterItem(ctx, "alice", "bob@example.org", func(*storage.RosterItem, bool) (bool, error) {
		return true, errBoom
	})
	wantErr(t, err, errBoom, "UpdateRosterItem (remove) with a failing fn")
	_, err = s.UpdateRosterItem(ctx, "alice", "carol@example.org", func(it *storage.RosterItem, _ bool) (bool, error) {
		it.Name = "Carol"
		return false, errBoom
	})
	wantErr(t, err, errBoom, "UpdateRosterItem of a new item with a failing fn")
	checkRoster(t, ctx, s, "alice", []storage.RosterItem{bob}, 1)
	_, err = s.RosterItem(ctx, "alice", "carol@example.org")
	wantErr(t, err, storage.ErrNotFound, "RosterItem of an item whose creation failed")
}

// testRosterUnknownAccount: an account that does not exist has no roster
// to change (ErrNotFound, as for every per-account write), and one made
// later under that name starts with an empty roster.
func testRosterUnknownAccount(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	_, err := s.UpdateRosterItem(ctx, "ghost", "bob@example.org", func(it *storage.RosterItem, _ bool) (bool, error) {
		it.Name = "Bob"
		return false, nil
	})
	wantErr(t, err, storage.ErrNotFound, "UpdateRosterItem of an unknown account")
	createAccounts(t, ctx, s, "ghost")
	checkRoster(t, ctx, s, "ghost", nil, 0)
}
