package admin_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/servertest"
)

// TestDeleteUserRemovesModuleData: the XEP-0133 delete-user command removes
// what every module keeps for the account, not only the account: its vCard
// (XEP-0054), its PEP nodes (XEP-0163), its message archive (XEP-0313), its
// private XML (XEP-0049) and its blocklist (XEP-0191). Each is made first
// through the account's own stanzas and read back; once an administrator
// deleted the account and made it again under the same name, each is
// empty, to the account and to a contact, and the contact's own archive
// keeps its side of the conversation.
func TestDeleteUserRemovesModuleData(t *testing.T) {
	e := setup(t)
	e.srv.AddUser("alice", "wonderland")
	e.srv.AddUser("bob", "builder")
	e.srv.Befriend("alice", "bob")
	alice := servertest.IQLogin(t, e.srv, "alice", "wonderland")
	bob := servertest.IQLogin(t, e.srv, "bob", "builder")

	const (
		vcard     = `<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>alice</NICKNAME></vCard>`
		node      = "http://jabber.org/protocol/tune"
		items     = `<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='` + node + `'/></pubsub>`
		private   = `<query xmlns='jabber:iq:private'><note xmlns='urn:test:notes'>the rabbit hole</note></query>`
		privateQ  = `<query xmlns='jabber:iq:private'><note xmlns='urn:test:notes'/></query>`
		blocklist = `<blocklist xmlns='urn:xmpp:blocking'/>`
		mamQuery  = `<query xmlns='urn:xmpp:mam:2' queryid='all'/>`
		discoNode = `<query xmlns='http://jabber.org/protocol/disco#items'/>`
	)
	ok := func(who string, a servertest.Answer) servertest.Answer {
		t.Helper()
		if a.Type != "result" {
			t.Fatalf("%s: %s", who, a.XML)
		}
		return a
	}
	archived := func(c *servertest.IQClient) int {
		t.Helper()
		a := ok("archive query", c.IQ("set", "", mamQuery))
		if !strings.Contains(a.XML, `complete="true"`) {
			t.Errorf("archive query without a complete fin: %s", a.XML)
		}
		return strings.Count(a.XML, `<result xmlns="urn:xmpp:mam:2"`)
	}

	// Each module's data, made through real stanzas.
	ok("vCard set", alice.IQ("set", "", vcard))
	ok("PEP publish", alice.IQ("set", "", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='`+node+`'><item id='now'><tune xmlns='`+node+`'><artist>Jefferson Airplane</artist></tune></item></publish></pubsub>`))
	ok("private set", alice.IQ("set", "", private))
	ok("block", alice.IQ("set", "", `<block xmlns='urn:xmpp:blocking'><item jid='queen@localhost'/></block>`))
	for i := range 2 {
		alice.Write(fmt.Sprintf(`<message to='%s' type='chat' id='a%d'><body>from alice %d</body></message>`, bob.JID(), i, i))
		bob.Expect(fmt.Sprintf(`id="a%d"`, i))
		bob.Write(fmt.Sprintf(`<message to='%s' type='chat' id='b%d'><body>from bob %d</body></message>`, alice.JID(), i, i))
		alice.Expect(fmt.Sprintf(`id="b%d"`, i))
	}

	// Each is there.
	if a := ok("vCard get", bob.IQ("get", "alice@localhost", `<vCard xmlns='vcard-temp'/>`)); !strings.Contains(a.XML, "Alice Liddell") {
		t.Fatalf("alice's vCard to bob: %s", a.XML)
	}
	if a := ok("PEP items", bob.IQ("get", "alice@localhost", items)); !strings.Contains(a.XML, "Jefferson Airplane") {
		t.Fatalf("alice's tune to bob: %s", a.XML)
	}
	if a := ok("disco#items", bob.IQ("get", "alice@localhost", discoNode)); !strings.Contains(a.XML, `node="`+node+`"`) {
		t.Fatalf("alice's PEP nodes to bob: %s", a.XML)
	}
	if a := ok("private get", alice.IQ("get", "", privateQ)); !strings.Contains(a.XML, "the rabbit hole") {
		t.Fatalf("alice's private XML: %s", a.XML)
	}
	if a := ok("blocklist", alice.IQ("get", "", blocklist)); !strings.Contains(a.XML, `jid="queen@localhost"`) {
		t.Fatalf("alice's blocklist: %s", a.XML)
	}
	if n := archived(alice); n != 4 {
		t.Fatalf("alice's archive holds %d messages, want 4", n)
	}
	r := e.run(t, "user-stats", adhoc.Values{"accountjid": {"alice@localhost"}})
	if v := field(r, "archivedmessages"); len(v) != 1 || v[0] != "4" {
		t.Fatalf("user-stats archivedmessages before the deletion: %v", v)
	}

	// Deleted by an administrator, then made again under the same name.
	r = e.run(t, "delete-user", adhoc.Values{"accountjids": {"alice@localhost"}})
	if r.Status != adhoc.Completed || note(r, adhoc.NoteError) != "" {
		t.Fatalf("delete-user: %+v", r)
	}
	if _, ok := alice.ClosedByServer(wait); !ok {
		t.Fatal("the deleted account's session was not closed")
	}
	r = e.run(t, "add-user", adhoc.Values{"accountjid": {"alice@localhost"}, "password": {"again"}, "password-verify": {"again"}})
	if r.Status != adhoc.Completed || note(r, adhoc.NoteError) != "" {
		t.Fatalf("add-user: %+v", r)
	}
	alice = servertest.IQLogin(t, e.srv, "alice", "again")

	// vCard: none, to bob; an empty one to alice herself.
	if a := bob.IQ("get", "alice@localhost", `<vCard xmlns='vcard-temp'/>`); a.Err != "cancel item-not-found" {
		t.Errorf("the new alice's vCard to bob: %s", a.XML)
	}
	if a := alice.IQ("get", "", `<vCard xmlns='vcard-temp'/>`); a.PayloadCanon() != servertest.CanonOf(t, `<vCard xmlns='vcard-temp'/>`) {
		t.Errorf("the new alice's own vCard: %s", a.XML)
	}
	// PEP: no node, to anyone.
	for _, c := range []*servertest.IQClient{alice, bob} {
		if a := c.IQ("get", "alice@localhost", items); a.Err != "cancel item-not-found" {
			t.Errorf("the new alice's tune to %s: %s", c.JID(), a.XML)
		}
		if a := ok("disco#items", c.IQ("get", "alice@localhost", discoNode)); strings.Contains(a.XML, "node=") {
			t.Errorf("the new alice's PEP nodes to %s: %s", c.JID(), a.XML)
		}
	}
	// Private XML: the empty element asked for.
	if a := ok("private get", alice.IQ("get", "", privateQ)); a.PayloadCanon() != servertest.CanonOf(t, privateQ) {
		t.Errorf("the new alice's private XML: %s", a.XML)
	}
	// Blocklist: empty.
	if a := ok("blocklist", alice.IQ("get", "", blocklist)); a.PayloadCanon() != servertest.CanonOf(t, blocklist) {
		t.Errorf("the new alice's blocklist: %s", a.XML)
	}
	// Archive: empty, in a query and in user-stats; bob's side is his.
	if n := archived(alice); n != 0 {
		t.Errorf("the new alice's archive holds %d messages", n)
	}
	r = e.run(t, "user-stats", adhoc.Values{"accountjid": {"alice@localhost"}})
	if m, b := field(r, "archivedmessages"), field(r, "archivebytes"); len(m) != 1 || m[0] != "0" || len(b) != 1 || b[0] != "0" {
		t.Errorf("user-stats of the new alice: %v messages, %v bytes", m, b)
	}
	if n := archived(bob); n != 4 {
		t.Errorf("bob's archive holds %d messages after alice's deletion, want his 4", n)
	}
	// And the new account works with all of it: what it sets is its own.
	ok("vCard set", alice.IQ("set", "", `<vCard xmlns='vcard-temp'><FN>Alice Again</FN></vCard>`))
	if a := ok("vCard get", bob.IQ("get", "alice@localhost", `<vCard xmlns='vcard-temp'/>`)); !strings.Contains(a.XML, "Alice Again") || strings.Contains(a.XML, "Liddell") {
		t.Errorf("the new alice's vCard to bob: %s", a.XML)
	}
}
