package blocking_test

import (
	"encoding/xml"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
)

// XEP-0191 over TCP, with servertest raw clients (STARTTLS, SASL PLAIN, a
// chosen resource), so that the tests see the stanzas as they are on the
// wire. "Nothing arrived" is checked with a sync: a session's stanzas are
// routed in order, so once a sender's ping to the server is answered its
// earlier stanzas have been routed, and once the recipient's own ping is
// answered whatever was queued for it before has been read.

const (
	nsBlocking = "urn:xmpp:blocking"
	nsErrors   = "urn:xmpp:blocking:errors"
	nsStanzas  = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

var seq atomic.Int64

func nextID(prefix string) string { return prefix + strconv.FormatInt(seq.Add(1), 10) }

// client is one logged-in raw session with what it received and has not
// looked at yet.
type client struct {
	*servertest.Raw
	t   *testing.T
	jid string
	in  *servertest.Inbox[stanzaOnWire]
}

func login(t *testing.T, srv *servertest.Server, user, resource string) *client {
	t.Helper()
	raw, jid := srv.RawLogin(user, "pw-"+user, resource), user+"@localhost/"+resource
	return &client{Raw: raw, t: t, jid: jid, in: servertest.NewInbox(t, raw, jid, decodeStanza)}
}

// decodeStanza decodes one stanza the server wrote.
func decodeStanza(el string) (stanzaOnWire, error) {
	s := stanzaOnWire{XML: el}
	err := servertest.DecodeElement(el, &s)
	return s, err
}

// stanzaOnWire is a top-level element as the server wrote it.
type stanzaOnWire struct {
	XMLName   xml.Name
	From      *string   `xml:"from,attr"`
	To        string    `xml:"to,attr"`
	Type      string    `xml:"type,attr"`
	ID        string    `xml:"id,attr"`
	Body      string    `xml:"jabber:client body"`
	Blocklist *items    `xml:"urn:xmpp:blocking blocklist"`
	Block     *items    `xml:"urn:xmpp:blocking block"`
	Unblock   *items    `xml:"urn:xmpp:blocking unblock"`
	Error     *errorEl  `xml:"jabber:client error"`
	Children  []anyElem `xml:",any"`
	XML       string    `xml:"-"`
}

type anyElem struct{ XMLName xml.Name }

type items struct {
	Items []struct {
		JID string `xml:"jid,attr"`
	} `xml:"urn:xmpp:blocking item"`
}

func (it *items) jids() []string {
	if it == nil {
		return nil
	}
	var out []string
	for _, i := range it.Items {
		out = append(out, i.JID)
	}
	slices.Sort(out)
	return out
}

type errorEl struct {
	Type       string    `xml:"type,attr"`
	Conditions []anyElem `xml:",any"`
}

func (s stanzaOnWire) from() string {
	if s.From == nil {
		return "(none)"
	}
	return *s.From
}

// condition is the stanza error's defined condition, or "".
func (s stanzaOnWire) condition() string {
	if s.Error == nil {
		return ""
	}
	for _, c := range s.Error.Conditions {
		if c.XMLName.Space == nsStanzas && c.XMLName.Local != "text" {
			return c.XMLName.Local
		}
	}
	return ""
}

// blockedCondition reports whether the error has XEP-0191's <blocked/>.
func (s stanzaOnWire) blockedCondition() bool {
	return s.Error != nil && slices.Contains(s.Error.Conditions, anyElem{XMLName: xml.Name{Space: nsErrors, Local: "blocked"}})
}

// next returns the first stanza received that match accepts, waiting up to
// servertest.Wait for it.
func (c *client) next(what string, match func(stanzaOnWire) bool) stanzaOnWire {
	c.t.Helper()
	return c.in.Next(what, match)
}

// iq sends an IQ with a fresh id (the %s in format) and returns the answer.
func (c *client) iq(format string) stanzaOnWire {
	c.t.Helper()
	id := nextID("iq")
	c.Write(strings.Replace(format, "%s", id, 1))
	return c.next("answer to IQ "+id, func(s stanzaOnWire) bool {
		return s.XMLName.Local == "iq" && s.ID == id && (s.Type == "result" || s.Type == "error")
	})
}

// sync waits for the answer to a ping of the server (see the top of the
// file).
func (c *client) sync() {
	c.t.Helper()
	if r := c.iq(`<iq type='get' id='%s' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`); r.Type != "result" {
		c.t.Fatalf("%s: ping: %s", c.jid, r.XML)
	}
}

// settle syncs the sender, then each recipient: everything the sender's
// earlier stanzas caused has been received.
func settle(sender *client, recipients ...*client) {
	sender.t.Helper()
	sender.sync()
	for _, r := range recipients {
		r.sync()
	}
}

// take removes and returns the pending stanzas match accepts.
func (c *client) take(match func(stanzaOnWire) bool) []stanzaOnWire {
	return c.in.Take(match)
}

// none fails the test if c received a stanza match accepts.
func (c *client) none(what string, match func(stanzaOnWire) bool) {
	c.t.Helper()
	if got := c.take(match); len(got) > 0 {
		var xmls []string
		for _, s := range got {
			xmls = append(xmls, s.XML)
		}
		c.t.Errorf("%s received %s: %q", c.jid, what, xmls)
	}
}

func fromAccount(user string) func(stanzaOnWire) bool {
	return func(s stanzaOnWire) bool {
		f := s.from()
		return f == user+"@localhost" || strings.HasPrefix(f, user+"@localhost/")
	}
}

func kind(local string, match func(stanzaOnWire) bool) func(stanzaOnWire) bool {
	return func(s stanzaOnWire) bool { return s.XMLName.Local == local && match(s) }
}

func isPush(s stanzaOnWire) bool {
	return s.XMLName.Local == "iq" && s.Type == "set" && (s.Block != nil || s.Unblock != nil)
}

// available sends presence and waits for the server to reflect it.
func (c *client) available(status string) {
	c.t.Helper()
	c.Write(`<presence><status>` + status + `</status></presence>`)
	c.next("own presence", func(s stanzaOnWire) bool {
		return s.XMLName.Local == "presence" && s.from() == c.jid && s.Type == ""
	})
}

func (c *client) block(jids ...string) stanzaOnWire {
	c.t.Helper()
	return c.iq(`<iq type='set' id='%s'>` + itemsXML("block", jids) + `</iq>`)
}

func (c *client) unblock(jids ...string) stanzaOnWire {
	c.t.Helper()
	return c.iq(`<iq type='set' id='%s'>` + itemsXML("unblock", jids) + `</iq>`)
}

func (c *client) blocklist() []string {
	c.t.Helper()
	r := c.iq(`<iq type='get' id='%s'><blocklist xmlns='urn:xmpp:blocking'/></iq>`)
	if r.Type != "result" || r.Blocklist == nil {
		c.t.Fatalf("%s: blocklist: %s", c.jid, r.XML)
	}
	return r.Blocklist.jids()
}

func itemsXML(name string, jids []string) string {
	var b strings.Builder
	b.WriteString(`<` + name + ` xmlns='urn:xmpp:blocking'>`)
	for _, j := range jids {
		b.WriteString(`<item jid='` + j + `'/>`)
	}
	b.WriteString(`</` + name + `>`)
	return b.String()
}

func mustResult(t *testing.T, what string, r stanzaOnWire) {
	t.Helper()
	if r.Type != "result" {
		t.Fatalf("%s: want a result, got %s", what, r.XML)
	}
}

func users(t *testing.T, srv *servertest.Server, names ...string) {
	t.Helper()
	for _, n := range names {
		srv.AddUser(n, "pw-"+n)
	}
}

// subscribe makes a and b subscribed to each other's presence, in the store
// before they log in.
func subscribe(t *testing.T, srv *servertest.Server, a, b string) {
	t.Helper()
	ctx := servertest.Context(t, servertest.Wait)
	for _, p := range [][2]string{{a, b}, {b, a}} {
		if _, err := srv.Store().UpdateRosterItem(ctx, p[0], p[1]+"@localhost", func(it *storage.RosterItem, _ bool) (bool, error) {
			it.Subscription = storage.SubBoth
			return false, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBlocklistExamples follows the examples of XEP-0191 §3: the feature in
// the server's disco#info, an empty list, blocking romeo and then iago, the
// list with both, unblocking romeo, unblocking all; each change answered
// with an empty result and pushed to the session, which asked for the list.
func TestBlocklistExamples(t *testing.T) {
	srv := servertest.Start(t)
	users(t, srv, "juliet")
	j := login(t, srv, "juliet", "chamber")

	r := j.iq(`<iq type='get' id='%s' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if !strings.Contains(r.XML, `var="urn:xmpp:blocking"`) && !strings.Contains(r.XML, `var='urn:xmpp:blocking'`) {
		t.Fatalf("disco#info lacks urn:xmpp:blocking: %s", r.XML)
	}

	// Example 3: the request has no to; example 5: an empty list.
	r = j.iq(`<iq type='get' id='%s'><blocklist xmlns='urn:xmpp:blocking'/></iq>`)
	if r.Type != "result" || r.Blocklist == nil || len(r.Blocklist.Items) != 0 || r.To != j.jid || r.From != nil {
		t.Fatalf("empty blocklist: %s", r.XML)
	}

	push := func(what string, want stanzaOnWire) stanzaOnWire {
		t.Helper()
		p := j.next(what+" push", isPush)
		if p.To != j.jid || p.ID == "" || p.From != nil {
			t.Errorf("%s push: %s, want an IQ set to %s with an id and no from", what, p.XML, j.jid)
		}
		if (p.Block == nil) != (want.Block == nil) || !slices.Equal(p.Block.jids(), want.Block.jids()) ||
			(p.Unblock == nil) != (want.Unblock == nil) || !slices.Equal(p.Unblock.jids(), want.Unblock.jids()) {
			t.Errorf("%s push: %s", what, p.XML)
		}
		// A client answers a push, and the server does not answer that.
		j.Write(`<iq type='result' id='` + p.ID + `'/>`)
		return p
	}
	one := func(j string) *items {
		return &items{Items: []struct {
			JID string `xml:"jid,attr"`
		}{{JID: j}}}
	}

	// Example 6, from the session's own full JID; example 7: an empty result;
	// example 8: the push.
	r = j.iq(`<iq from='juliet@localhost/chamber' type='set' id='%s'><block xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/></block></iq>`)
	if r.Type != "result" || len(r.Children) != 0 {
		t.Fatalf("block romeo: %s", r.XML)
	}
	push("block romeo", stanzaOnWire{Block: one("romeo@montague.net")})
	mustResult(t, "block iago", j.block("iago@shakespeare.lit"))
	push("block iago", stanzaOnWire{Block: one("iago@shakespeare.lit")})

	// Example 4.
	if got := j.blocklist(); !slices.Equal(got, []string{"iago@shakespeare.lit", "romeo@montague.net"}) {
		t.Fatalf("blocklist %q, want iago and romeo", got)
	}

	// Examples 10–12.
	r = j.iq(`<iq type='set' id='%s'><unblock xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/></unblock></iq>`)
	if r.Type != "result" || len(r.Children) != 0 {
		t.Fatalf("unblock romeo: %s", r.XML)
	}
	push("unblock romeo", stanzaOnWire{Unblock: one("romeo@montague.net")})
	if got := j.blocklist(); !slices.Equal(got, []string{"iago@shakespeare.lit"}) {
		t.Fatalf("blocklist %q, want iago", got)
	}

	// Examples 13–15: unblock all.
	r = j.iq(`<iq type='set' id='%s'><unblock xmlns='urn:xmpp:blocking'/></iq>`)
	if r.Type != "result" || len(r.Children) != 0 {
		t.Fatalf("unblock all: %s", r.XML)
	}
	if p := push("unblock all", stanzaOnWire{Unblock: &items{}}); len(p.Unblock.Items) != 0 {
		t.Errorf("unblock all push carries items: %s", p.XML)
	}
	if got := j.blocklist(); len(got) != 0 {
		t.Fatalf("blocklist %q after unblocking all, want none", got)
	}

	// The answers to the pushes were not answered.
	j.sync()
	j.none("an answer to a push result", func(s stanzaOnWire) bool { return s.XMLName.Local == "iq" })
}

// TestBlockRequests: what a <block/> and an <unblock/> may hold. A JID is
// kept in its normal form and once, to the account's bare JID is as to no
// one, and bad requests change nothing.
func TestBlockRequests(t *testing.T) {
	srv := servertest.Start(t)
	users(t, srv, "juliet")
	j := login(t, srv, "juliet", "chamber")

	r := j.iq(`<iq type='set' id='%s' to='juliet@localhost'><block xmlns='urn:xmpp:blocking'><item jid='Romeo@Montague.NET/Orchard'/><item jid='romeo@montague.net/Orchard'/><item jid='montague.net'/></block></iq>`)
	if r.Type != "result" || r.from() != "juliet@localhost" {
		t.Fatalf("block to the bare JID: %s", r.XML)
	}
	if got := j.blocklist(); !slices.Equal(got, []string{"montague.net", "romeo@montague.net/Orchard"}) {
		t.Fatalf("blocklist %q", got)
	}
	for _, tc := range []struct {
		name, payload, cond string
	}{
		{"an empty block (§3.3)", `<block xmlns='urn:xmpp:blocking'/>`, "bad-request"},
		{"an item without a jid", `<block xmlns='urn:xmpp:blocking'><item/></block>`, "bad-request"},
		{"a child that is not an item", `<block xmlns='urn:xmpp:blocking'><item jid='a@b'/><jid>c@d</jid></block>`, "bad-request"},
		{"a JID that is not one", `<block xmlns='urn:xmpp:blocking'><item jid='a@b'/><item jid='@montague.net'/></block>`, "jid-malformed"},
		{"an empty JID", `<unblock xmlns='urn:xmpp:blocking'><item jid=''/></unblock>`, "jid-malformed"},
		{"a block IQ get", `<block xmlns='urn:xmpp:blocking'><item jid='a@b'/></block>`, "service-unavailable"},
	} {
		typ := "set"
		if strings.HasSuffix(tc.name, "get") {
			typ = "get"
		}
		r := j.iq(`<iq type='` + typ + `' id='%s'>` + tc.payload + `</iq>`)
		if r.Type != "error" || r.condition() != tc.cond {
			t.Errorf("%s: %s, want %s", tc.name, r.XML, tc.cond)
		}
	}
	if got := j.blocklist(); !slices.Equal(got, []string{"montague.net", "romeo@montague.net/Orchard"}) {
		t.Fatalf("blocklist %q after bad requests, want it unchanged", got)
	}
	// Unblocking what is not blocked is no error.
	mustResult(t, "unblock nobody", j.unblock("nobody@example.org"))
}

// TestPushesGoToInterestedResources: the pushes go to every session of the
// account that asked for the list, and only to those (§3.3).
func TestPushesGoToInterestedResources(t *testing.T) {
	srv := servertest.Start(t)
	users(t, srv, "alice")
	a1, a2, a3 := login(t, srv, "alice", "A1"), login(t, srv, "alice", "A2"), login(t, srv, "alice", "A3")
	a1.blocklist()
	a3.blocklist()

	mustResult(t, "A2 blocks", a2.block("bob@localhost", "carol@localhost"))
	for _, c := range []*client{a1, a3} {
		p := c.next("block push", isPush)
		if p.To != c.jid || p.Block == nil || !slices.Equal(p.Block.jids(), []string{"bob@localhost", "carol@localhost"}) {
			t.Errorf("%s: push %s", c.jid, p.XML)
		}
	}
	settle(a2, a1, a3)
	a2.none("a push without asking for the list", isPush)

	mustResult(t, "A3 unblocks all", a3.unblock())
	for _, c := range []*client{a1, a3} {
		if p := c.next("unblock push", isPush); p.Unblock == nil || len(p.Unblock.Items) != 0 {
			t.Errorf("%s: push %s, want an empty unblock", c.jid, p.XML)
		}
	}
	settle(a3, a1, a2)
	a2.none("a push without asking for the list", isPush)
	a1.none("a second push", isPush)
}

// TestBlockedJIDAppearsOffline: once alice blocks bob, bob's messages and
// IQ requests to alice are answered with service-unavailable and never
// reach her, other messages and his presence are dropped without an
// answer, whether alice is online or not (§3.3); carol still gets through.
func TestBlockedJIDAppearsOffline(t *testing.T) {
	srv := servertest.Start(t)
	users(t, srv, "alice", "bob", "carol")
	a, b, c := login(t, srv, "alice", "A1"), login(t, srv, "bob", "B1"), login(t, srv, "carol", "C1")
	a.available("here")
	mustResult(t, "block bob", a.block("bob@localhost"))

	for _, to := range []string{"alice@localhost", "alice@localhost/A1"} {
		for _, typ := range []string{"chat", "normal", ""} {
			attr := ""
			if typ != "" {
				attr = ` type='` + typ + `'`
			}
			id := nextID("m")
			b.Write(`<message to='` + to + `' id='` + id + `'` + attr + `><body>hello ` + id + `</body></message>`)
			e := b.next("error for message "+id, func(s stanzaOnWire) bool { return s.XMLName.Local == "message" && s.ID == id })
			if e.Type != "error" || e.condition() != "service-unavailable" || e.from() != to || e.Body != "hello "+id {
				t.Errorf("bob's message to %s of type %q: answered %s, want service-unavailable from %s with the body", to, typ, e.XML, to)
			}
		}
	}
	for _, req := range []struct{ to, payload string }{
		{"alice@localhost/A1", `<query xmlns='jabber:iq:version'/>`},
		{"alice@localhost", `<query xmlns='http://jabber.org/protocol/disco#info'/>`},
		{"alice@localhost", `<vCard xmlns='vcard-temp'/>`},
	} {
		r := b.iq(`<iq type='get' id='%s' to='` + req.to + `'>` + req.payload + `</iq>`)
		if r.Type != "error" || r.condition() != "service-unavailable" {
			t.Errorf("bob's IQ get %s to %s: %s, want service-unavailable", req.payload, req.to, r.XML)
		}
	}
	// Dropped without an answer: a headline, presence of every kind, an
	// IQ result.
	b.Write(`<message type='headline' to='alice@localhost'><body>news</body></message>`)
	b.Write(`<presence to='alice@localhost/A1'/>`)
	b.Write(`<presence type='subscribe' to='alice@localhost'/>`)
	b.Write(`<presence type='probe' to='alice@localhost'/>`)
	b.Write(`<iq type='result' id='r1' to='alice@localhost/A1'/>`)
	// carol is not blocked.
	c.Write(`<message type='chat' to='alice@localhost'><body>from carol</body></message>`)
	a.next("carol's message", kind("message", fromAccount("carol")))
	settle(b, a)
	a.none("a stanza from bob", fromAccount("bob"))
	b.none("an answer to a stanza that is dropped", fromAccount("alice"))

	// The subscription request was not kept either: alice's roster is
	// empty, and a new session of hers gets no request at login.
	ctx := servertest.Context(t, servertest.Wait)
	if roster, _, err := srv.Store().Roster(ctx, "alice"); err != nil || len(roster) != 0 {
		t.Errorf("alice's roster %+v, %v: want it empty", roster, err)
	}

	// Offline, alice gets nothing from bob kept for her.
	a.Close()
	b.Write(`<message type='chat' to='alice@localhost' id='off1'><body>while you were out</body></message>`)
	if e := b.next("error for the message to offline alice", func(s stanzaOnWire) bool { return s.ID == "off1" }); e.condition() != "service-unavailable" {
		t.Errorf("bob's message to offline alice: %s", e.XML)
	}
	a = login(t, srv, "alice", "A2")
	a.available("back")
	settle(b, a)
	a.none("a stanza from bob", fromAccount("bob"))
}

// TestBlockerIsRefused: alice's stanzas to a JID she blocks are not routed,
// and she is answered with not-acceptable and <blocked/> (§3.3, example 9).
func TestBlockerIsRefused(t *testing.T) {
	srv := servertest.Start(t)
	users(t, srv, "alice", "bob")
	a, b := login(t, srv, "alice", "A1"), login(t, srv, "bob", "B1")
	b.available("here")
	mustResult(t, "block bob", a.block("bob@localhost"))

	a.Write(`<message type='chat' to='bob@localhost' id='m1'><body>Can you hear me now?</body></message>`)
	e := a.next("error for the message", func(s stanzaOnWire) bool { return s.ID == "m1" })
	if e.Type != "error" || e.from() != "bob@localhost" || e.Body != "Can you hear me now?" ||
		e.Error.Type != "cancel" || e.condition() != "not-acceptable" || !e.blockedCondition() {
		t.Errorf("alice's message to bob: %s, want example 9's error", e.XML)
	}
	r := a.iq(`<iq type='get' id='%s' to='bob@localhost/B1'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if r.condition() != "not-acceptable" || !r.blockedCondition() {
		t.Errorf("alice's IQ to bob: %s", r.XML)
	}
	a.Write(`<presence to='bob@localhost/B1' id='p1'/>`)
	if p := a.next("error for the presence", func(s stanzaOnWire) bool { return s.ID == "p1" }); p.Type != "error" || !p.blockedCondition() {
		t.Errorf("alice's directed presence to bob: %s", p.XML)
	}
	// The server stays reachable.
	a.sync()
	settle(a, b)
	b.none("a stanza from alice", fromAccount("alice"))
}

// TestBlockAndUnblockPresence: alice and bob are subscribed to each other
// and online. When alice blocks bob each sees the other go offline (§3.3),
// and neither sees the other's presence while the block lasts; when she
// unblocks him each gets the other's current presence again (§3.4).
func TestBlockAndUnblockPresence(t *testing.T) {
	srv := servertest.Start(t)
	users(t, srv, "alice", "bob")
	subscribe(t, srv, "alice", "bob")
	a, b := login(t, srv, "alice", "A1"), login(t, srv, "bob", "B1")
	a.available("alice here")
	b.available("bob here")
	a.next("bob's presence", kind("presence", fromAccount("bob")))
	b.next("alice's presence", kind("presence", fromAccount("alice")))
	// Each may get the other's initial presence twice (the broadcast and the
	// answer to its own probe, depending on which came first): let both
	// settle and forget them.
	settle(b, a)
	settle(a, b)
	a.take(fromAccount("bob"))
	b.take(fromAccount("alice"))

	mustResult(t, "block bob", a.block("bob@localhost"))
	if p := b.next("alice's unavailable presence", kind("presence", fromAccount("alice"))); p.Type != "unavailable" || p.from() != a.jid {
		t.Errorf("bob got %s, want unavailable from %s", p.XML, a.jid)
	}
	if p := a.next("bob's unavailable presence", kind("presence", fromAccount("bob"))); p.Type != "unavailable" || p.from() != b.jid {
		t.Errorf("alice got %s, want unavailable from %s", p.XML, b.jid)
	}

	b.available("bob busy")
	a.available("alice busy")
	settle(b, a)
	settle(a, b)
	a.none("bob's presence", fromAccount("bob"))
	b.none("alice's presence", fromAccount("alice"))

	mustResult(t, "unblock bob", a.unblock("bob@localhost"))
	if p := b.next("alice's presence", kind("presence", fromAccount("alice"))); p.Type != "" || !strings.Contains(p.XML, "alice busy") {
		t.Errorf("bob got %s, want alice's current presence", p.XML)
	}
	if p := a.next("bob's presence", kind("presence", fromAccount("bob"))); p.Type != "" || !strings.Contains(p.XML, "bob busy") {
		t.Errorf("alice got %s, want bob's current presence", p.XML)
	}
	b.Write(`<message type='chat' to='alice@localhost'><body>again</body></message>`)
	if m := a.next("bob's message", kind("message", fromAccount("bob"))); m.Body != "again" {
		t.Errorf("after the unblock alice got %s", m.XML)
	}
}

// TestDomainAndFullJIDItems: a domain item blocks the domain and every JID
// at it, a full JID item one resource only (§6).
func TestDomainAndFullJIDItems(t *testing.T) {
	srv := servertest.Start(t)
	users(t, srv, "alice", "bob", "carol")
	a, a2 := login(t, srv, "alice", "A1"), login(t, srv, "alice", "A2")
	b1, b2 := login(t, srv, "bob", "B1"), login(t, srv, "bob", "B2")
	c := login(t, srv, "carol", "C1")

	mustResult(t, "block a resource", a.block("bob@localhost/B1", "example.org"))
	b1.Write(`<message type='chat' to='alice@localhost/A1' id='x1'><body>from B1</body></message>`)
	if e := b1.next("error", func(s stanzaOnWire) bool { return s.ID == "x1" }); e.condition() != "service-unavailable" {
		t.Errorf("B1's message: %s", e.XML)
	}
	b2.Write(`<message type='chat' to='alice@localhost/A1'><body>from B2</body></message>`)
	if m := a.next("B2's message", kind("message", fromAccount("bob"))); m.from() != b2.jid {
		t.Errorf("alice got %s, want B2's message", m.XML)
	}
	a.Write(`<iq type='get' id='q1' to='bob@localhost/B2'><ping xmlns='urn:xmpp:ping'/></iq>`)
	b2.next("alice's IQ", func(s stanzaOnWire) bool { return s.ID == "q1" && s.from() == a.jid })
	for _, to := range []string{"someone@example.org", "example.org", "example.org/x", "someone@example.org/x"} {
		a.Write(`<message type='chat' to='` + to + `' id='d1'><body>hi</body></message>`)
		if e := a.next("error", func(s stanzaOnWire) bool { return s.ID == "d1" }); e.condition() != "not-acceptable" || !e.blockedCondition() {
			t.Errorf("alice's message to %s: %s, want the blocked error", to, e.XML)
		}
	}
	// A message to bob's bare JID reaches B2 only.
	b1.available("b1")
	b2.available("b2")
	a.Write(`<message type='chat' to='bob@localhost'><body>to bare</body></message>`)
	b2.next("the message to the bare JID", kind("message", fromAccount("alice")))
	settle(a, b1)
	b1.none("alice's message", kind("message", fromAccount("alice")))

	// The whole local domain: everyone but alice's own resources and the
	// server.
	mustResult(t, "block localhost", a.block("localhost"))
	c.Write(`<message type='chat' to='alice@localhost' id='c1'><body>from carol</body></message>`)
	if e := c.next("error", func(s stanzaOnWire) bool { return s.ID == "c1" }); e.condition() != "service-unavailable" {
		t.Errorf("carol's message: %s", e.XML)
	}
	a2.Write(`<message type='chat' to='alice@localhost/A1'><body>to myself</body></message>`)
	a.next("the message from A2", kind("message", func(s stanzaOnWire) bool { return s.from() == a2.jid }))
	a.sync()
}

// TestLimit: limits.max_blocklist_items bounds the list; a block that would
// pass it is refused whole with not-acceptable.
func TestLimit(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.MaxBlocklistItems = 3 })
	users(t, srv, "alice")
	a := login(t, srv, "alice", "A1")
	mustResult(t, "block three", a.block("a@example.org", "b@example.org", "c@example.org"))
	r := a.block("c@example.org", "d@example.org")
	if r.Type != "error" || r.condition() != "not-acceptable" || r.blockedCondition() {
		t.Errorf("a fourth item: %s, want not-acceptable", r.XML)
	}
	mustResult(t, "block one already blocked", a.block("a@example.org"))
	if got := a.blocklist(); !slices.Equal(got, []string{"a@example.org", "b@example.org", "c@example.org"}) {
		t.Errorf("blocklist %q, want the first three", got)
	}
	mustResult(t, "unblock one", a.unblock("b@example.org"))
	mustResult(t, "block another", a.block("d@example.org"))
}

// TestPersistence: the list survives a restart and still applies; deleting
// the account deletes it.
func TestPersistence(t *testing.T) {
	srv := servertest.Start(t)
	users(t, srv, "alice", "bob")
	a := login(t, srv, "alice", "A1")
	mustResult(t, "block", a.block("bob@localhost", "example.org"))

	srv = srv.Restart()
	a = login(t, srv, "alice", "A1")
	if got := a.blocklist(); !slices.Equal(got, []string{"bob@localhost", "example.org"}) {
		t.Fatalf("blocklist after a restart %q", got)
	}
	b := login(t, srv, "bob", "B1")
	b.Write(`<message type='chat' to='alice@localhost' id='m1'><body>hi</body></message>`)
	if e := b.next("error", func(s stanzaOnWire) bool { return s.ID == "m1" }); e.condition() != "service-unavailable" {
		t.Errorf("bob's message after a restart: %s", e.XML)
	}

	ctx := servertest.Context(t, servertest.Wait)
	if err := srv.Accounts().Delete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Accounts().Add(ctx, "alice", "pw-alice"); err != nil {
		t.Fatal(err)
	}
	if d, err := srv.Store().UserData(ctx, "alice", "blocklist", ""); err != nil || len(d) != 0 {
		t.Errorf("user data of the new alice: %v, %v", d, err)
	}
	a = login(t, srv, "alice", "A1")
	if got := a.blocklist(); len(got) != 0 {
		t.Errorf("blocklist of a new account of the same name %q", got)
	}
	a.available("new")
	b.Write(`<message type='chat' to='alice@localhost'><body>hello new alice</body></message>`)
	a.next("bob's message", kind("message", fromAccount("bob")))
}
