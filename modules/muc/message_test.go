package muc_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/modules/muc"
	"github.com/adhocd/adhocd/servertest"
)

// TestLeave: who leaves hears its own unavailable presence (110), the
// others see it go with its status.
func TestLeave(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice")
	bob.join("r", "bob", "")
	bob.Write(`<presence type='unavailable' to='` + occ("r", "bob") + `'><status>bye</status></presence>`)
	self := bob.next("own unavailable", presenceFrom(occ("r", "bob"), "unavailable"))
	if !slices.Contains(statuses(self), "110") || item(self).Attr["role"] != "none" {
		t.Fatalf("bob's leave: %s", self.Canon())
	}
	seen := alice.next("bob leaving", presenceFrom(occ("r", "bob"), "unavailable"))
	if text(seen, "status") != "bye" || slices.Contains(statuses(seen), "110") {
		t.Fatalf("bob's leave as alice sees it: %s", seen.Canon())
	}
	alice.say("r", "alone")
	alice.heard("r", "alice", "alone")
	settle(alice, bob)
	bob.none("a message after leaving", func(s *servertest.Node) bool { return text(s, "body") != "" })
}

// TestSessionEndLeaves: a session that ends leaves the rooms it was in.
func TestSessionEndLeaves(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice")
	bob.join("r", "bob", "")
	bob.Write(`</stream:stream>`)
	alice.next("bob leaving", presenceFrom(occ("r", "bob"), "unavailable"))
}

// TestTemporaryRoomEnds: a temporary room is destroyed when its last
// occupant leaves; entering again creates a new one. A persistent room
// stays.
func TestTemporaryRoomEnds(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	alice.create("tmp", "alice")
	alice.create("kept", "alice", "muc#roomconfig_persistentroom=1")
	for _, r := range []string{"tmp", "kept"} {
		alice.Write(`<presence type='unavailable' to='` + occ(r, "alice") + `'/>`)
		alice.next("own unavailable", presenceFrom(occ(r, "alice"), "unavailable"))
	}
	wantCond(t, "the temporary room", alice.iq("get", room("tmp"), `<query xmlns='`+nsInfo+`'/>`), "cancel item-not-found")
	roomInfo(alice, "kept")
	if !slices.Contains(statuses(alice.join("tmp", "alice", "")), "201") {
		t.Fatal("the temporary room was not created again")
	}
	if slices.Contains(statuses(alice.join("kept", "alice", "")), "201") {
		t.Fatal("the persistent room was created again")
	}
}

// TestGroupchat: an occupant's message reaches every occupant, itself
// included, from its room JID with its id and its occupant id; one a
// sender claimed is replaced.
func TestGroupchat(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice")
	self := bob.join("r", "bob", "")
	bob.Write(`<message to='` + room("r") + `' type='groupchat' id='m1'><body>hi all</body><occupant-id xmlns='` + nsOccID + `' id='forged'/></message>`)
	for _, c := range []*client{alice, bob} {
		m := c.heard("r", "bob", "hi all")
		if m.Attr["id"] != "m1" || occupantID(m) != occupantID(self) {
			t.Fatalf("%s: %s (bob's id %q)", c.jid, m.Canon(), occupantID(self))
		}
		var ids int
		for _, k := range m.Kids {
			if k.Name.Space == nsOccID {
				ids++
			}
		}
		if ids != 1 {
			t.Fatalf("%s: %d occupant ids: %s", c.jid, ids, m.Canon())
		}
	}
}

// TestGroupchatFromNonOccupant: someone not in the room cannot speak in
// it.
func TestGroupchatFromNonOccupant(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice")
	bob.say("r", "let me in")
	wantCond(t, "groupchat from outside", bob.next("error", func(s *servertest.Node) bool { return s.Attr["type"] == "error" }), "modify not-acceptable")
	settle(bob, alice)
	alice.none("the outsider's message", func(s *servertest.Node) bool { return text(s, "body") == "let me in" })
}

// TestVisitorHasNoVoice: in a moderated room a newcomer is a visitor, and
// a visitor's message is forbidden.
func TestVisitorHasNoVoice(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice", "muc#roomconfig_moderatedroom=1")
	if it := item(bob.join("r", "bob", "")); it.Attr["role"] != "visitor" {
		t.Fatalf("bob's role: %s", it.Canon())
	}
	bob.say("r", "may I?")
	wantCond(t, "a visitor's message", bob.next("error", func(s *servertest.Node) bool { return s.Attr["type"] == "error" }), "auth forbidden")
}

// subjectFrom waits for a subject message.
func subjectFrom(c *client, from, subject string) *servertest.Node {
	c.t.Helper()
	return c.next("subject "+subject, func(s *servertest.Node) bool {
		return s.Name.Local == "message" && s.Attr["from"] == from && child(s, "jabber:client", "subject") != nil && text(s, "subject") == subject
	})
}

// TestSubject: moderators change the subject, which everyone sees and who
// enters later gets last, from who set it; a participant may not unless
// the room lets participants.
func TestSubject(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	carol := e.login("carol", "pc")
	alice.create("r", "alice")
	bob.join("r", "bob", "")
	alice.Write(`<message to='` + room("r") + `' type='groupchat'><subject>Tea</subject></message>`)
	subjectFrom(bob, occ("r", "alice"), "Tea")
	bob.Write(`<message to='` + room("r") + `' type='groupchat' id='s2'><subject>Coffee</subject></message>`)
	wantCond(t, "a participant's subject", bob.next("error", func(s *servertest.Node) bool { return s.Attr["id"] == "s2" }), "auth forbidden")
	alice.say("r", "history")
	alice.heard("r", "alice", "history")
	carol.Write(`<presence to='` + occ("r", "carol") + `'><x xmlns='` + nsMUC + `'/></presence>`)
	var order []string
	for len(order) == 0 || order[len(order)-1] != "subject" {
		s := carol.next("the room", func(s *servertest.Node) bool { return s.Name.Local == "message" })
		if child(s, "jabber:client", "subject") != nil {
			order = append(order, "subject")
			if s.Attr["from"] != occ("r", "alice") || text(s, "subject") != "Tea" {
				t.Fatalf("subject at join: %s", s.Canon())
			}
			continue
		}
		order = append(order, text(s, "body"))
	}
	if !slices.Equal(order, []string{"history", "subject"}) {
		t.Fatalf("carol received %q", order)
	}
	alice.configure("r", "muc#roomconfig_changesubject=1")
	bob.Write(`<message to='` + room("r") + `' type='groupchat'><subject>Coffee</subject></message>`)
	subjectFrom(carol, occ("r", "bob"), "Coffee")
	if got, _ := formValue(child(roomInfo(carol, "r"), nsInfo, "query"), "muc#roominfo_subject"); got != "Coffee" {
		t.Fatalf("roominfo subject %q", got)
	}
}

// TestHistory: who enters gets the last messages, each with a delay from
// the room, within what its <history/> asks.
func TestHistory(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	alice.create("r", "alice", "muc#roomconfig_persistentroom=1")
	for i := range 3 {
		alice.say("r", "m"+strconv.Itoa(i))
		alice.heard("r", "alice", "m"+strconv.Itoa(i))
	}
	cases := []struct {
		name, history string
		want          []string
	}{
		{"all", "", []string{"m0", "m1", "m2"}},
		{"maxstanzas", "<history maxstanzas='2'/>", []string{"m1", "m2"}},
		{"maxchars 0", "<history maxchars='0'/>", nil},
		{"since the future", "<history since='" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + "'/>", nil},
		{"seconds", "<history seconds='3600'/>", []string{"m0", "m1", "m2"}},
	}
	for i, tc := range cases {
		func() {
			bob := e.login("bob", "r"+strconv.Itoa(i))
			bob.join("r", "bob", tc.history)
			var got []string
			for {
				s := bob.next("history", func(s *servertest.Node) bool { return s.Name.Local == "message" })
				if child(s, "jabber:client", "subject") != nil {
					break
				}
				d := child(s, "urn:xmpp:delay", "delay")
				if d == nil || d.Attr["from"] != room("r") || d.Attr["stamp"] == "" || s.Attr["from"] != occ("r", "alice") {
					t.Fatalf("%s: history message: %s", tc.name, s.Canon())
				}
				got = append(got, text(s, "body"))
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("%s: history %q, want %q", tc.name, got, tc.want)
			}
			bob.Write(`<presence type='unavailable' to='` + occ("r", "bob") + `'/>`)
			bob.next("own unavailable", presenceFrom(occ("r", "bob"), "unavailable"))
		}()
	}
}

// TestHistoryLength: the room keeps as many messages as configured.
func TestHistoryLength(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice", "muc#maxhistoryfetch=2")
	for i := range 4 {
		alice.say("r", "m"+strconv.Itoa(i))
	}
	alice.heard("r", "alice", "m3")
	bob.join("r", "bob", "")
	var got []string
	for {
		s := bob.next("history", func(s *servertest.Node) bool { return s.Name.Local == "message" })
		if child(s, "jabber:client", "subject") != nil {
			break
		}
		got = append(got, text(s, "body"))
	}
	if !slices.Equal(got, []string{"m2", "m3"}) {
		t.Fatalf("history %q", got)
	}
}

// TestPrivateMessage: a message to room/nick reaches that occupant's
// sessions from the sender's room JID, marked muc#user; not to a nickname
// no one has, not from outside, not of type groupchat.
func TestPrivateMessage(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	carol := e.login("carol", "pc")
	alice.create("r", "alice")
	bob.join("r", "bob", "")
	bob.Write(`<message to='` + occ("r", "alice") + `' type='chat' id='p1'><body>psst</body></message>`)
	m := alice.next("the private message", func(s *servertest.Node) bool { return text(s, "body") == "psst" })
	if m.Attr["from"] != occ("r", "bob") || m.Attr["type"] != "chat" || child(m, nsUser, "x") == nil || occupantID(m) == "" {
		t.Fatalf("private message: %s", m.Canon())
	}
	bob.Write(`<message to='` + occ("r", "nobody") + `' type='chat' id='p2'><body>psst</body></message>`)
	wantCond(t, "to no one", bob.next("error", func(s *servertest.Node) bool { return s.Attr["id"] == "p2" }), "cancel item-not-found")
	bob.Write(`<message to='` + occ("r", "alice") + `' type='groupchat' id='p3'><body>psst</body></message>`)
	wantCond(t, "groupchat to an occupant", bob.next("error", func(s *servertest.Node) bool { return s.Attr["id"] == "p3" }), "modify bad-request")
	carol.Write(`<message to='` + occ("r", "alice") + `' type='chat' id='p4'><body>psst</body></message>`)
	wantCond(t, "from outside", carol.next("error", func(s *servertest.Node) bool { return s.Attr["id"] == "p4" }), "modify not-acceptable")
	alice.configure("r", "muc#roomconfig_allowpm=none")
	bob.Write(`<message to='` + occ("r", "alice") + `' type='chat' id='p5'><body>psst</body></message>`)
	wantCond(t, "private messages off", bob.next("error", func(s *servertest.Node) bool { return s.Attr["id"] == "p5" }), "auth forbidden")
}

// TestInvite: a mediated invitation reaches the invitee from the room; in
// a members-only room an admin's invitation makes the invitee a member.
func TestInvite(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	bob.Write(`<presence/>`)
	bob.sync()
	alice.create("r", "alice", "muc#roomconfig_membersonly=1")
	alice.Write(`<message to='` + room("r") + `'><x xmlns='` + nsUser + `'><invite to='bob@localhost'><reason>tea?</reason></invite></x></message>`)
	inv := bob.next("the invitation", func(s *servertest.Node) bool { return child(s, nsUser, "x") != nil })
	in := child(child(inv, nsUser, "x"), nsUser, "invite")
	if inv.Attr["from"] != room("r") || in == nil || in.Attr["from"] != alice.jid || !strings.Contains(in.Canon(), "tea?") {
		t.Fatalf("invitation: %s", inv.Canon())
	}
	if it := item(bob.join("r", "bob", "")); it.Attr["affiliation"] != "member" {
		t.Fatalf("invitee's affiliation: %s", it.Canon())
	}
}
