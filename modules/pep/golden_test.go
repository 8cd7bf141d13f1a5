package pep_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
)

// XEP-0163 (version 1.2.2) and XEP-0060 (version 1.30.0) examples as
// golden cases. What the clients send is the XEP's example as printed, its
// JIDs made this server's (capulet.lit, montague.lit and denmark.lit are
// localhost; pubsub.shakespeare.lit, the XEP-0060 service, is the owner's
// PEP service, its bare JID); each answer must have the shape of the
// XEP's example but for what only the server knows (the ids it gives
// messages and items), which is checked for what it must be instead.

// xep163JIDs makes the examples' JIDs this server's.
var xep163JIDs = strings.NewReplacer("@capulet.lit", "@localhost", "@montague.lit", "@localhost",
	"hamlet@denmark.lit", "juliet@localhost", "francisco@denmark.lit", "romeo@localhost", "pubsub.shakespeare.lit", "juliet@localhost")

// pepSession is a raw client that answers the server's caps queries with
// the XEP's disco#info of Romeo's client, and what it receives.
type pepSession struct {
	raw *servertest.Raw
	in  *servertest.Inbox[*servertest.Node]
	jid string
	// lastSeen is the last item the session got when it came online.
	lastSeen *servertest.Node
}

// delayStamp is the stamp of the XEP-0203 <delay/> of a message, a
// XEP-0082 DateTime.
func delayStamp(t *testing.T, msg *servertest.Node) time.Time {
	t.Helper()
	for _, k := range msg.Kids {
		if k.Name.Space == "urn:xmpp:delay" && k.Name.Local == "delay" {
			st, err := time.Parse(time.RFC3339Nano, k.Attr["stamp"])
			if err != nil {
				t.Fatalf("the delay of %s: %v", msg.Canon(), err)
			}
			return st
		}
	}
	t.Fatalf("no <delay/> in %s", msg.Canon())
	return time.Time{}
}

func pepLogin(t *testing.T, srv *servertest.Server, user, resource string) *pepSession {
	t.Helper()
	s := &pepSession{raw: srv.RawLogin(user, "pw", resource), jid: user + "@localhost/" + resource}
	s.in = servertest.NewInbox(t, s.raw, s.jid, func(el string) (*servertest.Node, error) {
		els := servertest.ParseXML(t, el)
		if len(els) != 1 {
			return nil, fmt.Errorf("%d elements in %q", len(els), el)
		}
		return els[0], nil
	})
	return s
}

func (s *pepSession) send(example string) { s.raw.Write(xep163JIDs.Replace(example)) }

// available sends XEP-0163 §4.3.3's "Subscriber sends presence from
// newly-available resource" and answers the server's caps query (XEP-0115
// §6.2) with §4.2's "Disco#info result from extension": the XEP's hash is
// not that disco#info's, so the server asks every session that sends it.
func (s *pepSession) available(t *testing.T) {
	t.Helper()
	s.raw.Write(`<presence>
  <c xmlns='http://jabber.org/protocol/caps'
     hash='sha-1'
     node='http://www.chatopus.com'
     ver='zHyEOgxTrkpSdGcQKH8EFPLsriY='/>
</presence>`)
	q := s.in.Next("the caps query", func(n *servertest.Node) bool {
		return n.Name.Local == "iq" && n.Attr["type"] == "get" && len(n.Kids) == 1 && n.Kids[0].Name.Space == "http://jabber.org/protocol/disco#info"
	})
	if node := q.Kids[0].Attr["node"]; node != "http://www.chatopus.com#zHyEOgxTrkpSdGcQKH8EFPLsriY=" {
		t.Errorf("caps query for node %q", node)
	}
	s.raw.Write(`<iq to='` + q.Attr["from"] + `'
    type='result'
    id='` + q.Attr["id"] + `'>
  <query xmlns='http://jabber.org/protocol/disco#info' node='` + q.Kids[0].Attr["node"] + `'>
    <identity category='client' name='Exodus 0.9.1' type='pc'/>
    <feature var='http://jabber.org/protocol/disco#info'/>
    <feature var='http://jabber.org/protocol/disco#items'/>
    <feature var='http://jabber.org/protocol/geoloc'/>
    <feature var='http://jabber.org/protocol/geoloc+notify'/>
    <feature var='http://jabber.org/protocol/tune'/>
    <feature var='http://jabber.org/protocol/tune+notify'/>
  </query>
</iq>`)
}

// answerTo is the IQ with id the session received.
func (s *pepSession) answerTo(id string) *servertest.Node {
	return s.in.Next("the answer to "+id, func(n *servertest.Node) bool {
		return n.Name.Local == "iq" && n.Attr["id"] == id && (n.Attr["type"] == "result" || n.Attr["type"] == "error")
	})
}

// event is the next PEP notification the session received.
func (s *pepSession) event(what string) *servertest.Node {
	return s.in.Next(what, func(n *servertest.Node) bool {
		return n.Name.Local == "message" && len(n.Kids) > 0 && n.Kids[0].Name.Space == "http://jabber.org/protocol/pubsub#event"
	})
}

// pepShape is a copy of n with the attributes in vary ("element@attr")
// kept for their presence only, those in drop left out, and the elements
// in omit ("{namespace}local") left out, at any depth.
func pepShape(n *servertest.Node, vary, drop, omit []string) *servertest.Node {
	c := *n
	c.Attr = map[string]string{}
	for k, v := range n.Attr {
		switch key := n.Name.Local + "@" + k; {
		case slices.Contains(drop, key):
			continue
		case slices.Contains(vary, key):
			v = "…"
		}
		c.Attr[k] = v
	}
	c.Kids = nil
	for _, k := range n.Kids {
		if !slices.Contains(omit, "{"+k.Name.Space+"}"+k.Name.Local) {
			c.Kids = append(c.Kids, pepShape(k, vary, drop, omit))
		}
	}
	return &c
}

// likeXEP compares got with the XEP's example want, its JIDs made this
// server's; drop applies to got alone (what the server adds), vary and
// omit to both.
func likeXEP(t *testing.T, what string, got *servertest.Node, want string, vary, drop, omit []string) {
	t.Helper()
	els := servertest.ParseXML(t, xep163JIDs.Replace(want))
	if len(els) != 1 {
		t.Fatalf("want one element in the example %q", want)
	}
	if g, w := pepShape(got, vary, drop, omit).Canon(), pepShape(els[0], vary, nil, omit).Canon(); g != w {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// itemID is the id of the <item/> of a publish result or a notification.
func itemID(n *servertest.Node) string {
	for len(n.Kids) > 0 {
		n = n.Kids[0]
		if n.Name.Local == "item" {
			return n.Attr["id"]
		}
	}
	return ""
}

// The XEP's tune, as XEP-0163 publishes it, and as its notifications
// carry it.
const (
	xepPublish = `<iq from='juliet@capulet.lit/balcony' type='set' id='pub1'>
  <pubsub xmlns='http://jabber.org/protocol/pubsub'>
    <publish node='http://jabber.org/protocol/tune'>
      <item>
        <tune xmlns='http://jabber.org/protocol/tune'>
          <artist>Gerald Finzi</artist>
          <length>255</length>
          <source>Music for "Love's Labors Lost" (Suite for small orchestra)</source>
          <title>Introduction (Allegro vigoroso)</title>
          <track>1</track>
        </tune>
      </item>
    </publish>
  </pubsub>
</iq>`
	xepNotification = `<message from='juliet@capulet.lit'
         to='romeo@montague.lit/orchard'
         type='headline'
         id='tunefoo1'>
  <event xmlns='http://jabber.org/protocol/pubsub#event'>
    <items node='http://jabber.org/protocol/tune'>
      <item>
        <tune xmlns='http://jabber.org/protocol/tune'>
          <artist>Gerald Finzi</artist>
          <length>255</length>
          <source>Music for "Love's Labors Lost" (Suite for small orchestra)</source>
          <title>Introduction (Allegro vigoroso)</title>
          <track>1</track>
        </tune>
      </item>
    </items>
  </event>
</message>`
)

var pepItemID = regexp.MustCompile(`^[0-9a-f]{16}$`)

// TestPEPGolden: XEP-0163 §1.2's and §7's publish and the notifications of
// §1.2 ("Interested parties receive event notifications", "Publisher
// receives event notification"), §4.3.3's last item sent to a
// newly-available resource, XEP-0060 §8.1's node creation with and
// without a configuration form and its conflict, and §6.5.2's retrieval of
// all items, after a restart (persistent items).
func TestPEPGolden(t *testing.T) {
	srv := start(t, "juliet", "romeo", "nurse")
	srv.Befriend("juliet", "romeo")
	srv.Befriend("juliet", "nurse")

	// juliet's balcony publishes before anyone asked for tunes (nobody
	// is notified), so that each session that comes online gets that
	// item (§4.3.2) and the test knows its caps are in force.
	balcony := pepLogin(t, srv, "juliet", "balcony")
	beforePub := time.Now()
	balcony.send(strings.ReplaceAll(strings.ReplaceAll(xepPublish, "Gerald Finzi", "Edward Elgar"), "pub1", "pub0"))
	if r := balcony.answerTo("pub0"); r.Attr["type"] != "result" {
		t.Fatalf("the first publish: %s", r.Canon())
	}
	afterPub := time.Now()
	// The sessions come online well after the publish, so that a stamp of
	// when the item is sent could not pass for when it was published.
	time.Sleep(50 * time.Millisecond)
	sessions := []*pepSession{balcony}
	for _, who := range [][2]string{{"juliet", "chamber"}, {"romeo", "orchard"}, {"nurse", "chamber"}} {
		sessions = append(sessions, pepLogin(t, srv, who[0], who[1]))
	}
	for _, s := range sessions {
		s.available(t)
		last := s.event("the last item of " + s.jid)
		// §4.3.4's "PEP service sends last published item to
		// newly-available resource", with its XEP-0203 <delay/> (XEP-0060
		// §6.1.7: SHOULD), whose stamp is when the item was published:
		// within the publish, the same for every session.
		likeXEP(t, "the last item to "+s.jid, last, strings.ReplaceAll(strings.ReplaceAll(`<message from='juliet@capulet.lit'
         to='romeo@montague.lit/orchard'
         type='headline'
         id='foo'>
  <event xmlns='http://jabber.org/protocol/pubsub#event'>
    <items node='http://jabber.org/protocol/tune'>
      <item>
        <tune xmlns='http://jabber.org/protocol/tune'>
          <artist>Gerald Finzi</artist>
          <length>255</length>
          <source>Music for "Love's Labors Lost" (Suite for small orchestra)</source>
          <title>Introduction (Allegro vigoroso)</title>
          <track>1</track>
        </tune>
      </item>
    </items>
  </event>
  <delay xmlns='urn:xmpp:delay' stamp='2003-12-13T23:58:37Z'/>
</message>`, "Gerald Finzi", "Edward Elgar"), "romeo@montague.lit/orchard", s.jid),
			[]string{"message@id", "delay@stamp"}, []string{"item@id", "item@publisher"}, nil)
		stamp := delayStamp(t, last)
		if stamp.Before(beforePub.Truncate(time.Millisecond)) || stamp.After(afterPub) {
			t.Errorf("the last item to %s is stamped %s, not within its publish (%s to %s)", s.jid, stamp.Format(time.RFC3339Nano), beforePub.Format(time.RFC3339Nano), afterPub.Format(time.RFC3339Nano))
		}
		if s != sessions[0] {
			if first := delayStamp(t, sessions[0].lastSeen); !stamp.Equal(first) {
				t.Errorf("the last item to %s is stamped %s, to %s %s", s.jid, stamp, sessions[0].jid, first)
			}
		}
		s.lastSeen = last
	}

	// §1.2 / §7: "Account owner publishes item". XEP-0060 §7.1.2's
	// "Service replies with success" names the item the service made.
	balcony.send(xepPublish)
	res := balcony.answerTo("pub1")
	// RFC 6120 §8.1.2.1: the answer on the account's behalf to an IQ
	// with no 'to' is from the bare JID or has no 'from'.
	from := ""
	if _, ok := res.Attr["from"]; ok {
		from = "\n    from='juliet@capulet.lit'"
	}
	likeXEP(t, "the publish result", res, `<iq type='result'`+from+`
    to='juliet@capulet.lit/balcony'
    id='pub1'>
  <pubsub xmlns='http://jabber.org/protocol/pubsub'>
    <publish node='http://jabber.org/protocol/tune'>
      <item id='ae890ac52d0df67ed7cfdf51b644e901'/>
    </publish>
  </pubsub>
</iq>`, []string{"item@id"}, nil, nil)
	id := itemID(res)
	if !pepItemID.MatchString(id) {
		t.Errorf("the item id the service made: %q", id)
	}
	// "Interested parties receive event notifications" (romeo, nurse),
	// "Publisher receives event notification" (juliet's two sessions):
	// from the bare JID, type headline, the item as published. The item
	// carries the id the result named (XEP-0060 §7.1.2.1), which the
	// XEP-0163 example leaves out, and the 'publisher' XEP-0060 §7.1.2.1
	// lets a service add.
	for _, s := range sessions {
		n := s.event("the notification to " + s.jid)
		likeXEP(t, "the notification to "+s.jid, n, strings.ReplaceAll(xepNotification, "romeo@montague.lit/orchard", s.jid),
			[]string{"message@id"}, []string{"item@id", "item@publisher"}, nil)
		if got := itemID(n); got != id {
			t.Errorf("the notification to %s names item %q, the publish %q", s.jid, got, id)
		}
	}

	// XEP-0060 §8.1: "Request to create a node" and, §8.1.2, "Entity
	// requests leaf node with non-default access model", each answered
	// "Service informs requesting entity of success"; a second request
	// for the same node is "NodeID already exists".
	for _, req := range []struct{ id, node, example string }{
		{"create1", "princely_musings", `<iq type='set'
    from='hamlet@denmark.lit/elsinore'
    to='pubsub.shakespeare.lit'
    id='create1'>
  <pubsub xmlns='http://jabber.org/protocol/pubsub'>
    <create node='princely_musings'/>
  </pubsub>
</iq>`},
		{"create2", "princely_secrets", `<iq type='set'
    from='hamlet@denmark.lit/elsinore'
    to='pubsub.shakespeare.lit'
    id='create2'>
    <pubsub xmlns='http://jabber.org/protocol/pubsub'>
      <create node='princely_musings'/>
      <configure>
        <x xmlns='jabber:x:data' type='submit'>
          <field var='FORM_TYPE' type='hidden'>
            <value>http://jabber.org/protocol/pubsub#node_config</value>
          </field>
          <field var='pubsub#access_model'><value>whitelist</value></field>
        </x>
      </configure>
    </pubsub>
</iq>`},
	} {
		ex := strings.ReplaceAll(strings.ReplaceAll(req.example, "princely_musings", req.node), "hamlet@denmark.lit/elsinore", "juliet@capulet.lit/balcony")
		balcony.send(ex)
		likeXEP(t, req.id, balcony.answerTo(req.id), strings.NewReplacer("create1", req.id, "hamlet@denmark.lit/elsinore", "juliet@capulet.lit/balcony").Replace(`<iq type='result'
    from='pubsub.shakespeare.lit'
    to='hamlet@denmark.lit/elsinore'
    id='create1'/>`), nil, nil, nil)
	}
	balcony.send(strings.ReplaceAll(`<iq type='set'
    from='hamlet@denmark.lit/elsinore'
    to='pubsub.shakespeare.lit'
    id='create1'>
  <pubsub xmlns='http://jabber.org/protocol/pubsub'>
    <create node='princely_musings'/>
  </pubsub>
</iq>`, "hamlet@denmark.lit/elsinore", "juliet@capulet.lit/balcony"))
	likeXEP(t, "creating a node that exists", balcony.answerTo("create1"), strings.ReplaceAll(`<iq type='error'
    from='pubsub.shakespeare.lit'
    to='hamlet@denmark.lit/elsinore'
    id='create1'>
  <error type='cancel'>
    <conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
  </error>
</iq>`, "hamlet@denmark.lit/elsinore", "juliet@capulet.lit/balcony"), nil, nil, []string{"{urn:ietf:params:xml:ns:xmpp-stanzas}text"})
	// The configuration of the second took: romeo, a contact, may read
	// the first (presence access, the PEP default) and not the second
	// (whitelist: closed-node, XEP-0060 §6.5.9.4).
	orchard := sessions[2]
	for _, c := range []struct{ node, typ, cond string }{{"princely_musings", "result", ""}, {"princely_secrets", "error", "closed-node"}} {
		orchard.raw.Write(`<iq type='get' to='juliet@localhost' id='read-` + c.node + `'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='` + c.node + `'/></pubsub></iq>`)
		if got := orchard.answerTo("read-" + c.node); got.Attr["type"] != c.typ || !strings.Contains(got.Canon(), c.cond) {
			t.Errorf("romeo reading %s: %s, want a %s %s", c.node, got.Canon(), c.typ, c.cond)
		}
	}

	// Persistent items (XEP-0060 §6.5.2): after a restart romeo's
	// "Subscriber requests all items" of juliet's tune node gets "Service
	// returns all items" with the item as published.
	srv = srv.Restart()
	orchard = pepLogin(t, srv, "romeo", "orchard")
	orchard.send(strings.ReplaceAll(strings.ReplaceAll(`<iq type='get'
    from='francisco@denmark.lit/barracks'
    to='pubsub.shakespeare.lit'
    id='items1'>
  <pubsub xmlns='http://jabber.org/protocol/pubsub'>
    <items node='princely_musings'/>
  </pubsub>
</iq>`, "princely_musings", "http://jabber.org/protocol/tune"), "francisco@denmark.lit/barracks", "romeo@montague.lit/orchard"))
	// The node keeps one item (pubsub#max_items 1, adhocd's default for
	// a node made by a publish): the XEP's tune, the newest.
	likeXEP(t, "all items after a restart", orchard.answerTo("items1"), `<iq type='result'
    from='pubsub.shakespeare.lit'
    to='romeo@localhost/orchard'
    id='items1'>
  <pubsub xmlns='http://jabber.org/protocol/pubsub'>
    <items node='http://jabber.org/protocol/tune'>
      <item id='`+id+`'>
        <tune xmlns='http://jabber.org/protocol/tune'>
          <artist>Gerald Finzi</artist>
          <length>255</length>
          <source>Music for "Love's Labors Lost" (Suite for small orchestra)</source>
          <title>Introduction (Allegro vigoroso)</title>
          <track>1</track>
        </tune>
      </item>
    </items>
  </pubsub>
</iq>`, nil, []string{"item@publisher"}, nil)
}
