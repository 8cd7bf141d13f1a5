package vcard_test

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"regexp"
	"sort"
	"strconv"
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

type client struct {
	*servertest.Raw
	t   *testing.T
	jid string
	n   int
}

func login(t *testing.T, srv *servertest.Server, user, password string) *client {
	t.Helper()
	return &client{Raw: srv.RawLogin(user, password, "r"), t: t, jid: user + "@localhost/r"}
}

// answer is an IQ's reply as the client read it.
type answer struct {
	typ, from, to string
	payload       *node  // the first child other than <error/>
	err           string // "type condition" of the <error/>
	text          string // its <text/>
	xml           string
}

// iq sends an IQ of type typ with payload, addressed to to (none when
// empty), and returns the reply.
func (c *client) iq(typ, to, payload string) answer {
	c.t.Helper()
	c.n++
	id := "v" + strconv.Itoa(c.n)
	attr := ""
	if to != "" {
		attr = ` to='` + to + `'`
	}
	c.Write(`<iq type='` + typ + `' id='` + id + `'` + attr + `>` + payload + `</iq>`)
	got := c.Expect(`id=["']` + id + `["'][^>]*(/>|>(?s:.*?)</iq>)`)
	for _, el := range parse(c.t, got) {
		if el.name.Local != "iq" || el.attr["id"] != id {
			continue
		}
		a := answer{typ: el.attr["type"], from: el.attr["from"], to: el.attr["to"], xml: got}
		for _, k := range el.kids {
			if k.name.Local != "error" {
				if a.payload == nil {
					a.payload = k
				}
				continue
			}
			for _, e := range k.kids {
				if e.name.Local == "text" {
					a.text = e.text
				} else {
					a.err = k.attr["type"] + " " + e.name.Local
				}
			}
		}
		if a.to != c.jid {
			c.t.Errorf("reply to %q, want %q: %s", a.to, c.jid, got)
		}
		return a
	}
	c.t.Fatalf("no reply to %s in %q", id, got)
	return answer{}
}

// node is an XML element as parsed, for comparisons that ignore how the
// server wrote namespaces, quotes and the white space between elements.
type node struct {
	name xml.Name
	attr map[string]string
	text string
	kids []*node
}

// canon renders n with its namespaces, sorted attributes, text and
// children; text that is only white space is left out.
func (n *node) canon() string {
	var b strings.Builder
	b.WriteString("{" + n.name.Space + "}" + n.name.Local)
	keys := make([]string, 0, len(n.attr))
	for k := range n.attr {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteString(" " + k + "=" + strconv.Quote(n.attr[k]))
	}
	b.WriteString("[")
	if strings.TrimSpace(n.text) != "" {
		b.WriteString(strconv.Quote(n.text))
	}
	for _, k := range n.kids {
		b.WriteString(k.canon())
	}
	b.WriteString("]")
	return b.String()
}

// parse reads the top-level elements of text as if inside the stream
// (default namespace jabber:client): what the server wrote, or an element
// a test wrote.
func parse(t *testing.T, text string) []*node {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(`<stream xmlns='jabber:client'>` + text + `</stream>`))
	var stack []*node
	var top []*node
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return top
		}
		if err != nil {
			t.Fatalf("parse %q: %v", text, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &node{name: tok.Name, attr: map[string]string{}}
			for _, a := range tok.Attr {
				if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
					continue
				}
				k := a.Name.Local
				if a.Name.Space != "" {
					k = a.Name.Space + ":" + k
				}
				n.attr[k] = a.Value
			}
			if len(stack) == 1 {
				top = append(top, n)
			} else if len(stack) > 1 {
				p := stack[len(stack)-1]
				p.kids = append(p.kids, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 1 {
				stack[len(stack)-1].text += string(tok)
			}
		}
	}
}

// canonOf is the canonical form of one element written by the test.
func canonOf(t *testing.T, el string) string {
	t.Helper()
	els := parse(t, el)
	if len(els) != 1 {
		t.Fatalf("want one element in %q", el)
	}
	return els[0].canon()
}

func (a answer) payloadCanon() string {
	if a.payload == nil {
		return "(none)"
	}
	return a.payload.canon()
}

// TestVCard: the use cases of XEP-0054 §3 between alice, bob and carol.
func TestVCard(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	srv.AddUser("carol", "caroline")
	alice := login(t, srv, "alice", "wonderland")
	bob := login(t, srv, "bob", "builder")
	empty := canonOf(t, `<vCard xmlns='vcard-temp'/>`)

	// §3.1: no vCard yet, an empty one (no 'to', or to one's own bare JID).
	for _, to := range []string{"", "alice@localhost"} {
		if r := alice.iq("get", to, `<vCard xmlns='vcard-temp'/>`); r.typ != "result" || r.from != to || r.payloadCanon() != empty {
			t.Errorf("get own vCard (to %q) before any: %s", to, r.xml)
		}
	}
	// §3.3: another's that does not exist is an error.
	if r := bob.iq("get", "alice@localhost", `<vCard xmlns='vcard-temp'/>`); r.err != "cancel item-not-found" {
		t.Errorf("get of a vCard never set: %s", r.xml)
	}
	if r := bob.iq("get", "nobody@localhost", `<vCard xmlns='vcard-temp'/>`); r.err != "cancel service-unavailable" {
		t.Errorf("get of a vCard of no account: %s", r.xml)
	}

	// §3.2: the update request, answered with an empty result.
	if r := alice.iq("set", "", stpeter); r.typ != "result" || r.payload != nil {
		t.Fatalf("set: %s", r.xml)
	}
	want := canonOf(t, stpeter)
	if r := alice.iq("get", "", `<vCard xmlns='vcard-temp'/>`); r.typ != "result" || r.payloadCanon() != want {
		t.Errorf("get own vCard after set:\n got %s\nwant %s", r.payloadCanon(), want)
	}
	// §3.3: anyone on the server reads it through the bare JID, answered
	// from that JID.
	if r := bob.iq("get", "alice@localhost", `<vCard xmlns='vcard-temp'/>`); r.typ != "result" || r.from != "alice@localhost" || r.payloadCanon() != want {
		t.Errorf("bob's get of alice's vCard: %s", r.xml)
	}
	// A set on one's own bare JID works too, and replaces the whole vCard.
	if r := bob.iq("set", "bob@localhost", jer); r.typ != "result" {
		t.Fatalf("set to own bare JID: %s", r.xml)
	}
	carol := login(t, srv, "carol", "caroline")
	if r := carol.iq("get", "bob@localhost", `<vCard xmlns='vcard-temp'/>`); r.payloadCanon() != canonOf(t, jer) {
		t.Errorf("carol's get of bob's vCard:\n got %s\nwant %s", r.payloadCanon(), canonOf(t, jer))
	}

	// §3.2: a set on someone else's vCard is forbidden, and changes nothing.
	if r := bob.iq("set", "alice@localhost", `<vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard>`); r.err != "auth forbidden" {
		t.Errorf("bob's set of alice's vCard: %s", r.xml)
	}
	if r := carol.iq("get", "alice@localhost", `<vCard xmlns='vcard-temp'/>`); r.payloadCanon() != want {
		t.Errorf("alice's vCard after a forbidden set: %s", r.xml)
	}

	// An empty vCard removes the stored one.
	if r := alice.iq("set", "", `<vCard xmlns='vcard-temp'>  </vCard>`); r.typ != "result" {
		t.Fatalf("set empty: %s", r.xml)
	}
	if r := bob.iq("get", "alice@localhost", `<vCard xmlns='vcard-temp'/>`); r.err != "cancel item-not-found" {
		t.Errorf("get after an empty set: %s", r.xml)
	}
	if r := alice.iq("get", "", `<vCard xmlns='vcard-temp'/>`); r.payloadCanon() != empty {
		t.Errorf("own get after an empty set: %s", r.xml)
	}
}

// TestVCardDisco: vcard-temp is a feature of the server JID (§4) and of
// the accounts' bare JIDs.
func TestVCardDisco(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	alice := login(t, srv, "alice", "wonderland")
	for _, to := range []string{"localhost", "alice@localhost", "bob@localhost"} {
		r := alice.iq("get", to, `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
		if !regexp.MustCompile(`<feature[^>]* var=["']vcard-temp["']`).MatchString(r.xml) {
			t.Errorf("disco#info of %s lacks vcard-temp: %s", to, r.xml)
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
	alice := login(t, srv, "alice", "wonderland")
	// Stored as <vCard xmlns="vcard-temp"><DESC>…</DESC></vCard>.
	vcard := func(n int) string {
		const frame = len(`<vCard xmlns="vcard-temp"><DESC></DESC></vCard>`)
		return `<vCard xmlns='vcard-temp'><DESC>` + strings.Repeat("d", n-frame) + `</DESC></vCard>`
	}
	if r := alice.iq("set", "", vcard(limit)); r.typ != "result" {
		t.Fatalf("a vCard of exactly the limit: %s", r.xml)
	}
	r := alice.iq("set", "", vcard(limit+1))
	if r.err != "modify not-acceptable" || !strings.Contains(r.text, "2049 bytes") || !strings.Contains(r.text, "2048") {
		t.Errorf("a vCard over the limit: %s", r.xml)
	}
	if r := alice.iq("get", "", `<vCard xmlns='vcard-temp'/>`); r.payloadCanon() != canonOf(t, vcard(limit)) {
		t.Errorf("the stored vCard changed after a refused set: %s", r.xml)
	}
}

// TestVCardDiskFloor: below the store's free-disk floor a set gets
// resource-constraint (wait), while reads and removals go on.
func TestVCardDiskFloor(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.MinFreeDiskBytes = 1 << 62 })
	srv.AddUser("alice", "wonderland")
	alice := login(t, srv, "alice", "wonderland")
	if r := alice.iq("set", "", jer); r.err != "wait resource-constraint" {
		t.Errorf("set below the disk floor: %s", r.xml)
	}
	if r := alice.iq("get", "", `<vCard xmlns='vcard-temp'/>`); r.typ != "result" {
		t.Errorf("get below the disk floor: %s", r.xml)
	}
	if r := alice.iq("set", "", `<vCard xmlns='vcard-temp'/>`); r.typ != "result" {
		t.Errorf("removal below the disk floor: %s", r.xml)
	}
}

// TestVCardDeletedWithAccount: deleting an account deletes its vCard; an
// account made again under the name starts with none.
func TestVCardDeletedWithAccount(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	alice := login(t, srv, "alice", "wonderland")
	if r := alice.iq("set", "", jer); r.typ != "result" {
		t.Fatalf("set: %s", r.xml)
	}
	if err := srv.Accounts().Delete(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	srv.AddUser("alice", "again")
	bob := login(t, srv, "bob", "builder")
	if r := bob.iq("get", "alice@localhost", `<vCard xmlns='vcard-temp'/>`); r.err != "cancel item-not-found" {
		t.Errorf("the new alice has the old one's vCard: %s", r.xml)
	}
	alice = login(t, srv, "alice", "again")
	if r := alice.iq("get", "", `<vCard xmlns='vcard-temp'/>`); r.payloadCanon() != canonOf(t, `<vCard xmlns='vcard-temp'/>`) {
		t.Errorf("own vCard after the account was made again: %s", r.xml)
	}
}
