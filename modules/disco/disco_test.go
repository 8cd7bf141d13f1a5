package disco_test

import (
	"strings"
	"testing"

	"github.com/adhocd/adhocd/servertest"
)

// TestAccountBareJID: disco#info on a local account's bare JID, the
// requester's own or a contact's, is answered by the server on the account's
// behalf with the identity account/registered (XEP-0030 §3.1); disco#items
// with no items; a bare JID with no account behind it is
// service-unavailable (RFC 6121 §8.5.1), and an unknown node item-not-found.
func TestAccountBareJID(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "pw")
	srv.AddUser("bob", "pw")
	alice := srv.RawLogin("alice", "pw", "a")
	for _, to := range []string{"alice@localhost", "bob@localhost"} {
		alice.Write(`<iq type='get' id='i1' to='` + to + `'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
		got := alice.Expect(`<iq[^>]*id="i1"[^>]*>.*?</iq>`)
		for _, want := range []string{`from="` + to + `"`, `type="result"`, `<identity category="account" type="registered"`, `<feature var="http://jabber.org/protocol/disco#info"`} {
			if !strings.Contains(got, want) {
				t.Errorf("disco#info of %s: %s lacks %s", to, got, want)
			}
		}
		alice.Write(`<iq type='get' id='i2' to='` + to + `'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
		got = alice.Expect(`<iq[^>]*id="i2"[^>]*>.*?</iq>|<iq[^>]*id="i2"[^>]*/>`)
		if !strings.Contains(got, `type="result"`) || strings.Contains(got, `<item `) {
			t.Errorf("disco#items of %s: %s", to, got)
		}
	}
	alice.Write(`<iq type='get' id='i3' to='nobody@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if got := alice.Expect(`<iq[^>]*id="i3"[^>]*>.*?</iq>`); !strings.Contains(got, `<service-unavailable`) {
		t.Errorf("disco#info of an account that does not exist: %s", got)
	}
	alice.Write(`<iq type='get' id='i4' to='bob@localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='nothing'/></iq>`)
	if got := alice.Expect(`<iq[^>]*id="i4"[^>]*>.*?</iq>`); !strings.Contains(got, `<item-not-found`) {
		t.Errorf("disco#info of an unknown node: %s", got)
	}
	// The server JID still answers as the server.
	alice.Write(`<iq type='get' id='i5' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if got := alice.Expect(`<iq[^>]*id="i5"[^>]*>.*?</iq>`); !strings.Contains(got, `<identity category="server" type="im"`) {
		t.Errorf("disco#info of the server: %s", got)
	}
}
