package muc_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/modules/muc"
	"github.com/adhocd/adhocd/servertest"
)

const (
	nsMAM     = "urn:xmpp:mam:2"
	nsSID     = "urn:xmpp:sid:0"
	nsForward = "urn:xmpp:forward:0"
	nsRSM     = "http://jabber.org/protocol/rsm"
)

// archived is what one query of a room's archive returned.
type archived struct {
	// results are the <result/> messages, msgs the forwarded messages in
	// them, in order.
	results, msgs []*servertest.Node
	fin           *servertest.Node
}

// bodies are the bodies of the forwarded messages.
func (a archived) bodies() []string {
	var out []string
	for _, m := range a.msgs {
		out = append(out, text(m, "body"))
	}
	return out
}

// ids are the archive ids of the results.
func (a archived) ids() []string {
	var out []string
	for _, r := range a.results {
		out = append(out, child(r, nsMAM, "result").Attr["id"])
	}
	return out
}

// mamQuery queries the room's archive with a form of var=value pairs (no
// form when none) and a result set, and returns what came back.
func (c *client) mamQuery(name, rsm string, fields ...string) archived {
	c.t.Helper()
	a, answer := c.mamQueryErr(name, rsm, fields...)
	if answer.Attr["type"] != "result" {
		c.t.Fatalf("%s: query of %s: %s", c.jid, name, answer.Canon())
	}
	return a
}

// mamQueryErr is mamQuery that returns the IQ answer too, an error among
// them.
func (c *client) mamQueryErr(name, rsm string, fields ...string) (archived, *servertest.Node) {
	c.t.Helper()
	qid := nextID()
	var b strings.Builder
	b.WriteString(`<query xmlns='` + nsMAM + `' queryid='` + qid + `'>`)
	if len(fields) > 0 {
		b.WriteString(`<x xmlns='` + nsXData + `' type='submit'><field var='FORM_TYPE' type='hidden'><value>` + nsMAM + `</value></field>`)
		for _, kv := range fields {
			k, v, _ := strings.Cut(kv, "=")
			b.WriteString(`<field var='` + k + `'><value>` + v + `</value></field>`)
		}
		b.WriteString(`</x>`)
	}
	if rsm != "" {
		b.WriteString(`<set xmlns='` + nsRSM + `'>` + rsm + `</set>`)
	}
	b.WriteString(`</query>`)
	answer := c.iq("set", room(name), b.String())
	var a archived
	a.results = c.take(func(s *servertest.Node) bool {
		r := child(s, nsMAM, "result")
		return s.Name.Local == "message" && r != nil && r.Attr["queryid"] == qid
	})
	for _, r := range a.results {
		if r.Attr["from"] != room(name) {
			c.t.Fatalf("%s: a result of %s's archive from %q: %s", c.jid, name, r.Attr["from"], r.Canon())
		}
		a.msgs = append(a.msgs, child(child(child(r, nsMAM, "result"), nsForward, "forwarded"), "jabber:client", "message"))
	}
	a.fin = child(answer, nsMAM, "fin")
	return a, answer
}

// stanzaIDOf is the room's XEP-0359 id of a message it relayed, or "".
func stanzaIDOf(m *servertest.Node, name string) string {
	for _, k := range m.Kids {
		if k.Name.Space == nsSID && k.Name.Local == "stanza-id" && k.Attr["by"] == room(name) {
			return k.Attr["id"]
		}
	}
	return ""
}

// TestArchive: a persistent room archives the messages of its occupants
// (XEP-0313 on its JID): each copy relayed carries the room's stanza id,
// a query returns the messages in order from the room, as forwarded from
// the senders' room JIDs with the stanza ids as result ids, pages with a
// result set, filters by an occupant's room JID, and shows real JIDs to
// moderators only in a semi-anonymous room.
func TestArchive(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice", "muc#roomconfig_persistentroom=1")
	if !slices.Contains(features(roomInfo(alice, "r")), nsMAM) {
		t.Fatalf("an archiving room does not advertise %s", nsMAM)
	}
	bob.join("r", "bob", "")
	var sids []string
	for i, body := range []string{"one", "two", "three", "four"} {
		c := []*client{alice, bob}[i%2]
		nick := []string{"alice", "bob"}[i%2]
		c.say("r", body)
		for _, to := range []*client{alice, bob} {
			m := to.heard("r", nick, body)
			if to == alice {
				sids = append(sids, stanzaIDOf(m, "r"))
			} else if stanzaIDOf(m, "r") != sids[i] {
				t.Fatalf("the copies of %q have stanza ids %q and %q", body, sids[i], stanzaIDOf(m, "r"))
			}
		}
	}
	if slices.Contains(sids, "") {
		t.Fatalf("stanza ids of archived messages: %q", sids)
	}
	all := bob.mamQuery("r", "")
	if got := all.bodies(); !slices.Equal(got, []string{"one", "two", "three", "four"}) {
		t.Fatalf("the archive: %q", got)
	}
	if !slices.Equal(all.ids(), sids) || all.fin.Attr["complete"] != "true" {
		t.Fatalf("result ids %q (stanza ids %q), fin %s", all.ids(), sids, all.fin.Canon())
	}
	if from := all.msgs[1].Attr["from"]; from != occ("r", "bob") {
		t.Fatalf("an archived message from %q", from)
	}
	for i, m := range all.msgs {
		it := item(m)
		if it != nil && it.Attr["jid"] != "" {
			t.Fatalf("a participant of a semi-anonymous room sees a real JID in the archive: %s", all.results[i].Canon())
		}
	}
	if it := item(alice.mamQuery("r", "").msgs[1]); it == nil || it.Attr["jid"] != "bob@localhost" {
		t.Fatalf("the owner does not see bob's real JID in the archive")
	}
	page := bob.mamQuery("r", "<max>2</max>")
	if got := page.bodies(); !slices.Equal(got, []string{"one", "two"}) || page.fin.Attr["complete"] == "true" {
		t.Fatalf("the first page: %q %s", got, page.fin.Canon())
	}
	page = bob.mamQuery("r", "<max>2</max><after>"+sids[1]+"</after>")
	if got := page.bodies(); !slices.Equal(got, []string{"three", "four"}) || page.fin.Attr["complete"] != "true" {
		t.Fatalf("the second page: %q %s", got, page.fin.Canon())
	}
	page = bob.mamQuery("r", "<max>1</max><before/>")
	if got := page.bodies(); !slices.Equal(got, []string{"four"}) {
		t.Fatalf("the last page: %q", got)
	}
	if got := bob.mamQuery("r", "", "with="+occ("r", "alice")).bodies(); !slices.Equal(got, []string{"one", "three"}) {
		t.Fatalf("alice's messages: %q", got)
	}
	if got := bob.mamQuery("r", "", "after-id="+sids[2]).bodies(); !slices.Equal(got, []string{"four"}) {
		t.Fatalf("after-id: %q", got)
	}
	_, a := bob.mamQueryErr("r", "<max>2</max><after>00000000000000ff</after>")
	wantCond(t, "a page after an unknown id", a, "cancel item-not-found")
	form := child(bob.result("get", room("r"), `<query xmlns='`+nsMAM+`'/>`), nsMAM, "query")
	if v, _ := formValue(form, "FORM_TYPE"); v != nsMAM {
		t.Fatalf("the query form: %s", form.Canon())
	}
}

// TestArchiveAccess: in an open room anyone not banned reads the archive,
// an occupant or not; in a members-only room members do and others do
// not.
func TestArchiveAccess(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	carol := e.login("carol", "pc")
	alice.create("r", "alice", "muc#roomconfig_persistentroom=1")
	alice.say("r", "hello")
	alice.heard("r", "alice", "hello")
	if got := carol.mamQuery("r", "").bodies(); !slices.Equal(got, []string{"hello"}) {
		t.Fatalf("a non-occupant's query of an open room: %q", got)
	}
	alice.result("set", room("r"), `<query xmlns='`+nsAdmin+`'><item affiliation='outcast' jid='carol@localhost'/></query>`)
	_, a := carol.mamQueryErr("r", "")
	wantCond(t, "an outcast's query", a, "auth forbidden")
	alice.configure("r", "muc#roomconfig_membersonly=1")
	_, a = bob.mamQueryErr("r", "")
	wantCond(t, "a non-member's query of a members-only room", a, "auth forbidden")
	alice.result("set", room("r"), `<query xmlns='`+nsAdmin+`'><item affiliation='member' jid='bob@localhost'/></query>`)
	if got := bob.mamQuery("r", "").bodies(); !slices.Equal(got, []string{"hello"}) {
		t.Fatalf("a member's query: %q", got)
	}
}

// TestNoArchive: a temporary room, and a persistent one with archiving
// off, keep no archive: no feature, no stanza ids, queries are
// service-unavailable.
func TestNoArchive(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	alice.create("tmp", "alice")
	alice.create("off", "alice", "muc#roomconfig_persistentroom=1", "muc#roomconfig_enablearchiving=0")
	for _, r := range []string{"tmp", "off"} {
		if slices.Contains(features(roomInfo(alice, r)), nsMAM) {
			t.Fatalf("%s advertises %s", r, nsMAM)
		}
		alice.say(r, "not kept")
		if m := alice.heard(r, "alice", "not kept"); stanzaIDOf(m, r) != "" {
			t.Fatalf("%s: a message with a stanza id: %s", r, m.Canon())
		}
		_, a := alice.mamQueryErr(r, "")
		wantCond(t, "a query of "+r, a, "cancel service-unavailable")
	}
	e2 := newEnv(t, muc.Options{ArchiveMaxMessages: -1})
	bob := e2.login("bob", "phone")
	bob.create("r", "bob", "muc#roomconfig_persistentroom=1")
	q := child(bob.result("get", room("r"), `<query xmlns='`+nsOwner+`'/>`), nsOwner, "query")
	if _, ok := formValue(q, "muc#roomconfig_enablearchiving"); ok {
		t.Fatal("a service that archives nothing offers muc#roomconfig_enablearchiving")
	}
	if slices.Contains(features(roomInfo(bob, "r")), nsMAM) {
		t.Fatalf("a service that archives nothing advertises %s", nsMAM)
	}
}

// TestArchiveBounds: a room's archive keeps ArchiveMaxMessages, the
// newest; with a retention its messages go once older (polled: the
// expiry runs in the background).
func TestArchiveBounds(t *testing.T) {
	e := newEnv(t, muc.Options{ArchiveMaxMessages: 3})
	alice := e.login("alice", "laptop")
	alice.create("r", "alice", "muc#roomconfig_persistentroom=1")
	for _, b := range []string{"1", "2", "3", "4", "5"} {
		alice.say("r", b)
		alice.heard("r", "alice", b)
	}
	if got := alice.mamQuery("r", "").bodies(); !slices.Equal(got, []string{"3", "4", "5"}) {
		t.Fatalf("an archive of at most 3 messages: %q", got)
	}

	e2 := newEnv(t, muc.Options{ArchiveRetention: 100 * time.Millisecond})
	bob := e2.login("bob", "phone")
	bob.create("r", "bob", "muc#roomconfig_persistentroom=1")
	bob.say("r", "soon gone")
	bob.heard("r", "bob", "soon gone")
	eventually(t, "the archive expired", func() bool { return len(bob.mamQuery("r", "").msgs) == 0 })
}

// eventually polls cond until it holds, failing the test after
// servertest.Wait.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(servertest.Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not in %v: %s", servertest.Wait, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestArchiveGoesWithRoom: a destroyed room's archive goes with it: the
// room made again under that name starts with an empty one.
func TestArchiveGoesWithRoom(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	alice.create("r", "alice", "muc#roomconfig_persistentroom=1")
	alice.say("r", "old")
	alice.heard("r", "alice", "old")
	alice.result("set", room("r"), `<query xmlns='`+nsOwner+`'><destroy/></query>`)
	alice.create("r", "alice", "muc#roomconfig_persistentroom=1")
	if got := alice.mamQuery("r", "").msgs; len(got) != 0 {
		t.Fatalf("the new room's archive holds %d messages", len(got))
	}
}

// TestSubjectArchived: a subject change is archived too (XEP-0313 §5.1.2).
func TestSubjectArchived(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	alice.create("r", "alice", "muc#roomconfig_persistentroom=1")
	alice.Write(`<message to='` + room("r") + `' type='groupchat'><subject>Topic</subject></message>`)
	alice.next("the subject", func(s *servertest.Node) bool { return text(s, "subject") == "Topic" })
	got := alice.mamQuery("r", "")
	if len(got.msgs) != 1 || text(got.msgs[0], "subject") != "Topic" {
		t.Fatalf("the archive after a subject change: %d messages", len(got.msgs))
	}
}

// TestForgedStanzaID: a stanza id that a sender claims is the room's is
// removed (XEP-0359 §3.2); the copies carry the room's own, once.
func TestForgedStanzaID(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	alice.create("r", "alice", "muc#roomconfig_persistentroom=1")
	alice.Write(`<message to='` + room("r") + `' type='groupchat'><body>hi</body><stanza-id xmlns='` + nsSID + `' by='` + room("r") + `' id='forged'/><stanza-id xmlns='` + nsSID + `' by='elsewhere.example' id='kept'/></message>`)
	m := alice.heard("r", "alice", "hi")
	var ids []string
	for _, k := range m.Kids {
		if k.Name.Space == nsSID {
			ids = append(ids, k.Attr["by"]+" "+k.Attr["id"])
		}
	}
	if len(ids) != 2 || ids[0] != "elsewhere.example kept" || stanzaIDOf(m, "r") == "forged" || stanzaIDOf(m, "r") == "" {
		t.Fatalf("stanza ids of the relayed message: %q", ids)
	}
}
