package c2s_test

import (
	"strings"
	"testing"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// TestAdminReservedConnections: with max_connections held by idle
// connections, an administrator still gets in on a reserved connection and
// can work; an ordinary account on one is refused with resource-constraint
// once it has authenticated; past the reserved ones, nobody is admitted.
func TestAdminReservedConnections(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) {
		c.Limits.MaxConnections, c.Limits.AdminReservedConnections = 2, 1
		c.Admins = []string{"root@localhost"}
	})
	srv.AddUser("root", "toor")
	srv.AddUser("alice", "wonderland")
	for range 2 {
		idle := srv.RawDial()
		idle.Write(servertest.Header)
		idle.Expect(`</stream:features>`)
	}

	alice := srv.RawDial()
	alice.StartTLS(srv.ClientTLS)
	alice.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHdvbmRlcmxhbmQ=</auth>`)
	if got, _ := alice.ClosedByServer(servertest.Wait); !strings.Contains(got, "<resource-constraint") || strings.Contains(got, "<success") {
		t.Fatalf("an ordinary account on a reserved connection got %q", got)
	}

	root := srv.RawLogin("root", "toor", "console")
	root.Write(`<iq type='set' id='st' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='urn:adhocd:admin#status' action='execute'/></iq>`)
	if got := root.Expect(`id="st"[^>]*>.*</iq>`); !strings.Contains(got, `status="completed"`) {
		t.Fatalf("the administrator's command on a reserved connection: %s", got)
	}

	extra := srv.RawDial()
	if got, _ := extra.ClosedByServer(servertest.Wait); !strings.Contains(got, "<resource-constraint") {
		t.Fatalf("a connection past the reserved ones got %q", got)
	}
}
