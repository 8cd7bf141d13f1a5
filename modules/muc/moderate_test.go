package muc_test

import (
	"slices"
	"testing"

	"github.com/adhocd/adhocd/modules/muc"
	"github.com/adhocd/adhocd/servertest"
)

const (
	nsModerate1 = "urn:xmpp:message-moderate:1"
	nsRetract1  = "urn:xmpp:message-retract:1"
	nsModerate0 = "urn:xmpp:message-moderate:0"
	nsRetract0  = "urn:xmpp:message-retract:0"
	nsFasten    = "urn:xmpp:fasten:0"
)

// moderateV1 is a XEP-0425 0.3 request to retract id, with a reason.
func moderateV1(id, reason string) string {
	return `<moderate xmlns='` + nsModerate1 + `' id='` + id + `'><retract xmlns='` + nsRetract1 + `'/><reason>` + reason + `</reason></moderate>`
}

// moderateV0 is the same in the form of XEP-0425 0.2 (what nbxmpp 4.2 and
// slixmpp 1.8 send).
func moderateV0(id, reason string) string {
	return `<apply-to xmlns='` + nsFasten + `' id='` + id + `'><moderate xmlns='` + nsModerate0 + `'><retract xmlns='` + nsRetract0 + `'/><reason>` + reason + `</reason></moderate></apply-to>`
}

// retractionNotice waits for the room's notice that id was retracted.
func retractionNotice(c *client, name, id string) *servertest.Node {
	c.t.Helper()
	return c.next("the retraction of "+id, func(s *servertest.Node) bool {
		r := child(s, nsRetract1, "retract")
		return s.Name.Local == "message" && s.Attr["from"] == room(name) && r != nil && r.Attr["id"] == id
	})
}

// TestModeration: a moderator retracts an occupant's message by its
// stanza id (XEP-0425): every occupant gets the room's notice in both
// forms, with who moderated and why; the archive holds a tombstone in its
// place, without the body; who joins later does not get it in the
// history; the other messages stay.
func TestModeration(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice", "muc#roomconfig_persistentroom=1")
	if f := features(roomInfo(alice, "r")); !slices.Contains(f, nsModerate1) || !slices.Contains(f, nsModerate0) {
		t.Fatalf("the room's features lack moderation: %q", f)
	}
	selfAlice := occupantID(alice.join("r", "alice", ""))
	bob.join("r", "bob", "")
	bob.say("r", "buy potions")
	sid := stanzaIDOf(alice.heard("r", "bob", "buy potions"), "r")
	bob.heard("r", "bob", "buy potions")
	bob.say("r", "sorry")
	alice.heard("r", "bob", "sorry")
	bob.heard("r", "bob", "sorry")

	alice.result("set", room("r"), moderateV1(sid, "spam"))
	for _, c := range []*client{alice, bob} {
		n := retractionNotice(c, "r", sid)
		mod := child(child(n, nsRetract1, "retract"), nsModerate1, "moderated")
		if mod == nil || mod.Attr["by"] != occ("r", "alice") || occupantID(mod) != selfAlice || text(n, "body") != "" {
			t.Fatalf("%s: the notice %s", c.jid, n.Canon())
		}
		if r := child(child(n, nsRetract1, "retract"), nsRetract1, "reason"); r == nil || r.Text != "spam" {
			t.Fatalf("%s: the notice's reason: %s", c.jid, n.Canon())
		}
		old := child(child(n, nsFasten, "apply-to"), nsModerate0, "moderated")
		if old == nil || child(old, nsRetract0, "retract") == nil || child(n, nsFasten, "apply-to").Attr["id"] != sid {
			t.Fatalf("%s: the notice lacks the form of XEP-0425 0.2: %s", c.jid, n.Canon())
		}
	}
	got := alice.mamQuery("r", "")
	var tomb *servertest.Node
	for i, id := range got.ids() {
		if id == sid {
			tomb = got.msgs[i]
		}
	}
	if tomb == nil || text(tomb, "body") != "" || tomb.Attr["from"] != occ("r", "bob") {
		t.Fatalf("the archive's tombstone: %v", tomb)
	}
	if r := child(tomb, nsRetract1, "retracted"); r == nil || r.Attr["stamp"] == "" || child(r, nsModerate1, "moderated") == nil {
		t.Fatalf("the tombstone: %s", tomb.Canon())
	}
	if b := got.bodies(); !slices.Contains(b, "sorry") || slices.Contains(b, "buy potions") {
		t.Fatalf("the archive's bodies after the retraction: %q", b)
	}
	carol := e.login("carol", "pc")
	carol.join("r", "carol", "")
	carol.heard("r", "bob", "sorry")
	carol.sync()
	carol.none("the retracted message in the history", func(s *servertest.Node) bool { return text(s, "body") == "buy potions" })
	// Again: nothing changes.
	alice.result("set", room("r"), moderateV1(sid, "again"))
}

// TestModerationOldForm: the request of XEP-0425 0.2 retracts as well.
func TestModerationOldForm(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice", "muc#roomconfig_persistentroom=1")
	bob.join("r", "bob", "")
	bob.say("r", "rude")
	sid := stanzaIDOf(bob.heard("r", "bob", "rude"), "r")
	alice.result("set", room("r"), moderateV0(sid, "be nice"))
	n := retractionNotice(bob, "r", sid)
	if r := child(child(child(n, nsFasten, "apply-to"), nsModerate0, "moderated"), nsModerate0, "reason"); r == nil || r.Text != "be nice" {
		t.Fatalf("the notice: %s", n.Canon())
	}
}

// TestModerationErrors: only moderators moderate (forbidden), an id the
// archive does not hold is item-not-found, the room's own notices are not
// retracted, and a room without an archive offers no moderation.
func TestModerationErrors(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice", "muc#roomconfig_persistentroom=1")
	bob.join("r", "bob", "")
	alice.say("r", "mine")
	sid := stanzaIDOf(bob.heard("r", "alice", "mine"), "r")
	wantCond(t, "a participant's moderation", bob.iq("set", room("r"), moderateV1(sid, "")), "auth forbidden")
	wantCond(t, "an unknown id", alice.iq("set", room("r"), moderateV1("0000000000000001", "")), "cancel item-not-found")
	wantCond(t, "a moderation without retract", alice.iq("set", room("r"), `<moderate xmlns='`+nsModerate1+`' id='`+sid+`'/>`), "modify bad-request")
	if got := bob.mamQuery("r", "").bodies(); !slices.Equal(got, []string{"mine"}) {
		t.Fatalf("refused moderations changed the archive: %q", got)
	}
	alice.result("set", room("r"), moderateV1(sid, ""))
	notice := retractionNotice(bob, "r", sid)
	if nsid := stanzaIDOf(notice, "r"); nsid == "" {
		t.Fatalf("the notice is not archived: %s", notice.Canon())
	} else {
		wantCond(t, "retracting the room's notice", alice.iq("set", room("r"), moderateV1(nsid, "")), "modify not-acceptable")
	}
	alice.create("tmp", "alice")
	wantCond(t, "moderation in a room without an archive", alice.iq("set", room("tmp"), moderateV1(sid, "")), "cancel service-unavailable")
}
