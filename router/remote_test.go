package router_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/wire"
)

// handed is one stanza the router handed to federation.
type handed struct {
	from, to string
	xml      string
	el       *wire.Element
}

// fakeRemote plays federation (router.Remote): it records what it is
// handed and refuses what refuse says.
type fakeRemote struct {
	got    chan handed
	mu     sync.Mutex
	refuse map[string]stanza.Error // by addressee's domain
}

func newFakeRemote() *fakeRemote {
	return &fakeRemote{got: make(chan handed, 64), refuse: map[string]stanza.Error{}}
}

func (f *fakeRemote) HandleStanza(_ context.Context, from jid.JID, el *wire.Element, to jid.JID) error {
	f.mu.Lock()
	se, refused := f.refuse[to.Domainpart()]
	f.mu.Unlock()
	if refused {
		return se
	}
	f.got <- handed{from: from.String(), to: to.String(), xml: wire.SerializeElement(el, 1<<20), el: el}
	return nil
}

// next returns the first stanza handed to federation that match accepts,
// failing the test after wait.
func (f *fakeRemote) next(t *testing.T, what string, match func(handed) bool) handed {
	t.Helper()
	deadline := time.After(wait)
	var seen []string
	for {
		select {
		case h := <-f.got:
			if match(h) {
				return h
			}
			seen = append(seen, h.xml)
		case <-deadline:
			t.Fatalf("federation was not handed %s; it was handed %q", what, seen)
		}
	}
}

func startFederated(t *testing.T) (*servertest.Server, *fakeRemote) {
	t.Helper()
	f := newFakeRemote()
	srv := servertest.StartWith(t, []server.Option{server.WithRemote(f)})
	srv.AddUser("alice", "wonderland")
	return srv, f
}

// receive parses s and hands it to the router as federation would.
func receive(t *testing.T, srv *servertest.Server, s string) {
	t.Helper()
	el, ok := wire.ParseElement(s)
	if !ok {
		t.Fatalf("not one element: %s", s)
	}
	from, err := jid.Parse(el.Attr("from"))
	if err != nil {
		t.Fatal(err)
	}
	to, err := jid.Parse(el.Attr("to"))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Receive(ctx(t), from, to, el); err != nil {
		t.Fatalf("receive %s: %v", s, err)
	}
}

func kind(name, typ, to string) func(handed) bool {
	return func(h handed) bool {
		return h.el.Start.Name.Local == name && h.el.Attr("type") == typ && (to == "" || h.to == to)
	}
}

// TestFederationOutbound: with federation on, what a local user addresses
// to another domain reaches it, from the user's full or bare JID as RFC
// 6121 has it: messages, IQs (requests and answers), directed presence,
// subscription stanzas, the broadcast to a remote contact and the probe of
// one at login; a refusal federation decides at once comes back to the
// sender as a stanza error, and so does a later failure (Bounce).
func TestFederationOutbound(t *testing.T) {
	srv, fed := startFederated(t)
	alice := srv.Dial("alice", "wonderland", "")
	online(t, alice)
	me := alice.LocalAddr().String()

	if err := alice.SendRaw(ctx(t), `<message to='romeo@montague.example' type='chat' id='m1'><body>wherefore</body></message>`); err != nil {
		t.Fatal(err)
	}
	m := fed.next(t, "the chat message", kind("message", "chat", "romeo@montague.example"))
	if m.from != me || !strings.Contains(m.xml, "<body>wherefore</body>") || m.el.Attr("from") != me {
		t.Fatalf("message handed from %q: %s", m.from, m.xml)
	}

	if err := alice.SendRaw(ctx(t), `<iq to='romeo@montague.example/orchard' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>`); err != nil {
		t.Fatal(err)
	}
	fed.next(t, "the version request", kind("iq", "get", "romeo@montague.example/orchard"))
	if err := alice.SendRaw(ctx(t), `<iq to='montague.example' type='result' id='srv1'/>`); err != nil {
		t.Fatal(err)
	}
	fed.next(t, "an IQ result", kind("iq", "result", "montague.example"))

	if err := alice.SendRaw(ctx(t), `<presence to='romeo@montague.example/orchard'><status>at the window</status></presence>`); err != nil {
		t.Fatal(err)
	}
	fed.next(t, "the directed presence", kind("presence", "", "romeo@montague.example/orchard"))

	if err := alice.SendRaw(ctx(t), `<presence to='romeo@montague.example' type='subscribe' id='s1'/>`); err != nil {
		t.Fatal(err)
	}
	sub := fed.next(t, "the subscription request", kind("presence", "subscribe", "romeo@montague.example"))
	if sub.from != "alice@localhost" || sub.el.Attr("id") != "s1" {
		t.Fatalf("subscribe handed from %q: %s", sub.from, sub.xml)
	}
	if it := rosterOf(t, alice)["romeo@montague.example"]; it.Ask != "subscribe" || it.Subscription != "none" {
		t.Fatalf("roster item after subscribe: %+v", it)
	}

	// Romeo's server approves, and asks back; alice approves.
	receive(t, srv, `<presence xmlns='jabber:client' from='romeo@montague.example' to='alice@localhost' type='subscribed'/>`)
	if it := rosterOf(t, alice)["romeo@montague.example"]; it.Subscription != "to" {
		t.Fatalf("roster item after subscribed: %+v", it)
	}
	receive(t, srv, `<presence xmlns='jabber:client' from='romeo@montague.example' to='alice@localhost' type='subscribe'/>`)
	alice.Next(wait, isPresence("subscribe", "romeo@montague.example"))
	if err := alice.SendRaw(ctx(t), `<presence to='romeo@montague.example' type='subscribed'/>`); err != nil {
		t.Fatal(err)
	}
	fed.next(t, "the approval", kind("presence", "subscribed", "romeo@montague.example"))
	// The approval brings alice's current presence to the contact.
	fed.next(t, "alice's presence after the approval", kind("presence", "", "romeo@montague.example"))
	if it := rosterOf(t, alice)["romeo@montague.example"]; it.Subscription != "both" {
		t.Fatalf("roster item after both approvals: %+v", it)
	}

	// A probe from the contact's server is answered with alice's presence.
	receive(t, srv, `<presence xmlns='jabber:client' from='romeo@montague.example' to='alice@localhost' type='probe'/>`)
	if p := fed.next(t, "the answer to the probe", kind("presence", "", "romeo@montague.example")); p.from != me {
		t.Fatalf("probe answered from %q: %s", p.from, p.xml)
	}

	// A new session's initial presence goes to the remote contact, and
	// probes it.
	second := srv.Dial("alice", "wonderland", "balcony")
	online(t, second)
	fed.next(t, "the broadcast of the second session", func(h handed) bool {
		return kind("presence", "", "romeo@montague.example")(h) && h.from == second.LocalAddr().String()
	})
	fed.next(t, "the probe at login", kind("presence", "probe", "romeo@montague.example"))
	_ = second.Close()
	fed.next(t, "the unavailable presence at logout", kind("presence", "unavailable", "romeo@montague.example"))

	// Roster removal cancels the subscriptions both ways (RFC 6121 §2.5.2).
	if _, err := alice.IQ(ctx(t), `<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='romeo@montague.example' subscription='remove'/></query></iq>`); err != nil {
		t.Fatal(err)
	}
	fed.next(t, "unsubscribe on removal", kind("presence", "unsubscribe", "romeo@montague.example"))
	fed.next(t, "unsubscribed on removal", kind("presence", "unsubscribed", "romeo@montague.example"))

	// Refused at once: the error comes back in the stanza's kind.
	fed.mu.Lock()
	fed.refuse["capulet.example"] = stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound}
	fed.mu.Unlock()
	for _, c := range []struct{ send, kind string }{
		{`<message to='juliet@capulet.example' id='e1'><body>hi</body></message>`, "message"},
		{`<iq to='capulet.example' type='get' id='e1'><ping xmlns='urn:xmpp:ping'/></iq>`, "iq"},
		{`<presence to='juliet@capulet.example' id='e1'/>`, "presence"},
	} {
		if err := alice.SendRaw(ctx(t), c.send); err != nil {
			t.Fatal(err)
		}
		e := alice.Next(wait, func(s servertest.Stanza) bool { return s.Name == c.kind && s.Attrs["type"] == "error" })
		if e.Attrs["id"] != "e1" || !strings.Contains(e.XML, "<remote-server-not-found") {
			t.Fatalf("%s refused by federation: %s", c.kind, e.XML)
		}
	}

	// Failed later: federation bounces it.
	if err := alice.SendRaw(ctx(t), `<message to='mercutio@verona.example' id='late'><body>later</body></message>`); err != nil {
		t.Fatal(err)
	}
	late := fed.next(t, "the message to verona", kind("message", "", "mercutio@verona.example"))
	srv.Bounce(late.el, stanza.Error{Type: stanza.Wait, Condition: stanza.RemoteServerTimeout})
	e := alice.Next(wait, func(s servertest.Stanza) bool { return s.Name == "message" && s.Attrs["type"] == "error" })
	if e.Attrs["id"] != "late" || e.Attrs["from"] != "mercutio@verona.example" || !strings.Contains(e.XML, "<remote-server-timeout") {
		t.Fatalf("bounced message: %s", e.XML)
	}
}

// TestFederationInbound: what another domain sends reaches the local
// users (messages, presence, IQs to a full JID), and the server and the
// accounts answer remote entities on the routes their modules open
// (disco, ping, version, vCard reads) and on no other (carbons, a vCard
// write, the roster): those are service-unavailable, sent back through
// federation. The access lists apply to the remote sender.
func TestFederationInbound(t *testing.T) {
	srv, fed := startFederated(t)
	alice := srv.Dial("alice", "wonderland", "")
	online(t, alice)
	home := alice.LocalAddr().String()

	receive(t, srv, `<message xmlns='jabber:client' from='romeo@montague.example/orchard' to='alice@localhost' type='chat' id='in1'><body>but soft</body></message>`)
	m := alice.Next(wait, isMessage("but soft"))
	if m.Attrs["from"] != "romeo@montague.example/orchard" {
		t.Fatalf("message from %q", m.Attrs["from"])
	}
	receive(t, srv, `<presence xmlns='jabber:client' from='romeo@montague.example/orchard' to='`+home+`'><show>away</show></presence>`)
	alice.Next(wait, isPresence("", "romeo@montague.example/orchard"))

	// A message for an account with no session is kept offline.
	srv.AddUser("bob", "builder")
	receive(t, srv, `<message xmlns='jabber:client' from='romeo@montague.example/orchard' to='bob@localhost' type='chat' id='off'><body>for later</body></message>`)
	bob := srv.Dial("bob", "builder", "")
	online(t, bob)
	bob.Next(wait, isMessage("for later"))

	receive(t, srv, `<iq xmlns='jabber:client' from='romeo@montague.example/orchard' to='`+home+`' type='get' id='q1'><query xmlns='jabber:iq:version'/></iq>`)
	alice.Next(wait, func(s servertest.Stanza) bool { return s.Name == "iq" && s.Attrs["id"] == "q1" })

	if _, err := alice.IQ(ctx(t), `<iq type='set' id='vcset'><vCard xmlns='vcard-temp'><FN>Alice Liddell</FN></vCard></iq>`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, send, want string }{
		{"ping", `<iq xmlns='jabber:client' from='montague.example' to='localhost' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`, "result"},
		{"disco", `<iq xmlns='jabber:client' from='romeo@montague.example/orchard' to='localhost' type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "result"},
		{"version", `<iq xmlns='jabber:client' from='romeo@montague.example/orchard' to='localhost' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>`, "result"},
		{"vcard read", `<iq xmlns='jabber:client' from='romeo@montague.example/orchard' to='alice@localhost' type='get' id='vc1'><vCard xmlns='vcard-temp'/></iq>`, "result"},
		{"vcard write", `<iq xmlns='jabber:client' from='alice@montague.example/x' to='alice@localhost' type='set' id='vc2'><vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard></iq>`, "error"},
		{"carbons", `<iq xmlns='jabber:client' from='alice@montague.example/x' to='localhost' type='set' id='cb'><enable xmlns='urn:xmpp:carbons:2'/></iq>`, "error"},
		{"roster", `<iq xmlns='jabber:client' from='alice@montague.example/x' to='alice@localhost' type='get' id='ro'><query xmlns='jabber:iq:roster'/></iq>`, "error"},
		{"offline resource", `<iq xmlns='jabber:client' from='romeo@montague.example/orchard' to='alice@localhost/gone' type='get' id='gone'><ping xmlns='urn:xmpp:ping'/></iq>`, "error"},
	} {
		t.Run(c.name, func(t *testing.T) {
			receive(t, srv, c.send)
			el, _ := wire.ParseElement(c.send)
			id, from := el.Attr("id"), el.Attr("from")
			a := fed.next(t, "the answer", func(h handed) bool { return h.el.Attr("id") == id })
			if a.el.Attr("type") != c.want || a.to != from || a.el.Attr("from") != el.Attr("to") {
				t.Fatalf("answer to %s from %s: %s", c.name, a.from, a.xml)
			}
			if c.name == "vcard read" && !strings.Contains(a.xml, "Alice Liddell") {
				t.Fatalf("remote vCard read: %s", a.xml)
			}
			if c.want == "error" && !strings.Contains(a.xml, "<service-unavailable") {
				t.Fatalf("refusal of %s: %s", c.name, a.xml)
			}
		})
	}
	// The vCard write from another domain changed nothing.
	reply, err := alice.IQ(ctx(t), `<iq type='get' id='own'><vCard xmlns='vcard-temp'/></iq>`)
	if err != nil || strings.Contains(reply, "Mallory") {
		t.Fatalf("own vCard after a remote write: %q, %v", reply, err)
	}

	// Blacklisted: refused with forbidden, nothing delivered.
	if err := srv.SetAccessLists(ctx(t), []string{"montague.example"}, nil); err != nil {
		t.Fatal(err)
	}
	receive(t, srv, `<message xmlns='jabber:client' from='romeo@montague.example/orchard' to='alice@localhost' type='chat' id='bl'><body>banished</body></message>`)
	a := fed.next(t, "the refusal", func(h handed) bool { return h.el.Attr("id") == "bl" })
	if a.el.Attr("type") != "error" || !strings.Contains(a.xml, "<forbidden") {
		t.Fatalf("message from a blacklisted domain answered %s", a.xml)
	}
	if got, ok := alice.Wait(time.Second, isMessage("banished")); ok {
		t.Fatalf("a blacklisted domain's message was delivered: %s", got.XML)
	}
}
