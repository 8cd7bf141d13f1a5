package router_test

import (
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/wire"
)

// anyError matches the stanza errors a client receives, of any kind.
func anyError(s servertest.Stanza) bool { return s.Attrs["type"] == "error" }

// sendPresence sends a presence of alice's and waits for the server to
// echo it back to the session (RFC 6121 §4.2.2, §4.5.2).
func sendPresence(t *testing.T, c *servertest.Client, raw, typ string) {
	t.Helper()
	if err := c.SendRaw(ctx(t), raw); err != nil {
		t.Fatal(err)
	}
	c.Next(wait, isPresence(typ, c.LocalAddr().String()))
}

// parse parses one element written as XML text.
func parse(t *testing.T, s string) *wire.Element {
	t.Helper()
	el, ok := wire.ParseElement(s)
	if !ok {
		t.Fatalf("not one element: %s", s)
	}
	return el
}

// TestBounceToBareJID: what federation bounces (Router.Bounce), or refuses
// at once, of a stanza the router sent from a user's bare JID (the
// subscription stanzas and probes of RFC 6121 §3.1.2, §4.3) comes back to
// the account's sessions: a presence error to the resources that sent
// initial presence, or to all of them when none did; a message error to
// those a message to the bare JID reaches (the highest priority), a
// headline's and an IQ's to none; an error is never answered.
func TestBounceToBareJID(t *testing.T) {
	srv, fed := startFederated(t)
	home := srv.Dial("alice", "wonderland", "home")
	sendPresence(t, home, `<presence><priority>5</priority></presence>`, "")
	low := srv.Dial("alice", "wonderland", "low")
	sendPresence(t, low, `<presence><priority>1</priority></presence>`, "")
	// A session that reads its roster and never sends presence.
	reader := srv.Dial("alice", "wonderland", "reader")

	if err := reader.SendRaw(ctx(t), `<presence to='romeo@montague.example' type='subscribe' id='s1'/>`); err != nil {
		t.Fatal(err)
	}
	sub := fed.next(t, "the subscription request", kind("presence", "subscribe", "romeo@montague.example"))
	if sub.from != "alice@localhost" || sub.el.Attr("from") != "alice@localhost" {
		t.Fatalf("subscribe handed from %q: %s", sub.from, sub.xml)
	}
	srv.Bounce(sub.el, stanza.Error{Type: stanza.Wait, Condition: stanza.RemoteServerTimeout})
	for _, c := range []*servertest.Client{home, low} {
		e := c.Next(wait, anyError)
		if e.Name != "presence" || e.Attrs["id"] != "s1" || e.Attrs["from"] != "romeo@montague.example" ||
			e.Attrs["to"] != c.LocalAddr().String() || !strings.Contains(e.XML, "<remote-server-timeout") {
			t.Fatalf("%s: bounced subscription request: %s", c.LocalAddr(), e.XML)
		}
	}

	// Messages from the bare JID (what modules send on the account's
	// behalf): the error reaches the highest-priority resource only; a
	// headline, an IQ and an error are not answered. The stanzas each
	// session receives come in the order they were bounced, so the next
	// error after them shows what was skipped.
	for _, s := range []string{
		`<message xmlns='jabber:client' from='alice@localhost' to='romeo@montague.example' type='headline' id='h1'><event xmlns='http://jabber.org/protocol/pubsub#event'/></message>`,
		`<iq xmlns='jabber:client' from='alice@localhost' to='romeo@montague.example' type='get' id='q1'><ping xmlns='urn:xmpp:ping'/></iq>`,
		`<message xmlns='jabber:client' from='alice@localhost' to='romeo@montague.example' type='error' id='e1'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`,
		`<message xmlns='jabber:client' from='alice@localhost' to='romeo@montague.example' type='chat' id='m1'><body>hello</body></message>`,
		`<presence xmlns='jabber:client' from='alice@localhost' to='romeo@montague.example' type='unsubscribe' id='s2'/>`,
	} {
		srv.Bounce(parse(t, s), stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound})
	}
	if e := home.Next(wait, anyError); e.Name != "message" || e.Attrs["id"] != "m1" || e.Attrs["from"] != "romeo@montague.example" ||
		!strings.Contains(e.XML, ">hello</body>") || !strings.Contains(e.XML, "<remote-server-not-found") {
		t.Fatalf("home: first error after the bounced messages: %s", e.XML)
	}
	if e := home.Next(wait, anyError); e.Name != "presence" || e.Attrs["id"] != "s2" {
		t.Fatalf("home: error after the bounced chat message: %s", e.XML)
	}
	if e := low.Next(wait, anyError); e.Name != "presence" || e.Attrs["id"] != "s2" {
		t.Fatalf("low (priority 1): first error after the bounced messages: %s", e.XML)
	}

	// No session available: the presence error reaches every bound one,
	// the roster reader's first.
	sendPresence(t, home, `<presence type='unavailable'/>`, "unavailable")
	sendPresence(t, low, `<presence type='unavailable'/>`, "unavailable")
	if err := reader.SendRaw(ctx(t), `<presence to='romeo@montague.example' type='unsubscribe' id='s3'/>`); err != nil {
		t.Fatal(err)
	}
	unsub := fed.next(t, "the unsubscribe", kind("presence", "unsubscribe", "romeo@montague.example"))
	srv.Bounce(unsub.el, stanza.Error{Type: stanza.Wait, Condition: stanza.RemoteServerTimeout})
	for _, c := range []*servertest.Client{reader, home, low} {
		if e := c.Next(wait, anyError); e.Name != "presence" || e.Attrs["id"] != "s3" || e.Attrs["to"] != c.LocalAddr().String() {
			t.Fatalf("%s: bounced unsubscribe with no session available: %s", c.LocalAddr(), e.XML)
		}
	}

	// Refused by federation at once: the same.
	fed.mu.Lock()
	fed.refuse["capulet.example"] = stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound}
	fed.mu.Unlock()
	if err := reader.SendRaw(ctx(t), `<presence to='juliet@capulet.example' type='subscribe' id='s4'/>`); err != nil {
		t.Fatal(err)
	}
	if e := reader.Next(wait, anyError); e.Name != "presence" || e.Attrs["id"] != "s4" || e.Attrs["from"] != "juliet@capulet.example" ||
		!strings.Contains(e.XML, "<remote-server-not-found") {
		t.Fatalf("subscription request refused by federation: %s", e.XML)
	}

	// The probe at login (from the bare JID too) of a contact whose
	// server cannot be reached: the new session hears of it.
	if err := reader.SendRaw(ctx(t), `<presence to='romeo@montague.example' type='subscribe' id='s5'/>`); err != nil {
		t.Fatal(err)
	}
	fed.next(t, "the second subscription request", kind("presence", "subscribe", "romeo@montague.example"))
	receive(t, srv, `<presence xmlns='jabber:client' from='romeo@montague.example' to='alice@localhost' type='subscribed'/>`)
	if it := rosterOf(t, reader)["romeo@montague.example"]; it.Subscription != "to" {
		t.Fatalf("roster item after subscribed: %+v", it)
	}
	late := srv.Dial("alice", "wonderland", "late")
	sendPresence(t, late, `<presence/>`, "")
	probe := fed.next(t, "the probe at login", kind("presence", "probe", "romeo@montague.example"))
	if probe.el.Attr("from") != "alice@localhost" {
		t.Fatalf("probe from %q", probe.el.Attr("from"))
	}
	srv.Bounce(probe.el, stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound})
	if e := late.Next(wait, anyError); e.Name != "presence" || e.Attrs["from"] != "romeo@montague.example" {
		t.Fatalf("bounced probe: %s", e.XML)
	}
	if e, ok := reader.Wait(time.Second, func(s servertest.Stanza) bool { return anyError(s) && s.Attrs["from"] == "romeo@montague.example" }); ok {
		t.Fatalf("the roster reader got the error of the new session's probe: %s", e.XML)
	}
}
