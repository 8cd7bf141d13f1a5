package c2s_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// XEP-0198 (version 1.6.3) examples as golden cases: what the client sends
// is the XEP's example as printed, its JIDs made this server's
// (example.com, example.net, montague.lit and capulet.lit are localhost);
// each answer must have the shape the XEP prints, but for the values only
// the server can know (a resumption id, the 'max' it allows), which are
// checked for what they must be.

// xep198JIDs makes the examples' JIDs this server's.
var xep198JIDs = strings.NewReplacer("@example.com", "@localhost", "@example.net", "@localhost",
	"@montague.lit", "@localhost", "@capulet.lit", "@localhost")

// smInbox reads what a raw stream receives, element by element.
func smInbox(t *testing.T, r *servertest.Raw, name string) *servertest.Inbox[*servertest.Node] {
	return servertest.NewInbox(t, r, name, func(el string) (*servertest.Node, error) {
		els := servertest.ParseXML(t, el)
		if len(els) != 1 {
			return nil, fmt.Errorf("%d elements in %q", len(els), el)
		}
		return els[0], nil
	})
}

// smNext is the next element of stream management's namespace.
func smNext(in *servertest.Inbox[*servertest.Node], what string) *servertest.Node {
	return in.Next(what, func(n *servertest.Node) bool { return n.Name.Space == "urn:xmpp:sm:3" })
}

// wantShape compares got with the XEP's example want (its JIDs made this
// server's), the attributes in vary only for their presence.
func wantShape(t *testing.T, what string, got *servertest.Node, want string, vary ...string) {
	t.Helper()
	els := servertest.ParseXML(t, xep198JIDs.Replace(want))
	if len(els) != 1 {
		t.Fatalf("want one element in the example %q", want)
	}
	w := *els[0]
	g := *got
	g.Attr, w.Attr = map[string]string{}, map[string]string{}
	for k, v := range got.Attr {
		g.Attr[k] = v
	}
	for k, v := range els[0].Attr {
		w.Attr[k] = v
	}
	for _, a := range vary {
		if _, ok := g.Attr[a]; ok {
			g.Attr[a] = "…"
		}
		if _, ok := w.Attr[a]; ok {
			w.Attr[a] = "…"
		}
	}
	if gc, wc := g.Canon(), w.Canon(); gc != wc {
		t.Errorf("%s:\n got %s\nwant %s", what, gc, wc)
	}
}

// TestSMGolden: §2's stream feature, §3's enable, enabled and the failures
// before binding and on a second enable, §4's "Simple stanza acking", §5's
// resumption (enable with resume, the stream resumed, the stream timed out)
// and §8.1's "Basic Acking Scenario", each as the XEP prints it.
func TestSMGolden(t *testing.T) {
	srv := servertest.Start(t)
	for _, u := range []string{"romeo", "juliet", "laurence"} {
		srv.AddUser(u, "pw")
	}
	juliet := srv.RawLogin("juliet", "pw", "balcony")
	juliet.Write(`<presence/>`)
	juliet.Expect(`<presence`)
	julietIn := smInbox(t, juliet, "juliet")

	t.Run("stream feature and enable before binding", func(t *testing.T) {
		r := srv.RawDial()
		f := r.Authenticate(srv.ClientTLS, "romeo", "pw")
		// "Server sends new stream header along with stream features":
		// <bind/> and an empty <sm xmlns='urn:xmpp:sm:3'/>.
		features := servertest.ParseXML(t, f[strings.Index(f, "<stream:features>"):])[0]
		var bind, sm bool
		for _, k := range features.Kids {
			bind = bind || k.Canon() == "{urn:ietf:params:xml:ns:xmpp-bind}bind[]"
			sm = sm || k.Canon() == "{urn:xmpp:sm:3}sm[]"
		}
		if !bind || !sm {
			t.Errorf("features after authentication lack <bind/> or <sm xmlns='urn:xmpp:sm:3'/>: %s", features.Canon())
		}
		r.Write(`<enable xmlns='urn:xmpp:sm:3'/>`)
		// "Server returns error if client attempts to enable stream
		// management before resource binding".
		wantShape(t, "enable before binding", smNext(smInbox(t, r, "romeo"), "<failed/>"), `<failed xmlns='urn:xmpp:sm:3'>
  <unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
</failed>`)
	})

	t.Run("simple stanza acking", func(t *testing.T) {
		r := srv.RawLogin("laurence", "pw", "churchyard")
		in := smInbox(t, r, "laurence")
		// "Simple stanza acking": the client sends its message without
		// waiting for <enabled/>, then asks.
		r.Write(xep198JIDs.Replace(`<enable xmlns='urn:xmpp:sm:3'/>

<message from='laurence@example.net/churchyard'
         to='juliet@example.com'
         xml:lang='en'>
  <body>
    I'll send a friar with speed, to Mantua,
    with my letters to thy lord.
  </body>
</message>`))
		wantShape(t, "enabled", smNext(in, "<enabled/>"), `<enabled xmlns='urn:xmpp:sm:3'/>`)
		r.Write(`<r xmlns='urn:xmpp:sm:3'/>`)
		wantShape(t, "the answer to <r/>", smNext(in, "<a/>"), `<a xmlns='urn:xmpp:sm:3' h='1'/>`)
		got := julietIn.Next("laurence's message", func(n *servertest.Node) bool { return n.Name.Local == "message" })
		if !strings.Contains(got.Canon(), "I'll send a friar with speed") || got.Attr["from"] != "laurence@localhost/churchyard" {
			t.Errorf("juliet got %s", got.Canon())
		}
		// "Server returns error if client attempts to enable stream
		// management more than once".
		r.Write(`<enable xmlns='urn:xmpp:sm:3'/>`)
		wantShape(t, "a second enable", smNext(in, "<failed/>"), `<failed xmlns='urn:xmpp:sm:3'>
  <unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
</failed>`)
	})

	t.Run("basic acking scenario", func(t *testing.T) {
		r := srv.RawLogin("romeo", "pw", "orchard")
		in := smInbox(t, r, "romeo")
		// §8.1, "Client enables stream management", "Server enables
		// stream management".
		r.Write(`<enable xmlns='urn:xmpp:sm:3'/>`)
		wantShape(t, "enabled", smNext(in, "<enabled/>"), `<enabled xmlns='urn:xmpp:sm:3'/>`)
		// "Client sends a stanza and requests acknowledgement", "Server
		// handles client stanza and acknowledges handling of client
		// stanza".
		r.Write(`<iq id='ls72g593' type='get'>
  <query xmlns='jabber:iq:roster'/>
</iq>

<r xmlns='urn:xmpp:sm:3'/>`)
		roster := in.Next("the roster", func(n *servertest.Node) bool { return n.Name.Local == "iq" })
		if roster.Attr["id"] != "ls72g593" || roster.Attr["type"] != "result" || len(roster.Kids) != 1 || roster.Kids[0].Name.Space != "jabber:iq:roster" {
			t.Errorf("roster answer: %s", roster.Canon())
		}
		wantShape(t, "ack of the roster get", smNext(in, "<a/>"), `<a xmlns='urn:xmpp:sm:3' h='1'/>`)
		// "Client acks handling of first server stanza, sends a stanza,
		// and requests acknowledgement", "Server acks handling of second
		// client stanza and sends a stanza".
		r.Write(`<a xmlns='urn:xmpp:sm:3' h='1'/>

<presence/>

<r xmlns='urn:xmpp:sm:3'/>`)
		wantShape(t, "ack of the presence", smNext(in, "<a/>"), `<a xmlns='urn:xmpp:sm:3' h='2'/>`)
		echo := in.Next("the presence", func(n *servertest.Node) bool { return n.Name.Local == "presence" })
		if echo.Attr["from"] != "romeo@localhost/orchard" {
			t.Errorf("presence echo: %s", echo.Canon())
		}
		// "Client acks receipt of second server stanza, sends a stanza,
		// and requests acknowledgement", "Server acknowledges handling of
		// third client stanza".
		r.Write(xep198JIDs.Replace(`<a xmlns='urn:xmpp:sm:3' h='2'/>

<message to='juliet@capulet.lit'>
  <body>ciao!</body>
</message>

<r xmlns='urn:xmpp:sm:3'/>`))
		wantShape(t, "ack of the message", smNext(in, "<a/>"), `<a xmlns='urn:xmpp:sm:3' h='3'/>`)
		julietIn.Next("ciao", func(n *servertest.Node) bool { return strings.Contains(n.Canon(), `"ciao!"`) })
		// §6: "Entity closes stream because peer acknowledges more
		// stanzas than it was sent": two were sent.
		r.Write(`<a xmlns='urn:xmpp:sm:3' h='10'/>`)
		se := in.Next("the stream error", func(n *servertest.Node) bool { return n.Name.Local == "error" })
		if !strings.Contains(se.Canon(), "{urn:ietf:params:xml:ns:xmpp-streams}undefined-condition[]") {
			t.Errorf("an ack of more than was sent: %s", se.Canon())
		}
		// The XEP's <handled-count-too-high h send-count/> (a SHOULD) is
		// not checked: adhocd says it in the error's text only.
	})

	t.Run("resumption", func(t *testing.T) {
		r := srv.RawLogin("romeo", "pw", "garden")
		in := smInbox(t, r, "romeo/garden")
		// §5, "Client enables stream management" with resume, "Server
		// allows stream resumption": the id is the server's, and so is
		// the 'max' it may add (limits.sm.resume_timeout, 300 s).
		r.Write(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`)
		enabled := smNext(in, "<enabled/>")
		wantShape(t, "enabled with resumption", enabled, `<enabled xmlns='urn:xmpp:sm:3' id='some-long-sm-id' resume='true' max='300'/>`, "id")
		id := enabled.Attr["id"]
		if len(id) < 16 {
			t.Errorf("resumption id %q is short enough to guess", id)
		}
		r.Write(`<presence/>`)
		in.Next("the presence", func(n *servertest.Node) bool { return n.Name.Local == "presence" })
		juliet.Write(`<message to='romeo@localhost/garden' type='chat' id='m1'><body>one</body></message>`)
		in.Next("juliet's message", func(n *servertest.Node) bool { return n.Attr["id"] == "m1" })
		dropTCP(r)

		back := srv.RawDial()
		back.Authenticate(srv.ClientTLS, "romeo", "pw")
		backIn := smInbox(t, back, "romeo again")
		// "Stream resumption request": the client received two stanzas
		// (its presence and m1); "Stream resumed": the server handled
		// one (the presence).
		back.Write(`<resume xmlns='urn:xmpp:sm:3'
        h='2'
        previd='` + id + `'/>`)
		wantShape(t, "resumed", smNext(backIn, "<resumed/>"), `<resumed xmlns='urn:xmpp:sm:3'
         h='1'
         previd='`+id+`'/>`)
		back.Write(`<iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
		backIn.Next("the resumed session's answer", func(n *servertest.Node) bool { return n.Attr["id"] == "after" })
	})

	t.Run("stream timed out", func(t *testing.T) {
		short := servertest.Start(t, func(c *config.Config) { c.Limits.SM.ResumeTimeout = config.Duration(300 * time.Millisecond) })
		short.AddUser("romeo", "pw")
		r := short.RawLogin("romeo", "pw", "garden")
		r.Write(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`)
		m := regexp.MustCompile(`id=["']([0-9a-f]+)["']`).FindStringSubmatch(r.Expect(`<enabled[^>]*/>`))
		if m == nil {
			t.Fatal("no resumption id")
		}
		dropTCP(r)
		for deadline := time.Now().Add(5 * time.Second); isBound(short, "romeo@localhost/garden"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the session outlived limits.sm.resume_timeout")
			}
		}
		back := short.RawDial()
		back.Authenticate(short.ClientTLS, "romeo", "pw")
		back.Write(`<resume xmlns='urn:xmpp:sm:3' h='0' previd='` + m[1] + `'/>`)
		// "Stream timed out": the 'h' of <failed/> is a MAY (the server
		// would have to keep the count past the timeout); adhocd does
		// not keep it.
		got := smNext(smInbox(t, back, "romeo again"), "<failed/>")
		delete(got.Attr, "h")
		wantShape(t, "resume after the timeout", got, `<failed xmlns='urn:xmpp:sm:3'>
  <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
</failed>`)
	})
}
