package pep_test

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// PEP (XEP-0163) over TCP: raw clients log in with servertest, send the
// XEP's requests as they are on the wire and read every stanza the server
// writes, answering its caps queries (XEP-0115) as a client does.

// client is a logged-in raw client with a reader that splits what the
// server writes into stanzas.
type client struct {
	t   *testing.T
	raw *servertest.Raw
	jid string

	mu      sync.Mutex
	got     []string
	arrived chan struct{}
	// features are what the client answers the server's disco#info with.
	features []string
}

func login(t *testing.T, srv *servertest.Server, user, resource string, features ...string) *client {
	t.Helper()
	c := &client{t: t, raw: srv.RawLogin(user, "pw", resource), jid: user + "@localhost/" + resource,
		arrived: make(chan struct{}, 1), features: features}
	go c.read()
	return c
}

// read splits the stream into top-level elements and answers the server's
// disco#info queries with the client's features.
func (c *client) read() {
	var captured bytes.Buffer
	d := xml.NewDecoder(io.TeeReader(c.raw.Conn, &captured))
	depth, start := 0, int64(0)
	for {
		off := d.InputOffset()
		tok, err := d.RawToken()
		if err != nil {
			return
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				start = off
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				s := string(captured.Bytes()[start:d.InputOffset()])
				if strings.HasPrefix(s, "<iq") && strings.Contains(s, `type="get"`) && strings.Contains(s, "disco#info") {
					c.answerCaps(s)
					continue
				}
				c.mu.Lock()
				c.got = append(c.got, s)
				c.mu.Unlock()
				select {
				case c.arrived <- struct{}{}:
				default:
				}
			}
		}
	}
}

var idAttr = regexp.MustCompile(`id="([^"]*)"`)
var nodeAttr = regexp.MustCompile(`node="([^"]*)"`)

func (c *client) answerCaps(q string) {
	id := idAttr.FindStringSubmatch(q)[1]
	node := nodeAttr.FindStringSubmatch(q)
	var b strings.Builder
	fmt.Fprintf(&b, `<iq type='result' id='%s' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='%s'><identity category='client' type='pc' name='test'/>`, id, node[1])
	for _, f := range c.features {
		fmt.Fprintf(&b, `<feature var='%s'/>`, f)
	}
	b.WriteString(`</query></iq>`)
	c.raw.Write(b.String())
}

// ver is the XEP-0115 hash of the client's disco#info, as its presence
// carries it.
func (c *client) ver() string {
	f := append([]string(nil), c.features...)
	sort.Strings(f)
	s := "client/pc//test<" + strings.Join(f, "<") + "<"
	sum := sha1.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// available sends presence with the client's caps.
func (c *client) available() {
	c.raw.Write(`<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://adhocd.test/client' ver='` + c.ver() + `'/></presence>`)
}

// wait returns the first stanza not yet taken that matches pattern.
func (c *client) wait(pattern string, d time.Duration) (string, bool) {
	c.t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.After(d)
	for {
		c.mu.Lock()
		for i, s := range c.got {
			if re.MatchString(s) {
				c.got = append(c.got[:i], c.got[i+1:]...)
				c.mu.Unlock()
				return s, true
			}
		}
		c.mu.Unlock()
		select {
		case <-c.arrived:
		case <-deadline:
			return "", false
		}
	}
}

func (c *client) expect(pattern string) string {
	c.t.Helper()
	s, ok := c.wait(pattern, 5*time.Second)
	if !ok {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.t.Fatalf("%s never received %q; unmatched: %q", c.jid, pattern, c.got)
	}
	return s
}

// none fails if a stanza matching pattern arrives within d.
func (c *client) none(pattern string, d time.Duration) {
	c.t.Helper()
	if s, ok := c.wait(pattern, d); ok {
		c.t.Errorf("%s received %s", c.jid, s)
	}
}

var seq int

// iq sends an IQ and returns its answer.
func (c *client) iq(typ, to, payload string) string {
	c.t.Helper()
	seq++
	id := fmt.Sprintf("q%d", seq)
	toAttr := ""
	if to != "" {
		toAttr = ` to='` + to + `'`
	}
	c.raw.Write(`<iq type='` + typ + `' id='` + id + `'` + toAttr + `>` + payload + `</iq>`)
	return c.expect(`^<iq[^>]*id="` + id + `"`)
}

func wantResult(t *testing.T, got string) {
	t.Helper()
	if !strings.Contains(got, `type="result"`) {
		t.Fatalf("want a result, got %s", got)
	}
}

func wantError(t *testing.T, got string, conds ...string) {
	t.Helper()
	if !strings.Contains(got, `type="error"`) {
		t.Fatalf("want an error, got %s", got)
	}
	for _, c := range conds {
		if !strings.Contains(got, "<"+c) {
			t.Errorf("error lacks %s: %s", c, got)
		}
	}
}

const (
	tune     = "http://jabber.org/protocol/tune"
	pubsubNS = "http://jabber.org/protocol/pubsub"
)

func publishTune(artist, id string) string {
	item := `<item>`
	if id != "" {
		item = `<item id='` + id + `'>`
	}
	return `<pubsub xmlns='` + pubsubNS + `'><publish node='` + tune + `'>` + item + `<tune xmlns='` + tune + `'><artist>` + artist + `</artist></tune></item></publish></pubsub>`
}

func start(t *testing.T, users ...string) *servertest.Server {
	srv := servertest.Start(t)
	for _, u := range users {
		srv.AddUser(u, "pw")
	}
	return srv
}

// TestPublishRetrieveAccess: XEP-0163 §7's publish auto-creates the node;
// the account and a contact with a presence subscription read the items, a
// stranger gets not-authorized with presence-subscription-required; an open
// node is readable by anyone, a whitelist node by its owner alone; the
// newest items come back with max_items, one by id.
func TestPublishRetrieveAccess(t *testing.T) {
	srv := start(t, "juliet", "romeo", "stranger")
	srv.Befriend("juliet", "romeo")
	juliet := login(t, srv, "juliet", "balcony")
	romeo := login(t, srv, "romeo", "garden")
	stranger := login(t, srv, "stranger", "street")

	got := juliet.iq("set", "", publishTune("Yes", "current"))
	wantResult(t, got)
	if !strings.Contains(got, `<publish node="`+tune+`"><item id="current"></item></publish>`) && !strings.Contains(got, `<item id="current"/>`) {
		t.Errorf("publish result does not name the item: %s", got)
	}
	items := `<pubsub xmlns='` + pubsubNS + `'><items node='` + tune + `'/></pubsub>`
	for _, c := range []*client{juliet, romeo} {
		got := c.iq("get", "juliet@localhost", items)
		wantResult(t, got)
		if !strings.Contains(got, `<artist>Yes</artist>`) || !strings.Contains(got, `from="juliet@localhost"`) {
			t.Errorf("%s reading juliet's tune: %s", c.jid, got)
		}
	}
	wantError(t, stranger.iq("get", "juliet@localhost", items), "not-authorized", "presence-subscription-required")
	wantError(t, stranger.iq("get", "juliet@localhost", `<pubsub xmlns='`+pubsubNS+`'><items node='nothing'/></pubsub>`), "item-not-found")
	wantError(t, romeo.iq("set", "juliet@localhost", publishTune("Romeo", "")), "forbidden")

	// One node per access model, by publish-options.
	for _, model := range []string{"open", "whitelist"} {
		node := "urn:test:" + model
		wantResult(t, juliet.iq("set", "", `<pubsub xmlns='`+pubsubNS+`'><publish node='`+node+`'><item id='1'><x xmlns='urn:test'/></item></publish>`+
			`<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>`+pubsubNS+`#publish-options</value></field>`+
			`<field var='pubsub#access_model'><value>`+model+`</value></field></x></publish-options></pubsub>`))
	}
	read := func(c *client, node string) string {
		return c.iq("get", "juliet@localhost", `<pubsub xmlns='`+pubsubNS+`'><items node='`+node+`'/></pubsub>`)
	}
	wantResult(t, read(stranger, "urn:test:open"))
	wantError(t, read(romeo, "urn:test:whitelist"), "not-allowed", "closed-node")
	wantResult(t, read(juliet, "urn:test:whitelist"))

	// max_items keeps the newest items; retrieval by count and by id.
	wantResult(t, juliet.iq("set", "", `<pubsub xmlns='`+pubsubNS+`'><publish node='urn:test:log'><item id='a'><e xmlns='urn:test'>1</e></item></publish>`+
		`<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>`+pubsubNS+`#publish-options</value></field>`+
		`<field var='pubsub#max_items'><value>3</value></field></x></publish-options></pubsub>`))
	for _, id := range []string{"b", "c", "d"} {
		wantResult(t, juliet.iq("set", "", `<pubsub xmlns='`+pubsubNS+`'><publish node='urn:test:log'><item id='`+id+`'><e xmlns='urn:test'>`+id+`</e></item></publish>`+
			`<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>`+pubsubNS+`#publish-options</value></field>`+
			`<field var='pubsub#max_items'><value>3</value></field></x></publish-options></pubsub>`))
	}
	got = juliet.iq("get", "", `<pubsub xmlns='`+pubsubNS+`'><items node='urn:test:log'/></pubsub>`)
	if ids := regexp.MustCompile(`<item id="(\w)"`).FindAllStringSubmatch(got, -1); len(ids) != 3 || ids[0][1] != "b" || ids[2][1] != "d" {
		t.Errorf("a node of max_items 3 after 4 publishes: %s", got)
	}
	got = juliet.iq("get", "", `<pubsub xmlns='`+pubsubNS+`'><items node='urn:test:log' max_items='1'/></pubsub>`)
	if !strings.Contains(got, `<item id="d"`) || strings.Contains(got, `<item id="c"`) {
		t.Errorf("max_items='1': %s", got)
	}
	got = juliet.iq("get", "", `<pubsub xmlns='`+pubsubNS+`'><items node='urn:test:log'><item id='c'/></items></pubsub>`)
	if !strings.Contains(got, `<item id="c"`) || strings.Contains(got, `<item id="d"`) {
		t.Errorf("item c by id: %s", got)
	}

	// The bare JID's disco says PEP, with publish-options; its items list
	// the nodes the requester may read.
	got = romeo.iq("get", "juliet@localhost", `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
	for _, want := range []string{`category="pubsub" type="pep"`, `var="` + pubsubNS + `#publish-options"`, `category="account" type="registered"`} {
		if !strings.Contains(got, want) {
			t.Errorf("disco#info of juliet lacks %s: %s", want, got)
		}
	}
	got = romeo.iq("get", "juliet@localhost", `<query xmlns='http://jabber.org/protocol/disco#items'/>`)
	if !strings.Contains(got, `node="`+tune+`"`) || !strings.Contains(got, `node="urn:test:open"`) || strings.Contains(got, `urn:test:whitelist`) {
		t.Errorf("disco#items of juliet for romeo: %s", got)
	}
}

// TestNotificationsFollowCaps: a publish notifies the sessions whose caps
// carry node+notify (XEP-0163 §4.2), the owner's and its contacts', and
// nobody else; a session that becomes available gets the last item
// (§4.3.2), and a retraction is notified.
func TestNotificationsFollowCaps(t *testing.T) {
	srv := start(t, "juliet", "romeo", "nurse")
	srv.Befriend("juliet", "romeo")
	srv.Befriend("juliet", "nurse")
	want := []string{"http://jabber.org/protocol/disco#info", tune + "+notify"}
	juliet := login(t, srv, "juliet", "balcony", want...)
	juliet.available()
	romeo := login(t, srv, "romeo", "garden", want...)
	romeo.available()
	nurse := login(t, srv, "nurse", "kitchen", "http://jabber.org/protocol/disco#info") // no +notify
	nurse.available()
	// The caps queries are answered before the next IQ is: a ping fences.
	for _, c := range []*client{juliet, romeo, nurse} {
		c.iq("get", "localhost", `<ping xmlns='urn:xmpp:ping'/>`)
	}
	time.Sleep(100 * time.Millisecond)

	wantResult(t, juliet.iq("set", "", publishTune("Radiohead", "now")))
	event := `^<message[^>]*from="juliet@localhost"[^>]*type="headline".*<event xmlns="` + pubsubNS + `#event"><items node="` + tune + `"><item id="now"[^>]*><tune xmlns="` + tune + `"><artist>Radiohead</artist>`
	romeo.expect(event)
	juliet.expect(event)
	nurse.none(`pubsub#event`, 300*time.Millisecond)

	// A new session of romeo gets the last item as it comes online.
	romeo2 := login(t, srv, "romeo", "phone", want...)
	romeo2.available()
	romeo2.expect(event)

	// Retraction (notify_retract is on by default).
	wantResult(t, juliet.iq("set", "", `<pubsub xmlns='`+pubsubNS+`'><retract node='`+tune+`' notify='true'><item id='now'/></retract></pubsub>`))
	romeo.expect(`<retract id="now"`)
	wantError(t, juliet.iq("set", "", `<pubsub xmlns='`+pubsubNS+`'><retract node='`+tune+`'><item id='now'/></retract></pubsub>`), "item-not-found")
}

// TestLastItemOnSubscription: a contact whose presence subscription the
// account approves gets, at once, on each of its available sessions whose
// caps ask for the node, the last item of each node it may now read
// (XEP-0163 §6.1.1), without sending presence again; not the items of a
// whitelist node, nor of a node that never sends its last item, and
// nothing before the approval.
func TestLastItemOnSubscription(t *testing.T) {
	srv := start(t, "alice", "bob")
	const secret, quiet = "urn:test:secret", "urn:test:quiet"
	want := []string{"http://jabber.org/protocol/disco#info", tune + "+notify", secret + "+notify", quiet + "+notify"}
	alice := login(t, srv, "alice", "home", want...)
	alice.available()
	bob := login(t, srv, "bob", "phone", want...)
	bob.available()
	bobDesk := login(t, srv, "bob", "desk", "http://jabber.org/protocol/disco#info") // no +notify
	bobDesk.available()
	for _, c := range []*client{alice, bob, bobDesk} {
		c.iq("get", "localhost", `<ping xmlns='urn:xmpp:ping'/>`)
	}
	time.Sleep(100 * time.Millisecond)

	beforePub := time.Now()
	wantResult(t, alice.iq("set", "", publishTune("Portishead", "now")))
	afterPub := time.Now()
	opts := func(field, value string) string {
		return `<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>` + pubsubNS + `#publish-options</value></field>` +
			`<field var='` + field + `'><value>` + value + `</value></field></x></publish-options>`
	}
	wantResult(t, alice.iq("set", "", `<pubsub xmlns='`+pubsubNS+`'><publish node='`+secret+`'><item id='s'><x xmlns='urn:test'/></item></publish>`+opts("pubsub#access_model", "whitelist")+`</pubsub>`))
	wantResult(t, alice.iq("set", "", `<pubsub xmlns='`+pubsubNS+`'><publish node='`+quiet+`'><item id='q'><x xmlns='urn:test'/></item></publish>`+opts("pubsub#send_last_published_item", "never")+`</pubsub>`))
	for _, id := range []string{"now", "s", "q"} {
		alice.expect(`pubsub#event.*<item id="` + id + `"`) // her own publishes
	}
	// The node's access model is presence: bob may not read it yet.
	wantError(t, bob.iq("get", "alice@localhost", `<pubsub xmlns='`+pubsubNS+`'><items node='`+tune+`'/></pubsub>`), "not-authorized", "presence-subscription-required")

	bob.raw.Write(`<presence type='subscribe' to='alice@localhost'/>`)
	alice.expect(`^<presence[^>]*from="bob@localhost"[^>]*type="subscribe"|^<presence[^>]*type="subscribe"[^>]*from="bob@localhost"`)
	bob.none(`pubsub#event`, 300*time.Millisecond)

	alice.raw.Write(`<presence type='subscribed' to='bob@localhost'/>`)
	bob.expect(`^<presence[^>]*from="alice@localhost/home"`)
	last := bob.expect(`^<message[^>]*from="alice@localhost"[^>]*type="headline".*<event xmlns="` + pubsubNS + `#event"><items node="` + tune + `"><item id="now"[^>]*><tune xmlns="` + tune + `"><artist>Portishead</artist>`)
	// The last item carries a XEP-0203 delay of when it was published
	// (XEP-0060 §6.1.7), after the event.
	if m := lastDelay.FindStringSubmatch(last); m == nil {
		t.Errorf("the last item on approval has no delay after its event: %s", last)
	} else if st, err := time.Parse(time.RFC3339Nano, m[1]); err != nil || st.Before(beforePub.Truncate(time.Millisecond)) || st.After(afterPub) {
		t.Errorf("the last item on approval is stamped %s, not within its publish (%s to %s)", m[1], beforePub.Format(time.RFC3339Nano), afterPub.Format(time.RFC3339Nano))
	}
	bob.none(`node="urn:test:(secret|quiet)"`, 300*time.Millisecond)
	bobDesk.none(`pubsub#event`, 100*time.Millisecond)
	alice.none(`pubsub#event`, 100*time.Millisecond)

	// The approval holds: bob reads the node, and later items reach him.
	wantResult(t, bob.iq("get", "alice@localhost", `<pubsub xmlns='`+pubsubNS+`'><items node='`+tune+`'/></pubsub>`))
	wantResult(t, alice.iq("set", "", publishTune("Massive Attack", "next")))
	// A notification of a publish is news: no delay.
	if next := bob.expect(`<item id="next"[^>]*><tune xmlns="` + tune + `"><artist>Massive Attack</artist>`); strings.Contains(next, "urn:xmpp:delay") {
		t.Errorf("the notification of a publish has a delay: %s", next)
	}
}

// lastDelay is the XEP-0203 delay after the event of a last item.
var lastDelay = regexp.MustCompile(`</event><delay xmlns="urn:xmpp:delay" stamp="([^"]+)"/></message>$`)

// TestPublishOptionsAndOwner: publish-options that differ from the node's
// configuration are a conflict with precondition-not-met (XEP-0060
// §7.1.5); the owner reads and changes the configuration (§8.2), after
// which the publish goes through; purge and delete (§8.4, §8.5) notify,
// and a deleted node is gone.
func TestPublishOptionsAndOwner(t *testing.T) {
	srv := start(t, "juliet")
	juliet := login(t, srv, "juliet", "balcony", "http://jabber.org/protocol/disco#info", "urn:test:n+notify")
	juliet.available()
	juliet.iq("get", "localhost", `<ping xmlns='urn:xmpp:ping'/>`)
	time.Sleep(100 * time.Millisecond)
	withOpen := `<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>` + pubsubNS + `#publish-options</value></field><field var='pubsub#access_model'><value>open</value></field></x></publish-options>`
	pub := func(opts string) string {
		return juliet.iq("set", "", `<pubsub xmlns='`+pubsubNS+`'><publish node='urn:test:n'><item id='1'><x xmlns='urn:test'/></item></publish>`+opts+`</pubsub>`)
	}
	wantResult(t, pub(""))
	juliet.expect(`pubsub#event`)
	wantError(t, pub(withOpen), "conflict", "precondition-not-met")

	owner := "http://jabber.org/protocol/pubsub#owner"
	got := juliet.iq("get", "", `<pubsub xmlns='`+owner+`'><configure node='urn:test:n'/></pubsub>`)
	if !strings.Contains(got, `var="pubsub#access_model"`) || !regexp.MustCompile(`var="pubsub#access_model"[^>]*>(<[^>]*>)?\s*<value>presence</value>`).MatchString(got) {
		t.Errorf("configuration form: %s", got)
	}
	wantResult(t, juliet.iq("set", "", `<pubsub xmlns='`+owner+`'><configure node='urn:test:n'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>`+pubsubNS+`#node_config</value></field><field var='pubsub#access_model'><value>open</value></field></x></configure></pubsub>`))
	wantResult(t, pub(withOpen))
	juliet.expect(`pubsub#event`)
	wantError(t, juliet.iq("set", "", `<pubsub xmlns='`+owner+`'><configure node='urn:test:n'><x xmlns='jabber:x:data' type='submit'><field var='pubsub#access_model'><value>authorize</value></field></x></configure></pubsub>`),
		"not-acceptable", "unsupported-access-model")

	wantResult(t, juliet.iq("set", "", `<pubsub xmlns='`+owner+`'><purge node='urn:test:n'/></pubsub>`))
	juliet.expect(`<purge node="urn:test:n"`)
	got = juliet.iq("get", "", `<pubsub xmlns='`+pubsubNS+`'><items node='urn:test:n'/></pubsub>`)
	if strings.Contains(got, "<item ") {
		t.Errorf("items after a purge: %s", got)
	}
	wantResult(t, juliet.iq("set", "", `<pubsub xmlns='`+owner+`'><delete node='urn:test:n'/></pubsub>`))
	juliet.expect(`<delete node="urn:test:n"`)
	wantError(t, juliet.iq("get", "", `<pubsub xmlns='`+pubsubNS+`'><items node='urn:test:n'/></pubsub>`), "item-not-found")
	wantError(t, juliet.iq("set", "", `<pubsub xmlns='`+pubsubNS+`'><subscribe node='urn:test:n' jid='juliet@localhost'/></pubsub>`), "feature-not-implemented", "unsupported")
}

// TestLimits: limits.pep bounds the nodes of an account (not-allowed), the
// bytes of an item (not-acceptable with payload-too-big) and "max" items.
func TestLimits(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) {
		c.Limits.PEP.MaxNodes = 2
		c.Limits.PEP.MaxItemBytes = 1024
		c.Limits.PEP.MaxItems = 2
	})
	srv.AddUser("juliet", "pw")
	juliet := login(t, srv, "juliet", "balcony")
	pub := func(node, id, body string) string {
		return juliet.iq("set", "", `<pubsub xmlns='`+pubsubNS+`'><publish node='`+node+`'><item id='`+id+`'><x xmlns='urn:test'>`+body+`</x></item></publish>`+
			`<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>`+pubsubNS+`#publish-options</value></field><field var='pubsub#max_items'><value>max</value></field></x></publish-options></pubsub>`)
	}
	wantResult(t, pub("a", "1", "x"))
	wantResult(t, pub("b", "1", "x"))
	wantError(t, pub("c", "1", "x"), "not-allowed")
	wantError(t, pub("a", "2", strings.Repeat("y", 2000)), "not-acceptable", "payload-too-big")
	wantResult(t, pub("a", "2", "x"))
	wantResult(t, pub("a", "3", "x"))
	got := juliet.iq("get", "", `<pubsub xmlns='`+pubsubNS+`'><items node='a'/></pubsub>`)
	if n := strings.Count(got, "<item "); n != 2 || strings.Contains(got, `id="1"`) {
		t.Errorf("max_items max with limits.pep.max_items 2 keeps %d items: %s", n, got)
	}
}

// TestAccountBytes: limits.pep.max_account_bytes bounds the whole of an
// account's PEP data: a publish that would take it past the bound is
// refused with resource-constraint (a wait error: room may come) and
// stores nothing, and once the account removes items the same publish goes
// through.
func TestAccountBytes(t *testing.T) {
	const limit = 8192
	srv := servertest.Start(t, func(c *config.Config) {
		c.Limits.PEP.MaxItemBytes = 4096
		c.Limits.PEP.MaxAccountBytes = limit
	})
	srv.AddUser("juliet", "pw")
	juliet := login(t, srv, "juliet", "balcony")
	body := strings.Repeat("z", 3000)
	pub := func(id string) string {
		return juliet.iq("set", "", `<pubsub xmlns='`+pubsubNS+`'><publish node='urn:test:big'><item id='`+id+`'><x xmlns='urn:test'>`+body+`</x></item></publish>`+
			`<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>`+pubsubNS+`#publish-options</value></field><field var='pubsub#max_items'><value>max</value></field></x></publish-options></pubsub>`)
	}
	wantResult(t, pub("1"))
	wantResult(t, pub("2"))
	got := pub("3")
	wantError(t, got, "resource-constraint")
	if !strings.Contains(got, `type="wait"`) {
		t.Errorf("past max_account_bytes: want a wait error, got %s", got)
	}
	size, err := srv.Store().UserDataSize(t.Context(), "juliet", "pep")
	if err != nil || size > limit {
		t.Errorf("juliet's PEP data: %d bytes (%v), bound %d", size, err, limit)
	}
	items := func() string {
		return juliet.iq("get", "", `<pubsub xmlns='`+pubsubNS+`'><items node='urn:test:big'/></pubsub>`)
	}
	if got := items(); strings.Count(got, "<item ") != 2 || strings.Contains(got, `id="3"`) {
		t.Errorf("after the refused publish the node holds: %s", got)
	}
	// Another node is refused too: the bound is the account's.
	wantError(t, juliet.iq("set", "", `<pubsub xmlns='`+pubsubNS+`'><publish node='urn:test:other'><item id='o'><x xmlns='urn:test'>`+body+`</x></item></publish></pubsub>`), "resource-constraint")

	wantResult(t, juliet.iq("set", "", `<pubsub xmlns='`+pubsubNS+`'><retract node='urn:test:big'><item id='1'/></retract></pubsub>`))
	wantResult(t, pub("3"))
	if got := items(); !strings.Contains(got, `id="2"`) || !strings.Contains(got, `id="3"`) || strings.Contains(got, `id="1"`) {
		t.Errorf("after a retraction made room: %s", got)
	}
}

// TestDiskFloor: below limits.min_free_disk_bytes (the floor set 1 GiB
// above the real free space) a publish is refused with resource-constraint
// (wait) and notifies nobody, while reads and retractions go on; with the
// floor lowered the same publish goes through.
func TestDiskFloor(t *testing.T) {
	floor := servertest.NewDiskFloor(t) // the free-disk floor is the bbolt store's
	dir, st := floor.Dir, floor.Store
	srv := servertest.StartConfig(t, servertest.Config(dir), server.WithStore(st))
	srv.AddUser("juliet", "pw")
	srv.AddUser("romeo", "pw")
	srv.Befriend("juliet", "romeo")
	want := []string{"http://jabber.org/protocol/disco#info", tune + "+notify"}
	juliet := login(t, srv, "juliet", "balcony", want...)
	romeo := login(t, srv, "romeo", "garden", want...)
	romeo.available()
	romeo.iq("get", "localhost", `<ping xmlns='urn:xmpp:ping'/>`)
	time.Sleep(100 * time.Millisecond)

	wantResult(t, juliet.iq("set", "", publishTune("Before", "before")))
	romeo.expect(`<item id="before"`)
	floor.Raise()

	got := juliet.iq("set", "", publishTune("Below", "below"))
	wantError(t, got, "resource-constraint")
	if !strings.Contains(got, `type="wait"`) {
		t.Errorf("publish below the floor: want a wait error, got %s", got)
	}
	wantError(t, juliet.iq("set", "", `<pubsub xmlns='`+pubsubNS+`'><create node='urn:test:new'/></pubsub>`), "resource-constraint")
	romeo.none(`<item id="below"`, 300*time.Millisecond)
	items := `<pubsub xmlns='` + pubsubNS + `'><items node='` + tune + `'/></pubsub>`
	for _, c := range []*client{juliet, romeo} {
		got := c.iq("get", "juliet@localhost", items)
		wantResult(t, got)
		if !strings.Contains(got, `<artist>Before</artist>`) || strings.Contains(got, "Below") {
			t.Errorf("%s reads below the floor: %s", c.jid, got)
		}
	}
	got = romeo.iq("get", "juliet@localhost", `<query xmlns='http://jabber.org/protocol/disco#items'/>`)
	if !strings.Contains(got, `node="`+tune+`"`) || strings.Contains(got, "urn:test:new") {
		t.Errorf("disco#items below the floor: %s", got)
	}
	// A retraction only deletes: it goes through, and is notified.
	wantResult(t, juliet.iq("set", "", `<pubsub xmlns='`+pubsubNS+`'><retract node='`+tune+`'><item id='before'/></retract></pubsub>`))
	romeo.expect(`<retract id="before"`)

	floor.Lower()
	wantResult(t, juliet.iq("set", "", publishTune("Again", "again")))
	romeo.expect(`<item id="again"[^>]*><tune xmlns="` + tune + `"><artist>Again</artist>`)
}
