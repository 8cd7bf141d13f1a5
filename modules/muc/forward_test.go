package muc_test

import (
	"maps"
	"slices"
	"testing"

	"github.com/adhocd/adhocd/modules/muc"
	"github.com/adhocd/adhocd/servertest"
)

const (
	nsPing    = "urn:xmpp:ping"
	nsVersion = "jabber:iq:version"
)

// forwardedIQ waits for the request the room passed on to c: an IQ get
// from the room JID from, with a payload named local in space, and an id
// other than the requester's.
func (c *client) forwardedIQ(from, space, local, requesterID string) *servertest.Node {
	c.t.Helper()
	iq := c.next("IQ forwarded from "+from, func(s *servertest.Node) bool {
		return s.Name.Local == "iq" && s.Attr["type"] == "get" && s.Attr["from"] == from && child(s, space, local) != nil
	})
	if iq.Attr["to"] != c.jid || iq.Attr["id"] == "" || iq.Attr["id"] == requesterID {
		c.t.Fatalf("%s: forwarded request %s", c.jid, iq.Canon())
	}
	return iq
}

// ask sends an IQ get with payload to to and returns its id; the answer is
// read later with answer.
func (c *client) ask(to, payload string) string {
	id := nextID()
	c.Write(`<iq type='get' id='` + id + `' to='` + to + `'>` + payload + `</iq>`)
	return id
}

// answer waits for the answer to the request id.
func (c *client) answer(id string) *servertest.Node {
	c.t.Helper()
	return c.next("answer to "+id, func(s *servertest.Node) bool { return s.Name.Local == "iq" && s.Attr["id"] == id })
}

// TestPingOccupant: a ping to another occupant goes to its session from
// the requester's room JID under the room's id, and the answer comes back
// from the occupant's room JID under the requester's id; neither sees the
// other's real JID.
func TestPingOccupant(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice")
	bob.join("r", "bob", "")

	id := alice.ask(occ("r", "bob"), `<ping xmlns='`+nsPing+`'/>`)
	fwd := bob.forwardedIQ(occ("r", "alice"), nsPing, "ping", id)
	bob.Write(`<iq type='result' id='` + fwd.Attr["id"] + `' to='` + occ("r", "alice") + `'/>`)
	a := alice.answer(id)
	if a.Attr["type"] != "result" || a.Attr["from"] != occ("r", "bob") || a.Attr["to"] != alice.jid {
		t.Fatalf("answer %s", a.Canon())
	}

	// The self-ping (XEP-0410) is still the room's to answer.
	self := alice.result("get", occ("r", "alice"), `<ping xmlns='`+nsPing+`'/>`)
	if self.Attr["from"] != occ("r", "alice") {
		t.Fatalf("self-ping answered by %s", self.Attr["from"])
	}
	settle(alice, bob)
	alice.none("a self-ping passed on", func(s *servertest.Node) bool { return s.Attr["type"] == "get" })
	bob.none("alice's self-ping", func(s *servertest.Node) bool { return s.Name.Local == "iq" && s.Attr["type"] == "get" })
}

// TestVersionOccupant: a version request is passed on and its answer, a
// result with its payload or an error with its condition, comes back to
// the requester as the occupant sent it. Only the occupant's latest
// session is asked, and only that session's answer counts: one from the
// other session or from someone else is dropped.
func TestVersionOccupant(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	tablet := e.login("bob", "tablet")
	carol := e.login("carol", "pc")
	alice.create("r", "alice")
	bob.join("r", "bob", "")
	tablet.join("r", "bob", "")
	carol.join("r", "carol", "")

	query := `<query xmlns='` + nsVersion + `'/>`
	id := alice.ask(occ("r", "bob"), query)
	fwd := tablet.forwardedIQ(occ("r", "alice"), nsVersion, "query", id)
	settle(alice, bob)
	bob.none("a request to bob's older session", func(s *servertest.Node) bool { return s.Name.Local == "iq" && s.Attr["type"] == "get" })

	// Answers with the room's id from others are dropped.
	forged := `<iq type='result' id='` + fwd.Attr["id"] + `' to='` + occ("r", "alice") + `'><query xmlns='` + nsVersion + `'><name>forged</name></query></iq>`
	bob.Write(forged)
	carol.Write(forged)
	settle(bob, alice)
	settle(carol, alice)
	alice.none("a forged answer", func(s *servertest.Node) bool { return s.Attr["id"] == id })

	tablet.Write(`<iq type='result' id='` + fwd.Attr["id"] + `' to='` + occ("r", "alice") + `'><query xmlns='` + nsVersion + `'><name>Tablet Chat</name><version>2.5</version></query></iq>`)
	a := alice.answer(id)
	q := child(a, nsVersion, "query")
	if a.Attr["type"] != "result" || a.Attr["from"] != occ("r", "bob") || child(q, nsVersion, "name").Text != "Tablet Chat" || child(q, nsVersion, "version").Text != "2.5" {
		t.Fatalf("answer %s", a.Canon())
	}
	// The answer is taken once: the same again is dropped.
	tablet.Write(`<iq type='result' id='` + fwd.Attr["id"] + `' to='` + occ("r", "alice") + `'/>`)
	settle(tablet, alice)
	alice.none("a second answer", func(s *servertest.Node) bool { return s.Attr["id"] == id })

	// An error answer, condition and all.
	id = carol.ask(occ("r", "bob"), query)
	fwd = tablet.forwardedIQ(occ("r", "carol"), nsVersion, "query", id)
	tablet.Write(`<iq type='error' id='` + fwd.Attr["id"] + `' to='` + occ("r", "carol") + `'>` + query +
		`<error type='cancel'><service-unavailable xmlns='` + nsStanzas + `'/></error></iq>`)
	wantCond(t, "bob's error", carol.answer(id), "cancel service-unavailable")
}

// TestRequestToOccupantRefused: a request from outside the room is
// refused with not-acceptable, one to a nickname no one has with
// item-not-found.
func TestRequestToOccupantRefused(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice")
	query := `<query xmlns='` + nsVersion + `'/>`
	wantCond(t, "from outside", bob.iq("get", occ("r", "alice"), query), "modify not-acceptable")
	wantCond(t, "no such room", bob.iq("get", occ("nosuch", "alice"), query), "modify not-acceptable")
	wantCond(t, "no such nickname", alice.iq("get", occ("r", "nobody"), query), "cancel item-not-found")
	settle(bob, alice)
	alice.none("a request from outside", func(s *servertest.Node) bool { return s.Name.Local == "iq" && s.Attr["type"] == "get" })
}

// TestVCardOfOccupant: a vCard request to an occupant goes to the user's
// bare JID, as Prosody sends it: the server answers with the account's
// vCard, from the occupant's room JID, and the occupant's sessions are not
// asked.
func TestVCardOfOccupant(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	bob.result("set", "", `<vCard xmlns='vcard-temp'><FN>Bob Builder</FN></vCard>`)
	alice.create("r", "alice")
	bob.join("r", "bob", "")

	a := alice.result("get", occ("r", "bob"), `<vCard xmlns='vcard-temp'/>`)
	if v := child(a, "vcard-temp", "vCard"); a.Attr["from"] != occ("r", "bob") || child(v, "vcard-temp", "FN") == nil || child(v, "vcard-temp", "FN").Text != "Bob Builder" {
		t.Fatalf("vCard answer %s", a.Canon())
	}
	wantCond(t, "alice has no vCard", bob.iq("get", occ("r", "alice"), `<vCard xmlns='vcard-temp'/>`), "cancel item-not-found")
	wantCond(t, "setting another's vCard", alice.iq("set", occ("r", "bob"), `<vCard xmlns='vcard-temp'><FN>x</FN></vCard>`), "auth forbidden")
	settle(alice, bob)
	bob.none("a vCard request", func(s *servertest.Node) bool { return s.Name.Local == "iq" && s.Attr["type"] != "result" })
}

// TestDirectInvitation: a XEP-0249 invitation is a message from one user
// to another, which the server routes as it is, <x xmlns='jabber:x:conference'/>
// and its attributes intact.
func TestDirectInvitation(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	// Available, so that a message to the bare JID reaches the session.
	bob.Write(`<presence/>`)
	bob.sync()
	alice.create("r", "alice", "muc#roomconfig_passwordprotectedroom=1", "muc#roomconfig_roomsecret=cauldron")
	alice.Write(`<message to='bob@localhost' id='inv1'><x xmlns='jabber:x:conference' jid='` + room("r") +
		`' password='cauldron' reason='Hecate wants us' continue='true' thread='e0ffe42b28561960c6b12b944a092794b9683a38'/></message>`)
	m := bob.next("the invitation", func(s *servertest.Node) bool { return s.Name.Local == "message" && s.Attr["id"] == "inv1" })
	x := child(m, "jabber:x:conference", "x")
	if m.Attr["from"] != alice.jid || x == nil {
		t.Fatalf("invitation %s", m.Canon())
	}
	want := map[string]string{"jid": room("r"), "password": "cauldron", "reason": "Hecate wants us", "continue": "true",
		"thread": "e0ffe42b28561960c6b12b944a092794b9683a38"}
	for k, v := range want {
		if x.Attr[k] != v {
			t.Errorf("invitation's %s is %q, want %q: %s", k, x.Attr[k], v, m.Canon())
		}
	}
	if keys := slices.Sorted(maps.Keys(x.Attr)); len(keys) != len(want) {
		t.Errorf("invitation's attributes %q", keys)
	}
}
