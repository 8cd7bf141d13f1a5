package private_test

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

// XEP-0049 over TCP, with raw clients so that each answer is read as the
// server wrote it. The fragments are the XEP's examples and XEP-0048's
// bookmarks.

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
	id := "p" + strconv.Itoa(c.n)
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

// exodus is the fragment of XEP-0049's examples.
const exodus = `<exodus xmlns="exodus:prefs">
      <defaultnick>Hamlet</defaultnick>
    </exodus>`

// bookmarks is XEP-0048's example of bookmarks kept in private storage.
const bookmarks = `<storage xmlns='storage:bookmarks'>
      <conference name='Council of Oberon' autojoin='true' jid='council@conference.underhill.org'>
        <nick>Puck</nick>
      </conference>
      <url name='Complete Works of Shakespeare' url='http://the-tech.mit.edu/Shakespeare/'/>
    </storage>`

// query wraps fragments in <query xmlns='jabber:iq:private'/>.
func query(frags ...string) string {
	return `<query xmlns="jabber:iq:private">` + strings.Join(frags, "") + `</query>`
}

// TestPrivate: XEP-0049's examples and XEP-0048 bookmarks, stored and read
// back, and the errors of §2.3.
func TestPrivate(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("hamlet", "denmark")
	srv.AddUser("macbeth", "scotland")
	hamlet := login(t, srv, "hamlet", "denmark")
	macbeth := login(t, srv, "macbeth", "scotland")

	// Nothing stored: the element as asked for, empty.
	if r := hamlet.iq("get", "", query(`<exodus xmlns="exodus:prefs"/>`)); r.typ != "result" || r.payloadCanon() != canonOf(t, query(`<exodus xmlns="exodus:prefs"/>`)) {
		t.Errorf("get before any set: %s", r.xml)
	}
	// "Client Stores Private Data" and "Client Retrieves Private Data".
	if r := hamlet.iq("set", "", query(exodus)); r.typ != "result" || r.payload != nil {
		t.Fatalf("set: %s", r.xml)
	}
	if r := hamlet.iq("get", "", query(`<exodus xmlns="exodus:prefs"/>`)); r.typ != "result" || r.payloadCanon() != canonOf(t, query(exodus)) {
		t.Errorf("get after set:\n got %s\nwant %s", r.payloadCanon(), canonOf(t, query(exodus)))
	}
	// XEP-0048 bookmarks through the own bare JID; the other fragment stays.
	if r := hamlet.iq("set", "hamlet@localhost", query(bookmarks)); r.typ != "result" {
		t.Fatalf("set bookmarks: %s", r.xml)
	}
	if r := hamlet.iq("get", "hamlet@localhost", query(`<storage xmlns='storage:bookmarks'/>`)); r.from != "hamlet@localhost" || r.payloadCanon() != canonOf(t, query(bookmarks)) {
		t.Errorf("get bookmarks: %s", r.xml)
	}
	if r := hamlet.iq("get", "", query(`<exodus xmlns="exodus:prefs"/>`)); r.payloadCanon() != canonOf(t, query(exodus)) {
		t.Errorf("exodus prefs after the bookmarks were set: %s", r.xml)
	}
	// A set of several elements, a get of two names of one namespace.
	two := []string{`<a xmlns='urn:example:two'>1</a>`, `<b xmlns='urn:example:two'><c/></b>`}
	if r := hamlet.iq("set", "", query(two...)); r.typ != "result" {
		t.Fatalf("set of two: %s", r.xml)
	}
	if r := hamlet.iq("get", "", query(`<b xmlns='urn:example:two'/>`, `<a xmlns='urn:example:two'/>`)); r.payloadCanon() != canonOf(t, query(two[1], two[0])) {
		t.Errorf("get of two: %s", r.xml)
	}
	if r := hamlet.iq("get", "", query(`<a xmlns='urn:example:two'/>`, `<storage xmlns='storage:bookmarks'/>`)); r.err != "modify bad-request" {
		t.Errorf("a get of two namespaces: %s", r.xml)
	}

	// "User Attempts to Get or Set Data for Another User": forbidden, and
	// nothing changes.
	for _, typ := range []string{"set", "get"} {
		if r := macbeth.iq(typ, "hamlet@localhost", query(`<exodus xmlns="exodus:prefs"><defaultnick>Macbeth</defaultnick></exodus>`)); r.err != "auth forbidden" {
			t.Errorf("macbeth's %s of hamlet's data: %s", typ, r.xml)
		}
	}
	if r := macbeth.iq("get", "", query(`<exodus xmlns="exodus:prefs"/>`)); r.payloadCanon() != canonOf(t, query(`<exodus xmlns="exodus:prefs"/>`)) {
		t.Errorf("macbeth sees data he never stored: %s", r.xml)
	}
	if r := hamlet.iq("get", "", query(`<exodus xmlns="exodus:prefs"/>`)); r.payloadCanon() != canonOf(t, query(exodus)) {
		t.Errorf("hamlet's data after macbeth's set: %s", r.xml)
	}

	// "User Attempts to Get Data Without Specifying Child Element".
	if r := hamlet.iq("get", "", query()); r.err != "modify bad-request" {
		t.Errorf("get of an empty query: %s", r.xml)
	}
	if r := hamlet.iq("set", "", query()); r.err != "modify not-acceptable" {
		t.Errorf("set of an empty query: %s", r.xml)
	}
	// Reserved namespaces; a child with no xmlns is in jabber:iq:private.
	for _, frag := range []string{`<x/>`, `<message xmlns='jabber:client'/>`, `<x xmlns='jabber:server'>1</x>`, `<x xmlns=''>1</x>`} {
		for _, typ := range []string{"get", "set"} {
			if r := hamlet.iq(typ, "", query(frag)); r.err != "modify not-acceptable" {
				t.Errorf("%s of %s: %s", typ, frag, r.xml)
			}
		}
	}

	// An empty element removes what was kept.
	if r := hamlet.iq("set", "", query(`<storage xmlns='storage:bookmarks'> </storage>`)); r.typ != "result" {
		t.Fatalf("set empty: %s", r.xml)
	}
	if r := hamlet.iq("get", "", query(`<storage xmlns='storage:bookmarks'/>`)); r.payloadCanon() != canonOf(t, query(`<storage xmlns='storage:bookmarks'/>`)) {
		t.Errorf("get after removal: %s", r.xml)
	}
}

// TestPrivateDisco: jabber:iq:private is a feature of the server JID.
func TestPrivateDisco(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("hamlet", "denmark")
	hamlet := login(t, srv, "hamlet", "denmark")
	r := hamlet.iq("get", "localhost", `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
	if !regexp.MustCompile(`<feature[^>]* var=["']jabber:iq:private["']`).MatchString(r.xml) {
		t.Errorf("disco#info lacks jabber:iq:private: %s", r.xml)
	}
}

// TestPrivateLimits: a fragment over limits.private.max_fragment_bytes, or
// a set that would take the account over limits.private.max_bytes, is
// refused whole with not-acceptable and a text that says which; a set that
// makes an account over the limit smaller goes through.
func TestPrivateLimits(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) {
		c.Limits.Private = config.PrivateLimits{MaxBytes: 5000, MaxFragmentBytes: 2000}
	})
	srv.AddUser("hamlet", "denmark")
	hamlet := login(t, srv, "hamlet", "denmark")
	// frag is stored as n bytes, its key as len("{urn:x}") + len(name).
	frag := func(name string, n int) string {
		frame := len(`<` + name + ` xmlns="urn:x"></` + name + `>`)
		return `<` + name + ` xmlns='urn:x'>` + strings.Repeat("p", n-frame) + `</` + name + `>`
	}
	size := func() int64 {
		n, err := srv.Store().UserDataSize(context.Background(), "hamlet", "private")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	if r := hamlet.iq("set", "", query(frag("a", 2000))); r.typ != "result" {
		t.Fatalf("a fragment of exactly the limit: %s", r.xml)
	}
	r := hamlet.iq("set", "", query(frag("b", 100), frag("c", 2001)))
	if r.err != "modify not-acceptable" || !strings.Contains(r.text, "{urn:x}c has 2001 bytes") || !strings.Contains(r.text, "2000") {
		t.Errorf("a fragment over the limit: %s", r.xml)
	}
	if r := hamlet.iq("get", "", query(`<b xmlns='urn:x'/>`)); r.payloadCanon() != canonOf(t, query(`<b xmlns='urn:x'/>`)) {
		t.Errorf("part of a refused set was kept: %s", r.xml)
	}
	// 2008 + 2008 kept; one more of 1000 passes 5000.
	if r := hamlet.iq("set", "", query(frag("b", 2000))); r.typ != "result" {
		t.Fatalf("second fragment: %s", r.xml)
	}
	if got := size(); got != 2*(7+1+2000) {
		t.Fatalf("user data size %d, want %d", got, 2*(7+1+2000))
	}
	r = hamlet.iq("set", "", query(frag("c", 1000)))
	if r.err != "modify not-acceptable" || !strings.Contains(r.text, "would keep 5024 bytes") || !strings.Contains(r.text, "5000") {
		t.Errorf("a set past the account's limit: %s", r.xml)
	}
	// Replacing a fragment by a smaller one, or removing one, is no growth.
	if r := hamlet.iq("set", "", query(frag("a", 1500), frag("c", 400))); r.typ != "result" {
		t.Errorf("a set that keeps the account within its limit: %s", r.xml)
	}
	if r := hamlet.iq("set", "", query(`<a xmlns='urn:x'/>`, `<b xmlns='urn:x'/>`, `<c xmlns='urn:x'/>`)); r.typ != "result" {
		t.Errorf("removal: %s", r.xml)
	}
	if got := size(); got != 0 {
		t.Errorf("user data size %d after removing every fragment", got)
	}
}

// TestPrivateDiskFloor: below the store's free-disk floor a set gets
// resource-constraint (wait), while reads and removals go on.
func TestPrivateDiskFloor(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.MinFreeDiskBytes = 1 << 62 })
	srv.AddUser("hamlet", "denmark")
	hamlet := login(t, srv, "hamlet", "denmark")
	if r := hamlet.iq("set", "", query(exodus)); r.err != "wait resource-constraint" {
		t.Errorf("set below the disk floor: %s", r.xml)
	}
	if r := hamlet.iq("get", "", query(`<exodus xmlns="exodus:prefs"/>`)); r.typ != "result" {
		t.Errorf("get below the disk floor: %s", r.xml)
	}
	if r := hamlet.iq("set", "", query(`<exodus xmlns="exodus:prefs"/>`)); r.typ != "result" {
		t.Errorf("removal below the disk floor: %s", r.xml)
	}
}

// TestPrivateDeletedWithAccount: deleting an account deletes its private
// XML; an account made again under the name starts with none.
func TestPrivateDeletedWithAccount(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("hamlet", "denmark")
	hamlet := login(t, srv, "hamlet", "denmark")
	if r := hamlet.iq("set", "", query(bookmarks)); r.typ != "result" {
		t.Fatalf("set: %s", r.xml)
	}
	if err := srv.Accounts().Delete(context.Background(), "hamlet"); err != nil {
		t.Fatal(err)
	}
	srv.AddUser("hamlet", "again")
	hamlet = login(t, srv, "hamlet", "again")
	if r := hamlet.iq("get", "", query(`<storage xmlns='storage:bookmarks'/>`)); r.payloadCanon() != canonOf(t, query(`<storage xmlns='storage:bookmarks'/>`)) {
		t.Errorf("the new account has the old one's bookmarks: %s", r.xml)
	}
}
