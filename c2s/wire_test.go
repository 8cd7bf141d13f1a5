package c2s_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// TestWireWritesEachNamespaceOnce reads what the server writes on the
// socket: the command list (disco#items of the commands node) and a
// forwarded chat message, byte for byte. No child repeats its parent's
// default namespace, neither the disco items (nbxmpp 4.2.2, Gajim's
// library, fails on an <item/> that carries xmlns) nor a message's body.
func TestWireWritesEachNamespaceOnce(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) {
		c.Admins = []string{"admin@localhost"}
		c.Limits.MAM.MaxMessages = 0 // the message as sent, without a stanza-id
	})
	srv.AddUser("admin", "pw")
	srv.AddUser("bob", "pw")
	admin := srv.RawLogin("admin", "pw", "desk")
	bob := srv.RawLogin("bob", "pw", "phone")
	presence := `<presence/>`
	admin.Write(presence)
	bob.Write(presence)
	admin.Expect(`<presence[^>]*from="admin@localhost/desk"`)
	bob.Expect(`<presence[^>]*from="bob@localhost/phone"`)

	admin.Write(`<iq type='get' id='items1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>`)
	got := admin.Expect(`id="items1".*</iq>`)
	items := regexp.MustCompile(`<query xmlns="http://jabber.org/protocol/disco#items" node="http://jabber.org/protocol/commands">(<item [^>]*/>)+</query>`).FindString(got)
	if items == "" {
		t.Fatalf("no command list in %s", got)
	}
	if want := `<item jid="localhost" node="http://jabber.org/protocol/admin#add-user" name="Add User"/>`; !strings.Contains(items, want) {
		t.Errorf("the command list lacks %s:\n%s", want, items)
	}
	if n := strings.Count(items, "xmlns="); n != 1 {
		t.Errorf("the command list declares a namespace %d times, want once:\n%s", n, items)
	}

	bob.Write(`<message to='admin@localhost/desk' type='chat' id='m1'><body>hello &amp; welcome</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	msg := admin.Expect(`</message>`)
	want := regexp.MustCompile(`^<message [^>]*>` + regexp.QuoteMeta(`<body>hello &amp; welcome</body><active xmlns="http://jabber.org/protocol/chatstates"/></message>`) + `$`)
	if !want.MatchString(msg) || strings.Contains(msg, "jabber:client") {
		t.Errorf("message written as\n%s\nwant the body and chat state without repeated namespaces", msg)
	}
}
