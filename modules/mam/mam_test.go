package mam_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// Message Archive Management (XEP-0313) over TCP with raw clients.

// reader collects what a raw client receives.
type reader struct {
	raw *servertest.Raw
}

// until reads until pattern matches what arrived since the last call, and
// returns that.
func (r *reader) until(t *testing.T, pattern string) string {
	t.Helper()
	s, ok := r.raw.ReadUntil(pattern, 5*time.Second)
	if !ok {
		t.Fatalf("never received %q; got %q", pattern, s)
	}
	return s
}

func login(srv *servertest.Server, user, res string) *reader {
	r := srv.RawLogin(user, "pw", res)
	r.Write(`<presence/>`)
	r.Expect(`<presence`)
	return &reader{raw: r}
}

var seq int

// query sends a MAM query and returns everything up to its IQ result.
func (r *reader) query(t *testing.T, form, set string) string {
	t.Helper()
	seq++
	id := fmt.Sprintf("q%d", seq)
	x := ""
	if form != "" {
		x = `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>` + form + `</x>`
	}
	r.raw.Write(`<iq type='set' id='` + id + `'><query xmlns='urn:xmpp:mam:2' queryid='` + id + `'>` + x + set + `</query></iq>`)
	return r.until(t, `<iq[^>]*id="`+id+`"[^>]*(/>|>.*?</iq>)`)
}

var bodies = regexp.MustCompile(`<result xmlns="urn:xmpp:mam:2" id="([0-9a-f]+)" queryid="q\d+"><forwarded xmlns="urn:xmpp:forward:0"><delay xmlns="urn:xmpp:delay" stamp="[^"]+"/><message[^>]*><body>([^<]*)</body>`)

func results(s string) (ids, texts []string) {
	for _, m := range bodies.FindAllStringSubmatch(s, -1) {
		ids = append(ids, m[1])
		texts = append(texts, m[2])
	}
	return ids, texts
}

// TestArchiveAndQuery: what two accounts exchange is archived on both
// sides; a received message carries the archive's stanza-id; a query
// returns the messages oldest first, forwarded with stamps, before the IQ
// result with <fin/>; paging forwards and backwards sets complete only at
// the end; with filters; an unknown id is item-not-found; a spoofed
// stanza-id is removed; no-store is not archived.
func TestArchiveAndQuery(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "pw")
	srv.AddUser("bob", "pw")
	srv.AddUser("carol", "pw")
	alice := login(srv, "alice", "a")
	bob := login(srv, "bob", "b")
	carol := login(srv, "carol", "c")
	for i := range 3 {
		bob.raw.Write(fmt.Sprintf(`<message to='alice@localhost' type='chat' id='b%d'><body>bob %d</body></message>`, i, i))
		got := alice.until(t, fmt.Sprintf(`id="b%d".*?</message>`, i))
		if !regexp.MustCompile(`<stanza-id xmlns="urn:xmpp:sid:0" by="alice@localhost" id="[0-9a-f]{16}"/>`).MatchString(got) {
			t.Fatalf("a received message without the archive's stanza-id: %s", got)
		}
	}
	alice.raw.Write(`<message to='bob@localhost' type='chat' id='a0'><body>alice 0</body></message>`)
	bob.until(t, `id="a0"`)
	carol.raw.Write(`<message to='alice@localhost' type='chat' id='c0'><body>carol 0</body><stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='forged'/></message>`)
	if got := alice.until(t, `id="c0".*?</message>`); strings.Contains(got, "forged") {
		t.Errorf("a stanza-id claiming alice's archive came through: %s", got)
	}
	carol.raw.Write(`<message to='alice@localhost' type='chat' id='c1'><body>carol secret</body><no-store xmlns='urn:xmpp:hints'/></message>`)
	alice.until(t, `id="c1"`)

	all := alice.query(t, "", "")
	ids, texts := results(all)
	if strings.Join(texts, ",") != "bob 0,bob 1,bob 2,alice 0,carol 0" {
		t.Fatalf("alice's archive: %q\n%s", texts, all)
	}
	if !strings.Contains(all, `<fin xmlns="urn:xmpp:mam:2" complete="true"><set xmlns="http://jabber.org/protocol/rsm"><first>`+ids[0]+`</first><last>`+ids[4]+`</last></set></fin>`) {
		t.Errorf("fin of the whole archive: %s", all)
	}
	if i := strings.Index(all, "<iq"); i < strings.LastIndex(all, "<result") {
		t.Errorf("the IQ result came before the last result: %s", all)
	}
	if _, bt := results(bob.query(t, "", "")); strings.Join(bt, ",") != "bob 0,bob 1,bob 2,alice 0" {
		t.Errorf("bob's archive: %q", bt)
	}

	withBob := `<field var='with'><value>bob@localhost</value></field>`
	p1 := alice.query(t, withBob, `<set xmlns='http://jabber.org/protocol/rsm'><max>3</max></set>`)
	if _, tx := results(p1); strings.Join(tx, ",") != "bob 0,bob 1,bob 2" || strings.Contains(p1, `complete="true"`) {
		t.Errorf("first page with bob: %q %s", tx, p1)
	}
	p2 := alice.query(t, withBob, `<set xmlns='http://jabber.org/protocol/rsm'><max>3</max><after>`+ids[2]+`</after></set>`)
	if _, tx := results(p2); strings.Join(tx, ",") != "alice 0" || !strings.Contains(p2, `complete="true"`) {
		t.Errorf("second page with bob: %q %s", tx, p2)
	}
	last := alice.query(t, "", `<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before/></set>`)
	if _, tx := results(last); strings.Join(tx, ",") != "alice 0,carol 0" || strings.Contains(last, `complete="true"`) {
		t.Errorf("the newest page: %q %s", tx, last)
	}
	older := alice.query(t, "", `<set xmlns='http://jabber.org/protocol/rsm'><max>5</max><before>`+ids[3]+`</before></set>`)
	if _, tx := results(older); strings.Join(tx, ",") != "bob 0,bob 1,bob 2" || !strings.Contains(older, `complete="true"`) {
		t.Errorf("the page before alice 0: %q %s", tx, older)
	}
	ext := alice.query(t, `<field var='after-id'><value>`+ids[0]+`</value></field><field var='before-id'><value>`+ids[4]+`</value></field>`, "")
	if _, tx := results(ext); strings.Join(tx, ",") != "bob 1,bob 2,alice 0" {
		t.Errorf("after-id and before-id: %q", tx)
	}
	byID := alice.query(t, `<field var='ids'><value>`+ids[4]+`</value><value>`+ids[1]+`</value></field>`, "")
	if _, tx := results(byID); strings.Join(tx, ",") != "bob 1,carol 0" {
		t.Errorf("ids: %q", tx)
	}
	if got := alice.query(t, "", `<set xmlns='http://jabber.org/protocol/rsm'><after>0123456789abcdef</after></set>`); !strings.Contains(got, "<item-not-found") {
		t.Errorf("an unknown id: %s", got)
	}
	if got := alice.query(t, `<field var='start'><value>yesterday</value></field>`, ""); !strings.Contains(got, "<bad-request") {
		t.Errorf("a bad start: %s", got)
	}

	// The form, and the disco of the account.
	alice.raw.Write(`<iq type='get' id='form'><query xmlns='urn:xmpp:mam:2'/></iq>`)
	if got := alice.until(t, `id="form".*?</iq>`); !strings.Contains(got, `var="after-id"`) || !strings.Contains(got, `<value>urn:xmpp:mam:2</value>`) {
		t.Errorf("the query form: %s", got)
	}
	alice.raw.Write(`<iq type='get' id='disco' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if got := alice.until(t, `id="disco".*?</iq>`); !strings.Contains(got, `var="urn:xmpp:mam:2"`) || !strings.Contains(got, `var="urn:xmpp:sid:0"`) {
		t.Errorf("disco#info of the account lacks MAM: %s", got)
	}
}

// TestPreferences: default never archives nothing but the always JIDs;
// the preferences come back as set.
func TestPreferences(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "pw")
	srv.AddUser("bob", "pw")
	srv.AddUser("carol", "pw")
	alice := login(srv, "alice", "a")
	alice.raw.Write(`<iq type='set' id='p'><prefs xmlns='urn:xmpp:mam:2' default='never'><always><jid>carol@localhost</jid></always><never/></prefs></iq>`)
	if got := alice.until(t, `id="p".*?</iq>`); !strings.Contains(got, `default="never"`) || !strings.Contains(got, `<jid>carol@localhost</jid>`) {
		t.Fatalf("prefs set: %s", got)
	}
	bob := login(srv, "bob", "b")
	carol := login(srv, "carol", "c")
	bob.raw.Write(`<message to='alice@localhost' type='chat' id='b'><body>from bob</body></message>`)
	alice.until(t, `id="b"`)
	carol.raw.Write(`<message to='alice@localhost' type='chat' id='c'><body>from carol</body></message>`)
	alice.until(t, `id="c"`)
	if _, tx := results(alice.query(t, "", "")); strings.Join(tx, ",") != "from carol" {
		t.Errorf("archive under default never with carol always: %q", tx)
	}
	alice.raw.Write(`<iq type='get' id='g'><prefs xmlns='urn:xmpp:mam:2'/></iq>`)
	if got := alice.until(t, `id="g".*?</iq>`); !strings.Contains(got, `default="never"`) {
		t.Errorf("prefs get: %s", got)
	}
}

// TestRetention: messages older than limits.mam.retention go in the
// background; limits.mam.max_messages keeps the newest.
func TestRetention(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) {
		c.Limits.MAM.Retention = config.Duration(300 * time.Millisecond)
		c.Limits.MAM.MaxMessages = 2
	})
	srv.AddUser("alice", "pw")
	srv.AddUser("bob", "pw")
	alice := login(srv, "alice", "a")
	bob := login(srv, "bob", "b")
	for i := range 3 {
		bob.raw.Write(fmt.Sprintf(`<message to='alice@localhost' type='chat' id='m%d'><body>m%d</body></message>`, i, i))
		alice.until(t, fmt.Sprintf(`id="m%d"`, i))
	}
	if _, tx := results(alice.query(t, "", "")); strings.Join(tx, ",") != "m1,m2" {
		t.Errorf("max_messages 2 after 3: %q", tx)
	}
	time.Sleep(time.Second)
	if _, tx := results(alice.query(t, "", "")); len(tx) != 0 {
		t.Errorf("after the retention: %q", tx)
	}
}
