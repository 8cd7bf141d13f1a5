package muc_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/modules/muc"
	"github.com/adhocd/adhocd/servertest"
)

// TestMaxRoomsPerUser: a user who created its share of rooms creates no
// more (not-allowed) but may enter others'; once one of its rooms is gone
// it may create again.
func TestMaxRoomsPerUser(t *testing.T) {
	e := newEnv(t, muc.Options{MaxRoomsPerUser: 1})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("one", "alice")
	if got := alice.joinErr("two", "alice", ""); got != "cancel not-allowed" {
		t.Fatalf("a second room: %q", got)
	}
	bob.create("bobs", "bob")
	alice.join("bobs", "alice", "")
	alice.Write(`<presence type='unavailable' to='` + occ("one", "alice") + `'/>`)
	alice.next("own unavailable", presenceFrom(occ("one", "alice"), "unavailable"))
	alice.create("two", "alice")
}

// TestMaxRooms: past the service's rooms no room is created
// (resource-constraint).
func TestMaxRooms(t *testing.T) {
	e := newEnv(t, muc.Options{MaxRooms: 1})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("one", "alice")
	if got := bob.joinErr("two", "bob", ""); got != "wait resource-constraint" {
		t.Fatalf("a room too many: %q", got)
	}
}

// TestMaxOccupants: the service's bound on occupants holds for admins too.
func TestMaxOccupants(t *testing.T) {
	e := newEnv(t, muc.Options{MaxOccupants: 1})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice")
	alice.result("set", room("r"), `<query xmlns='`+nsAdmin+`'><item affiliation='admin' jid='bob@localhost'/></query>`)
	if got := bob.joinErr("r", "bob", ""); got != "wait service-unavailable" {
		t.Fatalf("past the bound: %q", got)
	}
}

// TestMessageTooLong: a message or subject longer than the bounds is
// refused with policy-violation, and reaches no one.
func TestMessageTooLong(t *testing.T) {
	e := newEnv(t, muc.Options{MaxMessageBytes: 100, MaxSubjectBytes: 10})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice")
	bob.join("r", "bob", "")
	alice.Write(`<message to='` + room("r") + `' type='groupchat' id='long'><body>` + strings.Repeat("x", 101) + `</body></message>`)
	wantCond(t, "a long message", alice.next("error", func(s *servertest.Node) bool { return s.Attr["id"] == "long" }), "modify policy-violation")
	alice.Write(`<message to='` + room("r") + `' type='groupchat' id='subj'><subject>` + strings.Repeat("x", 11) + `</subject></message>`)
	wantCond(t, "a long subject", alice.next("error", func(s *servertest.Node) bool { return s.Attr["id"] == "subj" }), "modify policy-violation")
	alice.Write(`<message to='` + occ("r", "bob") + `' type='chat' id='pm'><body>` + strings.Repeat("x", 101) + `</body></message>`)
	wantCond(t, "a long private message", alice.next("error", func(s *servertest.Node) bool { return s.Attr["id"] == "pm" }), "modify policy-violation")
	settle(alice, bob)
	bob.none("a refused message", func(s *servertest.Node) bool { return s.Name.Local == "message" && s.Attr["from"] == occ("r", "alice") })
}

// TestSelfPing: XEP-0410: the room answers a ping to one's own room JID
// while the session is in the room with that nickname, and not-acceptable
// otherwise.
func TestSelfPing(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice")
	ping := `<ping xmlns='urn:xmpp:ping'/>`
	if a := alice.result("get", occ("r", "alice"), ping); a.Attr["from"] != occ("r", "alice") {
		t.Fatalf("answer from %q", a.Attr["from"])
	}
	wantCond(t, "not joined", bob.iq("get", occ("r", "bob"), ping), "modify not-acceptable")
	wantCond(t, "another's nickname", bob.iq("get", occ("r", "alice"), ping), "modify not-acceptable")
	alice.Write(`<presence type='unavailable' to='` + occ("r", "alice") + `'/>`)
	alice.next("own unavailable", presenceFrom(occ("r", "alice"), "unavailable"))
	wantCond(t, "after leaving", alice.iq("get", occ("r", "alice"), ping), "modify not-acceptable")
}

// TestOccupantID: XEP-0421: a user's occupant id is the same in presence
// and messages, when it enters again and from another session, and differs
// between users and between rooms.
func TestOccupantID(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	phone := e.login("alice", "phone")
	bob := e.login("bob", "pc")
	alice.create("r", "alice")
	alice.create("s", "alice")
	idR := occupantID(alice.join("r", "alice", ""))
	idS := occupantID(alice.join("s", "alice", ""))
	idPhone := occupantID(phone.join("r", "ally", ""))
	idBob := occupantID(bob.join("r", "bob", ""))
	if idR == "" || idR != idPhone {
		t.Fatalf("alice's ids in r: %q from the laptop, %q from the phone", idR, idPhone)
	}
	if idR == idS || idR == idBob {
		t.Fatalf("ids not distinct: r %q, s %q, bob %q", idR, idS, idBob)
	}
}

// TestConcurrentOccupants: users entering and speaking at once (each
// stream is handled on its own goroutine) all end up in the room and hear
// every message; under -race this checks the room's locking.
func TestConcurrentOccupants(t *testing.T) {
	e := newEnv(t, muc.Options{})
	owner := e.login("owner", "r")
	owner.create("r", "owner")
	var cs []*client
	for _, u := range []string{"u1", "u2", "u3", "u4", "u5", "u6"} {
		cs = append(cs, e.login(u, "r"))
	}
	nick := func(c *client) string { return strings.SplitN(c.jid, "@", 2)[0] }
	for _, c := range cs {
		c.Write(`<presence to='` + occ("r", nick(c)) + `'><x xmlns='` + nsMUC + `'/></presence>`)
	}
	for _, c := range cs {
		c.next("self-presence", func(s *servertest.Node) bool { return isPresence(s, occ("r", nick(c)), "") && len(statuses(s)) > 0 })
	}
	for _, c := range cs {
		c.say("r", "from "+nick(c))
	}
	for _, c := range append(cs, owner) {
		for _, from := range cs {
			c.heard("r", nick(from), "from "+nick(from))
		}
	}
	if got, _ := formValue(child(roomInfo(owner, "r"), nsInfo, "query"), "muc#roominfo_occupants"); got != "7" {
		t.Fatalf("occupants %q", got)
	}
}

// TestOccupantRate: past its burst an occupant's messages and presence
// updates are refused with policy-violation (wait) and reach nobody; the
// bucket refills at the rate, and another occupant is not held back.
func TestOccupantRate(t *testing.T) {
	e := newEnv(t, muc.Options{MessageRate: 0.5, MessageBurst: 3})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice")
	bob.join("r", "bob", "")
	for i := 1; i <= 5; i++ {
		bob.say("r", "burst "+strconv.Itoa(i))
	}
	for i := 1; i <= 3; i++ {
		alice.heard("r", "bob", "burst "+strconv.Itoa(i))
	}
	for i := 4; i <= 5; i++ {
		wantCond(t, "message past the burst", bob.next("error", func(s *servertest.Node) bool {
			return s.Name.Local == "message" && s.Attr["type"] == "error"
		}), "wait policy-violation")
	}
	// A presence update past it is refused too, as a presence error.
	bob.Write(`<presence to='` + occ("r", "bob") + `'><show>away</show></presence>`)
	wantCond(t, "presence past the burst", bob.next("presence error", func(s *servertest.Node) bool {
		return s.Name.Local == "presence" && s.Attr["type"] == "error"
	}), "wait policy-violation")
	// alice is not limited by bob's bucket.
	alice.say("r", "alice still speaks")
	bob.heard("r", "alice", "alice still speaks")
	settle(bob, alice)
	alice.none("a message past bob's burst", func(s *servertest.Node) bool {
		return text(s, "body") == "burst 4" || text(s, "body") == "burst 5"
	})
	alice.none("bob's refused presence", func(s *servertest.Node) bool {
		return s.Name.Local == "presence" && s.Attr["from"] == occ("r", "bob") && text(s, "show") == "away"
	})
	// Two seconds give one stanza back.
	time.Sleep(2100 * time.Millisecond)
	bob.say("r", "after the wait")
	alice.heard("r", "bob", "after the wait")
}
