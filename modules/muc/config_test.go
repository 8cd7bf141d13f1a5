package muc_test

import (
	"strings"
	"testing"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// TestServiceFromConfig: the default module table serves muc.domain
// (conference.DOMAIN unless set), listed among the server's disco items,
// and a user creates a room there; with muc.enabled off there is none.
func TestServiceFromConfig(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) { c.MUC.Domain = "rooms.localhost" })
	srv.AddUser("alice", "pw")
	alice := srv.RawLogin("alice", "pw", "r")
	alice.Write(`<iq type='get' id='i1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	if got := alice.Expect(`id=["']i1["'](?s:.*?)</iq>`); !strings.Contains(got, "rooms.localhost") {
		t.Fatalf("the server's disco items: %s", got)
	}
	alice.Write(`<presence to='lobby@rooms.localhost/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	if got := alice.Expect(`<presence[^>]*from=["']lobby@rooms.localhost/alice["'](?s:.*?)</presence>`); !strings.Contains(got, `code="201"`) && !strings.Contains(got, `code='201'`) {
		t.Fatalf("the creator's presence: %s", got)
	}

	off := servertest.Start(t, func(c *config.Config) { c.MUC.Enabled = false })
	off.AddUser("bob", "pw")
	bob := off.RawLogin("bob", "pw", "r")
	bob.Write(`<iq type='get' id='i2' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	if got := bob.Expect(`id=["']i2["'](?s:.*?)</iq>|id=["']i2["'][^>]*/>`); strings.Contains(got, "conference.localhost") {
		t.Fatalf("disco items with muc.enabled off: %s", got)
	}
	bob.Write(`<iq type='get' id='i3' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if got := bob.Expect(`id=["']i3["'](?s:.*?)</iq>`); !strings.Contains(got, "remote-server-not-found") {
		t.Fatalf("the service with muc.enabled off: %s", got)
	}
}
