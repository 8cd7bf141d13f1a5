package vcard_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// XEP-0054 over TCP, with raw clients so that each answer is read as the
// server wrote it. The vCards are the XEP's own examples.

// stpeter is the vCard of XEP-0054's "vCard Update Request" example.
const stpeter = `<vCard xmlns='vcard-temp'>
    <FN>Peter Saint-Andre</FN>
    <N>
      <FAMILY>Saint-Andre</FAMILY>
      <GIVEN>Peter</GIVEN>
      <MIDDLE/>
    </N>
    <NICKNAME>stpeter</NICKNAME>
    <URL>http://www.xmpp.org/xsf/people/stpeter.shtml</URL>
    <BDAY>1966-08-06</BDAY>
    <ORG>
      <ORGNAME>XMPP Standards Foundation</ORGNAME>
      <ORGUNIT/>
    </ORG>
    <TITLE>Executive Director</TITLE>
    <ROLE>Patron Saint</ROLE>
    <TEL><WORK/><VOICE/><NUMBER>303-308-3282</NUMBER></TEL>
    <TEL><WORK/><FAX/><NUMBER/></TEL>
    <TEL><WORK/><MSG/><NUMBER/></TEL>
    <ADR>
      <WORK/>
      <EXTADD>Suite 600</EXTADD>
      <STREET>1899 Wynkoop Street</STREET>
      <LOCALITY>Denver</LOCALITY>
      <REGION>CO</REGION>
      <PCODE>80202</PCODE>
      <CTRY>USA</CTRY>
    </ADR>
    <TEL><HOME/><VOICE/><NUMBER>303-555-1212</NUMBER></TEL>
    <TEL><HOME/><FAX/><NUMBER/></TEL>
    <TEL><HOME/><MSG/><NUMBER/></TEL>
    <ADR>
      <HOME/>
      <EXTADD/>
      <STREET/>
      <LOCALITY>Denver</LOCALITY>
      <REGION>CO</REGION>
      <PCODE>80209</PCODE>
      <CTRY>USA</CTRY>
    </ADR>
    <EMAIL><INTERNET/><PREF/><USERID>stpeter@jabber.org</USERID></EMAIL>
    <JABBERID>stpeter@jabber.org</JABBERID>
    <DESC>
      Check out my blog at https://stpeter.im/
    </DESC>
  </vCard>`

// jer is the vCard of the example "Receiving Another User's vCard", with
// characters that must be escaped and an xml:lang.
const jer = `<vCard xmlns='vcard-temp' xml:lang='en'>
    <FN>JeremieMiller</FN>
    <N>
      <GIVEN>Jeremie</GIVEN>
      <FAMILY>Miller</FAMILY>
      <MIDDLE/>
    </N>
    <NICKNAME>jer &amp; &lt;co&gt;</NICKNAME>
    <EMAIL><INTERNET/><PREF/><USERID>jeremie@jabber.org</USERID></EMAIL>
    <JABBERID>jer@jabber.org</JABBERID>
  </vCard>`

// TestVCard: the use cases of XEP-0054 §3 between alice, bob and carol.
func TestVCard(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	srv.AddUser("carol", "caroline")
	alice := servertest.IQLogin(t, srv, "alice", "wonderland")
	bob := servertest.IQLogin(t, srv, "bob", "builder")
	empty := servertest.CanonOf(t, `<vCard xmlns='vcard-temp'/>`)

	// §3.1: no vCard yet, an empty one (no 'to', or to one's own bare JID).
	for _, to := range []string{"", "alice@localhost"} {
		if r := alice.IQ("get", to, `<vCard xmlns='vcard-temp'/>`); r.Type != "result" || r.From != to || r.PayloadCanon() != empty {
			t.Errorf("get own vCard (to %q) before any: %s", to, r.XML)
		}
	}
	// §3.3: another's that does not exist is an error.
	if r := bob.IQ("get", "alice@localhost", `<vCard xmlns='vcard-temp'/>`); r.Err != "cancel item-not-found" {
		t.Errorf("get of a vCard never set: %s", r.XML)
	}
	if r := bob.IQ("get", "nobody@localhost", `<vCard xmlns='vcard-temp'/>`); r.Err != "cancel service-unavailable" {
		t.Errorf("get of a vCard of no account: %s", r.XML)
	}

	// §3.2: the update request, answered with an empty result.
	if r := alice.IQ("set", "", stpeter); r.Type != "result" || r.Payload != nil {
		t.Fatalf("set: %s", r.XML)
	}
	want := servertest.CanonOf(t, stpeter)
	if r := alice.IQ("get", "", `<vCard xmlns='vcard-temp'/>`); r.Type != "result" || r.PayloadCanon() != want {
		t.Errorf("get own vCard after set:\n got %s\nwant %s", r.PayloadCanon(), want)
	}
	// §3.3: anyone on the server reads it through the bare JID, answered
	// from that JID.
	if r := bob.IQ("get", "alice@localhost", `<vCard xmlns='vcard-temp'/>`); r.Type != "result" || r.From != "alice@localhost" || r.PayloadCanon() != want {
		t.Errorf("bob's get of alice's vCard: %s", r.XML)
	}
	// A set on one's own bare JID works too, and replaces the whole vCard.
	if r := bob.IQ("set", "bob@localhost", jer); r.Type != "result" {
		t.Fatalf("set to own bare JID: %s", r.XML)
	}
	carol := servertest.IQLogin(t, srv, "carol", "caroline")
	if r := carol.IQ("get", "bob@localhost", `<vCard xmlns='vcard-temp'/>`); r.PayloadCanon() != servertest.CanonOf(t, jer) {
		t.Errorf("carol's get of bob's vCard:\n got %s\nwant %s", r.PayloadCanon(), servertest.CanonOf(t, jer))
	}

	// §3.2: a set on someone else's vCard is forbidden, and changes nothing.
	if r := bob.IQ("set", "alice@localhost", `<vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard>`); r.Err != "auth forbidden" {
		t.Errorf("bob's set of alice's vCard: %s", r.XML)
	}
	if r := carol.IQ("get", "alice@localhost", `<vCard xmlns='vcard-temp'/>`); r.PayloadCanon() != want {
		t.Errorf("alice's vCard after a forbidden set: %s", r.XML)
	}

	// An empty vCard removes the stored one.
	if r := alice.IQ("set", "", `<vCard xmlns='vcard-temp'>  </vCard>`); r.Type != "result" {
		t.Fatalf("set empty: %s", r.XML)
	}
	if r := bob.IQ("get", "alice@localhost", `<vCard xmlns='vcard-temp'/>`); r.Err != "cancel item-not-found" {
		t.Errorf("get after an empty set: %s", r.XML)
	}
	if r := alice.IQ("get", "", `<vCard xmlns='vcard-temp'/>`); r.PayloadCanon() != empty {
		t.Errorf("own get after an empty set: %s", r.XML)
	}
}

// TestVCardDisco: vcard-temp is a feature of the server JID (§4) and of
// the accounts' bare JIDs.
func TestVCardDisco(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	alice := servertest.IQLogin(t, srv, "alice", "wonderland")
	for _, to := range []string{"localhost", "alice@localhost", "bob@localhost"} {
		r := alice.IQ("get", to, `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
		if !regexp.MustCompile(`<feature[^>]* var=["']vcard-temp["']`).MatchString(r.XML) {
			t.Errorf("disco#info of %s lacks vcard-temp: %s", to, r.XML)
		}
	}
}

// TestVCardLimit: a vCard larger than limits.vcard.max_bytes, as stored, is
// refused with not-acceptable and a text that says so; the stored one
// stays. One at the limit is kept.
func TestVCardLimit(t *testing.T) {
	const limit = 2048
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.VCard.MaxBytes = limit })
	srv.AddUser("alice", "wonderland")
	alice := servertest.IQLogin(t, srv, "alice", "wonderland")
	// Stored as <vCard xmlns="vcard-temp"><DESC>…</DESC></vCard>.
	vcard := func(n int) string {
		const frame = len(`<vCard xmlns="vcard-temp"><DESC></DESC></vCard>`)
		return `<vCard xmlns='vcard-temp'><DESC>` + strings.Repeat("d", n-frame) + `</DESC></vCard>`
	}
	if r := alice.IQ("set", "", vcard(limit)); r.Type != "result" {
		t.Fatalf("a vCard of exactly the limit: %s", r.XML)
	}
	r := alice.IQ("set", "", vcard(limit+1))
	if r.Err != "modify not-acceptable" || !strings.Contains(r.Text, "2049 bytes") || !strings.Contains(r.Text, "2048") {
		t.Errorf("a vCard over the limit: %s", r.XML)
	}
	if r := alice.IQ("get", "", `<vCard xmlns='vcard-temp'/>`); r.PayloadCanon() != servertest.CanonOf(t, vcard(limit)) {
		t.Errorf("the stored vCard changed after a refused set: %s", r.XML)
	}
}

// TestVCardDiskFloor: below the store's free-disk floor a set gets
// resource-constraint (wait), while reads and removals go on.
func TestVCardDiskFloor(t *testing.T) {
	servertest.Embedded(t) // the free-disk floor is the bbolt store's
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.MinFreeDiskBytes = 1 << 62 })
	srv.AddUser("alice", "wonderland")
	alice := servertest.IQLogin(t, srv, "alice", "wonderland")
	if r := alice.IQ("set", "", jer); r.Err != "wait resource-constraint" {
		t.Errorf("set below the disk floor: %s", r.XML)
	}
	if r := alice.IQ("get", "", `<vCard xmlns='vcard-temp'/>`); r.Type != "result" {
		t.Errorf("get below the disk floor: %s", r.XML)
	}
	if r := alice.IQ("set", "", `<vCard xmlns='vcard-temp'/>`); r.Type != "result" {
		t.Errorf("removal below the disk floor: %s", r.XML)
	}
}

// TestVCardDeletedWithAccount: deleting an account deletes its vCard; an
// account made again under the name starts with none.
func TestVCardDeletedWithAccount(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	alice := servertest.IQLogin(t, srv, "alice", "wonderland")
	if r := alice.IQ("set", "", jer); r.Type != "result" {
		t.Fatalf("set: %s", r.XML)
	}
	if err := srv.Accounts().Delete(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	srv.AddUser("alice", "again")
	bob := servertest.IQLogin(t, srv, "bob", "builder")
	if r := bob.IQ("get", "alice@localhost", `<vCard xmlns='vcard-temp'/>`); r.Err != "cancel item-not-found" {
		t.Errorf("the new alice has the old one's vCard: %s", r.XML)
	}
	alice = servertest.IQLogin(t, srv, "alice", "again")
	if r := alice.IQ("get", "", `<vCard xmlns='vcard-temp'/>`); r.PayloadCanon() != servertest.CanonOf(t, `<vCard xmlns='vcard-temp'/>`) {
		t.Errorf("own vCard after the account was made again: %s", r.XML)
	}
}
