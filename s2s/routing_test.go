package s2s_test

import (
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/adhoc/adhoctest"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// online logs user in on srv and sends its initial presence.
func online(t testing.TB, srv *servertest.Server, user, password string) *servertest.Client {
	t.Helper()
	srv.AddUser(user, password)
	c := srv.Dial(user, password, "")
	if err := c.SendRaw(servertest.Context(t, servertest.Wait), "<presence/>"); err != nil {
		t.Fatal(err)
	}
	return c
}

func isPresence(from, typ string) func(servertest.Stanza) bool {
	return func(s servertest.Stanza) bool {
		return s.Name == "presence" && strings.HasPrefix(s.Attrs["from"], from) && s.Attrs["type"] == typ
	}
}

// crossing is how long a stanza may take to cross to the other server,
// the first one setting up the streams.
const crossing = 15 * time.Second

// TestSubscriptionAcrossServers: alice@a.test subscribes to bob@b.test,
// bob approves; both rosters say so, each sees the other's presence, and
// the unavailable presence of a logout crosses too (RFC 6121 §3, §4).
func TestSubscriptionAcrossServers(t *testing.T) {
	a, b := pair(t, nil)
	alice, bob := online(t, a, "alice", "wonderland"), online(t, b, "bob", "builder")
	ctx := servertest.Context(t, 30*time.Second)
	send := func(c *servertest.Client, s string) {
		t.Helper()
		if err := c.SendRaw(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	send(alice, "<presence to='bob@b.test' type='subscribe'/>")
	bob.Next(crossing, isPresence("alice@a.test", "subscribe"))
	send(bob, "<presence to='alice@a.test' type='subscribed'/>")
	alice.Next(crossing, isPresence("bob@b.test", "subscribed"))
	// bob's available presence follows his approval.
	alice.Next(crossing, isPresence("bob@b.test/", ""))

	roster, err := alice.IQ(ctx, "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(roster, `jid="bob@b.test"`) || !strings.Contains(roster, `subscription="to"`) {
		t.Fatalf("alice's roster after bob approved: %s", roster)
	}
	roster, err = bob.IQ(ctx, "<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(roster, `jid="alice@a.test"`) || !strings.Contains(roster, `subscription="from"`) {
		t.Fatalf("bob's roster after he approved: %s", roster)
	}
	// bob changes his presence: alice, a subscriber on another server, is told.
	send(bob, "<presence><show>away</show></presence>")
	alice.Next(crossing, func(s servertest.Stanza) bool {
		return isPresence("bob@b.test/", "")(s) && strings.Contains(s.XML, ">away</show>")
	})
	// A logout: alice sees bob go.
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
	alice.Next(crossing, isPresence("bob@b.test/", "unavailable"))
}

// TestIQsAcrossServers: a user of a.test pings and discovers b.test, and
// reads the vCard of a user there.
func TestIQsAcrossServers(t *testing.T) {
	a, b := pair(t, nil)
	alice := online(t, a, "alice", "wonderland")
	bob := online(t, b, "bob", "builder")
	ctx := servertest.Context(t, 30*time.Second)
	if _, err := bob.IQ(ctx, "<iq type='set' id='v0'><vCard xmlns='vcard-temp'><FN>Bob the Builder</FN></vCard></iq>"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ iq, want string }{
		{"<iq type='get' to='b.test' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>", `from="b.test"`},
		{"<iq type='get' to='b.test' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", `category="server"`},
		{"<iq type='get' to='bob@b.test' id='v1'><vCard xmlns='vcard-temp'/></iq>", "Bob the Builder"},
	} {
		got, err := alice.IQ(ctx, c.iq)
		if err != nil || !strings.Contains(got, c.want) {
			t.Errorf("%s: %s (%v), want %s in it", c.iq, got, err, c.want)
		}
	}
	// An IQ to a remote full JID reaches that resource, whose answer
	// crosses back: bob's client library answers a query it does not
	// know with service-unavailable, from his full JID.
	bobJID := bob.LocalAddr().String()
	got, _ := alice.IQ(ctx, "<iq type='get' to='"+bobJID+"' id='t1'><query xmlns='urn:test:unknown'/></iq>")
	if !strings.Contains(got, `from="`+bobJID+`"`) || !strings.Contains(got, "<service-unavailable") {
		t.Errorf("an IQ to bob's full JID: %s", got)
	}
}

// TestRemoteCommands: a user of a.test lists and runs b.test's ad-hoc
// commands: only those marked Remote; never XEP-0133's.
func TestRemoteCommands(t *testing.T) {
	remote := adhoctest.Greeting()
	remote.Node, remote.Remote = "urn:test:remote-greeting", true
	a, _ := servertest.Federated(t, func(_, b *config.Config) { b.Admins = []string{"root@b.test"} },
		server.WithCommands(adhoctest.Greeting(), remote))
	alice := online(t, a, "alice", "wonderland")
	ctx := servertest.Context(t, 30*time.Second)
	items, err := alice.IQ(ctx, "<iq type='get' to='b.test' id='i1'><query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(items, remote.Node) || strings.Contains(items, adhoctest.TimeNode) || strings.Contains(items, "admin#") {
		t.Fatalf("b.test's commands for alice@a.test: %s", items)
	}
	got, err := alice.IQ(ctx, "<iq type='set' to='b.test' id='c1'><command xmlns='http://jabber.org/protocol/commands' node='"+remote.Node+"' action='execute'/></iq>")
	if err != nil || !strings.Contains(got, `status="completed"`) {
		t.Fatalf("running b.test's Remote command: %s (%v)", got, err)
	}
	for _, node := range []string{adhoctest.TimeNode, "http://jabber.org/protocol/admin#get-online-users-num"} {
		got, err := alice.IQ(ctx, "<iq type='set' to='b.test' id='c2'><command xmlns='http://jabber.org/protocol/commands' node='"+node+"' action='execute'/></iq>")
		if err == nil || !strings.Contains(got, "<forbidden") {
			t.Errorf("alice@a.test ran b.test's %s: %s (%v)", node, got, err)
		}
	}
}

// TestRemoteDown: with nothing listening at b.test's address, what a user
// addresses there comes back as remote-server-not-found: an IQ, a
// message to a bare JID and a directed presence. A subscription request
// to down.test, also unreachable, comes back as a presence error too,
// though the router sends it from the user's bare JID.
func TestRemoteDown(t *testing.T) {
	cfg := servertest.Config(t.TempDir())
	cfg.Domain = "a.test"
	cfg.S2S.Listen = "127.0.0.1:0"
	cfg.S2S.Hosts = map[string]string{"b.test": servertest.FreeAddr(t), "down.test": servertest.FreeAddr(t)}
	cfg.S2S.ConnectTimeout = config.Duration(5 * time.Second)
	a := servertest.StartConfig(t, cfg)
	alice := online(t, a, "alice", "wonderland")
	ctx := servertest.Context(t, 30*time.Second)
	start := time.Now()
	got, err := alice.IQ(ctx, "<iq type='get' to='b.test' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
	if err == nil || !strings.Contains(got, "<remote-server-not-found") {
		t.Fatalf("a ping of an unreachable server: %s (%v)", got, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the error took %v", d)
	}
	isError := func(name string) func(servertest.Stanza) bool {
		return func(s servertest.Stanza) bool {
			return s.Name == name && s.Attrs["type"] == "error" && strings.Contains(s.XML, "remote-server-not-found")
		}
	}
	for _, c := range []struct{ stanza, name string }{
		{"<message to='bob@b.test' id='m1'><body>anyone?</body></message>", "message"},
		{"<presence to='bob@b.test' id='d1'/>", "presence"},
	} {
		if err := alice.SendRaw(ctx, c.stanza); err != nil {
			t.Fatal(err)
		}
		if _, ok := alice.Wait(crossing, isError(c.name)); !ok {
			t.Errorf("%s: no remote-server-not-found error came back", c.stanza)
		}
	}
	// A subscription request goes out from alice's bare JID (RFC 6121
	// §3.1.2), so no one resource asked: the presence error reaches her
	// available resources. To down.test, the first stanza waits for the
	// stream, and is bounced when it cannot be set up; the second is
	// refused at once while the failure is remembered.
	for _, id := range []string{"s1", "s2"} {
		if err := alice.SendRaw(ctx, "<presence to='bob@down.test' type='subscribe' id='"+id+"'/>"); err != nil {
			t.Fatal(err)
		}
		e, ok := alice.Wait(crossing, func(s servertest.Stanza) bool {
			return s.Name == "presence" && s.Attrs["type"] == "error" && s.Attrs["id"] == id
		})
		switch {
		case !ok:
			t.Errorf("subscribe %s to an unreachable domain: no error came back", id)
		case e.Attrs["from"] != "bob@down.test":
			t.Errorf("subscribe %s: the error is from %q: %s", id, e.Attrs["from"], e.XML)
		case !strings.Contains(e.XML, "<remote-server-not-found") && !strings.Contains(e.XML, "<remote-server-timeout"):
			t.Errorf("subscribe %s: the error is neither remote-server-not-found nor remote-server-timeout: %s", id, e.XML)
		}
	}
	if n := len(a.S2S()); n != 0 {
		t.Errorf("streams after the failures: %+v", a.S2S())
	}
}
