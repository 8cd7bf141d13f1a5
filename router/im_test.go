package router_test

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
)

const wait = servertest.Wait

func ctx(t *testing.T) context.Context { return servertest.Context(t, wait) }

func TestLoginMechanisms(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "wonderland")
	for _, m := range []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha1Plus, sasl.ScramSha256, sasl.ScramSha1, sasl.Plain} {
		t.Run(m.Name, func(t *testing.T) {
			c := srv.Dial("alice", "wonderland", "", servertest.WithMechanisms(m))
			if got := c.LocalAddr(); got.Bare().String() != "alice@localhost" || got.Resourcepart() == "" {
				t.Fatalf("bound JID %q", got)
			}
			if _, err := srv.DialErr("alice", "wrong", "", servertest.WithMechanisms(m)); err == nil {
				t.Fatalf("%s accepted a wrong password", m.Name)
			}
		})
	}
	t.Run("requested resource", func(t *testing.T) {
		r := srv.RawLogin("alice", "wonderland", "Tablet")
		r.Write(`<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
		if got := r.Expect(`id="p"[^>]*/>`); !strings.Contains(got, `to="alice@localhost/Tablet"`) {
			t.Fatalf("reply not addressed to the requested resource: %q", got)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		if _, err := srv.DialErr("nobody", "wonderland", ""); err == nil {
			t.Fatal("an unknown user logged in")
		}
	})
	t.Run("disabled account", func(t *testing.T) {
		srv.AddUser("carol", "secret")
		err := srv.Store().UpdateAccount(ctx(t), "carol", func(a *storage.Account) error { a.Disabled = true; return nil })
		if err != nil {
			t.Fatal(err)
		}
		r := srv.RawDial()
		r.StartTLS(srv.ClientTLS)
		r.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGNhcm9sAHNlY3JldA==</auth>`)
		if got := r.Expect(`</failure>`); !strings.Contains(got, "<account-disabled/>") {
			t.Fatalf("want account-disabled, got %q", got)
		}
	})
}

func isPresence(typ, from string) func(servertest.Stanza) bool {
	return func(s servertest.Stanza) bool {
		return s.Name == "presence" && s.Attrs["type"] == typ && strings.HasPrefix(s.Attrs["from"], from)
	}
}

// online sends initial presence and waits until the server has processed it
// (the presence comes back to the client itself), so that stanzas that need
// the client to be available are not raced against it.
func online(t *testing.T, c *servertest.Client) {
	t.Helper()
	if err := c.SendRaw(ctx(t), `<presence/>`); err != nil {
		t.Fatal(err)
	}
	c.Next(wait, isPresence("", c.LocalAddr().String()))
}

func isMessage(body string) func(servertest.Stanza) bool {
	return func(s servertest.Stanza) bool {
		return s.Name == "message" && strings.Contains(s.XML, ">"+body+"</body>")
	}
}

// rosterItem is a roster item as a client sees it, ask included.
type rosterItem struct {
	JID          string   `xml:"jid,attr"`
	Name         string   `xml:"name,attr"`
	Subscription string   `xml:"subscription,attr"`
	Ask          string   `xml:"ask,attr"`
	Group        []string `xml:"group"`
}

func rosterOf(t *testing.T, c *servertest.Client) map[string]rosterItem {
	t.Helper()
	reply, err := c.IQ(ctx(t), `<iq type='get' id='r`+time.Now().Format("150405.000000")+`'><query xmlns='jabber:iq:roster'/></iq>`)
	if err != nil {
		t.Fatalf("roster get: %v", err)
	}
	var iq struct {
		Query struct {
			Ver   string       `xml:"ver,attr"`
			Items []rosterItem `xml:"item"`
		} `xml:"jabber:iq:roster query"`
	}
	if err := xml.Unmarshal([]byte(reply), &iq); err != nil {
		t.Fatalf("roster reply %q: %v", reply, err)
	}
	out := map[string]rosterItem{}
	for _, it := range iq.Query.Items {
		out[it.JID] = it
	}
	return out
}

// TestSubscriptionPresenceAndChat walks two users through RFC 6121: they
// subscribe to each other, see each other's presence, exchange messages, and
// see each other leave.
func TestSubscriptionPresenceAndChat(t *testing.T) {
	srv, alice, bob := servertest.TwoUsers(t)
	rosterOf(t, alice)
	rosterOf(t, bob)
	online(t, alice)
	online(t, bob)

	// Alice asks; bob sees the request and approves; alice's roster says "to".
	if err := alice.SendRaw(ctx(t), `<presence type='subscribe' to='bob@localhost'/>`); err != nil {
		t.Fatal(err)
	}
	req := bob.Next(wait, isPresence("subscribe", "alice@localhost"))
	if req.Attrs["from"] != "alice@localhost" {
		t.Fatalf("subscription request from %q, want the bare JID", req.Attrs["from"])
	}
	if it := rosterOf(t, alice)["bob@localhost"]; it.Subscription != "none" || it.Ask != "subscribe" {
		t.Fatalf("alice's item for bob while pending: %+v", it)
	}
	if err := bob.SendRaw(ctx(t), `<presence type='subscribed' to='alice@localhost'/>`); err != nil {
		t.Fatal(err)
	}
	alice.Next(wait, isPresence("subscribed", "bob@localhost"))
	// Approval brings bob's current presence to alice.
	alice.Next(wait, isPresence("", bob.LocalAddr().String()))
	if it := rosterOf(t, alice)["bob@localhost"]; it.Subscription != "to" || it.Ask != "" {
		t.Fatalf("alice's item for bob after approval: %+v", it)
	}
	if it := rosterOf(t, bob)["alice@localhost"]; it.Subscription != "from" {
		t.Fatalf("bob's item for alice after approval: %+v", it)
	}

	// And the other way round: both end at "both".
	if err := bob.SendRaw(ctx(t), `<presence type='subscribe' to='alice@localhost'/>`); err != nil {
		t.Fatal(err)
	}
	alice.Next(wait, isPresence("subscribe", "bob@localhost"))
	if err := alice.SendRaw(ctx(t), `<presence type='subscribed' to='bob@localhost'/>`); err != nil {
		t.Fatal(err)
	}
	bob.Next(wait, isPresence("subscribed", "alice@localhost"))
	if a, b := rosterOf(t, alice)["bob@localhost"], rosterOf(t, bob)["alice@localhost"]; a.Subscription != "both" || b.Subscription != "both" {
		t.Fatalf("after mutual subscription: alice has %+v, bob has %+v", a, b)
	}

	// Presence updates reach the subscribed contact.
	if err := alice.SendRaw(ctx(t), `<presence><show>away</show><status>lunch</status></presence>`); err != nil {
		t.Fatal(err)
	}
	p := bob.Next(wait, func(s servertest.Stanza) bool {
		return s.Name == "presence" && strings.Contains(s.XML, "lunch")
	})
	if p.Attrs["from"] != alice.LocalAddr().String() {
		t.Fatalf("presence from %q", p.Attrs["from"])
	}

	// Messages to the bare JID and to the full JID.
	if err := alice.SendRaw(ctx(t), `<message type='chat' to='bob@localhost'><body>hello bob</body></message>`); err != nil {
		t.Fatal(err)
	}
	m := bob.Next(wait, isMessage("hello bob"))
	if m.Attrs["from"] != alice.LocalAddr().String() || m.Attrs["to"] != "bob@localhost" {
		t.Fatalf("message addressed %q -> %q", m.Attrs["from"], m.Attrs["to"])
	}
	if err := bob.SendRaw(ctx(t), `<message type='chat' to='`+alice.LocalAddr().String()+`'><body>hi alice</body></message>`); err != nil {
		t.Fatal(err)
	}
	alice.Next(wait, isMessage("hi alice"))

	// A presence probe answered with bob's presence.
	if err := alice.SendRaw(ctx(t), `<presence type='probe' to='bob@localhost'/>`); err != nil {
		t.Fatal(err)
	}
	alice.Next(wait, isPresence("", bob.LocalAddr().String()))

	// Bob leaves: alice is told.
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
	alice.Next(wait, isPresence("unavailable", bob.LocalAddr().String()))

	// Alice cancels her subscription: both rosters drop a direction.
	if err := alice.SendRaw(ctx(t), `<presence type='unsubscribe' to='bob@localhost'/>`); err != nil {
		t.Fatal(err)
	}
	if it := rosterOf(t, alice)["bob@localhost"]; it.Subscription != "from" {
		t.Fatalf("alice's item after unsubscribe: %+v", it)
	}
	items, _, err := srv.Store().Roster(ctx(t), "bob")
	if err != nil || len(items) != 1 || items[0].Subscription != storage.SubTo {
		t.Fatalf("bob's stored roster after alice unsubscribed: %+v, %v", items, err)
	}
}

func TestPendingSubscriptionDeliveredAtLogin(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	alice := srv.Dial("alice", "wonderland", "a")
	if err := alice.SendRaw(ctx(t), `<presence/>`); err != nil {
		t.Fatal(err)
	}
	if err := alice.SendRaw(ctx(t), `<presence type='subscribe' to='bob@localhost'><status>it is alice</status></presence>`); err != nil {
		t.Fatal(err)
	}
	// Bob is offline; the request waits. It is not a roster item of his.
	bob := srv.Dial("bob", "builder", "b")
	if got := rosterOf(t, bob); len(got) != 0 {
		t.Fatalf("a pending request shows in bob's roster: %+v", got)
	}
	if err := bob.SendRaw(ctx(t), `<presence/>`); err != nil {
		t.Fatal(err)
	}
	req := bob.Next(wait, isPresence("subscribe", "alice@localhost"))
	if !strings.Contains(req.XML, "it is alice") {
		t.Fatalf("the stored request lost its status: %q", req.XML)
	}
	// Bob refuses: alice's pending ask is cleared.
	if err := bob.SendRaw(ctx(t), `<presence type='unsubscribed' to='alice@localhost'/>`); err != nil {
		t.Fatal(err)
	}
	alice.Next(wait, isPresence("unsubscribed", "bob@localhost"))
	if it := rosterOf(t, alice)["bob@localhost"]; it.Subscription != "none" || it.Ask != "" {
		t.Fatalf("alice's item after refusal: %+v", it)
	}
}

func TestSubscribeToUnknownUser(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "wonderland")
	alice := srv.Dial("alice", "wonderland", "a")
	rosterOf(t, alice)
	if err := alice.SendRaw(ctx(t), `<presence/>`); err != nil {
		t.Fatal(err)
	}
	if err := alice.SendRaw(ctx(t), `<presence type='subscribe' to='ghost@localhost'/>`); err != nil {
		t.Fatal(err)
	}
	alice.Next(wait, isPresence("unsubscribed", "ghost@localhost"))
}

func TestMessageToHighestPriority(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	alice := srv.Dial("alice", "wonderland", "a")
	low := srv.Dial("bob", "builder", "low")
	high := srv.Dial("bob", "builder", "high")
	hidden := srv.Dial("bob", "builder", "negative")
	for c, prio := range map[*servertest.Client]string{low: "1", high: "5", hidden: "-1"} {
		if err := c.SendRaw(ctx(t), `<presence><priority>`+prio+`</priority></presence>`); err != nil {
			t.Fatal(err)
		}
	}
	high.Next(wait, isPresence("", low.LocalAddr().String())) // every resource is up
	if err := alice.SendRaw(ctx(t), `<message type='chat' to='bob@localhost'><body>to the best</body></message>`); err != nil {
		t.Fatal(err)
	}
	high.Next(wait, isMessage("to the best"))
	if _, ok := low.Wait(300*time.Millisecond, isMessage("to the best")); ok {
		t.Fatal("the lower-priority resource got the message too")
	}
	if _, ok := hidden.Wait(100*time.Millisecond, isMessage("to the best")); ok {
		t.Fatal("the negative-priority resource got the message")
	}
	// A full JID reaches exactly that resource, whatever its priority.
	if err := alice.SendRaw(ctx(t), `<message type='chat' to='`+hidden.LocalAddr().String()+`'><body>direct</body></message>`); err != nil {
		t.Fatal(err)
	}
	hidden.Next(wait, isMessage("direct"))
	// Headlines go to every non-negative resource.
	if err := alice.SendRaw(ctx(t), `<message type='headline' to='bob@localhost'><body>news</body></message>`); err != nil {
		t.Fatal(err)
	}
	high.Next(wait, isMessage("news"))
	low.Next(wait, isMessage("news"))
}

// TestOfflineMessages: chat messages with a body to an account with no
// available resource are kept and delivered, in order and stamped, at its
// next available presence, once; a message without a body is answered
// service-unavailable; kept messages survive a restart.
func TestOfflineMessages(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	alice := srv.RawLogin("alice", "wonderland", "raw")
	alice.Write(`<message id='m1' type='chat' to='bob@localhost'><body>one</body></message>` +
		`<message id='m2' to='bob@localhost'><body>two &amp; more</body></message>` +
		`<message id='m3' type='chat' to='bob@localhost'><active xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	got := alice.Expect(`</message>`)
	if !strings.Contains(got, `id="m3"`) || !strings.Contains(got, "<service-unavailable") || strings.Contains(got, `id="m1"`) || strings.Contains(got, `id="m2"`) {
		t.Fatalf("want only the bodiless message bounced, got %q", got)
	}
	before := time.Now().UTC().Add(-time.Second)

	srv = srv.Restart()
	bob := srv.RawLogin("bob", "builder", "phone")
	if out, ok := bob.ReadUntil(`<message`, 300*time.Millisecond); ok {
		t.Fatalf("messages delivered before any presence: %q", out)
	}
	bob.Write(`<presence/>`)
	out := bob.Expect(`two &amp; more</body>.*</message>`)
	first, second := strings.Index(out, ">one<"), strings.Index(out, "two &amp; more")
	if first < 0 || second < first {
		t.Fatalf("want both messages in order, got %q", out)
	}
	if strings.Count(out, `<delay xmlns="urn:xmpp:delay" from="localhost" stamp="`) != 2 || !strings.Contains(out, `from="alice@localhost/raw"`) {
		t.Fatalf("want each message from alice with a delay stamped by the server, got %q", out)
	}
	stamp := out[strings.Index(out, `stamp="`)+len(`stamp="`):]
	stamp = stamp[:strings.Index(stamp, `"`)]
	if at, err := time.Parse(time.RFC3339, stamp); err != nil || at.Before(before) || at.After(time.Now()) {
		t.Fatalf("delay stamp %q (%v): want the time the server received it", stamp, err)
	}
	tablet := srv.RawLogin("bob", "builder", "tablet")
	tablet.Write(`<presence/>`)
	if out, ok := tablet.ReadUntil(`<body`, 500*time.Millisecond); ok {
		t.Fatalf("offline messages delivered twice: %q", out)
	}
}

// TestOfflineMessagesNegativePriority: a session with a negative priority
// gets no offline messages; they come when it raises its priority.
func TestOfflineMessagesNegativePriority(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	alice := srv.RawLogin("alice", "wonderland", "raw")
	alice.Write(`<message id='m1' type='chat' to='bob@localhost'><body>later</body></message>`)
	bob := srv.RawLogin("bob", "builder", "hidden")
	bob.Write(`<presence><priority>-1</priority></presence>`)
	if out, ok := bob.ReadUntil(`>later<`, 500*time.Millisecond); ok {
		t.Fatalf("delivered at negative priority: %q", out)
	}
	bob.Write(`<presence><priority>1</priority></presence>`)
	bob.Expect(`>later</body>`)
}

// TestOfflineMessagesLimit: beyond limits.max_offline_messages the sender is
// told; with 0 nothing is kept and msgoffline is not advertised.
func TestOfflineMessagesLimit(t *testing.T) {
	for _, limit := range []int{0, 2} {
		srv := servertest.Start(t, func(c *config.Config) { c.Limits.MaxOfflineMessages = limit })
		srv.AddUser("alice", "wonderland")
		srv.AddUser("bob", "builder")
		alice := srv.RawLogin("alice", "wonderland", "raw")
		alice.Write(`<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
		info := alice.Expect(`</iq>`)
		if strings.Contains(info, `var="msgoffline"`) != (limit > 0) {
			t.Errorf("limit %d: disco#info %q", limit, info)
		}
		for i := range limit + 1 {
			alice.Write(fmt.Sprintf(`<message id='m%d' type='chat' to='bob@localhost'><body>n%d</body></message>`, i, i))
		}
		got := alice.Expect(`</message>`)
		if !strings.Contains(got, fmt.Sprintf(`id="m%d"`, limit)) || !strings.Contains(got, "<service-unavailable") || strings.Count(got, "<message") != 1 {
			t.Errorf("limit %d: want only message %d bounced, got %q", limit, limit, got)
		}
		bob := srv.RawLogin("bob", "builder", "phone")
		bob.Write(`<presence/>`)
		if limit > 0 {
			out := bob.Expect(fmt.Sprintf(`>n%d</body>`, limit-1))
			if strings.Count(out, "<delay") != limit {
				t.Errorf("limit %d: bob got %q", limit, out)
			}
		} else if out, ok := bob.ReadUntil(`<body`, 300*time.Millisecond); ok {
			t.Errorf("limit 0: bob got %q", out)
		}
	}
}

func TestResourceConflict(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "wonderland")
	old := srv.RawLogin("alice", "wonderland", "desk")
	srv.RawLogin("alice", "wonderland", "desk")
	got, _ := old.ClosedByServer(wait)
	if !strings.Contains(got, "<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>") {
		t.Fatalf("the replaced session got %q", got)
	}
}

func TestMaxSessionsPerAccount(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.MaxSessionsPerAccount = 2 })
	srv.AddUser("alice", "wonderland")
	srv.Dial("alice", "wonderland", "")
	srv.RawLogin("alice", "wonderland", "two")
	r := srv.RawDial()
	r.StartTLS(srv.ClientTLS)
	r.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHdvbmRlcmxhbmQ=</auth>`)
	r.Expect(`<success`)
	r.Write(servertest.Header)
	r.Expect(`</stream:features>`)
	r.Write(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>three</resource></bind></iq>`)
	if got := r.Expect(`</iq>`); !strings.Contains(got, "<resource-constraint") {
		t.Fatalf("third session: %q", got)
	}
	// The same resource again is a replacement, not a new session.
	srv.RawLogin("alice", "wonderland", "two")
}

func TestMaxConnections(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.MaxConnections, c.Limits.AdminReservedConnections = 2, 0 })
	srv.AddUser("alice", "wonderland")
	a, b := srv.RawDial(), srv.RawDial()
	a.Write(servertest.Header)
	b.Write(servertest.Header)
	a.Expect(`</stream:features>`)
	b.Expect(`</stream:features>`)
	c := srv.RawDial()
	got, _ := c.ClosedByServer(wait)
	if !strings.Contains(got, "<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>") {
		t.Fatalf("third connection got %q", got)
	}
	a.Close()
	// A freed slot is usable again.
	srv.EventuallyDial(t, "alice", "wonderland")
}

func TestRoster(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.MaxRosterItems = 2 })
	srv.AddUser("alice", "wonderland")
	alice := srv.Dial("alice", "wonderland", "a")
	other := srv.Dial("alice", "wonderland", "b")
	rosterOf(t, other) // b is now interested in pushes

	set := func(item string) (string, error) {
		return alice.IQ(ctx(t), `<iq type='set' id='s`+time.Now().Format("150405.000000")+`'><query xmlns='jabber:iq:roster'>`+item+`</query></iq>`)
	}
	if _, err := set(`<item jid='bob@localhost' name='Bob'><group>Friends</group><group>Work</group></item>`); err != nil {
		t.Fatalf("roster set: %v", err)
	}
	push := other.Next(wait, func(s servertest.Stanza) bool { return s.Name == "iq" && strings.Contains(s.XML, "bob@localhost") })
	if !strings.Contains(push.XML, "Friends") || push.Attrs["type"] != "set" {
		t.Fatalf("push %q", push.XML)
	}
	it := rosterOf(t, alice)["bob@localhost"]
	if it.Name != "Bob" || len(it.Group) != 2 || it.Subscription != "none" {
		t.Fatalf("stored item %+v", it)
	}

	// Roster versioning: the current version gives an empty result.
	reply, err := alice.IQ(ctx(t), `<iq type='get' id='v1'><query xmlns='jabber:iq:roster' ver='0'/></iq>`)
	if err != nil || !strings.Contains(reply, "bob@localhost") {
		t.Fatalf("stale version: %q %v", reply, err)
	}
	var cur struct {
		Query struct {
			Ver string `xml:"ver,attr"`
		} `xml:"query"`
	}
	if err := xml.Unmarshal([]byte(reply), &cur); err != nil || cur.Query.Ver == "" {
		t.Fatalf("no version in %q", reply)
	}
	reply, err = alice.IQ(ctx(t), `<iq type='get' id='v2'><query xmlns='jabber:iq:roster' ver='`+cur.Query.Ver+`'/></iq>`)
	if err != nil || strings.Contains(reply, "<item") || strings.Contains(reply, "query") {
		t.Fatalf("current version should give an empty result: %q %v", reply, err)
	}

	for _, tc := range []struct{ name, item, cond string }{
		{"duplicate group", `<item jid='c@localhost'><group>A</group><group>A</group></item>`, "bad-request"},
		{"empty group", `<item jid='c@localhost'><group></group></item>`, "not-acceptable"},
		{"no jid", `<item name='x'/>`, "bad-request"},
		{"two items", `<item jid='c@localhost'/><item jid='d@localhost'/>`, "bad-request"},
		{"own JID", `<item jid='alice@localhost'/>`, "not-allowed"},
		{"remove unknown", `<item jid='nobody@localhost' subscription='remove'/>`, "item-not-found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := set(tc.item)
			if err == nil || !strings.Contains(err.Error(), tc.cond) {
				t.Fatalf("want %s, got %v", tc.cond, err)
			}
		})
	}
	if _, err := set(`<item jid='carol@localhost'/>`); err != nil {
		t.Fatal(err)
	}
	if _, err := set(`<item jid='dave@localhost'/>`); err == nil || !strings.Contains(err.Error(), "not-allowed") {
		t.Fatalf("a roster over max_roster_items: %v", err)
	}
	if _, err := set(`<item jid='bob@localhost' subscription='remove'/>`); err != nil {
		t.Fatal(err)
	}
	other.Next(wait, func(s servertest.Stanza) bool { return strings.Contains(s.XML, `subscription="remove"`) })
	if _, ok := rosterOf(t, alice)["bob@localhost"]; ok {
		t.Fatal("removed item still in the roster")
	}
}

func TestDiscoPingVersion(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "wonderland")
	c := srv.Dial("alice", "wonderland", "a")
	reply, err := c.IQ(ctx(t), `<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if err != nil || !strings.Contains(reply, `type="result"`) {
		t.Fatalf("ping: %q %v", reply, err)
	}
	reply, err = c.IQ(ctx(t), `<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if err != nil {
		t.Fatalf("disco#info: %v", err)
	}
	for _, want := range []string{`category="server"`, `type="im"`, `var="urn:xmpp:ping"`, `var="jabber:iq:version"`, `var="http://jabber.org/protocol/disco#items"`} {
		if !strings.Contains(reply, want) {
			t.Errorf("disco#info lacks %s: %q", want, reply)
		}
	}
	reply, err = c.IQ(ctx(t), `<iq type='get' id='d2' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	if err != nil || !strings.Contains(reply, "disco#items") {
		t.Fatalf("disco#items: %q %v", reply, err)
	}
	_, err = c.IQ(ctx(t), `<iq type='get' id='d3' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='urn:nothing'/></iq>`)
	if err == nil || !strings.Contains(err.Error(), "item-not-found") {
		t.Fatalf("unknown node: %v", err)
	}
	reply, err = c.IQ(ctx(t), `<iq type='get' id='v1' to='localhost'><query xmlns='jabber:iq:version'/></iq>`)
	if err != nil || !strings.Contains(reply, "adhocd") {
		t.Fatalf("version: %q %v", reply, err)
	}
	// A ping with no 'to' is answered by the server too.
	reply, err = c.IQ(ctx(t), `<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if err != nil || !strings.Contains(reply, `type="result"`) {
		t.Fatalf("ping without to: %q %v", reply, err)
	}
	// Legacy session establishment is accepted.
	if _, err := c.IQ(ctx(t), `<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`); err != nil {
		t.Fatalf("session: %v", err)
	}
}

func TestGracefulShutdown(t *testing.T) {
	servertest.Embedded(t) // the bbolt file, unlocked at shutdown
	srv := servertest.Start(t)
	srv.AddUser("alice", "wonderland")
	r := srv.RawLogin("alice", "wonderland", "raw")
	if err := srv.Stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	got, _ := r.ClosedByServer(wait)
	if !strings.Contains(got, "<system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>") || !strings.HasSuffix(got, "</stream:stream>") {
		t.Fatalf("client got %q", got)
	}
	// The store was closed cleanly: another process can open it at once and
	// finds the account and its last logout.
	st, err := storage.Open(srv.Dir, time.Second)
	if err != nil {
		t.Fatalf("store still locked after shutdown: %v", err)
	}
	defer st.Close()
	a, err := st.Account(ctx(t), "alice")
	if err != nil || a.LastLogout.IsZero() || a.LastLogin.IsZero() {
		t.Fatalf("account after shutdown: %+v %v", a, err)
	}
	if _, err := os.Stat(filepath.Join(srv.Dir, "control.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("control socket left behind: %v", err)
	}
}

func TestSelfSignedCertificateKept(t *testing.T) {
	srv := servertest.Start(t)
	first, err := os.ReadFile(filepath.Join(srv.Dir, "selfsigned-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	srv2 := srv.Restart()
	second, err := os.ReadFile(filepath.Join(srv2.Dir, "selfsigned-cert.pem"))
	if err != nil || string(first) != string(second) {
		t.Fatalf("certificate regenerated across restart (%v)", err)
	}
	srv2.AddUser("alice", "wonderland")
	srv2.Dial("alice", "wonderland", "")
}

// TestDirectedPresence: presence sent to a JID outside the roster reaches it,
// and so does the unavailable presence when the sender leaves (RFC 6121 §4.6).
func TestDirectedPresence(t *testing.T) {
	_, alice, bob := servertest.TwoUsers(t)
	online(t, bob)
	online(t, alice)
	if err := alice.SendRaw(ctx(t), `<presence to='bob@localhost'><status>knock knock</status></presence>`); err != nil {
		t.Fatal(err)
	}
	p := bob.Next(wait, func(s servertest.Stanza) bool { return s.Name == "presence" && strings.Contains(s.XML, "knock knock") })
	if p.Attrs["from"] != alice.LocalAddr().String() {
		t.Fatalf("directed presence from %q", p.Attrs["from"])
	}
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	bob.Next(wait, isPresence("unavailable", alice.LocalAddr().String()))
}

// TestDirectedPresenceToRemoteDomain: without federation a directed
// presence to another domain comes back as a presence error,
// remote-server-not-found (cancel), from the address it was sent to and
// with the id the sender gave it; it used to go nowhere, silently.
func TestDirectedPresenceToRemoteDomain(t *testing.T) {
	_, alice, _ := servertest.TwoUsers(t)
	online(t, alice)
	if err := alice.SendRaw(ctx(t), `<presence to='juliet@capulet.example' id='dp1'><status>hello</status></presence>`); err != nil {
		t.Fatal(err)
	}
	p := alice.Next(wait, func(s servertest.Stanza) bool { return s.Name == "presence" && s.Attrs["type"] == "error" })
	if p.Attrs["id"] != "dp1" || p.Attrs["from"] != "juliet@capulet.example" || !strings.Contains(p.XML, "<remote-server-not-found") || !strings.Contains(p.XML, "type='cancel'") && !strings.Contains(p.XML, `type="cancel"`) {
		t.Fatalf("directed presence to another domain: %s", p.XML)
	}
}

func TestIdleTimeout(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.IdleTimeout = config.Duration(300 * time.Millisecond) })
	srv.AddUser("alice", "wonderland")
	r := srv.RawLogin("alice", "wonderland", "idle")
	got, _ := r.ClosedByServer(wait)
	if !strings.Contains(got, "<connection-timeout xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>") {
		t.Fatalf("idle session got %q", got)
	}
}
