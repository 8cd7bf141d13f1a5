package interop_test

import (
	"cmp"
	"slices"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
)

// bookmark is a room as slixmpp_bookmarks.py takes and prints it.
type bookmark struct {
	JID      string `json:"jid"`
	Name     string `json:"name"`
	Nick     string `json:"nick"`
	Autojoin bool   `json:"autojoin"`
}

// TestBookmarksAcrossProtocols has one account's bookmarks kept by
// slixmpp 1.8.3 as three kinds of client in turn, and checks that each
// sees the same list, as a user with Conversations on the phone and an
// older XEP-0048 desktop client would:
//
//   - a XEP-0402 client (Conversations' way: one xep_0060 publish per room
//     to urn:xmpp:bookmarks:1 with §3.3's publish-options) stores two
//     rooms; xep_0048 get_bookmarks from private XML storage (XEP-0049)
//     and from the PEP node storage:bookmarks (XEP-0223) both list those
//     two rooms, with their names, nicks and autojoin;
//   - a XEP-0048 client stores in private XML storage a list with one of
//     them changed and a new room: the XEP-0402 node then holds exactly
//     those two, the room left out retracted, and so does storage:bookmarks
//     for a XEP-0048 client that reads PEP;
//   - a XEP-0048 client publishes to storage:bookmarks a list of one room,
//     changed again: the XEP-0402 node holds just that one.
func TestBookmarksAcrossProtocols(t *testing.T) {
	requireSlixmpp(t)
	srv := servertest.Start(t)
	const pw = "bookmarks-pw"
	user := srv.AddUser("alice", pw)
	room := func(name string) string { return name + "-" + randomHex(t, 3) + "@conference.localhost" }
	tea, coffee, cocoa := room("tea"), room("coffee"), room("cocoa")

	native := []bookmark{
		{JID: tea, Name: "Tea & ✓ " + randomHex(t, 2), Nick: "alice", Autojoin: true},
		{JID: coffee, Name: "Coffee <3", Nick: "al", Autojoin: true},
	}
	private := []bookmark{
		{JID: tea, Name: "Tea, renamed", Nick: "alice2", Autojoin: false},
		{JID: cocoa, Name: "Cocoa", Nick: "ali", Autojoin: true},
	}
	pep := []bookmark{
		{JID: cocoa, Name: "Cocoa", Nick: "ali-again", Autojoin: false},
	}

	args := append(serverArgs(t, srv),
		"--jid", user, "--password", pw,
		"--native", mustJSON(native),
		"--private", mustJSON(private),
		"--pep", mustJSON(pep),
		"--timeout", "30",
	)
	lines := runScript(t, 45*time.Second, "slixmpp_bookmarks.py", withDebug(args, "BOOKMARKS_DEBUG")...)

	got := map[string][]bookmark{}
	var published []string
	ok := scanLines(lines, func(word, rest string) {
		switch word {
		case "PUBLISHED":
			published = append(published, rest)
		case "ROOMS":
			label, b := cutJSON[[]bookmark](t, word, rest)
			got[label] = b
		}
	})
	if !ok {
		t.Error("script did not print OK")
	}
	if want := []string{tea, coffee}; !slices.Equal(published, want) {
		t.Errorf("XEP-0402 items published with ids %q, want the rooms' JIDs %q", published, want)
	}

	// Each list compared whatever its order: XEP-0048 keeps one, the
	// XEP-0402 node's items come oldest first.
	check := func(label, what string, want []bookmark) {
		t.Helper()
		g, found := got[label]
		if !found {
			t.Errorf("script did not print the rooms %s", what)
			return
		}
		byJID := func(a, b bookmark) int { return cmp.Compare(a.JID, b.JID) }
		g, want = slices.Clone(g), slices.Clone(want)
		slices.SortFunc(g, byJID)
		slices.SortFunc(want, byJID)
		if !slices.Equal(g, want) {
			t.Errorf("rooms %s:\n got %s\nwant %s", what, mustJSON(g), mustJSON(want))
		}
	}
	check("xep_0049", "of XEP-0048 get_bookmarks from private XML storage after the XEP-0402 publishes", native)
	check("xep_0223", "of XEP-0048 get_bookmarks from PEP (storage:bookmarks) after the XEP-0402 publishes", native)
	check("after-private", "of the XEP-0402 node after XEP-0048 set_bookmarks in private XML storage", private)
	check("xep_0223-after-private", "of XEP-0048 get_bookmarks from PEP after XEP-0048 set_bookmarks in private XML storage", private)
	check("after-pep", "of the XEP-0402 node after XEP-0048 set_bookmarks in PEP", pep)
}
