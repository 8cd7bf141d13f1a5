package mam_test

import (
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/adhocd/adhocd/servertest"
)

// XEP-0313 (version 1.1.3) urn:xmpp:mam:2#extended beyond the ids
// (TestArchiveAndQuery): §4.3.4's flipped pages and §5's archive
// metadata, on an account's archive and on a room's, over TCP.

const (
	nsMAM = "urn:xmpp:mam:2"
	nsRSM = "http://jabber.org/protocol/rsm"
)

var extSeq int

// page is what one query returned: the result ids and stamps in the order
// they came, and the <fin/>.
type page struct {
	ids, stamps []string
	fin         *servertest.Node
}

// ask sends an IQ of typ to to ("": the account) with payload and returns
// the MAM results that came before its answer and the answer.
func (s *mamSession) ask(t *testing.T, typ, to, payload string) ([]*servertest.Node, *servertest.Node) {
	t.Helper()
	extSeq++
	id := fmt.Sprintf("ext%d", extSeq)
	toAttr := ""
	if to != "" {
		toAttr = ` to='` + to + `'`
	}
	s.raw.Write(`<iq type='` + typ + `' id='` + id + `'` + toAttr + `>` + payload + `</iq>`)
	return s.answer(t, id)
}

// query queries the archive at to with the result set set and, when flip,
// a <flip-page/>.
func (s *mamSession) query(t *testing.T, to, set string, flip bool) page {
	t.Helper()
	q := `<query xmlns='` + nsMAM + `'><set xmlns='` + nsRSM + `'>` + set + `</set>`
	if flip {
		q += `<flip-page/>`
	}
	results, iq := s.ask(t, "set", to, q+`</query>`)
	if iq.Attr["type"] != "result" || len(iq.Kids) != 1 || iq.Kids[0].Name != (xml.Name{Space: nsMAM, Local: "fin"}) {
		t.Fatalf("%s: the answer to a query of %q: %s", s.jid, to, iq.Canon())
	}
	var p page
	for _, r := range results {
		p.ids = append(p.ids, resultID(r))
		p.stamps = append(p.stamps, r.Kids[0].Kids[0].Kids[0].Attr["stamp"])
	}
	p.fin = iq.Kids[0]
	return p
}

// metadata asks the archive at to for its metadata and returns the
// <metadata/>.
func (s *mamSession) metadata(t *testing.T, to string) *servertest.Node {
	t.Helper()
	results, iq := s.ask(t, "get", to, `<metadata xmlns='`+nsMAM+`'/>`)
	if len(results) != 0 || iq.Attr["type"] != "result" || len(iq.Kids) != 1 || iq.Kids[0].Name != (xml.Name{Space: nsMAM, Local: "metadata"}) {
		t.Fatalf("%s: the metadata of %q: %d results, %s", s.jid, to, len(results), iq.Canon())
	}
	return iq.Kids[0]
}

// checkFlip queries the archive at to with set, as it is and flipped, and
// checks that the flipped page holds the same results in the reverse
// order, with the same stamps and the same <fin/>; it returns the page as
// it is.
func checkFlip(t *testing.T, s *mamSession, to, what, set string) page {
	t.Helper()
	plain := s.query(t, to, set, false)
	flipped := s.query(t, to, set, true)
	if len(plain.ids) < 2 {
		t.Fatalf("%s: %d results; the test wants a page of two at least", what, len(plain.ids))
	}
	rev, revStamps := slices.Clone(plain.ids), slices.Clone(plain.stamps)
	slices.Reverse(rev)
	slices.Reverse(revStamps)
	if !slices.Equal(flipped.ids, rev) || !slices.Equal(flipped.stamps, revStamps) {
		t.Errorf("%s flipped: ids %q stamps %q; want %q %q, the page reversed", what, flipped.ids, flipped.stamps, rev, revStamps)
	}
	if !slices.IsSorted(plain.ids) {
		t.Errorf("%s unflipped is not oldest first: %q", what, plain.ids)
	}
	// The <fin/> names the page as it is: its first (oldest) and last
	// (newest) ids, and complete alike, flipped or not.
	if g, w := flipped.fin.Canon(), plain.fin.Canon(); g != w {
		t.Errorf("%s: the flipped page's fin\n%s\nthe unflipped one's\n%s", what, g, w)
	}
	if first, last := finID(plain.fin, "first"), finID(plain.fin, "last"); first != plain.ids[0] || last != plain.ids[len(plain.ids)-1] {
		t.Errorf("%s: fin first %q last %q for the page %q", what, first, last, plain.ids)
	}
	return plain
}

// finID is the text of the <first/> or <last/> of a <fin/>'s <set/>.
func finID(fin *servertest.Node, local string) string {
	for _, set := range fin.Kids {
		for _, k := range set.Kids {
			if k.Name.Space == nsRSM && k.Name.Local == local {
				return k.Text
			}
		}
	}
	return ""
}

// checkMetadata checks that md names as its start and end the first and
// last results of all, ids and stamps, and holds nothing else.
func checkMetadata(t *testing.T, what string, md *servertest.Node, all page) {
	t.Helper()
	want := fmt.Sprintf(`{%[1]s}metadata[{%[1]s}start id=%[2]q timestamp=%[3]q[]{%[1]s}end id=%[4]q timestamp=%[5]q[]]`,
		nsMAM, all.ids[0], all.stamps[0], all.ids[len(all.ids)-1], all.stamps[len(all.stamps)-1])
	if got := md.Canon(); got != want {
		t.Errorf("%s:\n got %s\nwant %s", what, got, want)
	}
}

// TestFlipPage: §4.3.4, on an account's archive: a flipped page holds what
// the page holds, newest first, with its <fin/>, forwards (from the start,
// and after an id as the XEP's example) and backwards (<before/>, the
// newest page, and before an id).
func TestFlipPage(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "pw")
	srv.AddUser("bob", "pw")
	alice := mamLogin(t, srv, "alice", "a")
	bob := mamLogin(t, srv, "bob", "b")
	for i := range 6 {
		bob.raw.Write(fmt.Sprintf(`<message to='alice@localhost' type='chat' id='m%d'><body>m%d</body></message>`, i, i))
		alice.in.Next(fmt.Sprintf("message %d", i), func(n *servertest.Node) bool { return n.Attr["id"] == fmt.Sprintf("m%d", i) })
	}
	all := alice.query(t, "", `<max>50</max>`, false)
	if len(all.ids) != 6 {
		t.Fatalf("alice's archive: %q", all.ids)
	}
	fwd := checkFlip(t, alice, "", "the first page of 3", `<max>3</max>`)
	if !slices.Equal(fwd.ids, all.ids[:3]) || fwd.fin.Attr["complete"] == "true" {
		t.Errorf("the first page of 3: %q, fin %s", fwd.ids, fwd.fin.Canon())
	}
	after := checkFlip(t, alice, "", "the page after the second", `<max>3</max><after>`+all.ids[1]+`</after>`)
	if !slices.Equal(after.ids, all.ids[2:5]) {
		t.Errorf("the page after the second: %q", after.ids)
	}
	back := checkFlip(t, alice, "", "the newest page of 4", `<max>4</max><before/>`)
	if !slices.Equal(back.ids, all.ids[2:]) || back.fin.Attr["complete"] == "true" {
		t.Errorf("the newest page of 4: %q, fin %s", back.ids, back.fin.Canon())
	}
	before := checkFlip(t, alice, "", "the page before the fourth", `<max>10</max><before>`+all.ids[3]+`</before>`)
	if !slices.Equal(before.ids, all.ids[:3]) || before.fin.Attr["complete"] != "true" {
		t.Errorf("the page before the fourth: %q, fin %s", before.ids, before.fin.Canon())
	}
	// The XEP's example as printed: a form with start, and <flip-page/>
	// after the <set/>.
	results, fin := alice.ask(t, "set", "", `<query xmlns='urn:xmpp:mam:2'>
    <x xmlns='jabber:x:data' type='submit'>
      <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>
      <field var='start'><value>2010-08-07T00:00:00Z</value></field>
    </x>
    <set xmlns='http://jabber.org/protocol/rsm'>
      <max>10</max>
      <after>`+all.ids[3]+`</after>
    </set>
    <flip-page/>
  </query>`)
	var got []string
	for _, r := range results {
		got = append(got, resultID(r))
	}
	if want := []string{all.ids[5], all.ids[4]}; !slices.Equal(got, want) || fin.Attr["type"] != "result" {
		t.Errorf("the XEP's flipped page: %q, want %q; %s", got, want, fin.Canon())
	}
	// The account advertises the extended feature these are part of.
	_, info := alice.ask(t, "get", "alice@localhost", `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
	if !strings.Contains(info.Canon(), `var="urn:xmpp:mam:2#extended"`) {
		t.Errorf("disco#info of the account: %s", info.Canon())
	}
}

// TestMetadata: §5, on an account's archive: "Requesting archive
// metadata" of an empty archive is an empty <metadata/>; of one with
// messages, "Server returns archive metadata" names the first and last,
// by the ids and stamps a query gives them, and follows the archive as it
// grows.
func TestMetadata(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("juliet", "pw")
	srv.AddUser("romeo", "pw")
	juliet := mamLogin(t, srv, "juliet", "balcony")
	romeo := mamLogin(t, srv, "romeo", "orchard")

	// The XEP's request as printed.
	juliet.send(`<iq type='get' id='jui8921rr9'>
  <metadata xmlns='urn:xmpp:mam:2'/>
</iq>`)
	results, iq := juliet.answer(t, "jui8921rr9")
	if len(results) != 0 {
		t.Errorf("results of a metadata request: %d", len(results))
	}
	like(t, "the metadata of an empty archive", iq, `<iq type='result' id='jui8921rr9' to='juliet@capulet.lit/balcony'>
  <metadata xmlns='urn:xmpp:mam:2'/>
</iq>`, nil, nil)

	say := func(from, to *mamSession, id string) {
		from.raw.Write(`<message to='` + strings.Split(to.jid, "/")[0] + `' type='chat' id='` + id + `'><body>` + id + `</body></message>`)
		to.in.Next("message "+id, func(n *servertest.Node) bool { return n.Attr["id"] == id })
	}
	say(romeo, juliet, "one")
	one := juliet.query(t, "", `<max>50</max>`, false)
	if len(one.ids) != 1 {
		t.Fatalf("juliet's archive: %q", one.ids)
	}
	checkMetadata(t, "the metadata of one message", juliet.metadata(t, ""), one)
	for _, id := range []string{"two", "three"} {
		say(romeo, juliet, id)
	}
	say(juliet, romeo, "four")
	all := juliet.query(t, "", `<max>50</max>`, false)
	if len(all.ids) != 4 {
		t.Fatalf("juliet's archive: %q", all.ids)
	}
	md := juliet.metadata(t, "")
	checkMetadata(t, "the metadata of four messages", md, all)
	like(t, "the metadata as the XEP prints it", &servertest.Node{Name: iq.Name, Attr: iq.Attr, Kids: []*servertest.Node{md}}, `<iq type='result' id='jui8921rr9' to='juliet@capulet.lit/balcony'>
  <metadata xmlns='urn:xmpp:mam:2'>
    <start id='YWxwaGEg' timestamp='2008-08-22T21:09:04Z' />
    <end id='b21lZ2Eg' timestamp='2020-04-20T14:34:21Z' />
  </metadata>
</iq>`, []string{"start@id", "start@timestamp", "end@id", "end@timestamp"}, nil)
	// Romeo's archive is his own.
	romeoAll := romeo.query(t, "", `<max>50</max>`, false)
	checkMetadata(t, "romeo's metadata", romeo.metadata(t, ""), romeoAll)
	if romeoAll.ids[0] == all.ids[0] {
		t.Errorf("romeo's and juliet's archives share the id %q", all.ids[0])
	}
}

// TestRoomArchiveExtended: a room's archive, which modules/muc answers
// with this package's query code, flips pages and answers metadata as an
// account's does: empty before anything is said, then the first and last
// messages of the room.
func TestRoomArchiveExtended(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "pw")
	alice := mamLogin(t, srv, "alice", "home")
	const room = "tea@conference.localhost"
	alice.raw.Write(`<presence to='` + room + `/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	self := alice.in.Next("the room's self-presence", func(n *servertest.Node) bool {
		return n.Name.Local == "presence" && n.Attr["from"] == room+"/alice" && strings.Contains(n.Canon(), `code="110"`)
	})
	if !strings.Contains(self.Canon(), `code="201"`) {
		t.Fatalf("the room was not created: %s", self.Canon())
	}
	// An archive is kept by a persistent room (muc#roomconfig).
	if _, iq := alice.ask(t, "set", room, `<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>`+
		`<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>`+
		`<field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query>`); iq.Attr["type"] != "result" {
		t.Fatalf("configuring the room: %s", iq.Canon())
	}
	_, info := alice.ask(t, "get", room, `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
	if !strings.Contains(info.Canon(), `var="urn:xmpp:mam:2#extended"`) {
		t.Fatalf("the room does not advertise urn:xmpp:mam:2#extended: %s", info.Canon())
	}
	if md := alice.metadata(t, room); len(md.Kids) != 0 || len(md.Attr) != 0 {
		t.Errorf("the metadata of the room's empty archive: %s", md.Canon())
	}
	for i := range 4 {
		id := fmt.Sprintf("g%d", i)
		alice.raw.Write(`<message to='` + room + `' type='groupchat' id='` + id + `'><body>` + id + `</body></message>`)
		alice.in.Next("the room's copy of "+id, func(n *servertest.Node) bool {
			return n.Name.Local == "message" && n.Attr["from"] == room+"/alice" && n.Attr["id"] == id
		})
	}
	all := alice.query(t, room, `<max>50</max>`, false)
	if len(all.ids) != 4 {
		t.Fatalf("the room's archive: %q", all.ids)
	}
	checkFlip(t, alice, room, "the room's newest page of 3", `<max>3</max><before/>`)
	checkFlip(t, alice, room, "the room's first page of 3", `<max>3</max>`)
	checkMetadata(t, "the metadata of the room's archive", alice.metadata(t, room), all)
}
