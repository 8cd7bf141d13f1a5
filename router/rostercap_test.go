package router_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// TestRosterCapCountsPendingRequests: subscription requests from several
// accounts are kept as pending items of the contact's roster, and together
// with the contact's own items they never exceed limits.max_roster_items.
// The request that does not fit is answered to its sender with a presence
// error (resource-constraint, RFC 6121 §3.1.3), the sender's roster no
// longer shows it as asked, and once the contact declines a request there
// is room for the refused one.
func TestRosterCapCountsPendingRequests(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.MaxRosterItems = 3 })
	srv.AddUser("bob", "pw")
	bob := srv.Dial("bob", "pw", "b")
	if _, err := bob.IQ(ctx(t), `<iq type='set' id='add'><query xmlns='jabber:iq:roster'><item jid='friend@localhost'/></query></iq>`); err != nil {
		t.Fatalf("bob's own item: %v", err)
	}
	// Bob is not available: the requests wait in his roster.
	var askers []*servertest.Client
	for i := range 4 {
		u := fmt.Sprintf("asker%d", i)
		srv.AddUser(u, "pw")
		askers = append(askers, srv.Dial(u, "pw", "a"))
	}
	for i, a := range askers[:2] {
		if err := a.SendRaw(ctx(t), `<presence type='subscribe' to='bob@localhost'/>`); err != nil {
			t.Fatal(err)
		}
		if it := rosterOf(t, a)["bob@localhost"]; it.Ask != "subscribe" {
			t.Fatalf("asker%d's item for bob: %+v", i, it)
		}
	}
	for i, a := range askers[2:] {
		if err := a.SendRaw(ctx(t), `<presence type='subscribe' to='bob@localhost' id='full'/>`); err != nil {
			t.Fatal(err)
		}
		got := a.Next(wait, isPresence("error", "bob@localhost"))
		if !strings.Contains(got.XML, "resource-constraint") || got.Attrs["id"] != "full" {
			t.Fatalf("asker%d's request over the cap was answered %q", i+2, got.XML)
		}
		if it, ok := rosterOf(t, a)["bob@localhost"]; ok {
			t.Fatalf("asker%d's roster keeps the refused request: %+v", i+2, it)
		}
	}
	items, _, err := srv.Store().Roster(ctx(t), "bob")
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 {
		t.Fatalf("bob's stored roster has %d items (own and pending), want the cap of 3: %+v", len(items), items)
	}
	// Bob's own additions hit the same cap, pending requests counted.
	if _, err := bob.IQ(ctx(t), `<iq type='set' id='add2'><query xmlns='jabber:iq:roster'><item jid='other@localhost'/></query></iq>`); err == nil || !strings.Contains(err.Error(), "not-allowed") {
		t.Fatalf("bob's roster set past the cap with pending requests: %v", err)
	}

	// Bob comes online, gets the two stored requests and declines one:
	// the refused asker may now ask again.
	if err := bob.SendRaw(ctx(t), `<presence/>`); err != nil {
		t.Fatal(err)
	}
	bob.Next(wait, isPresence("subscribe", "asker0@localhost"))
	bob.Next(wait, isPresence("subscribe", "asker1@localhost"))
	if err := bob.SendRaw(ctx(t), `<presence type='unsubscribed' to='asker0@localhost'/>`); err != nil {
		t.Fatal(err)
	}
	// Bob's stanzas are handled in order: once his roster is answered, the
	// decline is applied.
	rosterOf(t, bob)
	if items, _, err := srv.Store().Roster(ctx(t), "bob"); err != nil || len(items) != 2 {
		t.Fatalf("bob's stored roster after declining a request: %+v, %v", items, err)
	}
	if err := askers[2].SendRaw(ctx(t), `<presence type='subscribe' to='bob@localhost'/>`); err != nil {
		t.Fatal(err)
	}
	bob.Next(wait, isPresence("subscribe", "asker2@localhost"))
}
