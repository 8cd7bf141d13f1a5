package csi_test

import (
	"encoding/xml"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// Client State Indication (XEP-0352) over TCP, with servertest raw clients
// (STARTTLS, SASL PLAIN, a chosen resource), which read what the server
// wrote exactly as it wrote it.
//
// A stanza that was held arrives with the server's XEP-0203 <delay/>, one
// that went at once without: that, and which of two stanzas arrive, is how
// the tests tell urgent, held and collapsed apart. Each step ends with a
// fence: an IQ the sender sends the server and whose result it waits for
// (a session's stanzas are routed one after the other, so everything it
// sent before has passed the recipient's interceptors by then), or a
// message with a body to the inactive session, which is urgent and so
// comes after everything held.

const nsCSI = "urn:xmpp:csi:0"

var seq atomic.Int64

func next(prefix string) string { return prefix + strconv.FormatInt(seq.Add(1), 10) }

// session is one logged-in raw client.
type session struct {
	*servertest.Raw
	jid  string
	name string
}

func login(t *testing.T, srv *servertest.Server, user, resource string) *session {
	t.Helper()
	return &session{Raw: srv.RawLogin(user, "pw-"+user, resource), jid: user + "@localhost/" + resource, name: user + "/" + resource}
}

// available sends available presence and waits for the server to reflect it.
func (s *session) available(t *testing.T) {
	t.Helper()
	s.Write(`<presence/>`)
	s.Expect(`<presence[^>]* from=["']` + regexp.QuoteMeta(s.jid) + `["']`)
}

// ping sends the server an IQ and returns everything read up to its
// result.
func (s *session) ping(t *testing.T) string {
	t.Helper()
	id := next("ping-")
	s.Write(`<iq type='get' id='` + id + `' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	return s.Expect(`id=["']` + id + `["'][^>]*/>`)
}

// fenceMessage has from send to a message with a body and returns what to
// read up to it, the message left out.
func fenceMessage(t *testing.T, from, to *session) []stanzaXML {
	t.Helper()
	mark := next("fence-")
	from.Write(`<message type='chat' to='` + to.jid + `'><body>` + mark + `</body></message>`)
	var out []stanzaXML
	for _, st := range parse(t, to.Expect(`>`+mark+`</body>(?s:.*?)</message>`)) {
		if st.Body != mark {
			out = append(out, st)
		}
	}
	return out
}

// stanzaXML is a top-level element as the server wrote it.
type stanzaXML struct {
	XMLName xml.Name
	From    string `xml:"from,attr"`
	Type    string `xml:"type,attr"`
	ID      string `xml:"id,attr"`
	Body    string `xml:"jabber:client body"`
	Status  string `xml:"jabber:client status"`
	Delay   *struct {
		From  string `xml:"from,attr"`
		Stamp string `xml:"stamp,attr"`
	} `xml:"urn:xmpp:delay delay"`
	XML string `xml:"-"`
}

// parse splits what a raw client read into top-level elements, resolved as
// inside the stream (default namespace jabber:client).
func parse(t *testing.T, text string) []stanzaXML {
	t.Helper()
	doc := `<stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>` + text + `</stream>`
	d := xml.NewDecoder(strings.NewReader(doc))
	if _, err := d.Token(); err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	var out []stanzaXML
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("parse %q: %v", text, err)
		}
		st, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		var s stanzaXML
		if err := d.DecodeElement(&s, &st); err != nil {
			t.Fatalf("parse %q: %v", text, err)
		}
		s.XML = doc[off:d.InputOffset()]
		out = append(out, s)
	}
}

// of keeps the stanzas from from (a full JID) of the given element name.
func of(sts []stanzaXML, name, from string) []stanzaXML {
	var out []stanzaXML
	for _, s := range sts {
		if s.XMLName.Local == name && s.From == from {
			out = append(out, s)
		}
	}
	return out
}

// setup starts a server with alice, bob and carol (alice and bob contacts
// of each other), logs alice in as A1 and bob as B1, both available, and
// makes A1 inactive.
func setup(t *testing.T, opts ...servertest.Option) (srv *servertest.Server, a1, b1 *session) {
	t.Helper()
	srv = servertest.Start(t, append([]servertest.Option{servertest.NoRateLimits}, opts...)...)
	for _, u := range []string{"alice", "bob", "carol"} {
		srv.AddUser(u, "pw-"+u)
	}
	srv.Befriend("alice", "bob")
	a1 = login(t, srv, "alice", "A1")
	a1.available(t)
	b1 = login(t, srv, "bob", "B1")
	b1.available(t)
	a1.Expect(`<presence[^>]* from=["']bob@localhost/B1["']`)
	a1.Write(`<inactive xmlns='` + nsCSI + `'/>`)
	a1.ping(t)
	return srv, a1, b1
}

// TestFeature: <csi xmlns='urn:xmpp:csi:0'/> is among the features of an
// authenticated stream, and not before.
func TestFeature(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "pw-alice")
	csi := regexp.MustCompile(`<csi xmlns=["']` + nsCSI + `["']\s*/>`)

	pre := srv.RawDial()
	pre.Write(servertest.Header)
	if got := pre.Expect(`</stream:features>`); strings.Contains(got, nsCSI) {
		t.Errorf("offered before authentication: %q", got)
	}
	r := srv.RawDial()
	if got := r.Authenticate(srv.ClientTLS, "alice", "pw-alice"); !csi.MatchString(got) {
		t.Errorf("the authenticated stream's features lack <csi/>: %q", got)
	}
}

// TestActiveDeliversLastPresence: while alice's A1 is inactive, bob changes
// his presence three times and nothing reaches A1; on <active/> A1 gets
// the last one only, stamped with the server's delay.
func TestActiveDeliversLastPresence(t *testing.T) {
	_, a1, b1 := setup(t)
	for _, s := range []string{"one", "two", "three"} {
		b1.Write(`<presence><show>away</show><status>` + s + `</status></presence>`)
	}
	b1.ping(t)
	before := time.Now().Add(-time.Second)
	if got, ok := a1.ReadUntil(`<presence`, 300*time.Millisecond); ok {
		t.Fatalf("an inactive session got presence: %q", got)
	}

	a1.Write(`<active xmlns='` + nsCSI + `'/>`)
	got := parse(t, a1.Expect(`three</status>\s*(<[^>]*>\s*)*</presence>`))
	got = append(got, parse(t, a1.ping(t))...)
	ps := of(got, "presence", "bob@localhost/B1")
	if len(ps) != 1 || ps[0].Status != "three" {
		t.Fatalf("want only bob's last presence, got %v", ps)
	}
	d := ps[0].Delay
	if d == nil || d.From != "localhost" {
		t.Fatalf("want a delay from localhost on the held presence: %q", ps[0].XML)
	}
	if stamp, err := time.Parse(time.RFC3339Nano, d.Stamp); err != nil || stamp.Before(before) || stamp.After(time.Now()) {
		t.Errorf("delay stamp %q (%v): want when it was held", d.Stamp, err)
	}

	// Active again: the next presence arrives at once, without a delay.
	b1.Write(`<presence><status>four</status></presence>`)
	got = parse(t, a1.Expect(`four</status>\s*</presence>`))
	if ps := of(got, "presence", "bob@localhost/B1"); len(ps) != 1 || ps[0].Delay != nil {
		t.Errorf("want bob's presence at once, without delay: %v", ps)
	}
}

// TestUrgentMessageFlushesFirst: a message with a body reaches an inactive
// session at once, after the presence that was held before it, and
// without a delay of its own.
func TestUrgentMessageFlushesFirst(t *testing.T) {
	_, a1, b1 := setup(t)
	b1.Write(`<presence><status>one</status></presence><presence><status>two</status></presence>`)
	b1.Write(`<message type='chat' to='alice@localhost' id='hello'><body>hello</body></message>`)
	got := parse(t, a1.Expect(`>hello</body>(?s:.*?)</message>`))
	var kinds []string
	for _, s := range got {
		if s.From == "bob@localhost/B1" {
			kinds = append(kinds, s.XMLName.Local+":"+s.Status+s.Body+":"+strconv.FormatBool(s.Delay != nil))
		}
	}
	if want := "presence:two:true message:hello:false"; strings.Join(kinds, " ") != want {
		t.Errorf("got %q, want %q (kind:content:delayed)", strings.Join(kinds, " "), want)
	}
}

// TestWhatIsHeld sends, for each rule of the package comment, two stanzas
// to an inactive session and a fence message, and tells from what arrives
// whether they went at once (both, no delay), were held (both, delayed, in
// order) or collapsed (the second only, delayed).
func TestWhatIsHeld(t *testing.T) {
	srv, a1, b1 := setup(t)
	a2 := login(t, srv, "alice", "A2")
	a2.available(t)
	carol := login(t, srv, "carol", "C1")
	carol.available(t)
	a1.Write(`<iq type='set' id='carbons'><enable xmlns='urn:xmpp:carbons:2'/></iq>`)
	a1.Expect(`id=["']carbons["']`)
	fenceMessage(t, b1, a1)

	const (
		urgent    = "urgent"
		held      = "held"
		collapsed = "collapsed"
	)
	const toA1 = ` to='alice@localhost/A1'`
	for _, c := range []struct {
		name string
		from *session
		// first and second are sent in that order; {ID} becomes an id of
		// the case's own. An empty second sends one stanza.
		first, second string
		want          string
	}{
		{"presence updates", b1,
			`<presence id='{ID}-1'><status>{ID}-1</status></presence>`,
			`<presence id='{ID}-2'><show>dnd</show><status>{ID}-2</status></presence>`, collapsed},
		{"directed presence then unavailable", a2,
			`<presence id='{ID}-1'` + toA1 + `><status>{ID}-1</status></presence>`,
			`<presence type='unavailable' id='{ID}-2'` + toA1 + `><status>{ID}-2</status></presence>`, collapsed},
		{"subscription request", carol,
			`<presence type='subscribe' to='alice@localhost' id='{ID}-1'/>`, ``, urgent},
		{"chat states", b1,
			`<message type='chat' id='{ID}-1'` + toA1 + `><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
			`<message type='chat' id='{ID}-2'` + toA1 + `><paused xmlns='http://jabber.org/protocol/chatstates'/><thread>t</thread>` +
				`<origin-id xmlns='urn:xmpp:sid:0' id='{ID}'/><no-store xmlns='urn:xmpp:hints'/></message>`, collapsed},
		{"receipts", b1,
			`<message id='{ID}-1'` + toA1 + `><received xmlns='urn:xmpp:receipts' id='m1'/></message>`,
			`<message id='{ID}-2'` + toA1 + `><received xmlns='urn:xmpp:receipts' id='m2'/></message>`, held},
		{"chat markers", b1,
			`<message type='chat' id='{ID}-1'` + toA1 + `><displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/></message>`,
			`<message type='chat' id='{ID}-2'` + toA1 + `><displayed xmlns='urn:xmpp:chat-markers:0' id='m2'/></message>`, held},
		{"chat state with a receipt request", b1,
			`<message type='chat' id='{ID}-1'` + toA1 + `><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/></message>`,
			`<message type='chat' id='{ID}-2'` + toA1 + `><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/></message>`, held},
		{"headlines (PEP notifications)", b1,
			`<message type='headline' id='{ID}-1'` + toA1 + `><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:tune'/></event></message>`,
			`<message type='headline' id='{ID}-2'` + toA1 + `><body>news</body></message>`, held},
		{"messages with a body", b1,
			`<message type='chat' id='{ID}-1'` + toA1 + `><body>one</body></message>`,
			`<message id='{ID}-2'` + toA1 + `><body>two</body></message>`, urgent},
		{"subject, encrypted", b1,
			`<message type='groupchat' id='{ID}-1'` + toA1 + `><subject>topic</subject></message>`,
			`<message type='chat' id='{ID}-2'` + toA1 + `><encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'/></encrypted></message>`, urgent},
		{"invitations", b1,
			`<message id='{ID}-1'` + toA1 + `><x xmlns='jabber:x:conference' jid='room@muc.example'/></message>`,
			`<message id='{ID}-2'` + toA1 + `><x xmlns='http://jabber.org/protocol/muc#user'><invite from='bob@localhost'/></x></message>`, urgent},
		{"errors and IQs", b1,
			`<message type='error' id='{ID}-1'` + toA1 + `><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`,
			`<iq type='get' id='{ID}-2'` + toA1 + `><ping xmlns='urn:xmpp:ping'/></iq>`, urgent},
		{"received carbons of chat states", b1,
			`<message type='chat' id='{ID}-1' to='alice@localhost/A2'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
			`<message type='chat' id='{ID}-2' to='alice@localhost/A2'><paused xmlns='http://jabber.org/protocol/chatstates'/></message>`, collapsed},
		{"received carbons with a body", b1,
			`<message type='chat' id='{ID}-1' to='alice@localhost/A2'><body>one</body></message>`,
			`<message type='chat' id='{ID}-2' to='alice@localhost/A2'><body>two</body></message>`, urgent},
		{"sent carbons", a2,
			`<message type='chat' id='{ID}-1' to='bob@localhost/B1'><displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/></message>`,
			`<message type='chat' id='{ID}-2' to='bob@localhost/B1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, urgent},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := next("case-")
			c.from.Write(strings.ReplaceAll(c.first, "{ID}", id))
			if c.second != "" {
				c.from.Write(strings.ReplaceAll(c.second, "{ID}", id))
			}
			c.from.ping(t)
			// What arrives, by which of the two ids it carries (inside a
			// carbon, the forwarded message's), and whether delayed.
			var arrived []string
			for _, s := range fenceMessage(t, b1, a1) {
				for _, n := range []string{"1", "2"} {
					if regexp.MustCompile(`id=["']` + id + `-` + n + `["']`).MatchString(s.XML) {
						arrived = append(arrived, n+":"+strconv.FormatBool(s.Delay != nil))
					}
				}
			}
			want := map[string]string{urgent: "1:false 2:false", held: "1:true 2:true", collapsed: "2:true"}[c.want]
			if c.second == "" {
				want = "1:false"
			}
			if got := strings.Join(arrived, " "); got != want {
				t.Errorf("%s: arrived %q (id:delayed), want %q", c.want, got, want)
			}
		})
	}
}

// TestUrgentAfterHeldFromOthers: a subscription request, which is urgent,
// brings out the presence held before it from another contact, in order.
func TestUrgentAfterHeldFromOthers(t *testing.T) {
	srv, a1, b1 := setup(t)
	carol := login(t, srv, "carol", "C1")
	b1.Write(`<presence><status>held</status></presence>`)
	b1.ping(t)
	carol.Write(`<presence type='subscribe' to='alice@localhost'/>`)
	got := parse(t, a1.Expect(`<presence[^>]*type=["']subscribe["'][^>]*>`))
	if seen := presences(got); seen != "bob@localhost/B1::held:true carol@localhost:subscribe::false" {
		t.Errorf("got %q, want bob's held presence, then carol's request (from:type:status:delayed)", seen)
	}
}

// presences lists the presence stanzas in sts as from:type:status:delayed.
func presences(sts []stanzaXML) string {
	var seen []string
	for _, s := range sts {
		if s.XMLName.Local == "presence" {
			seen = append(seen, s.From+":"+s.Type+":"+s.Status+":"+strconv.FormatBool(s.Delay != nil))
		}
	}
	return strings.Join(seen, " ")
}

// receipt is a receipt from bob to A1 whose id is id.
func receipt(id string) string {
	return `<message id='` + id + `' to='alice@localhost/A1'><received xmlns='urn:xmpp:receipts' id='m-` + id + `'/></message>`
}

// TestBound: with limits.csi.max_held 3, the fourth receipt (receipts
// never collapse) brings out the three held before it, then goes itself;
// holding goes on afterwards, and ten presence updates that collapse into
// one count as one.
func TestBound(t *testing.T) {
	_, a1, b1 := setup(t, func(c *config.Config) { c.Limits.CSI.MaxHeld = 3 })
	for _, id := range []string{"r1", "r2", "r3", "r4"} {
		b1.Write(receipt(id))
	}
	got := of(parse(t, a1.Expect(`id=["']r4["'][^>]*>\s*<received[^>]*/>\s*</message>`)), "message", "bob@localhost/B1")
	var seen []string
	for _, m := range got {
		seen = append(seen, m.ID+":"+strconv.FormatBool(m.Delay != nil))
	}
	if want := "r1:true r2:true r3:true r4:false"; strings.Join(seen, " ") != want {
		t.Errorf("got %q, want %q (id:delayed)", strings.Join(seen, " "), want)
	}

	for i := range 10 {
		b1.Write(`<presence><status>p` + strconv.Itoa(i) + `</status></presence>`)
	}
	b1.Write(receipt("r5") + receipt("r6"))
	b1.ping(t)
	if got, ok := a1.ReadUntil(`r6`, 300*time.Millisecond); ok {
		t.Fatalf("three held stanzas went out: %q", got)
	}
	a1.Write(`<active xmlns='` + nsCSI + `'/>`)
	all := parse(t, a1.Expect(`id=["']r6["'][^>]*>\s*<received[^>]*/>\s*(<[^>]*>\s*)*</message>`))
	seen = seen[:0]
	for _, s := range all {
		if s.From == "bob@localhost/B1" {
			seen = append(seen, s.ID+s.Status+":"+strconv.FormatBool(s.Delay != nil))
		}
	}
	if want := "p9:true r5:true r6:true"; strings.Join(seen, " ") != want {
		t.Errorf("on <active/>: got %q, want %q", strings.Join(seen, " "), want)
	}
}

// TestStateChangesAreHarmless: <active/> on a session that never was
// inactive, <inactive/> twice and <active/> twice change nothing but the
// state; the stream stays open and stanzas flow.
func TestStateChangesAreHarmless(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "pw-alice")
	a := login(t, srv, "alice", "A1")
	for _, el := range []string{"active", "inactive", "inactive", "active", "active"} {
		a.Write(`<` + el + ` xmlns='` + nsCSI + `'/>`)
		if got := a.ping(t); strings.Contains(got, "stream:error") {
			t.Fatalf("after <%s/>: %q", el, got)
		}
	}
}

// TestUnknownElement: an element of the CSI namespace that XEP-0352 does
// not define closes the stream with unsupported-stanza-type (RFC 6120
// §4.9.3.22), as any unknown top-level element does.
func TestUnknownElement(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "pw-alice")
	a := login(t, srv, "alice", "A1")
	a.Write(`<away xmlns='` + nsCSI + `'/>`)
	got, _ := a.ClosedByServer(5 * time.Second)
	if !strings.Contains(got, "<unsupported-stanza-type") || !strings.Contains(got, "</stream:stream>") {
		t.Errorf("want an unsupported-stanza-type stream error and the stream closed, got %q", got)
	}
}

// TestOrderPerSender: four of bob's resources send an inactive A1, at the
// same time, presence updates, chat states, receipts and messages with a
// body, each numbered in the order its sender sent it, and A1 becomes
// active halfway. Whatever is collapsed, what A1 gets from each sender
// keeps that sender's order, and every message with a body arrives.
func TestOrderPerSender(t *testing.T) {
	srv, a1, _ := setup(t)
	const senders, each = 4, 60
	var bs []*session
	for i := range senders {
		b := login(t, srv, "bob", "S"+strconv.Itoa(i))
		b.available(t)
		bs = append(bs, b)
	}
	a1.ping(t)
	done := make(chan struct{})
	for _, b := range bs {
		go func() {
			defer func() { done <- struct{}{} }()
			var sb strings.Builder
			for n := range each {
				num := strconv.Itoa(n)
				switch n % 4 {
				case 0:
					sb.WriteString(`<presence><status>n` + num + `</status></presence>`)
				case 1:
					sb.WriteString(`<message type='chat' to='alice@localhost/A1' id='n` + num + `'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
				case 2:
					sb.WriteString(`<message to='alice@localhost/A1' id='n` + num + `'><received xmlns='urn:xmpp:receipts' id='x'/></message>`)
				default:
					sb.WriteString(`<message type='chat' to='alice@localhost/A1' id='n` + num + `'><body>n` + num + `</body></message>`)
				}
			}
			b.Write(sb.String())
			b.Write(`<message type='chat' to='alice@localhost/A1' id='end'><body>end-` + b.name + `</body></message>`)
		}()
	}
	a1.Write(`<active xmlns='` + nsCSI + `'/>`)
	for range bs {
		<-done
	}
	// Expect returns all that was read, which may hold several ends.
	var text strings.Builder
	for {
		var missing []string
		for _, b := range bs {
			if !strings.Contains(text.String(), `end-`+b.name+`</body>`) {
				missing = append(missing, regexp.QuoteMeta(`end-`+b.name+`</body>`))
			}
		}
		if len(missing) == 0 {
			break
		}
		text.WriteString(a1.Expect(strings.Join(missing, "|")))
	}
	text.WriteString(a1.ping(t))
	got := parse(t, text.String())
	for _, b := range bs {
		last, bodies := -1, 0
		for _, s := range got {
			if s.From != b.jid || s.ID == "end" {
				continue
			}
			v := s.ID
			if s.XMLName.Local == "presence" {
				v = s.Status
			}
			n, err := strconv.Atoi(strings.TrimPrefix(v, "n"))
			if err != nil {
				continue
			}
			if n <= last {
				t.Errorf("%s: %d after %d: %q", b.name, n, last, s.XML)
			}
			last = n
			if s.Body != "" {
				bodies++
			}
		}
		if bodies != each/4 {
			t.Errorf("%s: %d messages with a body arrived, want %d", b.name, bodies, each/4)
		}
	}
}
