package interop_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
)

// TestSlixmppUserData runs slixmpp 1.8.3's own plugins against the
// per-account data modules: XEP-0054 (publish_vcard, get_vcard of the
// owner's bare JID by a contact), XEP-0049 (store and retrieve), XEP-0048
// (set_bookmarks and get_bookmarks in private storage) and XEP-0012
// (get_last_activity of the server and of a contact, refused to a
// stranger). The owner's roster grants the contact its presence
// (subscription from), written in the store before the script runs.
func TestSlixmppUserData(t *testing.T) {
	requireSlixmpp(t)
	start := time.Now()
	srv := servertest.Start(t)
	const ownerPW, contactPW, strangerPW = "wonderland", "looking-glass", "jabberwock"
	owner := srv.AddUser("alice", ownerPW)
	contact := srv.AddUser("bob", contactPW)
	stranger := srv.AddUser("carol", strangerPW)
	_, err := srv.Store().UpdateRosterItem(context.Background(), "alice", contact, func(it *storage.RosterItem, _ bool) (bool, error) {
		it.Subscription = storage.SubFrom
		return false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fn, nick := "Alice "+randomHex(t, 4)+" Liddell ✓", "ally-"+randomHex(t, 4)
	room, roomName := "tea-"+randomHex(t, 4)+"@conference.localhost", "Mad Tea Party ✓"

	args := append(serverArgs(t, srv),
		"--owner-jid", owner, "--owner-password", ownerPW,
		"--contact-jid", contact, "--contact-password", contactPW,
		"--stranger-jid", stranger, "--stranger-password", strangerPW,
		"--fn", fn, "--nick", nick, "--room", room, "--room-name", roomName,
		"--timeout", "40",
	)
	lines := runScript(t, 60*time.Second, "slixmpp_userdata.py", args...)

	got := map[string][]string{}
	for _, line := range lines {
		word, rest, _ := strings.Cut(line, " ")
		got[word] = append(got[word], rest)
	}
	q := func(s string) string {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	one := func(word string) string {
		t.Helper()
		if len(got[word]) != 1 {
			t.Errorf("want one %s line, got %q", word, got[word])
			return ""
		}
		return got[word][0]
	}
	// XEP-0054: none at first (an empty vCard), then the one published,
	// for its owner and through its bare JID for the contact.
	if v := one("VCARD_OWN_BEFORE"); v != "0" {
		t.Errorf("own vCard before any was published has %s children, want an empty one", v)
	}
	wantVCard := q(fn) + " " + q(nick)
	for _, w := range []string{"VCARD_OWN", "VCARD_READ"} {
		if v := one(w); v != wantVCard {
			t.Errorf("%s %s, want %s", w, v, wantVCard)
		}
	}
	// XEP-0049 and XEP-0048 in it.
	if v := one("PRIVATE"); v != q(nick) {
		t.Errorf("PRIVATE %s, want %s", v, q(nick))
	}
	if v, want := one("BOOKMARK"), q(room)+" "+q(nick)+" true "+q(roomName); v != want {
		t.Errorf("BOOKMARK %s, want %s", v, want)
	}
	// XEP-0012: uptime, an online contact's 0, and forbidden for a stranger.
	if v, err := strconv.Atoi(one("LAST_SERVER")); err != nil || v < 0 || time.Duration(v)*time.Second > time.Since(start)+time.Second {
		t.Errorf("LAST_SERVER %q: want the server's uptime", one("LAST_SERVER"))
	}
	if v := one("LAST_CONTACT"); v != "0" {
		t.Errorf("LAST_CONTACT %s, want 0 for an available contact", v)
	}
	if v := one("LAST_STRANGER_ERROR"); v != "auth forbidden" {
		t.Errorf("LAST_STRANGER_ERROR %q, want auth forbidden", v)
	}
	if len(got["OK"]) != 1 {
		t.Error("script did not print OK")
	}
}
