package bookmarks_test

import (
	"context"
	"strings"
	"testing"

	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
)

// XEP-0402 ↔ XEP-0048 over TCP with raw clients: what a client of one
// protocol stores, a client of the other reads.

const (
	pubsub   = `http://jabber.org/protocol/pubsub`
	nsNative = `urn:xmpp:bookmarks:1`
)

// publishNative publishes one XEP-0402 bookmark as XEP-0402 §3.3 does.
func publishNative(c *servertest.IQClient, t *testing.T, room, payload string) {
	t.Helper()
	r := c.IQ("set", "", `<pubsub xmlns='`+pubsub+`'><publish node='`+nsNative+`'><item id='`+room+`'>`+payload+`</item></publish>`+
		`<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>`+pubsub+`#publish-options</value></field>`+
		`<field var='pubsub#persist_items'><value>true</value></field><field var='pubsub#max_items'><value>max</value></field>`+
		`<field var='pubsub#send_last_published_item'><value>never</value></field><field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options></pubsub>`)
	if r.Type != "result" {
		t.Fatalf("publish %s: %s", room, r.XML)
	}
}

// items reads a node of the account's own PEP service.
func items(c *servertest.IQClient, t *testing.T, node string) servertest.Answer {
	t.Helper()
	return c.IQ("get", "", `<pubsub xmlns='`+pubsub+`'><items node='`+node+`'/></pubsub>`)
}

// privateGet reads XEP-0048 bookmarks from private XML storage.
func privateGet(c *servertest.IQClient) servertest.Answer {
	return c.IQ("get", "", `<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>`)
}

// TestBookmarksConversion: the account advertises both compatibilities; a
// XEP-0402 bookmark is read as XEP-0048 from private XML storage and from
// the storage:bookmarks PEP node; a XEP-0048 list stored in private XML
// storage changes, adds and (through PEP) removes XEP-0402 items, keeping
// the <extensions/> of a changed room and dropping URL bookmarks.
func TestBookmarksConversion(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("juliet", "pw")
	srv.AddUser("romeo", "pw")
	juliet := servertest.IQLogin(t, srv, "juliet", "pw")

	disco := juliet.IQ("get", "juliet@localhost", `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
	for _, f := range []string{nsNative + "#compat", nsNative + "#compat-pep"} {
		if !strings.Contains(disco.XML, `var="`+f+`"`) {
			t.Errorf("account disco#info lacks %s: %s", f, disco.XML)
		}
	}

	// XEP-0402 §3.3's bookmark, with an extension of a client's own.
	publishNative(juliet, t, "theplay@conference.shakespeare.lit",
		`<conference xmlns='urn:xmpp:bookmarks:1' name='The Play&apos;s the Thing' autojoin='true'><nick>JC</nick>`+
			`<extensions><state xmlns='http://myclient.example/bookmark/state' minimized='true'/></extensions></conference>`)
	wantLegacy := servertest.CanonOf(t, `<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>`+
		`<conference jid='theplay@conference.shakespeare.lit' name='The Play&apos;s the Thing' autojoin='true'><nick>JC</nick></conference>`+
		`</storage></query>`)
	if r := privateGet(juliet); r.Type != "result" || r.PayloadCanon() != wantLegacy {
		t.Errorf("private XML storage after a XEP-0402 publish:\n got %s\nwant %s", r.PayloadCanon(), wantLegacy)
	}
	legacy := items(juliet, t, "storage:bookmarks")
	if !strings.Contains(legacy.XML, `<item id="current"><storage xmlns="storage:bookmarks"><conference jid="theplay@conference.shakespeare.lit" name="The Play's the Thing" autojoin="true"><nick>JC</nick></conference></storage></item>`) {
		t.Errorf("the XEP-0048 PEP node after a XEP-0402 publish: %s", legacy.XML)
	}

	// A XEP-0048 client renames the room, adds one and a URL bookmark.
	set := juliet.IQ("set", "", `<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>`+
		`<conference jid='theplay@conference.shakespeare.lit' name='The Play' autojoin='true'><nick>JC</nick></conference>`+
		`<conference jid='orchard@conference.shakespeare.lit' name='The Orchard'><nick>JC</nick><password>pass</password></conference>`+
		`<url name='Complete Works' url='http://the-tech.mit.edu/Shakespeare/'/>`+
		`</storage></query>`)
	if set.Type != "result" {
		t.Fatalf("private set of XEP-0048 bookmarks: %s", set.XML)
	}
	native := items(juliet, t, nsNative)
	for _, want := range []string{
		`<item id="theplay@conference.shakespeare.lit"><conference xmlns="urn:xmpp:bookmarks:1" name="The Play" autojoin="true"><nick>JC</nick><extensions><state xmlns="http://myclient.example/bookmark/state" minimized="true"/></extensions></conference></item>`,
		`<item id="orchard@conference.shakespeare.lit"><conference xmlns="urn:xmpp:bookmarks:1" name="The Orchard"><nick>JC</nick><password>pass</password></conference></item>`,
	} {
		if !strings.Contains(native.XML, want) {
			t.Errorf("XEP-0402 items after the XEP-0048 set lack\n%s\nin %s", want, native.XML)
		}
	}
	if strings.Contains(native.XML, "Shakespeare/") {
		t.Errorf("a URL bookmark became a XEP-0402 item: %s", native.XML)
	}

	// A XEP-0048 client on PEP (XEP-0223) keeps only the orchard.
	pub := juliet.IQ("set", "", `<pubsub xmlns='`+pubsub+`'><publish node='storage:bookmarks'><item id='current'><storage xmlns='storage:bookmarks'>`+
		`<conference jid='orchard@conference.shakespeare.lit' name='The Orchard'><nick>JC</nick><password>pass</password></conference>`+
		`</storage></item></publish></pubsub>`)
	if pub.Type != "result" {
		t.Fatalf("publish to storage:bookmarks: %s", pub.XML)
	}
	native = items(juliet, t, nsNative)
	if strings.Contains(native.XML, "theplay@") || !strings.Contains(native.XML, `<item id="orchard@conference.shakespeare.lit">`) {
		t.Errorf("XEP-0402 items after the XEP-0048 PEP publish: %s", native.XML)
	}
	if r := privateGet(juliet); !strings.Contains(r.XML, "orchard@") || strings.Contains(r.XML, "theplay@") {
		t.Errorf("private XML storage after the XEP-0048 PEP publish: %s", r.XML)
	}

	// Another account reads none of it.
	romeo := servertest.IQLogin(t, srv, "romeo", "pw")
	for _, node := range []string{nsNative, "storage:bookmarks"} {
		if r := romeo.IQ("get", "juliet@localhost", `<pubsub xmlns='`+pubsub+`'><items node='`+node+`'/></pubsub>`); r.Type != "error" {
			t.Errorf("romeo read juliet's %s: %s", node, r.XML)
		}
	}
}

// TestBookmarksMoveFromPrivateStorage: bookmarks an account kept in
// private XML storage before the conversion existed become its XEP-0402
// items at its next login, and private XML storage no longer keeps them
// itself.
func TestBookmarksMoveFromPrivateStorage(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("juliet", "pw")
	old := `<storage xmlns="storage:bookmarks"><conference jid="council@conference.underhill.org" name="Council of Oberon" autojoin="true"><nick>Puck</nick></conference></storage>`
	err := srv.Store().UpdateUserData(context.Background(), "juliet", "private", "", func([]storage.Datum) ([]storage.Datum, error) {
		return []storage.Datum{{Key: "{storage:bookmarks}storage", Value: []byte(old)}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	juliet := servertest.IQLogin(t, srv, "juliet", "pw")
	juliet.Write(`<presence/>`)
	juliet.Expect(`<presence`)
	native := items(juliet, t, nsNative)
	if !strings.Contains(native.XML, `<item id="council@conference.underhill.org"><conference xmlns="urn:xmpp:bookmarks:1" name="Council of Oberon" autojoin="true"><nick>Puck</nick></conference></item>`) {
		t.Errorf("XEP-0402 items after the login: %s", native.XML)
	}
	if _, err := srv.Store().UserDatum(context.Background(), "juliet", "private", "{storage:bookmarks}storage"); err == nil {
		t.Errorf("private XML storage still keeps the bookmarks itself")
	}
	if r := privateGet(juliet); !strings.Contains(r.XML, `jid="council@conference.underhill.org"`) {
		t.Errorf("private XML storage get after the move: %s", r.XML)
	}
}
