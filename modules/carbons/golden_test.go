package carbons_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/adhocd/adhocd/servertest"
)

// XEP-0280 (version 1.0.1) examples as golden cases: each stanza a client
// sends is the XEP's example as it is printed, its JIDs made this server's
// (romeo@montague.example and juliet@capulet.example are romeo@localhost
// and juliet@localhost); each answer must have the shape of the XEP's
// example, element for element and attribute for attribute, but for what
// the example cannot know (an archive id the server adds, XEP-0359).

// xep280JIDs makes the examples' JIDs this server's.
var xep280JIDs = strings.NewReplacer("@montague.example", "@localhost", "@capulet.example", "@localhost", "'montague.example'", "'localhost'")

// golden280 is the canonical form (servertest.Node.Canon) of n without the
// elements named in omit ("{namespace}local"), at any depth: what another
// XEP adds to a stanza, which the XEP's example does not show.
func golden280(n *servertest.Node, omit ...string) string { return without(n, omit).Canon() }

// without is a copy of n without the elements named in omit.
func without(n *servertest.Node, omit []string) *servertest.Node {
	c := *n
	c.Kids = nil
	for _, k := range n.Kids {
		if !slices.Contains(omit, "{"+k.Name.Space+"}"+k.Name.Local) {
			c.Kids = append(c.Kids, without(k, omit))
		}
	}
	return &c
}

// example is the XEP's example as this server's stanza.
func example(t *testing.T, x string) *servertest.Node {
	t.Helper()
	els := servertest.ParseXML(t, xep280JIDs.Replace(x))
	if len(els) != 1 {
		t.Fatalf("want one element in the example %q", x)
	}
	return els[0]
}

// inbox reads what a raw session receives, element by element.
func inbox(t *testing.T, s *session) *servertest.Inbox[*servertest.Node] {
	return servertest.NewInbox(t, s.Raw, s.jid, func(el string) (*servertest.Node, error) {
		els := servertest.ParseXML(t, el)
		if len(els) != 1 {
			return nil, fmt.Errorf("%d elements in %q", len(els), el)
		}
		return els[0], nil
	})
}

// stanzaID is the XEP-0359 element the archive (XEP-0313 §3) puts in a
// message it archived, the forwarded ones of carbons among them.
const stanzaID = "{urn:xmpp:sid:0}stanza-id"

// TestCarbonsGolden: XEP-0280's examples of §4 (enable), §5 (disable),
// §7 (receiving), §8 (sending) and §9 (avoiding carbons), sent as the XEP
// prints them, answered in the shape it prints.
func TestCarbonsGolden(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("romeo", "pw")
	srv.AddUser("juliet", "pw")
	garden := login(srv, "romeo", "pw", "garden")
	home := login(srv, "romeo", "pw", "home")
	balcony := login(srv, "juliet", "pw", "balcony")
	jhome := login(srv, "juliet", "pw", "home")
	available(t, garden, 1)
	available(t, home, 0)
	available(t, balcony, 1)
	available(t, jhome, 0)
	in := map[*session]*servertest.Inbox[*servertest.Node]{}
	for _, s := range []*session{garden, home, balcony, jhome} {
		in[s] = inbox(t, s)
	}
	iqResult := func(s *session, id, what string) {
		t.Helper()
		got := in[s].Next("the answer to "+id, func(n *servertest.Node) bool { return n.Name.Local == "iq" && n.Attr["id"] == id })
		want := example(t, what)
		// RFC 6120 §8.1.2.1: the answer on behalf of the account to an
		// IQ with no 'to' is from the bare JID, as the XEP prints, or
		// has no 'from'.
		if _, ok := got.Attr["from"]; !ok {
			delete(want.Attr, "from")
		}
		if g, w := got.Canon(), want.Canon(); g != w {
			t.Errorf("answer to %s:\n got %s\nwant %s", id, g, w)
		}
	}

	// §4: "Client enables Carbons", "Server acknowledges enabling Carbons";
	// romeo's two sessions both enable them.
	for _, s := range []*session{garden, home} {
		s.Write(strings.ReplaceAll(xep280JIDs.Replace(`<iq xmlns='jabber:client'
    from='romeo@montague.example/garden'
    id='enable1'
    type='set'>
  <enable xmlns='urn:xmpp:carbons:2'/>
</iq>`), "romeo@localhost/garden", s.jid))
		iqResult(s, "enable1", strings.ReplaceAll(`<iq xmlns='jabber:client'
      from='romeo@montague.example'
      id='enable1'
      to='romeo@montague.example/garden'
      type='result'/>`, "/garden", "/"+s.name))
	}

	// §7: "Juliet sends Romeo a directed message"; garden gets it as
	// sent, home gets "Server sends carbon to Romeo's other clients".
	directed := `<message xmlns='jabber:client'
         from='juliet@capulet.example/balcony'
         to='romeo@montague.example/garden'
         type='chat'>
  <body>What man art thou that, thus bescreen'd in night, so stumblest on my counsel?</body>
  <thread>0e3141cd80894871a68e6fe6b1ec56fa</thread>
</message>`
	balcony.Write(xep280JIDs.Replace(directed))
	isChat := func(n *servertest.Node) bool { return n.Name.Local == "message" && n.Attr["type"] == "chat" }
	orig := in[garden].Next("juliet's message", isChat)
	if g, w := golden280(orig, stanzaID), example(t, directed).Canon(); g != w {
		t.Errorf("the message to garden:\n got %s\nwant %s", g, w)
	}
	carbon := in[home].Next("the received carbon", isChat)
	if g, w := golden280(carbon, stanzaID), example(t, `<message xmlns='jabber:client'
         from='romeo@montague.example'
         to='romeo@montague.example/home'
         type='chat'>
  <received xmlns='urn:xmpp:carbons:2'>
    <forwarded xmlns='urn:xmpp:forward:0'>
      <message xmlns='jabber:client'
               from='juliet@capulet.example/balcony'
               to='romeo@montague.example/garden'
               type='chat'>
        <body>What man art thou that, thus bescreen'd in night, so stumblest on my counsel?</body>
        <thread>0e3141cd80894871a68e6fe6b1ec56fa</thread>
      </message>
    </forwarded>
  </received>
</message>`).Canon(); g != w {
		t.Fatalf("the received carbon:\n got %s\nwant %s", g, w)
	}
	// The forwarded message carries the archive's id, the one garden got
	// with the original (XEP-0313 §3: "servers SHOULD include the element
	// as a child of the forwarded message when using XEP-0280").
	if id := archiveID(carbon.Kids[0].Kids[0].Kids[0]); id == "" || id != archiveID(orig) {
		t.Errorf("the carbon's stanza-id %q is not the original's %q", id, archiveID(orig))
	}

	// §8: "Romeo responds to Juliet" from home; juliet's balcony gets it,
	// garden gets "Romeo's other Carbons-enabled clients receive a copy".
	respond := `<message xmlns='jabber:client'
         from='romeo@montague.example/home'
         to='juliet@capulet.example/balcony'
         type='chat'>
  <body>Neither, fair saint, if either thee dislike.</body>
  <thread>0e3141cd80894871a68e6fe6b1ec56fa</thread>
</message>`
	home.Write(xep280JIDs.Replace(respond))
	if g, w := golden280(in[balcony].Next("romeo's answer", isChat), stanzaID), example(t, respond).Canon(); g != w {
		t.Errorf("the message to balcony:\n got %s\nwant %s", g, w)
	}
	if g, w := golden280(in[garden].Next("the sent carbon", isChat), stanzaID), example(t, `<message xmlns='jabber:client'
        from='romeo@montague.example'
        to='romeo@montague.example/garden'
        type='chat'>
  <sent xmlns='urn:xmpp:carbons:2'>
    <forwarded xmlns='urn:xmpp:forward:0'>
      <message xmlns='jabber:client'
               to='juliet@capulet.example/balcony'
               from='romeo@montague.example/home'
               type='chat'>
        <body>Neither, fair saint, if either thee dislike.</body>
        <thread>0e3141cd80894871a68e6fe6b1ec56fa</thread>
      </message>
    </forwarded>
  </sent>
</message>`).Canon(); g != w {
		t.Errorf("the sent carbon:\n got %s\nwant %s", g, w)
	}

	// §9: "Romeo sends to Juliet, excluding Carbons" to juliet/home;
	// "Romeo's server delivers original message, without creating Carbon
	// copies": jhome gets it as it was sent, <private/> and <no-copy/>
	// kept, and neither garden nor juliet's balcony gets anything.
	private := `<message xmlns='jabber:client'
         from='romeo@montague.example/home'
         to='juliet@capulet.example/home'
         type='chat'>
  <body>Neither, fair saint, if either thee dislike.</body>
  <thread>0e3141cd80894871a68e6fe6b1ec56fa</thread>
  <private xmlns='urn:xmpp:carbons:2'/>
  <no-copy xmlns='urn:xmpp:hints'/>
</message>`
	home.Write(xep280JIDs.Replace(private))
	if g, w := golden280(in[jhome].Next("the private message", isChat), stanzaID), example(t, private).Canon(); g != w {
		t.Errorf("the private message:\n got %s\nwant %s", g, w)
	}
	// juliet enables carbons on balcony to show that it is <private/>
	// that keeps the copy away, then a headline fences what came before.
	balcony.Write(`<iq type='set' id='enable2'><enable xmlns='urn:xmpp:carbons:2'/></iq>`)
	in[balcony].Next("the enable result", func(n *servertest.Node) bool { return n.Attr["id"] == "enable2" })
	home.Write(xep280JIDs.Replace(private))
	in[jhome].Next("the second private message", isChat)
	for _, s := range []*session{garden, balcony} {
		home.Write(`<message type='headline' to='` + s.jid + `'><body>fence</body></message>`)
		in[s].Next("the fence", func(n *servertest.Node) bool { return n.Attr["type"] == "headline" })
		if got := in[s].Take(func(n *servertest.Node) bool { return n.Name.Local == "message" }); len(got) != 0 {
			t.Errorf("%s got a copy of a private message: %s", s.name, got[0].Canon())
		}
	}

	// §5: "Client disables Carbons", "Server acknowledges disabling
	// Carbons"; garden no longer gets copies.
	garden.Write(xep280JIDs.Replace(`<iq xmlns='jabber:client'
    from='romeo@montague.example/garden'
    id='disable1'
    type='set'>
  <disable xmlns='urn:xmpp:carbons:2'/>
</iq>`))
	iqResult(garden, "disable1", `<iq xmlns='jabber:client'
    from='romeo@montague.example'
    id='disable1'
    to='romeo@montague.example/garden'
    type='result'/>`)
	home.Write(xep280JIDs.Replace(respond))
	in[balcony].Next("romeo's answer again", isChat)
	home.Write(`<message type='headline' to='` + garden.jid + `'><body>fence</body></message>`)
	in[garden].Next("the fence", func(n *servertest.Node) bool { return n.Attr["type"] == "headline" })
	if got := in[garden].Take(func(n *servertest.Node) bool { return n.Name.Local == "message" }); len(got) != 0 {
		t.Errorf("garden got a carbon after disabling them: %s", got[0].Canon())
	}
}

// archiveID is the id of a message's XEP-0359 stanza-id, "" without one.
func archiveID(n *servertest.Node) string {
	for _, k := range n.Kids {
		if "{"+k.Name.Space+"}"+k.Name.Local == stanzaID {
			return k.Attr["id"]
		}
	}
	return ""
}
