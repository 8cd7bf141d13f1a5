package s2s_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// inbox keeps what a client received and the test has not looked at yet,
// so that stanzas can be taken by what they match whatever order they
// crossed the servers in.
type inbox struct {
	t       *testing.T
	name    string
	c       *servertest.Client
	pending []servertest.Stanza
}

// next removes and returns the first stanza received that match accepts,
// waiting up to crossing for it.
func (in *inbox) next(what string, match func(servertest.Stanza) bool) servertest.Stanza {
	in.t.Helper()
	deadline := time.Now().Add(crossing)
	for {
		if i := slices.IndexFunc(in.pending, match); i >= 0 {
			st := in.pending[i]
			in.pending = slices.Delete(in.pending, i, i+1)
			return st
		}
		left := time.Until(deadline)
		if left <= 0 {
			var got []string
			for _, s := range in.pending {
				got = append(got, s.XML)
			}
			in.t.Fatalf("%s: no %s within %s; received %q", in.name, what, crossing, got)
		}
		st, ok := in.c.Wait(left, nil)
		if !ok {
			continue
		}
		in.pending = append(in.pending, st)
	}
}

// statusCodes are the muc#user status codes of a stanza.
func statusCodes(s servertest.Stanza) []string {
	var x struct {
		X []struct {
			Space  string `xml:"xmlns,attr"`
			Status []struct {
				Code string `xml:"code,attr"`
			} `xml:"status"`
		} `xml:"x"`
	}
	if err := s.Decode(&x); err != nil {
		return nil
	}
	var out []string
	for _, e := range x.X {
		for _, st := range e.Status {
			out = append(out, st.Code)
		}
	}
	return out
}

// mucItem is the muc#user item of an occupant presence: affiliation,
// role and, where the room shows it, the real JID.
func mucItem(s servertest.Stanza) (affiliation, role, jid string) {
	var x struct {
		X []struct {
			Item struct {
				Affiliation string `xml:"affiliation,attr"`
				Role        string `xml:"role,attr"`
				JID         string `xml:"jid,attr"`
			} `xml:"item"`
		} `xml:"x"`
	}
	if err := s.Decode(&x); err != nil || len(x.X) == 0 {
		return "", "", ""
	}
	for _, e := range x.X {
		if e.Item.Role != "" {
			return e.Item.Affiliation, e.Item.Role, e.Item.JID
		}
	}
	return "", "", ""
}

// occupantPresence matches presence of type typ from the occupant JID
// from exactly, its status codes containing each of codes.
func occupantPresence(from, typ string, codes ...string) func(servertest.Stanza) bool {
	return func(s servertest.Stanza) bool {
		if s.Name != "presence" || s.Attrs["from"] != from || s.Attrs["type"] != typ {
			return false
		}
		got := statusCodes(s)
		for _, c := range codes {
			if !slices.Contains(got, c) {
				return false
			}
		}
		return true
	}
}

// groupchat matches a message of type typ from exactly from with body.
func groupchat(from, typ, body string) func(servertest.Stanza) bool {
	return func(s servertest.Stanza) bool {
		return s.Name == "message" && s.Attrs["from"] == from && s.Attrs["type"] == typ &&
			strings.Contains(s.XML, ">"+body+"</body>")
	}
}

// TestRemoteOccupant: bob@b.test joins a room of a.test's group chat
// service, conference.a.test, through federation (XEP-0045 §7.2: his
// server routes his join presence to the room's domain, the room sends
// occupant presence and messages back to his full JID). alice@a.test
// creates the instant room; each sees the other's occupant presence, they
// talk in the room both ways, bob's private message reaches alice through
// her occupant JID, and when bob leaves alice sees him go.
func TestRemoteOccupant(t *testing.T) {
	// b.test reaches conference.a.test where it reaches a.test, as an SRV
	// record of the service's domain would send it (the static host map
	// is per domain).
	a, b := pair(t, func(_, b *config.Config) { b.S2S.Hosts["conference.a.test"] = b.S2S.Hosts["a.test"] })
	const (
		roomJID = "r@conference.a.test"
		aliceOc = roomJID + "/alice"
		bobOc   = roomJID + "/bob"
	)
	ac, bc := online(t, a, "alice", "wonderland"), online(t, b, "bob", "builder")
	alice := &inbox{t: t, name: "alice@a.test", c: ac}
	bob := &inbox{t: t, name: "bob@b.test", c: bc}
	aliceJID, bobJID := ac.LocalAddr().String(), bc.LocalAddr().String()
	ctx := servertest.Context(t, 60*time.Second)
	send := func(c *servertest.Client, s string) {
		t.Helper()
		if err := c.SendRaw(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	// alice creates the room and accepts the default configuration
	// (XEP-0045 §10.1.2).
	send(ac, "<presence to='"+aliceOc+"'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
	self := alice.next("alice's self-presence (110, 201)", occupantPresence(aliceOc, "", "110", "201"))
	if aff, role, _ := mucItem(self); aff != "owner" || role != "moderator" {
		t.Fatalf("alice in the room she created: affiliation %q role %q: %s", aff, role, self.XML)
	}
	if got, err := ac.IQ(ctx, "<iq type='set' to='"+roomJID+"' id='cfg1'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>"); err != nil {
		t.Fatalf("accepting the default configuration: %s (%v)", got, err)
	}

	// bob, on b.test, joins: he gets alice's presence first, then his own
	// (110), and the subject; alice sees him come in.
	send(bc, "<presence to='"+bobOc+"'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
	seen := bob.next("alice's occupant presence", occupantPresence(aliceOc, ""))
	if aff, role, _ := mucItem(seen); aff != "owner" || role != "moderator" {
		t.Errorf("bob sees alice as affiliation %q role %q: %s", aff, role, seen.XML)
	}
	if slices.Contains(statusCodes(seen), "110") {
		t.Errorf("alice's presence to bob says it is his own: %s", seen.XML)
	}
	bself := bob.next("bob's self-presence (110)", occupantPresence(bobOc, "", "110"))
	if to := bself.Attrs["to"]; to != bobJID {
		t.Errorf("bob's self-presence is to %q, want %q", to, bobJID)
	}
	if aff, role, _ := mucItem(bself); aff != "none" || role != "participant" {
		t.Errorf("bob in the room: affiliation %q role %q: %s", aff, role, bself.XML)
	}
	bob.next("the room's subject", func(s servertest.Stanza) bool {
		return s.Name == "message" && s.Attrs["from"] == roomJID && strings.Contains(s.XML, "<subject")
	})
	in := alice.next("bob's occupant presence", occupantPresence(bobOc, ""))
	if slices.Contains(statusCodes(in), "110") {
		t.Errorf("bob's presence to alice says it is her own: %s", in.XML)
	}
	// alice is the room's owner: she sees bob's real JID, on b.test
	// (XEP-0045 §7.2.4, a moderator in a semi-anonymous room).
	if _, role, real := mucItem(in); role != "participant" || real != bobJID {
		t.Errorf("alice sees bob as role %q jid %q, want participant %s: %s", role, real, bobJID, in.XML)
	}

	// Group chat both ways: each message goes to every occupant, the
	// sender too, from the sender's occupant JID.
	send(ac, "<message to='"+roomJID+"' type='groupchat' id='g1'><body>hello from a</body></message>")
	got := bob.next("alice's groupchat message", groupchat(aliceOc, "groupchat", "hello from a"))
	if got.Attrs["to"] != bobJID {
		t.Errorf("alice's message to bob is addressed to %q, want %q", got.Attrs["to"], bobJID)
	}
	alice.next("the reflection of her own message", groupchat(aliceOc, "groupchat", "hello from a"))
	send(bc, "<message to='"+roomJID+"' type='groupchat' id='g2'><body>hello from b</body></message>")
	alice.next("bob's groupchat message", groupchat(bobOc, "groupchat", "hello from b"))
	bob.next("the reflection of his own message", groupchat(bobOc, "groupchat", "hello from b"))

	// A private message from bob to alice's occupant JID (XEP-0045 §7.5).
	send(bc, "<message to='"+aliceOc+"' type='chat' id='p1'><body>psst alice</body></message>")
	pm := alice.next("bob's private message", groupchat(bobOc, "chat", "psst alice"))
	if pm.Attrs["to"] != aliceJID {
		t.Errorf("bob's private message is addressed to %q, want %q", pm.Attrs["to"], aliceJID)
	}
	// And alice's answer back to bob's occupant JID crosses to b.test.
	send(ac, "<message to='"+bobOc+"' type='chat' id='p2'><body>psst bob</body></message>")
	bob.next("alice's private answer", groupchat(aliceOc, "chat", "psst bob"))

	// bob leaves: he gets his own unavailable presence (110), alice his
	// unavailable presence.
	send(bc, "<presence to='"+bobOc+"' type='unavailable'/>")
	bob.next("bob's own unavailable presence (110)", occupantPresence(bobOc, "unavailable", "110"))
	alice.next("bob's unavailable presence", occupantPresence(bobOc, "unavailable"))
	// He is no longer in the room: alice's next message reaches her alone.
	send(ac, "<message to='"+roomJID+"' type='groupchat' id='g3'><body>bob gone</body></message>")
	alice.next("the reflection of her message after bob left", groupchat(aliceOc, "groupchat", "bob gone"))
	if _, ok := bc.Wait(2*time.Second, groupchat(aliceOc, "groupchat", "bob gone")); ok {
		t.Error("bob got a room message after he left")
	}
}
