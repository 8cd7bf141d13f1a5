package csi_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
)

// XEP-0352 (version 1.0.0) examples as golden cases: the client sends the
// XEP's examples as printed (capulet.lit is this server, localhost; the
// XEP's 'capulaet.lit' typo included), and the server's answers have the
// shape the XEP prints.

// nodes reads what a raw session receives, element by element.
func nodes(t *testing.T, s *session) *servertest.Inbox[*servertest.Node] {
	return servertest.NewInbox(t, s.Raw, s.name, func(el string) (*servertest.Node, error) {
		els := servertest.ParseXML(t, el)
		if len(els) != 1 {
			return nil, fmt.Errorf("%d elements in %q", len(els), el)
		}
		return els[0], nil
	})
}

// TestCSIGolden: "Server indicates support for CSI" (§5), "Client
// indicates it is inactive" and "Client indicates it is active" (§6),
// answered with nothing, and "In-order processing" (§6): what was held
// while inactive is flushed before the answer to the ping that follows
// <active/>, which is the XEP's pong.
func TestCSIGolden(t *testing.T) {
	srv := servertest.Start(t, servertest.NoRateLimits)
	srv.AddUser("juliet", "pw-juliet")
	srv.AddUser("romeo", "pw-romeo")
	srv.Befriend("juliet", "romeo")

	// §5: the features of an authenticated stream carry <bind/> and an
	// empty <csi xmlns='urn:xmpp:csi:0'/>.
	f := srv.RawDial().Authenticate(srv.ClientTLS, "juliet", "pw-juliet")
	features := servertest.ParseXML(t, f[strings.Index(f, "<stream:features>"):])[0]
	var bind, csi bool
	for _, k := range features.Kids {
		bind = bind || k.Canon() == "{urn:ietf:params:xml:ns:xmpp-bind}bind[]"
		csi = csi || k.Canon() == "{urn:xmpp:csi:0}csi[]"
	}
	if !bind || !csi {
		t.Errorf("features after authentication lack <bind/> or <csi xmlns='urn:xmpp:csi:0'/>: %s", features.Canon())
	}

	juliet := login(t, srv, "juliet", "balcony")
	juliet.available(t)
	romeo := login(t, srv, "romeo", "orchard")
	romeo.available(t)
	juliet.Expect(`<presence[^>]* from=["']romeo@localhost/orchard["']`)
	in := nodes(t, juliet)
	isPing := func(id string) func(*servertest.Node) bool {
		return func(n *servertest.Node) bool { return n.Name.Local == "iq" && n.Attr["id"] == id }
	}

	// "Client indicates it is inactive": no answer (it is no stanza), and
	// romeo's presence change waits.
	juliet.Write(`<inactive xmlns='urn:xmpp:csi:0'/>`)
	juliet.Write(`<iq type='get' id='fence1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	in.Next("the first fence", isPing("fence1"))
	romeo.Write(`<presence><show>away</show></presence>`)
	romeo.ping(t) // romeo's presence has passed juliet's interceptors
	// (A ping of juliet's would not do as a fence here: its answer is
	// urgent, and what is held goes before it, as below.)
	in.Read(200 * time.Millisecond)
	if got := in.Take(func(*servertest.Node) bool { return true }); len(got) != 0 {
		t.Fatalf("an inactive session got %s", got[0].Canon())
	}

	// "In-order processing": <active/> and a ping in one go.
	juliet.Write(strings.NewReplacer("capulaet.lit", "localhost", "@capulet.lit", "@localhost").Replace(`<active xmlns='urn:xmpp:csi:0'/>
<iq to='capulaet.lit' from='juliet@capulet.lit/balcony' id='ping1' type='get'>
  <ping xmlns='urn:xmpp:ping'/>
</iq>`))
	first := in.Next("the held presence or the pong", func(n *servertest.Node) bool {
		return n.Name.Local == "presence" || isPing("ping1")(n)
	})
	if first.Name.Local != "presence" || first.Attr["from"] != "romeo@localhost/orchard" || !strings.Contains(first.Canon(), `{jabber:client}show["away"]`) {
		t.Fatalf("want romeo's held presence before the pong, got %s", first.Canon())
	}
	pong := in.Next("the pong", isPing("ping1"))
	want := servertest.ParseXML(t, `<iq to='juliet@localhost/balcony' from='localhost' id='ping1' type='result'/>`)[0]
	if g, w := pong.Canon(), want.Canon(); g != w {
		t.Errorf("the pong:\n got %s\nwant %s", g, w)
	}
	// "Client indicates it is active": no answer either; active, the
	// session gets romeo's next presence at once.
	juliet.Write(`<active xmlns='urn:xmpp:csi:0'/>`)
	romeo.Write(`<presence><show>chat</show></presence>`)
	if got := in.Next("romeo's presence", func(n *servertest.Node) bool { return n.Name.Local == "presence" }); !strings.Contains(got.Canon(), `show["chat"]`) || strings.Contains(got.Canon(), "urn:xmpp:delay") {
		t.Errorf("an active session got %s, want romeo's presence as sent", got.Canon())
	}
	juliet.Write(`<iq type='get' id='fence3' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	in.Next("the last fence", isPing("fence3"))
	if got := in.Take(func(*servertest.Node) bool { return true }); len(got) != 0 {
		t.Errorf("<active/> was answered: %s", got[0].Canon())
	}
}
