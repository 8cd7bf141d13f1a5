package carbons_test

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

	"github.com/adhocd/adhocd/servertest"
)

// Message Carbons (XEP-0280) over TCP. The sessions are servertest raw
// clients (STARTTLS, SASL PLAIN, a chosen resource) so that the test sees the
// addresses exactly as they are on the wire: mellium.im/xmpp v0.22.0 blanks a
// 'from' equal to the account's bare JID, which is what a carbon carries.

const nsCarbons = "urn:xmpp:carbons:2"

// seq numbers IQ ids and fences.
var seq atomic.Int64

// session is one logged-in raw client with its full JID.
type session struct {
	*servertest.Raw
	jid  string
	name string
}

func login(srv *servertest.Server, user, password, resource string) *session {
	return &session{Raw: srv.RawLogin(user, password, resource), jid: user + "@localhost/" + resource, name: resource}
}

// wireStanza is a top-level element as the server wrote it.
type wireStanza struct {
	XMLName  xml.Name
	From     *string `xml:"from,attr"`
	To       string  `xml:"to,attr"`
	Type     string  `xml:"type,attr"`
	ID       string  `xml:"id,attr"`
	Body     string  `xml:"jabber:client body"`
	Received *wrap   `xml:"urn:xmpp:carbons:2 received"`
	Sent     *wrap   `xml:"urn:xmpp:carbons:2 sent"`
	Children []struct {
		XMLName xml.Name
	} `xml:",any"`
	XML string `xml:"-"`
}

// wrap is <received/> or <sent/>.
type wrap struct {
	Forwarded []struct {
		Messages []forwardedMessage `xml:"jabber:client message"`
	} `xml:"urn:xmpp:forward:0 forwarded"`
}

// forwardedMessage is the original message inside a carbon.
type forwardedMessage struct {
	XMLName xml.Name
	From    string    `xml:"from,attr"`
	To      string    `xml:"to,attr"`
	Type    string    `xml:"type,attr"`
	ID      string    `xml:"id,attr"`
	Body    string    `xml:"jabber:client body"`
	Thread  string    `xml:"jabber:client thread"`
	Private *struct{} `xml:"urn:xmpp:carbons:2 private"`
}

func (w wireStanza) from() string {
	if w.From == nil {
		return "(none)"
	}
	return *w.From
}

// parseStanzas splits what a raw client read into top-level elements,
// resolved as if inside the stream (default namespace jabber:client).
func parseStanzas(t *testing.T, text string) []wireStanza {
	t.Helper()
	doc := `<stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>` + text + `</stream>`
	d := xml.NewDecoder(strings.NewReader(doc))
	if _, err := d.Token(); err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	var out []wireStanza
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
		var w wireStanza
		if err := d.DecodeElement(&w, &st); err != nil {
			t.Fatalf("parse %q: %v", text, err)
		}
		w.XML = doc[off:d.InputOffset()]
		out = append(out, w)
	}
}

// setCarbons sends <enable/> or <disable/> (what) addressed to to (none when
// empty) and returns the reply.
func setCarbons(t *testing.T, s *session, what, to string) wireStanza {
	t.Helper()
	id := what + strconv.FormatInt(seq.Add(1), 10)
	attr := ""
	if to != "" {
		attr = ` to='` + to + `'`
	}
	s.Write(`<iq type='set' id='` + id + `'` + attr + `><` + what + ` xmlns='` + nsCarbons + `'/></iq>`)
	for _, st := range parseStanzas(t, s.Expect(`id=["']`+id+`["'][^>]*(/>|>(?s:.*?)</iq>)`)) {
		if st.XMLName.Local == "iq" && st.ID == id {
			return st
		}
	}
	t.Fatalf("%s: no reply to IQ %s", s.name, id)
	return wireStanza{}
}

// TestCarbonsEnableDisable: the server advertises urn:xmpp:carbons:2 in its
// disco#info and answers <enable/> and <disable/> with an empty result
// whether the IQ is addressed to nobody, to the user's bare JID or to the
// server, and again when carbons are already in that state (XEP-0280 §9.1).
func TestCarbonsEnableDisable(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "wonderland")
	a := login(srv, "alice", "wonderland", "A1")
	a.Write(`<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if got := a.Expect(`</iq>`); !regexp.MustCompile(`<feature[^>]* var=["']` + nsCarbons + `["']`).MatchString(got) {
		t.Fatalf("disco#info lacks %s: %q", nsCarbons, got)
	}
	for _, step := range []struct{ what, to, from string }{
		{"enable", "", "(none)"},
		{"enable", "", "(none)"},
		{"disable", "alice@localhost", "alice@localhost"},
		{"disable", "", "(none)"},
		{"enable", "localhost", "localhost"},
		{"disable", "localhost", "localhost"},
		{"enable", "alice@localhost", "alice@localhost"},
	} {
		r := setCarbons(t, a, step.what, step.to)
		if r.Type != "result" || r.from() != step.from || r.To != a.jid || len(r.Children) != 0 {
			t.Errorf("%s to %q: reply %q, want an empty result from %s to %s", step.what, step.to, r.XML, step.from, a.jid)
		}
	}
	// A get is no way to enable carbons.
	a.Write(`<iq type='get' id='g1'><enable xmlns='` + nsCarbons + `'/></iq>`)
	if got := a.Expect(`</iq>`); !strings.Contains(got, `type="error"`) {
		t.Errorf("a get of <enable/>: want an error, got %q", got)
	}
}

// fence makes each session in to read up to a headline that from sends it
// last, and returns the messages each received before it (presence and IQs
// left out). Stanzas of one session are routed in order and carbons are
// written before its next stanza is read, so whatever from's earlier
// messages caused has arrived by then; headlines are never copied.
func fence(t *testing.T, from *session, to ...*session) map[*session][]wireStanza {
	t.Helper()
	mark := "fence-" + strconv.FormatInt(seq.Add(1), 10)
	for _, s := range to {
		from.Write(`<message type='headline' to='` + s.jid + `'><body>` + mark + `</body></message>`)
	}
	got := make(map[*session][]wireStanza)
	for _, s := range to {
		for _, st := range parseStanzas(t, s.Expect(`>`+mark+`</body>\s*</message>`)) {
			if st.XMLName.Local != "message" || (st.Type == "headline" && st.Body == mark) {
				continue
			}
			got[s] = append(got[s], st)
		}
	}
	return got
}

// available sends available presence with a priority and waits until the
// server reflects it to the session itself (RFC 6121 §4.2.2) and has done
// with it: a ping's answer comes once the presence's handling (offline
// messages taken for the session among it) has ended, as the session's
// stanzas are handled in order.
func available(t *testing.T, s *session, prio int) {
	t.Helper()
	s.Write(`<presence><priority>` + strconv.Itoa(prio) + `</priority></presence>`)
	s.Expect(`<presence[^>]* from=["']` + regexp.QuoteMeta(s.jid) + `["']`)
	id := "after-presence-" + strconv.FormatInt(seq.Add(1), 10)
	s.Write(`<iq type='get' id='` + id + `'><ping xmlns='urn:xmpp:ping'/></iq>`)
	s.Expect(`id=["']` + id + `["']`)
}

// TestCarbons: alice is online with A1 (carbons on) and A2 (off), bob with
// B1 (on, priority 5), B2 (on, priority 1) and B3 (off, priority 0). Each
// case sends one message and then checks everything every session received
// up to a fence: the original where RFC 6121 delivers it, a <received/> copy
// for every other carbons-enabled session of the recipient, a <sent/> copy
// for every other carbons-enabled session of the sender, each from the bare
// JID to the session's full JID with the original's type and the original,
// addresses as routed, inside a XEP-0297 <forwarded/>; and nothing else.
func TestCarbons(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	a1 := login(srv, "alice", "wonderland", "A1")
	a2 := login(srv, "alice", "wonderland", "A2")
	b1 := login(srv, "bob", "builder", "B1")
	b2 := login(srv, "bob", "builder", "B2")
	b3 := login(srv, "bob", "builder", "B3")
	all := []*session{a1, a2, b1, b2, b3}
	for _, s := range []*session{a1, b1, b2} {
		if r := setCarbons(t, s, "enable", ""); r.Type != "result" {
			t.Fatalf("%s: enable: %q", s.name, r.XML)
		}
	}
	for s, prio := range map[*session]int{a1: 0, a2: 0, b1: 5, b2: 1, b3: 0} {
		available(t, s, prio)
	}

	// check sends msg from from and compares what each session got with
	// wants: "original", "received" or "sent" (exactly one such message), or
	// nothing.
	check := func(t *testing.T, from *session, msg, origTo, body string, wants map[*session]string) map[*session][]wireStanza {
		t.Helper()
		from.Write(msg)
		got := fence(t, from, all...)
		var orig struct {
			Type string `xml:"type,attr"`
			ID   string `xml:"id,attr"`
		}
		if err := xml.Unmarshal([]byte(msg), &orig); err != nil {
			t.Fatal(err)
		}
		for _, s := range all {
			ms, kind := got[s], wants[s]
			if kind == "" {
				if len(ms) != 0 {
					t.Errorf("%s received %d message(s), want none: %q", s.name, len(ms), ms[0].XML)
				}
				continue
			}
			if len(ms) != 1 {
				t.Errorf("%s received %d message(s), want one %s: %v", s.name, len(ms), kind, ms)
				continue
			}
			m := ms[0]
			if kind == "original" {
				if m.from() != from.jid || m.To != origTo || m.Body != body || m.Type != orig.Type || m.ID != orig.ID {
					t.Errorf("%s: want the original from %s to %s, got %q", s.name, from.jid, origTo, m.XML)
				}
				continue
			}
			bare, _, _ := strings.Cut(s.jid, "/")
			if m.from() != bare || m.To != s.jid || m.Type != orig.Type || m.Body != "" || len(m.Children) != 0 || (m.Received != nil) == (m.Sent != nil) {
				t.Errorf("%s: want a %s carbon from %s to %s of type %q with that one child, got %q", s.name, kind, bare, s.jid, orig.Type, m.XML)
			}
			w := m.Received
			if kind == "sent" {
				w = m.Sent
			}
			if w == nil || len(w.Forwarded) != 1 || len(w.Forwarded[0].Messages) != 1 {
				t.Errorf("%s: want <%s><forwarded><message/></forwarded></%s>, got %q", s.name, kind, kind, m.XML)
				continue
			}
			fwd := w.Forwarded[0].Messages[0]
			if fwd.From != from.jid || fwd.To != origTo || fwd.Body != body || fwd.Type != orig.Type || fwd.ID != orig.ID {
				t.Errorf("%s: forwarded message is not the original from %s to %s: %q", s.name, from.jid, origTo, m.XML)
			}
		}
		return got
	}

	t.Run("chat to bare JID", func(t *testing.T) {
		got := check(t, a2, `<message type='chat' to='bob@localhost' id='m1'><body>hello bob</body><thread>t1</thread></message>`,
			"bob@localhost", "hello bob",
			map[*session]string{b1: "original", b2: "received", a1: "sent"})
		if ms := got[b2]; len(ms) == 1 && ms[0].Received != nil && ms[0].Received.Forwarded[0].Messages[0].Thread != "t1" {
			t.Errorf("the thread was not forwarded: %q", ms[0].XML)
		}
	})
	t.Run("chat to full JID", func(t *testing.T) {
		check(t, a1, `<message type='chat' to='bob@localhost/B3' id='m2'><body>hello B3</body></message>`,
			"bob@localhost/B3", "hello B3",
			map[*session]string{b3: "original", b1: "received", b2: "received"})
	})
	t.Run("chat to unavailable full JID", func(t *testing.T) {
		// RFC 6121 §8.5.3.2.1: treated as sent to the bare JID.
		check(t, a2, `<message type='chat' to='bob@localhost/gone' id='m3'><body>hello gone</body></message>`,
			"bob@localhost/gone", "hello gone",
			map[*session]string{b1: "original", b2: "received", a1: "sent"})
	})
	t.Run("normal with body", func(t *testing.T) {
		check(t, a2, `<message to='bob@localhost/B2' id='m4'><body>plain</body></message>`,
			"bob@localhost/B2", "plain",
			map[*session]string{b2: "original", b1: "received", a1: "sent"})
	})
	t.Run("receipt without body", func(t *testing.T) {
		check(t, a2, `<message to='bob@localhost/B1' id='m5'><received xmlns='urn:xmpp:receipts' id='m1'/></message>`,
			"bob@localhost/B1", "",
			map[*session]string{b1: "original", b2: "received", a1: "sent"})
	})
	t.Run("chat state", func(t *testing.T) {
		check(t, a2, `<message type='chat' to='bob@localhost/B1' id='m6'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
			"bob@localhost/B1", "",
			map[*session]string{b1: "original", b2: "received", a1: "sent"})
	})
	t.Run("normal without body or IM payload", func(t *testing.T) {
		check(t, a2, `<message to='bob@localhost/B1' id='m7'><x xmlns='jabber:x:oob'><url>https://example.org/</url></x></message>`,
			"bob@localhost/B1", "", map[*session]string{b1: "original"})
	})
	t.Run("private with no-copy", func(t *testing.T) {
		got := check(t, a2, `<message type='chat' to='bob@localhost' id='m8'><body>secret</body><private xmlns='urn:xmpp:carbons:2'/><no-copy xmlns='urn:xmpp:hints'/></message>`,
			"bob@localhost", "secret", map[*session]string{b1: "original"})
		// XEP-0280 1.0 §8: the server no longer strips <private/>.
		if ms := got[b1]; len(ms) == 1 && !strings.Contains(ms[0].XML, "private") {
			t.Errorf("<private/> was removed: %q", ms[0].XML)
		}
	})
	t.Run("private alone", func(t *testing.T) {
		check(t, a1, `<message type='chat' to='bob@localhost/B1' id='m9'><body>private</body><private xmlns='urn:xmpp:carbons:2'/></message>`,
			"bob@localhost/B1", "private", map[*session]string{b1: "original"})
	})
	t.Run("no-copy hint alone", func(t *testing.T) {
		check(t, a2, `<message type='chat' to='bob@localhost/B1' id='m10'><body>hint</body><no-copy xmlns='urn:xmpp:hints'/></message>`,
			"bob@localhost/B1", "hint", map[*session]string{b1: "original"})
	})
	t.Run("error", func(t *testing.T) {
		check(t, a2, `<message type='error' to='bob@localhost/B1' id='m11'><body>oops</body><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`,
			"bob@localhost/B1", "oops", map[*session]string{b1: "original"})
	})
	t.Run("headline", func(t *testing.T) {
		check(t, a2, `<message type='headline' to='bob@localhost/B2' id='m12'><body>news</body></message>`,
			"bob@localhost/B2", "news", map[*session]string{b2: "original"})
	})
	t.Run("groupchat", func(t *testing.T) {
		// No MUC here: the server refuses it, and nobody gets a copy.
		a2.Write(`<message type='groupchat' to='bob@localhost' id='m13'><body>room</body></message>`)
		got := fence(t, a2, all...)
		if len(got[a2]) != 1 || got[a2][0].Type != "error" || !strings.Contains(got[a2][0].XML, "service-unavailable") {
			t.Errorf("A2: want a service-unavailable error, got %v", got[a2])
		}
		for _, s := range []*session{a1, b1, b2, b3} {
			if len(got[s]) != 0 {
				t.Errorf("%s got %q for a refused groupchat message", s.name, got[s][0].XML)
			}
		}
		check(t, a2, `<message type='groupchat' to='bob@localhost/B1' id='m14'><body>room</body></message>`,
			"bob@localhost/B1", "room", map[*session]string{b1: "original"})
	})
	t.Run("MUC private message", func(t *testing.T) {
		// Sent: copied to the sender's sessions; received: not copied (§6.1).
		check(t, a2, `<message type='chat' to='bob@localhost/B1' id='m15'><body>pm</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>`,
			"bob@localhost/B1", "pm", map[*session]string{b1: "original", a1: "sent"})
	})
	t.Run("MUC mediated invitation", func(t *testing.T) {
		check(t, a2, `<message to='bob@localhost/B1' id='m16'><x xmlns='http://jabber.org/protocol/muc#user'><invite from='alice@localhost/A2'/></x></message>`,
			"bob@localhost/B1", "", map[*session]string{b1: "original", b2: "received", a1: "sent"})
	})
	t.Run("direct invitation", func(t *testing.T) {
		check(t, a2, `<message to='bob@localhost/B1' id='m17'><x xmlns='jabber:x:conference' jid='room@conference.localhost'/></message>`,
			"bob@localhost/B1", "", map[*session]string{b1: "original", b2: "received", a1: "sent"})
	})
	t.Run("carbon not copied again", func(t *testing.T) {
		check(t, a2, `<message type='chat' to='bob@localhost/B1' id='m18'><body>fake</body><sent xmlns='urn:xmpp:carbons:2'/></message>`,
			"bob@localhost/B1", "fake", map[*session]string{b1: "original"})
	})
	t.Run("to own account", func(t *testing.T) {
		// Received copies only: the sender B3 gets nothing back, B2 one copy.
		check(t, b3, `<message type='chat' to='bob@localhost' id='m19'><body>note to self</body></message>`,
			"bob@localhost", "note to self", map[*session]string{b1: "original", b2: "received"})
		check(t, b3, `<message type='chat' to='bob@localhost/B2' id='m20'><body>to B2</body></message>`,
			"bob@localhost/B2", "to B2", map[*session]string{b2: "original", b1: "received"})
		// From a carbons-enabled session: it gets no copy of its own message.
		check(t, b1, `<message type='chat' to='bob@localhost/B3' id='m21'><body>to B3</body></message>`,
			"bob@localhost/B3", "to B3", map[*session]string{b3: "original", b2: "received"})
	})
	t.Run("remote recipient", func(t *testing.T) {
		// Not delivered (no server-to-server here): no sent copy either.
		a2.Write(`<message type='chat' to='juliet@capulet.example' id='m22'><body>far</body></message>`)
		got := fence(t, a2, all...)
		if len(got[a2]) != 1 || got[a2][0].Type != "error" {
			t.Errorf("A2: want an error, got %v", got[a2])
		}
		for _, s := range []*session{a1, b1, b2, b3} {
			if len(got[s]) != 0 {
				t.Errorf("%s got %q for an undeliverable message", s.name, got[s][0].XML)
			}
		}
	})
	t.Run("disabled", func(t *testing.T) {
		setCarbons(t, b2, "disable", "")
		if r := setCarbons(t, a1, "disable", "bob@localhost"); r.Type != "error" { // not hers
			t.Errorf("disabling through bob's JID: want an error, got %q", r.XML)
		}
		check(t, a2, `<message type='chat' to='bob@localhost' id='m23'><body>after disable</body></message>`,
			"bob@localhost", "after disable", map[*session]string{b1: "original", a1: "sent"})
		setCarbons(t, a1, "disable", "alice@localhost")
		setCarbons(t, a2, "enable", "localhost")
		check(t, a1, `<message type='chat' to='bob@localhost' id='m24'><body>A2 on</body></message>`,
			"bob@localhost", "A2 on", map[*session]string{b1: "original", a2: "sent"})
		// Both on: the sender still gets no copy of its own message.
		setCarbons(t, a1, "enable", "")
		check(t, a1, `<message type='chat' to='bob@localhost' id='m25'><body>both on</body></message>`,
			"bob@localhost", "both on", map[*session]string{b1: "original", a2: "sent"})
	})
}

// TestCarbonsWithoutPresence: a carbons-enabled session that sent no
// available presence gets no original of a message to its bare JID (RFC
// 6121 §8.5.2), but it gets the <received/> copy, and the message is also
// kept offline and delivered at its available presence.
func TestCarbonsWithoutPresence(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	a := login(srv, "alice", "wonderland", "A")
	b := login(srv, "bob", "builder", "B")
	setCarbons(t, b, "enable", "")
	a.Write(`<message type='chat' to='bob@localhost' id='w1'><body>while away</body></message>`)
	got := fence(t, a, a, b)
	if len(got[a]) != 0 {
		t.Fatalf("the sender got %q", got[a][0].XML)
	}
	if ms := got[b]; len(ms) != 1 || ms[0].Received == nil || ms[0].Received.Forwarded[0].Messages[0].Body != "while away" {
		t.Fatalf("want one received carbon, got %v", ms)
	}
	b.Write(`<presence/>`)
	if m := b.Expect(`</message>`); !strings.Contains(m, `urn:xmpp:delay`) || !strings.Contains(m, ">while away</body>") || strings.Contains(m, "received") {
		t.Fatalf("want the kept original with a delay, got %q", m)
	}
}

// BenchmarkCarbonsEnable measures the <enable/> round trip a carbons-capable
// client (Profanity, Gajim, Conversations) adds to its login, beside an XEP-0199
// ping to the server (an IQ served by a module through the mux), over TLS on
// loopback with the mellium.im/xmpp v0.22.0 client.
func BenchmarkCarbonsEnable(b *testing.B) {
	srv := servertest.Start(b, servertest.NoRateLimits)
	srv.AddUser("alice", "wonderland")
	c := srv.Dial("alice", "wonderland", "")
	ctx := servertest.Context(b, 5*time.Second)
	for _, bc := range []struct{ name, typ, payload string }{
		{"enable", "set", `<enable xmlns='` + nsCarbons + `'/>`},
		{"ping", "get", `<ping xmlns='urn:xmpp:ping'/>`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				i++
				if _, err := c.IQ(ctx, `<iq type='`+bc.typ+`' id='b`+strconv.Itoa(i)+`'>`+bc.payload+`</iq>`); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCarbonsUnackedNotRepeated: alice's phone uses stream management and
// closes its stream with messages it never acknowledged. The router hands
// them to her other sessions (RFC 6121 §8.5.3.2.1), except to those that
// already got them as received carbons: the desk with carbons on sees each
// message once, as a carbon; the laptop without carbons gets the messages
// themselves. A message marked <private/> goes to neither: it waits in
// offline storage for the account's next session.
func TestCarbonsUnackedNotRepeated(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	desk := login(srv, "alice", "wonderland", "desk")
	laptop := login(srv, "alice", "wonderland", "laptop")
	phone := login(srv, "alice", "wonderland", "phone")
	bob := login(srv, "bob", "builder", "b")
	if r := setCarbons(t, desk, "enable", ""); r.Type != "result" {
		t.Fatalf("desk: enable: %q", r.XML)
	}
	for _, s := range []*session{desk, laptop, phone} {
		available(t, s, 0)
	}
	phone.Write(`<enable xmlns='urn:xmpp:sm:3'/>`)
	phone.Expect(`<enabled`)
	for i := range 3 {
		bob.Write(`<message to='alice@localhost/phone' type='chat' id='u` + strconv.Itoa(i) + `'><body>unacked ` + strconv.Itoa(i) + `</body></message>`)
	}
	bob.Write(`<message to='alice@localhost/phone' type='chat' id='p0'><body>unacked private</body><private xmlns='urn:xmpp:carbons:2'/></message>`)
	phone.Expect(`id="p0"`)
	phone.Write(`</stream:stream>`)
	phone.Expect(`</stream:stream>`)
	phoneBound := func() bool {
		for _, si := range srv.Sessions() {
			if si.JID.String() == phone.jid {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(5 * time.Second); phoneBound(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the phone's session did not end")
		}
	}
	got := fence(t, bob, desk, laptop)
	var carbons, plain int
	for _, st := range got[desk] {
		switch {
		case st.Received != nil:
			carbons++
		case strings.HasPrefix(st.Body, "unacked"):
			plain++
		}
	}
	if carbons != 3 || plain != 0 {
		t.Errorf("desk got %d carbons and %d repeats of the phone's unacknowledged messages, want 3 and 0: %v", carbons, plain, got[desk])
	}
	var direct int
	for _, st := range got[laptop] {
		if strings.HasPrefix(st.Body, "unacked") {
			direct++
		}
	}
	if direct != 3 {
		t.Errorf("laptop (no carbons) got %d of the phone's 3 unacknowledged messages (and not the private one): %v", direct, got[laptop])
	}
	back := login(srv, "alice", "wonderland", "phone2")
	back.Write(`<presence/>`)
	back.Expect(`id="p0"`)
}
